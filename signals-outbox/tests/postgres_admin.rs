//! What operators ask of a PostgreSQL outbox, against a real server (one per test binary, each
//! test in a database of its own): its status (the same `Status` as SQLite's, timed by the
//! server's clock), why a message waits (`explain`), and retrying a shard: its dead letters back, its backoff forgotten, and a
//! worker's lease on it kept.
#![allow(missing_docs, non_upper_case_globals)]

use std::time::Duration;

use serde::{Deserialize, Serialize};
use signals::outbox::postgres::{PgOutbox, PgWorker};
use signals::outbox::{
    Delivery, Enqueue, Explanation, OutboxError, Pause, Shard, ShardStatus, Status,
};
use signals::{receiver, signal};
use sqlx::PgPool;
use throwaway_postgres::Postgres;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Category {
    A,
    B,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Task {
    pub shard: i64,
    pub seq: i64,
    /// The receiver fails on attempts up to this one.
    pub fail_until: u32,
}

signal! {
    pub static task: durable Signal<Task, sender = Category>;
}

/// Records `(shard, seq, attempt)` in the delivery's transaction; fails while the attempt is
/// within `fail_until`, or while the shard is listed in `broken` (a cause an operator fixes).
#[receiver(signal = task)]
fn record(
    shard: i64,
    seq: i64,
    fail_until: u32,
    delivery: &Delivery<'_>,
) -> Result<(), OutboxError> {
    let attempt = i32::try_from(delivery.attempt()).unwrap();
    let broken = delivery.postgres(async |conn| {
        sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM broken WHERE shard = $1)")
            .bind(shard)
            .fetch_one(conn)
            .await
    })??;
    if broken || delivery.attempt() <= fail_until {
        return Err(OutboxError::NoSuchMessage(seq)); // any error: this attempt fails
    }
    delivery.postgres(async |conn| {
        sqlx::query("INSERT INTO delivered (shard, seq, attempt) VALUES ($1, $2, $3)")
            .bind(shard)
            .bind(seq)
            .bind(attempt)
            .execute(conn)
            .await
    })??;
    Ok(())
}

/// An outbox on a fresh database named `name`, with the receiver's tables; `None` when
/// skipped.
async fn outbox(name: &str) -> Option<(PgOutbox, PgPool)> {
    let url = Postgres::shared()?.database(name).await;
    let pool = PgPool::connect(&url).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE delivered (n BIGSERIAL, shard BIGINT, seq BIGINT, attempt INT);
         CREATE TABLE broken (shard BIGINT)",
    )
    .execute(&pool)
    .await
    .unwrap();
    Some((PgOutbox::open(pool.clone()).await.unwrap(), pool))
}

/// Enqueues `(shard, seq, category, fail_until)` in `tx`.
async fn write(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>, jobs: &[(i64, i64, Category, u32)]) {
    for &(shard, seq, category, fail_until) in jobs {
        task.enqueue(
            &mut *tx,
            &category,
            &Task {
                shard,
                seq,
                fail_until,
            },
        )
        .shard("org", shard)
        .write()
        .await
        .unwrap();
    }
}

async fn enqueue(pool: &PgPool, jobs: &[(i64, i64, Category, u32)]) {
    let mut tx = pool.begin().await.unwrap();
    write(&mut tx, jobs).await;
    tx.commit().await.unwrap();
}

/// `(shard, seq, attempt)` of the committed deliveries, in commit order.
async fn delivered(pool: &PgPool) -> Vec<(i64, i64, i32)> {
    sqlx::query_as("SELECT shard, seq, attempt FROM delivered ORDER BY n")
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn execute(pool: &PgPool, sql: &str) {
    sqlx::query(sql).execute(pool).await.unwrap();
}

async fn execute_in(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>, sql: &str) {
    sqlx::query(sql).execute(&mut **tx).await.unwrap();
}

async fn scalar(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

fn shard(id: i64) -> Shard {
    Shard {
        signal: task.name().to_owned(),
        destination: String::new(),
        scope: "org".to_owned(),
        id,
    }
}

/// The status of shard `id`, which must be waiting.
fn of(status: &Status, id: i64) -> &ShardStatus {
    status
        .shards
        .iter()
        .find(|s| s.shard.id == id)
        .unwrap_or_else(|| panic!("shard {id} is not waiting: {status}"))
}

const NOW: &str = "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_lists_the_waiting_shards_oldest_first_with_their_categories_and_pauses() {
    let Some((outbox, pool)) = outbox("pg_admin_status").await else {
        return;
    };
    let before = scalar(&pool, NOW).await;
    let empty = outbox.status().await.unwrap();
    let after = scalar(&pool, NOW).await;
    assert!(
        empty.shards.is_empty() && empty.parked.is_empty(),
        "{empty}"
    );
    assert!(
        (before..=after).contains(&empty.now),
        "the server's clock: {before} <= {} <= {after}",
        empty.now
    );
    assert_eq!(
        empty.to_string(),
        "0 shards waiting: 0 due, 0 scheduled, 0 paused; 0 parked\n"
    );

    // Shard 2 is written first; shard 1 holds a message of each category.
    enqueue(&pool, &[(2, 1, Category::A, 0), (1, 1, Category::A, 0)]).await;
    enqueue(&pool, &[(1, 2, Category::B, 0), (2, 2, Category::A, 0)]).await;
    // Shard 2's first message has waited 5 s longer.
    execute(
        &pool,
        "UPDATE signals_outbox_message SET created_at = created_at - 5000
         WHERE id = (SELECT min(id) FROM signals_outbox_message)",
    )
    .await;
    let status = outbox.status().await.unwrap();
    let ids: Vec<i64> = status.shards.iter().map(|s| s.shard.id).collect();
    assert_eq!(ids, [2, 1], "oldest first: {status}");
    assert_eq!(status.shards[0].shard, shard(2));
    let a = "\"A\"".to_owned();
    let b = "\"B\"".to_owned();
    assert_eq!(
        (status.shards[0].messages, &status.shards[0].categories[..]),
        (2, &[(a.clone(), 2)][..])
    );
    assert_eq!(
        (status.shards[1].messages, &status.shards[1].categories[..]),
        (2, &[(a.clone(), 1), (b.clone(), 1)][..])
    );
    for (at, id) in [(0, 2), (1, 1)] {
        let oldest: i64 = sqlx::query_scalar(
            "SELECT min(created_at) FROM signals_outbox_message WHERE shard = $1",
        )
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
        let waiting = &status.shards[at];
        assert_eq!(waiting.oldest_age_ms, status.now - oldest, "{status}");
        assert_eq!(
            (
                waiting.scheduled_for,
                waiting.failures,
                &waiting.last_error,
                waiting.paused
            ),
            (None, 0, &None, false),
            "{status}"
        );
    }
    assert!(status.shards[0].oldest_age_ms >= 5000, "{status}");
    assert!(
        status
            .to_string()
            .starts_with("2 shards waiting: 2 due, 0 scheduled, 0 paused; 0 parked\n"),
        "{status}"
    );

    // A pause of a category holds every shard with a message of it; a shard's, that shard.
    outbox
        .pause(&Pause::category(&task, &Category::B).unwrap())
        .await
        .unwrap();
    let status = outbox.status().await.unwrap();
    assert_eq!(
        (of(&status, 1).paused, of(&status, 2).paused),
        (true, false)
    );
    outbox
        .pause(&Pause::shard(&task, "org", 2).unwrap())
        .await
        .unwrap();
    let status = outbox.status().await.unwrap();
    assert_eq!((of(&status, 1).paused, of(&status, 2).paused), (true, true));
    assert!(
        status
            .to_string()
            .starts_with("2 shards waiting: 0 due, 0 scheduled, 2 paused; 0 parked\n"),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_shard_shows_its_backoff_until_retry_shard_makes_it_due() {
    let Some((outbox, pool)) = outbox("pg_admin_backoff").await else {
        return;
    };
    execute(&pool, "INSERT INTO broken (shard) VALUES (1)").await;
    enqueue(&pool, &[(1, 1, Category::A, 0), (2, 1, Category::A, 0)]).await;
    let mut worker = PgWorker::new(&outbox).signal(&task);
    let drained = worker.drain_once().await.unwrap();
    assert_eq!((drained.delivered, drained.failed), (1, 1), "{drained:?}");
    // A long backoff, as after many failures: the shard waits an hour.
    execute(
        &pool,
        "UPDATE signals_outbox_shard SET due_at = due_at + 3600000, delay_ms = 3600000",
    )
    .await;
    let due_at = scalar(
        &pool,
        "SELECT due_at FROM signals_outbox_shard WHERE shard = 1",
    )
    .await;
    let status = outbox.status().await.unwrap();
    assert_eq!(status.shards.len(), 1, "{status}");
    let failed = of(&status, 1);
    assert_eq!(
        (failed.scheduled_for, failed.failures, failed.paused),
        (Some(due_at), 1, false),
        "{status}"
    );
    let error = failed.last_error.as_deref().unwrap_or_default();
    assert!(error.contains("no outbox message"), "{status}");
    let shown = status.to_string();
    assert!(
        shown.starts_with("1 shards waiting: 0 due, 1 scheduled, 0 paused; 0 parked\n")
            && shown.contains(", 1 failures, last: "),
        "{shown}"
    );
    assert_eq!(
        worker.drain_once().await.unwrap().delivered,
        0,
        "backing off"
    );

    // Its cause fixed and the shard retried, it is due now, its failures forgotten, and the
    // next drain delivers it, on a first attempt again.
    execute(&pool, "DELETE FROM broken").await;
    assert_eq!(
        outbox.retry_shard(&shard(1)).await.unwrap(),
        0,
        "none parked"
    );
    let status = outbox.status().await.unwrap();
    let retried = of(&status, 1);
    assert_eq!(
        (retried.scheduled_for, retried.failures, &retried.last_error),
        (None, 0, &None),
        "{status}"
    );
    assert_eq!(worker.drain_once().await.unwrap().delivered, 1);
    assert_eq!(delivered(&pool).await, [(2, 1, 1), (1, 1, 1)]);
    assert!(outbox.status().await.unwrap().shards.is_empty());

    // A shard with no messages and no dead letters is left as it is.
    assert_eq!(outbox.retry_shard(&shard(9)).await.unwrap(), 0);
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM signals_outbox_shard").await,
        0,
        "no row made for it"
    );
    assert!(outbox.status().await.unwrap().shards.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_shard_puts_its_dead_letters_back_in_order_and_status_lists_them_until_then() {
    let Some((outbox, pool)) = outbox("pg_admin_parked").await else {
        return;
    };
    execute(&pool, "INSERT INTO broken (shard) VALUES (1)").await;
    enqueue(
        &pool,
        &[
            (1, 1, Category::A, 0),
            (1, 2, Category::B, 0),
            (2, 1, Category::A, 0),
        ],
    )
    .await;
    // Shard 2 waits behind a pause, so that a status lists it beside the dead letters.
    let paused = Pause::shard(&task, "org", 2).unwrap();
    outbox.pause(&paused).await.unwrap();
    let mut worker = PgWorker::new(&outbox).signal(&task).max_attempts(1);
    assert_eq!(worker.drain_once().await.unwrap().parked, 2);
    let status = outbox.status().await.unwrap();
    let waiting: Vec<i64> = status.shards.iter().map(|s| s.shard.id).collect();
    assert_eq!(
        waiting,
        [2],
        "a shard of dead letters alone is not waiting: {status}"
    );
    let parked: Vec<(i64, &str, u32)> = status
        .parked
        .iter()
        .map(|p| (p.shard.id, p.category.as_str(), p.attempts))
        .collect();
    assert_eq!(parked, [(1, "\"A\"", 1), (1, "\"B\"", 1)], "{status}");
    assert_eq!(status.parked, outbox.parked().await.unwrap());
    let shown = status.to_string();
    assert!(
        shown.starts_with("1 shards waiting: 0 due, 0 scheduled, 1 paused; 2 parked\n")
            && shown.contains("  parked "),
        "{shown}"
    );

    // Its cause fixed, the shard is retried: both come back, and go in their order.
    execute(&pool, "DELETE FROM broken").await;
    assert_eq!(outbox.retry_shard(&shard(1)).await.unwrap(), 2);
    assert_eq!(outbox.retry_shard(&shard(1)).await.unwrap(), 0, "none left");
    let status = outbox.status().await.unwrap();
    assert!(status.parked.is_empty(), "{status}");
    let back = of(&status, 1);
    assert_eq!(
        (
            back.messages,
            back.scheduled_for,
            back.failures,
            &back.last_error
        ),
        (2, None, 0, &None),
        "{status}"
    );
    assert_eq!(worker.drain_once().await.unwrap().delivered, 2);
    assert_eq!(delivered(&pool).await, [(1, 1, 1), (1, 2, 1)]);
    assert!(outbox.resume(&paused).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leased_shard_shows_its_lease_and_retry_shard_leaves_the_lease_to_its_holder() {
    let Some((outbox, pool)) = outbox("pg_admin_lease").await else {
        return;
    };
    enqueue(&pool, &[(1, 1, Category::A, 0)]).await;
    // An enqueue to shard 1 left open while the holder drains: it ends holding a claim of
    // the shard (found empty), whose message then commits.
    let mut open = pool.begin().await.unwrap();
    write(&mut open, &[(1, 2, Category::A, 0)]).await;
    let mut holder = PgWorker::new(&outbox)
        .signal(&task)
        .lease(Duration::from_secs(3600));
    assert_eq!(holder.drain_once().await.unwrap().delivered, 1);
    open.commit().await.unwrap();
    // As if the shard had failed before.
    execute(
        &pool,
        "UPDATE signals_outbox_shard SET failures = 3, last_error = 'boom', delay_ms = 8000",
    )
    .await;
    let lease_until = scalar(&pool, "SELECT lease_until FROM signals_outbox_shard").await;
    let status = outbox.status().await.unwrap();
    assert!(lease_until > status.now + 3_000_000, "a lease held");
    let leased = of(&status, 1);
    assert_eq!(
        (
            leased.scheduled_for,
            leased.failures,
            leased.last_error.as_deref()
        ),
        (Some(lease_until), 3, Some("boom")),
        "no other worker takes it before its lease ends: {status}"
    );

    assert_eq!(outbox.retry_shard(&shard(1)).await.unwrap(), 0);
    let status = outbox.status().await.unwrap();
    let retried = of(&status, 1);
    assert_eq!(
        (retried.scheduled_for, retried.failures, &retried.last_error),
        (Some(lease_until), 0, &None),
        "the lease kept, the failures forgotten: {status}"
    );
    // Another worker does not take the shard while its lease is on.
    let mut other = PgWorker::new(&outbox).signal(&task);
    assert_eq!(other.drain_once().await.unwrap().delivered, 0);
    // Its holder delivers it, under its fence, on the attempt its claim charged.
    let drained = holder.drain_once().await.unwrap();
    assert_eq!((drained.delivered, drained.fenced), (1, 0), "{drained:?}");
    assert_eq!(delivered(&pool).await, [(1, 1, 1), (1, 2, 1)]);
    assert!(outbox.status().await.unwrap().shards.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_shard_waits_for_a_worker_removing_the_emptied_shards_row() {
    let Some((outbox, pool)) = outbox("pg_admin_lock").await else {
        return;
    };
    execute(&pool, "INSERT INTO broken (shard) VALUES (1)").await;
    enqueue(&pool, &[(1, 1, Category::A, 0)]).await;
    let mut worker = PgWorker::new(&outbox).signal(&task).max_attempts(1);
    assert_eq!(worker.drain_once().await.unwrap().parked, 1);
    execute(&pool, "DELETE FROM broken").await;
    // A worker about to remove the row of the shard it found empty (the drain removed it
    // already): it holds the shard's lock, exclusively.
    let mut removing = pool.begin().await.unwrap();
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtext('signals_outbox'),
             hashtext($1 || chr(31) || '' || chr(31) || 'org' || chr(31) || '1') & 1023)",
    )
    .bind(task.name())
    .execute(&mut *removing)
    .await
    .unwrap();
    let retrying = tokio::spawn({
        let outbox = outbox.clone();
        async move { outbox.retry_shard(&shard(1)).await }
    });
    // The retry waits for that lock (it must not put the message back under the removal).
    let waiting = "SELECT count(*) FROM pg_locks
                   WHERE locktype = 'advisory' AND NOT granted
                     AND database = (SELECT oid FROM pg_database
                                     WHERE datname = current_database())";
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while scalar(&pool, waiting).await == 0 {
        assert!(
            !retrying.is_finished(),
            "retry_shard did not wait for the shard's lock"
        );
        assert!(std::time::Instant::now() < deadline, "never waited");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    execute_in(
        &mut removing,
        "DELETE FROM signals_outbox_shard s WHERE shard = 1 AND NOT EXISTS
             (SELECT 1 FROM signals_outbox_message m WHERE m.shard = s.shard)",
    )
    .await;
    removing.commit().await.unwrap();
    assert_eq!(retrying.await.unwrap().unwrap(), 1);
    // The message came back with a row for workers to claim.
    assert_eq!(worker.drain_once().await.unwrap().delivered, 1);
    assert_eq!(delivered(&pool).await, [(1, 1, 1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shards_failures_are_those_since_its_last_success_or_dead_letter() {
    let Some((outbox, pool)) = outbox("pg_admin_since").await else {
        return;
    };
    execute(&pool, "INSERT INTO broken (shard) VALUES (2)").await;
    // Each shard's second message is of category B, paused: it keeps the shard waiting
    // once the first is settled.
    enqueue(
        &pool,
        &[
            (1, 1, Category::A, 1),
            (1, 2, Category::B, 0),
            (2, 1, Category::A, 0),
            (2, 2, Category::B, 0),
        ],
    )
    .await;
    outbox
        .pause(&Pause::category(&task, &Category::B).unwrap())
        .await
        .unwrap();
    let mut worker = PgWorker::new(&outbox)
        .signal(&task)
        .per_shard(1)
        .max_attempts(2);
    assert_eq!(worker.drain_once().await.unwrap().failed, 2);
    let status = outbox.status().await.unwrap();
    assert_eq!((of(&status, 1).failures, of(&status, 2).failures), (1, 1));
    execute(&pool, "UPDATE signals_outbox_shard SET due_at = 0").await; // backoffs pass
    // Shard 1's first message succeeds on its second attempt; shard 2's is parked after it.
    let drained = worker.drain_once().await.unwrap();
    assert_eq!((drained.delivered, drained.parked), (1, 1), "{drained:?}");
    let status = outbox.status().await.unwrap();
    for id in [1, 2] {
        let waiting = of(&status, id);
        assert_eq!(
            (
                waiting.messages,
                waiting.paused,
                waiting.failures,
                &waiting.last_error
            ),
            (1, true, 0, &None),
            "{status}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_message_after_a_success_fails_afresh_one_failure_the_first_backoff() {
    let Some((outbox, pool)) = outbox("pg_admin_afresh").await else {
        return;
    };
    enqueue(&pool, &[(1, 1, Category::A, 1), (1, 2, Category::A, 1)]).await;
    let mut worker = PgWorker::new(&outbox).signal(&task);
    assert_eq!(worker.drain_once().await.unwrap().failed, 1);
    execute(&pool, "UPDATE signals_outbox_shard SET due_at = 0").await;
    // The head succeeds on its second attempt (alone in its round), then the next message
    // fails its first.
    let drained = worker.drain_once().await.unwrap();
    assert_eq!((drained.delivered, drained.failed), (1, 1), "{drained:?}");
    let status = outbox.status().await.unwrap();
    assert_eq!(of(&status, 1).failures, 1, "{status}");
    assert_eq!(
        scalar(&pool, "SELECT delay_ms FROM signals_outbox_shard").await,
        1000,
        "the first backoff, not the head's doubled"
    );
    execute(&pool, "UPDATE signals_outbox_shard SET due_at = 0").await;
    assert_eq!(worker.drain_once().await.unwrap().delivered, 1);
    assert_eq!(
        delivered(&pool).await,
        [(1, 1, 2), (1, 2, 2)],
        "each on its own second attempt"
    );
}

/// The ids of shard `id`'s waiting messages, oldest first.
async fn ids(pool: &PgPool, id: i64) -> Vec<i64> {
    sqlx::query_scalar("SELECT id FROM signals_outbox_message WHERE shard = $1 ORDER BY id")
        .bind(id)
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_says_why_each_message_waits_as_on_sqlite() {
    let Some((outbox, pool)) = outbox("pg_admin_explain").await else {
        return;
    };
    // Shards 1 and 3 fail (broken), shard 2 is paused; two attempts park a message.
    execute(&pool, "INSERT INTO broken (shard) VALUES (1), (3)").await;
    enqueue(
        &pool,
        &[
            (1, 1, Category::A, 0),
            (1, 2, Category::A, 0),
            (2, 1, Category::B, 0),
            (3, 1, Category::A, 0),
        ],
    )
    .await;
    let (one, two, three) = (
        ids(&pool, 1).await,
        ids(&pool, 2).await,
        ids(&pool, 3).await,
    );
    assert_eq!(outbox.explain(one[0]).await.unwrap(), Explanation::Due);
    assert_eq!(
        outbox.explain(one[1]).await.unwrap(),
        Explanation::Behind { head: one[0] }
    );
    assert_eq!(outbox.explain(9_999).await.unwrap(), Explanation::Unknown);

    let by_category = Pause::category(&task, &Category::B).unwrap();
    outbox.pause(&by_category).await.unwrap();
    assert_eq!(
        outbox.explain(two[0]).await.unwrap(),
        Explanation::Paused(by_category)
    );
    let by_shard = Pause::shard(&task, "org", 2).unwrap();
    outbox.pause(&by_shard).await.unwrap();
    assert_eq!(
        outbox.explain(two[0]).await.unwrap(),
        Explanation::Paused(by_shard),
        "the shard's pause first, as on SQLite"
    );

    // A first attempt each: shards 1 and 3 fail and back off.
    let mut worker = PgWorker::new(&outbox).signal(&task).max_attempts(2);
    let drained = worker.drain_once().await.unwrap();
    assert_eq!((drained.failed, drained.delivered), (2, 0), "{drained:?}");
    // An hour's backoff, as after many failures: still ahead however slow the machine.
    execute(
        &pool,
        "UPDATE signals_outbox_shard SET due_at = due_at + 3600000 WHERE shard = 1",
    )
    .await;
    let now = scalar(&pool, NOW).await;
    let due_at = scalar(
        &pool,
        "SELECT due_at FROM signals_outbox_shard WHERE shard = 1",
    )
    .await;
    let Explanation::Scheduled {
        at,
        in_ms,
        attempts,
        last_error,
    } = outbox.explain(one[0]).await.unwrap()
    else {
        panic!("shard 1 backs off");
    };
    assert_eq!((at, attempts), (due_at, 1));
    assert!(in_ms > 3_000_000 && in_ms <= due_at - now, "{in_ms}");
    assert!(last_error.unwrap().contains("no outbox message"));
    assert_eq!(
        outbox.explain(one[1]).await.unwrap(),
        Explanation::Behind { head: one[0] },
        "behind its failed head"
    );
    execute(&pool, "UPDATE signals_outbox_shard SET due_at = 0").await;
    worker.drain_once().await.unwrap();
    let Explanation::Parked { attempts, error } = outbox.explain(three[0]).await.unwrap() else {
        panic!("shard 3's message is parked after its second attempt");
    };
    assert_eq!(attempts, 2);
    assert!(error.contains("no outbox message"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_names_the_worker_holding_a_messages_shard_and_its_lease() {
    let Some((outbox, pool)) = outbox("pg_admin_explain_lease").await else {
        return;
    };
    // A worker holding shard 4 (found empty while an enqueue to it was open) holds it under
    // its lease, whatever else is true of it.
    enqueue(&pool, &[(4, 1, Category::A, 0)]).await;
    let mut open = pool.begin().await.unwrap();
    write(&mut open, &[(4, 2, Category::A, 0)]).await;
    let mut holder = PgWorker::new(&outbox)
        .signal(&task)
        .name("holder-7")
        .lease(Duration::from_secs(3600));
    assert_eq!(holder.drain_once().await.unwrap().delivered, 1);
    open.commit().await.unwrap();
    let four = ids(&pool, 4).await;
    let lease_until = scalar(
        &pool,
        "SELECT lease_until FROM signals_outbox_shard WHERE shard = 4",
    )
    .await;
    let explained = outbox.explain(four[0]).await.unwrap();
    let Explanation::Leased {
        holder: name,
        until,
        in_ms,
    } = &explained
    else {
        panic!("shard 4 is held: {explained:?}");
    };
    assert_eq!((name.as_deref(), *until), (Some("holder-7"), lease_until));
    assert!(*in_ms > 3_000_000, "{in_ms}");
    assert!(
        explained.to_string().starts_with(&format!(
            "its shard is held by worker holder-7, whose lease ends at {lease_until} (in "
        )),
        "{explained}"
    );
    // Its holder delivers it; nothing of it waits any more.
    assert_eq!(holder.drain_once().await.unwrap().delivered, 1);
    assert!(delivered(&pool).await.ends_with(&[(4, 1, 1), (4, 2, 1)]));
    assert_eq!(outbox.explain(four[0]).await.unwrap(), Explanation::Unknown);
}
