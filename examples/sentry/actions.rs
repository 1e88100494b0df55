//! What the application does that sends signals: upgrading, signing up, receiving events,
//! feedback and members. In Sentry these live in commands, views and the event pipeline.

use ::signals::outbox::Drained;

use crate::context::Context;
use crate::db::{Db, Route, args};
use crate::error::AppError;
use crate::models::{self, OrganizationMember, Project, Table, User, UserReport, flags};
use crate::outbox::OutboxScope;
use crate::projectflags::set_project_flag_and_signal;
use crate::remote::{self, MemberJoinedArgs, RemoteSignal};
use crate::signals::{
    Event, FirstEvent, ModelName, ProjectArgs, ProjectEvent, SiloMode, Upgrade, event_processed,
    first_event_received, first_transaction_received, post_upgrade, user_feedback_received,
};

/// `sentry upgrade`: the schema is up to date; tell the receivers, with `send`, so that an
/// error aborts the upgrade.
pub(crate) fn upgrade(
    ctx: &Context,
    db: &Db,
    silo: SiloMode,
    interactive: bool,
) -> Result<(), AppError> {
    post_upgrade.send(
        &silo,
        &Upgrade {
            interactive,
            db,
            ctx,
        },
    )?;
    Ok(())
}

/// A sign-up: saves the user, which cascades to `UserEmail` and `Email`.
pub(crate) fn sign_up(ctx: &Context, db: &Db, email: &str, name: &str) -> Result<User, AppError> {
    db.transaction(|tx| {
        let mut user = User {
            id: None,
            email: email.into(),
            name: name.into(),
            is_superuser: false,
        };
        models::save(ctx, tx, &mut user)?;
        Ok(user)
    })
}

fn project(tx: &crate::db::Tx<'_>, project_id: i64) -> Result<Project, AppError> {
    Project::load(tx, project_id)?
        .ok_or_else(|| AppError::Validation(format!("no project {project_id}")))
}

/// An event arrives for `project_id`: every event sends `event_processed` robustly (a failing
/// receiver is logged, not raised); the project's first also enqueues the durable
/// `first_event_received` in the same transaction, delivered once it commits (Sentry's
/// synchronous drain of the shard written), and retried later if a receiver fails. Returns
/// what that delivery did (nothing for a later event).
pub(crate) fn receive_event(
    ctx: &Context,
    db: &Db,
    project_id: i64,
    event: &Event,
) -> Result<Drained, AppError> {
    let first = db.transaction(|tx| {
        let mut project = project(tx, project_id)?;
        let mut first = None;
        if !project.first_event {
            tx.execute(
                "UPDATE sentry_project SET first_event = 1 WHERE id = ?1",
                args![project_id],
            )?;
            project.first_event = true;
            let args = FirstEvent {
                project_id,
                event_id: event.id.clone(),
                platform: event.platform.clone(),
            };
            let enqueued = tx.enqueue(
                &first_event_received,
                &ModelName::Project,
                &args,
                &Route {
                    scope: OutboxScope::Organization,
                    shard: project.organization_id,
                    object: None,
                    to: &[],
                },
            )?;
            first = Some(enqueued);
        }
        event_processed.send_robust::<Project>(&ProjectEvent {
            project: &project,
            event,
            tx,
            ctx,
        });
        Ok(first)
    })?;
    match first {
        Some(enqueued) => db.flush(ctx, &enqueued),
        None => Ok(Drained::default()),
    }
}

/// A transaction arrives for `project_id`: sets `HAS_TRANSACTIONS` and, the first time, sends
/// `first_transaction_received`. Returns whether this was the first.
pub(crate) fn receive_transaction(
    ctx: &Context,
    db: &Db,
    project_id: i64,
) -> Result<bool, AppError> {
    db.transaction(|tx| {
        let project = project(tx, project_id)?;
        set_project_flag_and_signal(
            ctx,
            tx,
            &project,
            flags::HAS_TRANSACTIONS,
            &first_transaction_received,
        )
    })
}

/// A user leaves feedback on an event.
pub(crate) fn leave_feedback(
    ctx: &Context,
    db: &Db,
    project_id: i64,
    event_id: &str,
    email: &str,
    comments: &str,
) -> Result<UserReport, AppError> {
    db.transaction(|tx| {
        let project = project(tx, project_id)?;
        let mut report = UserReport {
            id: None,
            project_id,
            event_id: event_id.into(),
            email: email.into(),
            comments: comments.into(),
        };
        models::save(ctx, tx, &mut report)?;
        user_feedback_received.send_robust::<Project>(&ProjectArgs {
            project: &project,
            user_id: None,
            tx,
            ctx,
        });
        Ok(report)
    })
}

/// A user joins an organisation with `role`.
pub(crate) fn join(
    ctx: &Context,
    db: &Db,
    organization_id: i64,
    user_id: i64,
    role: &str,
) -> Result<OrganizationMember, AppError> {
    db.transaction(|tx| {
        let mut member = OrganizationMember {
            id: None,
            organization_id,
            user_id,
            role: role.into(),
        };
        add_member(ctx, tx, &mut member)?;
        Ok(member)
    })
}

/// Saves `member` and sends `member_joined` to its organisation's silo
/// (`remote::schedule_signal`): after `tx` commits, or over the outbox.
pub(crate) fn add_member(
    ctx: &Context,
    tx: &crate::db::Tx<'_>,
    member: &mut OrganizationMember,
) -> Result<(), AppError> {
    models::save(ctx, tx, member)?;
    remote::schedule_signal(
        ctx,
        tx,
        RemoteSignal::MemberJoined,
        member.organization_id,
        serde_json::to_value(MemberJoinedArgs {
            user_id: member.user_id,
        })
        .map_err(|error| AppError::Validation(error.to_string()))?,
    )
}

/// Changes a member's role; `pre_save` receivers may veto it.
pub(crate) fn change_role(
    ctx: &Context,
    db: &Db,
    member_id: i64,
    role: &str,
) -> Result<(), AppError> {
    db.transaction(|tx| {
        let mut member = OrganizationMember::load(tx, member_id)?
            .ok_or_else(|| AppError::Validation(format!("no member {member_id}")))?;
        member.role = role.into();
        models::save(ctx, tx, &mut member)
    })
}
