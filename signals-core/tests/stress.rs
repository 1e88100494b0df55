//! A stress test of the snapshot publication, run instead of loom (see the note below): sends on
//! every core against a thread that keeps connecting and disconnecting, for a bounded time.
//! Checks, for every send:
//!
//! - it saw a whole published list, never a half-published one;
//! - no receiver ran in a send that started after the receiver's `disconnect` returned (a
//!   receiver disconnected *during* a send may still run in it: Django's snapshot semantics).
//!
//! Why not loom: sends read the snapshot through std atomics (`publish`'s hazard pointers),
//! which loom cannot instrument, so a loom model would check a stand-in, not the code that runs.
//!
//! The run lasts at least `RUN_FOR` and until every sender has sent `MIN_SENDS` times while
//! edits were in flight, so a busy machine makes it longer, never vacuous; it fails with its
//! progress if that takes longer than `DEADLOCK`.

#![allow(non_upper_case_globals)]

mod support;

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use signals_core::{Connection, Signal, Signature};
use support::{DEADLOCK, RaiseOnDrop, RaiseOnPanic, Rendezvous};

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

/// The signal of the churn test.
static churned: Signal<Stressed> = Signal::new("churned");

const SENTINELS: usize = 8;
const WEAK_BATCHES: usize = 30;
const WEAK_PER_BATCH: usize = 40;
const GUARD_ROUNDS: usize = 200;
const MIN_CHURN_SENDS: u64 = 50;
/// Ids of weak receivers start here, those of guarded ones at twice and three times it; the
/// sentinels' ids are below it.
const WEAK: usize = 1 << 20;
const GUARDED: usize = 2 << 20;
const CHURN_GUARDED: usize = 3 << 20;

/// The ids of the receivers a send from sender `0` ran, in order.
fn churned_ran() -> Vec<usize> {
    let ids = RefCell::new(Vec::new());
    churned.send(&0, &Seen { ids: &ids }).unwrap();
    ids.into_inner()
}

fn connect_churned(id: usize) -> Connection {
    churned
        .connector()
        .sender(0)
        .connect(move |_, seen: &Seen<'_>| seen.ids.borrow_mut().push(id))
}

/// Connects `count` guarded receivers with ids from `first`, checks that a send runs them, and
/// disconnects them in reverse order, half by dropping the guard, half by `disconnect`.
fn guarded_round(first: usize, count: usize, context: &str) {
    let guards: Vec<_> = (first..first + count)
        .map(|id| {
            churned
                .connector()
                .sender(0)
                .connect_scoped(move |_, seen: &Seen<'_>| seen.ids.borrow_mut().push(id))
        })
        .collect();
    let ids = churned_ran();
    for id in first..first + count {
        assert!(ids.contains(&id), "{context}: guarded {id} did not run");
    }
    for (index, guard) in guards.into_iter().enumerate().rev() {
        if index % 2 == 0 {
            drop(guard);
        } else {
            let id = first + index;
            assert!(guard.disconnect(), "{context}: guarded {id} was gone");
        }
    }
}

/// Connects weak receivers in batches; after each, waits for the dropper to drop their
/// targets, then runs a guarded round, whose disconnects are the first edits after its send
/// found the batch dead.
fn weak_churn(round: usize, to_dropper: Sender<Vec<Arc<usize>>>, dropped: &Receiver<()>) {
    for batch in 0..WEAK_BATCHES {
        let first = WEAK + batch * WEAK_PER_BATCH;
        let targets: Vec<Arc<usize>> = (first..first + WEAK_PER_BATCH)
            .map(|id| {
                let target = Arc::new(id);
                churned.connector().sender(0).connect_weak(
                    &target,
                    |id: &usize, _, seen: &Seen<'_>| {
                        seen.ids.borrow_mut().push(*id);
                    },
                );
                target
            })
            .collect();
        to_dropper.send(targets).unwrap();
        dropped
            .recv_timeout(DEADLOCK)
            .expect("the dropper did not drop the targets");
        let context = format!("round {round}, batch {batch}");
        guarded_round(CHURN_GUARDED + batch * 8, 1 + batch % 8, &context);
    }
    drop(to_dropper); // ends the dropper
}

/// One round of churn while two threads send; returns how many times each sent. Every send
/// must run `sentinels`, in order.
fn churn_round(round: usize, sentinels: &[usize]) -> [u64; 2] {
    let churning = AtomicUsize::new(2);
    let stop = AtomicBool::new(false);
    let sends = [AtomicU64::new(0), AtomicU64::new(0)];
    let began = Instant::now();
    std::thread::scope(|scope| {
        let (to_dropper, dropper) = mpsc::channel::<Vec<Arc<usize>>>();
        let (to_churner, from_dropper) = mpsc::channel::<()>();
        let (churning, stop) = (&churning, &stop);
        for sends in &sends {
            scope.spawn(move || {
                let _stop_all = RaiseOnPanic(stop);
                while !stop.load(Ordering::Acquire) {
                    let kept: Vec<usize> =
                        churned_ran().into_iter().filter(|&id| id < WEAK).collect();
                    assert_eq!(
                        kept, sentinels,
                        "round {round}: a send lost or reordered a sentinel"
                    );
                    let done = churning.load(Ordering::Acquire) == 0;
                    if sends.fetch_add(1, Ordering::Relaxed) + 1 >= MIN_CHURN_SENDS && done {
                        break;
                    }
                    assert!(
                        began.elapsed() < DEADLOCK,
                        "round {round}: the churn did not finish in {DEADLOCK:?}"
                    );
                }
            });
        }
        scope.spawn(move || {
            let _stop_all = RaiseOnPanic(stop);
            weak_churn(round, to_dropper, &from_dropper);
            churning.fetch_sub(1, Ordering::Release);
        });
        scope.spawn(move || {
            // Targets die on this thread, while the others connect and send.
            for targets in dropper {
                drop(targets);
                if to_churner.send(()).is_err() {
                    break;
                }
            }
        });
        scope.spawn(move || {
            let _stop_all = RaiseOnPanic(stop);
            for i in 0..GUARD_ROUNDS {
                guarded_round(GUARDED + i * 8, 1 + i % 8, &format!("round {round}"));
            }
            churning.fetch_sub(1, Ordering::Release);
        });
    });
    sends.each_ref().map(|s| s.load(Ordering::Relaxed))
}

/// Rounds of weak and scoped churn on one signal, with two threads sending all along.
///
/// - A churner connects a batch of weak receivers and hands their targets to a dropper thread,
///   which drops them and says so; the churner then connects receivers behind scoped guards,
///   sends (which finds the dead weak receivers), checks that its guarded receivers ran, and
///   disconnects them: each disconnect is the first edit after a send found dozens of dead
///   receivers, so it runs with the purge.
/// - Another thread connects and disconnects guarded receivers independently.
///
/// The round's sentinel receivers are never disconnected during it, so every send must run all
/// of them, in order. After each round every weak target and every guard is gone, so a send
/// must run exactly the sentinels; then half of them are disconnected by handle (each must be
/// found) and as many new ones connected.
#[test]
fn weak_churn_and_scoped_guards_never_lose_a_live_receiver_nor_keep_a_dead_one() {
    const ROUNDS: usize = 10;
    let mut next_id = 0;
    let mut sentinels: Vec<(usize, Connection)> = (0..SENTINELS)
        .map(|_| {
            next_id += 1;
            (next_id, connect_churned(next_id))
        })
        .collect();
    let mut total_sends = 0;
    for round in 0..ROUNDS {
        let expected: Vec<usize> = sentinels.iter().map(|(id, _)| *id).collect();
        let sends = churn_round(round, &expected);
        assert!(
            sends.iter().all(|&s| s >= MIN_CHURN_SENDS),
            "round {round}: the senders sent {sends:?} times (wanted {MIN_CHURN_SENDS} each)"
        );
        total_sends += sends.iter().sum::<u64>();
        // Every weak target and every guard is gone: only the sentinels run.
        assert_eq!(churned_ran(), expected, "round {round}: after the churn");
        assert_eq!(churned.receivers(Some(&0)).len(), SENTINELS);
        for (index, (id, connection)) in std::mem::take(&mut sentinels).into_iter().enumerate() {
            if index % 2 == 0 {
                assert!(
                    churned.disconnect(connection),
                    "round {round}: sentinel {id} was not found"
                );
            } else {
                sentinels.push((id, connection));
            }
        }
        while sentinels.len() < SENTINELS {
            next_id += 1;
            sentinels.push((next_id, connect_churned(next_id)));
        }
    }
    eprintln!(
        "stress: {ROUNDS} rounds of weak and scoped churn, {total_sends} sends checked against {} \
         weak receivers and {} guarded ones",
        ROUNDS * WEAK_BATCHES * WEAK_PER_BATCH,
        ROUNDS * (0..GUARD_ROUNDS).map(|i| 1 + i % 8).sum::<usize>()
            + ROUNDS * (0..WEAK_BATCHES).map(|b| 1 + b % 8).sum::<usize>()
    );
}
