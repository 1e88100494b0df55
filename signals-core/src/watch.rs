//! What a send does when it is watched: by a testing aid on the sending thread (a mute, a
//! capture) or by a `tracing` subscriber that wants the `signals` target at `debug`.
//!
//! Unwatched sends take the plain path and pay for [`active`] alone. A watched send opens a
//! `signal.send` span (signal, sender, number of receivers), leaves out muted receivers, and
//! wraps every other one in a [`Watched`] step, which runs it inside a `signal.receive` span
//! (receiver, `dispatch_uid`, location: sends the receiver makes nest under it) and reports how
//! it ended: a `signal.receiver` event at `debug`, emitted before that span closes, and a line
//! in each capture of the signal.

use std::any::Any;
use std::fmt::Debug;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};

use tracing::{Level, Span, field};

use crate::dispatch::{Info, Step, panic_message};
use crate::error::BoxError;
use crate::receiver::{BoxFuture, ReceiverInfo, Started};
use crate::testing::{self, Outcome, Seen, Sent, lock};

/// Whether a send must look for watchers: a testing guard is alive on this thread, or a
/// subscriber may want `signals` events at `debug`. A relaxed load or two otherwise.
#[inline]
pub(crate) fn active() -> bool {
    testing::guards_alive()
        || (tracing::level_enabled!(Level::DEBUG)
            && tracing::enabled!(target: "signals", Level::DEBUG))
}

/// One watched send.
pub(crate) struct Watch {
    signal: &'static str,
    span: Span,
    /// What the sending thread's testing guards say about the signal.
    seen: Seen,
    /// The send as the captures will record it, if there are any, with its number in each.
    sent: Mutex<Option<Sent>>,
    numbers: Vec<u64>,
    /// How each receiver ended, by its place in the order the send runs them.
    outcomes: Mutex<Vec<Option<(ReceiverInfo, Outcome)>>>,
}

impl Watch {
    /// Starts watching a send of the signal named `signal`, at `address`, from `sender`.
    pub(crate) fn begin(signal: &'static str, address: usize, sender: Option<&dyn Debug>) -> Self {
        let seen = testing::seen(address);
        let span = tracing::debug_span!(
            target: "signals",
            "signal.send",
            signal,
            sender = field::Empty,
            receivers = field::Empty,
            muted = seen.muted,
        );
        match sender {
            Some(sender) => span.record("sender", field::debug(sender)),
            None => span.record("sender", "none"),
        };
        let sent = (!seen.captures.is_empty())
            .then(|| Sent::new(sender.map(|sender| format!("{sender:?}")), seen.muted));
        // Each capture keeps the send's place now, so that sends are listed as they started.
        let numbers = seen
            .captures
            .iter()
            .map(|capture| lock(&capture.log).start())
            .collect();
        Self {
            signal,
            span,
            seen,
            sent: Mutex::new(sent),
            numbers,
            outcomes: Mutex::new(Vec::new()),
        }
    }

    /// The span of the send, to enter while it runs.
    pub(crate) fn span(&self) -> &Span {
        &self.span
    }

    /// Whether the signal is muted on the sending thread: the send runs no receiver.
    pub(crate) fn muted(&self) -> bool {
        self.seen.muted
    }

    /// Records the arguments for the captures: `render` gets a capture's renderer, which the
    /// signal's send path downcasts to its own type.
    pub(crate) fn args(&self, render: impl FnOnce(&(dyn Any + Send + Sync)) -> Option<String>) {
        let Some(capture) = self.seen.captures.first() else {
            return;
        };
        if let Some(args) = render(&*capture.render)
            && let Some(sent) = self.sent().as_mut()
        {
            sent.args = args;
        }
    }

    /// `steps` without the receivers muted on the sending thread, each wrapped to report how
    /// it ends.
    pub(crate) fn steps<'w, S: Info>(&'w self, steps: &'w [S]) -> Vec<Watched<'w, S>> {
        // The places of the responses: plain receivers, then async ones, as sends run them.
        let mut order: Vec<&S> = steps.iter().filter(|step| !step.is_async()).collect();
        order.extend(steps.iter().filter(|step| step.is_async()));
        *self.outcomes() = vec![None; order.len()];
        let mut watched = Vec::with_capacity(steps.len());
        for (place, step) in order.into_iter().enumerate() {
            let info = step.info();
            if self.seen.mutes(info) {
                self.ended(place, info, Outcome::Muted);
            } else {
                watched.push(Watched {
                    step,
                    place,
                    watch: self,
                });
            }
        }
        self.span.record("receivers", watched.len());
        watched
    }

    fn outcomes(&self) -> std::sync::MutexGuard<'_, Vec<Option<(ReceiverInfo, Outcome)>>> {
        self.outcomes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn ended(&self, place: usize, info: &ReceiverInfo, outcome: Outcome) {
        tracing::debug!(
            name: "signal.receiver",
            target: "signals",
            parent: &self.span,
            signal = self.signal,
            receiver = info.name(),
            dispatch_uid = info.dispatch_uid(),
            location = %info.location(),
            outcome = %outcome,
            "receiver {outcome}",
        );
        if self.sent().is_some() {
            self.outcomes()[place] = Some((info.clone(), outcome));
        }
    }

    /// Reports a receiver's panic, and resumes it.
    fn panicked(&self, place: usize, info: &ReceiverInfo, payload: Box<dyn Any + Send>) -> ! {
        self.ended(place, info, Outcome::Panicked(panic_message(&*payload)));
        resume_unwind(payload)
    }

    fn sent(&self) -> std::sync::MutexGuard<'_, Option<Sent>> {
        self.sent.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Watch {
    /// Hands the recorded send to the captures, also when a receiver's panic unwinds the send.
    fn drop(&mut self) {
        let Some(mut sent) = self.sent().take() else {
            return;
        };
        sent.responses = self.outcomes().drain(..).flatten().collect();
        for (capture, &number) in self.seen.captures.iter().zip(&self.numbers) {
            lock(&capture.log).end(number, sent.clone());
        }
    }
}

/// A receiver of a watched send: runs as the receiver it wraps, and reports how it ended.
pub(crate) struct Watched<'w, S> {
    step: &'w S,
    /// Its place among the send's responses.
    place: usize,
    watch: &'w Watch,
}

/// How a receiver that returned ended, for the watch.
fn ran<O>(result: Option<&Result<O, BoxError>>) -> Outcome {
    match result {
        Some(Ok(_)) => Outcome::Ok,
        Some(Err(error)) => Outcome::Failed(error.to_string()),
        None => Outcome::TargetDropped,
    }
}

impl<S: Info> Watched<'_, S> {
    /// The span the receiver runs in, under the send's.
    fn span(&self) -> Span {
        let info = self.step.info();
        tracing::debug_span!(
            target: "signals",
            parent: &self.watch.span,
            "signal.receive",
            receiver = info.name(),
            dispatch_uid = info.dispatch_uid(),
            location = %info.location(),
        )
    }

    /// Reports how a receiver that returned ended; one that runs only for sends started on
    /// another thread is not part of this send.
    fn report<Cx, O>(&self, result: Option<&Result<O, BoxError>>)
    where
        S: Step<Cx>,
    {
        if result.is_some() || !self.step.alive() {
            self.watch.ended(self.place, self.step.info(), ran(result));
        }
    }
}

impl<S: Info> Info for Watched<'_, S> {
    fn info(&self) -> &ReceiverInfo {
        self.step.info()
    }

    fn is_async(&self) -> bool {
        self.step.is_async()
    }
}

impl<Cx, S: Step<Cx>> Step<Cx> for Watched<'_, S> {
    type Output = S::Output;

    fn run(&self, cx: &Cx) -> Option<Result<S::Output, BoxError>> {
        let span = self.span();
        let _receiving = span.enter();
        match catch_unwind(AssertUnwindSafe(|| self.step.run(cx))) {
            Ok(result) => {
                self.report(result.as_ref());
                result
            }
            Err(payload) => self.watch.panicked(self.place, self.step.info(), payload),
        }
    }

    fn alive(&self) -> bool {
        self.step.alive()
    }

    fn start<'c>(&'c self, cx: &'c Cx) -> Started<'c, S::Output> {
        let span = self.span();
        let receiving = span.enter();
        match catch_unwind(AssertUnwindSafe(|| self.step.start(cx))) {
            Ok(Started::Pending(future)) => {
                drop(receiving);
                Started::Pending(Box::pin(Reported {
                    future: Some(future),
                    place: self.place,
                    info: self.step.info(),
                    watch: self.watch,
                    span,
                }))
            }
            Ok(Started::Ready(result)) => {
                self.report(result.as_ref());
                Started::Ready(result)
            }
            Err(payload) => self.watch.panicked(self.place, self.step.info(), payload),
        }
    }
}

/// An async receiver's future that reports how it ended; `Cancelled` if it is dropped
/// before it completes.
struct Reported<'c, O> {
    future: Option<BoxFuture<'c, Result<O, BoxError>>>,
    place: usize,
    info: &'c ReceiverInfo,
    watch: &'c Watch,
    /// The receiver's `signal.receive` span, entered at every poll.
    span: Span,
}

impl<O> Future for Reported<'_, O> {
    type Output = Result<O, BoxError>;

    fn poll(mut self: Pin<&mut Self>, task: &mut Context<'_>) -> Poll<Self::Output> {
        let span = self.span.clone();
        let _receiving = span.enter();
        let Some(future) = self.future.as_mut() else {
            panic!("a receiver's future was polled after it completed");
        };
        match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(task))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(result)) => {
                self.future = None;
                self.watch.ended(self.place, self.info, ran(Some(&result)));
                Poll::Ready(result)
            }
            Err(payload) => {
                self.future = None;
                self.watch.panicked(self.place, self.info, payload)
            }
        }
    }
}

impl<O> Drop for Reported<'_, O> {
    fn drop(&mut self) {
        if self.future.is_some() {
            self.watch.ended(self.place, self.info, Outcome::Cancelled);
        }
    }
}
