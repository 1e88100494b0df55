//! A readable trace of the signals the application sends, in the order things happen, built
//! from what the signals report through `tracing`: a watched send is a `signal.send` span, each
//! receiver runs in a `signal.receive` span under it, and its outcome is a `signal.receiver`
//! event before that span closes. A durable signal's delivery is an `outbox.deliver` span
//! around its send.
//!
//! A send's line is printed when its first receiver starts (sends that reach no receiver are
//! left out); a receiver's line when it starts, if it writes anything (a nested send, a note, a
//! log event), with what it writes indented under it; its outcome after. A receiver that writes
//! nothing takes one line, its outcome.
//!
//! ```text
//! ▸ post_save (sender User)
//!   ▹ useremail::create_user_email
//!     ▸ post_save (sender UserEmail)
//!       ✓ stats::record_object_created
//!   ✓ useremail::create_user_email
//!   ✓ stats::record_object_created
//! ```

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

use crate::context::Context;

/// One open span of the trace on this thread: its line, and whether it was printed yet.
#[derive(Clone)]
struct Frame {
    line: String,
    printed: bool,
}

thread_local! {
    /// The spans entered on this thread, outermost first.
    static OPEN: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
}

/// Writes `line` under what is open on this thread, first printing the lines of the open
/// sends and receivers that were not printed yet; returns it indented.
fn under_open(line: &str) -> String {
    OPEN.with_borrow_mut(|open| {
        for (depth, frame) in open.iter_mut().enumerate() {
            if !frame.printed {
                frame.printed = true;
                crate::out::line(format_args!("{}{}", "  ".repeat(depth), frame.line));
            }
        }
        format!("{}{line}", "  ".repeat(open.len()))
    })
}

/// Writes a receiver's `line` to the console, in order with the trace, indented under the
/// receiver that is running, if any.
pub(crate) fn note(ctx: &Context, line: impl Into<String>) {
    ctx.console.line(under_open(&format!("· {}", line.into())));
}

/// The subscriber that prints the trace, and warnings and errors in it.
pub(crate) struct Tracer {
    next: AtomicU64,
    /// The name and fields of each span, by id, until it closes.
    spans: Mutex<HashMap<u64, (&'static str, Fields)>>,
}

impl Tracer {
    pub(crate) fn new() -> Self {
        Self {
            next: AtomicU64::new(1),
            spans: Mutex::default(),
        }
    }
}

/// The fields of a span or an event, by name, as text.
#[derive(Default)]
struct Fields(Vec<(&'static str, String)>);

impl Fields {
    /// The field's last value.
    fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .rev()
            .find(|(field, _)| *field == name)
            .map_or("", |(_, value)| value.as_str())
    }

    /// The line of a span with these fields.
    fn line(&self, span: &str) -> String {
        match span {
            "signal.send" => format!(
                "▸ {} (sender {})",
                self.get("signal"),
                sender(self.get("sender"))
            ),
            "signal.receive" => format!("▹ {}", short(self.get("receiver"))),
            "outbox.deliver" => format!(
                "⇢ outbox message {} of {}, attempt {}",
                self.get("message_id"),
                self.get("shard"),
                self.get("attempt")
            ),
            other => other.to_owned(),
        }
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.push((field.name(), format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name(), value.to_owned()));
    }
}

/// A receiver's name without the crate and `receivers` prefix: `useremail::create_user_email`.
fn short(receiver: &str) -> &str {
    receiver
        .split_once("::receivers::")
        .map_or(receiver, |(_, rest)| rest)
}

/// A sender as the trace writes it: a type without its module path.
fn sender(sender: &str) -> &str {
    sender.rsplit("::").next().unwrap_or(sender)
}

impl Subscriber for Tracer {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target() == "signals" || *metadata.level() <= Level::WARN
    }

    fn new_span(&self, attributes: &Attributes<'_>) -> Id {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut fields = Fields::default();
        attributes.record(&mut fields);
        let name = attributes.metadata().name();
        self.spans.lock().unwrap().insert(id, (name, fields));
        Id::from_u64(id)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        if let Some((_, fields)) = self.spans.lock().unwrap().get_mut(&span.into_u64()) {
            values.record(fields);
        }
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let metadata = event.metadata();
        let line = if metadata.name() == "signal.receiver" {
            // A receiver's outcome, while its span is still open: under its own line if that
            // was printed, in place of it otherwise.
            let outcome = fields.get("outcome");
            let receiver = short(fields.get("receiver"));
            let mark = if outcome == "ok" {
                format!("✓ {receiver}")
            } else {
                format!("✗ {receiver}: {outcome}")
            };
            let depth = OPEN.with_borrow_mut(|open| {
                if let Some(receiving) = open.last_mut() {
                    receiving.printed = true; // the outcome stands for its line
                }
                open.len().saturating_sub(1)
            });
            under_open("");
            crate::out::line(format_args!("{}{mark}", "  ".repeat(depth)));
            return;
        } else if *metadata.level() <= Level::WARN {
            let mut line = format!("! {} {}:", metadata.level(), metadata.name());
            for (field, value) in &fields.0 {
                if *field == "message" {
                    let _ = write!(line, " {value}");
                } else {
                    let _ = write!(line, " {field}={value}");
                }
            }
            line
        } else {
            return;
        };
        crate::out::line(under_open(&line));
    }

    fn enter(&self, span: &Id) {
        let line = self
            .spans
            .lock()
            .unwrap()
            .get(&span.into_u64())
            .map(|(name, fields)| fields.line(name))
            .unwrap_or_default();
        OPEN.with_borrow_mut(|open| {
            open.push(Frame {
                line,
                printed: false,
            });
        });
    }

    fn exit(&self, _: &Id) {
        OPEN.with_borrow_mut(Vec::pop);
    }

    fn try_close(&self, span: Id) -> bool {
        self.spans.lock().unwrap().remove(&span.into_u64());
        true
    }
}
