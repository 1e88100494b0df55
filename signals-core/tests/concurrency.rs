//! Snapshot semantics, re-entrancy and threads: a send runs the receivers connected when it
//! started, holds no lock while they run, and never waits for another send or for a connect.

#![allow(non_upper_case_globals)]

mod support;

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use signals_core::{Connection, Signal, Signature, TypeSignal};
use support::{DEADLOCK, Event, Log, Plain, PostSave, Rendezvous, Silo, ev};

#[test]
fn a_receiver_disconnected_during_a_send_still_runs_in_that_send() {
    static signal: Signal<Plain> = Signal::new("test");
    static LATER: Mutex<Option<Connection>> = Mutex::new(None);
    let log = Log::default();
    signal.connect(|_, args: &Event<'_>| {
        args.log.push("first");
        if let Some(later) = LATER.lock().unwrap().take() {
            assert!(signal.disconnect(later));
        }
    });
    *LATER.lock().unwrap() = Some(signal.connect(|_, args: &Event<'_>| args.log.push("later")));
    signal.send(None, &ev(&log)).unwrap();
    assert_eq!(log.take(), ["first", "later"]);
    signal.send(None, &ev(&log)).unwrap();
    assert_eq!(log.take(), ["first"]);
}

#[test]
fn a_receiver_connected_during_a_send_runs_only_from_the_next_send() {
    static signal: Signal<Plain> = Signal::new("test");
    let log = Log::default();
    signal
        .connector()
        .dispatch_uid("connector")
        .connect(|_, args: &Event<'_>| {
            args.log.push("connector");
            signal
                .connector()
                .dispatch_uid("connected")
                .connect(|_, args: &Event<'_>| args.log.push("connected"));
        });
    signal.send(None, &ev(&log)).unwrap();
    assert_eq!(log.take(), ["connector"]);
    signal.send(None, &ev(&log)).unwrap();
    assert_eq!(log.take(), ["connector", "connected"]);
}

#[test]
fn a_receiver_may_disconnect_itself_during_a_send() {
    static signal: Signal<Plain> = Signal::new("test");
    let log = Log::default();
    signal
        .connector()
        .dispatch_uid("once")
        .connect(|_, args: &Event<'_>| {
            args.log.push("once");
            assert!(signal.disconnect_uid("once", None));
        });
    signal.send(None, &ev(&log)).unwrap();
    signal.send(None, &ev(&log)).unwrap();
    assert_eq!(log.take(), ["once"]);
}

#[test]
fn a_receiver_may_send_the_same_signal_reentrantly() {
    static signal: Signal<Plain> = Signal::new("test");
    let log = Log::default();
    signal.connect(|_, args: &Event<'_>| {
        args.log.push(format!("depth {}", args.value));
        if args.value < 3 {
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
    signal.send(None, &ev(&log)).unwrap();
    assert_eq!(log.take(), ["depth 0", "depth 1", "depth 2", "depth 3"]);
}

#[test]
fn a_receiver_may_connect_and_send_from_inside_a_send_without_deadlock() {
    static signal: Signal<Plain> = Signal::new("test");
    let log = Log::default();
    signal
        .connector()
        .sender(Silo::Monolith)
        .connect(|_, args: &Event<'_>| {
            let scoped = signal
                .connector()
                .sender(Silo::Region)
                .connect_scoped(|_, args: &Event<'_>| args.log.push("inner"));
            signal
                .send(
                    &Silo::Region,
                    &Event {
                        log: args.log,
                        value: 1,
                    },
                )
                .unwrap();
            drop(scoped);
            args.log.push("outer");
        });
    signal.send(&Silo::Monolith, &ev(&log)).unwrap();
    assert_eq!(log.take(), ["inner", "outer"]);
    assert!(!signal.has_listeners(&Silo::Region));
}

#[test]
fn no_lock_is_held_while_receivers_run() {
    static signal: Signal<Plain> = Signal::new("test");
    signal
        .connector()
        .sender(Silo::Monolith)
        .connect(|_, args: &Event<'_>| {
            // While this receiver runs, another thread connects, sends and disconnects.
            let (done, finished) = mpsc::channel();
            std::thread::spawn(move || {
                let log = Log::default();
                let connection = signal
                    .connector()
                    .sender(Silo::Region)
                    .connect(|_, args: &Event<'_>| args.log.push("region"));
                signal.send(&Silo::Region, &ev(&log)).unwrap();
                assert!(signal.disconnect(connection));
                done.send(log.take()).unwrap();
            });
            let seen = finished
                .recv_timeout(DEADLOCK)
                .expect("the other thread was blocked");
            assert_eq!(seen, ["region"]);
            args.log.push("outer");
        });
    let log = Log::default();
    signal.send(&Silo::Monolith, &ev(&log)).unwrap();
    assert_eq!(log.take(), ["outer"]);
}

#[test]
fn a_receiver_blocked_in_one_send_does_not_block_connects_from_other_threads() {
    static signal: Signal<Plain> = Signal::new("test");
    static INSIDE: Rendezvous = Rendezvous::new(2);
    static RELEASE: Rendezvous = Rendezvous::new(2);
    signal
        .connector()
        .sender(Silo::Monolith)
        .connect(|_, _: &Event<'_>| {
            assert!(INSIDE.wait(DEADLOCK));
            assert!(RELEASE.wait(DEADLOCK));
        });
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let log = Log::default();
            signal.send(&Silo::Monolith, &ev(&log)).unwrap();
        });
        assert!(INSIDE.wait(DEADLOCK), "the receiver never started");
        let connection = signal.connect(|_, _: &Event<'_>| {});
        assert!(signal.disconnect(connection));
        assert!(RELEASE.wait(DEADLOCK), "the receiver never finished");
    });
}

#[test]
fn signals_are_sync_and_their_handles_are_send() {
    fn sync<T: Sync + Send>() {}
    sync::<Signal<Plain>>();
    sync::<TypeSignal<PostSave>>();
    sync::<Connection>();
    sync::<signals_core::ReceiverInfo>();
    sync::<signals_core::SendError>();
}

#[test]
fn sends_on_many_threads_run_at_the_same_time() {
    const THREADS: usize = 4;
    static signal: Signal<Plain> = Signal::new("test");
    static ALL_INSIDE: Rendezvous = Rendezvous::new(THREADS);
    signal.connect(|_, _: &Event<'_>| {
        // Only passes if every thread's send is inside this receiver at once.
        assert!(ALL_INSIDE.wait(DEADLOCK), "sends were serialised");
    });
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                let log = Log::default();
                signal.send(None, &ev(&log)).unwrap();
            });
        }
    });
}

/// Arguments for the snapshot test: each send collects the ids of the receivers that ran.
struct Seen<'a> {
    ids: &'a RefCell<Vec<u32>>,
}

enum Observed {}
impl Signature for Observed {
    type Args<'a> = Seen<'a>;
    type Sender = Silo;
    type Output = ();
}

#[test]
fn concurrent_sends_always_see_a_consistent_snapshot_while_another_thread_edits() {
    const EDITS: u32 = 3_000;
    static signal: Signal<Observed> = Signal::new("observed");
    fn connect(id: u32) -> Connection {
        signal
            .connector()
            .sender(Silo::Monolith)
            .connect(move |_, seen: &Seen<'_>| seen.ids.borrow_mut().push(id))
    }
    // The writer keeps one or two receivers connected: it connects `id + 1`, then
    // disconnects `id`. A consistent send therefore sees `[id]` or `[id, id + 1]`.
    let mut current = connect(0);
    let stop = AtomicBool::new(false);
    let sends = AtomicU32::new(0);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                let mut last_first = 0;
                while !stop.load(Ordering::Acquire) {
                    let ids = RefCell::new(Vec::new());
                    signal.send(&Silo::Monolith, &Seen { ids: &ids }).unwrap();
                    let ids = ids.into_inner();
                    match ids[..] {
                        [id] => assert!(id >= last_first, "went back from {last_first} to {id}"),
                        [id, next] => assert_eq!(next, id + 1, "half-published list {ids:?}"),
                        _ => panic!("inconsistent snapshot {ids:?}"),
                    }
                    assert!(
                        ids[0] >= last_first,
                        "went back from {last_first} to {ids:?}"
                    );
                    last_first = ids[0];
                    sends.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        for id in 1..=EDITS {
            let next = connect(id);
            assert!(signal.disconnect(current));
            current = next;
        }
        stop.store(true, Ordering::Release);
    });
    assert!(sends.load(Ordering::Relaxed) > 0);
}

#[test]
fn type_signals_connect_and_send_from_many_threads() {
    use support::{Saved, User};
    static post_save: TypeSignal<PostSave> = TypeSignal::new("post_save");
    let counted = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&counted);
    post_save.connect::<User, _, _>(move |_, _: &Saved<'_, User>| {
        seen.fetch_add(1, Ordering::Relaxed);
    });
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                let log = Log::default();
                let user = User {
                    email: "a@example.com".into(),
                };
                for _ in 0..100 {
                    post_save
                        .send::<User>(&Saved {
                            instance: &user,
                            created: true,
                            log: &log,
                        })
                        .unwrap();
                }
            });
        }
    });
    assert_eq!(counted.load(Ordering::Relaxed), 400);
}
