//! Real processes on one SQLite file: a worker aborted (not unwound) between its receivers'
//! success and the commit redelivers, with a transactional effect still single; two worker
//! processes drain one file with every message delivered once and each shard in order.
//!
//! Each test starts this test binary again as the child process (`child` below, which does
//! nothing unless its environment names a role).
#![allow(missing_docs, non_upper_case_globals)]

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use signals::outbox::{
    Clock, Delivery, Enqueue, Explanation, ManualClock, Outbox, SystemClock, Worker,
};
use signals::{receiver, signal};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Category {
    Job,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub shard: i64,
    pub seq: i64,
}

signal! {
    pub static job: durable Signal<Job, sender = Category>;
}

const ROLE: &str = "SIGNALS_OUTBOX_TEST_ROLE";
const DB: &str = "SIGNALS_OUTBOX_TEST_DB";

/// The effect: a row in the delivery's transaction, and a line in a file outside it (an
/// effect the database cannot take back).
#[receiver(signal = job, sender = Category::Job, priority = 10)]
fn effect(shard: i64, seq: i64, delivery: &Delivery<'_>) -> rusqlite::Result<()> {
    delivery.transaction().execute(
        "INSERT INTO delivered (shard, seq, pid, attempt) VALUES (?1, ?2, ?3, ?4)",
        rusqlite::params![shard, seq, std::process::id(), delivery.attempt()],
    )?;
    if let Ok(db) = std::env::var(DB) {
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(format!("{db}.external"))
            .unwrap();
        writeln!(log, "{shard} {seq}").unwrap();
    }
    Ok(())
}

/// Runs after `effect`: in the role `abort`, the process dies here, after the receivers'
/// success and before the removal commits.
#[receiver(signal = job, sender = Category::Job)]
fn crash_after_success() {
    if std::env::var(ROLE).as_deref() == Ok("abort") {
        std::process::abort();
    }
}

fn setup(path: &std::path::Path) -> rusqlite::Connection {
    let outbox = Outbox::open(path).unwrap();
    let conn = outbox.connect().unwrap();
    conn.execute_batch(
        "CREATE TABLE delivered (shard INTEGER, seq INTEGER, pid INTEGER, attempt INTEGER)",
    )
    .unwrap();
    conn
}

fn enqueue(conn: &mut rusqlite::Connection, jobs: impl IntoIterator<Item = (i64, i64)>) {
    let tx = conn.transaction().unwrap();
    for (shard, seq) in jobs {
        job.enqueue(&tx, &Category::Job, &Job { shard, seq })
            .shard("org", shard)
            .write()
            .unwrap();
    }
    tx.commit().unwrap();
}

fn spawn(role: &str, path: &std::path::Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .env(DB, path)
        .spawn()
        .unwrap()
}

/// The child process's entry: a no-op as an ordinary test.
#[test]
fn child() {
    let (Ok(role), Ok(db)) = (std::env::var(ROLE), std::env::var(DB)) else {
        return;
    };
    let outbox = Outbox::open(&db).unwrap();
    let mut worker = Worker::new(&outbox).unwrap().signal(&job).batch(7);
    match role.as_str() {
        "abort" => {
            worker.drain_once().unwrap();
            unreachable!("the receiver aborts the process");
        }
        "drain" => {
            // Drain until the other worker and this one have emptied the outbox.
            let conn = outbox.connect().unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(120);
            loop {
                worker.drain_once().unwrap();
                let left: i64 = conn
                    .query_row("SELECT count(*) FROM signals_outbox_message", [], |r| {
                        r.get(0)
                    })
                    .unwrap();
                if left == 0 {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "{left} messages still waiting after 120 s"
                );
            }
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn a_worker_aborted_after_its_receivers_succeeded_redelivers_with_a_single_transactional_effect() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let mut conn = setup(&path);
    enqueue(&mut conn, [(1, 1)]);

    let status = spawn("abort", &path).wait().unwrap();
    assert!(!status.success(), "the child aborted: {status}");
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM delivered", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        rows, 0,
        "the aborted delivery's transactional effect was rolled back"
    );
    let external = std::fs::read_to_string(format!("{}.external", path.display())).unwrap();
    assert_eq!(
        external.lines().count(),
        1,
        "the external effect happened once"
    );

    // The attempt was charged and the shard backed off before the crash: a clock an hour
    // ahead finds it due again.
    let clock = ManualClock::at(SystemClock.now_ms() + 2 * 3_600_000);
    let outbox = Outbox::builder(&path).clock(clock).open().unwrap();
    let mut worker = Worker::new(&outbox).unwrap().signal(&job);
    assert_eq!(worker.drain_once().unwrap().delivered, 1, "redelivered");
    let (rows, attempt): (i64, u32) = conn
        .query_row("SELECT count(*), max(attempt) FROM delivered", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(
        (rows, attempt),
        (1, 2),
        "one transactional effect, by the second attempt"
    );
    let left: i64 = conn
        .query_row("SELECT count(*) FROM signals_outbox_message", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(left, 0);
}

#[test]
fn two_worker_processes_deliver_every_message_once_and_each_shard_in_order() {
    const SHARDS: i64 = 20;
    const PER_SHARD: i64 = 100;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let mut conn = setup(&path);
    enqueue(
        &mut conn,
        (1..=PER_SHARD).flat_map(|seq| (0..SHARDS).map(move |shard| (shard, seq))),
    );

    let children = [spawn("drain", &path), spawn("drain", &path)];
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let mut statement = conn
        .prepare("SELECT shard, seq, pid FROM delivered ORDER BY rowid")
        .unwrap();
    let delivered: Vec<(i64, i64, u32)> = statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        delivered.len(),
        usize::try_from(SHARDS * PER_SHARD).unwrap(),
        "each message exactly once"
    );
    let mut next = vec![1; usize::try_from(SHARDS).unwrap()];
    for (shard, seq, pid) in &delivered {
        let expected = &mut next[usize::try_from(*shard).unwrap()];
        assert_eq!(seq, expected, "shard {shard} out of order (process {pid})");
        *expected += 1;
    }
    let pids: std::collections::BTreeSet<u32> = delivered.iter().map(|d| d.2).collect();
    eprintln!("delivered by {} processes: {pids:?}", pids.len());
}

#[test]
fn a_message_that_kills_its_worker_every_time_is_parked_once_its_attempts_are_used() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let mut conn = setup(&path);
    enqueue(&mut conn, [(1, 1)]);
    let id: i64 = conn
        .query_row("SELECT id FROM signals_outbox_message", [], |r| r.get(0))
        .unwrap();
    // Two workers die delivering it; each claim charged an attempt first.
    for crash in 1..=2 {
        assert!(
            !spawn("abort", &path).wait().unwrap().success(),
            "crash {crash}"
        );
        conn.execute("UPDATE signals_outbox_shard SET due_at = 0", [])
            .unwrap();
    }
    let clock = ManualClock::at(SystemClock.now_ms());
    let outbox = Outbox::builder(&path).clock(clock).open().unwrap();
    let mut worker = Worker::new(&outbox).unwrap().signal(&job).max_attempts(2);
    let drained = worker.drain_once().unwrap();
    assert_eq!(
        (drained.delivered, drained.parked),
        (0, 1),
        "parked at its claim, not run again"
    );
    let Explanation::Parked { attempts, error } = outbox.explain(id).unwrap() else {
        panic!()
    };
    assert_eq!(attempts, 2);
    assert!(error.contains("never reported"), "{error}");
}
