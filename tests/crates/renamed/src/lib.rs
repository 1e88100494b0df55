//! Signals and receivers in a crate that depends on `signals` only as `events` (see its
//! `Cargo.toml`): `signals` is not a name here, so a path that `signal!` or `#[receiver]` emits
//! as `::signals` instead of through `crate = events` does not compile. Every kind of signal
//! and of receiver is here; the tests send each signal and check that its receivers ran.

use std::sync::Mutex;

use events::TypeSender;

/// What the receivers of every signal here get.
pub struct Ping<'a> {
    /// Where receivers write what they did.
    pub log: &'a Mutex<Vec<String>>,
}

/// The view any-sender receivers of [`saved`] get: the same arguments.
impl<'b, 'x: 'b> From<&'b Ping<'x>> for Ping<'b> {
    fn from(ping: &'b Ping<'x>) -> Self {
        Ping { log: ping.log }
    }
}

/// A model, a sender type of [`saved`] and [`saved_async`].
pub struct Team;

events::signal! {
    crate = events;
    /// Sent by a number; receivers answer with one.
    pub static pinged: Signal<Ping<'_>, sender = u8, output = u8>;
    /// Sent by the saved model's type.
    pub static saved: Signal<Ping<'_>, sender = type M, any = Ping<'_>>;
    /// `pinged`, awaited.
    pub static pinged_async: async Signal<Ping<'_>, sender = u8>;
    /// `saved`, awaited.
    pub static saved_async: async Signal<Ping<'_>, sender = type M>;
}

fn log(log: &Mutex<Vec<String>>, line: String) {
    log.lock().unwrap().push(line);
}

/// The last segment of a type sender's name.
fn model(sender: TypeSender) -> &'static str {
    sender.name().rsplit("::").next().unwrap_or_default()
}

#[events::receiver(crate = events, signal = pinged, sender = 1, dispatch_uid = "pong")]
fn pong(sender: Option<&u8>, log: &Mutex<Vec<String>>) -> u8 {
    self::log(log, format!("pong to {sender:?}"));
    2
}

#[events::receiver(crate = events, signal = saved, sender = Team)]
fn team_saved(sender: TypeSender, log: &Mutex<Vec<String>>) {
    self::log(log, format!("saved the {}", model(sender)));
}

#[events::receiver(crate = events, signal = saved)]
fn anything_saved(sender: TypeSender, log: &Mutex<Vec<String>>) {
    self::log(log, format!("saved a {}", model(sender)));
}

#[events::receiver(crate = events, signal = pinged_async, sender = 1)]
#[expect(clippy::unused_async, reason = "it awaits nothing, as a receiver may")]
async fn pong_async(log: &Mutex<Vec<String>>) {
    self::log(log, "pong, awaited".to_owned());
}

#[events::receiver(crate = events, signal = saved_async, sender = Team)]
#[expect(clippy::unused_async, reason = "it awaits nothing, as a receiver may")]
async fn team_saved_async(sender: TypeSender, log: &Mutex<Vec<String>>) {
    self::log(log, format!("saved the {}, awaited", model(sender)));
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use futures::executor::block_on;

    use super::{Ping, Team, pinged, pinged_async, saved, saved_async};

    #[test]
    fn a_value_signal_declared_through_a_renamed_crate_runs_its_receiver() {
        let log = Mutex::new(Vec::new());
        let responses = pinged.send(&1, &Ping { log: &log }).unwrap();
        assert_eq!(responses.into_outputs(), [2]);
        assert_eq!(log.into_inner().unwrap(), ["pong to Some(1)"]);
        assert_eq!(pinged.receivers(&1)[0].name(), "renamed::pong");
    }

    #[test]
    fn a_type_signal_declared_through_a_renamed_crate_runs_its_receivers() {
        let log = Mutex::new(Vec::new());
        saved.send::<Team>(&Ping { log: &log }).unwrap();
        assert_eq!(
            log.into_inner().unwrap(),
            ["saved the Team", "saved a Team"]
        );
    }

    #[test]
    fn async_signals_declared_through_a_renamed_crate_run_their_receivers() {
        let log = Mutex::new(Vec::new());
        block_on(pinged_async.send(&1, &Ping { log: &log })).unwrap();
        block_on(saved_async.send::<Team>(&Ping { log: &log })).unwrap();
        assert_eq!(
            log.into_inner().unwrap(),
            ["pong, awaited", "saved the Team, awaited"]
        );
    }
}
