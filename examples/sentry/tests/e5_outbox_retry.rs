//! E5: at-least-once delivery with retries: a failing shard backs off, doubling up to its cap,
//! while the others are delivered; a receiver that gives up returns `Ok` and its message is
//! dropped; a message failing past its attempts is parked, and `retry` brings it back; a kill
//! switch holds a shard or a category without losing its messages. On the durable
//! `first_event_received`, whose receivers fail while analytics is down, and on a fake clock.

use std::time::Duration;

use ::signals::outbox::{Drained, Explanation, ManualClock, MessageId, Pause};

use super::rows;
use crate::actions;
use crate::context::{Context, Settings};
use crate::db::{Db, args};
use crate::models::{self, OrganizationMember, Project};
use crate::outbox::{self, OutboxCategory, OutboxScope};
use crate::signals::{Event, first_event_received, process_control_outbox};

const START: i64 = 1_700_000_000_000;

/// A context, a database on a fake clock, and two organisations (each with an owner and a
/// project): their first events are two shards of `first_event_received`.
struct Two {
    ctx: Context,
    db: Db,
    clock: ManualClock,
    /// `(organization, project)`, twice.
    orgs: [(i64, i64); 2],
}

impl Two {
    fn new() -> Self {
        let clock = ManualClock::at(START);
        let ctx = Context::new(Settings::default(), &[]);
        let db = Db::temporary_with(|outbox| outbox.clock(clock.clone())).unwrap();
        let orgs = [10_001, 10_002].map(|id| organization(&ctx, &db, id));
        Self {
            ctx,
            db,
            clock,
            orgs,
        }
    }

    /// Project `index`'s first event; returns its message's id unless it was delivered at
    /// once, after its transaction committed.
    fn first_event(&self, index: usize) -> Option<MessageId> {
        let event = Event {
            id: format!("e{index}"),
            platform: None,
            has_minified_stack_trace: false,
        };
        let drained =
            actions::receive_event(&self.ctx, &self.db, self.orgs[index].1, &event).unwrap();
        (drained.delivered == 0).then(|| self.newest_message())
    }

    fn newest_message(&self) -> MessageId {
        self.db
            .transaction(|tx| tx.query_one("SELECT max(id) FROM signals_outbox_message", args![]))
            .unwrap()
    }

    fn explain(&self, id: MessageId) -> Explanation {
        self.db.outbox().explain(id).unwrap()
    }

    fn drain(&self) -> Drained {
        self.db
            .worker(&self.ctx)
            .unwrap()
            .max_attempts(20)
            .drain_once()
            .unwrap()
    }

    fn first_events_recorded(&self) -> usize {
        self.ctx
            .analytics
            .names()
            .iter()
            .filter(|name| **name == "first_event_for_project.sent")
            .count()
    }
}

/// Organisation `id`, with an owner and a project; returns `(organization, project)`.
fn organization(ctx: &Context, db: &Db, id: i64) -> (i64, i64) {
    let owner = actions::sign_up(ctx, db, &format!("owner@{id}.example"), "Owner").unwrap();
    db.transaction(|tx| {
        tx.execute(
            "INSERT INTO sentry_organization (id, slug, name) VALUES (?1, ?2, ?2)",
            args![id, format!("org-{id}")],
        )?;
        let mut member = OrganizationMember {
            id: None,
            organization_id: id,
            user_id: owner.id.expect("saved"),
            role: "owner".into(),
        };
        models::save(ctx, tx, &mut member)?;
        let mut project = Project {
            id: None,
            organization_id: id,
            slug: "web".into(),
            platform: Some("python".into()),
            flags: 0,
            first_event: false,
        };
        models::save(ctx, tx, &mut project)?;
        Ok((id, project.id.expect("saved")))
    })
    .unwrap()
}

fn scheduled(explanation: Explanation) -> (i64, u32) {
    match explanation {
        Explanation::Scheduled {
            in_ms, attempts, ..
        } => (in_ms, attempts),
        other => panic!("not scheduled: {other}"),
    }
}

#[test]
fn a_failing_shard_backs_off_doubling_while_the_other_is_delivered_then_converges() {
    let two = Two::new();
    two.ctx.analytics.fail_next(1);
    let failing = two.first_event(0).expect("the failed first event waits");
    assert_eq!(
        two.first_event(1),
        None,
        "the other shard is delivered at once"
    );
    assert_eq!(two.first_events_recorded(), 1);

    // Not due again before its backoff, which doubles from 1 s at each failure.
    assert_eq!(scheduled(two.explain(failing)), (1_000, 1));
    assert_eq!(two.drain().delivered, 0);
    for (attempts, backoff) in [(2, 2_000), (3, 4_000), (4, 8_000)] {
        let previous = backoff / 2;
        two.clock
            .advance(Duration::from_millis(u64::try_from(previous - 1).unwrap()));
        assert_eq!(two.drain(), Drained::default(), "1 ms before it is due");
        two.clock.advance(Duration::from_millis(1));
        two.ctx.analytics.fail_next(1);
        assert_eq!(two.drain().failed, 1);
        assert_eq!(scheduled(two.explain(failing)), (backoff, attempts));
    }

    // Once its receivers succeed, it is delivered once, and the outbox is empty.
    two.clock.advance(Duration::from_secs(8));
    assert_eq!(two.drain().delivered, 1);
    assert_eq!(two.first_events_recorded(), 2);
    assert_eq!(rows(&two.db, "signals_outbox_message"), 0);
    assert_eq!(two.drain(), Drained::default());
}

#[test]
fn the_backoff_never_exceeds_an_hour() {
    let two = Two::new();
    two.ctx.analytics.set_down(true);
    let failing = two.first_event(0).expect("it fails");
    let mut backoffs = Vec::new();
    for _ in 0..15 {
        let (in_ms, _) = scheduled(two.explain(failing));
        backoffs.push(in_ms);
        two.clock
            .advance(Duration::from_millis(u64::try_from(in_ms).unwrap()));
        assert_eq!(two.drain().failed, 1);
    }
    assert_eq!(backoffs[..3], [1_000, 2_000, 4_000]);
    assert!(backoffs.iter().all(|&ms| ms <= 3_600_000), "{backoffs:?}");
    assert_eq!(backoffs.last(), Some(&3_600_000), "{backoffs:?}");
}

#[test]
fn a_receiver_that_gives_up_returns_ok_and_its_message_is_dropped() {
    let two = Two::new();
    let (_, project) = two.orgs[0];
    // The project is deleted before its first event is delivered: a permanent condition,
    // which the receiver logs and accepts.
    two.ctx.analytics.set_down(true);
    let message = two.first_event(0).expect("it fails");
    two.db
        .transaction(|tx| {
            tx.execute("DELETE FROM sentry_project WHERE id = ?1", args![project])?;
            Ok(())
        })
        .unwrap();
    two.ctx.analytics.set_down(false);
    two.clock.advance(Duration::from_secs(1));
    assert_eq!(two.drain().delivered, 1);
    assert_eq!(two.explain(message), Explanation::Unknown);
    assert!(
        two.ctx
            .console
            .lines()
            .iter()
            .any(|line| line.contains(&format!("project {project} is gone"))),
        "{:#?}",
        two.ctx.console.lines()
    );
}

#[test]
fn a_message_failing_past_its_attempts_is_parked_and_retry_brings_it_back() {
    let two = Two::new();
    two.ctx.analytics.set_down(true);
    let message = two.first_event(0).expect("it fails");
    let worker = || two.db.worker(&two.ctx).unwrap().max_attempts(3);
    for _ in 0..2 {
        two.clock.advance(Duration::from_secs(3_600));
        worker().drain_once().unwrap();
    }
    match two.explain(message) {
        Explanation::Parked { attempts, error } => {
            assert_eq!(attempts, 3);
            assert!(error.contains("analytics backend unavailable"), "{error}");
        }
        other => panic!("not parked: {other}"),
    }
    let status = two.db.outbox().status().unwrap();
    assert_eq!(status.parked.len(), 1, "{status}");
    // Fixed, then retried by an operator (`outbox retry <message>`).
    two.ctx.analytics.set_down(false);
    two.db.outbox().retry_message(message).unwrap();
    assert_eq!(worker().drain_once().unwrap().delivered, 1);
    assert_eq!(two.first_events_recorded(), 1);
}

#[test]
fn a_kill_switch_holds_a_shard_or_a_category_without_losing_its_messages() {
    let two = Two::new();
    let (organization, _) = two.orgs[0];
    let shard = Pause::shard(
        &first_event_received,
        OutboxScope::Organization,
        organization,
    )
    .unwrap();
    two.db.outbox().pause(&shard).unwrap();
    let held = two.first_event(0).expect("it is held");
    assert_eq!(two.first_event(1), None, "the other shard is not paused");
    assert_eq!(two.explain(held), Explanation::Paused(shard.clone()));
    assert_eq!(two.drain().delivered, 0);
    assert!(two.db.outbox().resume(&shard).unwrap());
    assert_eq!(two.drain().delivered, 1);
    assert_eq!(two.first_events_recorded(), 2);

    // A category: the control outbox's Sentry app updates wait, its integration updates flow.
    let apps = Pause::category(&process_control_outbox, &OutboxCategory::SentryAppUpdate).unwrap();
    two.db.outbox().pause(&apps).unwrap();
    two.db
        .transaction(|tx| {
            outbox::enqueue(
                &two.ctx,
                tx,
                OutboxScope::App,
                OutboxCategory::SentryAppUpdate,
                1,
                "{}",
            )?;
            outbox::enqueue(
                &two.ctx,
                tx,
                OutboxScope::Integration,
                OutboxCategory::IntegrationUpdate,
                1,
                "{}",
            )?;
            Ok(())
        })
        .unwrap();
    assert_eq!(
        two.drain().delivered,
        2,
        "the integration update, in two regions"
    );
    assert_eq!(
        rows(&two.db, "signals_outbox_message"),
        2,
        "the app updates wait"
    );
    two.db.outbox().resume(&apps).unwrap();
    assert_eq!(two.drain().delivered, 2);
    assert_eq!(rows(&two.db, "signals_outbox_message"), 0);
}
