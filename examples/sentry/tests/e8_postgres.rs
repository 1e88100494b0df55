//! E8: the application on PostgreSQL (a throwaway server, or `DATABASE_URL`'s): the story
//! writes what it writes on `SQLite`, and several workers at once deliver every message of the
//! control outbox once.

use std::collections::BTreeMap;

use super::{fresh, rows};
use crate::context::{Console, Context, Settings};
use crate::db::{Db, TABLES, args};
use crate::models::Integration;
use crate::outbox::{self, OutboxCategory};

/// A new, empty database on the test binary's PostgreSQL server; `None` when the PostgreSQL
/// tests are skipped (no server, and CI's variable not set).
fn postgres(name: &str) -> Option<(Db, String)> {
    let server = throwaway_postgres::Postgres::shared()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = runtime.block_on(server.database(name));
    Some((Db::connect(&url).unwrap(), url))
}

/// The rows of every table, the analytics events and the metrics, after the story.
fn story_on(db: &Db) -> (BTreeMap<&'static str, i64>, Vec<&'static str>, [u64; 2]) {
    let ctx = Context::new(Settings::default(), &[]);
    crate::story(&ctx, db).unwrap();
    let tables = TABLES
        .iter()
        .map(|&table| (table, rows(db, table)))
        .collect();
    let metrics = [
        ctx.metrics.get("objects.created.auth_user"),
        ctx.metrics.get("objects.created.sentry_project"),
    ];
    (tables, ctx.analytics.names(), metrics)
}

#[test]
fn the_story_writes_on_postgres_what_it_writes_on_sqlite() {
    let Some((pg, _)) = postgres("sentry_story") else {
        return;
    };
    let (_, sqlite) = fresh();
    let on_sqlite = story_on(&sqlite);
    assert!(on_sqlite.0["sentry_featureadoption"] > 0, "{on_sqlite:?}");
    assert_eq!(story_on(&pg), on_sqlite);
}

#[test]
fn several_workers_on_postgres_deliver_each_message_once() {
    const INTEGRATIONS: i64 = 150;
    const WORKERS: usize = 3;
    let Some((db, url)) = postgres("sentry_workers") else {
        return;
    };
    let ctx = Context {
        console: std::sync::Arc::new(Console::default()),
        ..Context::new(Settings::default(), &[])
    };
    let regions = ctx.settings.regions.len();
    db.transaction(|tx| {
        for n in 0..INTEGRATIONS {
            let mut integration = Integration {
                id: None,
                provider: "github".into(),
                name: format!("GitHub {n}"),
            };
            outbox::save_replicated(
                &ctx,
                tx,
                &mut integration,
                OutboxCategory::IntegrationUpdate,
                "{}",
            )?;
        }
        Ok(())
    })
    .unwrap();
    let messages = usize::try_from(INTEGRATIONS).unwrap() * regions;
    assert_eq!(
        rows(&db, "signals_outbox_message"),
        i64::try_from(messages).unwrap()
    );

    // Each worker on a pool of its own, as a process would be, until the outbox is empty.
    let delivered: usize = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..WORKERS)
            .map(|_| {
                let ctx = ctx.clone();
                let db = Db::connect(&url).unwrap();
                scope.spawn(move || {
                    let mut delivered = 0;
                    for _ in 0..10_000 {
                        delivered += db.drain_once(&ctx).unwrap().delivered;
                        if rows(&db, "signals_outbox_message") == 0 {
                            return delivered;
                        }
                    }
                    panic!("the outbox still holds messages after 10,000 drains");
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().unwrap())
            .sum()
    });
    assert_eq!(delivered, messages, "every message delivered once");

    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for line in ctx.console.lines() {
        if line.contains("is current in") {
            *seen.entry(line).or_default() += 1;
        }
    }
    assert_eq!(seen.len(), messages, "each integration in each region");
    assert!(seen.values().all(|&count| count == 1), "{seen:?}");
}

/// Statements are written once, with `SQLite`'s `?N`, and read back the same on both.
#[test]
fn values_round_trip_on_both_backends() {
    let (_, sqlite) = fresh();
    let backends = [Some(sqlite), postgres("sentry_values").map(|(db, _)| db)];
    for db in backends.iter().flatten() {
        let read: Vec<(String, Option<i64>)> = db
            .transaction(|tx| {
                tx.execute(
                    "INSERT INTO sentry_organizationonboardingtask \
                     (organization_id, task, status, project_id, user_id) \
                     VALUES (?1, ?2, ?3, ?4, ?5), (?1, ?3, ?2, NULL, ?4)",
                    args![7, "it's ?2", "a $1 status", Some(i64::MIN), None::<i64>],
                )?;
                tx.query(
                    "SELECT task, project_id FROM sentry_organizationonboardingtask \
                     WHERE organization_id = ?1 ORDER BY id",
                    args![7],
                )
            })
            .unwrap();
        assert_eq!(
            read,
            [
                ("it's ?2".to_owned(), Some(i64::MIN)),
                ("a $1 status".to_owned(), None)
            ]
        );
        let nothing: Option<String> = db
            .transaction(|tx| tx.query_opt("SELECT email FROM auth_user", args![]))
            .unwrap();
        assert_eq!(nothing, None);
        let wrong = db.transaction(|tx| tx.query_one::<i64>("SELECT 'text' AS t", args![]));
        assert!(wrong.is_err(), "a text is not read as an integer");
    }
}
