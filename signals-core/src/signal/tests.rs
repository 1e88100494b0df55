//! The table behind a value signal: purges of dead weak receivers and compaction, seen through
//! the signal.

use std::sync::Arc;

use super::{Signal, Signature};
use crate::registry::Indexed;

enum Tick {}
impl Signature for Tick {
    type Args<'a> = ();
    type Sender = u8;
    type Output = ();
}

#[test]
fn a_send_that_meets_a_dropped_weak_target_has_the_next_send_purge_it() {
    let signal = Signal::<Tick>::new("tick");
    let target = Arc::new(());
    signal.connect_weak(&target, |(): &(), _, (): &()| {});
    signal.connect(|_, (): &()| {});
    signal.emit(None, &()).unwrap();
    drop(target);
    assert_eq!(signal.core().len(), 2, "purged lazily, not on drop");
    signal.emit(None, &()).unwrap();
    assert_eq!(
        signal.core().len(),
        2,
        "the send that meets it only marks it"
    );
    signal.emit(None, &()).unwrap();
    assert_eq!(signal.core().len(), 1);
}

#[test]
fn disconnects_compact_the_table_and_keep_order_and_lookups() {
    let signal = Signal::<Tick>::new("tick");
    let connections: Vec<_> = (0..100_u8)
        .map(|i| {
            signal
                .connector()
                .sender(i % 3)
                .dispatch_uid(format!("r{i}"))
                .connect(|_, (): &()| {})
        })
        .collect();
    // Every disconnect but the last few leaves a hole; holes past half compact the table.
    for (i, connection) in connections.iter().enumerate() {
        if i % 4 != 0 {
            assert!(signal.disconnect(*connection));
        }
    }
    assert_eq!(signal.core().len(), 25);
    let uids = |sender| -> Vec<String> {
        signal
            .receivers(&sender)
            .iter()
            .map(|info| info.dispatch_uid().unwrap_or_default().to_owned())
            .collect()
    };
    let expected = |sender| -> Vec<String> {
        (0..100_u8)
            .filter(|i| i % 4 == 0 && i % 3 == sender)
            .map(|i| format!("r{i}"))
            .collect()
    };
    assert_eq!(uids(1), expected(1));
    // Lookups by handle, and by key for dedupe and disconnect_uid, survive the compaction.
    assert!(!signal.disconnect(connections[1]));
    assert!(signal.disconnect(connections[96]));
    assert!(signal.disconnect_uid("r92", &2));
    let again = signal
        .connector()
        .sender(0)
        .dispatch_uid("r0")
        .connect(|_, (): &()| {});
    assert!(again.is_duplicate());
    assert_eq!(signal.core().len(), 23);
    assert_eq!(uids(0), expected(0)[..expected(0).len() - 1]);
}

#[test]
fn a_connect_purges_receivers_whose_weak_target_is_gone() {
    let signal = Signal::<Tick>::new("tick");
    let target = Arc::new(());
    signal.connect_weak(&target, |(): &(), _, (): &()| {});
    drop(target);
    signal.connect(|_, (): &()| {});
    assert_eq!(signal.core().len(), 1);
}
