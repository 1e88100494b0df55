//! Static receivers, registered by hand the way `#[receiver]` registers them: collected at
//! link time by the selected backend, indexed per signal on first use, in a deterministic
//! order, before runtime receivers.

#![allow(non_upper_case_globals, clippy::unnecessary_wraps)] // the adapters stand in for generated code

use std::sync::Mutex;

use signals::__private::{ReceiverMeta, Registration, StaticFn, TypedShape, ValueShape};
use signals::{BoxError, ReceiverKind, SentBy, Signal, Signature, SourceLocation, TypeSender};
use signals::{TypeSignal, TypeSignature, WiringError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum SiloMode {
    Monolith,
    Control,
    Region,
}

/// Records which receivers ran, per test signal.
struct Upgrade<'a> {
    log: &'a Mutex<Vec<&'static str>>,
}

enum PostUpgrade {}
impl Signature for PostUpgrade {
    type Args<'a> = Upgrade<'a>;
    type Sender = SiloMode;
    type Output = ();
}

/// Registers `fn $name` as a static receiver of the value signal `$signal`.
macro_rules! static_receiver {
    ($signal:ident, sender = $sender:expr, uid = $uid:expr, priority = $priority:expr, $name:ident) => {
        fn $name(_: Option<&SiloMode>, args: &Upgrade<'_>) -> Result<(), BoxError> {
            args.log.lock().unwrap().push(stringify!($name));
            Ok(())
        }
        signals::__private::register!(Registration::value::<PostUpgrade>(
            &$signal,
            $sender,
            &($name as StaticFn<ValueShape<PostUpgrade>>),
            ReceiverMeta::new_static(
                concat!(module_path!(), "::", stringify!($name)),
                module_path!(),
                SourceLocation::new(file!(), line!(), column!()),
                $uid,
                $priority,
            ),
        ));
    };
}

fn run(signal: &Signal<PostUpgrade>, sender: Option<&SiloMode>) -> Vec<&'static str> {
    let log = Mutex::new(Vec::new());
    signal.send(sender, &Upgrade { log: &log }).unwrap();
    log.into_inner().unwrap()
}

static filtered: Signal<PostUpgrade> = Signal::new("filtered");
static_receiver!(
    filtered,
    sender = Some(&SiloMode::Monolith),
    uid = None,
    priority = 0,
    monolith_only
);
static_receiver!(filtered, sender = None, uid = None, priority = 0, any_mode);

#[test]
fn a_static_receiver_fires_only_for_its_sender() {
    assert_eq!(
        run(&filtered, Some(&SiloMode::Monolith)),
        ["monolith_only", "any_mode"]
    );
    assert_eq!(run(&filtered, Some(&SiloMode::Region)), ["any_mode"]);
    assert_eq!(run(&filtered, None), ["any_mode"]);
}

static ordered: Signal<PostUpgrade> = Signal::new("ordered");

// Declared in reverse of the expected order: declaration and link order do not matter.
mod zeta {
    use super::*;
    static_receiver!(
        ordered,
        sender = None,
        uid = None,
        priority = 0,
        zeta_default
    );
    static_receiver!(
        ordered,
        sender = None,
        uid = None,
        priority = 10,
        zeta_urgent
    );
    static_receiver!(ordered, sender = None, uid = None, priority = -5, zeta_late);
}

mod alpha {
    use super::*;
    static_receiver!(
        ordered,
        sender = None,
        uid = None,
        priority = 0,
        alpha_second_line
    );
    static_receiver!(
        ordered,
        sender = None,
        uid = None,
        priority = 0,
        alpha_third_line
    );
}

#[test]
fn static_receivers_run_by_priority_then_module_path_then_line() {
    assert_eq!(
        run(&ordered, None),
        [
            "zeta_urgent",
            "alpha_second_line",
            "alpha_third_line",
            "zeta_default",
            "zeta_late"
        ]
    );
}

static mixed: Signal<PostUpgrade> = Signal::new("mixed");
static_receiver!(
    mixed,
    sender = None,
    uid = Some("static_one"),
    priority = -100,
    static_one
);

#[test]
fn static_receivers_run_before_runtime_receivers_whatever_their_priority() {
    mixed.connect(|_, args: &Upgrade<'_>| args.log.lock().unwrap().push("runtime"));
    assert_eq!(run(&mixed, None), ["static_one", "runtime"]);
    let receivers = mixed.receivers(None);
    assert_eq!(receivers[0].kind(), ReceiverKind::Static);
    assert_eq!(receivers[0].priority(), -100);
    assert_eq!(receivers[0].name(), "static_receivers::static_one");
    assert_eq!(receivers[0].location().file(), file!());
}

static deduplicated: Signal<PostUpgrade> = Signal::new("deduplicated");
static_receiver!(
    deduplicated,
    sender = Some(&SiloMode::Control),
    uid = Some("create_first_user"),
    priority = 0,
    kept
);
static_receiver!(
    deduplicated,
    sender = Some(&SiloMode::Control),
    uid = Some("create_first_user"),
    priority = 0,
    dropped
);
static_receiver!(
    deduplicated,
    sender = Some(&SiloMode::Region),
    uid = Some("create_first_user"),
    priority = 0,
    other_sender
);

#[test]
fn a_duplicate_static_dispatch_uid_runs_only_the_first() {
    assert_eq!(run(&deduplicated, Some(&SiloMode::Control)), ["kept"]);
    assert_eq!(
        run(&deduplicated, Some(&SiloMode::Region)),
        ["other_sender"]
    );
}

#[test]
fn check_reports_a_duplicate_static_dispatch_uid_with_both_locations() {
    let problems = signals::check();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    let WiringError::DuplicateDispatchUid {
        signal,
        dispatch_uid,
        sender,
        first,
        second,
    } = &problems[0]
    else {
        panic!("unexpected problem {:?}", problems[0]);
    };
    assert_eq!(*signal, "deduplicated");
    assert_eq!(dispatch_uid, "create_first_user");
    assert_eq!(sender, "Control");
    assert_eq!(first.file(), file!());
    assert!(second.line() > first.line());
    let message = problems[0].to_string();
    assert!(
        message.contains(&format!("at {first} and at {second}")),
        "{message}"
    );
}

static claimed: Signal<PostUpgrade> = Signal::new("claimed");
static_receiver!(
    claimed,
    sender = None,
    uid = Some("setup"),
    priority = 0,
    static_setup
);

#[test]
fn a_runtime_connect_with_a_static_receivers_uid_is_a_duplicate() {
    let connection = claimed
        .connector()
        .dispatch_uid("setup")
        .connect(|_, args: &Upgrade<'_>| args.log.lock().unwrap().push("runtime"));
    assert!(connection.is_duplicate());
    assert_eq!(run(&claimed, None), ["static_setup"]);
}

static removable: Signal<PostUpgrade> = Signal::new("removable");
static_receiver!(
    removable,
    sender = Some(&SiloMode::Monolith),
    uid = Some("seed"),
    priority = 0,
    seed
);

#[test]
fn disconnect_uid_removes_a_static_receiver() {
    assert!(removable.disconnect_uid("seed", &SiloMode::Monolith));
    assert!(run(&removable, Some(&SiloMode::Monolith)).is_empty());
    assert!(!removable.disconnect_uid("seed", &SiloMode::Monolith));
}

trait Model: Send + Sync {
    fn table(&self) -> &'static str;
}

struct User {
    email: &'static str,
}

impl Model for User {
    fn table(&self) -> &'static str {
        "auth_user"
    }
}

struct Saved<'a, M: ?Sized> {
    instance: &'a M,
    log: &'a Mutex<Vec<String>>,
}

enum PostSave {}
impl TypeSignature for PostSave {
    type AnyArgs<'a> = Saved<'a, dyn Model>;
    type Output = ();
}
impl<M: Model + 'static> SentBy<M> for PostSave {
    type Args<'a> = Saved<'a, M>;
    fn any_args<'b>(args: &'b Saved<'_, M>) -> Saved<'b, dyn Model> {
        Saved {
            instance: args.instance,
            log: args.log,
        }
    }
}

static post_save: TypeSignal<PostSave> = TypeSignal::new("post_save");

fn create_user_email(_: TypeSender, args: &Saved<'_, User>) -> Result<(), BoxError> {
    args.log
        .lock()
        .unwrap()
        .push(format!("email for {}", args.instance.email));
    Ok(())
}

signals::__private::register!(Registration::typed::<PostSave, User>(
    &post_save,
    &(create_user_email as StaticFn<TypedShape<PostSave, User>>),
    ReceiverMeta::new_static(
        "static_receivers::create_user_email",
        module_path!(),
        SourceLocation::new(file!(), line!(), column!()),
        Some("create_user_email"),
        0,
    ),
));

fn audit(sender: TypeSender, args: &Saved<'_, dyn Model>) -> Result<(), BoxError> {
    args.log.lock().unwrap().push(format!(
        "audit {} in {}",
        sender.name(),
        args.instance.table()
    ));
    Ok(())
}

signals::__private::register!(Registration::any_type::<PostSave>(
    &post_save,
    &(audit as StaticFn<signals::__private::AnyTypeShape<PostSave>>),
    ReceiverMeta::new_static(
        "static_receivers::audit",
        module_path!(),
        SourceLocation::new(file!(), line!(), column!()),
        None,
        0,
    ),
));

#[test]
fn static_receivers_of_a_type_signal_get_their_type_or_the_any_view() {
    let log = Mutex::new(Vec::new());
    post_save
        .send::<User>(&Saved {
            instance: &User {
                email: "ada@example.com",
            },
            log: &log,
        })
        .unwrap();
    assert_eq!(
        log.into_inner().unwrap(),
        [
            "email for ada@example.com".to_owned(),
            format!("audit {} in auth_user", std::any::type_name::<User>()),
        ]
    );
}
