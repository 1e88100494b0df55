//! Runtime connections: lookup keys, disconnect, weak receivers and scoped guards.

#![allow(non_upper_case_globals)]

mod support;

use std::sync::Arc;

use signals_core::{ReceiverKind, Signal};
use support::{Event, Log, Numbered, Plain, Silo, ev};

fn record_a(_: Option<&Silo>, args: &Event<'_>) {
    args.log.push("a");
}

fn record_b(_: Option<&Silo>, args: &Event<'_>) {
    args.log.push("b");
}

#[test]
fn lookup_key_is_dispatch_uid_and_sender_so_a_second_connect_keeps_the_first() {
    let signal = Signal::<Plain>::new("test");
    let log = Log::default();
    let first = signal.connector().dispatch_uid("uid").connect(record_a);
    let second = signal.connector().dispatch_uid("uid").connect(record_b);
    assert!(!first.is_duplicate());
    assert!(second.is_duplicate());
    signal.send(None, &ev(&log)).unwrap();
    assert_eq!(log.take(), ["a"]);
}

#[test]
fn same_dispatch_uid_for_different_senders_are_different_receivers() {
    let signal = Signal::<Plain>::new("test");
    let log = Log::default();
    signal
        .connector()
        .dispatch_uid("uid")
        .sender(Silo::Monolith)
        .connect(record_a);
    let other = signal
        .connector()
        .dispatch_uid("uid")
        .sender(Silo::Region)
        .connect(record_b);
    let any = signal.connector().dispatch_uid("uid").connect(record_b);
    assert!(!other.is_duplicate());
    assert!(!any.is_duplicate());
    signal.send(&Silo::Monolith, &ev(&log)).unwrap();
    assert_eq!(log.take(), ["a", "b"]);
}

#[test]
fn the_same_fn_connected_twice_is_one_receiver() {
    let signal = Signal::<Plain>::new("test");
    let log = Log::default();
    signal.connect(record_a);
    assert!(signal.connect(record_a).is_duplicate());
    signal.send(None, &ev(&log)).unwrap();
    assert_eq!(log.take(), ["a"]);
}

#[test]
fn closures_that_capture_are_distinct_receivers_each_time() {
    let signal = Signal::<Plain>::new("test");
    let log = Log::default();
    for name in ["x", "y"] {
        signal.connect(move |_, args: &Event<'_>| args.log.push(name));
    }
    signal.send(None, &ev(&log)).unwrap();
    assert_eq!(log.take(), ["x", "y"]);
}

#[test]
fn the_same_fn_for_any_sender_and_for_a_sender_runs_twice_as_in_django() {
    let signal = Signal::<Plain>::new("test");
    let log = Log::default();
    signal.connect(record_a);
    signal.connector().sender(Silo::Control).connect(record_a);
    signal.send(&Silo::Control, &ev(&log)).unwrap();
    assert_eq!(log.take(), ["a", "a"]);
}

#[test]
fn an_empty_dispatch_uid_counts_as_none() {
    let signal = Signal::<Plain>::new("test");
    let log = Log::default();
    signal.connector().dispatch_uid("").connect(record_a);
    let second = signal.connector().dispatch_uid("").connect(record_b);
    assert!(!second.is_duplicate());
    signal.send(None, &ev(&log)).unwrap();
    assert_eq!(log.take(), ["a", "b"]);
    assert!(!signal.disconnect_uid("", None));
}

#[test]
fn disconnect_by_handle_returns_whether_it_removed_something() {
    let signal = Signal::<Plain>::new("test");
    let connection = signal.connect(record_a);
    assert!(signal.disconnect(connection));
    assert!(!signal.disconnect(connection));
    assert!(!signal.has_listeners(None));
}

#[test]
fn disconnect_by_uid_removes_only_the_exact_sender_pair() {
    let signal = Signal::<Plain>::new("test");
    let log = Log::default();
    signal.connector().dispatch_uid("uid").connect(record_a);
    signal
        .connector()
        .dispatch_uid("uid")
        .sender(Silo::Region)
        .connect(record_b);
    assert!(!signal.disconnect_uid("uid", &Silo::Monolith));
    assert!(signal.disconnect_uid("uid", &Silo::Region));
    signal.send(&Silo::Region, &ev(&log)).unwrap();
    assert_eq!(log.take(), ["a"]);
    assert!(signal.disconnect_uid("uid", None));
    assert!(!signal.has_listeners(&Silo::Region));
}

#[test]
fn a_receiver_connected_with_a_uid_is_not_disconnected_by_another_handle() {
    let signal = Signal::<Plain>::new("test");
    signal.connector().dispatch_uid("uid").connect(record_a);
    let duplicate = signal.connector().dispatch_uid("uid").connect(record_b);
    assert!(!signal.disconnect(duplicate));
    assert!(signal.has_listeners(None));
}

#[test]
fn reconnecting_after_disconnect_appends_at_the_end() {
    let signal = Signal::<Plain>::new("test");
    let log = Log::default();
    let a = signal.connect(record_a);
    signal.connect(record_b);
    signal.disconnect(a);
    signal.connect(record_a);
    signal.send(None, &ev(&log)).unwrap();
    assert_eq!(log.take(), ["b", "a"]);
}

#[test]
fn a_handle_disconnects_only_on_its_own_signal() {
    let one = Signal::<Plain>::new("one");
    let two = Signal::<Plain>::new("two");
    let connection = one.connect(record_a);
    two.connect(record_a);
    assert!(!two.disconnect(connection));
    assert!(two.has_listeners(None));
    assert!(one.disconnect(connection));
}

#[test]
fn weak_receiver_fires_with_its_target_while_the_target_is_alive() {
    struct Counter(std::sync::atomic::AtomicU32);
    let signal = Signal::<Plain>::new("test");
    let log = Log::default();
    let counter = Arc::new(Counter(0.into()));
    signal.connect_weak(&counter, |counter: &Counter, _, _: &Event<'_>| {
        counter.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    });
    signal.send(None, &ev(&log)).unwrap();
    signal.send(None, &ev(&log)).unwrap();
    assert_eq!(counter.0.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_eq!(signal.receivers(None)[0].kind(), ReceiverKind::Weak);
}

#[test]
fn a_receiver_limited_to_a_thread_keeps_the_kind_and_name_of_its_closure() {
    struct Target;
    fn weak_here(_: &Target, _: Option<&Silo>, _: &Event<'_>) {}
    fn strong_here(_: Option<&Silo>, _: &Event<'_>) {}
    let signal = Signal::<Plain>::new("test");
    let target = Arc::new(Target);
    signal
        .connector()
        .this_thread()
        .connect_weak(&target, weak_here);
    signal.connector().this_thread().connect(strong_here);
    let receivers = signal.receivers(None);
    assert_eq!(receivers[0].kind(), ReceiverKind::Weak);
    assert!(
        receivers[0].name().ends_with("weak_here"),
        "{}",
        receivers[0].name()
    );
    assert_eq!(receivers[1].kind(), ReceiverKind::Runtime);
    assert!(
        receivers[1].name().ends_with("strong_here"),
        "{}",
        receivers[1].name()
    );
}

#[test]
fn weak_receiver_stops_firing_once_its_target_is_dropped() {
    let signal = Signal::<Numbered>::new("test");
    let log = Log::default();
    let target = Arc::new(41_u32);
    signal.connect_weak(&target, |n: &u32, _, _: &Event<'_>| *n + 1);
    signal.connect(|_, _: &Event<'_>| 7);
    assert_eq!(
        signal.send(None, &ev(&log)).unwrap().into_outputs(),
        [42, 7]
    );
    drop(target);
    assert_eq!(signal.send(None, &ev(&log)).unwrap().into_outputs(), [7]);
    assert_eq!(signal.receivers(None).len(), 1);
}

#[test]
fn weak_receiver_of_a_dropped_target_does_not_count_as_a_listener() {
    let signal = Signal::<Plain>::new("test");
    let target = Arc::new(());
    signal.connect_weak(&target, |(): &(), _, _: &Event<'_>| {});
    assert!(signal.has_listeners(None));
    drop(target);
    assert!(!signal.has_listeners(None));
}

#[test]
fn the_same_fn_bound_weakly_to_the_same_target_is_one_receiver() {
    fn on_event(name: &&'static str, _: Option<&Silo>, args: &Event<'_>) {
        args.log.push(*name);
    }
    let signal = Signal::<Plain>::new("test");
    let log = Log::default();
    let first = Arc::new("first");
    let second = Arc::new("second");
    signal.connect_weak(&first, on_event);
    assert!(signal.connect_weak(&first, on_event).is_duplicate());
    assert!(!signal.connect_weak(&second, on_event).is_duplicate());
    signal.send(None, &ev(&log)).unwrap();
    assert_eq!(log.take(), ["first", "second"]);
}

#[test]
fn scoped_connection_disconnects_when_dropped() {
    let signal = Signal::<Plain>::new("test");
    let log = Log::default();
    {
        let _guard = signal.connector().connect_scoped(record_a);
        signal.send(None, &ev(&log)).unwrap();
    }
    signal.send(None, &ev(&log)).unwrap();
    assert_eq!(log.take(), ["a"]);
    assert!(!signal.has_listeners(None));
}

#[test]
fn scoped_connection_disconnects_when_its_scope_unwinds() {
    let signal = Signal::<Plain>::new("test");
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _guard = signal.connector().connect_scoped(record_a);
        panic!("test failed while connected");
    }));
    assert!(unwound.is_err());
    assert!(!signal.has_listeners(None));
}

#[test]
fn scoped_connection_can_disconnect_early() {
    let signal = Signal::<Plain>::new("test");
    let guard = signal
        .connector()
        .sender(Silo::Region)
        .connect_scoped(record_a);
    assert!(signal.has_listeners(&Silo::Region));
    assert!(guard.disconnect());
    assert!(!signal.has_listeners(&Silo::Region));
}

#[test]
fn receivers_report_their_identity_in_dispatch_order() {
    let signal = Signal::<Plain>::new("test");
    signal.connector().dispatch_uid("first").connect(record_b);
    let line = line!() + 1;
    signal.connect(record_a);
    let receivers = signal.receivers(None);
    assert_eq!(receivers.len(), 2);
    assert_eq!(receivers[0].dispatch_uid(), Some("first"));
    assert!(
        receivers[1].name().ends_with("record_a"),
        "{}",
        receivers[1].name()
    );
    assert_eq!(receivers[1].module_path(), "connect");
    assert_eq!(receivers[1].location().file(), file!());
    assert_eq!(receivers[1].location().line(), line);
    assert_eq!(receivers[1].kind(), ReceiverKind::Runtime);
}

#[test]
fn dropping_a_receiver_may_connect_to_the_same_signal() {
    static signal: Signal<Plain> = Signal::new("test");
    struct ConnectsOnDrop;
    impl Drop for ConnectsOnDrop {
        fn drop(&mut self) {
            signal.connect(record_b);
        }
    }
    let guard = ConnectsOnDrop;
    let connection = signal.connect(move |_, _: &Event<'_>| {
        let _keep = &guard;
    });
    assert!(signal.disconnect(connection));
    let log = Log::default();
    signal.send(None, &ev(&log)).unwrap();
    assert_eq!(log.take(), ["b"]);
}

#[test]
fn a_fn_receiver_is_disconnected_by_itself_for_one_sender_as_in_django() {
    let signal = Signal::<Plain>::new("test");
    let log = Log::default();
    signal.connect(record_a);
    signal.connector().sender(Silo::Region).connect(record_a);
    signal.connector().dispatch_uid("b").connect(record_b);
    assert!(signal.disconnect_receiver(record_a, &Silo::Region));
    assert!(
        !signal.disconnect_receiver(record_a, &Silo::Region),
        "already gone"
    );
    assert!(
        !signal.disconnect_receiver(record_b, None),
        "connected with a uid"
    );
    signal.send(&Silo::Region, &ev(&log)).unwrap();
    assert_eq!(
        log.take(),
        ["a", "b"],
        "the any-sender record_a and record_b remain"
    );
    assert!(signal.disconnect_receiver(record_a, None));
    signal.send(&Silo::Region, &ev(&log)).unwrap();
    assert_eq!(log.take(), ["b"]);
}

#[test]
fn a_capturing_closure_has_no_identity_to_disconnect_by() {
    let signal = Signal::<Plain>::new("test");
    let name = String::from("captured");
    let closure = move |_: Option<&Silo>, args: &Event<'_>| args.log.push(name.clone());
    signal.connect(closure.clone());
    assert!(!signal.disconnect_receiver(closure.clone(), None));
    assert_eq!(signal.disconnect_receiver_everywhere(closure), 0);
    assert_eq!(signal.receivers(None).len(), 1);
}

#[test]
fn a_receiver_is_disconnected_from_every_sender_at_once_and_connections_list_them_all() {
    let signal = Signal::<Plain>::new("test");
    signal.connect(record_a);
    signal.connector().sender(Silo::Monolith).connect(record_a);
    signal.connector().sender(Silo::Region).connect(record_a);
    signal.connector().sender(Silo::Region).connect(record_b);
    let listed: Vec<(String, Option<String>)> = signal
        .connections()
        .iter()
        .map(|entry| {
            let name = entry
                .receiver()
                .name()
                .rsplit("::")
                .next()
                .unwrap()
                .to_owned();
            (name, entry.sender().map(str::to_owned))
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("record_a".to_owned(), None),
            ("record_a".to_owned(), Some("Monolith".to_owned())),
            ("record_a".to_owned(), Some("Region".to_owned())),
            ("record_b".to_owned(), Some("Region".to_owned())),
        ]
    );
    assert_eq!(signal.disconnect_receiver_everywhere(record_a), 3);
    assert_eq!(signal.connections().len(), 1);
}

#[test]
fn a_fn_receiver_of_a_type_signal_is_disconnected_by_itself_for_a_sender_type() {
    use signals_core::{TypeSender, TypeSignal};
    use support::{PostSave, Saved, User};
    fn welcome(_: TypeSender, args: &Saved<'_, User>) {
        args.log.push("welcome");
    }
    let post_save = TypeSignal::<PostSave>::new("post_save");
    post_save.connect::<User, _, _>(welcome);
    assert!(
        !post_save.disconnect_receiver(welcome, None),
        "not an any-sender one"
    );
    assert!(post_save.disconnect_receiver(welcome, TypeSender::of::<User>()));
    assert!(post_save.connections().is_empty());
}
