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
    field_named_sender::check();
}

/// An argument struct with a field named `sender`: `r#sender` takes the field, `sender` the
/// sender; a receiver that wants both takes the field through a pattern.
pub mod field_named_sender {
    use signals::{receiver, signal};

    pub struct Mail<'a> {
        pub sender: &'a str,
        pub subject: &'a str,
    }

    signal! {
        pub static mail_sent: Signal<Mail<'_>, sender = u8, output = String>;
    }

    #[receiver(signal = mail_sent)]
    fn log_mail(r#sender: &str, subject: &str) -> String {
        format!("{subject} from {}", r#sender)
    }

    #[receiver(signal = mail_sent)]
    fn log_route(Mail { sender: from, .. }: &Mail<'_>, sender: Option<&u8>) -> String {
        format!("{from} via {sender:?}")
    }

    pub fn check() {
        let mail = Mail { sender: "ada@example.com", subject: "hi" };
        let outputs = mail_sent.send(&7, &mail).unwrap().into_outputs();
        assert_eq!(outputs, ["hi from ada@example.com", "ada@example.com via Some(7)"]);
    }
}
