//! Value-sender signals: [`Signal`], declared by a [`Signature`], whose sender is a value such
//! as an enum variant (`SiloMode::Monolith`), a `&'static str` or an integer id.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::connect::{Connection, Disconnect};
use crate::connector::{Connector, NewReceiver, Target};
use crate::dispatch::Responses;
use crate::dispatch::{self, Reporter, Run, RunAsync, ToEmit, ToSend, ToSendRobust};
use crate::error::{ReceiverError, SendError};
use crate::explain::Explain;
use crate::info::ReceiverInfo;
use crate::mode::{Async, Durable, Mode, Plain};
use crate::raw::{Pin, StaticCallable};
use crate::receiver::{AsyncReceiverFn, Cx, IntoResponse};
use crate::registry::{
    self, AsyncReceivers, Base, Indexed, ReceiverEntry, Registration, SenderKind, SignalKind,
    ValueSenders,
};
use crate::routes::{ValueReceiver, ValueRoutes};
use crate::signature::{Signature, ValueShape};
use crate::table::{Core, Record, SenderKey, summary};
use crate::watch::{self, Watch};
use tracing::Instrument;

/// One send's sender and arguments, as its receivers are called with them.
type ValueCx<'r, 'a, F> = Cx<'r, 'a, ValueShape<F>>;

/// A value signal's table.
type ValueCore<F> = Core<<F as Signature>::Sender, ValueReceiver<F>, ValueRoutes<F>>;

/// A signal whose sender is a value of `F::Sender`.
///
/// Declare it as a `static` (see [`Signature`]); receivers are connected at link time by
/// `#[receiver]` or at run time with [`connect`](Self::connect). A `Signal` is `Sync`: any
/// thread may send, connect and disconnect at any time, and sends never wait for each other
/// or for connects.
///
/// ```
/// # use signals::{Signal, Signature};
/// # #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)] pub enum SiloMode { Monolith, Region }
/// # pub struct PostUpgrade { pub interactive: bool }
/// # pub enum PostUpgradeSignal {}
/// # impl Signature for PostUpgradeSignal { type Args<'a> = PostUpgrade; type Sender = SiloMode; type Output = (); }
/// # #[allow(non_upper_case_globals)]
/// # pub static post_upgrade: Signal<PostUpgradeSignal> = Signal::new("post_upgrade");
/// let created = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
/// let seen = created.clone();
/// post_upgrade
///     .connector()
///     .sender(SiloMode::Monolith)
///     .dispatch_uid("create_first_user")
///     .connect(move |_, args: &PostUpgrade| {
///         if args.interactive {
///             seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
///         }
///     });
///
/// post_upgrade.send(&SiloMode::Region, &PostUpgrade { interactive: true })?;   // not this sender
/// post_upgrade.send(&SiloMode::Monolith, &PostUpgrade { interactive: true })?; // runs
/// assert_eq!(created.load(std::sync::atomic::Ordering::SeqCst), 1);
/// # Ok::<(), signals::SendError>(())
/// ```
pub struct Signal<F: Signature, D: Mode = Plain> {
    core: Base<F::Sender, ValueReceiver<F>, ValueRoutes<F>>,
    _mode: PhantomData<fn() -> D>,
}

impl<F: Signature, D: Mode> Signal<F, D> {
    /// A signal named `name` (used in logs, errors and introspection).
    #[must_use]
    pub const fn new(name: &'static str) -> Self {
        Self {
            core: Base::new(name),
            _mode: PhantomData,
        }
    }

    /// The signal's name.
    #[must_use]
    pub fn name(&self) -> &'static str {
        self.core.name()
    }

    /// Whether any live receiver would run for `sender` (`None`: for a send without sender).
    pub fn has_listeners<'s>(&self, sender: impl Into<Option<&'s F::Sender>>) -> bool {
        self.core().has_listeners(sender.into())
    }

    /// The live receivers that would run for `sender`, in dispatch order.
    pub fn receivers<'s>(&self, sender: impl Into<Option<&'s F::Sender>>) -> Vec<ReceiverInfo> {
        self.core().receivers(sender.into())
    }

    /// Connects `receiver` for any sender, without `dispatch_uid`; see
    /// [`connector`](Self::connector) for the options.
    ///
    /// A receiver takes the sender (`Option<&F::Sender>`) and the arguments, and returns the
    /// output or `Result<output, E>`. A `fn` or a closure that captures nothing is identified
    /// by its code, so connecting the same one twice is a no-op, as in Django; closures with
    /// captures are distinct receivers each time.
    #[track_caller]
    pub fn connect<C, R>(&self, receiver: C) -> Connection
    where
        C: for<'s, 'r, 'a> Fn(Option<&'s F::Sender>, &'r F::Args<'a>) -> R + Send + Sync + 'static,
        R: IntoResponse<F::Output> + 'static,
    {
        self.connector().connect(receiver)
    }

    /// Connects `receiver` for any sender, holding `target` weakly: the receiver is called with
    /// `&T` while `target` is alive, stops firing once it is dropped, and is then purged.
    #[track_caller]
    pub fn connect_weak<T, C, R>(&self, target: &Arc<T>, receiver: C) -> Connection
    where
        T: Send + Sync + 'static,
        C: for<'t, 's, 'r, 'a> Fn(&'t T, Option<&'s F::Sender>, &'r F::Args<'a>) -> R
            + Send
            + Sync
            + 'static,
        R: IntoResponse<F::Output> + 'static,
    {
        self.connector().connect_weak(target, receiver)
    }

    /// A builder to connect a receiver with a sender, a `dispatch_uid`, weakly or scoped (and,
    /// on an async signal, an async receiver).
    pub fn connector(&self) -> Connector<'_, ValueTarget<'_, F, D>> {
        Connector::new(ValueTarget {
            signal: self,
            sender: None,
        })
    }

    /// Disconnects the receiver `connect` returned `connection` for; returns whether it was
    /// connected.
    ///
    /// Sends that already started still run it (snapshot semantics). Its closure, with what it
    /// captures, is freed when no snapshot holds it any more: by the next send of the signal,
    /// which replaces the snapshot, or, if sends that read the old snapshot are still running
    /// on other threads, by the last of them, when it ends; [`Responses`] of a sync `send` or
    /// `send_robust` keep the snapshot they ran until they are dropped. The same holds for
    /// every way of disconnecting, on every kind of signal.
    pub fn disconnect(&self, connection: Connection) -> bool {
        self.core().disconnect(connection)
    }

    /// Disconnects the receiver connected with `dispatch_uid` for exactly `sender` (`None`:
    /// the any-sender one), static receivers included; returns whether one was.
    pub fn disconnect_uid<'s>(
        &self,
        dispatch_uid: &str,
        sender: impl Into<Option<&'s F::Sender>>,
    ) -> bool {
        self.core().disconnect_uid(dispatch_uid, sender.into())
    }

    /// Disconnects `receiver`, connected without `dispatch_uid` for exactly `sender` (`None`:
    /// its any-sender connection), as Django's `disconnect(receiver, sender)`; returns whether
    /// it was connected. A `fn`, or a closure that captures nothing, is identified by its
    /// code, so passing the same function names it. A closure that captures has no identity:
    /// nothing matches it (keep its [`Connection`] instead), nor does a receiver connected with
    /// a `dispatch_uid` (use [`disconnect_uid`](Self::disconnect_uid)) or bound to a weak target.
    ///
    /// ```
    /// # use signals::{Signal, Signature};
    /// # enum Upgraded {}
    /// # impl Signature for Upgraded { type Args<'a> = (); type Sender = u8; type Output = (); }
    /// # #[allow(non_upper_case_globals)]
    /// # static upgraded: Signal<Upgraded> = Signal::new("upgraded");
    /// fn audit(_: Option<&u8>, _: &()) {}
    ///
    /// upgraded.connector().sender(1).connect(audit);
    /// upgraded.connector().sender(2).connect(audit);
    /// assert!(upgraded.disconnect_receiver(audit, &1));
    /// assert!(!upgraded.disconnect_receiver(audit, &1), "already gone");
    /// assert_eq!(upgraded.disconnect_receiver_everywhere(audit), 1, "the one for sender 2");
    /// assert!(upgraded.connections().is_empty());
    /// ```
    pub fn disconnect_receiver<'s, C: 'static>(
        &self,
        receiver: C,
        sender: impl Into<Option<&'s F::Sender>>,
    ) -> bool {
        drop(receiver); // its type is its identity
        self.core().disconnect_code::<C>(sender.into())
    }

    /// Disconnects `receiver` for every sender it is connected for (blinker's
    /// `disconnect(receiver)`); returns how many connections it removed. Receivers are
    /// identified as for [`disconnect_receiver`](Self::disconnect_receiver).
    pub fn disconnect_receiver_everywhere<C: 'static>(&self, receiver: C) -> usize {
        drop(receiver); // its type is its identity
        self.core().disconnect_code_everywhere::<C>()
    }

    /// Every live receiver, static and runtime, for every sender, in dispatch order, each with
    /// the sender it listens to ([`ReceiverEntry::sender`]).
    #[must_use]
    pub fn connections(&self) -> Vec<ReceiverEntry> {
        Indexed::connections(self)
    }

    /// Starts watching a send (see [`watch`]) and records its arguments for the captures.
    fn watch(&self, cx: &ValueCx<'_, '_, F>) -> Watch {
        let sender = cx.sender.map(|sender| sender as &dyn fmt::Debug);
        let watch = Watch::begin(self.name(), registry::address(self), sender);
        watch.args::<ValueShape<F>>(|render| render.render(cx.args));
        watch
    }

    /// A sync send while someone watches: nothing if the signal is muted on this thread,
    /// otherwise the receivers that are not muted, inside the send's span.
    #[cold]
    #[inline(never)]
    fn watched<Op: Run<F::Output>>(&self, core: &ValueCore<F>, cx: &ValueCx<'_, '_, F>) -> Op::Out {
        let watch = self.watch(cx);
        if watch.muted() {
            return Op::nothing();
        }
        let _entered = watch.span().enter();
        let reporter = Reporter::new(self.name(), core);
        let mut pin = Pin::enter();
        if let Some(error) = dispatch::refused(&pin, self.name()) {
            return Op::too_deep(error);
        }
        let routes = core.routes(&mut pin);
        Op::run(&watch.steps(routes.route(cx.sender)), cx, &reporter)
    }

    /// A sync send, `Op` saying which. The early return for a signal without receivers is
    /// inlined into the caller, so that a send nobody listens to costs a few loads, no call.
    #[inline]
    fn dispatch<Op: Run<F::Output>>(&self, cx: ValueCx<'_, '_, F>) -> Op::Out {
        let loaded = self.core.get().map(|core| (core, core.summary()));
        if loaded.is_some_and(|(_, summary)| summary == 0) && !watch::active() {
            return Op::nothing();
        }
        self.dispatch_from::<Op>(loaded, cx)
    }

    /// The send past the early return, out of line so that callers inline only the check.
    /// `loaded` is the table and its summary as the check loaded them (`None`: the signal's
    /// first use, which builds the table).
    #[inline(never)]
    fn dispatch_from<Op: Run<F::Output>>(
        &self,
        loaded: Option<(&ValueCore<F>, u64)>,
        cx: ValueCx<'_, '_, F>,
    ) -> Op::Out {
        let (core, summary) = loaded.unwrap_or_else(|| {
            let core = self.core();
            (core, core.summary())
        });
        if watch::active() {
            return self.watched::<Op>(core, &cx);
        }
        if !summary::may_reach(summary, cx.sender) {
            return Op::nothing();
        }
        let reporter = Reporter::new(self.name(), core);
        let mut pin = Pin::enter();
        if let Some(error) = dispatch::refused(&pin, self.name()) {
            return Op::too_deep(error);
        }
        if Op::KEEPS {
            let sender = cx.sender;
            return Op::run_kept(
                core.routes_kept(&mut pin),
                move |routes| routes.route(sender),
                &cx,
                &reporter,
            );
        }
        let routes = core.routes(&mut pin);
        Op::run(routes.route(cx.sender), &cx, &reporter)
    }
}

impl<F: Signature, D: Mode> Explain for Signal<F, D> {
    type Sender<'s> = Option<&'s F::Sender>;

    fn sender_key(sender: Self::Sender<'_>) -> Option<SenderKey> {
        sender.map(SenderKey::of)
    }
}

impl<F: Signature> Signal<F> {
    /// Runs the receivers connected to `sender` and to any sender, in dispatch order, and
    /// collects their outputs. `sender` is `&value`, or `None` to reach only the any-sender
    /// receivers (Django's `send(sender=None)`).
    ///
    /// # Errors
    ///
    /// The first receiver that returns `Err` stops the send; the error
    /// ([`SendError::Failed`]) names it. The receivers after it do not run. A panicking
    /// receiver's panic propagates. A send nested in other sends on this thread so deep that
    /// too little stack is left runs no receiver: [`SendError::TooDeep`].
    #[inline]
    pub fn send<'s>(
        &self,
        sender: impl Into<Option<&'s F::Sender>>,
        args: &F::Args<'_>,
    ) -> Result<Responses<F::Output>, SendError> {
        self.dispatch::<ToSend>(Cx::new(sender.into(), args))
    }

    /// Runs every receiver connected to `sender` and to any sender, whatever the others do.
    /// A receiver's `Err` or panic is logged as a `signal.failure` `tracing` event and
    /// recorded in place of its output; the next receiver still runs.
    ///
    /// Under [`testing::raise_on_send`](crate::testing::raise_on_send) the first failure is
    /// raised as a panic instead. A send nested too deep (see [`SendError::TooDeep`]) panics,
    /// having no error to return.
    #[inline]
    pub fn send_robust<'s>(
        &self,
        sender: impl Into<Option<&'s F::Sender>>,
        args: &F::Args<'_>,
    ) -> Responses<Result<F::Output, ReceiverError>> {
        self.dispatch::<ToSendRobust>(Cx::new(sender.into(), args))
    }

    /// Like [`send`](Self::send), without collecting responses: for signals whose receivers
    /// return `()`. In steady state it allocates nothing unless a receiver fails; the first
    /// send after connects or disconnects rebuilds the snapshot (a few allocations per
    /// dispatch list), and a thread's first send may allocate once.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    #[inline]
    pub fn emit<'s>(
        &self,
        sender: impl Into<Option<&'s F::Sender>>,
        args: &F::Args<'_>,
    ) -> Result<(), SendError>
    where
        F: Signature<Output = ()>,
    {
        self.dispatch::<ToEmit>(Cx::new(sender.into(), args))
    }
}

impl<F: Signature, D: Mode> Indexed for Signal<F, D> {
    type Key = F::Sender;
    type Receiver = ValueReceiver<F>;
    type Routes = ValueRoutes<F>;
    type Captured = ValueShape<F>;

    fn sender_kind() -> SenderKind {
        SenderKind::Value(std::any::type_name::<F::Sender>())
    }

    fn base(&self) -> &Base<F::Sender, ValueReceiver<F>, ValueRoutes<F>> {
        &self.core
    }
}

#[diagnostic::do_not_recommend]
impl<F: Signature, D: Mode> SignalKind for Signal<F, D> {
    type AnyShape = ValueShape<F>;

    fn adopt_any<K: Mode, C: StaticCallable<ValueShape<F>, K>>(
        registration: &'static Registration,
        out: &mut dyn Any,
    ) {
        Self::adopt::<K, C>(registration, out);
    }
}

#[diagnostic::do_not_recommend]
impl<F: Signature, D: Mode> ValueSenders for Signal<F, D> {
    type Sender = F::Sender;
    type Shape = ValueShape<F>;

    fn adopt<K: Mode, C: StaticCallable<ValueShape<F>, K>>(
        registration: &'static Registration,
        out: &mut dyn Any,
    ) {
        registry::adopt(
            out,
            registration.sender_value::<F::Sender>(),
            registration.receiver::<ValueShape<F>, K, C>(),
        );
    }
}

impl<F: Signature, D: Mode> fmt::Debug for Signal<F, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.debug("Signal", f)
    }
}

/// Where a value signal's [`Connector`] connects: the signal, and the sender picked, if any.
pub struct ValueTarget<'s, F: Signature, D: Mode> {
    signal: &'s Signal<F, D>,
    sender: Option<F::Sender>,
}

impl<'s, F: Signature, D: Mode> Target<'s> for ValueTarget<'s, F, D> {
    type Shape = ValueShape<F>;
    type Mode = D;

    fn add(self, receiver: NewReceiver<ValueShape<F>>) -> Connection {
        let NewReceiver { entry } = receiver;
        self.signal.core().connect(Record::new(self.sender, entry))
    }

    fn signal(&self) -> &'s dyn Disconnect {
        self.signal
    }
}

impl<'s, F: Signature, D: Mode> Connector<'s, ValueTarget<'s, F, D>> {
    /// Fire only for sends from `sender` (default: any sender).
    pub fn sender(mut self, sender: F::Sender) -> Self {
        self.target.sender = Some(sender);
        self
    }
}

impl<F: Signature, D: Mode> fmt::Debug for ValueTarget<'_, F, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValueTarget")
            .field("signal", &self.signal.name())
            .field("sender", &self.sender)
            .finish()
    }
}

/// A value-sender signal whose receivers may be `async fn`: `send(..).await`.
///
/// Declared like a [`Signal`] (with `async Signal<..>` in `signal!`). It accepts plain and
/// async receivers. A send runs the plain receivers first, in dispatch order, on the task that
/// awaits it; then it starts every async receiver and awaits them concurrently, in that task
/// (no executor is needed: it works under any runtime or a plain `block_on`). Responses list
/// the plain receivers, then the async ones, each group in dispatch order, as Django's `asend`.
/// Async receivers' futures must be `Send`.
///
/// ```
/// use signals::{AsyncSignal, Signature};
/// # enum Checkin {}
/// # impl Signature for Checkin { type Args<'a> = &'a str; type Sender = u64; type Output = usize; }
/// static checkin: AsyncSignal<Checkin> = AsyncSignal::new("checkin");
///
/// checkin.connect(|_, slug: &&str| slug.len());
/// checkin.connect_async(|_, slug: &&str| Box::pin(async move { slug.len() * 2 }));
/// let responses = futures_lite_block_on(checkin.send(&7, &"cron"));
/// assert_eq!(responses.unwrap().into_outputs(), [4, 8]);
/// # fn futures_lite_block_on<T>(f: impl std::future::Future<Output = T>) -> T {
/// #     let mut f = std::pin::pin!(f);
/// #     let waker = std::task::Waker::noop();
/// #     loop {
/// #         if let std::task::Poll::Ready(t) = f.as_mut().poll(&mut std::task::Context::from_waker(&waker)) { return t; }
/// #     }
/// # }
/// ```
pub type AsyncSignal<F> = Signal<F, Async>;

impl<F: Signature> AsyncSignal<F> {
    /// Runs the receivers of `sender` and of any sender: the plain ones in order, then the
    /// async ones concurrently. See [`AsyncSignal`] for the order of the responses.
    ///
    /// # Errors
    ///
    /// The first receiver to return `Err` stops the send (the async receivers still running
    /// are dropped); the error names it. Panics propagate.
    pub async fn send<'s>(
        &self,
        sender: impl Into<Option<&'s F::Sender>>,
        args: &F::Args<'_>,
    ) -> Result<Responses<F::Output>, SendError> {
        self.dispatch_async::<ToSend>(Cx::new(sender.into(), args))
            .await
    }

    /// Runs every receiver of `sender` and of any sender, whatever the others do: an `Err` or a
    /// panic (of a plain receiver, or of an async one while it is polled) is logged as
    /// `signal.failure` and recorded in place of its output; the other receivers complete.
    pub async fn send_robust<'s>(
        &self,
        sender: impl Into<Option<&'s F::Sender>>,
        args: &F::Args<'_>,
    ) -> Responses<Result<F::Output, ReceiverError>> {
        self.dispatch_async::<ToSendRobust>(Cx::new(sender.into(), args))
            .await
    }

    /// An async send, `Op` saying which.
    async fn dispatch_async<Op: RunAsync<F::Output>>(&self, cx: ValueCx<'_, '_, F>) -> Op::Out {
        let core = self.core();
        if watch::active() {
            let watch = self.watch(&cx);
            if watch.muted() {
                return Op::nothing();
            }
            let routes = core.routes_full();
            let steps = watch.steps(routes.route(cx.sender));
            let reporter = Reporter::new(self.name(), core);
            let send = Op::run_async(&steps, &cx, &reporter);
            return send.instrument(watch.span().clone()).await;
        }
        if !core.may_reach(cx.sender) {
            return Op::nothing();
        }
        let routes = core.routes_full();
        let reporter = Reporter::new(self.name(), core);
        Op::run_async(routes.route(cx.sender), &cx, &reporter).await
    }

    /// Connects the async `receiver` for any sender; see [`Connector::connect_async`].
    #[track_caller]
    pub fn connect_async<C, R>(&self, receiver: C) -> Connection
    where
        C: AsyncReceiverFn<ValueShape<F>, R>,
        R: IntoResponse<F::Output> + 'static,
    {
        self.connector().connect_async(receiver)
    }
}

#[diagnostic::do_not_recommend]
impl<F: Signature> AsyncReceivers for AsyncSignal<F> {}

/// A value-sender signal whose sends are stored in the sender's database transaction and
/// delivered after it commits, at least once, by the outbox's workers (`signals::outbox`, with
/// the `outbox` feature): `enqueue(&tx, sender, &args)` instead of `send`.
///
/// Declared with `durable Signal<..>` in `signal!`; its receivers are ordinary plain
/// `#[receiver]`s. It has no `send`: a durable send that skipped the database would lose the
/// guarantee the mode exists for. The worker runs the receivers with [`deliver`](Self::deliver).
pub type DurableSignal<F> = Signal<F, Durable>;

impl<F: Signature> DurableSignal<F> {
    /// Runs the receivers of `sender` and of any sender now, in dispatch order, as
    /// [`Signal::send`] does: what the outbox's worker calls for each stored message. An
    /// application calls `enqueue` instead.
    ///
    /// # Errors
    ///
    /// As [`Signal::send`]: the first receiver that returns `Err` stops the delivery, and the
    /// outbox keeps the message to retry it.
    pub fn deliver(
        &self,
        sender: &F::Sender,
        args: &F::Args<'_>,
    ) -> Result<Responses<F::Output>, SendError> {
        self.dispatch::<ToSend>(Cx::new(Some(sender), args))
    }
}

#[cfg(test)]
mod tests;
