use signals::signal;

pub struct Upgrade<'a> {
    pub database: &'a str,
}

signal! {
    pub static post_upgrade: Signal<Upgrade<'a>, sender = u32>;
}

fn main() {}
