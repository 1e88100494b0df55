//! The control outbox, on durable signals: a control-silo write enqueues, in its own
//! transaction, one `process_control_outbox` message per region, sharded by the object and
//! coalesced by it; the outbox's worker delivers each to the receivers of its category, after
//! commit, at least once (`signals::outbox`).

use ::signals::outbox::Enqueued;
use serde::{Deserialize, Serialize};

use crate::context::Context;
use crate::db::{Route, Tx, args};
use crate::error::AppError;
use crate::models::{self, Table};
use crate::signals::{ControlMessage, process_control_outbox};

/// What an outbox message is about: the sender of `process_control_outbox`, stored by its
/// Sentry name (`INTEGRATION_UPDATE`, ...).
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum OutboxCategory {
    /// An integration changed or was deleted.
    IntegrationUpdate,
    /// A Sentry app changed or was deleted.
    SentryAppUpdate,
    /// An API application changed; no receiver handles it (yet).
    ApiApplicationUpdate,
}

/// The shard family a category's messages belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) enum OutboxScope {
    /// Sharded by integration.
    Integration,
    /// Sharded by application.
    App,
    /// Sharded by organisation: the product signals (`first_event_received`).
    Organization,
}

impl OutboxCategory {
    /// The scope this category's messages must be written in.
    pub(crate) fn scope(self) -> OutboxScope {
        match self {
            Self::IntegrationUpdate => OutboxScope::Integration,
            Self::SentryAppUpdate | Self::ApiApplicationUpdate => OutboxScope::App,
        }
    }
}

/// Enqueues one message per region about `object_identifier`, in the caller's transaction:
/// sharded by the object in `scope`, and coalesced with the messages about it still waiting.
///
/// # Errors
///
/// [`AppError::WrongScope`] if `category` does not belong to `scope`.
pub(crate) fn enqueue(
    ctx: &Context,
    tx: &Tx<'_>,
    scope: OutboxScope,
    category: OutboxCategory,
    object_identifier: i64,
    payload: &str,
) -> Result<Enqueued, AppError> {
    if category.scope() != scope {
        return Err(AppError::WrongScope {
            category,
            expected: category.scope(),
            given: scope,
        });
    }
    let message = ControlMessage {
        object_identifier,
        payload: payload.to_owned(),
    };
    tx.enqueue(
        &process_control_outbox,
        &category,
        &message,
        &Route {
            scope,
            shard: object_identifier,
            object: Some(object_identifier),
            to: &ctx.settings.regions,
        },
    )
}

/// Saves `instance` and, in the same transaction, enqueues its replication messages.
pub(crate) fn save_replicated<M: Table>(
    ctx: &Context,
    tx: &Tx<'_>,
    instance: &mut M,
    category: OutboxCategory,
    payload: &str,
) -> Result<Enqueued, AppError> {
    models::save(ctx, tx, instance)?;
    let id = instance.id().expect("a saved instance has an id");
    enqueue(ctx, tx, category.scope(), category, id, payload)
}

/// Deletes `instance` and, in the same transaction, enqueues its replication messages.
pub(crate) fn delete_replicated<M: Table>(
    ctx: &Context,
    tx: &Tx<'_>,
    instance: &M,
    category: OutboxCategory,
) -> Result<(), AppError> {
    models::delete(ctx, tx, instance)?;
    if let Some(id) = instance.id() {
        enqueue(
            ctx,
            tx,
            category.scope(),
            category,
            id,
            "{\"deleted\": true}",
        )?;
    }
    Ok(())
}

/// Sentry's `maybe_process_tombstone`: the object if it still exists; otherwise records a
/// tombstone for `region_name` (a second time is a no-op) and returns `None`.
///
/// The application's own table rather than `signals::outbox::record_tombstone`'s: one
/// database plays every region here, so its tombstones are per region.
pub(crate) fn maybe_process_tombstone<M: Table>(
    tx: &Tx<'_>,
    object_identifier: i64,
    region_name: &str,
) -> Result<Option<M>, AppError> {
    if let Some(instance) = M::load(tx, object_identifier)? {
        return Ok(Some(instance));
    }
    record_tombstone(tx, region_name, M::TABLE, object_identifier)?;
    Ok(None)
}

/// Records that `table_name` row `object_identifier` is gone, for `region_name`; returns whether
/// the tombstone is new (recording it twice is a no-op).
pub(crate) fn record_tombstone(
    tx: &Tx<'_>,
    region_name: &str,
    table_name: &str,
    object_identifier: i64,
) -> Result<bool, AppError> {
    let inserted = tx.execute(
        "INSERT INTO sentry_regiontombstone (region_name, table_name, object_identifier) \
         VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
        args![region_name, table_name, object_identifier],
    )?;
    Ok(inserted == 1)
}
