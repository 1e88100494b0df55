//! What several test binaries share. Each binary names the modules it uses with `mod support;`.

#![allow(dead_code, unreachable_pub)] // each binary uses a part

use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};

/// Records the name and message of every `warn` event on the `signals` target, on any thread:
/// install it with `tracing::subscriber::set_global_default(warnings.clone())`.
#[derive(Clone, Default)]
pub struct Warnings(Arc<Mutex<Vec<(&'static str, String)>>>);

impl Warnings {
    /// Every warning recorded so far: (event name, message).
    pub fn logged(&self) -> Vec<(&'static str, String)> {
        self.0.lock().unwrap().clone()
    }
}

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
