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
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::fmt::{self, Debug};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use tracing::{Level, Span, field};

use crate::error::BoxError;
use crate::error::panic_message;
use crate::info::ReceiverInfo;
use crate::receiver::{BoxFuture, Info, Shape, Started, Step, in_start_order};
use crate::registry::{AnySignal, Indexed};

// The testing guards alive on each thread, which decide what a send started there does.

thread_local! {
    static RAISE_ON_SEND: Cell<usize> = const { Cell::new(0) };
    static AIDS: RefCell<Aids> = RefCell::new(Aids::default());
    /// How many mute and capture guards this thread has.
    static LOCAL_GUARDS: Cell<usize> = const { Cell::new(0) };
}

/// How many mute and capture guards are alive in the process: sends look for them only when
/// some are.
static GUARDS: AtomicUsize = AtomicUsize::new(0);

/// Whether a mute or capture guard is alive on this thread: one relaxed load while no guard
/// is alive anywhere, and a thread-local read otherwise.
#[inline]
pub(crate) fn guards_alive() -> bool {
    GUARDS.load(Ordering::Relaxed) != 0 && guards_here()
}

/// Whether a mute or capture guard is alive on this thread, once one is alive somewhere.
#[cold]
#[inline(never)]
fn guards_here() -> bool {
    LOCAL_GUARDS.with(|count| count.get() != 0)
}

/// A testing guard, as [`add_guard`] records it.
pub(crate) enum Guard {
    /// Mutes the signal at this address.
    Muted(usize),
    /// Mutes the receivers connected with this `dispatch_uid`.
    MutedUid(Cow<'static, str>),
    /// Captures the sends of the signal at this address.
    Capture(usize, Attached),
}

/// Records a guard made on this thread; returns its id, for [`remove_guard`].
pub(crate) fn add_guard(guard: Guard) -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    GUARDS.fetch_add(1, Ordering::Relaxed);
    LOCAL_GUARDS.with(|count| count.set(count.get() + 1));
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    AIDS.with(|aids| {
        let mut aids = aids.borrow_mut();
        match guard {
            Guard::Muted(address) => aids.muted.push((id, address)),
            Guard::MutedUid(uid) => aids.muted_uids.push((id, uid)),
            Guard::Capture(address, attached) => aids.captures.push((id, address, attached)),
        }
    });
    id
}

/// The mute and capture guards alive on one thread.
#[derive(Default)]
struct Aids {
    muted: Vec<(u64, usize)>,
    muted_uids: Vec<(u64, Cow<'static, str>)>,
    captures: Vec<(u64, usize, Attached)>,
}

/// A capture's log and the renderer of the captured signal's arguments.
#[derive(Clone)]
pub(crate) struct Attached {
    pub(crate) log: Arc<Mutex<Log>>,
    pub(crate) render: Arc<dyn Any + Send + Sync>,
}

/// The sends of one capture, in the order they started: a send takes its place when it starts
/// and fills it in when it ends, so that a send made by a receiver comes after the send that
/// ran that receiver.
#[derive(Default)]
pub(crate) struct Log {
    /// Each send's number, and what it did once it ended.
    sends: Vec<(u64, Option<Sent>)>,
}

impl Log {
    /// Takes a place for a send starting now; returns its number.
    pub(crate) fn start(&mut self) -> u64 {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let number = NEXT.fetch_add(1, Ordering::Relaxed);
        self.sends.push((number, None));
        number
    }

    /// Records what the send numbered `number` did, in its place (unless the capture was
    /// cleared since it started).
    pub(crate) fn end(&mut self, number: u64, sent: Sent) {
        if let Some((_, place)) = self.sends.iter_mut().rev().find(|(n, _)| *n == number) {
            *place = Some(sent);
        }
    }

    /// The sends that ended, in the order they started.
    pub(crate) fn ended(&self) -> impl Iterator<Item = &Sent> {
        self.sends.iter().filter_map(|(_, sent)| sent.as_ref())
    }

    /// Forgets the sends that ended; those still running keep their place.
    pub(crate) fn clear(&mut self) {
        self.sends.retain(|(_, sent)| sent.is_none());
    }
}

/// What one thread's guards say about one signal: see [`seen`].
pub(crate) struct Seen {
    pub(crate) muted: bool,
    pub(crate) muted_uids: Vec<Cow<'static, str>>,
    pub(crate) captures: Vec<Attached>,
}

impl Seen {
    /// Whether `receiver` is muted by its `dispatch_uid`.
    pub(crate) fn mutes(&self, receiver: &ReceiverInfo) -> bool {
        receiver
            .dispatch_uid()
            .is_some_and(|uid| self.muted_uids.iter().any(|muted| muted == uid))
    }
}

/// What the guards of this thread say about the signal at `address`. Nothing, once the
/// thread's own state is gone (a send from a thread-local's destructor at thread exit).
pub(crate) fn seen(address: usize) -> Seen {
    AIDS.try_with(|aids| {
        let aids = aids.borrow();
        Seen {
            muted: aids.muted.iter().any(|&(_, muted)| muted == address),
            muted_uids: aids.muted_uids.iter().map(|(_, uid)| uid.clone()).collect(),
            captures: aids
                .captures
                .iter()
                .filter(|(_, captured, _)| *captured == address)
                .map(|(_, _, attached)| attached.clone())
                .collect(),
        }
    })
    .unwrap_or(Seen {
        muted: false,
        muted_uids: Vec::new(),
        captures: Vec::new(),
    })
}

/// Forgets the guard `id`. A guard kept in a thread-local may be dropped after this thread's
/// own state is gone, at thread exit: there is then nothing to forget but the count.
pub(crate) fn remove_guard(id: u64) {
    let _ = AIDS.try_with(|aids| {
        let mut aids = aids.borrow_mut();
        aids.muted.retain(|&(guard, _)| guard != id);
        aids.muted_uids.retain(|(guard, _)| *guard != id);
        aids.captures.retain(|(guard, _, _)| *guard != id);
    });
    LOCAL_GUARDS.with(|count| count.set(count.get() - 1));
    GUARDS.fetch_sub(1, Ordering::Relaxed);
}

/// Turns `raise_on_send` on (`1`) or off (`-1`) once more on this thread.
pub(crate) fn raise_on_send(change: isize) {
    RAISE_ON_SEND.with(|count| count.set(count.get().saturating_add_signed(change)));
}

/// Whether robust sends on this thread re-raise.
pub(crate) fn raises_on_send() -> bool {
    RAISE_ON_SEND.with(|count| count.get() > 0)
}

/// A signal whose sends can be captured: its arguments (the any-sender view for type
/// signals) implement `Debug`. Sealed: implemented by every signal type whose arguments do.
pub trait Capturable: AnySignal + sealed::Render {}

impl<S: AnySignal + sealed::Render + ?Sized> Capturable for S {}

impl<S: Indexed> sealed::Render for S
where
    for<'a> <S::Captured as Shape>::Args<'a>: Debug,
{
    fn renderer(&self) -> Arc<dyn Any + Send + Sync> {
        Arc::new(RenderArgs::<S::Captured>(Box::new(|args| {
            format!("{args:?}")
        })))
    }
}

/// What [`Capturable`] needs of a signal, out of reach of other crates.
pub(crate) mod sealed {
    use std::any::Any;
    use std::sync::Arc;

    /// Renders a signal's arguments. Not public API.
    #[diagnostic::on_unimplemented(
        message = "the arguments of `{Self}` do not implement `Debug`",
        label = "its sends cannot be captured",
        note = "`capture` records each send's arguments with their `Debug`: derive it on the \
                argument struct (for a type signal, on its any-sender view)"
    )]
    pub trait Render {
        /// Renders a send's arguments; downcast by the send path of this signal's type.
        #[doc(hidden)]
        fn renderer(&self) -> Arc<dyn Any + Send + Sync>;
    }
}

/// Renders a send's arguments, of shape `Sh`, for the captures: what a signal's
/// [`renderer`](sealed::Render::renderer) is.
#[allow(clippy::type_complexity)] // a closure over every lifetime of the arguments
pub(crate) struct RenderArgs<Sh: Shape>(
    Box<dyn for<'a, 'b> Fn(&'b Sh::Args<'a>) -> String + Send + Sync>,
);

impl<Sh: Shape> RenderArgs<Sh> {
    pub(crate) fn render(&self, args: &Sh::Args<'_>) -> String {
        (self.0)(args)
    }
}

/// Locks `mutex`, also once a panic poisoned it: a capture's log and a watch's records are
/// whole between two edits, and a receiver's panic must not stop the next send's report.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One captured send.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Sent {
    /// The sender, `Debug`-formatted (a type's name for type signals), or `None` for a send
    /// without sender.
    pub sender: Option<String>,
    /// The arguments, `Debug`-formatted (`{:?}`).
    pub args: String,
    /// Each receiver the send reached and how it ended, in dispatch order, muted ones in
    /// place. For an async send: the plain receivers, then the async ones, as the send runs
    /// them.
    pub responses: Vec<(ReceiverInfo, Outcome)>,
    /// Whether the signal was muted on the sending thread, so that no receiver ran.
    pub muted: bool,
}

impl Sent {
    pub(crate) fn new(sender: Option<String>, muted: bool) -> Self {
        Self {
            sender,
            args: String::new(),
            responses: Vec::new(),
            muted,
        }
    }

    /// The names of the receivers that ran (and returned, failed or panicked), in order.
    #[must_use]
    pub fn ran(&self) -> Vec<&'static str> {
        self.responses
            .iter()
            .filter(|(_, outcome)| outcome.ran())
            .map(|(receiver, _)| receiver.name())
            .collect()
    }
}

/// How one receiver of a captured send ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// It returned a response.
    Ok,
    /// It returned an error, shown here.
    Failed(String),
    /// It panicked, with this message.
    Panicked(String),
    /// It was muted by [`mute_receiver`](crate::testing::mute_receiver) and did not run.
    Muted,
    /// It was a weak receiver whose target was dropped; it did not run.
    TargetDropped,
    /// It was an async receiver still running when the send stopped at another's error.
    Cancelled,
}

impl Outcome {
    /// Whether the receiver ran (returned, failed or panicked).
    #[must_use]
    pub fn ran(&self) -> bool {
        matches!(self, Self::Ok | Self::Failed(_) | Self::Panicked(_))
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ok => f.write_str("ok"),
            Self::Failed(error) => write!(f, "failed: {error}"),
            Self::Panicked(message) => write!(f, "panicked: {message}"),
            Self::Muted => f.write_str("muted"),
            Self::TargetDropped => f.write_str("weak target dropped"),
            Self::Cancelled => f.write_str("cancelled"),
        }
    }
}

/// Whether a send must look for watchers: a testing guard is alive on this thread, or a
/// subscriber may want `signals` events at `debug`. A relaxed load or two otherwise.
#[inline]
pub(crate) fn active() -> bool {
    guards_alive() || (tracing::level_enabled!(Level::DEBUG) && debug_enabled())
}

/// Whether a subscriber wants `signals` events at `debug`, once the global maximum level lets
/// them through: out of line, so that a send inlines only the loads of [`active`].
#[cold]
#[inline(never)]
fn debug_enabled() -> bool {
    tracing::enabled!(target: "signals", Level::DEBUG)
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
        let seen = seen(address);
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

    /// Records the arguments, of shape `Sh`, for the captures: `render` renders them with a
    /// capture's renderer.
    pub(crate) fn args<Sh: Shape>(&self, render: impl FnOnce(&RenderArgs<Sh>) -> String) {
        let Some(capture) = self.seen.captures.first() else {
            return;
        };
        if let Some(renderer) = capture.render.downcast_ref::<RenderArgs<Sh>>()
            && let Some(sent) = lock(&self.sent).as_mut()
        {
            sent.args = render(renderer);
        }
    }

    /// `steps` without the receivers muted on the sending thread, each wrapped to report how
    /// it ends.
    pub(crate) fn steps<'w, S: Info>(&'w self, steps: &'w [S]) -> Vec<Watched<'w, S>> {
        // The places of the responses: plain receivers, then async ones, as sends run them.
        *lock(&self.outcomes) = vec![None; steps.len()];
        let mut watched = Vec::with_capacity(steps.len());
        for (place, step) in in_start_order(steps).enumerate() {
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
        if lock(&self.sent).is_some() {
            lock(&self.outcomes)[place] = Some((info.clone(), outcome));
        }
    }

    /// Reports a receiver's panic, and resumes it.
    fn panicked(&self, place: usize, info: &ReceiverInfo, payload: Box<dyn Any + Send>) -> ! {
        self.ended(place, info, Outcome::Panicked(panic_message(&*payload)));
        resume_unwind(payload)
    }
}

impl Drop for Watch {
    /// Hands the recorded send to the captures, also when a receiver's panic unwinds the send.
    fn drop(&mut self) {
        let Some(mut sent) = lock(&self.sent).take() else {
            return;
        };
        sent.responses = lock(&self.outcomes).drain(..).flatten().collect();
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
    fn report<O>(&self, result: Option<&Result<O, BoxError>>) {
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

    fn alive(&self) -> bool {
        self.step.alive()
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

    fn poll(self: Pin<&mut Self>, task: &mut Context<'_>) -> Poll<Self::Output> {
        // `Reported` is `Unpin` (its future is boxed): its fields are borrowed apart, so that the
        // span stays entered while the future is polled and cleared.
        let this = self.get_mut();
        let _receiving = this.span.enter();
        let Some(future) = this.future.as_mut() else {
            panic!("a receiver's future was polled after it completed");
        };
        match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(task))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(result)) => {
                this.future = None;
                this.watch.ended(this.place, this.info, ran(Some(&result)));
                Poll::Ready(result)
            }
            Err(payload) => {
                this.future = None;
                this.watch.panicked(this.place, this.info, payload)
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
