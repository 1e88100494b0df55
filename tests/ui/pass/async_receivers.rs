//! Plain and async receivers of async signals, by value and by type, run by a plain executor.

use signals::{receiver, signal, TypeSender};

pub struct Checkin<'a> {
    pub slug: &'a str,
}

pub struct Saved<'a, M> {
    pub instance: &'a M,
}

pub struct Monitor;

signal! {
    pub static checkin: async Signal<Checkin<'_>, sender = u64, output = usize>;
    pub static saved: async Signal<Saved<'_, M>, sender = type M>;
}

#[receiver(signal = checkin, sender = 7)]
async fn by_value(slug: &str) -> usize {
    slug.len()
}

#[receiver(signal = checkin)]
fn plain(sender: Option<&u64>) -> usize {
    usize::from(sender.is_some())
}

#[receiver(signal = saved, sender = Monitor)]
async fn by_type(instance: &Monitor, sender: TypeSender) {
    let _ = (instance, sender.name());
}

fn main() {
    let outputs = futures::executor::block_on(checkin.send(&7, &Checkin { slug: "cron" }))
        .unwrap()
        .into_outputs();
    assert_eq!(outputs, [1, 4]);
    futures::executor::block_on(saved.send::<Monitor>(&Saved { instance: &Monitor })).unwrap();
}
