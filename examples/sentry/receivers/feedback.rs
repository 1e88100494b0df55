//! User feedback: the organisation adopts the feature, and the project's first report is
//! flagged and recorded in analytics exactly once.

use ::signals::receiver;

use crate::analytics::AnalyticsEvent;
use crate::context::Context;
use crate::db::{Tx, args};
use crate::error::AppError;
use crate::models::{Project, flags};
use crate::receivers::features::record_adoption;
use crate::signals::user_feedback_received;

/// Records the `user_feedback` adoption and, for the project's first report (a compare-and-set
/// on its `HAS_USER_REPORTS` flag), `user_report.created`.
#[receiver(signal = user_feedback_received, sender = Project, dispatch_uid = "record_user_feedback")]
fn record_user_feedback(project: &Project, tx: &Tx<'_>, ctx: &Context) -> Result<(), AppError> {
    let project_id = project.id.expect("signals are sent for saved projects");
    record_adoption(tx, project.organization_id, "user_feedback")?;
    let first = tx.execute(
        "UPDATE sentry_project SET flags = flags | ?2 WHERE id = ?1 AND flags & ?2 = 0",
        args![project_id, flags::HAS_USER_REPORTS],
    )?;
    if first > 0 {
        ctx.analytics.record(AnalyticsEvent::FirstUserReport {
            organization_id: project.organization_id,
            project_id,
        })?;
    }
    Ok(())
}
