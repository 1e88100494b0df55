use signals::{receiver, signal};

/// A type whose name is all capitals, as a constant's would be.
pub struct DB;

signal! {
    pub static post_migrate: Signal<(), sender = type M>;
}

#[receiver(signal = post_migrate, sender = DB)]
fn reset_sequences() {}

fn main() {}
