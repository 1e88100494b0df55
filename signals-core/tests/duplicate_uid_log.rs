//! A `dispatch_uid` used twice for one signal and sender is a wiring error: in debug builds,
//! the first use of any signal logs it, once, as a `signals.wiring` `warn` event naming both
//! receivers' locations. (A test binary of its own, with one test, so that nothing else uses a
//! signal first.)

use std::sync::{Arc, Mutex};

use signals::{WiringError, receiver, signal};
use tracing::field::{Field, Visit};

signal! {
    static post_upgrade: Signal<(), sender = u8>;
}

#[receiver(signal = post_upgrade, sender = 1, dispatch_uid = "create_first_user")]
fn create_first_user() {}

#[receiver(signal = post_upgrade, sender = 1, dispatch_uid = "create_first_user")]
fn create_first_user_again() {}

/// Records the name and message of every `warn` event on the `signals` target, on any thread.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<(&'static str, String)>>>);

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
        self.0
            .lock()
            .unwrap()
            .push((event.metadata().name(), message));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn a_duplicate_dispatch_uid_is_a_wiring_warning_logged_once_in_debug_builds() {
    let warnings = Warnings::default();
    tracing::subscriber::set_global_default(warnings.clone()).unwrap();

    post_upgrade.emit(&1, &()).unwrap();
    post_upgrade.emit(&1, &()).unwrap();
    let logged = warnings.0.lock().unwrap().clone();

    let problems = signals::check();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    let WiringError::DuplicateDispatchUid { first, second, .. } = &problems[0] else {
        panic!("unexpected problem {:?}", problems[0]);
    };
    if cfg!(debug_assertions) {
        assert_eq!(
            logged,
            [("signals.wiring", problems[0].to_string())],
            "logged once, as check() reports it"
        );
        assert!(logged[0].1.contains(&format!("at {first} and at {second}")));
    } else {
        assert!(logged.is_empty(), "release builds log nothing: {logged:#?}");
    }
}
