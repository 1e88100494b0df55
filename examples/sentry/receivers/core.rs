//! `core.py`: the default organisation and project of a self-hosted install, and a project's
//! default key.

use crate::context::Context;
use crate::db::{Db, Tx, args};
use crate::error::AppError;
use crate::models::{self, OWNER, Organization, OrganizationMember, Project, ProjectKey};
use crate::signals::{ProjectArgs, SiloMode, post_save, post_upgrade, project_created};
use crate::trace;
use ::signals::receiver;

/// Sentry's `handle_db_failure`: runs `work` and swallows (after logging) a schema or
/// operational database error, such as a missing table, so that a half-migrated database does
/// not abort `upgrade`; any other error propagates, and `post_upgrade`'s `send` stops on it.
fn handle_db_failure(
    ctx: &Context,
    receiver: &str,
    work: impl FnOnce() -> Result<(), AppError>,
) -> Result<(), AppError> {
    match work() {
        Err(error) if error.is_schema_or_operational() => {
            tracing::error!(receiver, %error, "Failed processing signal");
            trace::note(
                ctx,
                format!("Failed processing signal {receiver}: {error} (ignored)"),
            );
            Ok(())
        }
        other => other,
    }
}

/// Creates the organisation `sentry`, owned by the superuser, with the project `internal`, then
/// sends `project_created` (a receiver that sends a signal). Idempotent; self-hosted only.
#[receiver(
    signal = post_upgrade,
    sender = SiloMode::Monolith,
    dispatch_uid = "create_default_project"
)]
fn create_default_projects(db: &Db, ctx: &Context) -> Result<(), AppError> {
    handle_db_failure(ctx, "create_default_projects", || {
        db.transaction(|tx| create_default_project(ctx, tx))
    })
}

fn create_default_project(ctx: &Context, tx: &Tx<'_>) -> Result<(), AppError> {
    if !ctx.settings.self_hosted {
        return Ok(());
    }
    let existing: Option<i64> = tx.query_opt(
        "SELECT id FROM sentry_project WHERE slug = 'internal'",
        args![],
    )?;
    if existing.is_some() {
        return Ok(());
    }
    let mut organization = Organization {
        id: None,
        slug: "sentry".into(),
        name: "Sentry".into(),
    };
    models::save(ctx, tx, &mut organization)?;
    let organization_id = organization.id.expect("saved");
    if let Some(region) = ctx.settings.regions.first() {
        tx.execute(
            "INSERT INTO sentry_organizationmapping (organization_id, region_name) VALUES (?1, ?2)",
            args![organization_id, *region],
        )?;
    }
    let owner = models::superuser(tx)?;
    if let Some(owner) = &owner {
        let mut member = OrganizationMember {
            id: None,
            organization_id,
            user_id: owner.id.expect("saved"),
            role: OWNER.into(),
        };
        models::save(ctx, tx, &mut member)?;
    }
    let mut project = Project {
        id: None,
        organization_id,
        slug: "internal".into(),
        platform: None,
        flags: 0,
        first_event: false,
    };
    models::save(ctx, tx, &mut project)?;
    project_created.send_robust(
        &"create_default_project",
        &ProjectArgs {
            project: &project,
            user_id: owner.and_then(|owner| owner.id),
            tx,
            ctx,
        },
    );
    Ok(())
}

/// Gives a new project its default client key; skipped for fixture loads (`raw`).
#[receiver(signal = post_save, sender = Project, dispatch_uid = "create_keys_for_project")]
fn create_keys_for_project(
    instance: &Project,
    created: bool,
    raw: bool,
    tx: &Tx<'_>,
    ctx: &Context,
) -> Result<(), AppError> {
    let (true, false, Some(project_id)) = (created, raw, instance.id) else {
        return Ok(());
    };
    let keys: i64 = tx.query_one(
        "SELECT COUNT(*) FROM sentry_projectkey WHERE project_id = ?1",
        args![project_id],
    )?;
    if keys == 0 {
        let mut key = ProjectKey {
            id: None,
            project_id,
            label: "Default".into(),
        };
        models::save(ctx, tx, &mut key)?;
    }
    Ok(())
}
