//! The control outbox: control-silo writes record, in the same transaction, one message per
//! region; the drain delivers each message to the `process_control_outbox` receivers of its
//! category, coalescing repeated messages about one object to the newest, and deletes it once
//! they succeed. A failing message stays for the next drain (at-least-once delivery).

use rusqlite::params;

use crate::context::Context;
use crate::db::{Db, Tx};
use crate::error::AppError;
use crate::models::{self, Table};
use crate::signals::{OutboxMessage, process_control_outbox};

/// What an outbox message is about: the sender of `process_control_outbox`. The names are
/// Sentry's (`INTEGRATION_UPDATE`, ...).
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum OutboxCategory {
    /// An integration changed or was deleted.
    IntegrationUpdate,
    /// A Sentry app changed or was deleted.
    SentryAppUpdate,
    /// An API application changed; no receiver handles it (yet).
    ApiApplicationUpdate,
}

/// The shard family a category's messages belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutboxScope {
    /// Sharded by integration.
    Integration,
    /// Sharded by application.
    App,
}

impl OutboxCategory {
    const ALL: [Self; 3] = [
        Self::IntegrationUpdate,
        Self::SentryAppUpdate,
        Self::ApiApplicationUpdate,
    ];

    /// The scope this category's messages must be written in.
    pub(crate) fn scope(self) -> OutboxScope {
        match self {
            Self::IntegrationUpdate => OutboxScope::Integration,
            Self::SentryAppUpdate | Self::ApiApplicationUpdate => OutboxScope::App,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::IntegrationUpdate => "INTEGRATION_UPDATE",
            Self::SentryAppUpdate => "SENTRY_APP_UPDATE",
            Self::ApiApplicationUpdate => "API_APPLICATION_UPDATE",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|category| category.name() == name)
    }
}

/// Writes one message per region about `object_identifier`, in the caller's transaction.
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
) -> Result<(), AppError> {
    if category.scope() != scope {
        return Err(AppError::WrongScope {
            category,
            expected: category.scope(),
            given: scope,
        });
    }
    for region in &ctx.settings.regions {
        tx.execute(
            "INSERT INTO sentry_controloutbox (shard_scope, shard_identifier, category, \
             object_identifier, region_name, payload) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                format!("{scope:?}"),
                object_identifier,
                category.name(),
                object_identifier,
                region,
                payload
            ],
        )?;
    }
    Ok(())
}

/// Saves `instance` and, in the same transaction, writes its replication messages.
pub(crate) fn save_replicated<M: Table>(
    ctx: &Context,
    tx: &Tx<'_>,
    instance: &mut M,
    category: OutboxCategory,
    payload: &str,
) -> Result<(), AppError> {
    models::save(ctx, tx, instance)?;
    let id = instance.id().expect("a saved instance has an id");
    enqueue(ctx, tx, category.scope(), category, id, payload)
}

/// Deletes `instance` and, in the same transaction, writes its replication messages.
pub(crate) fn delete_replicated<M: Table>(
    ctx: &Context,
    tx: &Tx<'_>,
    instance: &M,
    category: OutboxCategory,
) -> Result<(), AppError> {
    models::delete(ctx, tx, instance)?;
    let Some(id) = instance.id() else {
        return Ok(());
    };
    enqueue(
        ctx,
        tx,
        category.scope(),
        category,
        id,
        "{\"deleted\": true}",
    )
}

/// One delivered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Delivery {
    /// The row delivered: the newest of its group.
    pub(crate) id: i64,
    pub(crate) category: OutboxCategory,
    pub(crate) object_identifier: i64,
    pub(crate) region_name: String,
    pub(crate) payload: String,
    /// The receivers that ran, in order.
    pub(crate) receivers: Vec<&'static str>,
    /// How many rows the delivery replaced (older messages about the same object included).
    pub(crate) rows: usize,
}

/// What a drain did.
#[derive(Debug, Default)]
pub(crate) struct DrainReport {
    pub(crate) delivered: Vec<Delivery>,
    /// Messages whose receivers failed, left for the next drain: `(row id, error)`.
    pub(crate) failed: Vec<(i64, String)>,
}

/// Delivers every message (of `region`, or of every region), oldest group first, each group in
/// its own transaction: on success the group's rows up to the delivered one are deleted; on
/// failure they stay and the drain goes on with the next group.
pub(crate) fn drain(ctx: &Context, db: &Db, region: Option<&str>) -> Result<DrainReport, AppError> {
    let groups: Vec<(String, String, i64, i64)> = db.transaction(|tx| {
        let mut statement = tx.conn().prepare(
            "SELECT region_name, category, object_identifier, MAX(id) FROM sentry_controloutbox \
             WHERE ?1 IS NULL OR region_name = ?1 \
             GROUP BY region_name, category, object_identifier ORDER BY MIN(id)",
        )?;
        let rows = statement.query_map([region], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    })?;
    let mut report = DrainReport::default();
    for (region_name, category, object_identifier, newest) in groups {
        let delivered = db
            .transaction(|tx| deliver(ctx, tx, &region_name, &category, object_identifier, newest));
        match delivered {
            Ok(delivery) => report.delivered.push(delivery),
            Err(error) => report.failed.push((newest, error.to_string())),
        }
    }
    Ok(report)
}

fn deliver(
    ctx: &Context,
    tx: &Tx<'_>,
    region_name: &str,
    category_name: &str,
    object_identifier: i64,
    newest: i64,
) -> Result<Delivery, AppError> {
    let payload: String = tx.conn().query_row(
        "SELECT payload FROM sentry_controloutbox WHERE id = ?1",
        [newest],
        |row| row.get(0),
    )?;
    let category = OutboxCategory::parse(category_name).ok_or_else(|| {
        AppError::Validation(format!("unknown outbox category {category_name:?}"))
    })?;
    let responses = process_control_outbox.send(
        &category,
        &OutboxMessage {
            object_identifier,
            region_name,
            tx,
            ctx,
        },
    )?;
    let receivers = responses.names().collect();
    let rows = tx.execute(
        "DELETE FROM sentry_controloutbox WHERE region_name = ?1 AND category = ?2 \
         AND object_identifier = ?3 AND id <= ?4",
        params![region_name, category_name, object_identifier, newest],
    )?;
    Ok(Delivery {
        id: newest,
        category,
        object_identifier,
        region_name: region_name.to_owned(),
        payload,
        receivers,
        rows,
    })
}

/// Sentry's `maybe_process_tombstone`: the object if it still exists; otherwise records a
/// tombstone for `region_name` (a second time is a no-op) and returns `None`.
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
        "INSERT OR IGNORE INTO sentry_regiontombstone (region_name, table_name, object_identifier) \
         VALUES (?1, ?2, ?3)",
        params![region_name, table_name, object_identifier],
    )?;
    Ok(inserted == 1)
}
