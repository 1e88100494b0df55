//! The testing aids: capture and `assert_sent!`, mute and `mute_receiver`, `raise_on_send`,
//! `connected_to`, and that each is scoped to the thread that made it.

#![allow(non_upper_case_globals)]

mod support;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use signals_core::testing::{self, Outcome};
use signals_core::{Signal, Signature, assert_sent};
use support::{DEADLOCK, Rendezvous};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Silo {
    Monolith,
    Region,
}

#[derive(Debug)]
struct Upgrade<'a> {
    database: &'a str,
    interactive: bool,
}

enum PostUpgrade {}
impl Signature for PostUpgrade {
    type Args<'a> = Upgrade<'a>;
    type Sender = Silo;
    type Output = ();
}

fn upgrade(interactive: bool) -> Upgrade<'static> {
    Upgrade {
        database: "default",
        interactive,
    }
}

/// The message of the panic `f` raises.
fn panic_of(f: impl FnOnce()) -> String {
    let payload = catch_unwind(AssertUnwindSafe(f)).expect_err("it panics");
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

#[test]
fn capture_records_sender_arguments_and_how_each_receiver_ended() {
    static post_upgrade: Signal<PostUpgrade> = Signal::new("post_upgrade");
    post_upgrade
        .connector()
        .dispatch_uid("create_default_projects")
        .connect(|_, args: &Upgrade<'_>| assert_eq!(args.database, "default"));
    post_upgrade
        .connector()
        .sender(Silo::Monolith)
        .dispatch_uid("check_schema")
        .connect(|_, _: &Upgrade<'_>| Err(std::io::Error::other("no such table")));
    post_upgrade
        .connector()
        .dispatch_uid("crash")
        .connect(|_, _: &Upgrade<'_>| -> () { panic!("boom") });

    let sent = testing::capture(&post_upgrade);
    post_upgrade.send_robust(&Silo::Monolith, &upgrade(false));
    post_upgrade.send_robust(None, &upgrade(true));

    let sends = sent.sends();
    assert_eq!(sends.len(), 2);
    assert_eq!(sends[0].sender.as_deref(), Some("Monolith"));
    assert_eq!(
        sends[0].args,
        r#"Upgrade { database: "default", interactive: false }"#
    );
    let outcomes: Vec<_> = sends[0]
        .responses
        .iter()
        .map(|(receiver, outcome)| (receiver.dispatch_uid().unwrap(), outcome.clone()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("create_default_projects", Outcome::Ok),
            ("check_schema", Outcome::Failed("no such table".into())),
            ("crash", Outcome::Panicked("boom".into())),
        ]
    );
    assert_eq!(sends[1].sender, None);
    assert_eq!(
        sends[1].responses.len(),
        2,
        "check_schema is for Monolith only"
    );
    assert!(!sends[1].muted);

    assert_sent!(post_upgrade, sender = Silo::Monolith, interactive = false);
    assert_sent!(post_upgrade, interactive = true, database = "default");
    sent.clear();
    assert!(sent.is_empty());
}

#[test]
fn assert_sent_fails_naming_what_was_sent() {
    static post_upgrade: Signal<PostUpgrade> = Signal::new("post_upgrade");
    let message = panic_of(|| assert_sent!(post_upgrade, interactive = true));
    assert!(
        message.contains("no capture of `post_upgrade`"),
        "{message}"
    );

    let _sent = testing::capture(&post_upgrade);
    post_upgrade.emit(&Silo::Region, &upgrade(false)).unwrap();
    let message = panic_of(|| assert_sent!(post_upgrade, sender = Silo::Monolith));
    assert!(
        message.contains("no send with sender = Silo::Monolith"),
        "{message}"
    );
    assert!(
        message.contains(r#"sender Region: Upgrade { database: "default", interactive: false }"#),
        "{message}"
    );
    let message = panic_of(|| assert_sent!(post_upgrade, interactive = true));
    assert!(
        message.contains("no send with interactive = true"),
        "{message}"
    );
}

#[test]
fn a_muted_signal_runs_nothing_until_the_guard_is_dropped() {
    static post_upgrade: Signal<PostUpgrade> = Signal::new("post_upgrade");
    static runs: AtomicUsize = AtomicUsize::new(0);
    post_upgrade.connect(|_, _: &Upgrade<'_>| {
        runs.fetch_add(1, Ordering::SeqCst);
    });
    let sent = testing::capture(&post_upgrade);
    {
        let _muted = testing::mute(&post_upgrade);
        post_upgrade.emit(&Silo::Monolith, &upgrade(false)).unwrap();
        assert!(post_upgrade.send(None, &upgrade(false)).unwrap().is_empty());
        assert!(post_upgrade.send_robust(None, &upgrade(false)).is_empty());
    }
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    post_upgrade.emit(&Silo::Monolith, &upgrade(false)).unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 1);

    let sends = sent.sends();
    assert_eq!(sends.len(), 4, "muted sends are still captured");
    assert!(
        sends[..3]
            .iter()
            .all(|sent| sent.muted && sent.responses.is_empty())
    );
    assert!(!sends[3].muted);
}

#[test]
fn mute_receiver_leaves_out_one_dispatch_uid_only() {
    static post_upgrade: Signal<PostUpgrade> = Signal::new("post_upgrade");
    static ran: Mutex<Vec<&str>> = Mutex::new(Vec::new());
    post_upgrade
        .connector()
        .dispatch_uid("send_email")
        .connect(|_, _: &Upgrade<'_>| ran.lock().unwrap().push("send_email"));
    post_upgrade
        .connector()
        .dispatch_uid("record_stats")
        .connect(|_, _: &Upgrade<'_>| ran.lock().unwrap().push("record_stats"));
    let sent = testing::capture(&post_upgrade);
    {
        let _quiet = testing::mute_receiver("send_email");
        post_upgrade.emit(None, &upgrade(false)).unwrap();
    }
    post_upgrade.emit(None, &upgrade(false)).unwrap();
    assert_eq!(
        *ran.lock().unwrap(),
        ["record_stats", "send_email", "record_stats"]
    );
    let first = &sent.sends()[0];
    assert_eq!(first.responses[0].1, Outcome::Muted);
    assert_eq!(first.ran().len(), 1);
}

/// Two threads send on one signal at once; one has muted it and captures it. The other's
/// receivers run and its sends are not in the first thread's capture.
#[test]
fn mutes_and_captures_are_scoped_to_the_thread_that_made_them() {
    static post_upgrade: Signal<PostUpgrade> = Signal::new("post_upgrade");
    static runs_for: Mutex<Vec<bool>> = Mutex::new(Vec::new());
    static BOTH_READY: Rendezvous = Rendezvous::new(2);
    static BOTH_SENT: Rendezvous = Rendezvous::new(2);
    post_upgrade.connect(|_, args: &Upgrade<'_>| runs_for.lock().unwrap().push(args.interactive));

    thread::scope(|scope| {
        scope.spawn(|| {
            let sent = testing::capture(&post_upgrade);
            let _muted = testing::mute(&post_upgrade);
            assert!(BOTH_READY.wait(DEADLOCK), "the other thread never started");
            for _ in 0..100 {
                post_upgrade.emit(None, &upgrade(false)).unwrap();
            }
            assert!(BOTH_SENT.wait(DEADLOCK), "the other thread never finished");
            assert_eq!(sent.len(), 100);
            assert!(
                sent.sends()
                    .iter()
                    .all(|sent| sent.muted && sent.args.contains("false"))
            );
        });
        scope.spawn(|| {
            assert!(BOTH_READY.wait(DEADLOCK), "the muting thread never started");
            for _ in 0..100 {
                post_upgrade.emit(None, &upgrade(true)).unwrap();
            }
            assert!(BOTH_SENT.wait(DEADLOCK), "the muting thread never finished");
        });
    });
    let runs = runs_for.lock().unwrap();
    assert_eq!(runs.len(), 100, "only the unmuted thread's sends ran");
    assert!(runs.iter().all(|interactive| *interactive));
}

#[test]
fn raise_on_send_is_scoped_to_its_thread() {
    static post_upgrade: Signal<PostUpgrade> = Signal::new("post_upgrade");
    post_upgrade.connect(|_, _: &Upgrade<'_>| Err(std::io::Error::other("down")));
    let _raise = testing::raise_on_send();
    let message = panic_of(|| {
        post_upgrade.send_robust(None, &upgrade(false));
    });
    assert!(message.contains("down"), "{message}");
    let elsewhere = thread::spawn(|| post_upgrade.send_robust(None, &upgrade(false)).len())
        .join()
        .unwrap();
    assert_eq!(elsewhere, 1, "another thread records the failure");
}

#[test]
fn connected_to_lasts_until_its_guard_is_dropped() {
    static post_upgrade: Signal<PostUpgrade> = Signal::new("post_upgrade");
    {
        let _connected = testing::connected_to(&post_upgrade, |_, _: &Upgrade<'_>| {});
        assert!(post_upgrade.has_listeners(None));
    }
    assert!(!post_upgrade.has_listeners(None));
}

/// `has_listeners` and `receivers` answer for the signal, not for the calling thread: a
/// `this_thread` receiver is counted on every thread, though only its own thread's sends run it.
#[test]
fn this_thread_receivers_are_counted_by_has_listeners_on_other_threads() {
    static post_upgrade: Signal<PostUpgrade> = Signal::new("post_upgrade");
    let _connected = post_upgrade
        .connector()
        .sender(Silo::Monolith)
        .this_thread()
        .connect_scoped(|_, _: &Upgrade<'_>| {});
    let seen_from = || {
        (
            post_upgrade.has_listeners(&Silo::Monolith),
            post_upgrade.receivers(&Silo::Monolith).len(),
            post_upgrade
                .send(&Silo::Monolith, &upgrade(false))
                .unwrap()
                .len(),
        )
    };
    assert_eq!(seen_from(), (true, 1, 1), "on its thread");
    assert_eq!(
        thread::scope(|scope| scope.spawn(seen_from).join().unwrap()),
        (true, 1, 0),
        "on another thread: counted, not run"
    );
}

/// One thread's temporary receiver runs only for that thread's sends, while another thread
/// sends on the same signal at the same time.
#[test]
fn connected_to_runs_only_for_sends_started_on_its_thread() {
    static post_upgrade: Signal<PostUpgrade> = Signal::new("post_upgrade");
    static CONNECTED: Rendezvous = Rendezvous::new(2);
    static SENT_ELSEWHERE: Rendezvous = Rendezvous::new(2);
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    thread::scope(|scope| {
        scope.spawn(|| {
            let _connected = testing::connected_to(&post_upgrade, |_, _: &Upgrade<'_>| {
                RUNS.fetch_add(1, Ordering::SeqCst);
            });
            assert!(CONNECTED.wait(DEADLOCK), "the other thread never started");
            assert!(SENT_ELSEWHERE.wait(DEADLOCK), "the other thread never sent");
            for _ in 0..5 {
                post_upgrade.emit(None, &upgrade(false)).unwrap();
            }
        });
        scope.spawn(|| {
            assert!(CONNECTED.wait(DEADLOCK), "the receiver was never connected");
            for _ in 0..100 {
                let responses = post_upgrade.send_robust(&Silo::Region, &upgrade(true));
                assert!(responses.is_empty(), "another thread's receiver answered");
            }
            assert!(
                SENT_ELSEWHERE.wait(DEADLOCK),
                "the connecting thread went away"
            );
        });
    });
    assert_eq!(RUNS.load(Ordering::SeqCst), 5);
}

/// `this_thread` on a type signal's connector for one sender type, and `connected_to` on an
/// async signal sent from another thread.
#[test]
fn this_thread_scopes_receivers_of_type_signals_and_async_signals() {
    use signals_core::{AsyncSignal, SentBy, TypeSignal, TypeSignature};

    struct User;
    struct Saved<'a, M: ?Sized>(&'a M);
    enum PostSave {}
    impl TypeSignature for PostSave {
        type AnyArgs<'a> = ();
        type Output = u32;
    }
    impl SentBy<User> for PostSave {
        type Args<'a> = Saved<'a, User>;
        fn any_args(_: &Saved<'_, User>) {}
    }
    static post_save: TypeSignal<PostSave> = TypeSignal::new("post_save");
    static checkin: AsyncSignal<PostUpgrade> = AsyncSignal::new("checkin");

    let _typed = post_save
        .connector()
        .sender::<User>()
        .this_thread()
        .connect_scoped(|_, _: &Saved<'_, User>| 7);
    let _plain = testing::connected_to(&checkin, |_, _: &Upgrade<'_>| {});
    let send_both = || {
        let saved = post_save
            .send::<User>(&Saved(&User))
            .unwrap()
            .into_outputs();
        let checked = futures_lite_block_on(checkin.send(None, &upgrade(false)));
        (saved, checked.unwrap().len())
    };
    assert_eq!(send_both(), (vec![7], 1));
    assert_eq!(
        thread::scope(|scope| scope.spawn(send_both).join().unwrap()),
        (vec![], 0)
    );
}

/// Polls `future` to completion on this thread.
fn futures_lite_block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(value) = future.as_mut().poll(&mut context) {
            return value;
        }
    }
}

#[test]
fn a_capture_lists_responses_in_dispatch_order_with_muted_receivers_in_place() {
    static post_upgrade: Signal<PostUpgrade> = Signal::new("post_upgrade");
    for uid in ["first", "muted", "last"] {
        post_upgrade
            .connector()
            .dispatch_uid(uid)
            .connect(|_, _: &Upgrade<'_>| {});
    }
    let sent = testing::capture(&post_upgrade);
    let _muted = testing::mute_receiver("muted");
    post_upgrade.send_robust(None, &upgrade(false));
    let sends = sent.sends();
    let order: Vec<(Option<&str>, &Outcome)> = sends[0]
        .responses
        .iter()
        .map(|(receiver, outcome)| (receiver.dispatch_uid(), outcome))
        .collect();
    assert_eq!(
        order,
        [
            (Some("first"), &Outcome::Ok),
            (Some("muted"), &Outcome::Muted),
            (Some("last"), &Outcome::Ok)
        ]
    );
}

#[test]
fn a_capture_lists_sends_in_the_order_they_started() {
    static post_upgrade: Signal<PostUpgrade> = Signal::new("post_upgrade");
    post_upgrade.connect(|sender, args: &Upgrade<'_>| {
        if sender == Some(&Silo::Monolith) {
            let nested = Upgrade {
                database: "nested",
                interactive: args.interactive,
            };
            post_upgrade.emit(&Silo::Region, &nested).unwrap();
        }
    });
    let sent = testing::capture(&post_upgrade);
    post_upgrade.emit(&Silo::Monolith, &upgrade(false)).unwrap();
    let senders: Vec<Option<String>> = sent.sends().into_iter().map(|s| s.sender).collect();
    assert_eq!(
        senders,
        [Some("Monolith".to_owned()), Some("Region".to_owned())],
        "the outer send started first"
    );
}

#[derive(Debug)]
#[allow(dead_code)] // read through `Debug`
struct Inner {
    id: u32,
}

#[derive(Debug)]
#[allow(dead_code)] // read through `Debug`
struct Saved {
    user_id: u32,
    idx: u32,
    note: &'static str,
    inner: Inner,
    id: u32,
}

enum SavedSignal {}
impl Signature for SavedSignal {
    type Args<'a> = Saved;
    type Sender = &'static str;
    type Output = ();
}

/// `assert_sent!` matches a field by its whole name at the top level, and by its whole value:
/// names that are prefixes or suffixes of others, values that are prefixes of others, a
/// nested field of the same name and a string containing `, id: 1` all fail to match.
#[test]
fn assert_sent_matches_whole_top_level_fields_only() {
    static saved: Signal<SavedSignal> = Signal::new("saved");
    let sent = testing::capture(&saved);
    saved
        .emit(
            &"billing::invoice",
            &Saved {
                user_id: 1,
                idx: 1,
                note: "x, id: 1",
                inner: Inner { id: 1 },
                id: 12,
            },
        )
        .unwrap();
    assert_eq!(sent.len(), 1);
    assert_sent!(saved, id = 12);
    assert_sent!(saved, user_id = 1, idx = 1, note = "x, id: 1");
    assert_sent!(saved, sender = "billing::invoice", id = 12_u32);
    let attempts: [(&str, fn()); 8] = [
        (
            "a suffix of user_id, a prefix of idx, a prefix of 12",
            || {
                assert_sent!(saved, id = 1);
            },
        ),
        ("a suffix of the value 12", || assert_sent!(saved, id = 2)),
        ("a prefix of the name idx", || assert_sent!(saved, i = 1)),
        ("a suffix of the name user_id", || {
            assert_sent!(saved, ser_id = 1);
        }),
        ("a nested field", || assert_sent!(saved, inner = 1)),
        ("a part of a string", || assert_sent!(saved, note = "x")),
        ("another sender", || {
            assert_sent!(saved, sender = "audit::invoice");
        }),
        ("a part of a sender", || {
            assert_sent!(saved, sender = "invoice");
        }),
    ];
    for (what, attempt) in attempts {
        let message = panic_of(attempt);
        assert!(
            message.starts_with("assert_sent!(saved): no send with"),
            "{what} matched: {message}"
        );
    }
}

/// An async send counts where it is first polled: `raise_on_send` on the thread that started
/// it decides, though the receiver fails after the send moved to another thread, and the other
/// way round.
#[test]
fn raise_on_send_for_an_async_send_is_decided_where_it_started() {
    use signals_core::AsyncSignal;
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    type Robust = signals_core::Responses<Result<(), signals_core::ReceiverError>>;
    static checkin: AsyncSignal<PostUpgrade> = AsyncSignal::new("checkin");
    checkin.connect_async(|_, _: &Upgrade<'_>| {
        Box::pin(async {
            // Pending once, so that the failure happens at the second poll.
            let mut yielded = false;
            std::future::poll_fn(|cx| {
                if yielded {
                    Poll::Ready(())
                } else {
                    yielded = true;
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
            })
            .await;
            Err::<(), _>(std::io::Error::other("webhook down"))
        })
    });
    let args = upgrade(false);
    let started_here = |raise: bool| {
        let guard = raise.then(testing::raise_on_send);
        let mut send = Box::pin(checkin.send_robust(None, &args));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(
            send.as_mut().poll(&mut cx).is_pending(),
            "the receiver yields first"
        );
        drop(guard);
        send
    };
    let finish_elsewhere = |send: std::pin::Pin<Box<dyn Future<Output = Robust> + Send + '_>>,
                            raise: bool| {
        thread::scope(|scope| {
            scope
                .spawn(move || {
                    let _guard = raise.then(testing::raise_on_send);
                    catch_unwind(AssertUnwindSafe(|| futures_lite_block_on(send)))
                        .map(|responses| responses.failures().count())
                })
                .join()
                .unwrap()
        })
    };
    let raised = finish_elsewhere(started_here(true), false);
    assert!(
        raised.is_err(),
        "started with raise_on_send: the failure is raised"
    );
    let recorded = finish_elsewhere(started_here(false), true);
    assert_eq!(
        recorded.ok(),
        Some(1),
        "started without it: the failure is recorded"
    );
}

/// A guard kept in a thread-local of the test's, initialised before the library's own, is
/// dropped after the library's thread-locals are gone: that must not abort the process.
#[test]
fn guards_kept_in_a_thread_local_are_dropped_at_thread_exit_without_aborting() {
    thread_local! {
        static KEPT: std::cell::RefCell<Vec<Box<dyn std::any::Any>>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }
    static post_upgrade: Signal<PostUpgrade> = Signal::new("post_upgrade");
    thread::spawn(|| {
        KEPT.with(|kept| {
            // `KEPT` is initialised first, so it is destroyed last.
            let mut kept = kept.borrow_mut();
            kept.push(Box::new(testing::mute(&post_upgrade)));
            kept.push(Box::new(testing::mute_receiver("create_default_projects")));
            kept.push(Box::new(testing::capture(&post_upgrade)));
            kept.push(Box::new(testing::raise_on_send()));
        });
        post_upgrade.emit(None, &upgrade(false)).unwrap();
    })
    .join()
    .expect("the thread exits cleanly");
}
