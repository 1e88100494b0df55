//! A `dispatch_uid` used twice for the same signal and sender: only the first receiver runs,
//! and `signals::check()` reports both source locations. (A test binary of its own, since
//! `check()` covers the whole program.)

use std::sync::atomic::{AtomicU32, Ordering};

use signals::{WiringError, receiver, signal};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum SiloMode {
    Monolith,
    Region,
}

/// Which receivers ran, one bit each.
struct Ran<'a> {
    bits: &'a AtomicU32,
}

signal! {
    static post_upgrade: Signal<Ran<'_>, sender = SiloMode>;
}

#[receiver(signal = post_upgrade, sender = SiloMode::Monolith, dispatch_uid = "create_first_user")]
fn create_first_user(bits: &AtomicU32) {
    bits.fetch_or(1, Ordering::SeqCst);
}

#[receiver(signal = post_upgrade, sender = SiloMode::Monolith, dispatch_uid = "create_first_user")]
fn create_first_user_again(bits: &AtomicU32) {
    bits.fetch_or(2, Ordering::SeqCst);
}

#[receiver(signal = post_upgrade, sender = SiloMode::Region, dispatch_uid = "create_first_user")]
fn create_first_user_in_region(bits: &AtomicU32) {
    bits.fetch_or(4, Ordering::SeqCst);
}

#[test]
fn only_the_first_receiver_with_a_duplicate_uid_runs() {
    let bits = AtomicU32::new(0);
    post_upgrade
        .send(&SiloMode::Monolith, &Ran { bits: &bits })
        .unwrap();
    assert_eq!(bits.load(Ordering::SeqCst), 1);
    post_upgrade
        .send(&SiloMode::Region, &Ran { bits: &bits })
        .unwrap();
    assert_eq!(bits.load(Ordering::SeqCst), 1 | 4);
}

#[test]
fn check_reports_a_duplicate_uid_with_both_locations() {
    let problems = signals::check();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    let WiringError::DuplicateDispatchUid {
        signal,
        dispatch_uid,
        sender,
        first,
        second,
    } = &problems[0]
    else {
        panic!("unexpected problem {:?}", problems[0]);
    };
    assert_eq!(*signal, "post_upgrade");
    assert_eq!(dispatch_uid, "create_first_user");
    assert_eq!(sender, "Monolith");
    assert_eq!((first.file(), second.file()), (file!(), file!()));
    assert_eq!(
        second.line(),
        first.line() + 5,
        "the two receivers are 5 lines apart"
    );
    assert_eq!(
        problems[0].to_string(),
        format!(
            "signal `post_upgrade`: dispatch_uid \"create_first_user\" is used twice for sender \
             Monolith, at {first} and at {second}; only the one at {first} runs. Give one of \
             them another dispatch_uid or remove it"
        )
    );
}

/// The shadowed receiver is listed too: in the registry with where the one that runs is, in
/// the report, and as a dashed edge in the graphs.
#[test]
fn report_and_graphs_list_the_shadowed_receiver_with_the_one_that_runs() {
    let registry = signals::registry();
    let receivers = registry.signal("post_upgrade").unwrap().receivers();
    let names: Vec<(&str, bool)> = receivers
        .iter()
        .map(|e| (e.receiver().name(), e.shadowed_by().is_some()))
        .collect();
    assert_eq!(
        names,
        [
            ("duplicate_uid::create_first_user", false),
            ("duplicate_uid::create_first_user_in_region", false),
            ("duplicate_uid::create_first_user_again", true),
        ]
    );
    let first = receivers[0].receiver().location();
    assert_eq!(receivers[2].shadowed_by(), Some(first));

    let report = signals::report();
    assert!(
        report.starts_with("1 signal, 2 receivers and 1 shadowed by another's dispatch_uid\n"),
        "{report}"
    );
    let line = report
        .lines()
        .find(|line| line.contains("create_first_user_again"))
        .unwrap();
    assert!(line.starts_with("  -  duplicate_uid::create_first_user_again [sender Monolith, uid \"create_first_user\"] at "), "{line}");
    assert!(
        line.ends_with(&format!(
            ": never runs, shadowed by the receiver at {first}, which has its dispatch_uid and \
             sender"
        )),
        "{line}"
    );
    assert!(
        registry
            .to_mermaid()
            .contains("S0 -.->|\"Monolith, shadowed\"| R2"),
        "{}",
        registry.to_mermaid()
    );
    assert!(
        registry
            .to_dot()
            .contains("S0 -> R2 [label=\"Monolith, shadowed\", style=dashed];")
    );
}
