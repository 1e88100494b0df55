//! `#[receiver]` and `signal!` end to end: receivers registered at link time, selected by
//! sender, ordered, given their parameters by name, and run by every kind of send.

#![allow(clippy::needless_pass_by_value)]

use std::fmt;
use std::sync::Mutex;

use signals::{ReceiverError, ReceiverKind, TypeSender, receiver, signal};

/// Records which receivers ran.
#[derive(Default)]
struct Log(Mutex<Vec<String>>);

impl Log {
    fn push(&self, entry: impl Into<String>) {
        self.0.lock().unwrap().push(entry.into());
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum SiloMode {
    Monolith,
    Control,
    Region,
}

/// `post_upgrade`'s arguments.
struct Upgrade<'a> {
    interactive: bool,
    database: &'a str,
    log: &'a Log,
}

trait Model: Send + Sync {
    fn table(&self) -> &'static str;
}

struct User {
    email: String,
}

impl Model for User {
    fn table(&self) -> &'static str {
        "auth_user"
    }
}

struct Team {
    slug: &'static str,
}

impl Model for Team {
    fn table(&self) -> &'static str {
        "team"
    }
}

struct ApiToken {
    scopes: Mutex<Vec<&'static str>>,
}

impl Model for ApiToken {
    fn table(&self) -> &'static str {
        "api_token"
    }
}

/// `post_save`'s arguments; the any-sender view is the same struct over `dyn Model`.
struct Saved<'a, M: ?Sized> {
    instance: &'a M,
    created: bool,
    log: &'a Log,
}

impl<'b, 'x: 'b, M: Model + 'static> From<&'b Saved<'x, M>> for Saved<'b, dyn Model> {
    fn from(args: &'b Saved<'x, M>) -> Self {
        Saved {
            instance: args.instance,
            created: args.created,
            log: args.log,
        }
    }
}

/// Arguments of the signals sent by a `&'static str` or an integer.
struct Note<'a> {
    log: &'a Log,
}

signal! {
    /// Sent after `upgrade`, by the silo mode.
    static post_upgrade: Signal<Upgrade<'_>, sender = SiloMode>;
    /// Sent after a model instance is saved, by its type.
    static post_save: Signal<Saved<'_, M>, sender = type M: Model, any = Saved<'_, dyn Model>>;
    static pre_save: Signal<Saved<'_, M>, sender = type M: Model>;
    static ordered: Signal<Upgrade<'_>, sender = SiloMode>;
    static project_created: Signal<Note<'_>, sender = &'static str>;
    static team_created: Signal<Note<'_>, sender = &'static str>;
    static by_id: Signal<Note<'_>, sender = u64>;
    static scored: Signal<Upgrade<'_>, sender = SiloMode, output = u32>;
    static robust: Signal<Note<'_>, sender = SiloMode>;
}

fn upgrade(log: &Log) -> Upgrade<'_> {
    Upgrade {
        interactive: true,
        database: "default",
        log,
    }
}

// Sender filtering by value, and an any-sender receiver.

#[receiver(signal = post_upgrade, sender = SiloMode::Monolith, dispatch_uid = "create_first_user")]
fn create_first_user(interactive: bool, log: &Log) {
    log.push(format!("create_first_user interactive={interactive}"));
}

#[receiver(signal = post_upgrade)]
fn any_silo(sender: Option<&SiloMode>, log: &Log) {
    log.push(format!("any_silo {sender:?}"));
}

#[test]
fn a_receiver_for_an_enum_value_runs_only_for_that_value() {
    let log = Log::default();
    post_upgrade
        .send(&SiloMode::Monolith, &upgrade(&log))
        .unwrap();
    assert_eq!(
        log.take(),
        [
            "create_first_user interactive=true",
            "any_silo Some(Monolith)"
        ]
    );
    post_upgrade
        .send(&SiloMode::Region, &upgrade(&log))
        .unwrap();
    assert_eq!(log.take(), ["any_silo Some(Region)"]);
    post_upgrade.send(None, &upgrade(&log)).unwrap();
    assert_eq!(log.take(), ["any_silo None"]);
}

// Sender filtering by type; any-sender receivers of a type signal get the `any` view.

#[receiver(signal = post_save, sender = User, dispatch_uid = "create_user_email")]
fn create_user_email(instance: &User, created: bool, log: &Log) {
    log.push(format!(
        "create_user_email {} created={created}",
        instance.email
    ));
}

#[receiver(signal = post_save, sender = Team)]
fn create_team_slug(instance: &Team, log: &Log) {
    log.push(format!("create_team_slug {}", instance.slug));
}

#[receiver(signal = post_save)]
fn audit_save(sender: TypeSender, instance: &dyn Model, log: &Log) {
    log.push(format!("audit {} {}", sender.name(), instance.table()));
}

#[test]
fn a_receiver_for_a_type_runs_only_for_that_type_and_gets_it_typed() {
    let log = Log::default();
    let user = User {
        email: "ada@example.com".into(),
    };
    post_save
        .send::<User>(&Saved {
            instance: &user,
            created: true,
            log: &log,
        })
        .unwrap();
    assert_eq!(
        log.take(),
        [
            "create_user_email ada@example.com created=true".to_owned(),
            format!("audit {} auth_user", std::any::type_name::<User>()),
        ]
    );
    let team = Team { slug: "core" };
    post_save
        .send::<Team>(&Saved {
            instance: &team,
            created: false,
            log: &log,
        })
        .unwrap();
    assert_eq!(
        log.take(),
        [
            "create_team_slug core".to_owned(),
            format!("audit {} team", std::any::type_name::<Team>()),
        ]
    );
}

// Stacked attributes: one function, two senders (Sentry's tokens.py).

#[receiver(signal = pre_save, sender = User, dispatch_uid = "save_user_scopes")]
#[receiver(signal = pre_save, sender = ApiToken, dispatch_uid = "save_api_token")]
fn expand_scopes(sender: TypeSender, log: &Log) {
    log.push(format!(
        "expand_scopes {}",
        sender.name().rsplit("::").next().unwrap()
    ));
}

#[receiver(signal = pre_save, sender = ApiToken)]
fn add_default_scope(instance: &ApiToken) {
    instance.scopes.lock().unwrap().push("project:read");
}

#[test]
fn stacked_attributes_register_one_function_for_each_sender() {
    let log = Log::default();
    let token = ApiToken {
        scopes: Mutex::new(Vec::new()),
    };
    pre_save
        .send::<ApiToken>(&Saved {
            instance: &token,
            created: true,
            log: &log,
        })
        .unwrap();
    let user = User {
        email: "ada@example.com".into(),
    };
    pre_save
        .send::<User>(&Saved {
            instance: &user,
            created: true,
            log: &log,
        })
        .unwrap();
    pre_save
        .send::<Team>(&Saved {
            instance: &Team { slug: "core" },
            created: true,
            log: &log,
        })
        .unwrap();
    assert_eq!(log.take(), ["expand_scopes ApiToken", "expand_scopes User"]);
    assert_eq!(*token.scopes.lock().unwrap(), ["project:read"]);
}

// One function on several signals.

#[receiver(signal = [project_created, team_created], sender = "web")]
fn record_creation(log: &Log) {
    log.push("record_creation");
}

#[test]
fn one_function_receives_every_signal_in_its_list() {
    let log = Log::default();
    project_created.send(&"web", &Note { log: &log }).unwrap();
    team_created.send(&"web", &Note { log: &log }).unwrap();
    team_created.send(&"api", &Note { log: &log }).unwrap();
    assert_eq!(log.take(), ["record_creation", "record_creation"]);
}

// Integer senders, and constants forced with `const`.

const ROOT_ID: u64 = 1;

#[receiver(signal = by_id, sender = 7)]
fn seven(log: &Log) {
    log.push("seven");
}

#[receiver(signal = by_id, sender = ROOT_ID)]
fn root(log: &Log) {
    log.push("root");
}

/// A lower-case constant, which only `const` marks as a value.
#[allow(non_upper_case_globals)]
mod ids {
    pub(crate) const admin: u64 = 2;
}

#[receiver(signal = by_id, sender = const ids::admin)]
fn admin(log: &Log) {
    log.push("admin");
}

#[test]
fn literal_constant_and_forced_const_senders_are_values() {
    let log = Log::default();
    for id in [1, 2, 3, 7] {
        by_id.send(&id, &Note { log: &log }).unwrap();
    }
    assert_eq!(log.take(), ["root", "admin", "seven"]);
}

// Order: priority first (higher first), then module path and line, whatever the link order.

mod zeta {
    use super::{Log, Upgrade, ordered, receiver};

    #[receiver(signal = ordered)]
    fn zeta_default(log: &Log) {
        log.push("zeta_default");
    }

    #[receiver(signal = ordered, priority = 10)]
    fn zeta_urgent(log: &Log) {
        log.push("zeta_urgent");
    }

    #[receiver(signal = ordered, priority = -5)]
    fn zeta_late(log: &Log) {
        log.push("zeta_late");
    }

    /// Keeps `Upgrade` in use for the parameter types above.
    fn _uses(_: &Upgrade<'_>) {}
}

mod alpha {
    use super::{Log, ordered, receiver};

    #[receiver(signal = ordered)]
    fn alpha_first_line(log: &Log) {
        log.push("alpha_first_line");
    }

    #[receiver(signal = ordered)]
    fn alpha_second_line(log: &Log) {
        log.push("alpha_second_line");
    }
}

#[test]
fn static_receivers_run_by_priority_then_by_module_path_and_line() {
    let log = Log::default();
    ordered.send(None, &upgrade(&log)).unwrap();
    assert_eq!(
        log.take(),
        [
            "zeta_urgent",
            "alpha_first_line",
            "alpha_second_line",
            "zeta_default",
            "zeta_late"
        ]
    );
    ordered.connect(|_, args: &Upgrade<'_>| args.log.push("runtime"));
    ordered.send(None, &upgrade(&log)).unwrap();
    assert_eq!(log.take().last().unwrap(), "runtime");
}

// Parameters by name, in any order; the whole struct by pattern; outputs collected.

#[receiver(signal = scored, sender = SiloMode::Control)]
fn by_name(log: &Log, database: &str, interactive: bool) -> u32 {
    log.push(format!("by_name {database} {interactive}"));
    1
}

#[receiver(signal = scored, sender = SiloMode::Control)]
fn whole(Upgrade { database, .. }: &Upgrade<'_>) -> Result<u32, std::num::TryFromIntError> {
    u32::try_from(database.len())
}

#[receiver(signal = scored)]
fn nothing_but_the_output() -> u32 {
    3
}

#[test]
fn parameters_are_taken_by_name_in_any_order_and_outputs_are_collected() {
    let log = Log::default();
    let responses = scored.send(&SiloMode::Control, &upgrade(&log)).unwrap();
    assert_eq!(log.take(), ["by_name default true"]);
    assert_eq!(responses.outputs().copied().collect::<Vec<_>>(), [1, 7, 3]);
    assert_eq!(responses[0].receiver.name(), "receiver::by_name");
    assert_eq!(responses[0].receiver.kind(), ReceiverKind::Static);
}

// send_robust with a receiver that fails and one that panics.

#[derive(Debug)]
struct AnalyticsDown;

impl fmt::Display for AnalyticsDown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("analytics backend down")
    }
}

impl std::error::Error for AnalyticsDown {}

#[receiver(signal = robust, dispatch_uid = "record_analytics")]
fn record_analytics() -> Result<(), AnalyticsDown> {
    Err(AnalyticsDown)
}

#[receiver(signal = robust)]
fn buggy(log: &Log) {
    log.push("buggy");
    panic!("a bug in a receiver");
}

#[receiver(signal = robust, priority = -1)]
fn still_runs(log: &Log) {
    log.push("still_runs");
}

#[test]
fn send_robust_records_a_failing_and_a_panicking_receiver_and_runs_the_rest() {
    let log = Log::default();
    let responses = robust.send_robust(&SiloMode::Region, &Note { log: &log });
    assert_eq!(log.take(), ["buggy", "still_runs"]);
    assert_eq!(responses.len(), 3);
    assert!(
        matches!(&responses[0].output, Err(ReceiverError::Failed(error)) if error.to_string() == "analytics backend down")
    );
    assert_eq!(
        responses[0].receiver.dispatch_uid(),
        Some("record_analytics")
    );
    assert!(
        matches!(&responses[1].output, Err(ReceiverError::Panicked { message }) if message == "a bug in a receiver")
    );
    assert!(responses[2].output.is_ok());
}

// Metadata, runtime interplay, and the registry.

#[test]
fn receivers_report_their_static_metadata() {
    let receivers = post_upgrade.receivers(&SiloMode::Monolith);
    let first = &receivers[0];
    assert_eq!(first.name(), "receiver::create_first_user");
    assert_eq!(first.module_path(), "receiver");
    assert_eq!(first.dispatch_uid(), Some("create_first_user"));
    assert_eq!(first.location().file(), file!());
    assert_eq!(first.kind(), ReceiverKind::Static);
    assert_eq!(first.priority(), 0);
}

#[test]
fn a_runtime_connect_with_a_static_receivers_uid_and_sender_is_a_duplicate() {
    let connection = post_save
        .connector()
        .sender::<User>()
        .dispatch_uid("create_user_email")
        .connect(|_, _: &Saved<'_, User>| {});
    assert!(connection.is_duplicate());
}

#[test]
fn registry_lists_declared_signals_with_their_static_receivers() {
    let registry = signals::registry();
    let post_save_entry = registry.signal("post_save").unwrap();
    assert_eq!(post_save_entry.module_path(), Some("receiver"));
    let names: Vec<_> = post_save_entry
        .receivers()
        .iter()
        .map(|entry| (entry.receiver().name(), entry.sender().map(str::to_owned)))
        .collect();
    assert_eq!(
        names,
        [
            (
                "receiver::create_user_email",
                Some(std::any::type_name::<User>().to_owned())
            ),
            (
                "receiver::create_team_slug",
                Some(std::any::type_name::<Team>().to_owned())
            ),
            ("receiver::audit_save", None),
        ]
    );
    assert!(registry.signal("team_created").is_some());
    let mermaid = registry.to_mermaid();
    assert!(mermaid.starts_with("flowchart LR\n"), "{mermaid}");
    let node = |label: &str| {
        let line = mermaid.lines().find(|line| line.contains(label)).unwrap();
        line.trim().split(['[', '(']).next().unwrap().to_owned()
    };
    let edge = format!(
        "{} -->|\"User\"| {}",
        node("([\"post_save\"])"),
        node("[\"create_user_email\"]")
    );
    assert!(
        mermaid.lines().any(|line| line.trim() == edge),
        "{edge} in\n{mermaid}"
    );
    assert!(registry.to_dot().contains("[label=\"create_user_email\""));
    assert_eq!(signals::check(), Vec::new());
}
