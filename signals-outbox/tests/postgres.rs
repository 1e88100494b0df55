//! The PostgreSQL backend's first part against a real server (one per test binary, from
//! `throwaway-postgres`, each test in a database of its own): the schema is created on open,
//! idempotently and once under concurrent opens, a newer one is refused; `enqueue` writes in
//! the caller's transaction, with what SQLite's writes, in one statement for every destination.
#![allow(missing_docs, non_upper_case_globals)]

use serde::{Deserialize, Serialize};
use signals::outbox::postgres::{PgOutbox, VERSION};
use signals::outbox::{Enqueue, OutboxError};
use signals::signal;
use sqlx::PgPool;
use throwaway_postgres::Postgres;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Category {
    MemberUpdate,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberJoined {
    pub member_id: i64,
    pub org_id: i64,
}

signal! {
    pub static member_joined: durable Signal<MemberJoined, sender = Category>;
}

/// A pool on a fresh database named `name`, or `None` when skipped.
async fn database(name: &str) -> Option<PgPool> {
    let url = Postgres::shared()?.database(name).await;
    Some(PgPool::connect(&url).await.unwrap())
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn open_creates_the_schema_once_even_when_processes_open_it_together() {
    let Some(pool) = database("pg_open").await else {
        return;
    };
    let opens: Vec<_> = (0..4).map(|_| PgOutbox::open(pool.clone())).collect();
    for opened in futures_join(opens).await {
        opened.unwrap();
    }
    PgOutbox::open(pool.clone()).await.unwrap(); // idempotent
    assert_eq!(
        count(&pool, "SELECT version FROM signals_outbox_schema").await,
        VERSION
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM signals_outbox_schema").await,
        1
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM information_schema.tables WHERE table_name LIKE 'signals_outbox_%'"
        )
        .await,
        6
    );
    sqlx::query("UPDATE signals_outbox_schema SET version = 99")
        .execute(&pool)
        .await
        .unwrap();
    assert!(matches!(
        PgOutbox::open(pool.clone()).await,
        Err(OutboxError::SchemaTooNew { found: 99, known }) if known == VERSION
    ));
}

/// Runs `futures` concurrently on the test's runtime, each on a task of its own.
async fn futures_join<F>(futures: Vec<F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut outputs = Vec::new();
    for handle in handles {
        outputs.push(handle.await.unwrap());
    }
    outputs
}

#[tokio::test]
async fn a_message_exists_if_and_only_if_its_transaction_commits() {
    let Some(pool) = database("pg_enqueue").await else {
        return;
    };
    let outbox = PgOutbox::open(pool.clone()).await.unwrap();
    let args = MemberJoined {
        member_id: 7,
        org_id: 10,
    };

    let mut tx = outbox.pool().begin().await.unwrap();
    member_joined
        .enqueue(&mut tx, &Category::MemberUpdate, &args)
        .shard("Organization", 10)
        .write()
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(
        count(&pool, "SELECT count(*) FROM signals_outbox_message").await,
        0
    );

    let mut tx = outbox.pool().begin().await.unwrap();
    let enqueued = member_joined
        .enqueue(&mut tx, &Category::MemberUpdate, &args)
        .shard("Organization", 10)
        .object(7)
        .write()
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let id = enqueued.ids().next().unwrap();
    let row: (
        String,
        String,
        String,
        i64,
        String,
        Option<i64>,
        String,
        i32,
        i64,
    ) = sqlx::query_as(
        "SELECT signal, destination, scope, shard, category, object, payload, attempts,
                    (extract(epoch FROM clock_timestamp()) * 1000)::bigint - created_at
             FROM signals_outbox_message WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .unwrap();
    let (signal, destination, scope, shard, category, object, payload, attempts, age) = row;
    // What SQLite's enqueue stores, column for column.
    assert_eq!(
        (signal.as_str(), destination.as_str(), scope.as_str(), shard),
        ("member_joined", "", "Organization", 10)
    );
    assert_eq!(category, "\"MemberUpdate\"");
    assert_eq!(object, Some(7));
    assert_eq!(payload, r#"{"member_id":7,"org_id":10}"#);
    assert_eq!(attempts, 0);
    assert!(
        (0..60_000).contains(&age),
        "created at the server's now: {age} ms ago"
    );
}

#[tokio::test]
async fn a_fan_out_writes_one_message_per_destination_in_order() {
    let Some(pool) = database("pg_fan_out").await else {
        return;
    };
    let outbox = PgOutbox::open(pool.clone()).await.unwrap();
    let mut tx = outbox.pool().begin().await.unwrap();
    let enqueued = member_joined
        .enqueue(
            &mut tx,
            &Category::MemberUpdate,
            &MemberJoined {
                member_id: 1,
                org_id: 2,
            },
        )
        .shard("Organization", 2)
        .to(["eu", "us", "ap"])
        .write()
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let stored: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, destination FROM signals_outbox_message ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    let reported: Vec<(i64, String)> = enqueued
        .messages()
        .iter()
        .map(|(id, shard)| (*id, shard.destination.clone()))
        .collect();
    assert_eq!(reported, stored);
    assert_eq!(
        reported.iter().map(|(_, d)| d.as_str()).collect::<Vec<_>>(),
        ["eu", "us", "ap"]
    );
}
