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

/// Generic types are types, whatever their case.
pub struct W<T>(T);
pub struct Pair<A, B>(A, B);
pub struct T;

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

#[receiver(signal = by_type, sender = W<u16>)]
fn generic_type() {}

#[receiver(signal = by_type, sender = Pair<u8, u16>, priority = 2i32)]
fn generic_type_with_two_arguments() {}

#[receiver(signal = by_type, sender = T)]
fn one_letter_type() {}

fn main() {
    process_outbox.emit(&Category::IntegrationUpdate, &Empty).unwrap();
    by_type.emit::<CONTROL>(&Empty).unwrap();
    by_id.emit(&1, &Empty).unwrap();
    by_id.emit(&42, &Empty).unwrap();
    by_name.emit(&"resolved_with_commit", &Empty).unwrap();
    by_type.emit::<W<u16>>(&Empty).unwrap();
    by_type.emit::<Pair<u8, u16>>(&Empty).unwrap();
    by_type.emit::<T>(&Empty).unwrap();
    assert_eq!(by_type.receivers(signals::TypeSender::of::<W<u16>>()).len(), 1);
    assert_eq!(by_type.receivers(signals::TypeSender::of::<W<u8>>()).len(), 0);
    assert_eq!(by_type.receivers(signals::TypeSender::of::<Pair<u8, u16>>()).len(), 1);
    assert_eq!(by_type.receivers(signals::TypeSender::of::<T>()).len(), 1);
    assert_eq!(process_outbox.receivers(&Category::IntegrationUpdate).len(), 1);
    assert_eq!(by_type.receivers(signals::TypeSender::of::<CONTROL>()).len(), 1);
    assert_eq!(by_id.receivers(&1).len(), 1);
    assert_eq!(by_id.receivers(&42).len(), 1);
    assert_eq!(by_name.receivers(&"resolved_with_commit").len(), 1);
}
