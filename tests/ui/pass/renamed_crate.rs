//! `crate = path` for a renamed dependency.

extern crate signals as events;

use events::{receiver, signal};

pub struct Ping;

signal! {
    pub static ping: Signal<Ping, sender = u8>;
}

#[receiver(crate = events, signal = ping, sender = 1)]
fn pong() {}

fn main() {
    ping.send(&1, &Ping).unwrap();
    assert!(ping.receivers(&1)[0].name().ends_with("::pong"));
}
