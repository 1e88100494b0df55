//! `outbox/control.py`: receivers of control outbox messages, by category. Each first checks
//! whether the object still exists; if not, it records a tombstone for the region and stops.

use ::signals::outbox::Delivery;
use ::signals::receiver;

use crate::context::Context;
use crate::db::{Tx, args};
use crate::error::AppError;
use crate::models::{Integration, SentryApp};
use crate::outbox::{OutboxCategory, maybe_process_tombstone};
use crate::signals::process_control_outbox;
use crate::trace;

/// An integration changed: only the tombstone check; nothing else is replicated.
#[receiver(signal = process_control_outbox, sender = OutboxCategory::IntegrationUpdate)]
fn process_integration_updates(
    object_identifier: i64,
    payload: &str,
    delivery: &Delivery<'_>,
) -> Result<(), AppError> {
    let ctx: &Context = delivery.state()?;
    let region_name = delivery.destination();
    let tx = Tx::lent(delivery);
    match maybe_process_tombstone::<Integration>(&tx, object_identifier, region_name)? {
        Some(integration) => trace::note(
            ctx,
            format!(
                "integration {object_identifier} ({}) is current in {region_name}: \
                 payload {payload}, the newest of {} message(s)",
                integration.name,
                delivery.coalesced()
            ),
        ),
        None => trace::note(
            ctx,
            format!("integration {object_identifier} tombstoned in {region_name}"),
        ),
    }
    Ok(())
}

/// A Sentry app changed: after the tombstone check, purge the region's caches of it: the
/// application-id lookup, and the installations of the organisations that live in this region.
#[receiver(signal = process_control_outbox, sender = OutboxCategory::SentryAppUpdate)]
fn process_sentry_app_updates(
    object_identifier: i64,
    delivery: &Delivery<'_>,
) -> Result<(), AppError> {
    let ctx: &Context = delivery.state()?;
    let region_name = delivery.destination();
    let tx = Tx::lent(delivery);
    let Some(app) = maybe_process_tombstone::<SentryApp>(&tx, object_identifier, region_name)?
    else {
        return Ok(());
    };
    let installations: Vec<i64> = tx.query(
        "SELECT installation.id FROM sentry_sentryappinstallation AS installation \
         JOIN sentry_organizationmapping AS mapping \
           ON mapping.organization_id = installation.organization_id \
         WHERE installation.sentry_app_id = ?1 AND mapping.region_name = ?2",
        args![object_identifier, region_name],
    )?;
    ctx.cache.clear_key(
        &format!("app_service.get_by_application_id:{}", app.application_id),
        region_name,
    );
    for installation in &installations {
        ctx.cache.clear_key(
            &format!("app_service.get_installation:{installation}"),
            region_name,
        );
    }
    trace::note(
        ctx,
        format!(
            "purged {region_name} caches of sentry app {object_identifier} ({} installation(s))",
            installations.len()
        ),
    );
    Ok(())
}
