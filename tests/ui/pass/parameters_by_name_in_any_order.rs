//! Parameters are taken by name, in any order, by reference or by copy, or as the whole struct.

use signals::{receiver, signal};

pub struct Saved<'a> {
    pub instance: &'a str,
    pub created: bool,
    pub tags: Vec<&'static str>,
    pub owner: String,
}

signal! {
    pub static post_save: Signal<Saved<'_>, output = usize>;
}

#[receiver(signal = post_save)]
fn by_name(owner: &str, created: bool, tags: &[&'static str], instance: &str) -> usize {
    usize::from(created) + tags.len() + instance.len() + owner.len()
}

#[receiver(signal = post_save)]
fn whole(Saved { instance, .. }: &Saved<'_>) -> usize {
    instance.len()
}

#[receiver(signal = post_save)]
fn nothing() -> usize {
    0
}

fn main() {
    let saved = Saved { instance: "user", created: true, tags: vec!["a"], owner: "ada".into() };
    let outputs = post_save.send(None, &saved).unwrap().into_outputs();
    assert_eq!(outputs, [1 + 1 + 4 + 3, 4, 0]);
}
