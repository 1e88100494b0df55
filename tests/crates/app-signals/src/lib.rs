//! Signals declared in one crate, received in another (`app-receivers`), sent from a third
//! (the `linking` test), to prove cross-crate registration.

use std::sync::Mutex;

/// What receivers of [`user_signed_up`] get.
pub struct SignedUp<'a> {
    /// The new user's address.
    pub email: &'a str,
    /// Where receivers write what they did.
    pub log: &'a Mutex<Vec<String>>,
}

/// A model, the sender type of [`post_save`].
pub struct Team {
    /// The team's slug.
    pub slug: &'static str,
}

/// What receivers of [`post_save`] get.
pub struct Saved<'a, M> {
    /// The saved instance.
    pub instance: &'a M,
    /// Where receivers write what they did.
    pub log: &'a Mutex<Vec<String>>,
}

signals::signal! {
    /// Sent when a user signs up, by the channel (`"web"`, `"api"`).
    pub static user_signed_up: Signal<SignedUp<'_>, sender = &'static str>;
    /// Sent after a model is saved, by its type.
    pub static post_save: Signal<Saved<'_, M>, sender = type M>;
}
