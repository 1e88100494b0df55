//! A small Sentry, wired the way Sentry's `src/sentry/receivers/` is: models on `SQLite`, the
//! signals of `signals.rs`, and receivers in `receivers/`, one file per concern, each connected
//! by `#[receiver]`. This command creates a fresh database, prints the wiring, then runs a short
//! story and traces every signal sent, every receiver run and every row written.
//!
//! ```sh
//! cargo run --example sentry                       # the story, on a fresh database
//! cargo run --example sentry -- --mermaid wiring.mmd --dot -   # also the graphs (- : stdout)
//! cargo run --example sentry -- --db story.sqlite3 # keep the database
//! cargo run --example sentry -- --explain post_save User  # which receivers run, and why not
//! cargo run --example sentry -- outbox status --db story.sqlite3   # what the outbox holds
//! cargo run --example sentry -- outbox retry 12 --db story.sqlite3 # a message (or a shard) due now
//! cargo run --example sentry -- outbox worker --db story.sqlite3   # deliver until Ctrl-C
//!
//! # The same on PostgreSQL: the story on an empty database, then as many workers as you like
//! cargo run --example sentry -- --database postgres://postgres@localhost/sentry
//! cargo run --example sentry -- outbox worker --database postgres://postgres@localhost/sentry
//! ```

mod actions;
mod analytics;
mod context;
mod db;
mod error;
mod models;
mod out;
mod outbox;
mod projectflags;
mod receivers;
mod remote;
mod signals;
#[cfg(test)]
mod tests;
mod trace;

use std::path::PathBuf;
use std::process::ExitCode;

use crate::context::{Console, Context, Settings, SignalService};
use crate::db::{Db, TABLES};
use crate::error::AppError;
use crate::models::{Integration, Project, SentryApp, SentryAppInstallation, User};
use crate::outbox::OutboxCategory;
use crate::signals::{Event, SiloMode};

const USAGE: &str = "usage: cargo run --example sentry -- [--db FILE | --database URL] [--mermaid FILE] [--dot FILE]
       cargo run --example sentry -- --explain SIGNAL SENDER
       cargo run --example sentry -- --report
       cargo run --example sentry -- outbox (status | retry MESSAGE | retry SHARD | worker) (--db FILE | --database URL)

  --db FILE       write the database to FILE (which must not exist) and keep it
  --database URL  use the PostgreSQL database at URL (postgres://user@host:port/name), which
                  must have no users yet for the story; any other URL is a SQLite file
  --mermaid FILE  also write the wiring graph, as Mermaid, to FILE (- for standard output)
  --dot FILE      also write the wiring graph, as Graphviz DOT, to FILE (- for standard output)
  -h, --help      print this and exit
  --explain SIGNAL SENDER
                  say which receivers of SIGNAL run for SENDER (a type such as User, a
                  value such as Monolith, or `none` for a send without sender), in which
                  order, and why the others do not; then exit
  --report        list every signal and its receivers with file:line; then exit
  outbox status   the durable messages waiting in FILE: due, scheduled, paused, parked, per
                  shard and category, with their oldest age and last error
  outbox retry MESSAGE | SHARD
                  make a message (by id) or a shard (as status prints it, e.g.
                  `first_event_received Organization/1`) due now; parked messages go back
  outbox worker   deliver the durable messages until interrupted (Ctrl-C, SIGTERM); on
                  PostgreSQL, run as many worker processes as you like, on any machines";

/// An `outbox` command, on the database of `--db` or `--database`.
#[derive(Debug, PartialEq, Eq)]
enum OutboxCommand {
    Status,
    /// A message id or a shard, as typed.
    Retry(String),
    Worker,
}

/// The command line.
#[derive(Debug, Default)]
struct Options {
    db: Option<PathBuf>,
    /// `--database`: a PostgreSQL URL.
    database: Option<String>,
    mermaid: Option<PathBuf>,
    dot: Option<PathBuf>,
    /// `--explain SIGNAL SENDER`: the signal and the sender (`None` for `none`).
    explain: Option<(String, Option<String>)>,
    report: bool,
    outbox: Option<OutboxCommand>,
    help: bool,
}

impl Options {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Self, String> {
        let mut options = Self::default();
        while let Some(arg) = args.next() {
            let slot = match arg.as_str() {
                "--explain" => {
                    let (Some(signal), Some(sender)) = (args.next(), args.next()) else {
                        return Err(format!("--explain needs a SIGNAL and a SENDER\n\n{USAGE}"));
                    };
                    let sender = (sender != "none").then_some(sender);
                    options.explain = Some((signal, sender));
                    continue;
                }
                "--report" => {
                    options.report = true;
                    continue;
                }
                "outbox" => {
                    options.outbox = Some(match args.next().as_deref() {
                        Some("status") => OutboxCommand::Status,
                        Some("worker") => OutboxCommand::Worker,
                        Some("retry") => {
                            let mut target = Vec::new();
                            while let Some(arg) = args.next() {
                                if arg == "--db" || arg == "--database" {
                                    let value = args
                                        .next()
                                        .ok_or_else(|| format!("{arg} needs a value\n\n{USAGE}"))?;
                                    options.set_database(value);
                                } else {
                                    target.push(arg);
                                }
                            }
                            if target.is_empty() {
                                return Err(format!(
                                    "outbox retry needs a MESSAGE id or a SHARD\n\n{USAGE}"
                                ));
                            }
                            OutboxCommand::Retry(target.join(" "))
                        }
                        other => {
                            return Err(format!(
                                "outbox needs status, retry or worker, not {other:?}\n\n{USAGE}"
                            ));
                        }
                    });
                    continue;
                }
                "--db" | "--database" => {
                    let value = args
                        .next()
                        .ok_or_else(|| format!("{arg} needs a value\n\n{USAGE}"))?;
                    options.set_database(value);
                    continue;
                }
                "--mermaid" => &mut options.mermaid,
                "--dot" => &mut options.dot,
                "-h" | "--help" => {
                    options.help = true;
                    continue;
                }
                other => return Err(format!("unknown argument {other:?}\n\n{USAGE}")),
            };
            let value = args
                .next()
                .ok_or_else(|| format!("{arg} needs a FILE\n\n{USAGE}"))?;
            *slot = Some(PathBuf::from(value));
        }
        Ok(options)
    }

    /// `--db FILE` or `--database URL`: a PostgreSQL URL, or else a SQLite file.
    fn set_database(&mut self, value: String) {
        if ["postgres://", "postgresql://"]
            .iter()
            .any(|scheme| value.starts_with(scheme))
        {
            self.database = Some(value);
        } else {
            let file = value.strip_prefix("sqlite://").unwrap_or(&value);
            self.db = Some(PathBuf::from(file));
        }
    }
}

fn main() -> ExitCode {
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    if options.help {
        out::line(USAGE);
        return ExitCode::SUCCESS;
    }
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(options: &Options) -> Result<(), Box<dyn std::error::Error>> {
    // Global: on PostgreSQL, durable receivers run on the worker's threads.
    tracing::subscriber::set_global_default(trace::Tracer::new())?;
    let (errors, warnings): (Vec<_>, Vec<_>) = ::signals::check()
        .into_iter()
        .partition(::signals::WiringError::is_error);
    for warning in &warnings {
        eprintln!("warning: {warning}");
    }
    if !errors.is_empty() {
        return Err(format!("wiring errors: {errors:#?}").into());
    }
    if let Some((signal, sender)) = &options.explain {
        let explanation = ::signals::explain_by_name(signal, sender.as_deref())?;
        out::text(explanation);
        return Ok(());
    }
    if options.report {
        out::text(::signals::report());
        return Ok(());
    }
    if let Some(command) = &options.outbox {
        return outbox_command(command, options);
    }
    let registry = ::signals::registry();
    out::text(wiring_tree(&registry));
    for (path, graph) in [
        (&options.mermaid, registry.to_mermaid()),
        (&options.dot, registry.to_dot()),
    ] {
        match path {
            Some(path) if path.as_os_str() == "-" => out::text(graph),
            Some(path) => {
                std::fs::write(path, graph)?;
                out::line(format_args!("(wrote {})", path.display()));
            }
            None => {}
        }
    }

    if let Some(url) = &options.database {
        let db = Db::connect(url)?;
        let users = db.count("auth_user")?;
        if users > 0 {
            return Err(format!(
                "the PostgreSQL database has {users} user(s) already; the story needs an \
                 empty one (the outbox commands work on this one)"
            )
            .into());
        }
        out::line(format_args!(
            "\n# The story, on PostgreSQL, on an empty database\n{LEGEND}"
        ));
        return tell(&db);
    }
    let (path, keep) = match &options.db {
        Some(path) if path.exists() => {
            return Err(format!(
                "{} exists; the story needs a fresh database",
                path.display()
            )
            .into());
        }
        Some(path) => (path.clone(), true),
        None => (
            std::env::temp_dir().join(format!("signals-sentry-{}.sqlite3", std::process::id())),
            false,
        ),
    };
    let _remove = (!keep).then(|| RemoveOnDrop(path.clone()));
    let db = Db::open(&path)?;
    out::line(format_args!(
        "\n# The story, on a fresh database at {}\n{LEGEND}",
        path.display()
    ));
    tell(&db)
}

/// Runs the story on `db`, then prints what analytics and metrics recorded.
fn tell(db: &Db) -> Result<(), Box<dyn std::error::Error>> {
    let ctx = Context {
        console: std::sync::Arc::new(Console::printing()),
        ..Context::new(Settings::default(), &[])
    };
    story(&ctx, db)?;
    out::line(format_args!(
        "\nanalytics recorded: {:?}",
        ctx.analytics.names()
    ));
    out::line(format_args!(
        "metrics: objects.created.auth_user = {}, objects.created.sentry_project = {}",
        ctx.metrics.get("objects.created.auth_user"),
        ctx.metrics.get("objects.created.sentry_project")
    ));
    Ok(())
}

/// `outbox status | retry | worker` on an existing database.
fn outbox_command(
    command: &OutboxCommand,
    options: &Options,
) -> Result<(), Box<dyn std::error::Error>> {
    let db = match (&options.database, &options.db) {
        (Some(url), _) => Db::connect(url)?,
        (None, Some(path)) if path.exists() => Db::open(path)?,
        (None, Some(path)) => return Err(format!("{} does not exist", path.display()).into()),
        (None, None) => {
            return Err("outbox commands need the database: --db FILE or --database URL".into());
        }
    };
    match command {
        OutboxCommand::Status => out::text(db.status()?.to_string()),
        OutboxCommand::Retry(target) => {
            if let Ok(id) = target.parse::<i64>() {
                db.retry_message(id)?;
                out::line(format_args!("message {id} is due now"));
            } else {
                let shard: ::signals::outbox::Shard = target.parse()?;
                let restored = db.retry_shard(&shard)?;
                out::line(format_args!(
                    "{shard} is due now; {restored} parked message(s) went back to it"
                ));
            }
        }
        OutboxCommand::Worker => {
            let ctx = Context {
                console: std::sync::Arc::new(Console::printing()),
                ..Context::new(Settings::default(), &[])
            };
            db.run_worker(&ctx)?;
        }
    }
    Ok(())
}

/// What the trace's marks mean.
const LEGEND: &str = "(▸ a signal sent, and by what; ✓ a receiver that returned; ✗ one that \
                      failed; · a note from a receiver; ! a log event)";

/// Removes the temporary database and its journals when dropped: at the end of the story, and
/// also if it fails or panics.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
        }
    }
}

/// The wiring as a compact tree: each signal, then each of its receivers with its sender and
/// `dispatch_uid`, in dispatch order.
fn wiring_tree(registry: &::signals::Registry) -> String {
    use std::fmt::Write as _;
    let receivers: usize = registry.signals().iter().map(|s| s.receivers().len()).sum();
    let mut tree = format!(
        "# The wiring: {} signals, {receivers} receivers (--mermaid or --dot to draw it)\n",
        registry.signals().len()
    );
    for signal in registry.signals() {
        let _ = writeln!(tree, "{}", signal.name());
        let count = signal.receivers().len();
        for (index, entry) in signal.receivers().iter().enumerate() {
            let branch = if index + 1 == count {
                "└─"
            } else {
                "├─"
            };
            let name = entry.receiver().name();
            let name = name
                .split_once("::receivers::")
                .map_or(name, |(_, rest)| rest);
            let sender = entry
                .sender()
                .map_or("any", |sender| sender.rsplit("::").next().unwrap_or(sender));
            let _ = write!(tree, "  {branch} {name} [sender {sender}");
            if let Some(uid) = entry.receiver().dispatch_uid() {
                let _ = write!(tree, ", uid {uid:?}");
            }
            let _ = writeln!(tree, "]");
        }
    }
    tree
}

/// Runs `step` and prints the rows it wrote, table by table.
fn step<T>(
    ctx: &Context,
    db: &Db,
    title: &str,
    step: impl FnOnce() -> Result<T, AppError>,
) -> Result<T, AppError> {
    out::line(format_args!("\n## {title}"));
    let before = counts(db)?;
    let result = step();
    let after = counts(db)?;
    let written: Vec<String> = TABLES
        .iter()
        .zip(before.iter().zip(&after))
        .filter(|(_, (before, after))| before != after)
        .map(|(table, (before, after))| format!("{table} {:+}", after - before))
        .collect();
    match &result {
        Ok(_) => ctx.console.line(format!(
            "rows written: {}",
            if written.is_empty() {
                "none".into()
            } else {
                written.join(", ")
            }
        )),
        Err(error) => ctx.console.line(format!(
            "refused: {error}; rows written: {}",
            if written.is_empty() {
                "none".into()
            } else {
                written.join(", ")
            }
        )),
    }
    result
}

fn counts(db: &Db) -> Result<Vec<i64>, AppError> {
    TABLES.iter().map(|table| db.count(table)).collect()
}

fn story(ctx: &Context, db: &Db) -> Result<(), AppError> {
    let ada = install(ctx, db)?;
    onboarding(ctx, db)?;
    members(ctx, db, ada.id.expect("saved"))?;
    control_silo(ctx, db)
}

/// Upgrade, then a sign-up: the model-signal cascade and the silo filter.
fn install(ctx: &Context, db: &Db) -> Result<User, AppError> {
    step(
        ctx,
        db,
        "1. `sentry upgrade` on a monolith, non-interactive",
        || actions::upgrade(ctx, db, SiloMode::Monolith, false),
    )?;
    step(
        ctx,
        db,
        "2. the same upgrade on control and region silos: only the any-sender receiver runs",
        || {
            actions::upgrade(ctx, db, SiloMode::Control, false)?;
            actions::upgrade(ctx, db, SiloMode::Region, false)
        },
    )?;
    step(ctx, db, "3. Ada signs up", || {
        actions::sign_up(ctx, db, "ada@example.com", "Ada")
    })
}

/// First events, a failing analytics backend, a first transaction, feedback.
fn onboarding(ctx: &Context, db: &Db) -> Result<(), AppError> {
    let internal = 1;
    step(ctx, db, "4. the first event of project `internal`", || {
        actions::receive_event(ctx, db, internal, &event("e1", "python", true))
    })?;
    let frontend = step(ctx, db, "5. project `frontend` is created", || {
        db.transaction(|tx| {
            let mut project = Project {
                id: None,
                organization_id: 1,
                slug: "frontend".into(),
                platform: Some("javascript".into()),
                flags: 0,
                first_event: false,
            };
            models::save(ctx, tx, &mut project)?;
            Ok(project.id.expect("saved"))
        })
    })?;
    ctx.analytics.set_down(true);
    step(
        ctx,
        db,
        "6. its first event, while the analytics backend is down: the delivery waits",
        || {
            actions::receive_event(ctx, db, frontend, &event("e2", "javascript", false))?;
            ctx.console.line(format!("outbox status: {}", db.status()?));
            Ok(())
        },
    )?;
    ctx.analytics.set_down(false);
    step(
        ctx,
        db,
        "6b. analytics is back: `outbox retry` the shard, and the worker delivers it once",
        || {
            let Some(waiting) = db.status()?.shards.into_iter().next() else {
                // An `outbox worker` running beside the story delivered it.
                ctx.console
                    .line("nothing waits: another worker delivered it already");
                return Ok(());
            };
            let shard = waiting.shard;
            db.retry_shard(&shard)?;
            let drained = db.drain_once(ctx)?;
            ctx.console
                .line(format!("{shard}: {} delivered", drained.delivered));
            Ok(())
        },
    )?;
    step(
        ctx,
        db,
        "7. a first transaction, twice: the signal fires once",
        || {
            let first = actions::receive_transaction(ctx, db, internal)?;
            let second = actions::receive_transaction(ctx, db, internal)?;
            ctx.console
                .line(format!("first call signalled: {first}; second: {second}"));
            Ok(())
        },
    )?;
    step(ctx, db, "8. Ada leaves feedback on an event", || {
        actions::leave_feedback(ctx, db, internal, "e1", "ada@example.com", "the page froze")
    })?;
    Ok(())
}

fn event(id: &str, platform: &str, has_minified_stack_trace: bool) -> Event {
    Event {
        id: id.into(),
        platform: Some(platform.into()),
        has_minified_stack_trace,
    }
}

/// A member joins; demoting the last owner is vetoed.
fn members(ctx: &Context, db: &Db, ada: i64) -> Result<(), AppError> {
    step(
        ctx,
        db,
        "9. Ada joins organisation `sentry` as a member: member_joined is sent once it commits",
        || actions::join(ctx, db, 1, ada, "member"),
    )?;
    // The same, from a silo other than the organisation's: over the outbox.
    let control = Context {
        settings: Settings {
            signal_service: SignalService::Outbox,
            ..ctx.settings.clone()
        },
        ..ctx.clone()
    };
    step(
        ctx,
        db,
        "9b. Grace signs up and joins `sentry` from the control silo: member_joined crosses over the outbox",
        || {
            let grace = actions::sign_up(ctx, db, "grace@example.com", "Grace")?;
            actions::join(&control, db, 1, grace.id.expect("saved"), "member")?;
            let drained = db.drain_once(ctx)?;
            ctx.console.line(format!(
                "{} delivered in the organisation's silo",
                drained.delivered
            ));
            Ok(())
        },
    )?;
    let vetoed = step(
        ctx,
        db,
        "10. demoting the last owner is vetoed by a pre_save receiver",
        || actions::change_role(ctx, db, 1, "member"),
    );
    if vetoed.is_ok() {
        return Err(AppError::Validation("the last owner was demoted".into()));
    }
    Ok(())
}

/// Control-silo writes, replicated through the outbox to every region.
fn control_silo(ctx: &Context, db: &Db) -> Result<(), AppError> {
    let integration = step(
        ctx,
        db,
        "11. control-silo writes: an integration updated three times, a Sentry app installed",
        || db.transaction(|tx| control_writes(ctx, tx)),
    )?;
    step(
        ctx,
        db,
        "12. the outbox worker drains the control outbox: one delivery per object and region",
        || {
            let drained = db.drain_once(ctx)?;
            ctx.console.line(format!(
                "{} deliveries, standing for {} messages",
                drained.delivered, drained.removed
            ));
            for region in &ctx.settings.regions {
                let cached = ctx.cache.contains(region, APPLICATION_KEY);
                ctx.console
                    .line(format!("{region} cache holds {APPLICATION_KEY}: {cached}"));
            }
            Ok(())
        },
    )?;
    step(
        ctx,
        db,
        "13. the integration is deleted; the drain tombstones it in every region",
        || {
            db.transaction(|tx| {
                outbox::delete_replicated(ctx, tx, &integration, OutboxCategory::IntegrationUpdate)
            })?;
            db.drain_once(ctx)
        },
    )?;
    Ok(())
}

const APPLICATION_KEY: &str = "app_service.get_by_application_id:42";

fn control_writes(ctx: &Context, tx: &db::Tx<'_>) -> Result<Integration, AppError> {
    let mut integration = Integration {
        id: None,
        provider: "github".into(),
        name: String::new(),
    };
    for name in ["GitHub", "GitHub (acme)", "GitHub (acme-corp)"] {
        integration.name = name.into();
        let payload = format!("{{\"name\": \"{name}\"}}");
        outbox::save_replicated(
            ctx,
            tx,
            &mut integration,
            OutboxCategory::IntegrationUpdate,
            &payload,
        )?;
    }
    let mut app = SentryApp {
        id: None,
        application_id: 42,
        slug: "linear".into(),
    };
    outbox::save_replicated(ctx, tx, &mut app, OutboxCategory::SentryAppUpdate, "{}")?;
    let mut installation = SentryAppInstallation {
        id: None,
        sentry_app_id: app.id.expect("saved"),
        organization_id: 1,
    };
    models::save(ctx, tx, &mut installation)?;
    let installation_key = format!(
        "app_service.get_installation:{}",
        installation.id.expect("saved")
    );
    for region in &ctx.settings.regions {
        ctx.cache.set(region, APPLICATION_KEY, "linear");
        ctx.cache.set(region, &installation_key, "linear@sentry");
    }
    Ok(integration)
}
