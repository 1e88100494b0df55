//! Robustness: panics leave signals usable, deep re-entrancy, connects from receivers while other
//! threads send, and weak targets dropped in the middle of a send.

#![allow(non_upper_case_globals)]

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use signals_core::{ReceiverError, SendError, Signal};
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

/// A receiver that sends its own signal without end would overflow the stack and abort the
/// process; the nested send that would leave too little stack fails with `TooDeep` instead,
/// hundreds of levels deep on a test thread, and the thread carries on.
#[test]
fn a_runaway_recursive_send_fails_with_too_deep_instead_of_overflowing_the_stack() {
    static signal: Signal<Plain> = Signal::new("runaway");
    static REFUSED_AT: AtomicU32 = AtomicU32::new(0);
    signal.connect(|_, args: &Event<'_>| {
        let deeper = Event {
            log: args.log,
            value: args.value + 1,
        };
        match signal.send(None, &deeper) {
            Ok(_) => {}
            Err(SendError::TooDeep {
                signal: name,
                depth,
            }) => {
                assert_eq!(name, "runaway");
                assert_eq!(depth, args.value + 2, "the refused send is one deeper");
                REFUSED_AT.store(depth, Ordering::SeqCst);
            }
            Err(other) => panic!("unexpected {other}"),
        }
    });
    signal.send(None, &ev(&Log::default())).unwrap();
    let refused_at = REFUSED_AT.load(Ordering::SeqCst);
    eprintln!("a runaway recursive send was refused {refused_at} sends deep");
    assert!(refused_at > 500, "refused at {refused_at}");
    // The thread's nesting is back to the top: the same send runs as deep again. (The same
    // operation: how deep another one gets depends on its frames' sizes.)
    REFUSED_AT.store(0, Ordering::SeqCst);
    signal.send(None, &ev(&Log::default())).unwrap();
    assert_eq!(REFUSED_AT.load(Ordering::SeqCst), refused_at);
}

/// Under `send_robust`, which has no error to return, the refused send panics, and the
/// robust send it is nested in records that as its receiver's panic.
#[test]
fn a_runaway_recursive_robust_send_is_recorded_as_a_panic_one_level_up() {
    static signal: Signal<Plain> = Signal::new("runaway_robust");
    static MESSAGE: Mutex<Option<String>> = Mutex::new(None);
    signal.connect(|_, args: &Event<'_>| {
        let deeper = Event {
            log: args.log,
            value: args.value + 1,
        };
        for response in &signal.send_robust(None, &deeper) {
            if let Err(ReceiverError::Panicked { message }) = &response.output {
                MESSAGE
                    .lock()
                    .unwrap()
                    .get_or_insert_with(|| message.clone());
            }
        }
    });
    let responses = signal.send_robust(None, &ev(&Log::default()));
    assert!(
        responses[0].output.is_ok(),
        "only the deepest receiver failed"
    );
    let message = MESSAGE.lock().unwrap().clone().expect("a refused send");
    assert!(
        message.starts_with("signal `runaway_robust` was sent ")
            && message.contains(" sends deep on this thread, with too little stack left"),
        "{message}"
    );
}
