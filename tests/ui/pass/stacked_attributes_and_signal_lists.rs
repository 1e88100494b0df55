//! One function on several signals (a list) and several senders (stacked attributes).

use std::sync::atomic::{AtomicU32, Ordering};

use signals::{receiver, signal, TypeSender};

pub struct Counted<'a, M> {
    pub instance: &'a M,
    pub count: &'a AtomicU32,
}

pub struct ApiKey;
pub struct ApiToken;

signal! {
    pub static pre_save: Signal<Counted<'_, M>, sender = type M>;
    pub static project_created: Signal<u32, sender = &'static str, output = bool>;
    pub static team_created: Signal<u32, sender = &'static str, output = bool>;
}

#[receiver(signal = pre_save, sender = ApiKey, dispatch_uid = "save_api_key")]
#[receiver(signal = pre_save, sender = ApiToken, dispatch_uid = "save_api_token")]
fn expand_scopes(sender: TypeSender, count: &AtomicU32) {
    assert!(sender.is::<ApiKey>() || sender.is::<ApiToken>());
    count.fetch_add(1, Ordering::SeqCst);
}

#[receiver(signal = [project_created, team_created])]
fn record_creation(sender: Option<&&'static str>) -> bool {
    // An inner attribute stays first in the body, before the registrations placed there.
    #![allow(clippy::option_map_or_none)]
    sender.is_some()
}

fn main() {
    let count = AtomicU32::new(0);
    pre_save.send::<ApiKey>(&Counted { instance: &ApiKey, count: &count }).unwrap();
    pre_save.send::<ApiToken>(&Counted { instance: &ApiToken, count: &count }).unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 2);
    assert_eq!(project_created.send(&"web", &1).unwrap().into_outputs(), [true]);
    assert_eq!(team_created.send(None, &2).unwrap().into_outputs(), [false]);
}
