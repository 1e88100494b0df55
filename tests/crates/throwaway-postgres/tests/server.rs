//! The throwaway server starts, answers, gives each test its own database, and stops.
#![allow(missing_docs)]

use sqlx::Connection as _;
use throwaway_postgres::Postgres;

#[tokio::test]
async fn a_server_answers_gives_fresh_databases_and_stops_when_dropped() {
    let Some(server) = Postgres::get() else {
        return;
    };
    let url = server.database("throwaway_smoke").await;
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("CREATE TABLE t (x INTEGER)")
        .execute(&mut conn)
        .await
        .unwrap();
    let (one,): (i32,) = sqlx::query_as("SELECT 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(one, 1);
    conn.close().await.unwrap();

    // Asked again, the database is new: the table is gone.
    let url = server.database("throwaway_smoke").await;
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let (tables,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM information_schema.tables WHERE table_name = 't'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(tables, 0);
    conn.close().await.unwrap();

    let started_here = std::env::var_os("DATABASE_URL").is_none();
    let admin = server.url().to_owned();
    drop(server);
    if started_here {
        assert!(
            sqlx::PgConnection::connect(&admin).await.is_err(),
            "the server stopped with its handle"
        );
    }
}

const CHILD: &str = "THROWAWAY_POSTGRES_CHILD";

/// The child's part (nothing in an ordinary run): starts a server, writes its URL to the file
/// the parent named, and aborts, which runs no destructor.
#[test]
fn child_starts_a_server_and_aborts() {
    let Some(file) = std::env::var_os(CHILD) else {
        return;
    };
    let server = Postgres::get().expect("the parent checked there is one");
    std::fs::write(file, server.url()).unwrap();
    std::process::abort();
}

#[tokio::test]
async fn a_server_whose_process_aborted_is_stopped_by_its_watchdog() {
    if std::env::var_os("DATABASE_URL").is_some() || Postgres::get().is_none() {
        return; // nothing of ours to stop, or nothing to start
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("url");
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_starts_a_server_and_aborts",
            "--test-threads=1",
        ])
        .env(CHILD, &file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the child aborts");
    let url = std::fs::read_to_string(&file).expect("the child wrote its server's URL");
    // The watchdog checks every second: wait for it, but not forever.
    for _ in 0..30 {
        if sqlx::PgConnection::connect(&url).await.is_err() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    panic!("the server of an aborted process still answers after 30 s: {url}");
}
