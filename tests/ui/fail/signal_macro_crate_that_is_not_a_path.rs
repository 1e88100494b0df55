use signals::signal;

pub struct Upgrade;

signal! {
    crate = "signals";
    pub static post_upgrade: Signal<Upgrade, sendr = u32>;
}

fn main() {}
