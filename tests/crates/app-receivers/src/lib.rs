//! Receivers of `app-signals`' signals. Nothing names this crate's items: a binary that wants
//! them links the crate with `signals::link!(app_receivers)`.

use std::sync::Mutex;

use app_signals::{Team, post_save, user_signed_up};
use signals::receiver;

#[receiver(signal = user_signed_up, sender = "web", dispatch_uid = "send_welcome_mail")]
fn send_welcome_mail(email: &str, log: &Mutex<Vec<String>>) {
    log.lock().unwrap().push(format!("welcome mail to {email}"));
}

#[receiver(signal = post_save, sender = Team)]
fn create_team_slug(instance: &Team, log: &Mutex<Vec<String>>) {
    log.lock().unwrap().push(format!("slug {}", instance.slug));
}
