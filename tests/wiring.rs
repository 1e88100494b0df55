//! A signal with no receiver at all is usually a receiver crate the linker left out: `check()`
//! reports it as a warning, and in debug builds the first use of any signal logs what `check()`
//! finds at link time, once, as `tracing` `warn` events. (A test binary of its own, with one
//! test, so that nothing else uses a signal first.)

use std::sync::{Arc, Mutex};

use signals::{WiringError, receiver, signal};
use tracing::field::{Field, Visit};

signal! {
    /// Has a receiver.
    static wired: Signal<(), sender = u8>;
    /// Has none: as if its receivers were in a crate nothing names.
    static forgotten: Signal<(), sender = u8>;
}

#[receiver(signal = wired)]
fn listens() {}

/// Records the message of every `warn` event on the `signals` target, on any thread.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

struct Message<'a>(&'a mut String);

impl Visit for Message<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            *self.0 = format!("{value:?}");
        }
    }
}

impl tracing::Subscriber for Warnings {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() == tracing::Level::WARN && metadata.target() == "signals"
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut message = String::new();
        event.record(&mut Message(&mut message));
        assert_eq!(event.metadata().name(), "signals.wiring");
        self.0.lock().unwrap().push(message);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn a_signal_without_receivers_is_a_warning_logged_once_in_debug_builds() {
    let warnings = Warnings::default();
    tracing::subscriber::set_global_default(warnings.clone()).unwrap();

    wired.emit(&1, &()).unwrap();
    wired.emit(&2, &()).unwrap();
    let logged = warnings.0.lock().unwrap().clone();
    if cfg!(debug_assertions) {
        assert_eq!(logged.len(), 1, "logged once: {logged:#?}");
        assert!(
            logged[0].starts_with("signal `forgotten` (declared at tests/wiring.rs:"),
            "{logged:#?}"
        );
        assert!(logged[0].contains("signals::link!(crate)"), "{logged:#?}");
    } else {
        assert!(logged.is_empty(), "release builds log nothing: {logged:#?}");
    }

    let problems = signals::check();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(matches!(
        problems[0],
        WiringError::NoReceivers {
            signal: "forgotten",
            declared_at: Some(_)
        }
    ));
    assert!(!problems[0].is_error(), "a warning");
    assert!(problems.iter().all(|problem| !problem.is_error()));

    // Connected at run time, it has a receiver: no warning any more.
    let _connected = forgotten.connector().connect_scoped(|_, (): &()| {});
    assert_eq!(signals::check(), Vec::new());
}
