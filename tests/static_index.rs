//! The index of static receivers across several signals: receivers of different signals defined
//! interleaved, in several modules, with priorities, sender filters, one function registered
//! with two signals and one `dispatch_uid` shared by two signals, each signal runs exactly its
//! own receivers, for its sender, in dispatch order. How the registry groups and sorts the
//! registrations must not show.

use std::sync::Mutex;

use signals::{receiver, signal};

/// Records which receivers ran.
#[derive(Default)]
struct Log(Mutex<Vec<&'static str>>);

impl Log {
    fn push(&self, entry: &'static str) {
        self.0.lock().unwrap().push(entry);
    }

    fn take(&self) -> Vec<&'static str> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

struct Note<'a> {
    log: &'a Log,
}

signal! {
    static north: Signal<Note<'_>, sender = u32>;
    static south: Signal<Note<'_>, sender = u32>;
    static east: Signal<Note<'_>, sender = u32>;
}

mod zeta {
    use super::{Log, east, north, receiver, south};

    #[receiver(signal = north)]
    fn zeta_north(log: &Log) {
        log.push("zeta_north");
    }

    #[receiver(signal = south, sender = 1)]
    fn zeta_south_1(log: &Log) {
        log.push("zeta_south_1");
    }

    #[receiver(signal = north, sender = 2, priority = 5)]
    fn zeta_north_2_urgent(log: &Log) {
        log.push("zeta_north_2_urgent");
    }

    #[receiver(signal = east, dispatch_uid = "shared")]
    fn zeta_east_shared(log: &Log) {
        log.push("zeta_east_shared");
    }

    #[receiver(signal = [north, south], sender = 1)]
    fn zeta_both_1(log: &Log) {
        log.push("zeta_both_1");
    }

    #[receiver(signal = south, priority = -1)]
    fn zeta_south_late(log: &Log) {
        log.push("zeta_south_late");
    }
}

mod alpha {
    use super::{Log, east, north, receiver, south};

    #[receiver(signal = south)]
    fn alpha_south(log: &Log) {
        log.push("alpha_south");
    }

    #[receiver(signal = north, sender = 1, dispatch_uid = "shared")]
    fn alpha_north_1_shared(log: &Log) {
        log.push("alpha_north_1_shared");
    }

    #[receiver(signal = east, sender = 2, priority = 5)]
    fn alpha_east_2_urgent(log: &Log) {
        log.push("alpha_east_2_urgent");
    }

    #[receiver(signal = north)]
    fn alpha_north(log: &Log) {
        log.push("alpha_north");
    }

    #[receiver(signal = south, sender = 2, priority = 5)]
    fn alpha_south_2_urgent(log: &Log) {
        log.push("alpha_south_2_urgent");
    }

    #[receiver(signal = east, priority = -1)]
    fn alpha_east_late(log: &Log) {
        log.push("alpha_east_late");
    }
}

/// Whom `send` reaches for the senders 1, 2 and 3, then without a sender.
fn runs(send: impl Fn(Option<&u32>, &Note<'_>)) -> Vec<Vec<&'static str>> {
    let log = Log::default();
    [Some(1), Some(2), Some(3), None]
        .iter()
        .map(|sender| {
            send(sender.as_ref(), &Note { log: &log });
            log.take()
        })
        .collect()
}

#[test]
fn each_signal_runs_its_own_receivers_for_its_sender_in_dispatch_order() {
    assert_eq!(
        runs(|sender, note| {
            north.send(sender, note).unwrap();
        }),
        [
            vec![
                "alpha_north_1_shared",
                "alpha_north",
                "zeta_north",
                "zeta_both_1"
            ],
            vec!["zeta_north_2_urgent", "alpha_north", "zeta_north"],
            vec!["alpha_north", "zeta_north"],
            vec!["alpha_north", "zeta_north"],
        ]
    );
    assert_eq!(
        runs(|sender, note| {
            south.send(sender, note).unwrap();
        }),
        [
            vec![
                "alpha_south",
                "zeta_south_1",
                "zeta_both_1",
                "zeta_south_late"
            ],
            vec!["alpha_south_2_urgent", "alpha_south", "zeta_south_late"],
            vec!["alpha_south", "zeta_south_late"],
            vec!["alpha_south", "zeta_south_late"],
        ]
    );
    assert_eq!(
        runs(|sender, note| {
            east.send(sender, note).unwrap();
        }),
        [
            vec!["zeta_east_shared", "alpha_east_late"],
            vec!["alpha_east_2_urgent", "zeta_east_shared", "alpha_east_late"],
            vec!["zeta_east_shared", "alpha_east_late"],
            vec!["zeta_east_shared", "alpha_east_late"],
        ]
    );
}

#[test]
fn a_dispatch_uid_is_unique_per_signal_not_across_signals() {
    assert_eq!(signals::check(), Vec::new());
}
