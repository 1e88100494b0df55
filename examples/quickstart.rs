//! Declares a signal, connects receivers to it, sends it and prints what ran.
//!
//! ```sh
//! cargo run --example quickstart
//! ```

use std::fmt;

use signals::{ReceiverError, Signal, Signature};

/// Which part of the deployment is running (the sender of `user_created`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum SiloMode {
    Monolith,
    Region,
}

/// `user_created`'s arguments, borrowed from the caller: sending clones nothing.
struct UserCreated<'a> {
    email: &'a str,
}

/// Sent after a user signs up; receivers answer with a line describing what they did.
enum UserCreatedSignal {}
impl Signature for UserCreatedSignal {
    type Args<'a> = UserCreated<'a>;
    type Sender = SiloMode;
    type Output = String;
}

#[allow(non_upper_case_globals)]
static user_created: Signal<UserCreatedSignal> = Signal::new("user_created");

#[derive(Debug)]
struct BackendDown;

impl fmt::Display for BackendDown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("analytics backend unreachable")
    }
}

impl std::error::Error for BackendDown {}

fn create_user_email(_: Option<&SiloMode>, args: &UserCreated<'_>) -> String {
    format!("inserted UserEmail({})", args.email)
}

fn send_welcome_mail(_: Option<&SiloMode>, args: &UserCreated<'_>) -> String {
    format!("queued welcome mail to {}", args.email)
}

fn record_signup(_: Option<&SiloMode>, _: &UserCreated<'_>) -> Result<String, BackendDown> {
    Err(BackendDown)
}

fn main() {
    // Wiring: who listens to what. The same dispatch_uid twice is a no-op, as in Django.
    user_created
        .connector()
        .dispatch_uid("create_user_email")
        .connect(create_user_email);
    user_created
        .connector()
        .dispatch_uid("create_user_email")
        .connect(create_user_email);
    user_created
        .connector()
        .sender(SiloMode::Region)
        .connect(send_welcome_mail);
    user_created
        .connector()
        .dispatch_uid("record_signup")
        .connect(record_signup);

    println!("receivers of `{}`:", user_created.name());
    for receiver in user_created.receivers(&SiloMode::Region) {
        println!("  {receiver}");
    }

    let email = String::from("ada@example.com");
    let args = UserCreated { email: &email };

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
            Err(error) => println!("  {} failed: {error}", response.receiver.name()),
        }
    }
}
