//! The outbox's semantics against real SQLite files: at least once, coalescing, order, backoff,
//! dead letters, pauses, the lent transaction, tombstones, migrations and diagnostics.
#![allow(missing_docs, non_upper_case_globals)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use signals::outbox::{
    Delivery, Drained, Enqueue, Explanation, InTransaction, ManualClock, Outbox, OutboxError,
    Pause, Shard, Worker, maybe_process_tombstone, record_tombstone,
};
use signals::{receiver, signal};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Category {
    MemberUpdate,
    Flaky,
    Audit,
    Nobody,
    Panics,
    EndsTransaction,
    Forward,
    NeedsState,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum Scope {
    Organization,
}

/// A payload whose field is named as `Delivered`'s own (private) one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Call {
    pub args: Vec<i64>,
    pub test: String,
}

signal! {
    pub static called: durable Signal<Call, sender = Category>;
}

#[receiver(signal = called, sender = Category::MemberUpdate)]
fn record_call(args: &[i64], test: &str, delivery: &Delivery<'_>) {
    SEEN.lock().unwrap().push((
        test.to_owned(),
        args.iter().sum(),
        0,
        delivery.attempt(),
        delivery.message_id(),
    ));
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Change {
    pub object: i64,
    pub version: u32,
    pub test: String,
}

signal! {
    pub static changed: durable Signal<Change, sender = Category>;
}

/// One delivery a receiver saw: (test, object, version, attempt, message id).
type Seen = (String, i64, u32, u32, i64);
/// What receivers saw, per test (tests run in parallel: each filters by its own name).
static SEEN: Mutex<Vec<Seen>> = Mutex::new(Vec::new());
/// How many more times `flaky` fails, per test.
static FAILS: Mutex<Vec<(String, u32)>> = Mutex::new(Vec::new());

fn seen(test: &str) -> Vec<(i64, u32, u32, i64)> {
    SEEN.lock()
        .unwrap()
        .iter()
        .filter(|(t, ..)| t == test)
        .map(|(_, object, version, attempt, id)| (*object, *version, *attempt, *id))
        .collect()
}

#[receiver(signal = changed, sender = Category::MemberUpdate)]
fn record(object: i64, version: u32, test: &str, delivery: &Delivery<'_>) -> rusqlite::Result<()> {
    SEEN.lock().unwrap().push((
        test.to_owned(),
        object,
        version,
        delivery.attempt(),
        delivery.message_id(),
    ));
    delivery.transaction().execute(
        "INSERT INTO effect (test, object, version) VALUES (?1, ?2, ?3)",
        rusqlite::params![test, object, version],
    )?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
#[error("the backend is down")]
pub struct Down;

#[receiver(signal = changed, sender = Category::Flaky)]
fn flaky(object: i64, test: &str, delivery: &Delivery<'_>) -> Result<(), Down> {
    // Written first: a failure must roll it back.
    delivery
        .transaction()
        .execute(
            "INSERT INTO effect (test, object, version) VALUES (?1, ?2, 0)",
            rusqlite::params![test, object],
        )
        .unwrap();
    let mut fails = FAILS.lock().unwrap();
    if let Some((_, left)) = fails.iter_mut().find(|(t, _)| t == test) {
        if *left > 0 {
            *left -= 1;
            return Err(Down);
        }
    }
    SEEN.lock().unwrap().push((
        test.to_owned(),
        object,
        0,
        delivery.attempt(),
        delivery.message_id(),
    ));
    Ok(())
}

#[receiver(signal = changed, sender = Category::Panics)]
fn panics(delivery: &Delivery<'_>) {
    delivery
        .transaction()
        .execute(
            "INSERT INTO effect (test, object, version) VALUES ('panic', 0, 0)",
            [],
        )
        .unwrap();
    panic!("receiver bug");
}

#[receiver(signal = changed, sender = Category::EndsTransaction)]
fn ends_transaction(delivery: &Delivery<'_>) -> rusqlite::Result<()> {
    delivery.transaction().execute_batch("COMMIT")
}

/// Re-emits its message to `record`, in shard 2, from inside its delivery; then fails if the
/// test asked it to, which must take the follow-up back.
#[receiver(signal = changed, sender = Category::Forward)]
fn forward(object: i64, test: &str, delivery: &Delivery<'_>) -> Result<(), OutboxError> {
    let args = Change {
        object,
        version: 2,
        test: test.to_owned(),
    };
    changed
        .enqueue(delivery, &Category::MemberUpdate, &args)
        .shard(Scope::Organization, 2)
        .write()?;
    let mut fails = FAILS.lock().unwrap();
    if let Some((_, left)) = fails.iter_mut().find(|(t, _)| t == test) {
        if *left > 0 {
            *left -= 1;
            return Err(OutboxError::NoSignals);
        }
    }
    Ok(())
}

/// What a worker lends its deliveries in `state_is_lent_to_receivers_by_type`.
struct Tally(AtomicU32);

#[receiver(signal = changed, sender = Category::NeedsState)]
fn needs_state(delivery: &Delivery<'_>) -> Result<(), OutboxError> {
    delivery.state::<Tally>()?.0.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

/// Makes `flaky` fail `times` more times in `test`.
fn fail(test: &str, times: u32) {
    let mut fails = FAILS.lock().unwrap();
    match fails.iter_mut().find(|(t, _)| t == test) {
        Some((_, left)) => *left += times,
        None => fails.push((test.to_owned(), times)),
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    outbox: Outbox,
    conn: rusqlite::Connection,
    clock: ManualClock,
    test: &'static str,
}

impl Fixture {
    fn new(test: &'static str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at(1_700_000_000_000);
        let outbox = Outbox::builder(dir.path().join("app.db"))
            .clock(clock.clone())
            .open()
            .unwrap();
        let conn = outbox.connect().unwrap();
        conn.execute_batch("CREATE TABLE effect (test TEXT, object INTEGER, version INTEGER)")
            .unwrap();
        Self {
            _dir: dir,
            outbox,
            conn,
            clock,
            test,
        }
    }

    fn worker(&self) -> Worker {
        Worker::new(&self.outbox)
            .unwrap()
            .signal(&changed)
            .max_attempts(5)
    }

    fn enqueue(
        &mut self,
        category: Category,
        shard: i64,
        object: Option<i64>,
        version: u32,
    ) -> i64 {
        let tx = self.conn.transaction().unwrap();
        let args = Change {
            object: object.unwrap_or(-1),
            version,
            test: self.test.to_owned(),
        };
        let pending = changed
            .enqueue(&tx, &category, &args)
            .shard(Scope::Organization, shard);
        let pending = match object {
            Some(object) => pending.object(object),
            None => pending,
        };
        let id = pending.write().unwrap().ids().next().unwrap();
        tx.commit().unwrap();
        id
    }

    /// Writes a `changed` message of `category` (arguments `object` and `version`, never
    /// coalesced) to shard `(scope, shard)` of `destination` (none if empty), in a transaction
    /// of its own; returns its id.
    fn enqueue_at(
        &mut self,
        category: Category,
        (destination, scope, shard): (&str, &str, i64),
        object: i64,
        version: u32,
    ) -> i64 {
        let tx = self.conn.transaction().unwrap();
        let args = Change {
            object,
            version,
            test: self.test.to_owned(),
        };
        let pending = changed.enqueue(&tx, &category, &args).shard(scope, shard);
        let pending = if destination.is_empty() {
            pending
        } else {
            pending.to([destination])
        };
        let id = pending.write().unwrap().ids().next().unwrap();
        tx.commit().unwrap();
        id
    }

    fn count(&self, sql: &str) -> i64 {
        self.conn.query_row(sql, [], |row| row.get(0)).unwrap()
    }

    fn waiting(&self) -> i64 {
        self.count("SELECT count(*) FROM signals_outbox_message")
    }

    fn effects(&self) -> i64 {
        self.conn
            .query_row(
                "SELECT count(*) FROM effect WHERE test = ?1",
                [self.test],
                |row| row.get(0),
            )
            .unwrap()
    }
}

#[test]
fn a_rolled_back_transaction_leaves_no_message() {
    let mut fx = Fixture::new("rollback");
    let tx = fx.conn.transaction().unwrap();
    let args = Change {
        object: 1,
        version: 1,
        test: fx.test.to_owned(),
    };
    changed
        .enqueue(&tx, &Category::MemberUpdate, &args)
        .write()
        .unwrap();
    drop(tx); // rolled back
    assert_eq!(fx.waiting(), 0);
    assert_eq!(fx.worker().drain_once().unwrap().delivered, 0);
}

#[test]
fn a_message_is_delivered_after_commit_with_its_id_and_attempt_and_removed() {
    let mut fx = Fixture::new("deliver");
    let id = fx.enqueue(Category::MemberUpdate, 1, None, 1);
    assert_eq!(fx.outbox.explain(id).unwrap(), Explanation::Due);
    let drained = fx.worker().drain_once().unwrap();
    assert_eq!((drained.delivered, drained.removed), (1, 1));
    assert_eq!(seen(fx.test), [(-1, 1, 1, id)]);
    assert_eq!(fx.waiting(), 0);
    assert_eq!(fx.effects(), 1);
    assert_eq!(fx.outbox.explain(id).unwrap(), Explanation::Unknown);
}

#[test]
fn a_failing_delivery_keeps_the_message_rolls_back_its_writes_and_backs_off_doubling() {
    let mut fx = Fixture::new("backoff");
    fail(fx.test, 3);
    let id = fx.enqueue(Category::Flaky, 1, None, 1);
    let mut worker = fx.worker();
    for (attempt, delay_s) in [(1, 1), (2, 2), (3, 4)] {
        let drained = worker.drain_once().unwrap();
        assert_eq!(drained.failed, 1, "attempt {attempt} fails");
        assert_eq!(fx.waiting(), 1, "the message stays");
        assert_eq!(
            fx.effects(),
            0,
            "the failed delivery's write was rolled back"
        );
        match fx.outbox.explain(id).unwrap() {
            Explanation::Scheduled {
                in_ms,
                attempts,
                last_error,
                ..
            } => {
                assert_eq!(in_ms, delay_s * 1000, "attempt {attempt}'s backoff");
                assert_eq!(attempts, attempt);
                assert!(last_error.unwrap().contains("the backend is down"));
            }
            other => panic!("attempt {attempt}: {other:?}"),
        }
        // Not due before its backoff has passed.
        fx.clock.advance(Duration::from_millis(
            u64::try_from(delay_s).unwrap() * 1000 - 1,
        ));
        assert_eq!(worker.drain_once().unwrap(), Drained::default());
        fx.clock.advance(Duration::from_millis(1));
    }
    let drained = worker.drain_once().unwrap();
    assert_eq!(drained.delivered, 1);
    assert_eq!(
        seen(fx.test),
        [(-1, 0, 4, id)],
        "the fourth attempt succeeded"
    );
    assert_eq!(
        fx.effects(),
        1,
        "only the successful delivery's write stayed"
    );
    assert_eq!(fx.waiting(), 0);
    assert_eq!(
        worker.drain_once().unwrap(),
        Drained::default(),
        "converged"
    );
}

#[test]
fn the_backoff_is_capped() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(0);
    let outbox = Outbox::builder(dir.path().join("app.db"))
        .clock(clock.clone())
        .max_delay(Duration::from_secs(5))
        .open()
        .unwrap();
    let mut conn = outbox.connect().unwrap();
    conn.execute_batch("CREATE TABLE effect (test TEXT, object INTEGER, version INTEGER)")
        .unwrap();
    fail("cap", 100);
    let tx = conn.transaction().unwrap();
    let args = Change {
        object: 1,
        version: 1,
        test: "cap".into(),
    };
    let id = changed
        .enqueue(&tx, &Category::Flaky, &args)
        .write()
        .unwrap()
        .ids()
        .next()
        .unwrap();
    tx.commit().unwrap();
    let mut worker = Worker::new(&outbox)
        .unwrap()
        .signal(&changed)
        .max_attempts(100);
    let mut delays = Vec::new();
    for _ in 0..6 {
        assert_eq!(worker.drain_once().unwrap().failed, 1);
        let Explanation::Scheduled { in_ms, .. } = outbox.explain(id).unwrap() else {
            panic!()
        };
        delays.push(in_ms);
        clock.advance(Duration::from_millis(u64::try_from(in_ms).unwrap()));
    }
    assert_eq!(delays, [1000, 2000, 4000, 5000, 5000, 5000]);
}

#[test]
fn a_failing_shard_never_holds_the_others_back_and_its_later_messages_wait_in_order() {
    let mut fx = Fixture::new("isolation");
    fail(fx.test, 1);
    let failing = fx.enqueue(Category::Flaky, 10001, None, 1);
    let behind = fx.enqueue(Category::MemberUpdate, 10001, None, 2);
    let other = fx.enqueue(Category::MemberUpdate, 10002, None, 3);
    let mut worker = fx.worker();
    let drained = worker.drain_once().unwrap();
    assert_eq!((drained.delivered, drained.failed), (1, 1));
    assert_eq!(
        seen(fx.test),
        [(-1, 3, 1, other)],
        "the other shard was delivered"
    );
    assert_eq!(
        fx.outbox.explain(behind).unwrap(),
        Explanation::Behind { head: failing }
    );
    fx.clock.advance(Duration::from_secs(1));
    let drained = worker.drain_once().unwrap();
    assert_eq!(drained.delivered, 2);
    let ids: Vec<i64> = seen(fx.test).iter().map(|s| s.3).collect();
    assert_eq!(
        ids,
        [other, failing, behind],
        "its shard in order once the head succeeded"
    );
}

#[test]
fn messages_about_one_object_are_coalesced_newest_payload_first_appearance_order() {
    let mut fx = Fixture::new("coalesce");
    let a1 = fx.enqueue(Category::MemberUpdate, 1, Some(7), 1);
    let b = fx.enqueue(Category::MemberUpdate, 1, Some(8), 1);
    let a3 = fx.enqueue(Category::MemberUpdate, 1, Some(7), 3);
    assert!(a1 < b && b < a3);
    let drained = fx.worker().drain_once().unwrap();
    assert_eq!((drained.delivered, drained.removed), (2, 3));
    assert_eq!(
        seen(fx.test),
        [(7, 3, 1, a3), (8, 1, 1, b)],
        "object 7 once, with the newest payload, before 8 (its first message came first)"
    );
    assert_eq!(fx.waiting(), 0);
}

#[test]
fn after_max_attempts_a_message_is_parked_reported_and_its_shard_moves_on() {
    let mut fx = Fixture::new("park");
    fail(fx.test, 100);
    let poison = fx.enqueue(Category::Flaky, 1, None, 1);
    let next = fx.enqueue(Category::MemberUpdate, 1, None, 2);
    let mut worker = fx.worker(); // max_attempts 5
    let mut parked = 0;
    for attempt in 1..=5 {
        assert!(
            seen(fx.test).is_empty(),
            "nothing passes the poison message (attempt {attempt})"
        );
        parked += worker.drain_once().unwrap().parked;
        fx.clock.advance(Duration::from_secs(3600));
    }
    assert_eq!(parked, 1, "parked at its fifth failure");
    let Explanation::Parked { attempts, error } = fx.outbox.explain(poison).unwrap() else {
        panic!()
    };
    assert_eq!(attempts, 5);
    assert!(
        error.contains("gave up after 5 attempts") && error.contains("down"),
        "{error}"
    );
    let status = fx.outbox.status().unwrap();
    assert_eq!(status.parked.len(), 1);
    assert!(status.to_string().contains("1 parked"), "{status}");
    // The shard moved on, in the same drain.
    assert_eq!(seen(fx.test).last().unwrap().3, next);
    // Retried by hand once the cause is fixed.
    FAILS.lock().unwrap().retain(|(t, _)| *t != fx.test);
    fx.outbox.retry_message(poison).unwrap();
    assert_eq!(fx.outbox.explain(poison).unwrap(), Explanation::Due);
    assert_eq!(worker.drain_once().unwrap().delivered, 1);
    assert!(
        matches!(fx.outbox.retry_message(poison), Err(OutboxError::NoSuchMessage(id)) if id == poison)
    );
}

#[test]
fn a_pause_holds_a_category_or_a_shard_without_losing_its_messages() {
    let mut fx = Fixture::new("pause");
    let by_shard = Pause::shard(&changed, Scope::Organization, 1).unwrap();
    let by_category = Pause::category(&changed, &Category::MemberUpdate).unwrap();
    fx.outbox.pause(&by_shard).unwrap();
    let held = fx.enqueue(Category::MemberUpdate, 1, None, 1);
    let free = fx.enqueue(Category::Audit, 2, None, 1); // no receiver: delivered to nobody
    let mut worker = fx.worker();
    assert_eq!(worker.drain_once().unwrap().delivered, 1);
    assert_eq!(
        fx.outbox.explain(held).unwrap(),
        Explanation::Paused(by_shard.clone())
    );
    assert_eq!(
        fx.outbox.explain(free).unwrap(),
        Explanation::Unknown,
        "delivered, to nobody"
    );
    fx.outbox.pause(&by_category).unwrap();
    assert!(fx.outbox.resume(&by_shard).unwrap());
    assert_eq!(worker.drain_once().unwrap().delivered, 0);
    assert_eq!(
        fx.outbox.explain(held).unwrap(),
        Explanation::Paused(by_category.clone())
    );
    assert!(fx.outbox.resume(&by_category).unwrap());
    assert_eq!(worker.drain_once().unwrap().delivered, 1);
    assert_eq!(seen(fx.test).len(), 1);
}

#[test]
fn a_message_that_no_longer_decodes_is_parked_at_once_with_its_error() {
    let mut fx = Fixture::new("undecodable");
    let id = fx.enqueue(Category::MemberUpdate, 1, None, 1);
    fx.conn
        .execute(
            "UPDATE signals_outbox_message SET payload = '{\"renamed\": 1}' WHERE id = ?1",
            [id],
        )
        .unwrap();
    let drained = fx.worker().drain_once().unwrap();
    assert_eq!(drained.parked, 1);
    let Explanation::Parked { error, .. } = fx.outbox.explain(id).unwrap() else {
        panic!()
    };
    assert!(error.contains("arguments do not decode"), "{error}");
}

#[test]
fn flush_delivers_the_messages_written_and_those_before_them_but_not_later_ones() {
    let mut fx = Fixture::new("flush");
    let tx = fx.conn.transaction().unwrap();
    let args = Change {
        object: 1,
        version: 1,
        test: fx.test.to_owned(),
    };
    let enqueued = changed
        .enqueue(&tx, &Category::MemberUpdate, &args)
        .shard(Scope::Organization, 5)
        .to(["eu", "us"])
        .write()
        .unwrap();
    tx.commit().unwrap();
    assert_eq!(enqueued.ids().len(), 2, "one message per destination");
    let later = fx.enqueue(Category::MemberUpdate, 5, None, 2);
    let drained = fx.worker().flush(&enqueued).unwrap();
    assert_eq!(drained.delivered, 2);
    assert_eq!(
        fx.outbox.explain(later).unwrap(),
        Explanation::Due,
        "written after: not flushed"
    );
}

#[test]
fn tombstones_are_recorded_once() {
    let fx = Fixture::new("tombstone");
    fx.conn
        .execute_batch("CREATE TABLE integration (id INTEGER PRIMARY KEY, name TEXT)")
        .unwrap();
    fx.conn
        .execute("INSERT INTO integration VALUES (8, 'slack')", [])
        .unwrap();
    let load = |id: i64| {
        move |conn: &rusqlite::Connection| {
            conn.query_row("SELECT name FROM integration WHERE id = ?1", [id], |row| {
                row.get::<_, String>(0)
            })
        }
    };
    assert_eq!(
        maybe_process_tombstone(&fx.conn, "integration", 8, load(8))
            .unwrap()
            .as_deref(),
        Some("slack")
    );
    assert_eq!(
        maybe_process_tombstone(&fx.conn, "integration", 7, load(7)).unwrap(),
        None
    );
    assert!(
        !record_tombstone(&fx.conn, "integration", 7).unwrap(),
        "already recorded"
    );
    assert_eq!(fx.count("SELECT count(*) FROM signals_outbox_tombstone"), 1);
}

#[test]
fn migrations_apply_from_empty_and_from_the_previous_schema_and_refuse_a_newer_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    Outbox::builder(&path).open_at(1).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    assert_eq!(signals::outbox::schema::version(&conn).unwrap(), 1);
    conn.execute(
        "INSERT INTO signals_outbox_message (signal, scope, shard, category, payload, created_at)
         VALUES ('changed', 'x', 1, '\"Audit\"', '{}', 0)",
        [],
    )
    .unwrap();
    Outbox::builder(&path).open_at(2).unwrap();
    assert_eq!(signals::outbox::schema::version(&conn).unwrap(), 2);
    // Schema 2 counted attempts on messages: the shard of one tried twice is backing off.
    conn.execute_batch(
        "UPDATE signals_outbox_message SET attempts = 2;
         INSERT INTO signals_outbox_shard (signal, destination, scope, shard, due_at, delay_ms, claim)
         VALUES ('changed', '', 'x', 1, 0, 2000, 0);",
    )
    .unwrap();
    Outbox::open(&path).unwrap();
    assert_eq!(signals::outbox::schema::version(&conn).unwrap(), 3);
    let kept: i64 = conn
        .query_row("SELECT count(*) FROM signals_outbox_message", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(kept, 1, "the upgrades kept the waiting message");
    let attempts: u32 = conn
        .query_row("SELECT attempts FROM signals_outbox_shard", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(attempts, 2, "the shard took over its head's attempts");
    Outbox::open(&path).unwrap(); // idempotent
    conn.execute("UPDATE signals_outbox_schema SET version = 99", [])
        .unwrap();
    assert!(matches!(
        Outbox::open(&path),
        Err(OutboxError::SchemaTooNew {
            found: 99,
            known: 3
        })
    ));
}

#[test]
fn status_lists_waiting_shards_with_their_categories_and_state() {
    let mut fx = Fixture::new("status");
    fail(fx.test, 1);
    fx.enqueue(Category::Flaky, 1, None, 1);
    fx.enqueue(Category::MemberUpdate, 1, None, 1);
    fx.enqueue(Category::Nobody, 2, None, 1);
    fx.outbox
        .pause(&Pause::shard(&changed, Scope::Organization, 2).unwrap())
        .unwrap();
    fx.worker().drain_once().unwrap();
    let status = fx.outbox.status().unwrap();
    let text = status.to_string();
    assert_eq!(status.shards.len(), 2, "{text}");
    assert!(text.contains("0 due, 1 scheduled, 1 paused"), "{text}");
    assert!(
        text.contains("retry in 1000 ms") && text.contains("the backend is down"),
        "{text}"
    );
    assert_eq!(
        status.shards[0].shard,
        Shard {
            signal: "changed".into(),
            destination: String::new(),
            scope: "Organization".into(),
            id: 1
        }
    );
}

#[test]
fn a_panicking_receiver_is_a_failure_its_writes_roll_back_and_the_worker_carries_on() {
    let mut fx = Fixture::new("panic");
    let id = fx.enqueue(Category::Panics, 1, None, 1);
    let other = fx.enqueue(Category::MemberUpdate, 2, None, 1);
    let drained = fx.worker().drain_once().unwrap();
    assert_eq!((drained.delivered, drained.failed), (1, 1));
    assert_eq!(seen(fx.test).last().unwrap().3, other);
    assert_eq!(
        fx.count("SELECT count(*) FROM effect WHERE test = 'written before a panic'"),
        0
    );
    let Explanation::Scheduled { last_error, .. } = fx.outbox.explain(id).unwrap() else {
        panic!()
    };
    let error = last_error.unwrap();
    assert!(
        error.contains("panicked") && error.contains("receiver bug"),
        "{error}"
    );
}

#[test]
fn a_receiver_that_ends_the_delivery_transaction_is_an_error_that_names_it_and_keeps_the_message() {
    let mut fx = Fixture::new("ends_transaction");
    let id = fx.enqueue(Category::EndsTransaction, 1, None, 1);
    let error = fx.worker().drain_once().unwrap_err();
    assert!(
        matches!(&error, OutboxError::TransactionEnded { signal: "changed", message } if *message == id),
        "{error}"
    );
    assert!(
        error.to_string().contains("committed or rolled back"),
        "{error}"
    );
    assert_eq!(
        fx.waiting(),
        1,
        "the message stays, to be retried (and parked if it keeps doing it)"
    );
}

/// A receiver that commits the delivery transaction mid-round commits what the round's earlier
/// deliveries wrote: their messages' removals must be in it, or their effects would be
/// delivered again.
#[test]
fn a_receiver_ending_the_transaction_mid_round_leaves_the_earlier_deliveries_settled_once() {
    let mut fx = Fixture::new("ends_mid_round");
    // Shard 1 comes first in the walk: its delivery writes an effect, then shard 2's receiver
    // commits the transaction.
    let first = fx.enqueue(Category::MemberUpdate, 1, None, 1);
    fx.enqueue(Category::EndsTransaction, 2, None, 1);
    assert!(fx.worker().drain_once().is_err());
    let waiting_first: i64 = fx.count(&format!(
        "SELECT count(*) FROM signals_outbox_message WHERE id = {first}"
    ));
    assert_eq!(
        fx.effects() + waiting_first,
        1,
        "an effect without its removal is an effect delivered twice"
    );
    let pause = Pause::category(&changed, &Category::EndsTransaction).unwrap();
    fx.outbox.pause(&pause).unwrap();
    fx.clock.advance(Duration::from_secs(3_600));
    fx.worker().drain_once().unwrap();
    assert_eq!(fx.effects(), 1, "the effect happened once");
}

#[test]
fn retry_shard_makes_a_backing_off_shard_due_and_returns_its_parked_messages() {
    let mut fx = Fixture::new("retry_shard");
    fail(fx.test, 1);
    let failing = fx.enqueue(Category::Flaky, 1, None, 1);
    let undecodable = fx.enqueue(Category::MemberUpdate, 1, None, 2);
    let mut worker = fx.worker();
    assert_eq!(worker.drain_once().unwrap().failed, 1);
    fx.conn
        .execute(
            "UPDATE signals_outbox_message SET payload = 'null' WHERE id = ?1",
            [undecodable],
        )
        .unwrap();
    assert!(matches!(
        fx.outbox.explain(failing).unwrap(),
        Explanation::Scheduled { .. }
    ));
    let shard = fx.outbox.status().unwrap().shards[0].shard.clone();
    // Due again at once, without waiting out the backoff: the retry succeeds, and the
    // undecodable message behind it is parked.
    assert_eq!(fx.outbox.retry_shard(&shard).unwrap(), 0);
    let drained = worker.drain_once().unwrap();
    assert_eq!((drained.delivered, drained.parked), (1, 1));
    // Fixed by hand, it goes back to its shard.
    fx.conn
        .execute(
            "UPDATE signals_outbox_parked SET payload = '{\"object\": -1, \"version\": 2, \"test\": \"retry_shard\"}'",
            [],
        )
        .unwrap();
    assert_eq!(fx.outbox.retry_shard(&shard).unwrap(), 1);
    assert_eq!(fx.outbox.explain(undecodable).unwrap(), Explanation::Due);
    assert_eq!(worker.drain_once().unwrap().delivered, 1);
    assert_eq!(seen(fx.test).last().unwrap().3, undecodable);
}

#[test]
fn messages_enqueued_while_a_worker_thread_drains_are_each_delivered_once_in_order() {
    const MESSAGES: u32 = 300;
    let mut fx = Fixture::new("concurrent");
    let outbox = fx.outbox.clone();
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let worker = scope.spawn(|| {
            let mut worker = Worker::new(&outbox).unwrap().signal(&changed).batch(3);
            let mut delivered = 0;
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            // Drains while the writer writes, then until nothing is left.
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                delivered += worker.drain_once().unwrap().delivered;
                if finished && delivered == MESSAGES as usize {
                    return delivered;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "{delivered} of {MESSAGES} delivered after 60 s"
                );
            }
        });
        for version in 1..=MESSAGES {
            fx.enqueue(
                Category::MemberUpdate,
                i64::from(version % 3),
                None,
                version,
            );
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(worker.join().unwrap(), MESSAGES as usize);
    });
    let seen = seen(fx.test);
    assert_eq!(seen.len(), MESSAGES as usize, "each once");
    for shard in 0..3 {
        let versions: Vec<u32> = seen
            .iter()
            .map(|s| s.1)
            .filter(|v| v % 3 == shard)
            .collect();
        assert!(versions.is_sorted(), "shard {shard} in order: {versions:?}");
    }
    assert_eq!(fx.effects(), i64::from(MESSAGES));
    assert_eq!(fx.waiting(), 0);
}

#[test]
fn a_receiver_enqueues_in_its_delivery_and_the_follow_up_commits_or_rolls_back_with_it() {
    let mut fx = Fixture::new("forward");
    fx.enqueue(Category::Forward, 1, Some(5), 1);
    let drained = fx.worker().drain_once().unwrap();
    // The forward, then (in a later round of the same drain) the follow-up it wrote.
    assert_eq!(drained.delivered, 2, "{drained:?}");
    assert_eq!(seen(fx.test), [(5, 2, 1, seen(fx.test)[0].3)]);
    assert_eq!(fx.waiting(), 0);

    let mut fx = Fixture::new("forward-fails");
    fail(fx.test, 1);
    fx.enqueue(Category::Forward, 1, Some(5), 1);
    let drained = fx.worker().drain_once().unwrap();
    assert_eq!((drained.delivered, drained.failed), (0, 1), "{drained:?}");
    // The forward stays; the follow-up it wrote before failing went with its rollback.
    assert_eq!(fx.waiting(), 1);
    assert!(seen(fx.test).is_empty());
    fx.clock.advance(Duration::from_secs(1));
    assert_eq!(fx.worker().drain_once().unwrap().delivered, 2);
    assert_eq!(seen(fx.test).len(), 1, "the follow-up is written once");
}

/// A connection that claims a transaction and opens none.
struct Bare<'c>(&'c rusqlite::Connection);

impl InTransaction for Bare<'_> {
    fn connection(&self) -> &rusqlite::Connection {
        self.0
    }
}

/// A fan-out to no destination at all (a deployment with no regions yet) writes nothing; it is
/// not a message with no destination.
#[test]
fn a_fan_out_to_no_destinations_writes_no_message() {
    let mut fx = Fixture::new("no-destinations");
    let tx = fx.conn.transaction().unwrap();
    let args = Change {
        object: 1,
        version: 1,
        test: fx.test.to_owned(),
    };
    let enqueued = changed
        .enqueue(&tx, &Category::MemberUpdate, &args)
        .to(Vec::<String>::new())
        .write()
        .unwrap();
    tx.commit().unwrap();
    assert_eq!(enqueued.ids().len(), 0);
    assert_eq!(fx.waiting(), 0);
}

#[test]
fn enqueueing_outside_a_transaction_is_refused_and_writes_nothing() {
    let fx = Fixture::new("bare");
    let args = Change {
        object: 1,
        version: 1,
        test: fx.test.to_owned(),
    };
    let refused = changed
        .enqueue(&Bare(&fx.conn), &Category::MemberUpdate, &args)
        .write()
        .unwrap_err();
    assert!(
        matches!(refused, OutboxError::NoTransaction { signal: "changed" }),
        "{refused:?}"
    );
    assert_eq!(fx.waiting(), 0);
}

#[test]
fn state_is_lent_to_receivers_by_type_and_its_absence_is_a_failure_that_keeps_the_message() {
    let mut fx = Fixture::new("state");
    let id = fx.enqueue(Category::NeedsState, 1, None, 1);
    let drained = fx.worker().drain_once().unwrap();
    assert_eq!(drained.failed, 1, "no Tally given: {drained:?}");
    assert_eq!(fx.waiting(), 1);
    let reason = match fx.outbox.explain(id).unwrap() {
        Explanation::Scheduled { last_error, .. } => last_error.unwrap_or_default(),
        other => panic!("{other:?}"),
    };
    assert!(reason.contains("Tally"), "{reason}");

    let tally = Arc::new(Tally(AtomicU32::new(0)));
    fx.clock.advance(Duration::from_secs(1));
    let drained = fx.worker().state(tally.clone()).drain_once().unwrap();
    assert_eq!(drained.delivered, 1);
    assert_eq!(tally.0.load(Ordering::SeqCst), 1);
}

#[test]
fn a_payload_field_named_args_is_taken_by_name() {
    let mut fx = Fixture::new("args-field");
    let tx = fx.conn.transaction().unwrap();
    let call = Call {
        args: vec![2, 3],
        test: "args-field".into(),
    };
    let id = called
        .enqueue(&tx, &Category::MemberUpdate, &call)
        .write()
        .unwrap()
        .ids()
        .next()
        .unwrap();
    tx.commit().unwrap();
    let drained = Worker::new(&fx.outbox)
        .unwrap()
        .signal(&called)
        .drain_once()
        .unwrap();
    assert_eq!(drained.delivered, 1);
    assert_eq!(seen(fx.test), [(5, 0, 1, id)]);
}

/// Shards take turns when a round has room for fewer than wait (the worker walks them from
/// where its last round stopped, round to the start): under small and changing batches,
/// failures, backoffs and messages enqueued between drains, into shards before and after where
/// the walk stands, every message is delivered exactly once, each shard in order.
#[test]
fn under_small_batches_failures_and_new_messages_every_message_is_delivered_once_in_order() {
    let mut fx = Fixture::new("turns");
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move |bound: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % bound
    };
    let mut shard_of = HashMap::new();
    let mut worker = fx.worker().max_attempts(1_000).batch(2);
    let mut rounds_with_room_for_less = 0;
    for _ in 0..600 {
        match next(6) {
            0..=2 => {
                // 13 shard ids in two scopes and three destinations (the walk's order).
                let shard = i64::try_from(next(13)).unwrap();
                let scope = ["Organization", "User"][usize::try_from(next(2)).unwrap()];
                let destination = ["", "eu", "us"][usize::try_from(next(3)).unwrap()];
                let key = (destination, scope, shard);
                let id = fx.enqueue_at(Category::Flaky, key, -1, 0);
                shard_of.insert(id, key);
            }
            3 => {
                if next(4) == 0 {
                    fail(fx.test, 1);
                }
                let waiting = fx.count(
                    "SELECT count(*) FROM (SELECT DISTINCT destination, scope, shard \
                     FROM signals_outbox_message)",
                );
                rounds_with_room_for_less += usize::from(waiting > 2);
                worker.drain_once().unwrap();
            }
            4 => {
                let batch = usize::try_from(1 + next(3)).unwrap();
                fx.worker()
                    .max_attempts(1_000)
                    .batch(batch)
                    .drain_once()
                    .unwrap();
            }
            _ => fx.clock.advance(Duration::from_millis(next(3_000))),
        }
    }
    for _ in 0..20 {
        fx.clock.advance(Duration::from_secs(3_600));
        worker.drain_once().unwrap();
    }
    assert_eq!(fx.waiting(), 0, "everything was delivered");
    assert!(
        rounds_with_room_for_less > 20,
        "{rounds_with_room_for_less}"
    );
    let seen = seen(fx.test);
    let mut delivered: Vec<i64> = seen.iter().map(|&(.., id)| id).collect();
    let in_delivery_order = delivered.clone();
    delivered.sort_unstable();
    let mut enqueued: Vec<i64> = shard_of.keys().copied().collect();
    enqueued.sort_unstable();
    assert_eq!(delivered, enqueued, "each message once");
    let shards: std::collections::HashSet<_> = shard_of.values().collect();
    assert!(shards.len() > 50, "{} shards", shards.len());
    for shard in shards {
        let order: Vec<i64> = in_delivery_order
            .iter()
            .copied()
            .filter(|id| shard_of[id] == *shard)
            .collect();
        assert!(order.is_sorted(), "shard {shard:?} out of order: {order:?}");
    }
}

/// A worker walks the shards in key order (destination, scope, id), each round going on from
/// where the last stopped: with one message in each of 12 shards over three destinations and
/// two scopes, a drain delivers them in that order, whatever the batch.
#[test]
fn a_worker_walks_the_shards_in_key_order_round_and_round() {
    for batch in [100, 5, 1] {
        let test = match batch {
            100 => "walk-100",
            5 => "walk-5",
            _ => "walk-1",
        };
        let mut fx = Fixture::new(test);
        let mut keys = Vec::new();
        for destination in ["", "eu", "us"] {
            for scope in ["Organization", "User"] {
                for shard in [1, 2] {
                    keys.push((destination, scope, shard));
                }
            }
        }
        // Enqueued in reverse, so that id order is not key order.
        for (index, &key) in keys.iter().enumerate().rev() {
            fx.enqueue_at(
                Category::MemberUpdate,
                key,
                i64::try_from(index).unwrap(),
                1,
            );
        }
        let mut worker = fx.worker().batch(batch);
        assert_eq!(worker.drain_once().unwrap().delivered, 12, "batch {batch}");
        let order: Vec<i64> = seen(test).iter().map(|&(object, ..)| object).collect();
        assert_eq!(order, (0..12).collect::<Vec<_>>(), "batch {batch}");
    }
}

/// A claim is written from the shard's key as read (one statement for a round's shards): a
/// scope with quotes and accents, and the extreme shard ids, are claimed, backed off and
/// delivered as any other.
#[test]
fn shards_with_unusual_keys_are_claimed_backed_off_and_delivered() {
    let mut fx = Fixture::new("unusual-keys");
    let mut ids = Vec::new();
    for shard in [i64::MIN, -1, 0, i64::MAX] {
        let key = ("région \"nord\"", "l'\"équipe\" \\ 🚀", shard);
        ids.push(fx.enqueue_at(Category::Flaky, key, shard, 0));
    }
    fail(fx.test, 4);
    let mut worker = fx.worker();
    assert_eq!(worker.drain_once().unwrap().failed, 4);
    for &id in &ids {
        match fx.outbox.explain(id).unwrap() {
            Explanation::Scheduled { attempts, .. } => assert_eq!(attempts, 1, "message {id}"),
            other => panic!("message {id}: {other:?}"),
        }
    }
    fx.clock.advance(Duration::from_secs(1));
    assert_eq!(worker.drain_once().unwrap().delivered, 4);
    assert_eq!(fx.waiting(), 0);
}
