//! A model-based property test: a small reference model of Django's dispatcher (a list of
//! entries with lookup keys, in connection order) and random sequences of connect, connect with
//! `dispatch_uid`, weak connect, scoped connect, bulk connects (of strong closures, and of weak
//! ones bound to one target, so that a dropped target kills dozens at once), disconnect by
//! handle, by uid and by dropping a guard, dropping a weak target, `send` and `send_robust`.
//! After every step, what the real signal ran and returned must equal what the model predicts.
//!
//! The operation mix is chosen so that tables grow to dozens of live and dead receivers and
//! cross the table's compaction threshold (32 slots, half of them holes) many times per case:
//! the run prints how often, so that a change to the mix that stops reaching it shows.
//!
//! 10,000 cases by default (`PROPTEST_CASES` overrides it).

use std::cell::RefCell;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use signals_core::{Connection, ScopedConnection, Signal, Signature};

/// What receivers write to: the ids of those that ran, in order.
#[derive(Default)]
struct Log(RefCell<Vec<u32>>);

enum Probe {}
impl Signature for Probe {
    type Args<'a> = Log;
    type Sender = u8;
    type Output = ();
}

#[derive(Debug)]
struct Failure;

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("failure")
    }
}

impl std::error::Error for Failure {}

/// The id a receiver writes; `FAILS` is the id of the one that returns `Err` after writing.
const FAILS: u32 = 3;

/// Four distinct functions: zero-sized, so each is identified by its code (Django's `id(f)`).
fn code<const K: u32>(_: Option<&u8>, log: &Log) -> Result<(), Failure> {
    log.0.borrow_mut().push(K);
    if K == FAILS { Err(Failure) } else { Ok(()) }
}

/// Weak receivers: the same function bound to a target is one receiver, as a bound method.
#[allow(clippy::trivially_copy_pass_by_ref)] // connect_weak lends the target as `&T`
fn bound<const K: u32>(target: &u32, _: Option<&u8>, log: &Log) {
    log.0.borrow_mut().push(100 + K * 10 + target);
}

/// Weak targets the receivers may be bound to.
const TARGETS: usize = 4;

#[derive(Debug, Clone)]
enum Receiver {
    /// One of four functions, identified by code.
    Code(u32),
    /// A closure with a capture: a new receiver each time.
    Closure,
    /// One of two functions bound weakly to one of the targets.
    Weak { code: u32, target: usize },
}

#[derive(Debug, Clone)]
enum Op {
    Connect {
        receiver: Receiver,
        sender: Option<u8>,
        uid: Option<u8>,
    },
    Disconnect(usize),
    DisconnectUid {
        uid: u8,
        sender: Option<u8>,
    },
    /// `count` capturing closures at once, each a distinct receiver.
    ConnectMany {
        count: u32,
        sender: Option<u8>,
    },
    /// `count` capturing closures bound weakly to one target: they die together with it.
    ConnectWeakMany {
        count: u32,
        target: usize,
        sender: Option<u8>,
    },
    /// A capturing closure behind a scoped guard.
    ConnectScoped {
        sender: Option<u8>,
        uid: Option<u8>,
    },
    /// Drops one of the scoped guards.
    DropGuard(usize),
    /// Disconnects `count` handles in a row from `first`, as a test's teardown would.
    DisconnectMany {
        first: usize,
        count: usize,
    },
    DropTarget(usize),
    Send(Option<u8>),
    SendRobust(Option<u8>),
}

fn op() -> impl Strategy<Value = Op> {
    let sender = proptest::option::of(0_u8..3);
    let uid = proptest::option::weighted(0.3, 0_u8..3);
    let receiver = prop_oneof![
        (0_u32..4).prop_map(Receiver::Code),
        Just(Receiver::Closure),
        (0_u32..2, 0_usize..TARGETS).prop_map(|(code, target)| Receiver::Weak { code, target }),
    ];
    prop_oneof![
        4 => (receiver, sender.clone(), uid.clone()).prop_map(|(receiver, sender, uid)| Op::Connect { receiver, sender, uid }),
        1 => (2_u32..16, sender.clone()).prop_map(|(count, sender)| Op::ConnectMany { count, sender }),
        2 => (8_u32..40, 0_usize..TARGETS, sender.clone()).prop_map(|(count, target, sender)| Op::ConnectWeakMany { count, target, sender }),
        2 => (sender.clone(), uid).prop_map(|(sender, uid)| Op::ConnectScoped { sender, uid }),
        2 => (0_usize..256).prop_map(Op::DropGuard),
        3 => (0_usize..256).prop_map(Op::Disconnect),
        2 => (0_usize..256, 8_usize..48).prop_map(|(first, count)| Op::DisconnectMany { first, count }),
        1 => (0_u8..3, sender.clone()).prop_map(|(uid, sender)| Op::DisconnectUid { uid, sender }),
        3 => (0_usize..TARGETS).prop_map(Op::DropTarget),
        3 => sender.clone().prop_map(Op::Send),
        2 => sender.prop_map(Op::SendRobust),
    ]
}

/// Django's lookup key, besides the sender.
#[derive(Debug, Clone, PartialEq)]
enum Key {
    Uid(u8),
    Code(u32),
    /// Weak: code and target generation (a dropped target's successor is a new object).
    Bound(u32, usize),
    Unique,
}

#[derive(Debug, Clone)]
struct Entry {
    /// Where its handle is: `Handle(i)` is `Real::handles[i]`, `Guard(i)` is `Real::guards[i]`.
    handle: Handle,
    key: Key,
    sender: Option<u8>,
    id: u32,
    /// The target generation a weak receiver holds.
    target: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Handle {
    Handle(usize),
    Guard(usize),
}

/// The reference model.
#[derive(Debug, Default)]
struct Model {
    entries: Vec<Entry>,
    /// Per target slot: the live generation, or `None` once dropped.
    targets: [Option<usize>; TARGETS],
    generations: usize,
    next_closure_id: u32,
    /// How the case grew: see [`Reach`].
    reach: Reach,
}

/// How far a case went: its largest table, and how often a table laid out like the real one
/// (slots in connection order, holes left by removals) would have been compacted: at 32 slots
/// or more, once fewer than half hold a receiver.
#[derive(Debug, Default, Clone, Copy)]
struct Reach {
    largest: usize,
    slots: usize,
    compactions: u32,
}

impl Reach {
    fn inserted(&mut self) {
        self.slots += 1;
    }

    fn observe(&mut self, held: usize) {
        self.largest = self.largest.max(held);
        if self.slots >= 32 && held * 2 < self.slots {
            self.compactions += 1;
            self.slots = held;
        }
    }
}

impl Model {
    fn alive(&self, entry: &Entry) -> bool {
        entry
            .target
            .is_none_or(|generation| self.targets.contains(&Some(generation)))
    }

    fn push(&mut self, entry: Entry) {
        self.entries.push(entry);
        self.reach.inserted();
    }

    /// A fresh id for a closure receiver.
    fn closure_id(&mut self) -> u32 {
        self.next_closure_id += 1;
        1000 + self.next_closure_id
    }

    /// The live generation of target slot `target`, making a new target if it was dropped.
    fn target(&mut self, real: &mut Real<'_>, target: usize) -> usize {
        if let Some(generation) = self.targets[target] {
            return generation;
        }
        self.generations += 1;
        self.targets[target] = Some(self.generations);
        real.targets[target] = Some(Arc::new(u32::try_from(target).unwrap()));
        self.generations
    }

    fn purge(&mut self) {
        let targets = self.targets;
        self.entries
            .retain(|e| e.target.is_none_or(|g| targets.contains(&Some(g))));
    }

    /// The ids a send from `sender` runs, in order.
    fn matching(&self, sender: Option<u8>) -> Vec<&Entry> {
        self.entries
            .iter()
            .filter(|e| {
                self.alive(e) && (e.sender.is_none() || (sender.is_some() && e.sender == sender))
            })
            .collect()
    }
}

/// The real side: the signal, its handles and guards, and the weak targets.
struct Real<'s> {
    signal: &'s Signal<Probe>,
    handles: Vec<Connection>,
    guards: Vec<Option<ScopedConnection<'s>>>,
    targets: [Option<Arc<u32>>; TARGETS],
}

/// A connector with the op's sender and uid.
fn connector<'s>(
    real: &Real<'s>,
    sender: Option<u8>,
    uid: Option<u8>,
) -> signals_core::Connector<'s, signals_core::ValueTarget<'s, Probe, signals_core::mode::Plain>> {
    let mut connector = real.signal.connector();
    if let Some(sender) = sender {
        connector = connector.sender(sender);
    }
    if let Some(uid) = uid {
        connector = connector.dispatch_uid(format!("uid-{uid}"));
    }
    connector
}

/// Connects `receiver` on both sides; the real connect must be a duplicate exactly when the
/// model has a live entry with the same key and sender.
fn connect(
    model: &mut Model,
    real: &mut Real<'_>,
    receiver: &Receiver,
    sender: Option<u8>,
    uid: Option<u8>,
) -> Result<(), TestCaseError> {
    model.purge();
    let (key, id, target) = match receiver {
        Receiver::Code(k) => (Key::Code(*k), *k, None),
        Receiver::Closure => (Key::Unique, model.closure_id(), None),
        Receiver::Weak { code, target } => {
            let generation = model.target(real, *target);
            let id = 100 + code * 10 + u32::try_from(*target).unwrap();
            (Key::Bound(*code, generation), id, Some(generation))
        }
    };
    let key = uid.map_or(key, Key::Uid);
    let duplicate = key != Key::Unique
        && model
            .entries
            .iter()
            .any(|e| e.key == key && e.sender == sender);
    let connector = connector(real, sender, uid);
    let connection = match receiver {
        Receiver::Weak { code: 0, target } => {
            connector.connect_weak(real.targets[*target].as_ref().unwrap(), bound::<0>)
        }
        Receiver::Weak { target, .. } => {
            connector.connect_weak(real.targets[*target].as_ref().unwrap(), bound::<1>)
        }
        Receiver::Code(0) => connector.connect(code::<0>),
        Receiver::Code(1) => connector.connect(code::<1>),
        Receiver::Code(2) => connector.connect(code::<2>),
        Receiver::Code(_) => connector.connect(code::<3>),
        Receiver::Closure => connector.connect(move |_, log: &Log| log.0.borrow_mut().push(id)),
    };
    prop_assert_eq!(
        connection.is_duplicate(),
        duplicate,
        "duplicate of {:?}",
        key
    );
    let handle = Handle::Handle(real.handles.len());
    real.handles.push(connection);
    if !duplicate {
        model.push(Entry {
            handle,
            key,
            sender,
            id,
            target,
        });
    }
    Ok(())
}

/// Connects `count` closures that capture their id, weakly bound to `target` if given.
fn connect_many(
    model: &mut Model,
    real: &mut Real<'_>,
    count: u32,
    target: Option<usize>,
    sender: Option<u8>,
) {
    for _ in 0..count {
        let id = model.closure_id();
        let generation = target.map(|target| model.target(real, target));
        let connector = connector(real, sender, None);
        let connection = match target {
            Some(target) => connector.connect_weak(
                real.targets[target].as_ref().unwrap(),
                move |_: &u32, _, log: &Log| log.0.borrow_mut().push(id),
            ),
            None => connector.connect(move |_, log: &Log| log.0.borrow_mut().push(id)),
        };
        model.push(Entry {
            handle: Handle::Handle(real.handles.len()),
            key: Key::Unique,
            sender,
            id,
            target: generation,
        });
        real.handles.push(connection);
    }
}

/// Connects a capturing closure behind a scoped guard, kept in `real.guards`.
fn connect_scoped(model: &mut Model, real: &mut Real<'_>, sender: Option<u8>, uid: Option<u8>) {
    model.purge();
    let id = model.closure_id();
    let key = uid.map_or(Key::Unique, Key::Uid);
    let duplicate = key != Key::Unique
        && model
            .entries
            .iter()
            .any(|e| e.key == key && e.sender == sender);
    let guard = connector(real, sender, uid)
        .connect_scoped(move |_, log: &Log| log.0.borrow_mut().push(id));
    if !duplicate {
        model.push(Entry {
            handle: Handle::Guard(real.guards.len()),
            key,
            sender,
            id,
            target: None,
        });
    }
    real.guards.push(Some(guard));
}

fn step(model: &mut Model, real: &mut Real<'_>, op: &Op) -> Result<(), TestCaseError> {
    match op.clone() {
        Op::Connect {
            receiver,
            sender,
            uid,
        } => connect(model, real, &receiver, sender, uid)?,
        Op::ConnectMany { count, sender } => connect_many(model, real, count, None, sender),
        Op::ConnectWeakMany {
            count,
            target,
            sender,
        } => connect_many(model, real, count, Some(target), sender),
        Op::ConnectScoped { sender, uid } => connect_scoped(model, real, sender, uid),
        Op::DropGuard(pick) => {
            if real.guards.is_empty() {
                return Ok(());
            }
            let guard = pick % real.guards.len();
            model.entries.retain(|e| e.handle != Handle::Guard(guard));
            drop(real.guards[guard].take());
        }
        Op::DisconnectMany { first, count } => {
            for pick in first..first + count {
                step(model, real, &Op::Disconnect(pick))?;
            }
        }
        Op::Disconnect(pick) => {
            if real.handles.is_empty() {
                return Ok(());
            }
            let handle = pick % real.handles.len();
            model.purge();
            let expected = model
                .entries
                .iter()
                .position(|e| e.handle == Handle::Handle(handle));
            if let Some(index) = expected {
                model.entries.remove(index);
            }
            prop_assert_eq!(
                real.signal.disconnect(real.handles[handle]),
                expected.is_some()
            );
        }
        Op::DisconnectUid { uid, sender } => {
            model.purge();
            let before = model.entries.len();
            model
                .entries
                .retain(|e| !(e.key == Key::Uid(uid) && e.sender == sender));
            let removed = model.entries.len() < before;
            prop_assert_eq!(
                real.signal
                    .disconnect_uid(&format!("uid-{uid}"), sender.as_ref()),
                removed
            );
        }
        Op::DropTarget(target) => {
            model.targets[target] = None;
            real.targets[target] = None;
        }
        Op::Send(sender) => {
            let expected: Vec<u32> = {
                let mut ran = Vec::new();
                for entry in model.matching(sender) {
                    ran.push(entry.id);
                    if entry.id == FAILS {
                        break;
                    }
                }
                ran
            };
            let fails = expected.last() == Some(&FAILS);
            let log = Log::default();
            let result = real.signal.send(sender.as_ref(), &log);
            prop_assert_eq!(log.0.into_inner(), expected);
            prop_assert_eq!(result.is_err(), fails);
        }
        Op::SendRobust(sender) => {
            let matching = model.matching(sender);
            let expected: Vec<u32> = matching.iter().map(|e| e.id).collect();
            let failures = expected.iter().filter(|id| **id == FAILS).count();
            let log = Log::default();
            let responses = real.signal.send_robust(sender.as_ref(), &log);
            prop_assert_eq!(log.0.into_inner(), expected.clone());
            prop_assert_eq!(responses.len(), expected.len());
            prop_assert_eq!(responses.failures().count(), failures);
            prop_assert_eq!(real.signal.receivers(sender.as_ref()).len(), expected.len());
            prop_assert_eq!(
                real.signal.has_listeners(sender.as_ref()),
                !expected.is_empty()
            );
        }
    }
    model.reach.observe(model.entries.len());
    Ok(())
}

#[test]
fn the_dispatcher_behaves_as_the_reference_model_after_every_step() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(10_000);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let totals = std::cell::Cell::new((0_u64, 0_u64, 0_u64, 0_usize));
    runner
        .run(&proptest::collection::vec(op(), 10..80), |ops| {
            let mut model = Model::default();
            let signal = Signal::new("probe");
            let mut real = Real {
                signal: &signal,
                handles: Vec::new(),
                guards: Vec::new(),
                targets: Default::default(),
            };
            for target in 0..TARGETS {
                model.target(&mut real, target);
            }
            for op in &ops {
                step(&mut model, &mut real, op)?;
            }
            let (steps, crossings, crossing_cases, largest) = totals.get();
            let reach = model.reach;
            totals.set((
                steps + ops.len() as u64,
                crossings + u64::from(reach.compactions),
                crossing_cases + u64::from(reach.compactions >= 2),
                largest.max(reach.largest),
            ));
            Ok(())
        })
        .unwrap();
    let (steps, crossings, crossing_cases, largest) = totals.get();
    eprintln!(
        "model test: {cases} cases, {steps} steps checked; tables up to {largest} receivers; \
         {crossings} compactions, {crossing_cases} cases with two or more"
    );
    assert!(
        crossing_cases * 4 >= u64::from(cases),
        "the operation mix no longer reaches the compaction threshold: {crossing_cases} of {cases} \
         cases compacted twice or more"
    );
}
