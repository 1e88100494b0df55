//! Snapshot semantics, re-entrancy and threads: a send runs the receivers connected when it
//! started, holds no lock while they run, and never waits for another send or for a connect.

#![allow(non_upper_case_globals)]

mod support;

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Instant;

use signals_core::{Connection, Signal, Signature, TypeSignal};
use support::{DEADLOCK, Event, Log, Plain, PostSave, RaiseOnDrop, Rendezvous, Silo, ev};

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

/// The snapshot test waits for what it asserts instead of assuming how threads are scheduled:
/// the editor starts once both senders have sent, and keeps editing until each sender has sent
/// `MIN_SENDS` times while edits were in flight and seen the list change, however long a busy
/// machine makes that take (up to `DEADLOCK`, then it fails saying how far it got).
#[test]
fn concurrent_sends_always_see_a_consistent_snapshot_while_another_thread_edits() {
    const SENDERS: usize = 2;
    const MIN_EDITS: u32 = 3_000;
    const MIN_SENDS: u32 = 200;
    static signal: Signal<Observed> = Signal::new("observed");
    static STARTED: Rendezvous = Rendezvous::new(SENDERS + 1);
    fn connect(id: u32) -> Connection {
        signal
            .connector()
            .sender(Silo::Monolith)
            .connect(move |_, seen: &Seen<'_>| seen.ids.borrow_mut().push(id))
    }
    // The editor keeps one or two receivers connected: it connects `id + 1`, then disconnects
    // `id`. A consistent send therefore sees `[id]` or `[id, id + 1]`, and never goes back.
    let mut current = connect(0);
    let editing = AtomicBool::new(false);
    let stop = AtomicBool::new(false);
    let sends: [AtomicU32; SENDERS] = Default::default();
    let changes: [AtomicU32; SENDERS] = Default::default();
    let progress = || {
        let load =
            |counts: &[AtomicU32; SENDERS]| counts.each_ref().map(|c| c.load(Ordering::Relaxed));
        (load(&sends), load(&changes))
    };
    std::thread::scope(|scope| {
        for (sends, changes) in sends.iter().zip(&changes) {
            let (editing, stop) = (&editing, &stop);
            scope.spawn(move || {
                let _stop_all = RaiseOnDrop(stop);
                let mut last_first = 0;
                let mut first_send = true;
                loop {
                    let during_edits = editing.load(Ordering::Acquire);
                    let ids = RefCell::new(Vec::new());
                    signal.send(&Silo::Monolith, &Seen { ids: &ids }).unwrap();
                    let ids = ids.into_inner();
                    match ids[..] {
                        [_] => {}
                        [id, next] => assert_eq!(next, id + 1, "half-published list {ids:?}"),
                        _ => panic!("inconsistent snapshot {ids:?}"),
                    }
                    assert!(
                        ids[0] >= last_first,
                        "went back from {last_first} to {ids:?}"
                    );
                    if ids[0] != last_first {
                        changes.fetch_add(1, Ordering::Relaxed);
                    }
                    last_first = ids[0];
                    if first_send {
                        first_send = false;
                        assert!(STARTED.wait(DEADLOCK), "the editor never started");
                    }
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    if during_edits {
                        sends.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        let _stop_all = RaiseOnDrop(&stop);
        assert!(STARTED.wait(DEADLOCK), "the senders never sent");
        editing.store(true, Ordering::Release);
        let began = Instant::now();
        let mut edits = 0;
        loop {
            let (sent, seen_change) = progress();
            let enough = |counts: [u32; SENDERS], min| counts.iter().all(|&c| c >= min);
            if edits >= MIN_EDITS && enough(sent, MIN_SENDS) && enough(seen_change, 1) {
                break;
            }
            assert!(
                began.elapsed() < DEADLOCK,
                "after {edits} edits in {DEADLOCK:?}, the senders had sent {sent:?} times during \
                 edits and seen the list change {seen_change:?} times (wanted {MIN_SENDS} and 1 each)"
            );
            edits += 1;
            let next = connect(edits);
            assert!(signal.disconnect(current));
            current = next;
        }
    });
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

/// Sets its flag when dropped: a value a receiver's closure captures.
struct Freed(Arc<AtomicBool>);

impl Drop for Freed {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn a_disconnected_receivers_closure_is_freed_by_the_next_send_when_no_send_reads_it() {
    static signal: Signal<Plain> = Signal::new("test");
    let freed = Arc::new(AtomicBool::new(false));
    let captured = Freed(Arc::clone(&freed));
    let connection = signal.connect(move |_, _: &Event<'_>| {
        let _ = &captured;
    });
    let log = Log::default();
    signal.send(None, &ev(&log)).unwrap();
    assert!(signal.disconnect(connection));
    assert!(
        !freed.load(Ordering::SeqCst),
        "the published snapshot still holds it"
    );
    signal.send(None, &ev(&log)).unwrap();
    assert!(
        freed.load(Ordering::SeqCst),
        "the send that replaced the snapshot freed it"
    );
}

#[test]
fn a_disconnected_receivers_closure_is_freed_when_the_last_send_that_read_it_ends() {
    static signal: Signal<Plain> = Signal::new("test");
    static INSIDE: Rendezvous = Rendezvous::new(2);
    static RELEASE: Rendezvous = Rendezvous::new(2);
    let freed = Arc::new(AtomicBool::new(false));
    let captured = Freed(Arc::clone(&freed));
    let fragile = signal.connect(move |_, _: &Event<'_>| {
        let _ = &captured;
    });
    signal
        .connector()
        .sender(Silo::Region)
        .connect(|_, _: &Event<'_>| {
            assert!(INSIDE.wait(DEADLOCK), "the main thread never came");
            assert!(RELEASE.wait(DEADLOCK), "the main thread never released");
        });
    std::thread::scope(|scope| {
        let holder = scope.spawn(|| {
            signal.send(&Silo::Region, &ev(&Log::default())).unwrap();
            // Nothing else runs on this thread: the send that just ended freed it.
            freed.load(Ordering::SeqCst)
        });
        assert!(INSIDE.wait(DEADLOCK), "the holding send never started");
        assert!(signal.disconnect(fragile));
        signal.send(None, &ev(&Log::default())).unwrap(); // replaces the snapshot
        assert!(
            !freed.load(Ordering::SeqCst),
            "the other thread's send still reads the old snapshot"
        );
        assert!(RELEASE.wait(DEADLOCK), "the holding send never finished");
        assert!(holder.join().unwrap(), "freed when the holding send ended");
    });
}
