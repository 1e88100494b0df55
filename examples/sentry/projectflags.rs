//! Sentry's `utils/projectflags.py`: set a project flag and, the first time only, send the
//! signal that announces it.

use ::signals::{SentBy, TypeSignal};

use crate::context::Context;
use crate::db::{Tx, args};
use crate::error::AppError;
use crate::models::Project;
use crate::signals::ProjectArgs;

/// Sets `flag` on `project` with a compare-and-set update; if this call set it, sends `signal`
/// (robustly) and returns `true`; if it was set already, sends nothing and returns `false`.
pub(crate) fn set_project_flag_and_signal<S>(
    ctx: &Context,
    tx: &Tx<'_>,
    project: &Project,
    flag: i64,
    signal: &TypeSignal<S>,
) -> Result<bool, AppError>
where
    S: for<'a> SentBy<Project, Args<'a> = ProjectArgs<'a>>,
{
    let project_id = project.id.expect("flags are set on saved projects");
    let updated = tx.execute(
        "UPDATE sentry_project SET flags = flags | ?2 WHERE id = ?1 AND flags & ?2 = 0",
        args![project_id, flag],
    )?;
    if updated == 0 {
        return Ok(false);
    }
    signal.send_robust::<Project>(&ProjectArgs {
        project,
        user_id: None,
        tx,
        ctx,
    });
    Ok(true)
}
