//! Diagnostics and testing aids over `#[receiver]`s: `explain` and `explain_by_name` say which
//! receivers run for a sender and why the others do not, `report` lists the wiring, and
//! captures work for type signals and async sends. (A test binary of its own: it has a
//! duplicate `dispatch_uid` on purpose.)

use std::fmt;
use std::sync::Arc;

use signals::testing::{self, Outcome};
use signals::{TypeSender, Verdict, assert_sent, explain, explain_by_name, receiver, signal};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum SiloMode {
    Monolith,
    Region,
}

#[derive(Debug)]
struct Upgrade;

trait Model: fmt::Debug + Send + Sync {}

#[derive(Debug)]
struct User {
    email: &'static str,
}

impl Model for User {}

#[derive(Debug)]
struct Project;

impl Model for Project {}

#[derive(Debug)]
struct Saved<'a, M: ?Sized> {
    instance: &'a M,
    created: bool,
}

impl<'b, 'x: 'b, M: Model + 'static> From<&'b Saved<'x, M>> for Saved<'b, dyn Model> {
    fn from(args: &'b Saved<'x, M>) -> Self {
        Saved {
            instance: args.instance,
            created: args.created,
        }
    }
}

#[derive(Debug)]
struct Job;

signal! {
    static post_upgrade: Signal<Upgrade, sender = SiloMode>;
    static post_save: Signal<Saved<'_, M>, sender = type M: Model, any = Saved<'_, dyn Model>>;
    static jobs: async Signal<Job>;
}

#[receiver(signal = post_upgrade, sender = SiloMode::Monolith, dispatch_uid = "create_first_user")]
fn create_first_user() {}

#[receiver(signal = post_upgrade, sender = SiloMode::Monolith, dispatch_uid = "create_first_user")]
fn create_first_user_again() {}

#[receiver(signal = post_upgrade, sender = SiloMode::Region)]
fn region_only() {}

#[receiver(signal = post_upgrade, priority = 10)]
fn any_silo_first() {}

#[receiver(signal = post_upgrade, dispatch_uid = "legacy_hook")]
fn legacy_hook() {}

#[receiver(signal = post_save, sender = User, dispatch_uid = "send_welcome")]
fn send_welcome(instance: &User) {
    assert!(!instance.email.is_empty());
}

#[receiver(signal = post_save, sender = Project)]
fn record_project() {}

#[receiver(signal = jobs, dispatch_uid = "fails")]
async fn fails() -> Result<(), std::io::Error> {
    std::future::ready(()).await;
    Err(std::io::Error::other("queue down"))
}

#[receiver(signal = jobs, dispatch_uid = "waits")]
async fn waits() {
    std::future::pending::<()>().await;
}

/// The verdict of each receiver, by name or `dispatch_uid`.
fn verdicts(explanation: &signals::Explanation) -> Vec<(String, Verdict)> {
    explanation
        .receivers()
        .iter()
        .map(|explained| {
            let receiver = &explained.receiver;
            let name = receiver
                .dispatch_uid()
                .unwrap_or(receiver.name())
                .to_owned();
            (name, explained.verdict.clone())
        })
        .collect()
}

#[test]
fn explain_says_what_runs_in_order_and_why_the_others_do_not() {
    assert!(post_upgrade.disconnect_uid("legacy_hook", None));
    let target = Arc::new(());
    post_upgrade
        .connector()
        .dispatch_uid("weak_hook")
        .connect_weak(&target, |(): &(), _, _: &Upgrade| {});
    drop(target);
    post_upgrade
        .connector()
        .dispatch_uid("audit")
        .connect(|_, _: &Upgrade| {});
    post_upgrade
        .connector()
        .sender(SiloMode::Monolith)
        .dispatch_uid("runtime_monolith")
        .connect(|_, _: &Upgrade| {});
    let _quiet = testing::mute_receiver("audit");

    let explanation = explain(&post_upgrade, Some(&SiloMode::Monolith));
    let duplicate_of = create_first_user_location();
    assert_eq!(
        verdicts(&explanation),
        [
            (
                "explain::any_silo_first".into(),
                Verdict::Runs { position: 1 }
            ),
            ("create_first_user".into(), Verdict::Runs { position: 2 }),
            ("runtime_monolith".into(), Verdict::Runs { position: 3 }),
            ("explain::region_only".into(), Verdict::OtherSender),
            ("weak_hook".into(), Verdict::TargetDropped),
            ("audit".into(), Verdict::Muted),
            ("legacy_hook".into(), Verdict::Disconnected),
            (
                "create_first_user".into(),
                Verdict::DuplicateDispatchUid {
                    first: duplicate_of
                }
            ),
        ]
    );
    assert_eq!(
        explanation.running(),
        [
            "explain::any_silo_first",
            "explain::create_first_user",
            explanation.receivers()[2].receiver.name()
        ]
    );

    let text = explanation.to_string();
    assert!(
        text.starts_with("post_upgrade sent by Monolith: 3 receivers run, 5 do not\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "  1. explain::any_silo_first [sender any, priority 10] at tests/explain.rs:"
        ),
        "{text}"
    );
    assert!(
        text.contains("  - explain::region_only [sender Region] at tests/explain.rs:"),
        "{text}"
    );
    assert!(
        text.contains(": listens to sender Region, not Monolith"),
        "{text}"
    );
    assert!(text.contains(": its weak target was dropped"), "{text}");
    assert!(text.contains(": muted on this thread"), "{text}");
    assert!(text.contains(": disconnected at run time"), "{text}");
    assert!(
        text.contains(&format!(
            "duplicate dispatch_uid for this sender; the receiver at {duplicate_of} runs"
        )),
        "{text}"
    );

    // The same, by names, as a tool would ask; the sender as a person writes it.
    let by_name = explain_by_name("post_upgrade", Some("SiloMode::Monolith")).unwrap();
    assert_eq!(verdicts(&by_name), verdicts(&explanation));
    let unknown = explain_by_name("post_upgrad", None).unwrap_err();
    assert!(
        unknown
            .to_string()
            .starts_with("no signal is named `post_upgrad`; the program's signals are: "),
        "{unknown}"
    );
    assert!(
        unknown.to_string().contains("explain::post_upgrade"),
        "{unknown}"
    );

    // Without sender, only any-sender receivers run.
    let unsent = explain(&post_upgrade, None);
    assert_eq!(unsent.running()[0], "explain::any_silo_first");
    assert_eq!(unsent.running().len(), 1, "{unsent}");
}

fn create_first_user_location() -> signals::SourceLocation {
    signals::check()
        .into_iter()
        .find_map(|problem| match problem {
            signals::WiringError::DuplicateDispatchUid { first, .. } => Some(first),
            _ => None,
        })
        .expect("the duplicate is reported")
}

#[test]
fn explain_and_capture_work_for_type_signals() {
    let explanation = explain(&post_save, Some(TypeSender::of::<User>()));
    assert_eq!(explanation.running(), ["explain::send_welcome"]);
    assert_eq!(
        verdicts(&explanation)[1],
        ("explain::record_project".into(), Verdict::OtherSender)
    );

    let sent = testing::capture(&post_save);
    let user = User {
        email: "jane@example.com",
    };
    post_save
        .send::<User>(&Saved {
            instance: &user,
            created: true,
        })
        .unwrap();
    assert_sent!(post_save, sender = User, created = true);
    assert_sent!(post_save, sender = User, instance = user);
    let sends = sent.sends();
    assert!(sends[0].sender.as_deref().unwrap().ends_with("User"));
    assert_eq!(sends[0].ran(), ["explain::send_welcome"]);
}

#[test]
fn a_capture_sees_async_receivers_fail_and_the_others_cancelled() {
    let sent = testing::capture(&jobs);
    let result = futures::executor::block_on(jobs.send(None, &Job));
    assert!(result.is_err());
    let sends = sent.sends();
    let outcomes: Vec<_> = sends[0]
        .responses
        .iter()
        .map(|(receiver, outcome)| (receiver.dispatch_uid().unwrap(), outcome.clone()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("fails", Outcome::Failed("queue down".into())),
            ("waits", Outcome::Cancelled),
        ]
    );
}

#[test]
fn report_lists_every_signal_and_receiver_with_its_location() {
    let report = signals::report();
    assert!(
        report.contains(
            "post_upgrade (sender: a value of explain::SiloMode), declared at tests/explain.rs:"
        ),
        "{report}"
    );
    assert!(
        report.contains("post_save (sender: a type), declared at tests/explain.rs:"),
        "{report}"
    );
    assert!(
        report.contains("explain::send_welcome [sender explain::User, uid \"send_welcome\"] at tests/explain.rs:"),
        "{report}"
    );
    assert!(
        report.contains("explain::waits [sender any, uid \"waits\", async] at"),
        "{report}"
    );
}

/// Two modules with a `User` each, a generic sender, string senders with paths in them, and
/// two signals named `ping`: explain decides by value, as dispatch does, never by text.
mod lookalikes {
    use super::{Model, Saved};
    use signals::{TypeSender, explain, explain_by_name, receiver, signal};

    mod a {
        #[derive(Debug)]
        pub(super) struct User;
        impl super::Model for User {}

        signals::signal! {
            pub(in crate::lookalikes) static ping: Signal<(), sender = u8>;
        }
    }

    mod b {
        #[derive(Debug)]
        pub(super) struct User;
        impl super::Model for User {}

        signals::signal! {
            pub(in crate::lookalikes) static ping: Signal<(), sender = u8>;
        }
    }

    #[derive(Debug)]
    struct W<T>(T);
    impl<T: std::fmt::Debug + Send + Sync + 'static> Model for W<T> {}

    signal! {
        static saved: Signal<Saved<'_, M>, sender = type M: Model, any = Saved<'_, dyn Model>>;
        static routed: Signal<(), sender = &'static str>;
    }

    #[receiver(signal = saved, sender = b::User)]
    fn for_b_user() {}

    #[receiver(signal = saved, sender = type W<u16>)]
    fn for_w_u16() {}

    #[receiver(signal = routed, sender = "billing::invoice")]
    fn for_billing() {}

    #[receiver(signal = a::ping, sender = 1)]
    fn ping_a() {}

    #[receiver(signal = b::ping, sender = 1)]
    fn ping_b() {}

    #[test]
    fn explain_compares_senders_by_value_not_by_their_names() {
        let a_user = explain(&saved, Some(TypeSender::of::<a::User>()));
        assert!(a_user.running().is_empty(), "{a_user}");
        let b_user = explain(&saved, Some(TypeSender::of::<b::User>()));
        assert_eq!(b_user.running(), ["explain::lookalikes::for_b_user"]);

        let for_w_u8 = explain(&saved, Some(TypeSender::of::<W<u8>>()));
        assert!(for_w_u8.running().is_empty(), "{for_w_u8}");
        let for_w_u16 = explain(&saved, Some(TypeSender::of::<W<u16>>()));
        assert_eq!(for_w_u16.running(), ["explain::lookalikes::for_w_u16"]);

        let audit = explain(&routed, Some(&"audit::invoice"));
        assert!(audit.running().is_empty(), "{audit}");
        let billing = explain(&routed, Some(&"billing::invoice"));
        assert_eq!(billing.running(), ["explain::lookalikes::for_billing"]);
    }

    #[test]
    fn explain_by_name_resolves_a_sender_name_to_one_sender_or_says_why_not() {
        let b_user = explain_by_name("lookalikes::saved", Some("b::User")).unwrap();
        assert_eq!(b_user.running(), ["explain::lookalikes::for_b_user"]);
        let whole = explain_by_name("saved", Some("explain::lookalikes::b::User")).unwrap();
        assert_eq!(whole.running(), b_user.running());

        // `a::User` has no receiver of its own: the answer is an error listing the senders.
        let a_user = explain_by_name("saved", Some("a::User")).unwrap_err();
        assert_eq!(
            a_user.to_string(),
            "no receiver of `saved` listens to a sender named `a::User`; the senders it has \
             receivers for are: explain::lookalikes::b::User, explain::lookalikes::W<u16>. \
             For any other sender only the any-sender receivers run, as for a send without \
             sender"
        );
        assert!(explain_by_name("saved", Some("W<u8>")).is_err());
        let w = explain_by_name("saved", Some("W<u16>")).unwrap();
        assert_eq!(w.running(), ["explain::lookalikes::for_w_u16"]);

        assert!(explain_by_name("routed", Some("audit::invoice")).is_err());
        assert!(explain_by_name("routed", Some("invoice")).is_err());
        let billing = explain_by_name("routed", Some("\"billing::invoice\"")).unwrap();
        assert_eq!(billing.running(), ["explain::lookalikes::for_billing"]);
    }

    #[test]
    fn explain_by_name_asks_for_a_module_path_when_two_signals_share_a_name() {
        let ambiguous = explain_by_name("ping", Some("1")).unwrap_err();
        assert_eq!(
            ambiguous.to_string(),
            "`ping` names several signals: explain::lookalikes::a::ping, \
             explain::lookalikes::b::ping; add its module path, as in \
             `explain::lookalikes::a::ping`"
        );
        let a = explain_by_name("a::ping", Some("1")).unwrap();
        assert_eq!(a.running(), ["explain::lookalikes::ping_a"]);
        let b = explain_by_name("lookalikes::b::ping", Some("1")).unwrap();
        assert_eq!(b.running(), ["explain::lookalikes::ping_b"]);
    }
}
