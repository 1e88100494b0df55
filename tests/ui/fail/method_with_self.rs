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

pub struct Installer;

impl Installer {
    #[receiver(signal = post_upgrade)]
    fn create_first_user(&self, interactive: bool) {
        let _ = interactive;
    }
}

fn main() {}
