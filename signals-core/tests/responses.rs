//! Responses keep the snapshot their send ran and borrow their receivers' identities from it:
//! the identities stay valid for as long as the responses, whatever is disconnected and freed
//! meanwhile, and what leaves the responses by value owns its identity.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use signals_core::{ReceiverInfo, Signal, TypeSignal};
use support::{Event, Log, Numbered, PostSave, Saved, User, ev};

/// Sets its flag when dropped: a value a receiver's closure captures.
struct Freed(Arc<AtomicBool>);

impl Drop for Freed {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Connects a receiver with uid `uid` that returns `output` and captures a [`Freed`].
fn connect(signal: &Signal<Numbered>, uid: &'static str, output: u32) -> Arc<AtomicBool> {
    let freed = Arc::new(AtomicBool::new(false));
    let captured = Freed(Arc::clone(&freed));
    signal
        .connector()
        .dispatch_uid(uid)
        .connect(move |_, _: &Event<'_>| {
            let _ = &captured;
            output
        });
    freed
}

/// Whether a send of the value 1, which a receiver of these tests refuses with a panic,
/// unwinds.
fn unwinds_on_one<F>(signal: &Signal<F>) -> bool
where
    F: for<'a> signals_core::Signature<Args<'a> = Event<'a>>,
{
    let log = Log::default();
    let args = Event {
        log: &log,
        value: 1,
    };
    std::panic::catch_unwind(|| signal.send(None, &args)).is_err()
}

/// Responses are as thread- and unwind-safe as their outputs, as they were when they owned
/// their identities.
#[test]
fn responses_are_send_sync_and_unwind_safe() {
    fn check<T: Send + Sync + std::panic::UnwindSafe + std::panic::RefUnwindSafe>() {}
    fn threads<T: Send + Sync>() {}
    check::<signals_core::Responses<u32>>();
    threads::<signals_core::Responses<Result<u32, signals_core::ReceiverError>>>();
}

#[test]
fn responses_keep_their_receivers_identities_after_the_receivers_are_disconnected_and_freed() {
    let signal = Signal::<Numbered>::new("test");
    let first = connect(&signal, "first", 1);
    connect(&signal, "second", 2);
    let log = Log::default();
    let responses = signal.send(None, &ev(&log)).unwrap();
    let robust = signal.send_robust(None, &ev(&log));
    assert!(signal.disconnect_uid("first", None));
    signal.send(None, &ev(&log)).unwrap(); // replaces the snapshot
    assert!(
        !first.load(Ordering::SeqCst),
        "the responses keep the snapshot"
    );
    assert_eq!(responses[0].receiver.dispatch_uid(), Some("first"));
    assert_eq!(robust[0].receiver.dispatch_uid(), Some("first"));
    let kept: ReceiverInfo = responses[0].receiver.clone();
    drop((responses, robust));
    assert!(
        first.load(Ordering::SeqCst),
        "freed with the last responses"
    );
    assert_eq!(
        kept.dispatch_uid(),
        Some("first"),
        "a clone owns its identity"
    );
}

#[test]
fn responses_taken_by_value_own_their_identities() {
    let signal = Signal::<Numbered>::new("test");
    connect(&signal, "first", 1);
    let log = Log::default();
    let responses = signal.send(None, &ev(&log)).unwrap();
    let copy = responses.clone();
    let robust = signal.send_robust(None, &ev(&log));
    let taken: Vec<_> = responses.into_iter().collect();
    assert!(signal.disconnect_uid("first", None));
    signal.send(None, &ev(&log)).unwrap();
    assert_eq!(robust.into_outputs().len(), 1);
    assert_eq!(taken[0].receiver.dispatch_uid(), Some("first"));
    assert_eq!(taken[0].output, 1);
    assert_eq!(copy.names().count(), 1);
    assert_eq!(copy[0].receiver.dispatch_uid(), Some("first"));
}

#[test]
fn a_send_that_stops_at_an_error_or_a_panic_gives_up_the_responses_it_collected() {
    let signal = Signal::<Numbered>::new("test");
    let first = connect(&signal, "first", 1);
    signal.connector().dispatch_uid("refuses").connect(
        |_, args: &Event<'_>| -> Result<u32, std::fmt::Error> {
            assert!(args.value != 1, "receiver bug");
            Err(std::fmt::Error)
        },
    );
    let log = Log::default();
    let error = signal.send(None, &ev(&log)).unwrap_err();
    assert!(error.to_string().contains("refuses"), "{error}");
    assert!(unwinds_on_one(&signal));
    assert!(signal.disconnect_uid("first", None));
    assert!(signal.disconnect_uid("refuses", None));
    signal.send(None, &ev(&log)).unwrap();
    assert!(first.load(Ordering::SeqCst), "nothing kept the snapshot");
}

/// A value signal whose receivers return a value with something to drop.
enum Counted {}
impl signals_core::Signature for Counted {
    type Args<'a> = Event<'a>;
    type Sender = support::Silo;
    type Output = Arc<()>;
}

#[test]
fn a_send_that_unwinds_drops_the_outputs_it_collected_and_keeps_the_identities() {
    let signal = Signal::<Counted>::new("test");
    let output = Arc::new(());
    for uid in ["first", "second"] {
        let output = Arc::clone(&output);
        signal
            .connector()
            .dispatch_uid(uid)
            .connect(move |_, _: &Event<'_>| Arc::clone(&output));
    }
    signal
        .connector()
        .dispatch_uid("panics")
        .connect(|_, args: &Event<'_>| -> Arc<()> {
            assert!(args.value != 1, "receiver bug");
            Arc::new(())
        });
    let log = Log::default();
    // Twice: the second send reuses the buffer the first one's unwinding gave back.
    for _ in 0..2 {
        assert!(unwinds_on_one(&signal));
        assert_eq!(
            Arc::strong_count(&output),
            3,
            "the two outputs collected before the panic are dropped"
        );
    }
    let responses = signal.send(None, &ev(&log)).unwrap();
    assert_eq!(Arc::strong_count(&output), 5);
    let uids: Vec<_> = responses
        .iter()
        .map(|response| response.receiver.dispatch_uid())
        .collect();
    assert_eq!(uids, [Some("first"), Some("second"), Some("panics")]);
    drop(responses);
    assert_eq!(Arc::strong_count(&output), 3);
    assert!(signal.disconnect_uid("first", None));
    assert!(signal.disconnect_uid("second", None));
    signal.send(None, &ev(&log)).unwrap();
    assert_eq!(Arc::strong_count(&output), 1, "the receivers are freed");
}

#[test]
fn responses_of_a_type_signal_keep_their_identities_too() {
    let signal = TypeSignal::<PostSave>::new("post_save");
    signal
        .connector()
        .sender::<User>()
        .dispatch_uid("typed")
        .connect(|_, _: &Saved<'_, User>| {});
    signal
        .connector()
        .dispatch_uid("any")
        .connect(|_, _: &Saved<'_, dyn support::Model>| {});
    let user = User {
        email: "ada@example.com".into(),
    };
    let log = Log::default();
    let args = Saved {
        instance: &user,
        created: true,
        log: &log,
    };
    let responses = signal.send::<User>(&args).unwrap();
    assert!(signal.disconnect_uid("typed", Some(signals_core::TypeSender::of::<User>())));
    signal.send::<User>(&args).unwrap();
    let uids: Vec<_> = responses
        .iter()
        .map(|r| r.receiver.dispatch_uid())
        .collect();
    assert_eq!(uids, [Some("typed"), Some("any")]);
}

/// A receiver's error that sets its flag when dropped.
#[derive(Debug)]
struct Failure(Arc<AtomicBool>);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("failed")
    }
}

impl std::error::Error for Failure {}

impl Drop for Failure {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Outputs without drop glue let a robust send whose receivers all succeeded skip dropping its
/// responses one by one; one failure among them must still have its error dropped.
#[test]
fn a_robust_sends_errors_are_dropped_with_its_responses() {
    let signal = Signal::<Numbered>::new("test");
    connect(&signal, "first", 1);
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&dropped);
    signal.connector().dispatch_uid("failing").connect(
        move |_, _: &Event<'_>| -> Result<u32, Failure> { Err(Failure(Arc::clone(&flag))) },
    );
    let log = Log::default();
    let responses = signal.send_robust(None, &ev(&log));
    assert_eq!(responses.len(), 2);
    assert!(responses[1].output.is_err());
    assert!(
        !dropped.load(Ordering::SeqCst),
        "the responses hold the error"
    );
    drop(responses);
    assert!(
        dropped.load(Ordering::SeqCst),
        "the error is dropped with the responses"
    );
}
