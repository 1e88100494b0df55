//! Senders told apart by syntax, and the `type` and `const` overrides.

use signals::{receiver, signal};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    IntegrationUpdate,
}

/// A unit struct used as a sender type, which only `type` marks as a type.
pub struct CONTROL;

pub mod ids {
    #[allow(non_upper_case_globals)]
    pub const root: u64 = 1;
}

pub struct Empty;

signal! {
    pub static process_outbox: Signal<Empty, sender = Category>;
    pub static by_type: Signal<Empty, sender = type M>;
    pub static by_id: Signal<Empty, sender = u64>;
    pub static by_name: Signal<Empty, sender = &'static str>;
}

#[receiver(signal = process_outbox, sender = Category::IntegrationUpdate)]
fn enum_variant() {}

#[receiver(signal = by_type, sender = type CONTROL)]
fn forced_type() {}

#[receiver(signal = by_id, sender = const ids::root)]
fn forced_const() {}

#[receiver(signal = by_id, sender = 42)]
fn literal() {}

#[receiver(signal = by_name, sender = "resolved_with_commit")]
fn string() {}

fn main() {
    process_outbox.emit(&Category::IntegrationUpdate, &Empty).unwrap();
    by_type.emit::<CONTROL>(&Empty).unwrap();
    by_id.emit(&1, &Empty).unwrap();
    by_id.emit(&42, &Empty).unwrap();
    by_name.emit(&"resolved_with_commit", &Empty).unwrap();
    assert_eq!(process_outbox.receivers(&Category::IntegrationUpdate).len(), 1);
    assert_eq!(by_type.receivers(signals::TypeSender::of::<CONTROL>()).len(), 1);
    assert_eq!(by_id.receivers(&1).len(), 1);
    assert_eq!(by_id.receivers(&42).len(), 1);
    assert_eq!(by_name.receivers(&"resolved_with_commit").len(), 1);
}
