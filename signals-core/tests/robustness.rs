//! Robustness: panics leave signals usable, deep re-entrancy, connects from receivers while other
//! threads send, and weak targets dropped in the middle of a send.

#![allow(non_upper_case_globals)]

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use signals_core::{ReceiverError, Signal};
use support::{DEADLOCK, Event, Log, Plain, Rendezvous, Silo, ev};

#[test]
fn a_receiver_that_panics_while_holding_a_scoped_guard_leaves_the_signal_usable() {
    static signal: Signal<Plain> = Signal::new("test");
    fn panics_while_holding_a_guard(_: Option<&Silo>, args: &Event<'_>) {
        let _guard = signal
            .connector()
            .sender(Silo::Region)
            .connect_scoped(|_, args: &Event<'_>| args.log.push("scoped"));
        args.log.push("connected, now panicking");
        panic!("a bug while holding a guard");
    }
    signal
        .connector()
        .sender(Silo::Monolith)
        .connect(panics_while_holding_a_guard);
    let log = Log::default();
    let responses = signal.send_robust(&Silo::Monolith, &ev(&log));
    assert!(matches!(
        &responses[0].output,
        Err(ReceiverError::Panicked { .. })
    ));
    assert!(
        !signal.has_listeners(&Silo::Region),
        "the guard disconnected while unwinding"
    );
    // Nothing is poisoned: edits and sends work.
    let connection = signal.connect(|_, args: &Event<'_>| args.log.push("after"));
    signal.send(&Silo::Region, &ev(&log)).unwrap();
    assert!(signal.disconnect(connection));
    assert_eq!(log.take(), ["connected, now panicking", "after"]);
}

#[test]
fn a_reentrant_send_a_thousand_deep_works() {
    static signal: Signal<Plain> = Signal::new("test");
    static DEEPEST: AtomicU32 = AtomicU32::new(0);
    signal.connect(|_, args: &Event<'_>| {
        DEEPEST.fetch_max(args.value, Ordering::SeqCst);
        if args.value < 1_000 {
            signal
                .send(
                    None,
                    &Event {
                        log: args.log,
                        value: args.value + 1,
                    },
                )
                .unwrap();
        }
    });
    let log = Log::default();
    signal.send(None, &ev(&log)).unwrap();
    assert_eq!(DEEPEST.load(Ordering::SeqCst), 1_000);
}

#[test]
fn a_receiver_may_connect_while_another_thread_sends() {
    static signal: Signal<Plain> = Signal::new("test");
    static BOTH_SENDING: Rendezvous = Rendezvous::new(2);
    static CONNECTED: AtomicU32 = AtomicU32::new(0);
    signal
        .connector()
        .sender(Silo::Monolith)
        .connect(|_, _: &Event<'_>| {
            assert!(BOTH_SENDING.wait(DEADLOCK));
            signal
                .connector()
                .sender(Silo::Control)
                .connect(|_, args: &Event<'_>| args.log.push("connected from a receiver"));
            CONNECTED.fetch_add(1, Ordering::SeqCst);
        });
    signal
        .connector()
        .sender(Silo::Region)
        .connect(|_, _: &Event<'_>| {
            assert!(BOTH_SENDING.wait(DEADLOCK));
        });
    std::thread::scope(|scope| {
        scope.spawn(|| signal.send(&Silo::Monolith, &ev(&Log::default())).unwrap());
        scope.spawn(|| signal.send(&Silo::Region, &ev(&Log::default())).unwrap());
    });
    assert_eq!(CONNECTED.load(Ordering::SeqCst), 1);
    let log = Log::default();
    signal.send(&Silo::Control, &ev(&log)).unwrap();
    assert_eq!(log.take(), ["connected from a receiver"]);
}

#[test]
fn dropping_the_last_arc_of_a_later_weak_receivers_target_during_a_send_is_safe() {
    static signal: Signal<Plain> = Signal::new("test");
    static TARGET: Mutex<Option<Arc<String>>> = Mutex::new(None);
    let target = Arc::new(String::from("weak target"));
    signal.connect(|_, args: &Event<'_>| {
        args.log.push("dropper");
        TARGET.lock().unwrap().take();
    });
    signal.connect_weak(&target, |target: &String, _, args: &Event<'_>| {
        args.log.push(target.as_str());
    });
    *TARGET.lock().unwrap() = Some(target);
    let log = Log::default();
    signal.send(None, &ev(&log)).unwrap();
    assert_eq!(
        log.take(),
        ["dropper"],
        "the weak receiver's target was gone when its turn came"
    );
    assert_eq!(signal.receivers(None).len(), 1);
}

#[test]
fn a_weak_receiver_keeps_its_target_alive_while_it_runs() {
    static signal: Signal<Plain> = Signal::new("test");
    static TARGET: Mutex<Option<Arc<String>>> = Mutex::new(None);
    let target = Arc::new(String::from("still here"));
    signal.connect_weak(&target, |target: &String, _, args: &Event<'_>| {
        TARGET.lock().unwrap().take();
        args.log.push(target.as_str());
    });
    *TARGET.lock().unwrap() = Some(target);
    let log = Log::default();
    signal.send(None, &ev(&log)).unwrap();
    assert_eq!(log.take(), ["still here"]);
    assert!(!signal.has_listeners(None));
}
