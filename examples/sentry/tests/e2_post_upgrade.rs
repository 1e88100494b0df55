//! E2: `post_upgrade` receivers, filtered by silo mode; `handle_db_failure`.

use super::{fresh, installed, rows};
use crate::actions;
use crate::context::{Context, Settings};
use crate::db::{Db, args};
use crate::signals::SiloMode;

fn superusers(db: &Db) -> i64 {
    db.transaction(|tx| {
        tx.query_one(
            "SELECT COUNT(*) FROM auth_user WHERE is_superuser = 1",
            args![],
        )
    })
    .unwrap()
}

#[test]
fn upgrading_a_monolith_creates_the_superuser_and_default_project_once() {
    let (ctx, db) = installed();
    assert_eq!(superusers(&db), 1);
    assert_eq!(rows(&db, "sentry_organization"), 1);
    assert_eq!(rows(&db, "sentry_project"), 1);
    actions::upgrade(&ctx, &db, SiloMode::Monolith, false).unwrap();
    assert_eq!(superusers(&db), 1);
    assert_eq!(rows(&db, "sentry_organization"), 1);
    assert_eq!(rows(&db, "sentry_project"), 1);
}

#[test]
fn upgrading_control_or_region_runs_only_the_any_sender_receiver() {
    for silo in [SiloMode::Control, SiloMode::Region] {
        let (ctx, db) = fresh();
        actions::upgrade(&ctx, &db, silo, false).unwrap();
        assert_eq!(rows(&db, "auth_user"), 0, "{silo:?}");
        assert_eq!(rows(&db, "sentry_project"), 0, "{silo:?}");
        assert!(
            ctx.console
                .lines()
                .iter()
                .any(|line| line.contains("outbox drained")),
            "{silo:?}: {:?}",
            ctx.console.lines()
        );
    }
}

#[test]
fn a_schema_error_in_create_default_projects_is_logged_and_the_upgrade_goes_on() {
    let (ctx, db) = fresh();
    db.execute_batch("DROP TABLE sentry_project").unwrap();
    actions::upgrade(&ctx, &db, SiloMode::Monolith, false).unwrap();
    let lines = ctx.console.lines();
    assert!(
        lines.iter().any(|line| line
            .contains("Failed processing signal create_default_projects: database: no such table: sentry_project")),
        "{lines:#?}"
    );
    assert_eq!(superusers(&db), 1, "the receiver before it ran");
    assert_eq!(
        rows(&db, "sentry_organization"),
        0,
        "its transaction rolled back"
    );
    assert!(
        lines.iter().any(|line| line.contains("outbox drained")),
        "the receiver after it ran: {lines:#?}"
    );
}

#[test]
fn an_error_from_a_receiver_without_handle_db_failure_aborts_the_upgrade() {
    let (ctx, db) = fresh();
    // Interactive, but the prompt has no answer: `create_first_user` fails.
    let error = actions::upgrade(&ctx, &db, SiloMode::Monolith, true).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("users::create_first_user"), "{message}");
    assert!(message.contains("no answer"), "{message}");
    assert_eq!(rows(&db, "auth_user"), 0);
    assert_eq!(
        rows(&db, "sentry_organization"),
        0,
        "later receivers did not run"
    );
}

#[test]
fn answering_no_creates_no_user_and_says_to_run_createuser_later() {
    let ctx = Context::new(Settings::default(), &["n"]);
    let db = Db::temporary().unwrap();
    actions::upgrade(&ctx, &db, SiloMode::Monolith, true).unwrap();
    assert_eq!(rows(&db, "auth_user"), 0);
    assert!(
        ctx.console
            .lines()
            .iter()
            .any(|line| line.contains("Run `sentry createuser` later")),
        "{:#?}",
        ctx.console.lines()
    );
}

#[test]
fn answering_yes_creates_the_superuser_given() {
    let ctx = Context::new(Settings::default(), &["y", "grace@example.com"]);
    let db = Db::temporary().unwrap();
    actions::upgrade(&ctx, &db, SiloMode::Monolith, true).unwrap();
    let email: String = db
        .transaction(|tx| {
            tx.query_one(
                "SELECT email FROM auth_user WHERE is_superuser = 1",
                args![],
            )
        })
        .unwrap();
    assert_eq!(email, "grace@example.com");
    assert_eq!(
        rows(&db, "sentry_organizationmember"),
        1,
        "grace owns the default org"
    );
}

#[test]
fn a_non_interactive_upgrade_without_debug_creates_no_user() {
    let ctx = Context::new(
        Settings {
            debug: false,
            ..Settings::default()
        },
        &[],
    );
    let db = Db::temporary().unwrap();
    actions::upgrade(&ctx, &db, SiloMode::Monolith, false).unwrap();
    assert_eq!(rows(&db, "auth_user"), 0);
    assert_eq!(
        rows(&db, "sentry_project"),
        1,
        "the default project needs no user"
    );
}
