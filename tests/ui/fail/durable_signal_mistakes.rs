use signals::signal;

pub struct Change {
    pub id: u64,
}

pub struct Borrowed<'a> {
    pub name: &'a str,
}

signal! {
    pub static both: async durable Signal<Change, sender = u32>;
    pub static by_type: durable Signal<Change, sender = type M>;
    pub static with_output: durable Signal<Change, sender = u32, output = usize>;
    pub static borrowing: durable Signal<Borrowed<'_>, sender = u32>;
    pub static misspelt: durabel Signal<Change, sender = u32>;
}

fn main() {}
