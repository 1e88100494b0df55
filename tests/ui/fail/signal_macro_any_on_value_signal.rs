use signals::signal;

pub struct Upgrade;

signal! {
    pub static post_upgrade: Signal<Upgrade, sender = u32, any = Upgrade>;
}

fn main() {}
