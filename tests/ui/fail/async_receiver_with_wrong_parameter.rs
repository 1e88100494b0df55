use signals::{receiver, signal};

pub struct Checkin<'a> {
    pub slug: &'a str,
}

signal! {
    pub static checkin: async Signal<Checkin<'_>>;
}

#[receiver(signal = checkin)]
async fn record_checkin(slugg: &str) {
    let _ = slugg;
}

fn main() {}
