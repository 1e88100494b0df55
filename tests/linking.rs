//! Receivers in a crate that nothing else names are registered once the binary links that
//! crate with `signals::link!`; this test names no item of `app_receivers`.

use std::sync::Mutex;

use app_signals::{Saved, SignedUp, Team, post_save, user_signed_up};

signals::link!(app_receivers);

#[test]
fn receivers_of_a_crate_linked_with_link_run() {
    let log = Mutex::new(Vec::new());
    user_signed_up
        .send(
            &"web",
            &SignedUp {
                email: "ada@example.com",
                log: &log,
            },
        )
        .unwrap();
    post_save
        .send::<Team>(&Saved {
            instance: &Team { slug: "core" },
            log: &log,
        })
        .unwrap();
    assert_eq!(
        log.into_inner().unwrap(),
        ["welcome mail to ada@example.com", "slug core"]
    );
    let receivers = user_signed_up.receivers(&"web");
    assert_eq!(receivers[0].name(), "app_receivers::send_welcome_mail");
}
