//! A readable trace of the signals the application sends: each send, indented under the
//! receiver that made it, then each receiver that ran with its outcome. Sends that reach no
//! receiver are left out.

use std::cell::RefCell;
use std::fmt::Display;

use ::signals::{ReceiverError, ReceiverInfo, Responses, SendError};

use crate::context::Context;

thread_local! {
    /// The lines of the send in progress on this thread, and how deep in nested sends it is.
    static PENDING: RefCell<(Vec<String>, usize)> = const { RefCell::new((Vec::new(), 0)) };
}

/// Traces a `send` (or `emit`-like) of `signal` by `sender`.
pub(crate) fn send<T>(
    ctx: &Context,
    signal: &str,
    sender: impl Display,
    send: impl FnOnce() -> Result<Responses<T>, SendError>,
) -> Result<Responses<T>, SendError> {
    let header = begin(signal, &sender);
    let result = send();
    let outcomes = match &result {
        Ok(responses) => responses.iter().map(|r| ok(&r.receiver)).collect(),
        Err(SendError::Failed {
            receiver, source, ..
        }) => vec![format!(
            "✗ {}: {source} (the receivers after it did not run)",
            short(receiver),
        )],
        Err(error) => vec![format!("✗ {error}")],
    };
    end(ctx, header, outcomes);
    result
}

/// Traces a `send_robust` of `signal` by `sender`.
pub(crate) fn send_robust<T>(
    ctx: &Context,
    signal: &str,
    sender: impl Display,
    send: impl FnOnce() -> Responses<Result<T, ReceiverError>>,
) -> Responses<Result<T, ReceiverError>> {
    let header = begin(signal, &sender);
    let responses = send();
    let outcomes = responses
        .iter()
        .map(|r| match &r.output {
            Ok(_) => ok(&r.receiver),
            Err(error) => format!("✗ {}: {error} (logged; the others ran)", short(&r.receiver)),
        })
        .collect();
    end(ctx, header, outcomes);
    responses
}

fn ok(receiver: &ReceiverInfo) -> String {
    format!("✓ {}", short(receiver))
}

/// A receiver's name without the crate and `receivers` prefix: `useremail::create_user_email`.
fn short(receiver: &ReceiverInfo) -> &'static str {
    let name = receiver.name();
    name.split_once("::receivers::")
        .map_or(name, |(_, rest)| rest)
}

/// Starts a send: writes its header; returns where it is, to drop it if nothing ran.
fn begin(signal: &str, sender: &dyn Display) -> usize {
    PENDING.with_borrow_mut(|(lines, depth)| {
        lines.push(format!(
            "{}▸ {signal} (sender {sender})",
            "  ".repeat(*depth)
        ));
        *depth += 1;
        lines.len() - 1
    })
}

/// Ends a send: writes the outcomes, and hands the lines to the console once the outermost
/// send is done.
fn end(ctx: &Context, header: usize, outcomes: Vec<String>) {
    let finished = PENDING.with_borrow_mut(|(lines, depth)| {
        *depth -= 1;
        if outcomes.is_empty() && lines.len() == header + 1 {
            lines.pop();
        } else {
            let indent = "  ".repeat(*depth + 1);
            lines.extend(
                outcomes
                    .into_iter()
                    .map(|outcome| format!("{indent}{outcome}")),
            );
        }
        (*depth == 0).then(|| std::mem::take(lines))
    });
    for line in finished.into_iter().flatten() {
        ctx.console.line(line);
    }
}

/// Prints `line`, in order with the trace of the send in progress on this thread, if any: for
/// log events, which have no context at hand.
pub(crate) fn log_line(line: String) {
    let pending = PENDING.with_borrow_mut(|(lines, depth)| {
        if *depth == 0 {
            return Some(line);
        }
        lines.push(format!("{}! {line}", "  ".repeat(*depth)));
        None
    });
    if let Some(line) = pending {
        crate::out::line(line);
    }
}

/// Writes `line` to the console, in order with the trace of the send in progress, if any.
pub(crate) fn note(ctx: &Context, line: impl Into<String>) {
    let line = line.into();
    let pending = PENDING.with_borrow_mut(|(lines, depth)| {
        if *depth == 0 {
            return Some(line);
        }
        lines.push(format!("{}· {line}", "  ".repeat(*depth)));
        None
    });
    if let Some(line) = pending {
        ctx.console.line(line);
    }
}
