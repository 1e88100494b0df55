use signals::{receiver, signal};

signal! {
    pub static post_upgrade: Signal<(), sender = u8>;
}

pub struct Installer;

impl Installer {
    #[receiver(signal = post_upgrade)]
    fn create_first_user() {}
}

fn main() {}
