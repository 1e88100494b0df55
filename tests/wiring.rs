//! A signal with no receiver at all is usually a receiver crate the linker left out: `check()`
//! reports it as a warning, and in debug builds the first use of any signal logs what `check()`
//! finds at link time, once, as `tracing` `warn` events. (A test binary of its own, with one
//! test, so that nothing else uses a signal first.)

mod support;

use signals::{WiringError, receiver, signal};
use support::Warnings;

signal! {
    /// Has a receiver.
    static wired: Signal<(), sender = u8>;
    /// Has none: as if its receivers were in a crate nothing names.
    static forgotten: Signal<(), sender = u8>;
}

#[receiver(signal = wired)]
fn listens() {}

#[test]
fn a_signal_without_receivers_is_a_warning_logged_once_in_debug_builds() {
    let warnings = Warnings::default();
    tracing::subscriber::set_global_default(warnings.clone()).unwrap();

    wired.emit(&1, &()).unwrap();
    wired.emit(&2, &()).unwrap();
    let logged: Vec<String> = warnings
        .logged()
        .into_iter()
        .map(|(name, message)| {
            assert_eq!(name, "signals.wiring");
            message
        })
        .collect();
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
