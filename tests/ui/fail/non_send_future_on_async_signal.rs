use std::rc::Rc;

use signals::{receiver, signal};

pub struct Checkin<'a> {
    pub slug: &'a str,
}

signal! {
    pub static checkin: async Signal<Checkin<'_>>;
}

async fn flush() {}

#[receiver(signal = checkin)]
async fn record_checkin(slug: &str) {
    let counter = Rc::new(slug.len());
    flush().await;
    drop(counter);
}

fn main() {}
