//! `features.py`: feature adoption, recorded once per organisation and feature.

use ::signals::receiver;
use rusqlite::params;

use crate::db::Tx;
use crate::error::AppError;
use crate::models::Project;
use crate::signals::first_event_received;

/// Records that an organisation adopted `feature`; a second time is a no-op.
pub(crate) fn record_adoption(
    tx: &Tx<'_>,
    organization_id: i64,
    feature: &str,
) -> Result<bool, AppError> {
    let inserted = tx.execute(
        "INSERT OR IGNORE INTO sentry_featureadoption (organization_id, feature) VALUES (?1, ?2)",
        params![organization_id, feature],
    )?;
    Ok(inserted == 1)
}

/// The organisation adopted `first_event`. A second receiver of `first_event_received`: it
/// runs whatever the analytics backend does to the first.
#[receiver(signal = first_event_received, sender = Project, dispatch_uid = "features.record_first_event")]
fn record_first_event_adoption(project: &Project, tx: &Tx<'_>) -> Result<(), AppError> {
    record_adoption(tx, project.organization_id, "first_event")?;
    Ok(())
}
