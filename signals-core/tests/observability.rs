//! What a failing receiver leaves behind under `send_robust`: a `signal.failure` event.

mod support;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use signals_core::Signal;
use support::{Event, Log, Plain};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Level, Metadata, Subscriber};

/// One recorded event: its name, level, target and fields.
#[derive(Debug, Clone)]
struct Recorded {
    name: &'static str,
    level: Level,
    target: String,
    fields: BTreeMap<&'static str, String>,
}

/// A subscriber that records every event.
#[derive(Default, Clone)]
struct Recorder(Arc<Mutex<Vec<Recorded>>>);

struct Fields<'a>(&'a mut BTreeMap<&'static str, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name(), format!("{value:?}"));
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        self.0.lock().unwrap().push(Recorded {
            name: event.metadata().name(),
            level: *event.metadata().level(),
            target: event.metadata().target().to_owned(),
            fields,
        });
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
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
    tracing::subscriber::with_default(recorder.clone(), || {
        signal.send_robust(
            None,
            &Event {
                log: &log,
                value: 0,
            },
        );
    });
    let events = recorder.0.lock().unwrap().clone();
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
    tracing::subscriber::with_default(recorder.clone(), || {
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
    assert!(recorder.0.lock().unwrap().is_empty());
}
