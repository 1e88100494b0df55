//! Declares a signal, wires receivers to it with `#[receiver]` and at run time, sends it and
//! prints what ran.
//!
//! ```sh
//! cargo run --example quickstart
//! ```

use std::fmt;

use signals::{ReceiverError, receiver, signal};

/// Which part of the deployment is running: the sender of `user_created`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum SiloMode {
    Monolith,
    Region,
}

/// `user_created`'s arguments, borrowed from the caller: sending clones nothing.
struct UserCreated<'a> {
    email: &'a str,
    via_invite: bool,
}

signal! {
    /// Sent after a user signs up; each receiver answers with a line saying what it did.
    static user_created: Signal<UserCreated<'_>, sender = SiloMode, output = String>;
}

#[receiver(signal = user_created, dispatch_uid = "create_user_email")]
fn create_user_email(email: &str) -> String {
    format!("inserted UserEmail({email})")
}

#[receiver(signal = user_created, sender = SiloMode::Region, priority = 10)]
fn send_welcome_mail(via_invite: bool, email: &str) -> String {
    let template = if via_invite {
        "invite-accepted"
    } else {
        "welcome"
    };
    format!("queued {template} mail to {email}")
}

#[derive(Debug)]
struct BackendDown;

impl fmt::Display for BackendDown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("analytics backend unreachable")
    }
}

impl std::error::Error for BackendDown {}

#[receiver(signal = user_created, dispatch_uid = "record_signup", priority = -10)]
fn record_signup() -> Result<String, BackendDown> {
    Err(BackendDown)
}

fn main() {
    // A receiver connected at run time runs after the static ones.
    user_created.connect(|sender: Option<&SiloMode>, args: &UserCreated<'_>| {
        format!("audit: {} signed up on {sender:?}", args.email)
    });

    println!("wiring:\n{}", signals::registry().to_mermaid());

    println!("receivers of `user_created` for SiloMode::Region, in dispatch order:");
    for receiver in user_created.receivers(&SiloMode::Region) {
        println!("  {receiver}");
    }

    let email = String::from("ada@example.com");
    let args = UserCreated {
        email: &email,
        via_invite: false,
    };

    println!("\nsend(&SiloMode::Monolith): stops at the first error");
    match user_created.send(&SiloMode::Monolith, &args) {
        Ok(responses) => {
            for response in &responses {
                println!("  ran {} -> {}", response.receiver.name(), response.output);
            }
        }
        Err(error) => println!("  error: {error}"),
    }

    println!("\nsend_robust(&SiloMode::Region): runs every receiver, records failures");
    for response in user_created.send_robust(&SiloMode::Region, &args) {
        match response.output {
            Ok(output) => println!("  ran {} -> {output}", response.receiver.name()),
            Err(ReceiverError::Failed(error)) => {
                println!("  {} failed: {error}", response.receiver.name());
            }
            Err(error) => println!("  {}: {error}", response.receiver.name()),
        }
    }
}
