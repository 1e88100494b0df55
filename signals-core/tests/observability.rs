//! What sends leave behind in `tracing`: a `signal.send` span per send (signal, sender,
//! receivers), a `signal.receiver` event per receiver at `debug`, and a `signal.failure` event
//! at `error` for each failure under `send_robust`, and a `signal.drop_panic` event where a
//! disconnected receiver's closure panicked while being dropped.

#![allow(non_upper_case_globals)]

mod support;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use signals_core::Signal;
use support::{DEADLOCK, Event, Log, Plain, Rendezvous, Silo};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Level, Metadata, Subscriber};

/// One recorded event: its name, level, target, fields and the span it is in.
#[derive(Debug, Clone)]
struct Recorded {
    name: &'static str,
    level: Level,
    target: String,
    fields: BTreeMap<&'static str, String>,
    span: Option<usize>,
    /// The span entered on the emitting thread when the event came.
    inside: Option<usize>,
}

/// One recorded span: its name, level and fields, as recorded by the end.
#[derive(Debug, Clone)]
struct RecordedSpan {
    name: &'static str,
    level: Level,
    fields: BTreeMap<&'static str, String>,
}

/// A subscriber that records every span and event, and which span each event is in.
#[derive(Default, Clone)]
struct Recorder {
    events: Arc<Mutex<Vec<Recorded>>>,
    spans: Arc<Mutex<Vec<RecordedSpan>>>,
    entered: Arc<Mutex<Vec<usize>>>,
}

impl Recorder {
    fn events(&self) -> Vec<Recorded> {
        self.events.lock().unwrap().clone()
    }

    fn named(&self, name: &str) -> Vec<Recorded> {
        self.events()
            .into_iter()
            .filter(|e| e.name == name)
            .collect()
    }

    fn spans(&self) -> Vec<RecordedSpan> {
        self.spans.lock().unwrap().clone()
    }
}

struct Fields<'a>(&'a mut BTreeMap<&'static str, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name(), format!("{value:?}"));
    }
}

fn index(id: &Id) -> usize {
    usize::try_from(id.into_u64()).unwrap() - 1
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, attributes: &Attributes<'_>) -> Id {
        let mut fields = BTreeMap::new();
        attributes.record(&mut Fields(&mut fields));
        let mut spans = self.spans.lock().unwrap();
        spans.push(RecordedSpan {
            name: attributes.metadata().name(),
            level: *attributes.metadata().level(),
            fields,
        });
        Id::from_u64(u64::try_from(spans.len()).unwrap())
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut spans = self.spans.lock().unwrap();
        values.record(&mut Fields(&mut spans[index(span)].fields));
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let inside = self.entered.lock().unwrap().last().copied();
        let span = match event.parent() {
            Some(parent) => Some(index(parent)),
            None if event.is_contextual() => inside,
            None => None,
        };
        self.events.lock().unwrap().push(Recorded {
            name: event.metadata().name(),
            level: *event.metadata().level(),
            target: event.metadata().target().to_owned(),
            fields,
            span,
            inside,
        });
    }

    fn enter(&self, span: &Id) {
        self.entered.lock().unwrap().push(index(span));
    }

    fn exit(&self, _: &Id) {
        self.entered.lock().unwrap().pop();
    }
}

/// Runs `f` with `subscriber` as this thread's default, while no other test of this file runs.
///
/// While exactly one subscriber is registered, `tracing` computes a callsite's cached interest
/// from the default subscriber of whichever thread reaches the callsite first, and a concurrent
/// registration can be overwritten (tokio-rs/tracing#3611): run side by side, one test's
/// subscriber could decide for another's callsites. One test at a time, each with its own
/// subscriber, gives each the interest its own subscriber asks for.
fn with_only<S: Subscriber + Send + Sync + 'static, T>(subscriber: S, f: impl FnOnce() -> T) -> T {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _alone = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    tracing::subscriber::with_default(subscriber, f)
}

#[derive(Debug)]
struct Down;

impl fmt::Display for Down {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("analytics backend down")
    }
}

impl std::error::Error for Down {}

#[test]
fn send_robust_logs_a_signal_failure_event_naming_the_receiver() {
    let signal = Signal::<Plain>::new("first_event_received");
    signal
        .connector()
        .dispatch_uid("record_analytics")
        .connect(|_, _: &Event<'_>| Err(Down));
    signal.connect(|_, _: &Event<'_>| {});
    let recorder = Recorder::default();
    let log = Log::default();
    with_only(recorder.clone(), || {
        signal.send_robust(
            None,
            &Event {
                log: &log,
                value: 0,
            },
        );
    });
    let events = recorder.named("signal.failure");
    assert_eq!(events.len(), 1, "{events:#?}");
    let event = &events[0];
    assert_eq!(event.name, "signal.failure");
    assert_eq!(event.level, Level::ERROR);
    assert_eq!(event.target, "signals");
    assert_eq!(event.fields["signal"], "first_event_received");
    assert_eq!(event.fields["dispatch_uid"], "record_analytics");
    assert!(
        event.fields["receiver"].contains("{{closure}}"),
        "{event:?}"
    );
    assert!(event.fields["location"].starts_with(file!()), "{event:?}");
    assert_eq!(
        event.fields["error"],
        "receiver returned an error: analytics backend down"
    );
}

#[test]
fn send_does_not_log_the_error_it_returns() {
    let signal = Signal::<Plain>::new("post_upgrade");
    signal.connect(|_, _: &Event<'_>| Err(Down));
    let recorder = Recorder::default();
    let log = Log::default();
    with_only(recorder.clone(), || {
        assert!(
            signal
                .send(
                    None,
                    &Event {
                        log: &log,
                        value: 0
                    }
                )
                .is_err()
        );
    });
    let errors: Vec<_> = recorder
        .events()
        .into_iter()
        .filter(|event| event.level == Level::ERROR)
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn a_send_is_a_span_with_an_event_per_receiver_outcome() {
    let signal = Signal::<Plain>::new("member_joined");
    signal
        .connector()
        .sender(Silo::Control)
        .dispatch_uid("notify_owner")
        .connect(|_, _: &Event<'_>| {});
    signal
        .connector()
        .dispatch_uid("record_analytics")
        .connect(|_, _: &Event<'_>| Err(Down));
    signal
        .connector()
        .sender(Silo::Region)
        .connect(|_, _: &Event<'_>| {});
    let recorder = Recorder::default();
    let log = Log::default();
    with_only(recorder.clone(), || {
        signal.send_robust(
            &Silo::Control,
            &Event {
                log: &log,
                value: 0,
            },
        );
    });

    let spans = recorder.spans();
    let names: Vec<&str> = spans.iter().map(|span| span.name).collect();
    assert_eq!(
        names,
        ["signal.send", "signal.receive", "signal.receive"],
        "{spans:#?}"
    );
    let span = &spans[0];
    assert_eq!(span.name, "signal.send");
    assert_eq!(span.level, Level::DEBUG);
    assert_eq!(span.fields["signal"], "member_joined");
    assert_eq!(span.fields["sender"], "Control");
    assert_eq!(span.fields["receivers"], "2");
    assert_eq!(span.fields["muted"], "false");

    let outcomes = recorder.named("signal.receiver");
    assert_eq!(outcomes.len(), 2, "{outcomes:#?}");
    assert!(outcomes.iter().all(|event| event.level == Level::DEBUG));
    assert!(outcomes.iter().all(|event| event.target == "signals"));
    assert!(outcomes.iter().all(|event| event.span == Some(0)));
    // Each receiver ran inside its own span, and its outcome came before that span closed.
    assert_eq!(spans[1].fields["dispatch_uid"], "notify_owner");
    assert_eq!(spans[2].fields["dispatch_uid"], "record_analytics");
    assert!(spans[2].fields["location"].starts_with(file!()));
    assert_eq!(outcomes[0].inside, Some(1));
    assert_eq!(outcomes[1].inside, Some(2));
    assert_eq!(outcomes[0].fields["dispatch_uid"], "notify_owner");
    assert_eq!(outcomes[0].fields["outcome"], "ok");
    assert_eq!(outcomes[1].fields["dispatch_uid"], "record_analytics");
    assert_eq!(
        outcomes[1].fields["outcome"],
        "failed: analytics backend down"
    );
    assert!(outcomes[1].fields["location"].starts_with(file!()));

    let failure = &recorder.named("signal.failure")[0];
    assert_eq!(
        failure.span,
        Some(0),
        "the failure is logged inside the send's span"
    );
    assert_eq!(failure.fields["dispatch_uid"], "record_analytics");
}

#[test]
fn a_subscriber_that_does_not_want_debug_gets_no_span() {
    #[derive(Clone, Default)]
    struct ErrorsOnly(Recorder);
    impl Subscriber for ErrorsOnly {
        fn enabled(&self, metadata: &Metadata<'_>) -> bool {
            *metadata.level() == Level::ERROR
        }
        fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
            Some(tracing::level_filters::LevelFilter::ERROR)
        }
        fn new_span(&self, attributes: &Attributes<'_>) -> Id {
            self.0.new_span(attributes)
        }
        fn record(&self, span: &Id, values: &Record<'_>) {
            self.0.record(span, values);
        }
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            self.0.event(event);
        }
        fn enter(&self, span: &Id) {
            self.0.enter(span);
        }
        fn exit(&self, span: &Id) {
            self.0.exit(span);
        }
    }
    let signal = Signal::<Plain>::new("project_created");
    signal.connect(|_, _: &Event<'_>| Err(Down));
    let subscriber = ErrorsOnly::default();
    let log = Log::default();
    with_only(subscriber.clone(), || {
        signal.send_robust(
            None,
            &Event {
                log: &log,
                value: 0,
            },
        );
    });
    assert!(subscriber.0.spans().is_empty());
    assert_eq!(subscriber.0.events().len(), 1);
    assert_eq!(subscriber.0.events()[0].name, "signal.failure");
}

/// A value whose `Drop` panics, captured by a receiver's closure.
struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("captured value refused to drop");
    }
}

/// Connects a receiver (uid `fragile`) whose closure captures a [`PanicsOnDrop`].
fn connect_fragile(signal: &Signal<Plain>) -> signals_core::Connection {
    let captured = PanicsOnDrop;
    signal
        .connector()
        .dispatch_uid("fragile")
        .connect(move |_, _: &Event<'_>| {
            let _ = &captured;
        })
}

/// The `signal.drop_panic` events `recorder` got, each checked.
fn panics_on_drop(recorder: &Recorder) -> Vec<Recorded> {
    let events = recorder.named("signal.drop_panic");
    for event in &events {
        assert_eq!(event.level, Level::ERROR);
        assert_eq!(event.target, "signals");
        assert_eq!(event.fields["panic"], "captured value refused to drop");
        assert_eq!(event.fields["dispatch_uid"], "fragile");
        assert!(event.fields["location"].starts_with(file!()), "{event:?}");
    }
    events
}

#[test]
fn a_panic_dropping_a_disconnected_receiver_in_the_send_that_rebuilds_is_caught_and_logged() {
    let signal = Signal::<Plain>::new("post_save");
    let fragile = connect_fragile(&signal);
    signal.connect(|_, args: &Event<'_>| args.log.push("other"));
    let recorder = Recorder::default();
    let log = Log::default();
    let responses = with_only(recorder.clone(), || {
        // The snapshot still holds the closure; the next send rebuilds it and drops the last
        // reference.
        assert!(signal.disconnect(fragile));
        signal.send_robust(None, &support::ev(&log))
    });
    assert_eq!(responses.len(), 1, "the other receiver ran");
    assert!(responses[0].output.is_ok());
    assert_eq!(log.take(), ["other"]);
    assert_eq!(panics_on_drop(&recorder).len(), 1);
}

#[test]
fn a_panic_dropping_a_receiver_in_another_threads_send_is_caught_there_and_logged() {
    static signal: Signal<Plain> = Signal::new("post_delete");
    static INSIDE: Rendezvous = Rendezvous::new(2);
    static RELEASE: Rendezvous = Rendezvous::new(2);
    let fragile = connect_fragile(&signal);
    signal
        .connector()
        .sender(Silo::Region)
        .connect(|_, args: &Event<'_>| {
            args.log.push("blocking");
            assert!(INSIDE.wait(DEADLOCK), "the main thread never came");
            assert!(RELEASE.wait(DEADLOCK), "the main thread never released");
        });
    let recorder = Recorder::default();
    std::thread::scope(|scope| {
        let holder = scope.spawn(|| {
            let log = Log::default();
            // This send holds the snapshot with the fragile closure until it ends, after the
            // main thread replaced it: the last reference is released here.
            let responses = with_only(recorder.clone(), || {
                signal.send_robust(&Silo::Region, &support::ev(&log))
            });
            (responses.len(), log.take())
        });
        assert!(INSIDE.wait(DEADLOCK), "the holding send never started");
        tracing::subscriber::with_default(recorder.clone(), || {
            assert!(signal.disconnect(fragile));
            signal.emit(None, &support::ev(&Log::default())).unwrap();
        });
        assert!(RELEASE.wait(DEADLOCK), "the holding send never finished");
        let (ran, log) = holder.join().expect("the panic escaped the holding send");
        assert_eq!(ran, 2, "both receivers ran in the holding send");
        assert_eq!(log, ["blocking"]);
    });
    assert_eq!(panics_on_drop(&recorder).len(), 1);
}
