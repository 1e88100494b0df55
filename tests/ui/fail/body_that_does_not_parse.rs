use signals::{receiver, signal};

signal! {
    pub static post_upgrade: Signal<(), sender = u8>;
}

#[receiver(signal = post_upgrade)]
fn create_first_user() {
    let user = ;
}

fn main() {}
