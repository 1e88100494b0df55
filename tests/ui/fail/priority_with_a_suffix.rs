use signals::{receiver, signal};

signal! {
    pub static post_upgrade: Signal<(), sender = u8>;
}

#[receiver(signal = post_upgrade, priority = 5u8)]
fn create_first_user() {}

fn main() {}
