//! `features.py`: feature adoption, recorded once per organisation and feature.

use ::signals::outbox::Delivery;
use ::signals::receiver;

use crate::db::{Tx, args};
use crate::error::AppError;
use crate::models::{Project, Table};
use crate::signals::{ModelName, first_event_received};

/// Records that an organisation adopted `feature`; a second time is a no-op.
pub(crate) fn record_adoption(
    tx: &Tx<'_>,
    organization_id: i64,
    feature: &str,
) -> Result<bool, AppError> {
    let inserted = tx.execute(
        "INSERT INTO sentry_featureadoption (organization_id, feature) VALUES (?1, ?2) \
         ON CONFLICT DO NOTHING",
        args![organization_id, feature],
    )?;
    Ok(inserted == 1)
}

/// The organisation adopted `first_event`. A second receiver of the durable
/// `first_event_received`: its row commits with the first's effects, when they all succeed.
#[receiver(signal = first_event_received, sender = ModelName::Project, dispatch_uid = "features.record_first_event")]
fn record_first_event_adoption(project_id: i64, delivery: &Delivery<'_>) -> Result<(), AppError> {
    let tx = Tx::lent(delivery);
    if let Some(project) = Project::load(&tx, project_id)? {
        record_adoption(&tx, project.organization_id, "first_event")?;
    }
    Ok(())
}
