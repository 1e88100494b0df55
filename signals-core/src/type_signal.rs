//! Type-sender signals: [`TypeSignal`], whose sender is a Rust type, as Django's
//! `sender=User` is a model class. The signal is a family over the sender type `M`: its
//! argument struct may mention `M`, so a receiver for `User` gets `&User`, typed.
//!
//! Receivers for one sender type see `<F as SentBy<M>>::Args`; any-sender receivers cannot
//! know `M` and see the family's sender-independent view, [`TypeSignature::AnyArgs`], made by
//! [`SentBy::any_args`] (for instance the same struct over `dyn Model`).

use std::any::{Any, type_name};
use std::fmt;
use std::marker::PhantomData;

use crate::connect::{Connection, Disconnect};
use crate::connector::{Connector, NewReceiver, Target};
use crate::dispatch::{self, Reporter, Responses, Run, RunAsync, ToEmit, ToSend, ToSendRobust};
use crate::error::{ReceiverError, SendError};
use crate::explain::Explain;
use crate::info::ReceiverInfo;
use crate::mode::{Async, Mode, Plain};
use crate::raw::{Pin, StaticCallable};
use crate::receiver::{IntoResponse, TypeSender};
use crate::registry::{
    self, AsyncReceivers, Base, Indexed, ReceiverEntry, Registration, SenderKind, SignalKind,
    TypeSenders,
};
use crate::routes::{TypeReceiver, TypeRoutes, any_cx, typed_cx, typed_list};
use crate::signature::{AnyTypeShape, SentBy, TypeSignature, TypedShape};
use crate::table::{Core, Record, SenderKey, summary};
use crate::watch::{self, Watch};
use tracing::Instrument;

/// A type signal's table.
type TypeCore<F> = Core<TypeSender, TypeReceiver<F>, TypeRoutes<F>>;

/// A signal whose sender is a type: `post_save.send::<User>(&args)`.
///
/// Declared by a [`TypeSignature`] and its [`SentBy`] impls, or with `signal!` and
/// `sender = type M`. Any-sender receivers get the family's
/// [`AnyArgs`](TypeSignature::AnyArgs) view; receivers for one type get that type's
/// arguments. `Sync`, with the same guarantees as [`Signal`](crate::Signal).
///
/// ```
/// use signals::{receiver, signal, TypeSender};
///
/// pub trait Model: Sync { fn table(&self) -> &'static str; }
/// pub struct User { pub email: String }
/// impl Model for User { fn table(&self) -> &'static str { "auth_user" } }
///
/// pub struct PostSave<'a, M: ?Sized> { pub instance: &'a M, pub created: bool }
/// impl<'b, 'x: 'b, M: Model + 'static> From<&'b PostSave<'x, M>> for PostSave<'b, dyn Model> {
///     fn from(args: &'b PostSave<'x, M>) -> Self {
///         PostSave { instance: args.instance, created: args.created }
///     }
/// }
///
/// signal! {
///     pub static post_save: Signal<
///         PostSave<'_, M>,
///         sender = type M: Model,
///         any = PostSave<'_, dyn Model>,
///         output = String,
///     >;
/// }
///
/// #[receiver(signal = post_save, sender = User)]
/// fn welcome(instance: &User, created: bool) -> String {
///     format!("welcome {} ({created})", instance.email)
/// }
///
/// #[receiver(signal = post_save)]
/// fn audit(sender: TypeSender, instance: &dyn Model) -> String {
///     format!("saved a row of {} ({})", instance.table(), sender.name().rsplit("::").next().unwrap())
/// }
///
/// let user = User { email: "ada@example.com".into() };
/// let outputs = post_save.send::<User>(&PostSave { instance: &user, created: true })?.into_outputs();
/// assert_eq!(outputs, ["welcome ada@example.com (true)", "saved a row of auth_user (User)"]);
/// # Ok::<(), signals::SendError>(())
/// ```
pub struct TypeSignal<F: TypeSignature, D: Mode = Plain> {
    core: Base<TypeSender, TypeReceiver<F>, TypeRoutes<F>>,
    _mode: PhantomData<fn() -> D>,
}

impl<F: TypeSignature, D: Mode> TypeSignal<F, D> {
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

    /// Starts watching a send from `M` (see [`watch`]) and records the any-sender view of its
    /// arguments for the captures.
    fn watch<M: 'static>(&self, sender: TypeSender, args: &<F as SentBy<M>>::Args<'_>) -> Watch
    where
        F: SentBy<M>,
    {
        let watch = Watch::begin(self.name(), registry::address(self), Some(&sender));
        watch.args::<AnyTypeShape<F>>(|render| render.render(&F::any_args(args)));
        watch
    }

    /// A sync send from `M` while someone watches: nothing if the signal is muted on this
    /// thread, otherwise the receivers that are not muted, inside the send's span.
    #[cold]
    #[inline(never)]
    fn watched<Op: Run<F::Output>, M: 'static>(
        &self,
        core: &TypeCore<F>,
        args: &<F as SentBy<M>>::Args<'_>,
    ) -> Op::Out
    where
        F: SentBy<M>,
    {
        let sender = TypeSender::of::<M>();
        let watch = self.watch::<M>(sender, args);
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
        match typed_list::<F, M>(routes, sender) {
            Some(list) => Op::run(&watch.steps(&list.0), &typed_cx(sender, args), &reporter),
            None => Op::run(
                &watch.steps(&routes.any),
                &any_cx::<F, M>(sender, args),
                &reporter,
            ),
        }
    }

    /// Whether any live receiver would run for `sender` (`None`: only any-sender receivers
    /// count).
    pub fn has_listeners(&self, sender: impl Into<Option<TypeSender>>) -> bool {
        self.core().has_listeners(sender.into().as_ref())
    }

    /// The live receivers that would run for `sender`, in dispatch order.
    pub fn receivers(&self, sender: impl Into<Option<TypeSender>>) -> Vec<ReceiverInfo> {
        self.core().receivers(sender.into().as_ref())
    }

    /// Connects `receiver` for sender type `M`, without `dispatch_uid`; see
    /// [`connector`](Self::connector) for the options.
    #[track_caller]
    pub fn connect<M: 'static, C, R>(&self, receiver: C) -> Connection
    where
        F: SentBy<M>,
        C: for<'r, 'a> Fn(TypeSender, &'r <F as SentBy<M>>::Args<'a>) -> R + Send + Sync + 'static,
        R: IntoResponse<F::Output> + 'static,
    {
        self.connector().sender::<M>().connect(receiver)
    }

    /// Connects `receiver` for any sender type; it gets the [`AnyArgs`](TypeSignature::AnyArgs)
    /// view of the arguments.
    #[track_caller]
    pub fn connect_any<C, R>(&self, receiver: C) -> Connection
    where
        C: for<'r, 'a> Fn(TypeSender, &'r F::AnyArgs<'a>) -> R + Send + Sync + 'static,
        R: IntoResponse<F::Output> + 'static,
    {
        self.connector().connect(receiver)
    }

    /// A builder to connect a receiver with a sender type, a `dispatch_uid`, weakly or scoped.
    /// Without [`sender`](Connector::sender) it connects for any sender.
    pub fn connector(&self) -> Connector<'_, AnyTypeTarget<'_, F, D>> {
        Connector::new(AnyTypeTarget { signal: self })
    }

    /// Disconnects the receiver `connect` returned `connection` for; returns whether it was
    /// connected.
    pub fn disconnect(&self, connection: Connection) -> bool {
        self.core().disconnect(connection)
    }

    /// Disconnects the receiver connected with `dispatch_uid` for exactly `sender` (`None`:
    /// the any-sender one), static receivers included; returns whether one was.
    pub fn disconnect_uid(
        &self,
        dispatch_uid: &str,
        sender: impl Into<Option<TypeSender>>,
    ) -> bool {
        self.core()
            .disconnect_uid(dispatch_uid, sender.into().as_ref())
    }

    /// Disconnects `receiver`, connected without `dispatch_uid` for exactly `sender`
    /// (`Some(TypeSender::of::<User>())`, or `None` for its any-sender connection); returns
    /// whether it was connected. Receivers are identified by their code, as for
    /// [`Signal::disconnect_receiver`](crate::Signal::disconnect_receiver).
    pub fn disconnect_receiver<C: 'static>(
        &self,
        receiver: C,
        sender: impl Into<Option<TypeSender>>,
    ) -> bool {
        drop(receiver); // its type is its identity
        self.core().disconnect_code::<C>(sender.into().as_ref())
    }

    /// Disconnects `receiver` for every sender type it is connected for; returns how many
    /// connections it removed.
    pub fn disconnect_receiver_everywhere<C: 'static>(&self, receiver: C) -> usize {
        drop(receiver); // its type is its identity
        self.core().disconnect_code_everywhere::<C>()
    }

    /// Every live receiver, static and runtime, for every sender type, in dispatch order, each
    /// with the sender it listens to ([`ReceiverEntry::sender`]).
    #[must_use]
    pub fn connections(&self) -> Vec<ReceiverEntry> {
        Indexed::connections(self)
    }
}

impl<F: TypeSignature> TypeSignal<F> {
    /// Runs, in dispatch order, the receivers connected to sender type `M` and to any sender,
    /// and collects their outputs.
    ///
    /// # Errors
    ///
    /// The first receiver that returns `Err` stops the send; the error names it. A panicking
    /// receiver's panic propagates.
    #[inline]
    pub fn send<M: 'static>(
        &self,
        args: &<F as SentBy<M>>::Args<'_>,
    ) -> Result<Responses<F::Output>, SendError>
    where
        F: SentBy<M>,
    {
        self.dispatch::<ToSend, M>(args)
    }

    /// Runs every receiver connected to sender type `M` and to any sender, whatever the others
    /// do; failures are logged as `signal.failure` and recorded in place of the output. See
    /// [`Signal::send_robust`](crate::Signal::send_robust).
    #[inline]
    pub fn send_robust<M: 'static>(
        &self,
        args: &<F as SentBy<M>>::Args<'_>,
    ) -> Responses<Result<F::Output, ReceiverError>>
    where
        F: SentBy<M>,
    {
        self.dispatch::<ToSendRobust, M>(args)
    }

    /// A sync send from `M`, `Op` saying which; as for value signals, the early return for a
    /// signal without receivers is inlined into the caller.
    #[inline]
    fn dispatch<Op: Run<F::Output>, M: 'static>(&self, args: &<F as SentBy<M>>::Args<'_>) -> Op::Out
    where
        F: SentBy<M>,
    {
        let loaded = self.core.get().map(|core| (core, core.summary()));
        if loaded.is_some_and(|(_, summary)| summary == 0) && !watch::active() {
            return Op::nothing();
        }
        self.dispatch_from::<Op, M>(loaded, args)
    }

    /// The send past the early return, out of line so that callers inline only the check.
    /// `loaded` is the table and its summary as the check loaded them (`None`: the signal's
    /// first use, which builds the table).
    #[inline(never)]
    fn dispatch_from<Op: Run<F::Output>, M: 'static>(
        &self,
        loaded: Option<(&TypeCore<F>, u64)>,
        args: &<F as SentBy<M>>::Args<'_>,
    ) -> Op::Out
    where
        F: SentBy<M>,
    {
        let (core, summary) = loaded.unwrap_or_else(|| {
            let core = self.core();
            (core, core.summary())
        });
        let sender = TypeSender::of::<M>();
        if watch::active() {
            return self.watched::<Op, M>(core, args);
        }
        if !summary::may_reach(summary, Some(&sender)) {
            return Op::nothing();
        }
        let reporter = Reporter::new(self.name(), core);
        let mut pin = Pin::enter();
        if let Some(error) = dispatch::refused(&pin, self.name()) {
            return Op::too_deep(error);
        }
        if Op::KEEPS {
            let routes = core.routes_kept(&mut pin);
            return if typed_list::<F, M>(&routes, sender).is_some() {
                Op::run_kept(
                    routes,
                    move |routes| {
                        typed_list::<F, M>(routes, sender).map_or(&[][..], |list| &list.0)
                    },
                    &typed_cx(sender, args),
                    &reporter,
                )
            } else {
                Op::run_kept(
                    routes,
                    |routes| &routes.any,
                    &any_cx::<F, M>(sender, args),
                    &reporter,
                )
            };
        }
        let routes = core.routes(&mut pin);
        match typed_list::<F, M>(routes, sender) {
            Some(list) => Op::run(&list.0, &typed_cx(sender, args), &reporter),
            None => Op::run(&routes.any, &any_cx::<F, M>(sender, args), &reporter),
        }
    }

    /// Like [`send`](Self::send), without collecting responses. In steady state it allocates
    /// nothing unless a receiver fails; see [`Signal::emit`](crate::Signal::emit).
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    #[inline]
    pub fn emit<M: 'static>(&self, args: &<F as SentBy<M>>::Args<'_>) -> Result<(), SendError>
    where
        F: SentBy<M> + TypeSignature<Output = ()>,
    {
        self.dispatch::<ToEmit, M>(args)
    }
}

impl<F: TypeSignature, D: Mode> Indexed for TypeSignal<F, D> {
    type Key = TypeSender;
    type Receiver = TypeReceiver<F>;
    type Routes = TypeRoutes<F>;
    type Captured = AnyTypeShape<F>;

    fn sender_kind() -> SenderKind {
        SenderKind::Type
    }

    fn base(&self) -> &Base<TypeSender, TypeReceiver<F>, TypeRoutes<F>> {
        &self.core
    }
}

impl<F: TypeSignature, D: Mode> Explain for TypeSignal<F, D> {
    type Sender<'s> = Option<TypeSender>;

    fn sender_key(sender: Option<TypeSender>) -> Option<SenderKey> {
        sender.as_ref().map(SenderKey::of)
    }
}

#[diagnostic::do_not_recommend]
impl<F: TypeSignature, D: Mode> SignalKind for TypeSignal<F, D> {
    type AnyShape = AnyTypeShape<F>;

    fn adopt_any<K: Mode, C: StaticCallable<AnyTypeShape<F>, K>>(
        registration: &'static Registration,
        out: &mut dyn Any,
    ) {
        registry::adopt::<TypeSender, _>(
            out,
            None,
            TypeReceiver::<F>::Any(registration.receiver::<AnyTypeShape<F>, K, C>()),
        );
    }
}

#[diagnostic::do_not_recommend]
impl<F: SentBy<M>, M: 'static, D: Mode> TypeSenders<M> for TypeSignal<F, D> {
    type Shape = TypedShape<F, M>;

    fn adopt<K: Mode, C: StaticCallable<TypedShape<F, M>, K>>(
        registration: &'static Registration,
        out: &mut dyn Any,
    ) {
        registry::adopt(
            out,
            Some(TypeSender::of::<M>()),
            TypeReceiver::typed(registration.receiver::<TypedShape<F, M>, K, C>()),
        );
    }
}

impl<F: TypeSignature, D: Mode> fmt::Debug for TypeSignal<F, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.debug("TypeSignal", f)
    }
}

/// Where a type signal's [`Connector`] connects when no sender type is picked: its
/// any-sender receivers.
pub struct AnyTypeTarget<'s, F: TypeSignature, D: Mode> {
    signal: &'s TypeSignal<F, D>,
}

/// Where a type signal's [`Connector`] connects once [`sender`](Connector::sender) picked the
/// sender type `M`.
pub struct TypeTarget<'s, F: TypeSignature, M, D: Mode> {
    signal: &'s TypeSignal<F, D>,
    _sender: PhantomData<fn() -> M>,
}

impl<'s, F: TypeSignature, D: Mode> Target<'s> for AnyTypeTarget<'s, F, D> {
    type Shape = AnyTypeShape<F>;
    type Mode = D;

    fn add(self, receiver: NewReceiver<AnyTypeShape<F>>) -> Connection {
        let NewReceiver { entry } = receiver;
        self.signal
            .core()
            .connect(Record::new(None, TypeReceiver::Any(entry)))
    }

    fn signal(&self) -> &'s dyn Disconnect {
        self.signal
    }
}

impl<'s, F: SentBy<M>, M: 'static, D: Mode> Target<'s> for TypeTarget<'s, F, M, D> {
    type Shape = TypedShape<F, M>;
    type Mode = D;

    fn add(self, receiver: NewReceiver<TypedShape<F, M>>) -> Connection {
        let NewReceiver { entry } = receiver;
        let sender = Some(TypeSender::of::<M>());
        self.signal
            .core()
            .connect(Record::new(sender, TypeReceiver::typed::<M>(entry)))
    }

    fn signal(&self) -> &'s dyn Disconnect {
        self.signal
    }
}

impl<'s, F: TypeSignature, D: Mode> Connector<'s, AnyTypeTarget<'s, F, D>> {
    /// Fire only for sends by the sender type `M` (default: any sender type), whose
    /// receivers get `M`'s own arguments.
    pub fn sender<M: 'static>(self) -> Connector<'s, TypeTarget<'s, F, M, D>>
    where
        F: SentBy<M>,
    {
        let signal = self.target.signal;
        self.retarget(TypeTarget {
            signal,
            _sender: PhantomData,
        })
    }
}

impl<F: TypeSignature, D: Mode> fmt::Debug for AnyTypeTarget<'_, F, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnyTypeTarget")
            .field("signal", &self.signal.name())
            .finish()
    }
}

impl<F: TypeSignature, M, D: Mode> fmt::Debug for TypeTarget<'_, F, M, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypeTarget")
            .field("signal", &self.signal.name())
            .field("sender", &type_name::<M>())
            .finish()
    }
}

/// A type-sender signal whose receivers may be `async fn`: `send::<M>(..).await`. See
/// [`AsyncSignal`](crate::AsyncSignal) for how a send runs plain and async receivers.
///
/// ```
/// use signals::{receiver, signal};
///
/// pub struct Project { pub slug: String }
/// pub struct FirstEvent<'a, M> { pub project: &'a M }
///
/// signal! {
///     pub static first_event_received: async Signal<FirstEvent<'_, M>, sender = type M, output = usize>;
/// }
///
/// #[receiver(signal = first_event_received, sender = Project)]
/// async fn record_first_event(project: &Project) -> usize {
///     project.slug.len() // an async receiver may await here
/// }
///
/// let project = Project { slug: "internal".into() };
/// let args = FirstEvent { project: &project };
/// let send = first_event_received.send::<Project>(&args);
/// # fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
/// #     let mut f = std::pin::pin!(f);
/// #     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
/// #     loop { if let std::task::Poll::Ready(t) = f.as_mut().poll(&mut cx) { return t; } }
/// # }
/// assert_eq!(block_on(send)?.into_outputs(), [8]);
/// # Ok::<(), signals::SendError>(())
/// ```
pub type AsyncTypeSignal<F> = TypeSignal<F, Async>;

impl<F: TypeSignature> AsyncTypeSignal<F> {
    /// Runs the receivers of sender type `M` and of any sender: the plain ones in order, then
    /// the async ones concurrently.
    ///
    /// # Errors
    ///
    /// The first receiver to return `Err` stops the send; the error names it.
    pub async fn send<M: 'static>(
        &self,
        args: &<F as SentBy<M>>::Args<'_>,
    ) -> Result<Responses<F::Output>, SendError>
    where
        F: SentBy<M>,
    {
        self.dispatch::<ToSend, M>(args).await
    }

    /// Runs every receiver of sender type `M` and of any sender, whatever the others do;
    /// failures are logged as `signal.failure` and recorded in place of the output.
    pub async fn send_robust<M: 'static>(
        &self,
        args: &<F as SentBy<M>>::Args<'_>,
    ) -> Responses<Result<F::Output, ReceiverError>>
    where
        F: SentBy<M>,
    {
        self.dispatch::<ToSendRobust, M>(args).await
    }

    /// An async send from `M`, `Op` saying which.
    async fn dispatch<Op: RunAsync<F::Output>, M: 'static>(
        &self,
        args: &<F as SentBy<M>>::Args<'_>,
    ) -> Op::Out
    where
        F: SentBy<M>,
    {
        let core = self.core();
        let sender = TypeSender::of::<M>();
        if watch::active() {
            let watch = self.watch::<M>(sender, args);
            if watch.muted() {
                return Op::nothing();
            }
            let routes = core.routes_full();
            let reporter = Reporter::new(self.name(), core);
            let span = watch.span().clone();
            if let Some(list) = typed_list::<F, M>(&routes, sender) {
                let steps = watch.steps(&list.0);
                return Op::run_async(&steps, &typed_cx(sender, args), &reporter)
                    .instrument(span)
                    .await;
            }
            let steps = watch.steps(&routes.any);
            let cx = any_cx::<F, M>(sender, args);
            return Op::run_async(&steps, &cx, &reporter).instrument(span).await;
        }
        if !core.may_reach(Some(&sender)) {
            return Op::nothing();
        }
        let routes = core.routes_full();
        let reporter = Reporter::new(self.name(), core);
        match typed_list::<F, M>(&routes, sender) {
            Some(list) => Op::run_async(&list.0, &typed_cx(sender, args), &reporter).await,
            None => Op::run_async(&routes.any, &any_cx::<F, M>(sender, args), &reporter).await,
        }
    }
}

#[diagnostic::do_not_recommend]
impl<F: TypeSignature> AsyncReceivers for AsyncTypeSignal<F> {}
