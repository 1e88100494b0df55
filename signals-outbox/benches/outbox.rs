#![allow(missing_docs, non_upper_case_globals)] // criterion_group! emits an undocumented fn
//! Durable signals against hand-written SQL on the same table, in one run, on real SQLite files
//! in a temporary directory (WAL, `synchronous = NORMAL`: the connections `Outbox::connect`
//! makes). Report ratios between benchmarks of the same run.
//!
//! - `enqueue`: one message written in an open transaction, by `enqueue(..).write()` and by a
//!   hand-written cached `INSERT` of the same row; a commit every 1,000 messages, timed, on both
//!   sides.
//! - `drain`: 10,000 messages over 100 shards, delivered by `Worker::drain_once` to one
//!   `#[receiver]`, and by a hand-written loop (per batch of 100: one transaction that selects,
//!   calls, deletes); each iteration on a fresh copy of one database.
//!
//! `cargo bench -p signals-outbox --bench outbox`

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use rusqlite::{Connection, Transaction, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use signals::outbox::{Enqueue, Enqueued, Outbox, Worker};
use signals::{receiver, signal};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Category {
    MemberUpdate,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum Scope {
    Organization,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberJoined {
    pub member_id: i64,
    pub org_id: i64,
}

signal! {
    pub static member_joined: durable Signal<MemberJoined, sender = Category>;
}

/// Deliveries the receiver saw.
static DELIVERED: AtomicU64 = AtomicU64::new(0);
/// Rows the hand-written loop's function saw.
static HANDLED: AtomicU64 = AtomicU64::new(0);

#[receiver(signal = member_joined, sender = Category::MemberUpdate)]
fn count(member_id: i64) {
    black_box(member_id);
    DELIVERED.fetch_add(1, Ordering::Relaxed);
}

/// The hand-written loop's function per row: the same work as `count`.
#[inline(never)]
fn handle(args: &MemberJoined) {
    black_box(args.member_id);
    HANDLED.fetch_add(1, Ordering::Relaxed);
}

/// What `enqueue` stores for the signal, the sender and the scope: the hand-written side writes
/// them as constants (its arguments it serializes per message, as `enqueue` does).
const SIGNAL: &str = "member_joined";
const CATEGORY_JSON: &str = "\"MemberUpdate\"";
const SCOPE: &str = "Organization";

/// The statement `store::insert` runs, written by hand.
const INSERT: &str = "INSERT INTO signals_outbox_message
         (signal, destination, scope, shard, category, object, payload, created_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, CAST(unixepoch('subsec') * 1000 AS INTEGER))";

/// Messages per commit in `enqueue`, on both sides.
const PER_COMMIT: u64 = 1_000;
/// Messages and shards in `drain`.
const MESSAGES: i64 = 10_000;
const SHARDS: i64 = 100;
/// Rows per transaction of the hand-written drain: the worker's default batch of shards.
const FLOOR_BATCH: i64 = 100;

/// The `n`th message's arguments: a distinct member (its object) in one of `SHARDS` orgs.
fn args(n: i64) -> MemberJoined {
    MemberJoined {
        member_id: n,
        org_id: n % SHARDS,
    }
}

/// Message `n`, enqueued as the application writes it: the measured side of `enqueue`.
fn write_message(tx: &Transaction<'_>, n: i64) -> Enqueued {
    let args = args(n);
    member_joined
        .enqueue(tx, &Category::MemberUpdate, &args)
        .shard(Scope::Organization, args.org_id)
        .object(args.member_id)
        .write()
        .unwrap()
}

fn count_messages(conn: &Connection) -> i64 {
    conn.query_row("SELECT count(*) FROM signals_outbox_message", [], |row| {
        row.get(0)
    })
    .unwrap()
}

/// Times `iters` messages written by `write` (given the transaction and the message number),
/// committed every `PER_COMMIT`; between commits, untimed, checks they were all written and
/// empties the table, so that both sides insert into a table of 0 to 1,000 rows.
fn time_inserts(
    conn: &mut Connection,
    iters: u64,
    next: &mut i64,
    write: impl Fn(&rusqlite::Transaction<'_>, i64),
) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let batch = left.min(PER_COMMIT);
        let start = Instant::now();
        let tx = conn.transaction().unwrap();
        for _ in 0..batch {
            write(&tx, *next);
            *next += 1;
        }
        tx.commit().unwrap();
        total += start.elapsed();
        assert_eq!(count_messages(conn), i64::try_from(batch).unwrap());
        conn.execute("DELETE FROM signals_outbox_message", [])
            .unwrap();
        left -= batch;
    }
    total
}

/// Checks that the hand-written insert writes the row `enqueue` writes (but its id and time).
fn same_row(dir: &Path) {
    let outbox = Outbox::open(dir.join("enqueue-check.db")).unwrap();
    let mut conn = outbox.connect().unwrap();
    let tx = conn.transaction().unwrap();
    write_message(&tx, 42);
    hand_insert(&tx, 42);
    let mut statement = tx
        .prepare(
            "SELECT signal, destination, scope, shard, category, object, payload, attempts,
                    last_error IS NULL, created_at > 0
             FROM signals_outbox_message ORDER BY id",
        )
        .unwrap();
    let written: Vec<String> = statement
        .query_map([], |row| {
            Ok(format!(
                "{:?}",
                (
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, i64>(3)?,
                    row.get::<_, String>(4)?,
                    row.get::<_, Option<i64>>(5)?,
                    row.get::<_, String>(6)?,
                    row.get::<_, i64>(7)?,
                    row.get::<_, bool>(8)?,
                    row.get::<_, bool>(9)?,
                )
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(written.len(), 2);
    assert_eq!(written[0], written[1], "enqueue and the hand insert differ");
}

/// The hand-written side of `enqueue`: the `n`th message, by a cached `INSERT`.
fn hand_insert(tx: &rusqlite::Transaction<'_>, n: i64) {
    let args = args(n);
    let payload = serde_json::to_string(&args).unwrap();
    tx.prepare_cached(INSERT)
        .unwrap()
        .execute(params![
            SIGNAL,
            "",
            SCOPE,
            args.org_id,
            CATEGORY_JSON,
            args.member_id,
            payload
        ])
        .unwrap();
}

fn enqueue(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    same_row(dir.path());
    let mut group = c.benchmark_group("enqueue");
    group.sample_size(30);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(6));
    group.throughput(Throughput::Elements(1));

    let outbox = Outbox::open(dir.path().join("enqueue-hand.db")).unwrap();
    let mut conn = outbox.connect().unwrap();
    let mut next = 0;
    group.bench_function("hand_insert", |b| {
        b.iter_custom(|iters| time_inserts(&mut conn, iters, &mut next, hand_insert));
    });

    let outbox = Outbox::open(dir.path().join("enqueue-signals.db")).unwrap();
    let mut conn = outbox.connect().unwrap();
    let mut next = 0;
    group.bench_function("signals", |b| {
        b.iter_custom(|iters| {
            time_inserts(&mut conn, iters, &mut next, |tx, n| {
                black_box(write_message(tx, n));
            })
        });
    });
    group.finish();
}

/// A database of `MESSAGES` messages over `SHARDS` shards, enqueued by the signal, checkpointed
/// into its main file and closed: copy the file for a fresh outbox.
fn template(dir: &Path) -> PathBuf {
    let path = dir.join("drain-template.db");
    let outbox = Outbox::open(&path).unwrap();
    let mut conn = outbox.connect().unwrap();
    let tx = conn.transaction().unwrap();
    for n in 0..MESSAGES {
        write_message(&tx, n);
    }
    tx.commit().unwrap();
    let shards: i64 = conn
        .query_row(
            "SELECT count(DISTINCT shard) FROM signals_outbox_message",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!((count_messages(&conn), shards), (MESSAGES, SHARDS));
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    drop(conn);
    path
}

/// Times `drain` once per iteration, each on a fresh copy of `template` with its state from
/// `setup` (copied, opened and set up untimed, and closed untimed); afterwards checks that
/// `delivered` counted every message and the table is empty.
fn time_drains<S>(
    dir: &Path,
    template: &Path,
    iters: u64,
    delivered: &AtomicU64,
    setup: impl Fn(&Outbox) -> S,
    drain: impl Fn(&mut S),
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let path = dir.join("drain.db");
        std::fs::copy(template, &path).unwrap();
        let outbox = Outbox::open(&path).unwrap();
        delivered.store(0, Ordering::Relaxed);
        let mut state = setup(&outbox);
        let start = Instant::now();
        drain(&mut state);
        total += start.elapsed();
        assert_eq!(
            delivered.load(Ordering::Relaxed),
            u64::try_from(MESSAGES).unwrap()
        );
        assert_eq!(count_messages(&outbox.connect().unwrap()), 0);
        drop(state);
        drop(outbox);
        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.clone().into_os_string();
            file.push(suffix);
            let _ = std::fs::remove_file(file);
        }
    }
    total
}

/// The hand-written drain: per batch of up to `FLOOR_BATCH` rows, one immediate transaction
/// that selects the oldest rows, calls `handle` with each one's arguments and deletes it.
fn hand_drain(conn: &mut Connection) {
    loop {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .unwrap();
        // `+signal`: walk the table in id order, filtering as it goes; with the index on
        // `signal`, SQLite would sort every remaining row at each batch.
        let rows: Vec<(i64, String)> = tx
            .prepare_cached(
                "SELECT id, payload FROM signals_outbox_message
                 WHERE +signal = ?1 ORDER BY id LIMIT ?2",
            )
            .unwrap()
            .query_map(params![SIGNAL, FLOOR_BATCH], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        if rows.is_empty() {
            return;
        }
        for (id, payload) in rows {
            let args: MemberJoined = serde_json::from_str(&payload).unwrap();
            handle(&args);
            tx.prepare_cached("DELETE FROM signals_outbox_message WHERE id = ?1")
                .unwrap()
                .execute([id])
                .unwrap();
        }
        tx.commit().unwrap();
    }
}

fn drain(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let template = template(dir.path());
    let mut group = c.benchmark_group("drain");
    // One drain takes a fraction of a second to a second: ten samples of a few drains each.
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(12));
    group.throughput(Throughput::Elements(u64::try_from(MESSAGES).unwrap()));

    group.bench_function("hand_loop", |b| {
        b.iter_custom(|iters| {
            time_drains(
                dir.path(),
                &template,
                iters,
                &HANDLED,
                |outbox| outbox.connect().unwrap(),
                hand_drain,
            )
        });
    });

    group.bench_function("worker_drain_once", |b| {
        b.iter_custom(|iters| {
            time_drains(
                dir.path(),
                &template,
                iters,
                &DELIVERED,
                |outbox| Worker::new(outbox).unwrap().signal(&member_joined),
                |worker| {
                    let drained = worker.drain_once().unwrap();
                    assert_eq!(drained.removed, usize::try_from(MESSAGES).unwrap());
                },
            )
        });
    });
    group.finish();
}

criterion_group!(benches, enqueue, drain);
criterion_main!(benches);
