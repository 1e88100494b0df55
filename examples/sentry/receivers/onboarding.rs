//! `onboarding.py`: onboarding tasks, project flags and "exactly once" analytics, from the
//! product signals, all sent with `send_robust`.

use ::signals::outbox::Delivery;
use ::signals::receiver;

use crate::analytics::AnalyticsEvent;
use crate::context::Context;
use crate::db::{Tx, args};
use crate::error::AppError;
use crate::models::{self, Project, Table, flags};
use crate::signals::{
    Event, ModelName, event_processed, first_event_received, first_transaction_received,
    member_joined, project_created,
};
use crate::trace;

/// Onboarding tasks, as `OrganizationOnboardingTask.task`.
pub(crate) mod task {
    pub(crate) const FIRST_PROJECT: &str = "create_project";
    pub(crate) const FIRST_EVENT: &str = "send_first_event";
    pub(crate) const FIRST_TRANSACTION: &str = "setup_transactions";
    pub(crate) const INVITE_MEMBER: &str = "invite_member";
}

/// Records `task` as complete for the organisation, unless it is already: a deduplicating
/// insert on the `(organization, task)` unique constraint, in a savepoint. Returns whether it
/// was recorded now.
pub(crate) fn record_task(
    tx: &Tx<'_>,
    organization_id: i64,
    task: &str,
    project_id: Option<i64>,
    user_id: Option<i64>,
) -> Result<bool, AppError> {
    let inserted = tx.ignore_conflict(|tx| {
        tx.execute(
            "INSERT INTO sentry_organizationonboardingtask \
             (organization_id, task, status, project_id, user_id) \
             VALUES (?1, ?2, 'complete', ?3, ?4)",
            args![organization_id, task, project_id, user_id],
        )
    })?;
    Ok(inserted.is_some())
}

fn project_id(project: &Project) -> i64 {
    project.id.expect("signals are sent for saved projects")
}

/// A project's first event: `first_event_for_project.sent` always (the signal fires once per
/// project), and, the first time in the organisation, the `FIRST_EVENT` task and
/// `first_event.sent`. An organisation without owner is logged and skipped.
///
/// Durable: delivered after the event's transaction commits, retried until it succeeds. The
/// task is written in the delivery's transaction (it commits with the message's removal), and
/// each analytics event carries the delivery's idempotency key, so that a retry after analytics
/// failed, or after a crash before the commit, records each of them once.
#[receiver(
    signal = first_event_received,
    sender = ModelName::Project,
    dispatch_uid = "onboarding.record_first_event"
)]
#[allow(clippy::ref_option)] // a receiver borrows its stored argument as it is
fn record_first_event(
    project_id: i64,
    platform: &Option<String>,
    delivery: &Delivery<'_>,
) -> Result<(), AppError> {
    let ctx: &Context = delivery.state()?;
    let tx = Tx::lent(delivery);
    let Some(project) = Project::load(&tx, project_id)? else {
        trace::note(
            ctx,
            format!("project {project_id} is gone: first event not recorded"),
        );
        return Ok(());
    };
    let organization_id = project.organization_id;
    let Some(user_id) = models::default_owner(&tx, organization_id)? else {
        tracing::warn!(organization_id, "cannot record the first event: no owner");
        trace::note(
            ctx,
            format!("organization {organization_id} has no owner: first event not recorded"),
        );
        return Ok(());
    };
    let key = delivery.idempotency_key();
    ctx.analytics.record_once(
        &format!("{key}:first_event_for_project"),
        AnalyticsEvent::FirstEventForProjectSent {
            user_id,
            organization_id,
            project_id,
            platform: platform.clone().or_else(|| project.platform.clone()),
        },
    )?;
    if record_task(
        &tx,
        organization_id,
        task::FIRST_EVENT,
        Some(project_id),
        Some(user_id),
    )? {
        ctx.analytics.record_once(
            &format!("{key}:first_event"),
            AnalyticsEvent::FirstEventSent {
                user_id,
                organization_id,
                project_id,
            },
        )?;
    }
    Ok(())
}

/// Every processed event: the first one with a minified stack trace sets the project's flag
/// with a compare-and-set update, so `first_event_with_minified_stack_trace_for_project.sent`
/// is recorded exactly once, however many events race.
#[receiver(signal = event_processed, sender = Project)]
fn record_event_with_first_minified_stack_trace_for_project(
    project: &Project,
    event: &Event,
    tx: &Tx<'_>,
    ctx: &Context,
) -> Result<(), AppError> {
    if !event.has_minified_stack_trace {
        return Ok(());
    }
    let affected = tx.execute(
        "UPDATE sentry_project SET flags = flags | ?2 WHERE id = ?1 AND flags & ?2 = 0",
        args![project_id(project), flags::HAS_MINIFIED_STACK_TRACE],
    )?;
    if affected > 0 {
        ctx.analytics
            .record(AnalyticsEvent::FirstMinifiedStackTrace {
                organization_id: project.organization_id,
                project_id: project_id(project),
            })?;
    }
    Ok(())
}

/// A project's first transaction (its flag is set by the sender): the `FIRST_TRANSACTION` task
/// and `first_transaction.sent`.
#[receiver(signal = first_transaction_received, sender = Project)]
fn record_first_transaction(
    project: &Project,
    user_id: Option<i64>,
    tx: &Tx<'_>,
    ctx: &Context,
) -> Result<(), AppError> {
    let project_id = project_id(project);
    record_task(
        tx,
        project.organization_id,
        task::FIRST_TRANSACTION,
        Some(project_id),
        user_id,
    )?;
    ctx.analytics.record(AnalyticsEvent::FirstTransactionSent {
        organization_id: project.organization_id,
        project_id,
    })?;
    Ok(())
}

/// A new project: `project.created`, and the `FIRST_PROJECT` task the first time.
#[receiver(signal = project_created, dispatch_uid = "onboarding.record_new_project")]
fn record_new_project(
    project: &Project,
    user_id: Option<i64>,
    tx: &Tx<'_>,
    ctx: &Context,
) -> Result<(), AppError> {
    let project_id = project_id(project);
    record_task(
        tx,
        project.organization_id,
        task::FIRST_PROJECT,
        Some(project_id),
        user_id,
    )?;
    ctx.analytics.record(AnalyticsEvent::ProjectCreated {
        organization_id: project.organization_id,
        project_id,
    })?;
    Ok(())
}

/// A member joined: the `INVITE_MEMBER` task is complete, and `member.joined`.
#[receiver(signal = member_joined, dispatch_uid = "onboarding.record_member_joined")]
fn record_member_joined(
    organization_id: i64,
    user_id: i64,
    tx: &Tx<'_>,
    ctx: &Context,
) -> Result<(), AppError> {
    let pending: Option<i64> = tx.query_opt(
        "SELECT id FROM sentry_organizationonboardingtask \
         WHERE organization_id = ?1 AND task = ?2 AND status != 'complete'",
        args![organization_id, task::INVITE_MEMBER],
    )?;
    if let Some(id) = pending {
        tx.execute(
            "UPDATE sentry_organizationonboardingtask SET status = 'complete', user_id = ?2 \
             WHERE id = ?1",
            args![id, user_id],
        )?;
    } else {
        record_task(
            tx,
            organization_id,
            task::INVITE_MEMBER,
            None,
            Some(user_id),
        )?;
    }
    ctx.analytics.record(AnalyticsEvent::MemberJoined {
        organization_id,
        user_id,
    })?;
    Ok(())
}
