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

pub struct Deploy {
    pub interactive: bool,
}

signal! {
    pub static post_deploy: Signal<Deploy, sender = SiloMode>;
}

#[receiver(signal = [post_upgrade, post_deploy])]
fn create_first_user(database: &str) {
    let _ = database;
}

fn main() {}
