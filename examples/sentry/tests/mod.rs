//! The assertions of Sentry's receiver tests (E1–E4 and E7 in the reference), against real
//! `SQLite` databases: in memory, or a file when two connections must race.

mod e1_user_email;
mod e2_post_upgrade;
mod e3_onboarding;
mod e4_outbox;
mod e5_outbox_retry;
mod e6_signal_over_outbox;
mod e7_owners;
mod e8_postgres;

use std::cell::{Cell, RefCell};
use std::sync::Once;

use tracing::subscriber::Interest;
use tracing::{Dispatch, Metadata};

use crate::actions;
use crate::context::{Context, Settings};
use crate::db::{Db, args};
use crate::signals::SiloMode;

/// A context with default settings and no prompt answers, and an empty database.
fn fresh() -> (Context, Db) {
    (
        Context::new(Settings::default(), &[]),
        Db::temporary().unwrap(),
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

/// Runs `f` with `subscriber` receiving this thread's `tracing` spans and events.
///
/// Not `tracing::subscriber::with_default`: while a thread-local subscriber is the only one
/// registered, a callsite first reached by another test's thread (one with no subscriber) caches
/// "never" for every thread (tokio-rs/tracing#3611), so a test would lose its events whenever a
/// test running beside it happened to reach the callsite first. One global subscriber that
/// hands each thread's spans and events to that thread's own has no such race.
fn with_subscriber<T>(
    subscriber: impl tracing::Subscriber + Send + Sync + 'static,
    f: impl FnOnce() -> T,
) -> T {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        tracing::subscriber::set_global_default(PerThread)
            .expect("nothing else sets a global subscriber in the example's tests");
    });
    let previous = CURRENT.replace(Some(Dispatch::new(subscriber)));
    let result = f();
    CURRENT.set(previous);
    result
}

thread_local! {
    /// The subscriber of this thread's spans and events, while `with_subscriber` runs.
    static CURRENT: RefCell<Option<Dispatch>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's subscriber, if it has one.
fn current<T>(f: impl FnOnce(&Dispatch) -> T) -> Option<T> {
    CURRENT
        .try_with(|current| current.borrow().as_ref().map(f))
        .ok()
        .flatten()
}

/// The global subscriber of the example's tests: interested in every callsite, and handing
/// each thread's spans and events to that thread's subscriber.
struct PerThread;

impl tracing::Subscriber for PerThread {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        Interest::sometimes()
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        current(|dispatch| dispatch.enabled(metadata)).unwrap_or(false)
    }

    fn new_span(&self, attributes: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        current(|dispatch| dispatch.new_span(attributes))
            .unwrap_or_else(|| tracing::span::Id::from_u64(u64::MAX))
    }

    fn record(&self, span: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        current(|dispatch| dispatch.record(span, values));
    }

    fn record_follows_from(&self, span: &tracing::span::Id, follows: &tracing::span::Id) {
        current(|dispatch| dispatch.record_follows_from(span, follows));
    }

    fn event(&self, event: &tracing::Event<'_>) {
        current(|dispatch| dispatch.event(event));
    }

    fn enter(&self, span: &tracing::span::Id) {
        current(|dispatch| dispatch.enter(span));
    }

    fn exit(&self, span: &tracing::span::Id) {
        current(|dispatch| dispatch.exit(span));
    }

    fn try_close(&self, span: tracing::span::Id) -> bool {
        current(|dispatch| dispatch.try_close(span)).unwrap_or(false)
    }
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

/// A panic inside a transaction (a receiver's, unwinding through `Db::transaction`) rolls it
/// back: the connection is usable again, and nothing of it was written.
#[test]
fn a_panic_inside_a_transaction_rolls_it_back() {
    let (_, db) = fresh();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        db.transaction(|tx| -> Result<(), _> {
            tx.execute(
                "INSERT INTO auth_user (email, name) VALUES ('lost@example.com', 'lost')",
                args![],
            )?;
            panic!("a receiver's bug");
        })
    }));
    assert!(panicked.is_err());
    db.transaction(|tx| {
        tx.execute(
            "INSERT INTO auth_user (email, name) VALUES ('kept@example.com', 'kept')",
            args![],
        )
        .map(drop)
    })
    .expect("a new transaction starts");
    assert_eq!(rows(&db, "auth_user"), 1, "only the second insert is there");
}

/// A read-only database file, or one that is not a database, is an error naming the file.
#[test]
fn a_read_only_or_corrupt_database_is_an_error_naming_the_file() {
    let directory = std::env::temp_dir().join(format!("signals-db-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();

    let corrupt = directory.join("corrupt.sqlite3");
    std::fs::write(
        &corrupt,
        b"this is not a database, just some bytes long enough",
    )
    .unwrap();
    let error = Db::open(&corrupt).err().expect("a corrupt file is refused");
    assert!(
        error.to_string().contains(&corrupt.display().to_string()),
        "{error}"
    );

    let read_only = directory.join("read-only.sqlite3");
    drop(Db::open(&read_only).unwrap());
    // Opened read-only through an SQLite URI, whoever runs the test.
    let uri = std::path::PathBuf::from(format!("file:{}?mode=ro", read_only.display()));
    let error = Db::open(&uri)
        .err()
        .expect("a read-only database is refused");
    assert_eq!(
        error.to_string(),
        format!(
            "database {} is read-only; the application needs to write to it",
            uri.display()
        )
    );
    // Made read-only by its permissions (which root ignores).
    let mut permissions = std::fs::metadata(&read_only).unwrap().permissions();
    permissions.set_readonly(true);
    std::fs::set_permissions(&read_only, permissions).unwrap();
    match Db::open(&read_only) {
        Err(error) => assert!(
            error.to_string().contains(&read_only.display().to_string()),
            "{error}"
        ),
        // Root ignores file permissions: the file is writable after all.
        Ok(_) if running_as_root() => {}
        Ok(_) => panic!("a read-only database was opened for writing"),
    }
    let _ = std::fs::remove_dir_all(&directory);
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .any(|line| line.starts_with("Uid:") && line.split_whitespace().nth(1) == Some("0"))
    })
}

/// `--help` is a request, not a mistake: it asks to print the usage and exit 0.
#[test]
fn help_is_an_option_not_an_error() {
    let options = crate::Options::parse(["--help"].map(String::from).into_iter()).unwrap();
    assert!(options.help);
    assert!(crate::Options::parse(["--bogus"].map(String::from).into_iter()).is_err());
}

/// `outbox status | retry | worker` read their database from `--db`, before or after them;
/// a retry's target is its message id or its shard, as `status` prints it.
#[test]
fn outbox_commands_parse_their_target_and_database() {
    let parse = |args: &[&str]| crate::Options::parse(args.iter().map(|a| (*a).to_owned()));
    let options = parse(&["outbox", "status", "--db", "a.db"]).unwrap();
    assert_eq!(options.outbox, Some(crate::OutboxCommand::Status));
    assert_eq!(options.db.as_deref(), Some(std::path::Path::new("a.db")));
    let options = parse(&[
        "--db",
        "a.db",
        "outbox",
        "retry",
        "first_event_received",
        "Organization/1",
    ])
    .unwrap();
    assert_eq!(
        options.outbox,
        Some(crate::OutboxCommand::Retry(
            "first_event_received Organization/1".into()
        ))
    );
    assert_eq!(options.db.as_deref(), Some(std::path::Path::new("a.db")));
    assert!(parse(&["outbox", "retry", "--db", "a.db"]).is_err());
    assert!(parse(&["outbox", "vacuum"]).is_err());

    // A PostgreSQL URL, wherever it is given; any other `--database` is a SQLite file.
    let url = "postgres://postgres@localhost:5432/sentry";
    for flag in ["--database", "--db"] {
        let options = parse(&["outbox", "worker", flag, url]).unwrap();
        assert_eq!(options.outbox, Some(crate::OutboxCommand::Worker));
        assert_eq!((options.database.as_deref(), options.db), (Some(url), None));
    }
    let options = parse(&["--database", "sqlite://story.sqlite3"]).unwrap();
    assert_eq!(options.database, None);
    assert_eq!(options.db, Some("story.sqlite3".into()));
    assert!(parse(&["--database"]).is_err());
}

/// The run opens with the wiring as a compact tree, one line per receiver.
#[test]
fn the_wiring_tree_lists_each_signal_and_its_receivers() {
    let tree = crate::wiring_tree(&::signals::registry());
    // 20 receivers of the application, and E3's abort test's.
    assert!(
        tree.starts_with(
            "# The wiring: 13 signals, 21 receivers (--mermaid or --dot to draw it)\n"
        ),
        "{tree}"
    );
    assert!(
        tree.contains(
            "post_save\n  ├─ core::create_keys_for_project [sender Project, uid \"create_keys_for_project\"]\n"
        ),
        "{tree}"
    );
    assert!(
        tree.contains(
            "  └─ useremail::create_user_email [sender User, uid \"create_user_email\"]\n"
        ),
        "{tree}"
    );
}

/// The trace reads in run order: a receiver's line when it starts, the sends it makes and
/// its notes under it, its outcome after. `sentry upgrade` on a fresh monolith, whole.
#[test]
fn the_trace_of_an_upgrade_reads_in_run_order() {
    let ctx = Context {
        console: std::sync::Arc::new(crate::context::Console::printing()),
        ..Context::new(Settings::default(), &[])
    };
    let db = Db::temporary().unwrap();
    let printed = crate::out::capture(|| {
        with_subscriber(crate::trace::Tracer::new(), || {
            actions::upgrade(&ctx, &db, SiloMode::Monolith, false).unwrap();
        });
    });
    assert_eq!(
        printed,
        "\
▸ post_upgrade (sender Monolith)
  ▹ users::create_first_user
    ▸ post_save (sender User)
      ✓ stats::record_object_created
      ▹ useremail::create_user_email
        ▸ post_save (sender UserEmail)
          ▹ email::create_email
            ▸ post_save (sender Email)
              ✓ stats::record_object_created
          ✓ email::create_email
          ✓ stats::record_object_created
      ✓ useremail::create_user_email
    · created the superuser admin@localhost (debug, non-interactive)
  ✓ users::create_first_user
  ▹ core::create_default_projects
    ▸ post_save (sender Organization)
      ✓ stats::record_object_created
    ▸ pre_save (sender OrganizationMember)
      ✓ owners::prevent_demoting_last_owner
    ▸ post_save (sender OrganizationMember)
      ✓ stats::record_object_created
    ▸ post_save (sender Project)
      ▹ core::create_keys_for_project
        ▸ post_save (sender ProjectKey)
          ✓ stats::record_object_created
      ✓ core::create_keys_for_project
      ✓ stats::record_object_created
    ▸ project_created (sender \"create_default_project\")
      ✓ onboarding::record_new_project
  ✓ core::create_default_projects
  ▹ outbox::run_outbox_replications_for_self_hosted
    · outbox drained: 0 delivered, 0 left for later
  ✓ outbox::run_outbox_replications_for_self_hosted
"
    );
}
