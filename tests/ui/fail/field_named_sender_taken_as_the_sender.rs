use signals::{receiver, signal};

/// An argument struct with a field named `sender`: a parameter `sender` is the signal's
/// sender; `r#sender` is the field.
pub struct Mail<'a> {
    pub sender: &'a str,
    pub subject: &'a str,
}

signal! {
    pub static mail_sent: Signal<Mail<'_>, sender = u8>;
}

#[receiver(signal = mail_sent)]
fn log_mail(sender: &str, subject: &str) {
    let _ = (sender, subject);
}

fn main() {}
