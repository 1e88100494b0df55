//! E3: onboarding on `first_event_received` (durable: delivered after commit, retried until it
//! succeeds) and its siblings, sent with `send_robust`; project flags; analytics recorded
//! exactly once.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Barrier, Mutex};

use ::signals::outbox::Drained;
use tracing::field::{Field, Visit};

use super::{fresh, installed, rows};
use crate::actions;
use crate::analytics::{Analytics, AnalyticsEvent};
use crate::context::{Context, Settings};
use crate::db::{Db, args};
use crate::models::{self, Organization, Project, Table, flags};
use crate::receivers::onboarding::task;
use crate::signals::{Event, ModelName, SiloMode, first_event_received};

fn event(minified: bool) -> Event {
    Event {
        id: "abc".into(),
        platform: Some("python".into()),
        has_minified_stack_trace: minified,
    }
}

fn new_project(ctx: &Context, db: &Db, organization_id: i64, slug: &str) -> i64 {
    db.transaction(|tx| {
        let mut project = Project {
            id: None,
            organization_id,
            slug: slug.into(),
            platform: None,
            flags: 0,
            first_event: false,
        };
        models::save(ctx, tx, &mut project)?;
        Ok(project.id.expect("saved"))
    })
    .unwrap()
}

/// The project of the organisation's `task`, if the task is complete and has one.
fn task_project(db: &Db, organization_id: i64, task: &str) -> Option<i64> {
    db.transaction(|tx| {
        Ok(tx
            .query_opt::<Option<i64>>(
                "SELECT project_id FROM sentry_organizationonboardingtask \
                 WHERE organization_id = ?1 AND task = ?2 AND status = 'complete'",
                args![organization_id, task],
            )?
            .flatten())
    })
    .unwrap()
}

fn count(ctx: &Context, name: &str) -> usize {
    ctx.analytics.names().iter().filter(|n| **n == name).count()
}

#[test]
fn an_organizations_first_event_completes_first_event_and_records_both_events() {
    let (ctx, db) = installed();
    actions::receive_event(&ctx, &db, 1, &event(false)).unwrap();
    assert_eq!(task_project(&db, 1, task::FIRST_EVENT), Some(1));
    assert!(
        ctx.analytics
            .events()
            .contains(&AnalyticsEvent::FirstEventForProjectSent {
                user_id: 1,
                organization_id: 1,
                project_id: 1,
                platform: Some("python".into()),
            })
    );
    assert!(
        ctx.analytics
            .events()
            .contains(&AnalyticsEvent::FirstEventSent {
                user_id: 1,
                organization_id: 1,
                project_id: 1,
            })
    );
}

#[test]
fn a_second_projects_first_event_records_only_the_project_event() {
    let (ctx, db) = installed();
    actions::receive_event(&ctx, &db, 1, &event(false)).unwrap();
    let second = new_project(&ctx, &db, 1, "web");
    actions::receive_event(&ctx, &db, second, &event(false)).unwrap();
    assert_eq!(count(&ctx, "first_event_for_project.sent"), 2);
    assert_eq!(count(&ctx, "first_event.sent"), 1);
    assert_eq!(task_project(&db, 1, task::FIRST_EVENT), Some(1));
}

#[test]
fn a_project_whose_first_event_was_recorded_does_not_signal_again() {
    let (ctx, db) = installed();
    actions::receive_event(&ctx, &db, 1, &event(false)).unwrap();
    actions::receive_event(&ctx, &db, 1, &event(false)).unwrap();
    assert_eq!(count(&ctx, "first_event_for_project.sent"), 1);
}

#[test]
fn an_organization_without_owner_records_nothing_and_logs_why() {
    let (ctx, db) = fresh();
    let organization_id = db
        .transaction(|tx| {
            let mut organization = Organization {
                id: None,
                slug: "orphan".into(),
                name: "Orphan".into(),
            };
            models::save(&ctx, tx, &mut organization)?;
            Ok(organization.id.expect("saved"))
        })
        .unwrap();
    let project_id = new_project(&ctx, &db, organization_id, "web");
    actions::receive_event(&ctx, &db, project_id, &event(false)).unwrap();
    assert_eq!(rows(&db, "sentry_organizationonboardingtask"), 0);
    assert!(ctx.analytics.events().is_empty());
    assert!(
        ctx.console
            .lines()
            .iter()
            .any(|line| line.contains("has no owner")),
        "{:#?}",
        ctx.console.lines()
    );
}

#[test]
fn set_project_flag_and_signal_sets_the_flag_and_signals_once() {
    let (ctx, db) = installed();
    assert!(actions::receive_transaction(&ctx, &db, 1).unwrap());
    assert!(!actions::receive_transaction(&ctx, &db, 1).unwrap());
    let project = db
        .transaction(|tx| Ok(Project::load(tx, 1)?.unwrap()))
        .unwrap();
    assert_eq!(
        project.flags & flags::HAS_TRANSACTIONS,
        flags::HAS_TRANSACTIONS
    );
    assert_eq!(count(&ctx, "first_transaction.sent"), 1);
    assert_eq!(task_project(&db, 1, task::FIRST_TRANSACTION), Some(1));
}

#[test]
fn compare_and_set_records_the_minified_stack_trace_event_once_under_two_writers() {
    let directory = std::env::temp_dir().join(format!(
        "signals-e3-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&directory).unwrap();
    let path = directory.join("race.sqlite3");
    let _ = std::fs::remove_file(&path);
    let ctx = Context::new(Settings::default(), &[]);
    actions::upgrade(&ctx, &Db::open(&path).unwrap(), SiloMode::Monolith, false).unwrap();
    // Both connections are opened before the threads start, so nothing can fail before the
    // barrier and leave the other thread waiting at it.
    let connections = [Db::open(&path).unwrap(), Db::open(&path).unwrap()];
    let start = Barrier::new(2);
    std::thread::scope(|scope| {
        for db in connections {
            let (ctx, start) = (&ctx, &start);
            scope.spawn(move || {
                start.wait();
                for _ in 0..20 {
                    actions::receive_event(ctx, &db, 1, &event(true)).unwrap();
                }
            });
        }
    });
    assert_eq!(
        count(
            &ctx,
            "first_event_with_minified_stack_trace_for_project.sent"
        ),
        1
    );
    let _ = std::fs::remove_dir_all(&directory);
}

#[test]
fn raise_on_send_makes_the_failing_receiver_raise_out_of_send_robust() {
    let (ctx, db) = installed();
    ctx.analytics.set_down(true);
    let _raise = ::signals::testing::raise_on_send();
    let raised = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        actions::receive_event(&ctx, &db, 1, &event(true))
    }));
    let payload = raised.unwrap_err();
    let message = payload.downcast_ref::<String>().unwrap();
    assert!(
        message.contains("onboarding::record_event_with_first_minified_stack_trace_for_project"),
        "{message}"
    );
    assert!(
        message.contains("analytics backend unavailable"),
        "{message}"
    );
}

/// An event's name and fields.
type Recorded = (String, BTreeMap<String, String>);

/// Runs `f` and returns the `tracing` events it emitted on this thread.
fn record_events(f: impl FnOnce()) -> Vec<Recorded> {
    let recorder = Recorder::default();
    super::with_subscriber(recorder.clone(), f);
    recorder.0.lock().unwrap().clone()
}

/// Records every event's name and fields.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Recorded>>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
}

impl tracing::Subscriber for Recorder {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        self.0
            .lock()
            .unwrap()
            .push((event.metadata().name().into(), fields));
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn a_failing_analytics_backend_is_logged_as_signal_failure_and_the_event_is_processed() {
    let (ctx, db) = installed();
    ctx.analytics.set_down(true);
    let events = record_events(|| {
        actions::receive_event(&ctx, &db, 1, &event(true)).unwrap();
    });
    let failure = events
        .iter()
        .find(|(name, _)| name == "signal.failure")
        .expect("a signal.failure event");
    assert_eq!(failure.1["signal"], "event_processed");
    assert_eq!(
        failure.1["receiver"],
        "sentry::receivers::onboarding::record_event_with_first_minified_stack_trace_for_project"
    );
    assert!(failure.1["error"].contains("analytics backend unavailable"));
    let project = db
        .transaction(|tx| Ok(Project::load(tx, 1)?.unwrap()))
        .unwrap();
    assert!(project.first_event, "the event was processed");
}

/// The effects of a first event that are exactly once: the task row, the adoption row, and
/// each analytics event.
fn first_event_effects(ctx: &Context, db: &Db) -> (i64, i64, usize, usize) {
    (
        rows(db, "sentry_organizationonboardingtask"),
        rows(db, "sentry_featureadoption"),
        count(ctx, "first_event_for_project.sent"),
        count(ctx, "first_event.sent"),
    )
}

#[test]
fn with_analytics_down_the_first_event_waits_and_once_it_is_back_each_effect_exists_once() {
    let (ctx, db) = installed();
    let before = rows(&db, "sentry_organizationonboardingtask");
    ctx.analytics.set_down(true);
    let mut drained = Drained::default();
    let events = record_events(|| {
        drained = actions::receive_event(&ctx, &db, 1, &event(false)).unwrap();
    });
    assert_eq!((drained.delivered, drained.failed), (0, 1));
    let failure = events
        .iter()
        .find(|(name, _)| name == "outbox.failure")
        .expect("an outbox.failure event");
    assert_eq!(failure.1["signal"], "first_event_received");
    assert!(failure.1["error"].contains("analytics backend unavailable"));
    // Nothing is recorded, and nothing is lost: the message waits for its retry.
    assert_eq!(first_event_effects(&ctx, &db), (before, 0, 0, 0));
    assert_eq!(rows(&db, "signals_outbox_message"), 1);

    // Down for two more attempts, then back.
    ctx.analytics.set_down(false);
    for attempt in 2..=4 {
        if attempt < 4 {
            ctx.analytics.fail_next(1);
        }
        let shard = db.outbox().status().unwrap().shards.remove(0).shard;
        db.outbox().retry_shard(&shard).unwrap();
        let drained = db.worker(&ctx).unwrap().drain_once().unwrap();
        assert_eq!(
            drained.delivered,
            usize::from(attempt == 4),
            "attempt {attempt}"
        );
    }
    assert_eq!(first_event_effects(&ctx, &db), (before + 1, 1, 1, 1));
    assert_eq!(task_project(&db, 1, task::FIRST_EVENT), Some(1));
    assert_eq!(rows(&db, "signals_outbox_message"), 0);
}

/// Where `a_process_aborted_before_the_first_events_commit_...` tells its child process what
/// to do: the directory of the database and the analytics journal.
const ABORT_DIR: &str = "SENTRY_E3_ABORT_DIR";

/// Runs after the other receivers of a first event: in the child process, the process dies
/// here, after their effects and before the delivery commits.
#[::signals::receiver(signal = first_event_received, sender = ModelName::Project, priority = -100)]
fn abort_in_the_child_process() {
    if std::env::var_os(ABORT_DIR).is_some() {
        std::process::abort();
    }
}

/// The child's part (it does nothing in an ordinary test run): a first event, in the database
/// its parent prepared, with a journaled analytics backend.
#[test]
fn child_receives_a_first_event_and_aborts() {
    let Some(directory) = std::env::var_os(ABORT_DIR) else {
        return;
    };
    let directory = std::path::PathBuf::from(directory);
    let ctx = Context {
        analytics: Arc::new(Analytics::journaled(&directory.join("analytics.log")).unwrap()),
        ..Context::new(Settings::default(), &[])
    };
    let db = Db::open(&directory.join("sentry.sqlite3")).unwrap();
    let _ = actions::receive_event(&ctx, &db, 1, &event(false));
    unreachable!("the abort receiver ends the process");
}

/// How many times the journal recorded event `name`.
fn journaled(path: &std::path::Path, name: &str) -> usize {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|line| line.ends_with(&format!("\t{name}")))
        .count()
}

#[test]
fn a_process_aborted_before_the_first_events_commit_redelivers_and_each_effect_exists_once() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("sentry.sqlite3");
    let journal = directory.path().join("analytics.log");
    let before = {
        let db = Db::open(&path).unwrap();
        let ctx = Context::new(Settings::default(), &[]);
        actions::upgrade(&ctx, &db, SiloMode::Monolith, false).unwrap();
        rows(&db, "sentry_organizationonboardingtask")
    };

    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "tests::e3_onboarding::child_receives_a_first_event_and_aborts",
            "--test-threads=1",
        ])
        .env(ABORT_DIR, directory.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the child aborts: {status:?}");
    // The analytics service kept what the child sent; the database took nothing back.
    assert_eq!(journaled(&journal, "first_event_for_project.sent"), 1);
    assert_eq!(journaled(&journal, "first_event.sent"), 1);
    let db = Db::open(&path).unwrap();
    assert_eq!(rows(&db, "sentry_organizationonboardingtask"), before);
    assert_eq!(rows(&db, "sentry_featureadoption"), 0);
    assert_eq!(rows(&db, "signals_outbox_message"), 1, "the message stays");

    // Redelivered (the abort used its first attempt, whose backoff `retry` skips).
    let ctx = Context {
        analytics: Arc::new(Analytics::journaled(&journal).unwrap()),
        ..Context::new(Settings::default(), &[])
    };
    let shard = db.outbox().status().unwrap().shards.remove(0).shard;
    db.outbox().retry_shard(&shard).unwrap();
    let drained = db.worker(&ctx).unwrap().drain_once().unwrap();
    assert_eq!(drained.delivered, 1);
    assert_eq!(journaled(&journal, "first_event_for_project.sent"), 1);
    assert_eq!(journaled(&journal, "first_event.sent"), 1);
    assert_eq!(rows(&db, "sentry_organizationonboardingtask"), before + 1);
    assert_eq!(rows(&db, "sentry_featureadoption"), 1);
    assert_eq!(rows(&db, "signals_outbox_message"), 0);
}
