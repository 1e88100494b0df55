//! Type-sender signals: receivers for one model type get that type, typed; any-sender
//! receivers get the family's sender-independent view.

mod support;

use signals_core::{TypeSender, TypeSignal};
use support::{Log, Model, PostSave, Saved, Team, User};

fn saved<'a, M>(instance: &'a M, log: &'a Log) -> Saved<'a, M> {
    Saved {
        instance,
        created: true,
        log,
    }
}

#[test]
fn a_receiver_for_a_type_gets_the_instance_typed() {
    let signal = TypeSignal::<PostSave>::new("post_save");
    let log = Log::default();
    signal.connect::<User, _, _>(|_, args: &Saved<'_, User>| {
        args.log.push(format!("user email {}", args.instance.email));
    });
    let user = User {
        email: "ada@example.com".into(),
    };
    signal.send::<User>(&saved(&user, &log)).unwrap();
    assert_eq!(log.take(), ["user email ada@example.com"]);
}

#[test]
fn a_receiver_for_a_type_ignores_other_types() {
    let signal = TypeSignal::<PostSave>::new("post_save");
    let log = Log::default();
    signal.connect::<User, _, _>(|_, args: &Saved<'_, User>| args.log.push("user"));
    let team = Team {
        name: "core".into(),
    };
    signal.send::<Team>(&saved(&team, &log)).unwrap();
    assert!(log.take().is_empty());
}

#[test]
fn an_any_sender_receiver_gets_the_sender_independent_view_and_the_sender_type() {
    let signal = TypeSignal::<PostSave>::new("post_save");
    let log = Log::default();
    signal.connect_any(|sender: TypeSender, args: &Saved<'_, dyn Model>| {
        args.log.push(format!(
            "{} saved to {}",
            sender.name(),
            args.instance.table()
        ));
    });
    let team = Team {
        name: "core".into(),
    };
    signal.send::<Team>(&saved(&team, &log)).unwrap();
    assert_eq!(
        log.take(),
        [format!("{} saved to team", std::any::type_name::<Team>())]
    );
}

#[test]
fn typed_and_any_sender_receivers_interleave_in_connection_order() {
    let signal = TypeSignal::<PostSave>::new("post_save");
    let log = Log::default();
    signal.connect::<User, _, _>(|_, args: &Saved<'_, User>| args.log.push("user-1"));
    signal.connect_any(|_, args: &Saved<'_, dyn Model>| args.log.push("any"));
    signal.connect::<Team, _, _>(|_, args: &Saved<'_, Team>| args.log.push("team"));
    signal.connect::<User, _, _>(|_, args: &Saved<'_, User>| args.log.push("user-2"));
    let user = User {
        email: "ada@example.com".into(),
    };
    signal.send::<User>(&saved(&user, &log)).unwrap();
    assert_eq!(log.take(), ["user-1", "any", "user-2"]);
    let team = Team {
        name: "core".into(),
    };
    signal.send::<Team>(&saved(&team, &log)).unwrap();
    assert_eq!(log.take(), ["any", "team"]);
}

#[test]
fn has_listeners_and_receivers_take_a_type_sender() {
    let signal = TypeSignal::<PostSave>::new("post_save");
    signal
        .connector()
        .sender::<User>()
        .dispatch_uid("create_user_email")
        .connect(|_, _: &Saved<'_, User>| {});
    assert!(signal.has_listeners(TypeSender::of::<User>()));
    assert!(!signal.has_listeners(TypeSender::of::<Team>()));
    assert!(!signal.has_listeners(None));
    let receivers = signal.receivers(TypeSender::of::<User>());
    assert_eq!(receivers.len(), 1);
    assert_eq!(receivers[0].dispatch_uid(), Some("create_user_email"));
}

#[test]
fn disconnect_uid_on_a_type_signal_removes_only_that_type() {
    let signal = TypeSignal::<PostSave>::new("post_save");
    signal
        .connector()
        .sender::<User>()
        .dispatch_uid("audit")
        .connect(|_, _: &Saved<'_, User>| {});
    signal
        .connector()
        .sender::<Team>()
        .dispatch_uid("audit")
        .connect(|_, _: &Saved<'_, Team>| {});
    assert!(signal.disconnect_uid("audit", TypeSender::of::<User>()));
    assert!(!signal.has_listeners(TypeSender::of::<User>()));
    assert!(signal.has_listeners(TypeSender::of::<Team>()));
    assert!(!signal.disconnect_uid("audit", None));
}

#[test]
fn duplicate_dispatch_uid_for_the_same_type_keeps_the_first() {
    let signal = TypeSignal::<PostSave>::new("post_save");
    let log = Log::default();
    signal
        .connector()
        .sender::<User>()
        .dispatch_uid("uid")
        .connect(|_, a: &Saved<'_, User>| a.log.push("first"));
    let second = signal
        .connector()
        .sender::<User>()
        .dispatch_uid("uid")
        .connect(|_, a: &Saved<'_, User>| a.log.push("second"));
    assert!(second.is_duplicate());
    let user = User {
        email: "ada@example.com".into(),
    };
    signal.send::<User>(&saved(&user, &log)).unwrap();
    assert_eq!(log.take(), ["first"]);
}

#[test]
fn emit_and_send_robust_work_on_type_signals() {
    let signal = TypeSignal::<PostSave>::new("post_save");
    let log = Log::default();
    signal.connect::<User, _, _>(|_, _: &Saved<'_, User>| Err(std::fmt::Error));
    signal.connect_any(|_, args: &Saved<'_, dyn Model>| args.log.push("any"));
    let user = User {
        email: "ada@example.com".into(),
    };
    assert!(signal.emit::<User>(&saved(&user, &log)).is_err());
    assert!(log.take().is_empty());
    let responses = signal.send_robust::<User>(&saved(&user, &log));
    assert_eq!(responses.failures().count(), 1);
    assert_eq!(log.take(), ["any"]);
}

#[test]
fn a_weak_receiver_on_a_type_signal_stops_with_its_target() {
    let signal = TypeSignal::<PostSave>::new("post_save");
    let log = Log::default();
    let target = std::sync::Arc::new("mailer");
    signal.connector().sender::<User>().connect_weak(
        &target,
        |name: &&str, _, args: &Saved<'_, User>| {
            args.log.push(*name);
        },
    );
    let user = User {
        email: "ada@example.com".into(),
    };
    signal.send::<User>(&saved(&user, &log)).unwrap();
    drop(target);
    signal.send::<User>(&saved(&user, &log)).unwrap();
    assert_eq!(log.take(), ["mailer"]);
    assert!(!signal.has_listeners(TypeSender::of::<User>()));
}
