//! The assertions of Sentry's receiver tests (E1–E4 and E7 in the reference), against real
//! `SQLite` databases: in memory, or a file when two connections must race.

mod e1_user_email;
mod e2_post_upgrade;
mod e3_onboarding;
mod e4_outbox;
mod e7_owners;

use std::cell::Cell;

use crate::actions;
use crate::context::{Context, Settings};
use crate::db::Db;
use crate::signals::SiloMode;

/// A context with default settings and no prompt answers, and an empty database.
fn fresh() -> (Context, Db) {
    (
        Context::new(Settings::default(), &[]),
        Db::in_memory().unwrap(),
    )
}

/// A monolith after `sentry upgrade`: superuser 1 (`admin@localhost`) owns organisation 1
/// (`sentry`, mapped to `eu`), which has project 1 (`internal`).
fn installed() -> (Context, Db) {
    let (ctx, db) = fresh();
    actions::upgrade(&ctx, &db, SiloMode::Monolith, false).unwrap();
    (ctx, db)
}

fn rows(db: &Db, table: &str) -> i64 {
    db.count(table).unwrap()
}

thread_local! {
    /// Calls seen by test receivers on this thread: receivers are global, and tests run in
    /// parallel, so each test counts only what its own thread sent.
    static CALLS: Cell<u32> = const { Cell::new(0) };
}

fn calls() -> u32 {
    CALLS.with(Cell::get)
}

fn count_call() {
    CALLS.with(|calls| calls.set(calls.get() + 1));
}

/// `--explain post_save User`: the app's wiring, explained.
#[test]
fn explain_says_which_post_save_receivers_run_for_a_user() {
    let explanation = ::signals::explain_by_name("post_save", Some("User")).unwrap();
    assert_eq!(
        explanation.running(),
        [
            "sentry::receivers::stats::record_object_created",
            "sentry::receivers::useremail::create_user_email",
        ]
    );
    let text = explanation.to_string();
    assert!(
        text.contains("create_keys_for_project [sender sentry::models::Project"),
        "{text}"
    );
    assert!(text.contains("listens to sender sentry::models::Project, not sentry::models::User"));
}

/// `--explain` parses its two operands, `none` meaning a send without sender.
#[test]
fn the_explain_option_takes_a_signal_and_a_sender() {
    let args = ["--explain", "post_upgrade", "none"].map(String::from);
    let options = crate::Options::parse(args.into_iter()).unwrap();
    assert_eq!(options.explain, Some(("post_upgrade".to_owned(), None)));
    let args = ["--explain", "post_upgrade"].map(String::from);
    assert!(crate::Options::parse(args.into_iter()).is_err());
}

/// `--explain post_save Usr`: a sender nobody listens to is an error naming the known ones.
#[test]
fn explain_of_an_unknown_sender_lists_the_known_ones() {
    let error = ::signals::explain_by_name("post_save", Some("Usr")).unwrap_err();
    let text = error.to_string();
    assert!(
        text.starts_with("no receiver of `post_save` listens to a sender named `Usr`"),
        "{text}"
    );
    assert!(text.contains("sentry::models::User"), "{text}");
}
