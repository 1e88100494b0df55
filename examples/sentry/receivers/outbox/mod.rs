//! Outbox receivers: `control` handles the control outbox's categories, `region` the signals
//! sent to an organisation's silo; this module drains the outbox synchronously after an
//! upgrade, on any silo.

mod control;
mod region;

use ::signals::receiver;

use crate::context::Context;
use crate::db::Db;
use crate::error::AppError;
use crate::signals::post_upgrade;
use crate::trace;

/// Self-hosted installs have no periodic outbox worker: deliver everything now. An any-sender
/// receiver, so it runs whatever the silo mode.
#[receiver(signal = post_upgrade, dispatch_uid = "run_outbox_replications_for_self_hosted")]
fn run_outbox_replications_for_self_hosted(db: &Db, ctx: &Context) -> Result<(), AppError> {
    if !ctx.settings.self_hosted {
        return Ok(());
    }
    let drained = db.drain_once(ctx)?;
    trace::note(
        ctx,
        format!(
            "outbox drained: {} delivered, {} left for later",
            drained.delivered, drained.failed
        ),
    );
    Ok(())
}
