//! The ways to run a dispatch list, shared by every kind of signal: `send` (stops at the first
//! error), `send_robust` (records every error and panic, runs the rest) and `emit` (like
//! `send`, without collecting responses, so without allocating), and the async `send` and
//! `send_robust`, which run the sync receivers in order, then the async ones concurrently.

use std::any::Any;
use std::convert::Infallible;
use std::future::poll_fn;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;
use std::task::Poll;

use crate::error::{BoxError, ReceiverError, SendError, panic_message};
use crate::info::ReceiverInfo;
use crate::raw::{Pin, lend, lend_into};
pub use crate::raw::{Response, Responses};
use crate::receiver::{BoxFuture, Started, Step, in_start_order};
use crate::table::FoundDead;
use crate::watch;

/// Where a send reports what it finds: failures (logged as `signal.failure` with the signal's
/// name, or raised under [`testing::raise_on_send`](crate::testing::raise_on_send)) and weak
/// receivers whose target turned out to be gone (to the signal's table, which purges them).
#[derive(Clone, Copy)]
pub(crate) struct Reporter<'o> {
    pub(crate) signal: &'static str,
    pub(crate) table: &'o dyn FoundDead,
    /// Whether [`testing::raise_on_send`](crate::testing::raise_on_send) was on where the send
    /// started; `None` to ask the current thread, which is where a sync send started.
    pub(crate) raise: Option<bool>,
}

impl<'o> Reporter<'o> {
    /// The reporter of a send of the signal named `signal`, whose table is `table`.
    pub(crate) fn new(signal: &'static str, table: &'o dyn FoundDead) -> Self {
        Self {
            signal,
            table,
            raise: None,
        }
    }

    /// This reporter for an async send that starts on the current thread: raising is decided
    /// here, wherever the send is polled later.
    fn starting_here(&self) -> Self {
        Self {
            raise: Some(self.raise.unwrap_or_else(watch::raises_on_send)),
            ..*self
        }
    }

    fn raises(&self) -> bool {
        self.raise.unwrap_or_else(watch::raises_on_send)
    }
}

/// One of the sync ways to run a dispatch list, as a type, so that each kind of signal has one
/// send body for all three: [`ToSend`], [`ToSendRobust`] and [`ToEmit`].
pub(crate) trait Run<O> {
    /// What the send returns.
    type Out;

    /// What a send that reaches no receiver returns.
    fn nothing() -> Self::Out;

    /// What a send refused by [`Pin::enter`](crate::raw::Pin::enter), nested too deep for the
    /// stack left, returns.
    fn too_deep(error: SendError) -> Self::Out;

    /// Runs `steps`.
    fn run<Cx, S: Step<Cx, Output = O>>(steps: &[S], cx: &Cx, reporter: &Reporter<'_>)
    -> Self::Out;

    /// Whether the send returns responses, which keep the snapshot: it is then run with
    /// [`run_kept`](Self::run_kept), from the snapshot owned.
    const KEEPS: bool = false;

    /// Runs the receivers `list` picks in `snapshot`; the responses keep `snapshot` and borrow
    /// their receivers' identities from it, without a reference count each.
    fn run_kept<Rt, Cx, S>(
        snapshot: Arc<Rt>,
        list: impl for<'x> FnOnce(&'x Rt) -> &'x [S],
        cx: &Cx,
        reporter: &Reporter<'_>,
    ) -> Self::Out
    where
        Rt: Send + Sync + 'static,
        S: Step<Cx, Output = O>,
    {
        Self::run(list(&snapshot), cx, reporter)
    }
}

/// [`send`]: responses, stopping at the first `Err`.
pub(crate) struct ToSend;
/// [`send_robust`]: every receiver runs, failures recorded.
pub(crate) struct ToSendRobust;
/// [`emit`]: like [`send`], without responses.
pub(crate) struct ToEmit;

impl<O> Run<O> for ToSend {
    type Out = Result<Responses<O>, SendError>;

    fn nothing() -> Self::Out {
        Ok(Responses::none())
    }

    #[cold]
    fn too_deep(error: SendError) -> Self::Out {
        Err(error)
    }

    #[inline]
    fn run<Cx, S: Step<Cx, Output = O>>(
        steps: &[S],
        cx: &Cx,
        reporter: &Reporter<'_>,
    ) -> Self::Out {
        send(steps, cx, reporter)
    }

    const KEEPS: bool = true;

    #[inline]
    fn run_kept<Rt, Cx, S>(
        snapshot: Arc<Rt>,
        list: impl for<'x> FnOnce(&'x Rt) -> &'x [S],
        cx: &Cx,
        reporter: &Reporter<'_>,
    ) -> Self::Out
    where
        Rt: Send + Sync + 'static,
        S: Step<Cx, Output = O>,
    {
        lend(snapshot, list, |step| match send_one(step, cx, reporter) {
            Ok(Some(output)) => Ok(output),
            Ok(None) => Err(None),
            Err(error) => Err(Some(error)),
        })
    }
}

impl<O> Run<O> for ToSendRobust {
    type Out = Responses<Result<O, ReceiverError>>;

    fn nothing() -> Self::Out {
        Responses::none()
    }

    /// A robust send has no error to return: a send nested too deep panics, which an outer
    /// robust send records as its receiver's panic.
    #[cold]
    fn too_deep(error: SendError) -> Self::Out {
        panic!("{error}")
    }

    #[inline]
    fn run<Cx, S: Step<Cx, Output = O>>(
        steps: &[S],
        cx: &Cx,
        reporter: &Reporter<'_>,
    ) -> Self::Out {
        send_robust(steps, cx, reporter)
    }

    const KEEPS: bool = true;

    #[inline]
    fn run_kept<Rt, Cx, S>(
        snapshot: Arc<Rt>,
        list: impl for<'x> FnOnce(&'x Rt) -> &'x [S],
        cx: &Cx,
        reporter: &Reporter<'_>,
    ) -> Self::Out
    where
        Rt: Send + Sync + 'static,
        S: Step<Cx, Output = O>,
    {
        let mut settled = false;
        let sent = lend_into(snapshot, list, |step, place| {
            // `Ok(output)` is made where it is written: for `()`, its tag alone.
            Ok::<_, Infallible>(match run_robust(step, cx, reporter, &mut settled) {
                Ok(output) => Some(place.write(Ok(output))),
                Err(response) => response.map(|response| place.write(response)),
            })
        });
        match sent {
            Ok(mut responses) => {
                // Every response `Ok` with an output that has no drop glue: nothing to drop.
                if !settled && !std::mem::needs_drop::<O>() {
                    responses.set_trivial();
                }
                responses
            }
            Err(never) => match never {},
        }
    }
}

impl Run<()> for ToEmit {
    type Out = Result<(), SendError>;

    fn nothing() -> Self::Out {
        Ok(())
    }

    #[cold]
    fn too_deep(error: SendError) -> Self::Out {
        Err(error)
    }

    #[inline]
    fn run<Cx, S: Step<Cx, Output = ()>>(
        steps: &[S],
        cx: &Cx,
        reporter: &Reporter<'_>,
    ) -> Self::Out {
        emit(steps, cx, reporter)
    }
}

/// The stack a sync send needs left to run its receivers. A send nested in other sends on its
/// thread (a receiver that sends) checks what is left, and with less than this it runs no
/// receiver and fails with [`SendError::TooDeep`] (`send_robust` panics with it), instead of
/// overflowing the stack, which would abort the process. 64 KiB: a runaway recursion then stops
/// about 30 levels before a debug build would overflow, while legitimate nesting a thousand
/// deep runs on a 2 MiB test thread. Threads with larger stacks nest deeper.
pub const STACK_RESERVE: usize = 64 * 1024;

/// Sends nested this deep check the stack left; shallower ones only count.
const CHECK_FROM: u32 = 16;

/// How deep sends may nest where the stack left cannot be known.
const MAX_DEPTH_UNKNOWN_STACK: u32 = 1_000;

/// Why the sync send of the signal named `signal` that `pin` entered (see [`Pin::enter`]: it
/// reads the signal's snapshot through the pin, which counts how deep it nests in the thread's
/// other sends) must not run: it is nested too deep for the stack left.
#[inline]
pub(crate) fn refused(pin: &Pin, signal: &'static str) -> Option<SendError> {
    let depth = pin.depth();
    if depth >= CHECK_FROM && stack_exhausted(depth) {
        return Some(SendError::TooDeep {
            signal,
            depth: depth + 1,
        });
    }
    None
}

/// Whether a send `depth` sends deep would leave less than [`STACK_RESERVE`] to its receivers.
#[cold]
fn stack_exhausted(depth: u32) -> bool {
    match stacker::remaining_stack() {
        Some(left) => left < STACK_RESERVE,
        None => depth >= MAX_DEPTH_UNKNOWN_STACK,
    }
}

/// Runs `steps` in order and stops at the first `Err`, which is returned with the receiver's
/// identity. Panics propagate.
#[inline]
pub(crate) fn send<Cx, S: Step<Cx>>(
    steps: &[S],
    cx: &Cx,
    reporter: &Reporter<'_>,
) -> Result<Responses<S::Output>, SendError> {
    let mut items = Vec::with_capacity(steps.len());
    for step in steps {
        if let Some(output) = send_one(step, cx, reporter)? {
            items.push(Response {
                receiver: step.info().clone(),
                output,
            });
        }
    }
    Ok(Responses::owned(items))
}

/// Runs a plain receiver for a `send`: its output, `None` if it did not run, or the error that
/// stops the send.
#[inline]
fn send_one<Cx, S: Step<Cx>>(
    step: &S,
    cx: &Cx,
    reporter: &Reporter<'_>,
) -> Result<Option<S::Output>, SendError> {
    send_response(step, step.run(cx), reporter)
}

/// What a receiver that ran as `ran` (`None`: it did not) gives a `send`: its output, or the
/// error that stops the send.
#[inline]
fn send_response<Cx, S: Step<Cx>>(
    step: &S,
    ran: Option<Result<S::Output, BoxError>>,
    reporter: &Reporter<'_>,
) -> Result<Option<S::Output>, SendError> {
    match ran {
        Some(Ok(output)) => Ok(Some(output)),
        // Inline, unlike `emit`'s: through `stopped`, `send` at 10 receivers costs 438
        // instructions against 406 inline (495 against 479 when first measured).
        Some(Err(error)) => Err(SendError::new(step.info().clone(), error)),
        None => {
            skipped(step, reporter.table);
            Ok(None)
        }
    }
}

/// The error of a send that `step` stopped with `error`. Out of line, so that the send's loop
/// keeps nothing for it.
#[cold]
#[inline(never)]
fn stopped<Cx, S: Step<Cx>>(step: &S, error: BoxError) -> SendError {
    SendError::new(step.info().clone(), error)
}

/// A receiver did not run: if it is a weak one whose target is gone, the table purges it.
/// Given the table alone, out of line, so that a send need not keep its reporter in memory.
#[cold]
#[inline(never)]
fn skipped<Cx, S: Step<Cx>>(step: &S, table: &dyn FoundDead) {
    if !step.alive() {
        table.found_dead();
    }
}

/// Like [`send`], without collecting responses: allocates nothing unless a receiver fails.
#[inline]
pub(crate) fn emit<Cx, S: Step<Cx, Output = ()>>(
    steps: &[S],
    cx: &Cx,
    reporter: &Reporter<'_>,
) -> Result<(), SendError> {
    // By index, as in `raw::lend`: one induction variable for the 24-byte entries.
    #[allow(
        clippy::needless_range_loop,
        reason = "the index is the loop's only induction variable"
    )]
    for index in 0..steps.len() {
        let step = &steps[index];
        match step.run(cx) {
            Some(Ok(())) => {}
            Some(Err(error)) => return Err(stopped(step, error)),
            None => skipped(step, reporter.table),
        }
    }
    Ok(())
}

/// Runs every step; an `Err` or a panic is logged as `signal.failure` and recorded in place of
/// the response, and the next receiver runs. Under
/// [`testing::raise_on_send`](crate::testing::raise_on_send) the first failure is raised
/// instead.
#[inline]
pub(crate) fn send_robust<Cx, S: Step<Cx>>(
    steps: &[S],
    cx: &Cx,
    reporter: &Reporter<'_>,
) -> Responses<Result<S::Output, ReceiverError>> {
    let mut items = Vec::with_capacity(steps.len());
    let mut settled = false;
    for step in steps {
        let response = run_robust(step, cx, reporter, &mut settled);
        if let Some(output) = response.map_or_else(|other| other, |output| Some(Ok(output))) {
            items.push(Response {
                receiver: step.info().clone(),
                output,
            });
        }
    }
    Responses::owned(items)
}

/// Runs a receiver for a `send_robust`: `Ok` with its output if it returned one, otherwise
/// its response settled (a failure recorded, or `None` if it did not run), and `settled` set.
#[inline]
fn run_robust<Cx, S: Step<Cx>>(
    step: &S,
    cx: &Cx,
    reporter: &Reporter<'_>,
    settled: &mut bool,
) -> Result<S::Output, Option<Result<S::Output, ReceiverError>>> {
    // The output is told apart inside the unwinding boundary, so that the happy path leaves it
    // with the output alone, built in place, rather than a nested `Option<Result<..>>` to take
    // apart again and move through the stack.
    let ran = catch_unwind(AssertUnwindSafe(|| match step.run(cx) {
        Some(Ok(output)) => Ok(output),
        other => Err(other),
    }));
    let outcome = match ran {
        Ok(Ok(output)) => return Ok(output),
        Ok(Err(other)) => Ok(other),
        Err(payload) => Err(payload),
    };
    *settled = true;
    Err(settle(step, outcome, reporter))
}

#[cold]
fn failed(receiver: &ReceiverInfo, error: BoxError, reporter: &Reporter<'_>) -> ReceiverError {
    assert!(
        !reporter.raises(),
        "signal `{}`: {} (raised by testing::raise_on_send)",
        reporter.signal,
        SendError::new(receiver.clone(), error)
    );
    let error = ReceiverError::Failed(error);
    log_failure(receiver, &error, reporter);
    error
}

#[cold]
fn panicked(
    receiver: &ReceiverInfo,
    payload: Box<dyn Any + Send>,
    reporter: &Reporter<'_>,
) -> ReceiverError {
    if reporter.raises() {
        resume_unwind(payload);
    }
    let error = ReceiverError::Panicked {
        message: panic_message(&*payload),
    };
    log_failure(receiver, &error, reporter);
    error
}

fn log_failure(receiver: &ReceiverInfo, error: &ReceiverError, reporter: &Reporter<'_>) {
    tracing::error!(
        name: "signal.failure",
        target: "signals",
        signal = reporter.signal,
        receiver = receiver.name(),
        dispatch_uid = receiver.dispatch_uid(),
        location = %receiver.location(),
        error = %error,
        "a receiver failed; the other receivers still run",
    );
}

/// An async send: the plain receivers in order, then the async ones, started together and
/// awaited concurrently; `P` says what a receiver's failure does. Responses: the plain ones in
/// dispatch order, then the async ones in dispatch order.
async fn send_async<P: RunAsync<S::Output>, Cx, S: Step<Cx>>(
    steps: &[S],
    cx: &Cx,
    reporter: &Reporter<'_>,
) -> Result<Responses<P::Output>, P::Stop> {
    let mut in_flight = Vec::with_capacity(steps.len());
    for step in in_start_order(steps) {
        let (future, output) = match catch_unwind(AssertUnwindSafe(|| step.start(cx))) {
            Ok(Started::Pending(future)) => (Some(future), None),
            Ok(Started::Ready(ready)) => (None, P::settle(step, Ok(ready), reporter)?),
            Err(payload) => (None, P::settle(step, Err(payload), reporter)?),
        };
        in_flight.push(InFlight {
            step,
            future,
            output,
        });
    }
    poll_fn(|task| {
        let mut done = true;
        for receiver in &mut in_flight {
            let Some(future) = &mut receiver.future else {
                continue;
            };
            let ended = match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(task))) {
                Ok(Poll::Pending) => {
                    done = false;
                    continue;
                }
                Ok(Poll::Ready(result)) => Ok(Some(result)),
                Err(payload) => Err(payload),
            };
            receiver.future = None;
            match P::settle(receiver.step, ended, reporter) {
                Ok(output) => receiver.output = output,
                Err(stop) => return Poll::Ready(Err(stop)),
            }
        }
        if done {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    })
    .await?;
    let items = in_flight
        .into_iter()
        .filter_map(|receiver| {
            Some(Response {
                receiver: receiver.step.info().clone(),
                output: receiver.output?,
            })
        })
        .collect();
    Ok(Responses::owned(items))
}

/// An async receiver in flight: its future until it completes, then its response.
struct InFlight<'c, S, O, T> {
    step: &'c S,
    future: Option<BoxFuture<'c, Result<O, BoxError>>>,
    output: Option<T>,
}

/// One of the async ways to run a dispatch list, as a type, like [`Run`]: [`ToSend`] stops at
/// the first `Err` (dropping the async receivers still running) and lets panics propagate;
/// [`ToSendRobust`] records an `Err` or a panic in place of the response and lets the others
/// complete.
pub(crate) trait RunAsync<O>: Run<O> {
    /// What a response holds.
    type Output;
    /// Why the send stops early.
    type Stop;

    /// The response of a receiver that ended as `ended` (`None`: it did not run), or why the
    /// send stops.
    fn settle<Cx, S: Step<Cx, Output = O>>(
        step: &S,
        ended: RunEnd<O>,
        reporter: &Reporter<'_>,
    ) -> Result<Option<Self::Output>, Self::Stop>;

    /// What the send returns, from its responses or why it stopped.
    fn out(sent: Result<Responses<Self::Output>, Self::Stop>) -> Self::Out;

    /// Runs `steps`: the plain receivers in order, then the async ones concurrently.
    async fn run_async<Cx, S: Step<Cx, Output = O>>(
        steps: &[S],
        cx: &Cx,
        reporter: &Reporter<'_>,
    ) -> Self::Out
    where
        Self: Sized,
    {
        // The first poll: an async send counts where it starts, wherever it is polled later.
        let reporter = &reporter.starting_here();
        Self::out(send_async::<Self, Cx, S>(steps, cx, reporter).await)
    }
}

impl<O> RunAsync<O> for ToSend {
    type Output = O;
    type Stop = SendError;

    #[inline]
    fn settle<Cx, S: Step<Cx, Output = O>>(
        step: &S,
        ended: RunEnd<O>,
        reporter: &Reporter<'_>,
    ) -> Result<Option<O>, SendError> {
        match ended {
            Ok(ran) => send_response(step, ran, reporter),
            Err(payload) => resume_unwind(payload),
        }
    }

    fn out(sent: Result<Responses<O>, SendError>) -> Self::Out {
        sent
    }
}

impl<O> RunAsync<O> for ToSendRobust {
    type Output = Result<O, ReceiverError>;
    type Stop = Infallible;

    #[inline]
    fn settle<Cx, S: Step<Cx, Output = O>>(
        step: &S,
        ended: RunEnd<O>,
        reporter: &Reporter<'_>,
    ) -> Result<Option<Self::Output>, Infallible> {
        Ok(settle(step, ended, reporter))
    }

    fn out(sent: Result<Responses<Self::Output>, Infallible>) -> Self::Out {
        match sent {
            Ok(responses) => responses,
            Err(never) => match never {},
        }
    }
}

/// How a run ended: the receiver's result (`None` if it did not run), or the payload of its
/// panic.
type RunEnd<O> = Result<Option<Result<O, BoxError>>, Box<dyn Any + Send>>;

/// How a robust receiver's run ended, as a response: its output, its recorded error or panic, or
/// `None` if it did not run.
fn settle<Cx, S: Step<Cx>>(
    step: &S,
    ended: RunEnd<S::Output>,
    reporter: &Reporter<'_>,
) -> Option<Result<S::Output, ReceiverError>> {
    match ended {
        Ok(Some(Ok(output))) => Some(Ok(output)),
        Ok(Some(Err(error))) => Some(Err(failed(step.info(), error, reporter))),
        Ok(None) => {
            skipped(step, reporter.table);
            None
        }
        Err(payload) => Some(Err(panicked(step.info(), payload, reporter))),
    }
}
