use signals::{receiver, signal};

pub trait Model {}

pub struct User {
    pub email: String,
}

impl Model for User {}

pub struct Team;

pub struct PostSave<'a, M> {
    pub instance: &'a M,
    pub created: bool,
    pub email: String,
}

signal! {
    pub static post_save: Signal<PostSave<'_, M>, sender = type M: Model>;
}

#[receiver(signal = post_save, sender = User)]
fn create_user_email(instance: &Team) {
    let _ = instance;
}

fn main() {}
