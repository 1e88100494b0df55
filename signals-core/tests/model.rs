//! A model-based property test: a small reference model of Django's dispatcher (a list of
//! entries with lookup keys, in connection order) and random sequences of connect, connect with
//! `dispatch_uid`, weak connect, disconnect by handle and by uid, dropping a weak target, `send`
//! and `send_robust`. After every step, what the real signal ran and returned must equal what the
//! model predicts.
//!
//! 10,000 cases by default (`PROPTEST_CASES` overrides it).

use std::cell::RefCell;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use signals_core::{Connection, Signal, Signature};

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

#[derive(Debug, Clone)]
enum Receiver {
    /// One of four functions, identified by code.
    Code(u32),
    /// A closure with a capture: a new receiver each time.
    Closure,
    /// One of two functions bound weakly to one of three targets.
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
        (0_u32..2, 0_usize..3).prop_map(|(code, target)| Receiver::Weak { code, target }),
    ];
    prop_oneof![
        4 => (receiver, sender.clone(), uid).prop_map(|(receiver, sender, uid)| Op::Connect { receiver, sender, uid }),
        1 => (0_usize..64).prop_map(Op::Disconnect),
        1 => (0_u8..3, sender.clone()).prop_map(|(uid, sender)| Op::DisconnectUid { uid, sender }),
        1 => (0_usize..3).prop_map(Op::DropTarget),
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
    handle: usize,
    key: Key,
    sender: Option<u8>,
    id: u32,
    /// The target generation a weak receiver holds.
    target: Option<usize>,
}

/// The reference model.
#[derive(Debug, Default)]
struct Model {
    entries: Vec<Entry>,
    /// Per target slot: the live generation, or `None` once dropped.
    targets: [Option<usize>; 3],
    generations: usize,
    next_closure_id: u32,
}

impl Model {
    fn alive(&self, entry: &Entry) -> bool {
        entry
            .target
            .is_none_or(|generation| self.targets.contains(&Some(generation)))
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

/// The real side: the signal, its handles, and the weak targets.
struct Real {
    signal: Signal<Probe>,
    handles: Vec<Connection>,
    targets: [Option<Arc<u32>>; 3],
}

/// A connector with the op's sender and uid.
fn connector(
    real: &Real,
    sender: Option<u8>,
    uid: Option<u8>,
) -> signals_core::Connector<'_, Probe> {
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
    real: &mut Real,
    receiver: &Receiver,
    sender: Option<u8>,
    uid: Option<u8>,
) -> Result<(), TestCaseError> {
    model.purge();
    let (key, id, target) = match receiver {
        Receiver::Code(k) => (Key::Code(*k), *k, None),
        Receiver::Closure => {
            model.next_closure_id += 1;
            (Key::Unique, 1000 + model.next_closure_id, None)
        }
        Receiver::Weak { code, target } => {
            let generation = if let Some(generation) = model.targets[*target] {
                generation
            } else {
                model.generations += 1;
                model.targets[*target] = Some(model.generations);
                real.targets[*target] = Some(Arc::new(u32::try_from(*target).unwrap()));
                model.generations
            };
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
    let handle = real.handles.len();
    real.handles.push(connection);
    if !duplicate {
        model.entries.push(Entry {
            handle,
            key,
            sender,
            id,
            target,
        });
    }
    Ok(())
}

fn step(model: &mut Model, real: &mut Real, op: &Op) -> Result<(), TestCaseError> {
    match op.clone() {
        Op::Connect {
            receiver,
            sender,
            uid,
        } => connect(model, real, &receiver, sender, uid)?,
        Op::Disconnect(pick) => {
            if real.handles.is_empty() {
                return Ok(());
            }
            let handle = pick % real.handles.len();
            model.purge();
            let expected = model.entries.iter().position(|e| e.handle == handle);
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
    let steps = std::cell::Cell::new(0_u64);
    runner
        .run(&proptest::collection::vec(op(), 1..40), |ops| {
            let mut model = Model {
                targets: [Some(1), Some(2), Some(3)],
                generations: 3,
                ..Model::default()
            };
            let mut real = Real {
                signal: Signal::new("probe"),
                handles: Vec::new(),
                targets: [Some(Arc::new(0)), Some(Arc::new(1)), Some(Arc::new(2))],
            };
            for op in &ops {
                step(&mut model, &mut real, op)?;
            }
            steps.set(steps.get() + ops.len() as u64);
            Ok(())
        })
        .unwrap();
    eprintln!("model test: {cases} cases, {} steps checked", steps.get());
}
