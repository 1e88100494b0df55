//! Purging weak receivers whose target is gone never touches a live receiver: disconnects by
//! handle, by uid and by scoped guard remove exactly what they name, whatever the table's layout
//! (tables past the compaction threshold, dozens of dead receivers purged at once).

#![allow(non_upper_case_globals)]

mod support;

use std::sync::Arc;

use signals_core::Signal;
use support::{Event, Log, Plain, ev};

/// Connects `count` weak receivers, each logging `weak {i}`; returns their targets.
fn weak_receivers(signal: &Signal<Plain>, count: usize) -> Vec<Arc<usize>> {
    (0..count)
        .map(|i| {
            let target = Arc::new(i);
            signal.connect_weak(&target, |i: &usize, _, args: &Event<'_>| {
                args.log.push(format!("weak {i}"));
            });
            target
        })
        .collect()
}

fn named(name: &'static str) -> impl Fn(Option<&support::Silo>, &Event<'_>) + Send + Sync {
    move |_, args| args.log.push(name)
}

fn ran(signal: &Signal<Plain>) -> Vec<String> {
    let log = Log::default();
    signal.emit(None, &ev(&log)).unwrap();
    log.take()
}

#[test]
fn a_scoped_guard_dropped_after_a_purge_disconnects_its_own_receiver() {
    let signal = Signal::<Plain>::new("test");
    let targets = weak_receivers(&signal, 40);
    let guard = signal.connector().connect_scoped(named("scoped"));
    drop(targets);
    assert_eq!(ran(&signal), ["scoped"]);
    drop(guard);
    assert_eq!(
        ran(&signal),
        Vec::<String>::new(),
        "the scoped receiver ran"
    );
}

#[test]
fn disconnecting_a_live_receiver_after_weak_ones_died_removes_it_and_only_it() {
    let signal = Signal::<Plain>::new("test");
    let targets = weak_receivers(&signal, 40);
    signal.connect(named("a"));
    let b = signal.connect(named("b"));
    signal.connect(named("c"));
    drop(targets);
    assert_eq!(ran(&signal), ["a", "b", "c"]);
    assert!(signal.disconnect(b), "b was connected and alive");
    assert_eq!(ran(&signal), ["a", "c"]);
}

#[test]
fn disconnecting_by_uid_after_weak_ones_died_removes_it_and_only_it() {
    let signal = Signal::<Plain>::new("test");
    let targets = weak_receivers(&signal, 40);
    signal.connector().dispatch_uid("a").connect(named("a"));
    signal.connector().dispatch_uid("b").connect(named("b"));
    signal.connector().dispatch_uid("c").connect(named("c"));
    drop(targets);
    assert_eq!(ran(&signal), ["a", "b", "c"]);
    assert!(
        signal.disconnect_uid("b", None),
        "b was connected and alive"
    );
    assert_eq!(ran(&signal), ["a", "c"]);
}

#[test]
fn sends_and_connects_after_weak_ones_died_keep_every_live_receiver() {
    let signal = Signal::<Plain>::new("test");
    let mut targets = Vec::new();
    let mut expected = Vec::new();
    // Live and dying receivers interleaved, so that the purge's holes are spread out.
    for round in 0..3 {
        targets.extend(weak_receivers(&signal, 20));
        let name = ["a", "b", "c"][round];
        signal.connect(named(name));
        expected.push(name);
    }
    drop(targets);
    assert_eq!(ran(&signal), expected);
    assert_eq!(ran(&signal), expected);
    signal.connect(named("d"));
    expected.push("d");
    assert_eq!(ran(&signal), expected);
    assert_eq!(signal.receivers(None).len(), expected.len());
}

#[test]
fn the_sweep_on_growth_purges_dead_receivers_and_keeps_live_ones() {
    let signal = Signal::<Plain>::new("test");
    let mut live = Vec::new();
    let mut handles = Vec::new();
    for i in 0..200 {
        // Targets dropped at once: only the sweep on growth can find them, no send does.
        drop(weak_receivers(&signal, 3));
        handles.push(
            signal
                .connector()
                .dispatch_uid(format!("live {i}"))
                .connect(named("live")),
        );
        live.push(i);
    }
    assert_eq!(ran(&signal).len(), 200);
    for (i, handle) in handles.into_iter().enumerate() {
        if i % 2 == 0 {
            assert!(signal.disconnect(handle), "live {i} was connected");
        }
    }
    assert_eq!(ran(&signal).len(), 100);
}
