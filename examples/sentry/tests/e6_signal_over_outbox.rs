//! E6: `member_joined` sent to an organisation's silo (`remote::schedule_signal`): over the
//! outbox across silos, each message delivered (never coalesced) in order, and sent there with
//! `send_robust`, so that a failing local receiver does not make the message retry; on commit in
//! one process, so that a rollback never sends it.

use super::{installed, rows};
use crate::actions;
use crate::analytics::AnalyticsEvent;
use crate::context::{Context, Settings, SignalService};
use crate::db::args;
use crate::error::AppError;
use crate::models::OrganizationMember;
use crate::receivers::onboarding::task;

fn across_silos(ctx: &Context) -> Context {
    Context {
        settings: Settings {
            signal_service: SignalService::Outbox,
            ..ctx.settings.clone()
        },
        ..ctx.clone()
    }
}

fn joined(ctx: &Context) -> Vec<i64> {
    ctx.analytics
        .events()
        .into_iter()
        .filter_map(|event| match event {
            AnalyticsEvent::MemberJoined { user_id, .. } => Some(user_id),
            _ => None,
        })
        .collect()
}

/// Organisation 1's `INVITE_MEMBER` task: its status and user.
fn invite_member_task(db: &crate::db::Db) -> Option<(String, Option<i64>)> {
    db.transaction(|tx| {
        tx.query_opt(
            "SELECT status, user_id FROM sentry_organizationonboardingtask \
             WHERE organization_id = 1 AND task = ?1",
            args![task::INVITE_MEMBER],
        )
    })
    .unwrap()
}

#[test]
fn across_silos_two_joins_of_one_org_are_both_delivered_in_order_and_complete_the_task() {
    let (ctx, db) = installed();
    let control = across_silos(&ctx);
    let users: Vec<i64> = ["ada", "grace"]
        .map(|name| {
            let user = actions::sign_up(&ctx, &db, &format!("{name}@example.com"), name).unwrap();
            let user_id = user.id.unwrap();
            actions::join(&control, &db, 1, user_id, "member").unwrap();
            user_id
        })
        .into();
    assert!(
        joined(&ctx).is_empty(),
        "nothing is sent before the worker delivers"
    );
    assert_eq!(invite_member_task(&db), None);
    assert_eq!(rows(&db, "signals_outbox_message"), 2);

    let drained = db.worker(&ctx).unwrap().drain_once().unwrap();
    assert_eq!(
        (drained.delivered, drained.removed),
        (2, 2),
        "never coalesced"
    );
    assert_eq!(joined(&ctx), users, "in the order they joined");
    assert_eq!(
        invite_member_task(&db),
        Some(("complete".into(), Some(users[0])))
    );
    assert_eq!(rows(&db, "signals_outbox_message"), 0);
}

#[test]
fn across_silos_a_failing_local_receiver_does_not_make_the_message_retry() {
    let (ctx, db) = installed();
    let user = actions::sign_up(&ctx, &db, "ada@example.com", "Ada").unwrap();
    actions::join(&across_silos(&ctx), &db, 1, user.id.unwrap(), "member").unwrap();
    ctx.analytics.set_down(true);
    let drained = db.worker(&ctx).unwrap().drain_once().unwrap();
    assert_eq!((drained.delivered, drained.failed), (1, 0));
    assert_eq!(
        rows(&db, "signals_outbox_message"),
        0,
        "delivered, not retried"
    );
    assert!(
        joined(&ctx).is_empty(),
        "the analytics event was lost, as send_robust allows"
    );
    assert_eq!(
        invite_member_task(&db),
        Some(("complete".into(), user.id)),
        "the receiver's write before its failure stays"
    );
}

#[test]
fn in_one_process_member_joined_is_sent_after_commit_and_never_after_a_rollback() {
    let (ctx, db) = installed();
    let user = actions::sign_up(&ctx, &db, "ada@example.com", "Ada").unwrap();
    let user_id = user.id.unwrap();
    let add = |tx: &crate::db::Tx<'_>| {
        let mut member = OrganizationMember {
            id: None,
            organization_id: 1,
            user_id,
            role: "member".into(),
        };
        actions::add_member(&ctx, tx, &mut member)
    };

    let rolled_back: Result<(), AppError> = db.transaction(|tx| {
        add(tx)?;
        Err(AppError::Validation("changed my mind".into()))
    });
    assert!(rolled_back.is_err());
    assert!(joined(&ctx).is_empty(), "a rollback never sends it");
    assert_eq!(rows(&db, "sentry_organizationmember"), 1, "only the owner");

    let sent_before_commit = db
        .transaction(|tx| {
            add(tx)?;
            Ok(joined(&ctx).len())
        })
        .unwrap();
    assert_eq!(sent_before_commit, 0, "not sent before the commit");
    assert_eq!(joined(&ctx), [user_id], "sent once it committed");
    assert_eq!(
        rows(&db, "signals_outbox_message"),
        0,
        "no outbox in one process"
    );
}
