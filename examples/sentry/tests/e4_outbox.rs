//! E4: control outbox receivers by category, tombstones, region cache purges, coalescing.

use ::signals::outbox::Drained;

use super::{fresh, installed, rows};
use crate::context::Context;
use crate::db::{Db, args};
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

/// Everything the outbox holds, delivered by a worker, as the post-upgrade receiver does.
fn drain(ctx: &Context, db: &Db) -> Drained {
    db.worker(ctx).unwrap().drain_once().unwrap()
}

fn tombstones(db: &Db, region: &str, table: &str, id: i64) -> i64 {
    db.transaction(|tx| {
        tx.query_one(
            "SELECT COUNT(*) FROM sentry_regiontombstone \
             WHERE region_name = ?1 AND table_name = ?2 AND object_identifier = ?3",
            args![region, table, id],
        )
    })
    .unwrap()
}

#[test]
fn three_updates_then_one_drain_deliver_the_newest_row_once_per_region() {
    let (ctx, db) = fresh();
    integration(&ctx, &db, &["one", "two", "three"]);
    assert_eq!(
        rows(&db, "signals_outbox_message"),
        6,
        "three updates, two regions"
    );
    let drained = drain(&ctx, &db);
    assert_eq!((drained.delivered, drained.removed), (2, 6));
    let id = 1;
    assert_eq!(
        ctx.console.lines(),
        ["eu", "us"].map(|region| format!(
            "· integration {id} (three) is current in {region}: payload three, the newest of 3 message(s)"
        ))
    );
    assert_eq!(rows(&db, "signals_outbox_message"), 0);
}

#[test]
fn deleting_an_integration_tombstones_it_in_each_region() {
    let (ctx, db) = fresh();
    let integration = integration(&ctx, &db, &["one"]);
    drain(&ctx, &db);
    db.transaction(|tx| {
        outbox::delete_replicated(&ctx, tx, &integration, OutboxCategory::IntegrationUpdate)
    })
    .unwrap();
    assert_eq!(drain(&ctx, &db).delivered, 2);
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
                args![],
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
    // One delivery per region, each purging its own region's cache of the installations of
    // the organisations that live there.
    assert_eq!(drain(&ctx, &db).delivered, 2);
    for (region, own, other) in [
        ("eu", eu_install, us_install),
        ("us", us_install, eu_install),
    ] {
        assert!(!ctx.cache.contains(region, &application_key), "{region}");
        assert!(
            !ctx.cache.contains(region, &installation_key(own)),
            "{region}"
        );
        assert!(
            ctx.cache.contains(region, &installation_key(other)),
            "{region}: the other installation's org lives in the other region"
        );
    }
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
    let drained = drain(&ctx, &db);
    assert_eq!((drained.delivered, drained.failed), (2, 0));
    assert_eq!(rows(&db, "signals_outbox_message"), 0);
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
    assert_eq!(rows(&db, "signals_outbox_message"), 0);
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
    assert_eq!(rows(&db, "signals_outbox_message"), 0);
    assert_eq!(rows(&db, "sentry_integration"), 0);
}
