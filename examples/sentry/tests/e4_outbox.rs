//! E4: control outbox receivers by category, tombstones, region cache purges, coalescing.

use rusqlite::params;

use super::{fresh, installed, rows};
use crate::context::Context;
use crate::db::Db;
use crate::error::AppError;
use crate::models::{self, Integration, SentryApp, SentryAppInstallation};
use crate::outbox::{self, OutboxCategory, OutboxScope};

fn integration(ctx: &Context, db: &Db, updates: &[&str]) -> Integration {
    db.transaction(|tx| {
        let mut integration = Integration {
            id: None,
            provider: "github".into(),
            name: String::new(),
        };
        for name in updates {
            integration.name = (*name).into();
            outbox::save_replicated(
                ctx,
                tx,
                &mut integration,
                OutboxCategory::IntegrationUpdate,
                name,
            )?;
        }
        Ok(integration)
    })
    .unwrap()
}

fn tombstones(db: &Db, region: &str, table: &str, id: i64) -> i64 {
    db.transaction(|tx| {
        Ok(tx.conn().query_row(
            "SELECT COUNT(*) FROM sentry_regiontombstone \
             WHERE region_name = ?1 AND table_name = ?2 AND object_identifier = ?3",
            params![region, table, id],
            |row| row.get(0),
        )?)
    })
    .unwrap()
}

#[test]
fn three_updates_then_one_drain_deliver_the_newest_row_once_per_region() {
    let (ctx, db) = fresh();
    integration(&ctx, &db, &["one", "two", "three"]);
    assert_eq!(
        rows(&db, "sentry_controloutbox"),
        6,
        "three updates, two regions"
    );
    let report = outbox::drain(&ctx, &db, None).unwrap();
    assert_eq!(report.delivered.len(), 2);
    for delivery in &report.delivered {
        assert_eq!(delivery.payload, "three");
        assert_eq!(delivery.rows, 3);
        assert_eq!(
            delivery.receivers,
            ["sentry::receivers::outbox::control::process_integration_updates"]
        );
    }
    assert_eq!(rows(&db, "sentry_controloutbox"), 0);
}

#[test]
fn deleting_an_integration_tombstones_it_in_each_region() {
    let (ctx, db) = fresh();
    let integration = integration(&ctx, &db, &["one"]);
    outbox::drain(&ctx, &db, None).unwrap();
    db.transaction(|tx| {
        outbox::delete_replicated(&ctx, tx, &integration, OutboxCategory::IntegrationUpdate)
    })
    .unwrap();
    let report = outbox::drain(&ctx, &db, None).unwrap();
    assert_eq!(report.delivered.len(), 2);
    let id = integration.id.unwrap();
    assert_eq!(tombstones(&db, "eu", "sentry_integration", id), 1);
    assert_eq!(tombstones(&db, "us", "sentry_integration", id), 1);
}

#[test]
fn recording_a_tombstone_twice_is_a_no_op() {
    let (_, db) = fresh();
    let first = db
        .transaction(|tx| outbox::record_tombstone(tx, "eu", "sentry_integration", 7))
        .unwrap();
    let second = db
        .transaction(|tx| outbox::record_tombstone(tx, "eu", "sentry_integration", 7))
        .unwrap();
    assert!(first);
    assert!(!second);
    assert_eq!(tombstones(&db, "eu", "sentry_integration", 7), 1);
}

#[test]
fn a_sentry_app_update_purges_the_region_installations_and_the_application_key() {
    let (ctx, db) = installed();
    let (app, eu_install, us_install) = db
        .transaction(|tx| {
            tx.execute(
                "INSERT INTO sentry_organizationmapping (organization_id, region_name) VALUES (2, 'us')",
                [],
            )?;
            let mut app = SentryApp {
                id: None,
                application_id: 42,
                slug: "linear".into(),
            };
            outbox::save_replicated(&ctx, tx, &mut app, OutboxCategory::SentryAppUpdate, "{}")?;
            let mut installs = Vec::new();
            for organization_id in [1, 2] {
                let mut install = SentryAppInstallation {
                    id: None,
                    sentry_app_id: app.id.unwrap(),
                    organization_id,
                };
                models::save(&ctx, tx, &mut install)?;
                installs.push(install.id.unwrap());
            }
            Ok((app, installs[0], installs[1]))
        })
        .unwrap();
    let installation_key = |id: i64| format!("app_service.get_installation:{id}");
    let application_key = format!("app_service.get_by_application_id:{}", app.application_id);
    for region in ["eu", "us"] {
        ctx.cache.set(region, &application_key, "linear");
        ctx.cache
            .set(region, &installation_key(eu_install), "eu install");
        ctx.cache
            .set(region, &installation_key(us_install), "us install");
    }
    outbox::drain(&ctx, &db, Some("eu")).unwrap();
    assert!(!ctx.cache.contains("eu", &application_key));
    assert!(!ctx.cache.contains("eu", &installation_key(eu_install)));
    assert!(
        ctx.cache.contains("eu", &installation_key(us_install)),
        "its org lives in us"
    );
    assert!(
        ctx.cache.contains("us", &application_key),
        "the us row was not drained"
    );
    assert!(ctx.cache.contains("us", &installation_key(us_install)));
}

#[test]
fn a_category_without_receiver_is_drained_and_deleted() {
    let (ctx, db) = fresh();
    db.transaction(|tx| {
        outbox::enqueue(
            &ctx,
            tx,
            OutboxScope::App,
            OutboxCategory::ApiApplicationUpdate,
            3,
            "{}",
        )
    })
    .unwrap();
    let report = outbox::drain(&ctx, &db, None).unwrap();
    assert_eq!(report.delivered.len(), 2);
    assert!(report.delivered.iter().all(|d| d.receivers.is_empty()));
    assert!(report.failed.is_empty());
    assert_eq!(rows(&db, "sentry_controloutbox"), 0);
}

#[test]
fn writing_a_category_into_the_wrong_scope_fails_at_enqueue() {
    let (ctx, db) = fresh();
    let error = db
        .transaction(|tx| {
            outbox::enqueue(
                &ctx,
                tx,
                OutboxScope::App,
                OutboxCategory::IntegrationUpdate,
                7,
                "{}",
            )
        })
        .unwrap_err();
    assert!(matches!(
        error,
        AppError::WrongScope {
            category: OutboxCategory::IntegrationUpdate,
            expected: OutboxScope::Integration,
            given: OutboxScope::App,
        }
    ));
    assert_eq!(rows(&db, "sentry_controloutbox"), 0);
}

#[test]
fn a_rolled_back_transaction_leaves_no_outbox_row() {
    let (ctx, db) = fresh();
    let result: Result<(), AppError> = db.transaction(|tx| {
        let mut integration = Integration {
            id: None,
            provider: "github".into(),
            name: "GitHub".into(),
        };
        outbox::save_replicated(
            &ctx,
            tx,
            &mut integration,
            OutboxCategory::IntegrationUpdate,
            "{}",
        )?;
        Err(AppError::Validation("changed my mind".into()))
    });
    assert!(result.is_err());
    assert_eq!(rows(&db, "sentry_controloutbox"), 0);
    assert_eq!(rows(&db, "sentry_integration"), 0);
}
