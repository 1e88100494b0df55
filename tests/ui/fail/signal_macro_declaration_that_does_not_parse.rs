use signals::signal;

pub struct Upgrade;

signal! {
    pub static post_upgrade Signal<Upgrade>;
    pub static post_save: Signal<Upgrade, output>;
    pub static pre_save: Signal<Upgrade, sendr = u32>;
    pub static post_delete: Signal<Upgrade>
}

fn main() {}
