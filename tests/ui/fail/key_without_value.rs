use signals::{receiver, signal};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SiloMode {
    Monolith,
}

pub struct Upgrade<'a> {
    pub interactive: bool,
    pub database: &'a str,
}

signal! {
    pub static post_upgrade: Signal<Upgrade<'_>, sender = SiloMode>;
}

#[receiver(signal = post_upgrade, sender)]
fn create_first_user(interactive: bool) {
    let _ = interactive;
}

fn main() {}
