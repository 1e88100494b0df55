//! A stress test of the snapshot publication, run instead of loom (see the note below): sends on
//! every core against a thread that keeps connecting and disconnecting, for a bounded time.
//! Checks, for every send:
//!
//! - it saw a whole published list, never a half-published one;
//! - no receiver ran in a send that started after the receiver's `disconnect` returned (a
//!   receiver disconnected *during* a send may still run in it: Django's snapshot semantics).
//!
//! Why not loom: sends read the snapshot through `arc-swap`, whose atomics loom cannot
//! instrument, so a loom model would check a stand-in, not the code that runs.
//!
//! The run lasts at least `RUN_FOR` and until every sender has sent `MIN_SENDS` times while
//! edits were in flight, so a busy machine makes it longer, never vacuous; it fails with its
//! progress if that takes longer than `DEADLOCK`.

#![allow(non_upper_case_globals)]

mod support;

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use signals_core::{Connection, Signal, Signature};
use support::{DEADLOCK, RaiseOnDrop, Rendezvous};

/// What a send records: the receivers that ran.
struct Seen<'a> {
    ids: &'a RefCell<Vec<usize>>,
}

enum Stressed {}
impl Signature for Stressed {
    type Args<'a> = Seen<'a>;
    type Sender = u8;
    type Output = ();
}

/// Edits the run may make; the editor stops there even if the senders have not caught up (a
/// starved sender then fails the test with its count, rather than overflowing the clock table).
const MAX_EDITS: usize = 1_000_000;
const RUN_FOR: Duration = Duration::from_secs(2);
const MIN_SENDS: u64 = 1_000;

#[test]
fn sends_on_every_core_see_whole_lists_and_never_a_receiver_disconnected_before_they_began() {
    static signal: Signal<Stressed> = Signal::new("stressed");
    // The event clock: the writer ticks it after each disconnect returns; a send reads it before
    // it begins.
    static CLOCK: AtomicU64 = AtomicU64::new(1);
    let senders = std::thread::available_parallelism().map_or(2, usize::from);
    let started = Rendezvous::new(senders + 1);
    let disconnected_at: Vec<AtomicU64> = (0..=MAX_EDITS).map(|_| AtomicU64::new(0)).collect();
    let editing = AtomicBool::new(false);
    let stop = AtomicBool::new(false);
    let sends: Vec<AtomicU64> = (0..senders).map(|_| AtomicU64::new(0)).collect();

    let connect = |id: usize| -> Connection {
        signal
            .connector()
            .sender(0)
            .connect(move |_, seen: &Seen<'_>| seen.ids.borrow_mut().push(id))
    };
    let mut edits = 0;
    let mut current = connect(0);
    std::thread::scope(|scope| {
        for sends in &sends {
            let (started, disconnected_at, editing, stop) =
                (&started, &disconnected_at, &editing, &stop);
            scope.spawn(move || {
                let _stop_all = RaiseOnDrop(stop);
                let mut first_send = true;
                while !stop.load(Ordering::Acquire) {
                    let during_edits = editing.load(Ordering::Acquire);
                    let began = CLOCK.load(Ordering::SeqCst);
                    let ids = RefCell::new(Vec::new());
                    signal.send(&0, &Seen { ids: &ids }).unwrap();
                    let ids = ids.into_inner();
                    // The writer keeps `[k]` or `[k, k + 1]` published.
                    match ids[..] {
                        [_] => {}
                        [k, next] => assert_eq!(next, k + 1, "half-published list {ids:?}"),
                        _ => panic!("inconsistent snapshot {ids:?}"),
                    }
                    for &id in &ids {
                        let gone = disconnected_at[id].load(Ordering::SeqCst);
                        assert!(
                            gone == 0 || gone > began,
                            "receiver {id} ran in a send that began at {began}, after its \
                             disconnect returned at {gone}"
                        );
                    }
                    if first_send {
                        first_send = false;
                        assert!(started.wait(DEADLOCK), "the editor never started");
                    }
                    if during_edits {
                        sends.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        // Churn on another sender contends for the table without touching the checked list.
        scope.spawn(|| {
            while !stop.load(Ordering::Acquire) {
                let other = signal.connector().sender(1).connect(|_, _: &Seen<'_>| {});
                signal.disconnect(other);
            }
        });
        let _stop_all = RaiseOnDrop(&stop);
        assert!(started.wait(DEADLOCK), "the senders never sent");
        editing.store(true, Ordering::Release);
        let began = Instant::now();
        let behind = || sends.iter().any(|s| s.load(Ordering::Relaxed) < MIN_SENDS);
        while edits < MAX_EDITS && (began.elapsed() < RUN_FOR || behind()) {
            assert!(
                began.elapsed() < DEADLOCK,
                "after {edits} edits in {DEADLOCK:?}, the senders had sent {sends:?} times \
                 (wanted {MIN_SENDS} each)"
            );
            edits += 1;
            let next = connect(edits);
            assert!(signal.disconnect(current));
            disconnected_at[edits - 1]
                .store(CLOCK.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
            current = next;
        }
    });
    let sends: Vec<u64> = sends.iter().map(|s| s.load(Ordering::Relaxed)).collect();
    eprintln!(
        "stress: {sends:?} sends on {senders} threads checked against {edits} connect/disconnect \
         pairs"
    );
    assert!(
        sends.iter().all(|&s| s >= MIN_SENDS),
        "a sender was starved: {sends:?} sends in {edits} edits (wanted {MIN_SENDS} each)"
    );
}
