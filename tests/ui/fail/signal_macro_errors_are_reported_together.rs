use signals::{receiver, signal};

pub struct Upgrade;

pub struct Saved<'a> {
    pub table: &'a str,
}

signal! {
    pub static post_upgrade: Signal<Upgrade, sendr = u32>;
    pub static post_save: Signal<Saved<'a>, sender = u32, sender = u8>;
    pub static pre_save: Signal<Upgrade, sender = u32, any = Upgrade>;
    pub static user_created: Sgnal<Upgrade>;
    pub static pre_delete: Signal<Upgrade, output = 1>;
    /// Right: still declared, so that the code below compiles and adds no error.
    pub static post_delete: Signal<Upgrade, sender = u32>;
}

#[receiver(signal = post_delete, sender = 1)]
fn on_delete() {}

fn main() {
    post_delete.send(&1, &Upgrade).unwrap();
}
