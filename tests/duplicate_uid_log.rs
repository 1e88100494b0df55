//! A `dispatch_uid` used twice for one signal and sender is a wiring error: in debug builds,
//! the first use of any signal logs it, once, as a `signals.wiring` `warn` event naming both
//! receivers' locations. (A test binary of its own, with one test, so that nothing else uses a
//! signal first.)

mod support;

use signals::{WiringError, receiver, signal};
use support::Warnings;

signal! {
    static post_upgrade: Signal<(), sender = u8>;
}

#[receiver(signal = post_upgrade, sender = 1, dispatch_uid = "create_first_user")]
fn create_first_user() {}

#[receiver(signal = post_upgrade, sender = 1, dispatch_uid = "create_first_user")]
fn create_first_user_again() {}

#[test]
fn a_duplicate_dispatch_uid_is_a_wiring_warning_logged_once_in_debug_builds() {
    let warnings = Warnings::default();
    tracing::subscriber::set_global_default(warnings.clone()).unwrap();

    post_upgrade.emit(&1, &()).unwrap();
    post_upgrade.emit(&1, &()).unwrap();
    let logged = warnings.logged();

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
