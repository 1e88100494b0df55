//! The PostgreSQL worker in one process, against a real server (one per test binary, each test
//! in a database of its own): deliveries in shard order with their writes in the delivery's
//! transaction, a failed group's writes rolled back while its round's other groups keep
//! theirs, backoff by the server's clock, dead letters, coalescing, and wake-ups by NOTIFY.
#![allow(missing_docs, non_upper_case_globals)]

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use signals::outbox::postgres::{PgOutbox, PgWorker};
use signals::outbox::{Delivery, Enqueue, OutboxError, Pause};
use signals::{receiver, signal};
use sqlx::PgPool;
use throwaway_postgres::Postgres;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Category {
    Job,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub shard: i64,
    pub seq: i64,
    /// The receiver fails (after writing) on attempts up to this one.
    pub fail_until: u32,
    /// On its first attempt, the receiver runs a statement that fails, ignores the error
    /// and succeeds: a receiver bug that leaves the transaction aborted.
    #[serde(default)]
    pub swallow: bool,
}

signal! {
    pub static job: durable Signal<Job, sender = Category>;
    /// Its receiver records what the delivery's connection says of its session.
    pub static probe: durable Signal<Probe, sender = Category>;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Probe {}

/// Records the server's limit on this session idling in a transaction, and whether asking
/// for the transaction from inside `Delivery::postgres` is refused.
#[receiver(signal = probe, sender = Category::Job)]
fn show_idle_limit(delivery: &Delivery<'_>) -> Result<(), OutboxError> {
    let nested = delivery.postgres(async |_| delivery.postgres(async |_| ()))?;
    let refused = matches!(nested, Err(OutboxError::TransactionInUse));
    delivery.postgres(async |conn| {
        sqlx::query(
            "INSERT INTO probed (idle_limit, nested_refused)
             SELECT current_setting('idle_in_transaction_session_timeout'), $1",
        )
        .bind(refused)
        .execute(conn)
        .await
    })??;
    Ok(())
}

/// Writes `(shard, seq, attempt, lease)` in the delivery's transaction, then fails while the
/// attempt is within `fail_until`: a failed attempt's row must never be seen.
#[receiver(signal = job, sender = Category::Job)]
fn record(
    shard: i64,
    seq: i64,
    fail_until: u32,
    swallow: bool,
    delivery: &Delivery<'_>,
) -> Result<(), OutboxError> {
    let attempt = i32::try_from(delivery.attempt()).unwrap();
    let lease = delivery.lease().expect("a PostgreSQL delivery has a lease");
    let coalesced = i32::try_from(delivery.coalesced()).unwrap();
    delivery.postgres(async |conn| {
        sqlx::query(
            "INSERT INTO delivered (shard, seq, attempt, lease, coalesced) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(shard)
        .bind(seq)
        .bind(attempt)
        .bind(lease)
        .bind(coalesced)
        .execute(conn)
        .await
    })??;
    if delivery.attempt() <= fail_until {
        return Err(OutboxError::NoSuchMessage(seq)); // any error: this attempt fails
    }
    if swallow && delivery.attempt() == 1 {
        let ignored = delivery
            .postgres(async |conn| sqlx::query("SELECT 1 / 0").execute(conn).await.is_err())?;
        assert!(ignored, "the statement was to fail");
    }
    Ok(())
}

/// An outbox on a fresh database named `name`, with the receivers' table; `None` when
/// skipped.
async fn outbox(name: &str) -> Option<(PgOutbox, PgPool)> {
    let url = Postgres::shared()?.database(name).await;
    let pool = PgPool::connect(&url).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE delivered (n BIGSERIAL, shard BIGINT, seq BIGINT, attempt INT, lease BIGINT,
                                 coalesced INT);
         CREATE TABLE probed (idle_limit TEXT, nested_refused BOOLEAN)",
    )
    .execute(&pool)
    .await
    .unwrap();
    Some((PgOutbox::open(pool.clone()).await.unwrap(), pool))
}

async fn enqueue(pool: &PgPool, jobs: &[(i64, i64, u32)], object: Option<i64>) {
    let mut tx = pool.begin().await.unwrap();
    for &(shard, seq, fail_until) in jobs {
        let pending = job
            .enqueue(
                &mut tx,
                &Category::Job,
                &Job {
                    shard,
                    seq,
                    fail_until,
                    swallow: false,
                },
            )
            .shard("org", shard);
        let pending = match object {
            Some(object) => pending.object(object),
            None => pending,
        };
        pending.write().await.unwrap();
    }
    tx.commit().await.unwrap();
}

/// Commits one `probe` message to the org shard `shard`.
async fn enqueue_probe(pool: &PgPool, shard: i64) {
    let mut tx = pool.begin().await.unwrap();
    probe
        .enqueue(&mut tx, &Category::Job, &Probe {})
        .shard("org", shard)
        .write()
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

/// `(shard, seq)` of the committed deliveries, in commit order per shard.
async fn delivered(pool: &PgPool) -> Vec<(i64, i64)> {
    sqlx::query_as("SELECT shard, seq FROM delivered ORDER BY shard, n")
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn scalar(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_shard_is_delivered_in_order_and_a_failed_groups_writes_alone_roll_back() {
    let Some((outbox, pool)) = outbox("pg_worker_order").await else {
        return;
    };
    // Shard 2's first job fails once, after writing; the others in its round succeed.
    let jobs: Vec<_> = (1..=3)
        .flat_map(|shard| (1..=4).map(move |seq| (shard, seq, u32::from(shard == 2 && seq == 1))))
        .collect();
    enqueue(&pool, &jobs, None).await;
    let mut worker = PgWorker::new(&outbox).signal(&job).batch(3);
    let drained = worker.drain_once().await.unwrap();
    assert_eq!((drained.delivered, drained.failed), (8, 1), "{drained:?}");
    let expected: Vec<_> = [1, 3]
        .into_iter()
        .flat_map(|shard| (1..=4).map(move |seq| (shard, seq)))
        .collect();
    assert_eq!(delivered(&pool).await, expected);
    // Shard 2 backs off 1 s by the server's clock, from the failure.
    let wait = scalar(
        &pool,
        "SELECT due_at - (extract(epoch FROM clock_timestamp()) * 1000)::bigint
         FROM signals_outbox_shard WHERE shard = 2",
    )
    .await;
    assert!((0..=1_000).contains(&wait), "shard 2 due in {wait} ms");
    assert_eq!(
        worker.drain_once().await.unwrap().delivered,
        0,
        "not due yet"
    );
    sqlx::query("UPDATE signals_outbox_shard SET due_at = 0")
        .execute(&pool)
        .await
        .unwrap();
    let drained = worker.drain_once().await.unwrap();
    assert_eq!(drained.delivered, 4, "{drained:?}");
    let attempts: Vec<(i64, i32)> =
        sqlx::query_as("SELECT seq, attempt FROM delivered WHERE shard = 2 ORDER BY n")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(attempts, [(1, 2), (2, 1), (3, 1), (4, 1)]);
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM signals_outbox_message").await,
        0
    );
    // Each delivery ran under a lease token that only grows.
    let leases: Vec<i64> = sqlx::query_scalar("SELECT lease FROM delivered ORDER BY n")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(
        leases.windows(2).all(|pair| pair[0] <= pair[1]),
        "{leases:?}"
    );
}

/// `(seq, attempt, lease, coalesced)` of shard `shard`'s committed deliveries, in order.
async fn records(pool: &PgPool, shard: i64) -> Vec<(i64, i32, i64, i32)> {
    sqlx::query_as(
        "SELECT seq, attempt, lease, coalesced FROM delivered WHERE shard = $1 ORDER BY n",
    )
    .bind(shard)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_delivers_a_shards_groups_in_order_up_to_the_first_that_fails() {
    let Some((outbox, pool)) = outbox("pg_worker_window").await else {
        return;
    };
    // Shard 1: seq 3 fails once; 4 and 5 wait for it.
    enqueue(
        &pool,
        &[(1, 1, 0), (1, 2, 0), (1, 3, 1), (1, 4, 0), (1, 5, 0)],
        None,
    )
    .await;
    let mut worker = PgWorker::new(&outbox).signal(&job);
    let drained = worker.drain_once().await.unwrap();
    assert_eq!((drained.delivered, drained.failed), (2, 1), "{drained:?}");
    sqlx::query("UPDATE signals_outbox_shard SET due_at = 0")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(worker.drain_once().await.unwrap().delivered, 3);
    let seen: Vec<(i64, i32)> = records(&pool, 1)
        .await
        .into_iter()
        .map(|(seq, attempt, ..)| (seq, attempt))
        .collect();
    assert_eq!(seen, [(1, 1), (2, 1), (3, 2), (4, 1), (5, 1)]);
    // One lease per round: 1 and 2 in the first; 3, on its second attempt, alone (a shard
    // past its first attempt delivers its head alone); then 4 and 5.
    let leases: Vec<i64> = records(&pool, 1).await.into_iter().map(|r| r.2).collect();
    assert!(
        leases[0] == leases[1] && leases[1] < leases[2],
        "{leases:?}"
    );
    assert!(
        leases[2] < leases[3] && leases[3] == leases[4],
        "{leases:?}"
    );

    // Messages about one object after the head are coalesced within the round's window.
    let mut tx = pool.begin().await.unwrap();
    for (seq, object) in [(1, None), (2, Some(7)), (3, Some(8)), (4, Some(7))] {
        let args = Job {
            shard: 2,
            seq,
            fail_until: 0,
            swallow: false,
        };
        let pending = job.enqueue(&mut tx, &Category::Job, &args).shard("org", 2);
        match object {
            Some(object) => pending.object(object).write().await.unwrap(),
            None => pending.write().await.unwrap(),
        };
    }
    tx.commit().await.unwrap();
    assert_eq!(worker.drain_once().await.unwrap().removed, 4);
    let seen: Vec<(i64, i32)> = records(&pool, 2)
        .await
        .into_iter()
        .map(|(seq, _, _, coalesced)| (seq, coalesced))
        .collect();
    assert_eq!(seen, [(1, 1), (4, 2), (3, 1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_attempt_that_never_reported_a_shard_delivers_its_head_alone() {
    let Some((outbox, pool)) = outbox("pg_worker_head_alone").await else {
        return;
    };
    enqueue(&pool, &[(1, 1, 0), (1, 2, 0), (1, 3, 0)], None).await;
    // As if a worker had died delivering the head: its claim's attempt stays charged.
    sqlx::query("UPDATE signals_outbox_shard SET attempts = 1")
        .execute(&pool)
        .await
        .unwrap();
    let mut worker = PgWorker::new(&outbox).signal(&job);
    assert_eq!(worker.drain_once().await.unwrap().delivered, 3);
    let seen = records(&pool, 1).await;
    assert_eq!(
        (seen[0].0, seen[0].1),
        (1, 2),
        "the head, on its second attempt"
    );
    assert!(
        seen[0].2 < seen[1].2,
        "the head alone in its round: {seen:?}"
    );
    assert_eq!(seen[1].2, seen[2].2, "then the rest together: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_no_longer_decodes_is_parked_with_its_error_and_its_shard_goes_on() {
    let Some((outbox, pool)) = outbox("pg_worker_undecodable").await else {
        return;
    };
    enqueue(&pool, &[(1, 1, 0)], None).await;
    // A message written by an older release, whose arguments had another shape.
    sqlx::query(
        "INSERT INTO signals_outbox_message (signal, destination, scope, shard, category, payload, created_at)
         SELECT signal, destination, scope, shard, category, '{\"shard\": 1, \"sequence\": 2}', 0
         FROM signals_outbox_message",
    )
    .execute(&pool)
    .await
    .unwrap();
    enqueue(&pool, &[(1, 3, 0)], None).await;
    let mut worker = PgWorker::new(&outbox).signal(&job);
    let drained = worker.drain_once().await.unwrap();
    assert_eq!((drained.delivered, drained.parked), (2, 1), "{drained:?}");
    assert_eq!(delivered(&pool).await, [(1, 1), (1, 3)]);
    let (attempts, error): (i32, String) =
        sqlx::query_as("SELECT attempts, error FROM signals_outbox_parked")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(attempts, 1, "parked at its first attempt, never retried");
    assert!(
        error.contains("arguments do not decode") && error.contains("seq"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_message_is_parked_after_max_attempts_and_coalesced_ones_go_once() {
    let Some((outbox, pool)) = outbox("pg_worker_park").await else {
        return;
    };
    enqueue(&pool, &[(1, 1, u32::MAX)], None).await;
    // Three updates about one object: delivered once, with the newest arguments.
    enqueue(&pool, &[(2, 1, 0), (2, 2, 0), (2, 3, 0)], Some(7)).await;
    let mut worker = PgWorker::new(&outbox).signal(&job).max_attempts(3);
    for attempt in 1..=3 {
        let drained = worker.drain_once().await.unwrap();
        if attempt < 3 {
            assert_eq!(drained.failed, 1, "attempt {attempt}: {drained:?}");
        } else {
            assert_eq!(drained.parked, 1, "attempt {attempt}: {drained:?}");
        }
        sqlx::query("UPDATE signals_outbox_shard SET due_at = 0")
            .execute(&pool)
            .await
            .unwrap();
    }
    let coalesced: Vec<(i64, i64, i32)> =
        sqlx::query_as("SELECT shard, seq, coalesced FROM delivered ORDER BY n")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(coalesced, [(2, 3, 3)]);
    let error: String = sqlx::query_scalar("SELECT error FROM signals_outbox_parked")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(error.starts_with("gave up after 3 attempts"), "{error}");
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM signals_outbox_message").await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_ignores_a_failed_statement_fails_its_delivery_not_the_others() {
    let Some((outbox, pool)) = outbox("pg_worker_swallow").await else {
        return;
    };
    // The swallowing group in the middle of a round (the next writer finds the transaction
    // aborted), then last (the round's end finds it).
    for (swallower, shards) in [(2, [1, 2, 3]), (6, [4, 5, 6])] {
        let mut tx = pool.begin().await.unwrap();
        for shard in shards {
            job.enqueue(
                &mut tx,
                &Category::Job,
                &Job {
                    shard,
                    seq: 1,
                    fail_until: 0,
                    swallow: shard == swallower,
                },
            )
            .shard("org", shard)
            .write()
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
        let mut worker = PgWorker::new(&outbox).signal(&job).batch(3);
        let drained = worker.drain_once().await.unwrap();
        assert_eq!((drained.delivered, drained.failed), (2, 1), "{drained:?}");
        let recorded: Vec<i64> =
            sqlx::query_scalar("SELECT shard FROM delivered WHERE shard = ANY($1) ORDER BY shard")
                .bind(&shards[..])
                .fetch_all(&pool)
                .await
                .unwrap();
        let others: Vec<i64> = shards.into_iter().filter(|&s| s != swallower).collect();
        assert_eq!(recorded, others, "the swallowing group's write rolled back");
        let error: String =
            sqlx::query_scalar("SELECT last_error FROM signals_outbox_shard WHERE shard = $1")
                .bind(swallower)
                .fetch_one(&pool)
                .await
                .unwrap();
        assert!(
            error.contains("aborted the delivery's transaction"),
            "{error}"
        );
        sqlx::query("UPDATE signals_outbox_shard SET due_at = 0")
            .execute(&pool)
            .await
            .unwrap();
        assert_eq!(worker.drain_once().await.unwrap().delivered, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_list_and_retry_dead_letters_and_pause_a_shard_or_a_category() {
    let Some((outbox, pool)) = outbox("pg_worker_operators").await else {
        return;
    };
    let mut worker = PgWorker::new(&outbox).signal(&job).max_attempts(1);
    enqueue(&pool, &[(1, 1, 1)], None).await; // fails its only attempt
    assert_eq!(worker.drain_once().await.unwrap().parked, 1);
    let parked = outbox.parked().await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!((parked[0].shard.id, parked[0].attempts), (1, 1));
    assert!(
        parked[0].error.starts_with("gave up after 1 attempts"),
        "{}",
        parked[0].error
    );
    // Retried, it goes back to its shard with its attempts reset: attempt 1 fails again (its
    // receiver fails on attempt 1), and attempt 2 succeeds.
    outbox.retry_message(parked[0].id).await.unwrap();
    assert!(outbox.parked().await.unwrap().is_empty());
    assert!(matches!(
        outbox.retry_message(parked[0].id + 1_000).await,
        Err(OutboxError::NoSuchMessage(_))
    ));
    let mut worker = PgWorker::new(&outbox).signal(&job);
    assert_eq!(worker.drain_once().await.unwrap().failed, 1);
    sqlx::query("UPDATE signals_outbox_shard SET due_at = 0") // its backoff passes
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(worker.drain_once().await.unwrap().delivered, 1);
    assert_eq!(delivered(&pool).await, [(1, 1)]);

    // A paused shard waits, as does every shard while its head's category is paused.
    let shard = Pause::shard(&job, "org", 2).unwrap();
    outbox.pause(&shard).await.unwrap();
    enqueue(&pool, &[(2, 1, 0), (3, 1, 0)], None).await;
    assert_eq!(worker.drain_once().await.unwrap().delivered, 1);
    let category = Pause::category(&job, &Category::Job).unwrap();
    outbox.pause(&category).await.unwrap();
    assert!(outbox.resume(&shard).await.unwrap());
    assert!(!outbox.resume(&shard).await.unwrap());
    assert_eq!(worker.drain_once().await.unwrap().delivered, 0);
    assert!(outbox.resume(&category).await.unwrap());
    assert_eq!(worker.drain_once().await.unwrap().delivered, 1);
    assert_eq!(delivered(&pool).await, [(1, 1), (2, 1), (3, 1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emptied_shards_row_goes_but_never_under_an_enqueue_about_to_commit() {
    let Some((outbox, pool)) = outbox("pg_worker_emptied").await else {
        return;
    };
    let mut worker = PgWorker::new(&outbox).signal(&job);
    enqueue(&pool, &[(1, 1, 0), (2, 1, 0)], None).await;
    // An enqueue to shard 1, written and not yet committed, while the worker empties it.
    let mut open = pool.begin().await.unwrap();
    job.enqueue(
        &mut open,
        &Category::Job,
        &Job {
            shard: 1,
            seq: 2,
            fail_until: 0,
            swallow: false,
        },
    )
    .shard("org", 1)
    .write()
    .await
    .unwrap();
    assert_eq!(worker.drain_once().await.unwrap().delivered, 2);
    // Shard 2's row went with its last message; shard 1's stayed for the open enqueue.
    let rows: Vec<i64> = sqlx::query_scalar("SELECT shard FROM signals_outbox_shard")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(rows, [1]);
    open.commit().await.unwrap();
    // Found empty, the shard is looked at again a moment later.
    let deadline = Instant::now() + Duration::from_secs(30);
    while delivered(&pool).await.len() < 3 {
        assert!(
            Instant::now() < deadline,
            "the enqueue after the race was never delivered"
        );
        worker.drain_once().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(delivered(&pool).await, [(1, 1), (1, 2), (2, 1)]);
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM signals_outbox_shard").await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_enqueueing_to_5_000_shards_holds_at_most_1_024_shard_locks() {
    let Some((outbox, pool)) = outbox("pg_worker_bulk").await else {
        return;
    };
    // A shard's lock is one of 1,024, so that a bulk enqueue does not exhaust the server's
    // lock table (`max_locks_per_transaction` × `max_connections`, 6,400 by default).
    let mut tx = pool.begin().await.unwrap();
    for shard in 0..5_000 {
        let args = Job {
            shard,
            seq: 1,
            fail_until: 0,
            swallow: false,
        };
        job.enqueue(&mut tx, &Category::Job, &args)
            .shard("org", shard)
            .write()
            .await
            .unwrap();
    }
    let locks: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert!((1..=1_024).contains(&locks), "{locks} advisory locks");
    tx.commit().await.unwrap();
    let mut worker = PgWorker::new(&outbox).signal(&job).batch(1_000);
    assert_eq!(worker.drain_once().await.unwrap().delivered, 5_000);
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM signals_outbox_shard").await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_session_is_cut_off_after_three_idle_leases_and_lends_once_at_a_time() {
    let Some((outbox, pool)) = outbox("pg_worker_idle_limit").await else {
        return;
    };
    enqueue_probe(&pool, 1).await;
    let mut worker = PgWorker::new(&outbox)
        .signal(&probe)
        .lease(Duration::from_secs(2));
    assert_eq!(worker.drain_once().await.unwrap().delivered, 1);
    let (limit, refused): (String, bool) =
        sqlx::query_as("SELECT idle_limit, nested_refused FROM probed")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(limit, "6s");
    assert!(
        refused,
        "Delivery::postgres inside its own closure: TransactionInUse"
    );

    // A lease of a millisecond is raised to a second: three of them before a cut-off.
    sqlx::query("DELETE FROM probed")
        .execute(&pool)
        .await
        .unwrap();
    enqueue_probe(&pool, 2).await;
    let mut worker = PgWorker::new(&outbox)
        .signal(&probe)
        .lease(Duration::from_millis(1));
    assert_eq!(worker.drain_once().await.unwrap().delivered, 1);
    let limit: String = sqlx::query_scalar("SELECT idle_limit FROM probed")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(limit, "3s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_worker_gives_back_its_claim_and_uncharges_it() {
    let Some((outbox, pool)) = outbox("pg_worker_give_back").await else {
        return;
    };
    enqueue(&pool, &[(1, 1, 0)], None).await;
    // An enqueue to shard 1 left open: the worker's drain keeps the shard's row, and ends
    // with a claim of it (found empty) that it has not delivered.
    let mut open = pool.begin().await.unwrap();
    let args = Job {
        shard: 1,
        seq: 2,
        fail_until: 0,
        swallow: false,
    };
    job.enqueue(&mut open, &Category::Job, &args)
        .shard("org", 1)
        .write()
        .await
        .unwrap();
    let mut worker = PgWorker::new(&outbox).signal(&job);
    assert_eq!(worker.drain_once().await.unwrap().delivered, 1);
    let leased = "SELECT count(*) FROM signals_outbox_shard
                  WHERE lease_until > (extract(epoch FROM clock_timestamp()) * 1000)::bigint";
    assert_eq!(scalar(&pool, leased).await, 1, "a claim held");
    assert_eq!(
        scalar(&pool, "SELECT attempts::bigint FROM signals_outbox_shard").await,
        1,
        "charged"
    );
    // Stopped at once: the claim goes back, uncharged, for another worker to take now.
    worker.run(async {}).await.unwrap();
    assert_eq!(scalar(&pool, leased).await, 0, "the claim given back");
    assert_eq!(
        scalar(&pool, "SELECT attempts::bigint FROM signals_outbox_shard").await,
        0,
        "uncharged"
    );
    open.commit().await.unwrap();
    let mut other = PgWorker::new(&outbox).signal(&job);
    assert_eq!(other.drain_once().await.unwrap().delivered, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_with_unusual_keys_are_delivered_and_their_rows_removed() {
    let Some((outbox, pool)) = outbox("pg_worker_unusual").await else {
        return;
    };
    let mut tx = pool.begin().await.unwrap();
    for (seq, (scope, shard, destination)) in [
        ("o'rg", i64::MIN, "eu/west"),
        ("☃ \\ x", i64::MAX, ""),
        ("a\u{1f}b", 0, "a\u{1f}b"),
        ("", -1, "\"quoted\""),
    ]
    .into_iter()
    .enumerate()
    {
        let args = Job {
            shard,
            seq: i64::try_from(seq).unwrap(),
            fail_until: 0,
            swallow: false,
        };
        job.enqueue(&mut tx, &Category::Job, &args)
            .shard(scope, shard)
            .to([destination])
            .write()
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let mut worker = PgWorker::new(&outbox).signal(&job);
    assert_eq!(worker.drain_once().await.unwrap().delivered, 4);
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM signals_outbox_shard").await,
        0
    );
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM signals_outbox_message").await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_worker_wakes_on_the_notification_of_a_commit() {
    let Some((outbox, pool)) = outbox("pg_worker_notify").await else {
        return;
    };
    // A poll of an hour: only the notification can wake it in time.
    let mut worker = PgWorker::new(&outbox)
        .signal(&job)
        .poll(Duration::from_secs(3600));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        worker
            .run(async {
                stopped.await.ok();
            })
            .await
    });
    // Wait until it listens: its first drain has run and found nothing.
    let deadline = Instant::now() + Duration::from_secs(30);
    while scalar(
        &pool,
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'",
    )
    .await
        == 0
    {
        assert!(Instant::now() < deadline, "the worker never listened");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    enqueue(&pool, &[(1, 1, 0)], None).await;
    while delivered(&pool).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the notification did not wake the worker"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
}
