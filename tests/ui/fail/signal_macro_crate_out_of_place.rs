use signals::signal;

pub struct Upgrade;

signal! {
    pub static post_upgrade: Signal<Upgrade, sender = u32, crate = signals>;
    crate = signals;
    pub static post_save: Signal<Upgrade, sender = u32>;
}

fn main() {}
