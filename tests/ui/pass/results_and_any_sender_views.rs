//! Receivers that fail with their own error type, and an any-sender receiver of a type signal
//! that gets the sender-independent view.

use std::fmt;

use signals::{receiver, signal, TypeSender};

pub trait Model: Sync {
    fn table(&self) -> &'static str;
}

pub struct User;

impl Model for User {
    fn table(&self) -> &'static str {
        "auth_user"
    }
}

pub struct Saved<'a, M: ?Sized> {
    pub instance: &'a M,
}

impl<'b, 'x: 'b, M: Model + 'static> From<&'b Saved<'x, M>> for Saved<'b, dyn Model> {
    fn from(saved: &'b Saved<'x, M>) -> Self {
        Saved { instance: saved.instance }
    }
}

#[derive(Debug)]
pub struct Refused;

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("refused")
    }
}

impl std::error::Error for Refused {}

signal! {
    pub static post_save: Signal<Saved<'_, M>, sender = type M: Model, any = Saved<'_, dyn Model>>;
}

#[receiver(signal = post_save)]
fn audit(sender: TypeSender, instance: &dyn Model) -> Result<(), Refused> {
    if sender.is::<User>() && instance.table() == "auth_user" { Err(Refused) } else { Ok(()) }
}

fn main() {
    let error = post_save.send::<User>(&Saved { instance: &User }).unwrap_err();
    assert_eq!(error.error().unwrap().to_string(), "refused");
}
