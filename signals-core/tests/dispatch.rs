//! Sending: order, sender matching, responses, errors, panics and the robust variant.

mod support;

use std::fmt;

use signals_core::{ReceiverError, Signal, testing};
use support::{Event, Log, Numbered, Plain, Silo, ev};

#[derive(Debug)]
struct Refused(&'static str);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "refused: {}", self.0)
    }
}

impl std::error::Error for Refused {}

fn receiver_bug(_: Option<&Silo>, _: &Event<'_>) {
    panic!("receiver bug {}", 7);
}

fn named(name: &'static str) -> impl Fn(Option<&Silo>, &Event<'_>) + Send + Sync + 'static {
    move |_, args| args.log.push(name)
}

#[test]
fn receivers_run_in_connection_order() {
    let signal = Signal::<Plain>::new("test");
    let log = Log::default();
    for name in ["first", "second", "third"] {
        signal.connect(named(name));
    }
    signal.send(None, &ev(&log)).unwrap();
    assert_eq!(log.take(), ["first", "second", "third"]);
}

#[test]
fn any_sender_receivers_also_fire_for_a_specific_sender() {
    let signal = Signal::<Plain>::new("test");
    let log = Log::default();
    signal.connect(named("any"));
    signal
        .connector()
        .sender(Silo::Monolith)
        .connect(named("monolith"));
    signal.send(&Silo::Monolith, &ev(&log)).unwrap();
    assert_eq!(log.take(), ["any", "monolith"]);
}

#[test]
fn a_receiver_for_one_sender_ignores_the_others() {
    let signal = Signal::<Plain>::new("test");
    let log = Log::default();
    signal
        .connector()
        .sender(Silo::Monolith)
        .connect(named("monolith"));
    signal.send(&Silo::Region, &ev(&log)).unwrap();
    signal.send(&Silo::Control, &ev(&log)).unwrap();
    assert!(log.take().is_empty());
}

#[test]
fn sending_without_sender_reaches_only_any_sender_receivers() {
    let signal = Signal::<Plain>::new("test");
    let log = Log::default();
    signal
        .connector()
        .sender(Silo::Monolith)
        .connect(named("monolith"));
    signal.connect(named("any"));
    signal.send(None, &ev(&log)).unwrap();
    assert_eq!(log.take(), ["any"]);
}

#[test]
fn any_sender_and_sender_receivers_interleave_in_connection_order() {
    let signal = Signal::<Plain>::new("test");
    let log = Log::default();
    signal
        .connector()
        .sender(Silo::Region)
        .connect(named("region-1"));
    signal.connect(named("any"));
    signal
        .connector()
        .sender(Silo::Region)
        .connect(named("region-2"));
    signal.send(&Silo::Region, &ev(&log)).unwrap();
    assert_eq!(log.take(), ["region-1", "any", "region-2"]);
}

#[test]
fn has_listeners_matches_senders_as_send_does() {
    let signal = Signal::<Plain>::new("test");
    assert!(!signal.has_listeners(None));
    signal
        .connector()
        .sender(Silo::Monolith)
        .connect(named("monolith"));
    assert!(!signal.has_listeners(None));
    assert!(signal.has_listeners(&Silo::Monolith));
    assert!(!signal.has_listeners(&Silo::Region));
    signal.connect(named("any"));
    assert!(signal.has_listeners(&Silo::Region));
}

#[test]
fn send_with_no_receivers_returns_no_responses() {
    let signal = Signal::<Numbered>::new("test");
    let log = Log::default();
    assert!(signal.send(&Silo::Monolith, &ev(&log)).unwrap().is_empty());
}

#[test]
fn responses_carry_each_receivers_identity_and_output_in_order() {
    let signal = Signal::<Numbered>::new("test");
    let log = Log::default();
    signal
        .connector()
        .dispatch_uid("double")
        .connect(|_, e: &Event<'_>| e.value * 2);
    signal.connect(|sender: Option<&Silo>, _: &Event<'_>| u32::from(sender.is_some()));
    let responses = signal
        .send(
            &Silo::Control,
            &Event {
                log: &log,
                value: 21,
            },
        )
        .unwrap();
    assert_eq!(responses.len(), 2);
    assert_eq!(responses[0].receiver.dispatch_uid(), Some("double"));
    assert_eq!(responses[0].output, 42);
    assert_eq!(responses[1].receiver.dispatch_uid(), None);
    assert_eq!(responses[1].output, 1);
    assert!(
        responses[1]
            .receiver
            .location()
            .file()
            .ends_with("dispatch.rs")
    );
}

#[test]
fn a_receiver_may_return_its_output_or_a_result() {
    let signal = Signal::<Numbered>::new("test");
    let log = Log::default();
    signal.connect(|_, _: &Event<'_>| 1);
    signal.connect(|_, _: &Event<'_>| Ok::<_, Refused>(2));
    let outputs = signal.send(None, &ev(&log)).unwrap().into_outputs();
    assert_eq!(outputs, [1, 2]);
}

#[test]
fn arguments_may_borrow_data_that_is_not_static() {
    struct Named<'a> {
        name: &'a str,
    }
    enum Greet {}
    impl signals_core::Signature for Greet {
        type Args<'a> = Named<'a>;
        type Sender = u64;
        type Output = usize;
    }
    let signal = Signal::<Greet>::new("greet");
    signal.connect(|_, args: &Named<'_>| args.name.len());
    let name = String::from("a name built at run time");
    let responses = signal.send(&7, &Named { name: &name }).unwrap();
    assert_eq!(responses.into_outputs(), [name.len()]);
}

#[test]
fn send_stops_at_the_first_error_and_names_the_receiver() {
    let signal = Signal::<Plain>::new("test");
    let log = Log::default();
    signal.connect(named("before"));
    signal
        .connector()
        .dispatch_uid("refuser")
        .connect(|_, _: &Event<'_>| Err(Refused("no")));
    signal.connect(named("after"));
    let error = signal.send(None, &ev(&log)).unwrap_err();
    assert_eq!(log.take(), ["before"]);
    assert_eq!(error.receiver().unwrap().dispatch_uid(), Some("refuser"));
    assert_eq!(error.error().unwrap().to_string(), "refused: no");
    let message = error.to_string();
    assert!(message.contains("dispatch_uid \"refuser\""), "{message}");
    assert!(message.contains("stopped the send"), "{message}");
}

#[test]
fn send_lets_a_receivers_panic_propagate() {
    let signal = Signal::<Plain>::new("test");
    let log = Log::default();
    signal.connect(receiver_bug);
    signal.connect(named("after"));
    let caught = std::panic::catch_unwind(|| signal.send(None, &ev(&log)));
    assert!(caught.is_err());
    assert!(log.take().is_empty());
}

#[test]
fn send_robust_records_an_error_and_runs_the_rest() {
    let signal = Signal::<Numbered>::new("test");
    let log = Log::default();
    signal.connect(|_, _: &Event<'_>| Ok::<_, Refused>(1));
    signal.connect(|_, _: &Event<'_>| Err(Refused("analytics down")));
    signal.connect(|_, _: &Event<'_>| Ok::<_, Refused>(3));
    let responses = signal.send_robust(None, &ev(&log));
    assert_eq!(responses.len(), 3);
    assert_eq!(*responses[0].output.as_ref().unwrap(), 1);
    let Err(ReceiverError::Failed(error)) = &responses[1].output else {
        panic!(
            "expected the second receiver's error, got {:?}",
            responses[1].output
        );
    };
    assert_eq!(error.to_string(), "refused: analytics down");
    assert_eq!(*responses[2].output.as_ref().unwrap(), 3);
    assert_eq!(responses.failures().count(), 1);
}

#[test]
fn send_robust_records_a_panic_and_runs_the_rest() {
    let signal = Signal::<Plain>::new("test");
    let log = Log::default();
    signal.connect(receiver_bug);
    signal.connect(named("after"));
    let responses = signal.send_robust(None, &ev(&log));
    assert_eq!(log.take(), ["after"]);
    match &responses[0].output {
        Err(ReceiverError::Panicked { message }) => assert_eq!(message, "receiver bug 7"),
        other => panic!("expected a recorded panic, got {other:?}"),
    }
    assert!(responses[1].output.is_ok());
}

#[test]
fn a_signal_stays_usable_after_a_receiver_panicked_under_send_robust() {
    let signal = Signal::<Plain>::new("test");
    let log = Log::default();
    let bad = signal.connect(receiver_bug);
    let _ = signal.send_robust(None, &ev(&log));
    assert!(signal.disconnect(bad));
    signal.connect(named("later"));
    signal.send(None, &ev(&log)).unwrap();
    assert_eq!(log.take(), ["later"]);
}

#[test]
fn raise_on_send_makes_send_robust_raise_a_receivers_error() {
    let signal = Signal::<Plain>::new("test");
    let log = Log::default();
    signal
        .connector()
        .dispatch_uid("refuser")
        .connect(|_, _: &Event<'_>| Err(Refused("no")));
    signal.connect(named("after"));
    let _raise = testing::raise_on_send();
    let caught = std::panic::catch_unwind(|| signal.send_robust(None, &ev(&log))).unwrap_err();
    let message = caught.downcast_ref::<String>().unwrap();
    assert!(
        message.contains("refuser") && message.contains("refused: no"),
        "{message}"
    );
    assert!(log.take().is_empty());
}

#[test]
fn raise_on_send_resumes_a_receivers_panic() {
    let signal = Signal::<Plain>::new("test");
    let log = Log::default();
    signal.connect(receiver_bug);
    let _raise = testing::raise_on_send();
    let caught = std::panic::catch_unwind(|| signal.send_robust(None, &ev(&log))).unwrap_err();
    let message = caught
        .downcast_ref::<&str>()
        .map(|m| (*m).to_owned())
        .or_else(|| caught.downcast_ref::<String>().cloned());
    assert_eq!(message.as_deref(), Some("receiver bug 7"));
}

#[test]
fn raise_on_send_lasts_as_long_as_its_guard_on_its_thread() {
    let signal = Signal::<Plain>::new("test");
    signal.connect(|_, _: &Event<'_>| Err(Refused("no")));
    let guard = testing::raise_on_send();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let log = Log::default();
            assert_eq!(signal.send_robust(None, &ev(&log)).failures().count(), 1);
        });
    });
    drop(guard);
    let log = Log::default();
    assert_eq!(signal.send_robust(None, &ev(&log)).failures().count(), 1);
}

#[test]
fn emit_runs_every_receiver_without_collecting_responses() {
    let signal = Signal::<Plain>::new("test");
    let log = Log::default();
    signal.connect(named("any"));
    signal
        .connector()
        .sender(Silo::Monolith)
        .connect(named("monolith"));
    signal.emit(&Silo::Monolith, &ev(&log)).unwrap();
    assert_eq!(log.take(), ["any", "monolith"]);
}

#[test]
fn emit_stops_at_the_first_error() {
    let signal = Signal::<Plain>::new("test");
    let log = Log::default();
    signal.connect(|_, _: &Event<'_>| Err(Refused("no")));
    signal.connect(named("after"));
    let error = signal.emit(None, &ev(&log)).unwrap_err();
    assert_eq!(error.error().unwrap().to_string(), "refused: no");
    assert!(log.take().is_empty());
}
