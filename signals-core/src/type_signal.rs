//! Type-sender signals: [`TypeSignal`], whose sender is a Rust type, as Django's
//! `sender=User` is a model class. The signal is a family over the sender type `M`: its
//! argument struct may mention `M`, so a receiver for `User` gets `&User`, typed.
//!
//! Receivers for one sender type see `<F as SentBy<M>>::Args`; any-sender receivers cannot
//! know `M` and see the family's sender-independent view, [`TypeSignature::AnyArgs`], made by
//! [`SentBy::any_args`] (for instance the same struct over `dyn Model`).

use std::any::{Any, type_name};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::connect::mode::{Async, Mode, Plain};
use crate::connect::{Connection, Disconnect};
use crate::connector::{Connector, NewReceiver, Target};
use crate::dispatch::{Observer, Responses, Run, RunAsync, ToEmit, ToSend, ToSendRobust};
use crate::error::{BoxError, ReceiverError, SendError};
use crate::explain::Explain;
use crate::info::ReceiverInfo;
use crate::receiver::{
    AsyncCallable, Callable, Entry, Info, IntoResponse, Shape, Started, Step, TypeSender,
};
use crate::registry::{
    self, Adopted, AsyncReceivers, Indexed, Lazy, ReceiverEntry, Registration, SenderKind,
    SignalKind, SignalRef, TypeSenders,
};
use crate::table::{Core, Identity, Record, Routes, SenderKey};
use crate::watch::{self, Capturable, Watch};
use tracing::Instrument;

/// The declaration of a type-sender signal family: what its any-sender receivers see and what
/// every receiver returns. Each sender type `M` is added by an impl of [`SentBy<M>`].
///
/// ```
/// use signals::{SentBy, TypeSignal, TypeSignature};
///
/// pub trait Model: Send + Sync { fn table(&self) -> &'static str; }
/// pub struct User { pub id: u64 }
/// impl Model for User { fn table(&self) -> &'static str { "auth_user" } }
///
/// /// `post_save`'s arguments; `M: ?Sized` so that `PostSave<'_, dyn Model>` is the any view.
/// pub struct PostSave<'a, M: ?Sized> { pub instance: &'a M, pub created: bool }
///
/// pub enum PostSaveSignal {}
/// impl TypeSignature for PostSaveSignal {
///     type AnyArgs<'a> = PostSave<'a, dyn Model>;
///     type Output = ();
/// }
/// impl<M: Model + 'static> SentBy<M> for PostSaveSignal {
///     type Args<'a> = PostSave<'a, M>;
///     fn any_args<'b>(args: &'b PostSave<'_, M>) -> PostSave<'b, dyn Model> {
///         PostSave { instance: args.instance, created: args.created }
///     }
/// }
///
/// /// Sent after a model instance is saved; the sender is the model type.
/// #[allow(non_upper_case_globals)]
/// pub static post_save: TypeSignal<PostSaveSignal> = TypeSignal::new("post_save");
///
/// post_save.connect::<User, _, _>(|_, args: &PostSave<'_, User>| assert_eq!(args.instance.id, 7));
/// post_save.send::<User>(&PostSave { instance: &User { id: 7 }, created: true })?;
/// # Ok::<(), signals::SendError>(())
/// ```
pub trait TypeSignature: 'static {
    /// The view of the arguments that any-sender receivers get.
    type AnyArgs<'a>;
    /// What each receiver returns, collected in the responses.
    type Output: 'static;
}

/// Declares that signals of the family `Self` may be sent by the type `M`, and with which
/// arguments.
#[diagnostic::on_unimplemented(
    message = "`{M}` is not a sender type of the signal family `{Self}`",
    label = "`{M}` cannot send this signal",
    note = "the family's `SentBy` impls list the types that may send it; implement \
            `SentBy<{M}>` for `{Self}` (or the trait its blanket impl requires) to add one"
)]
pub trait SentBy<M: 'static>: TypeSignature {
    /// The argument struct for sender type `M`.
    type Args<'a>;

    /// The sender-independent view any-sender receivers get.
    fn any_args<'b>(args: &'b Self::Args<'_>) -> Self::AnyArgs<'b>;
}

/// The call shape of a type-sender signal's receivers for sender type `M`.
pub struct TypedShape<F, M>(PhantomData<fn() -> (F, M)>);

impl<F: SentBy<M>, M: 'static> Shape for TypedShape<F, M> {
    type Sender<'s> = TypeSender;
    type Args<'a> = <F as SentBy<M>>::Args<'a>;
    type Output = F::Output;
}

/// The call shape of a type-sender signal's any-sender receivers.
pub struct AnyTypeShape<F>(PhantomData<fn() -> F>);

impl<F: TypeSignature> Shape for AnyTypeShape<F> {
    type Sender<'s> = TypeSender;
    type Args<'a> = F::AnyArgs<'a>;
    type Output = F::Output;
}

/// A receiver of a type-sender signal as the table holds it: the sender type is erased from
/// typed receivers until a snapshot groups them by type.
pub(crate) enum TypeEntry<F: TypeSignature> {
    Any(Entry<AnyTypeShape<F>>),
    Typed(Arc<dyn ErasedTyped<F>>),
}

impl<F: TypeSignature> TypeEntry<F> {
    pub(crate) fn typed<M: 'static>(entry: Entry<TypedShape<F, M>>) -> Self
    where
        F: SentBy<M>,
    {
        Self::Typed(Arc::new(entry))
    }
}

impl<F: TypeSignature> Clone for TypeEntry<F> {
    fn clone(&self) -> Self {
        match self {
            Self::Any(entry) => Self::Any(entry.clone()),
            Self::Typed(entry) => Self::Typed(Arc::clone(entry)),
        }
    }
}

impl<F: TypeSignature> Info for TypeEntry<F> {
    fn info(&self) -> &ReceiverInfo {
        match self {
            Self::Any(entry) => &entry.info,
            Self::Typed(entry) => entry.info(),
        }
    }

    fn alive(&self) -> bool {
        match self {
            Self::Any(entry) => entry.call.alive(),
            Self::Typed(entry) => entry.alive(),
        }
    }

    fn is_async(&self) -> bool {
        match self {
            Self::Any(entry) => entry.call.is_async(),
            Self::Typed(entry) => entry.is_async(),
        }
    }
}

/// A receiver for one sender type, with that type erased.
pub(crate) trait ErasedTyped<F: TypeSignature>: Info + Send + Sync {
    fn as_any(&self) -> &dyn Any;
    /// Builds the dispatch list of this receiver's sender type from `entries`, which hold the
    /// any-sender receivers and the receivers of this type, in dispatch order.
    fn build_list(&self, entries: &[&TypeEntry<F>]) -> Box<dyn ErasedList>;
}

impl<F: SentBy<M>, M: 'static> ErasedTyped<F> for Entry<TypedShape<F, M>> {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn build_list(&self, entries: &[&TypeEntry<F>]) -> Box<dyn ErasedList> {
        let steps = entries
            .iter()
            .filter_map(|entry| match entry {
                TypeEntry::Any(entry) => Some(TypedStep::Any(entry.clone())),
                TypeEntry::Typed(entry) => entry
                    .as_any()
                    .downcast_ref::<Self>()
                    .map(|entry| TypedStep::Typed(entry.clone())),
            })
            .collect();
        Box::new(TypedList::<F, M>(steps))
    }
}

/// One element of a sender type's dispatch list.
enum TypedStep<F: SentBy<M>, M: 'static> {
    Typed(Entry<TypedShape<F, M>>),
    Any(Entry<AnyTypeShape<F>>),
}

/// The dispatch list of sender type `M`.
struct TypedList<F: SentBy<M>, M: 'static>(Box<[TypedStep<F, M>]>);

/// A sender type's dispatch list, with the type erased, for introspection.
pub(crate) trait ErasedList: Send + Sync {
    fn as_any(&self) -> &dyn Any;
    fn entries(&self) -> Vec<(&ReceiverInfo, bool)>;
}

impl<F: SentBy<M>, M: 'static> ErasedList for TypedList<F, M> {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn entries(&self) -> Vec<(&ReceiverInfo, bool)> {
        self.0
            .iter()
            .map(|step| match step {
                TypedStep::Typed(entry) => (&entry.info, entry.call.alive()),
                TypedStep::Any(entry) => (&entry.info, entry.call.alive()),
            })
            .collect()
    }
}

/// What a send for sender type `M` runs its list against: the arguments, and their any-sender
/// view, made once per send.
struct TypedCx<'r, 'a, F: SentBy<M>, M: 'static> {
    sender: TypeSender,
    args: &'r <F as SentBy<M>>::Args<'a>,
    any: F::AnyArgs<'r>,
}

impl<F: SentBy<M>, M: 'static> Info for TypedStep<F, M> {
    #[inline]
    fn info(&self) -> &ReceiverInfo {
        match self {
            Self::Typed(entry) => &entry.info,
            Self::Any(entry) => &entry.info,
        }
    }

    fn is_async(&self) -> bool {
        match self {
            Self::Typed(entry) => entry.call.is_async(),
            Self::Any(entry) => entry.call.is_async(),
        }
    }

    fn alive(&self) -> bool {
        match self {
            Self::Typed(entry) => entry.call.alive(),
            Self::Any(entry) => entry.call.alive(),
        }
    }
}

impl<'r, 'a, F: SentBy<M>, M: 'static> Step<TypedCx<'r, 'a, F, M>> for TypedStep<F, M> {
    type Output = F::Output;

    #[inline]
    fn run(&self, cx: &TypedCx<'r, 'a, F, M>) -> Option<Result<F::Output, BoxError>> {
        match self {
            Self::Typed(entry) => entry.call.invoke(cx.sender, cx.args),
            Self::Any(entry) => entry.call.invoke(cx.sender, &cx.any),
        }
    }

    fn start<'c>(&'c self, cx: &'c TypedCx<'r, 'a, F, M>) -> Started<'c, F::Output> {
        match self {
            Self::Typed(entry) => entry.call.start(cx.sender, cx.args),
            Self::Any(entry) => entry.call.start(cx.sender, &cx.any),
        }
    }
}

/// The dispatch lists of one snapshot: the any-sender receivers, and one list per sender type
/// that has receivers of its own.
pub(crate) struct TypeRoutes<F: TypeSignature> {
    any: Box<[Entry<AnyTypeShape<F>>]>,
    by_type: HashMap<TypeSender, Box<dyn ErasedList>>,
}

impl<F: TypeSignature> TypeRoutes<F> {
    /// The receivers that would run for `sender`, with whether each is alive.
    fn entries(&self, sender: Option<TypeSender>) -> Vec<(&ReceiverInfo, bool)> {
        match sender.and_then(|sender| self.by_type.get(&sender)) {
            Some(list) => list.entries(),
            None => self.any.iter().map(|e| (&e.info, e.call.alive())).collect(),
        }
    }
}

impl<F: TypeSignature> Routes<TypeSender, TypeEntry<F>> for TypeRoutes<F> {
    fn build<'r>(
        records: impl Iterator<Item = &'r Record<TypeSender, TypeEntry<F>>> + Clone,
    ) -> Self {
        let mut any = Vec::new();
        let mut first_of_type: Vec<(TypeSender, &Arc<dyn ErasedTyped<F>>)> = Vec::new();
        for record in records.clone() {
            match (&record.entry, record.sender) {
                (TypeEntry::Any(entry), _) => any.push(entry.clone()),
                (TypeEntry::Typed(entry), Some(sender)) => {
                    if !first_of_type.iter().any(|(seen, _)| *seen == sender) {
                        first_of_type.push((sender, entry));
                    }
                }
                (TypeEntry::Typed(_), None) => {}
            }
        }
        let by_type = first_of_type
            .into_iter()
            .map(|(sender, builder)| {
                let entries: Vec<&TypeEntry<F>> = records
                    .clone()
                    .filter(|record| record.sender.is_none() || record.sender == Some(sender))
                    .map(|record| &record.entry)
                    .collect();
                (sender, builder.build_list(&entries))
            })
            .collect();
        Self {
            any: any.into(),
            by_type,
        }
    }
}

type TypeCore<F> = Core<TypeSender, TypeEntry<F>, TypeRoutes<F>>;

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
    name: &'static str,
    core: Lazy<TypeSender, TypeEntry<F>, TypeRoutes<F>>,
    _mode: PhantomData<fn() -> D>,
}

impl<F: TypeSignature, D: Mode> TypeSignal<F, D> {
    /// A signal named `name` (used in logs, errors and introspection).
    #[must_use]
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            core: Lazy::new(),
            _mode: PhantomData,
        }
    }

    /// The signal's name.
    #[must_use]
    pub fn name(&self) -> &'static str {
        self.name
    }

    pub(crate) fn observer<'o>(&self, core: &'o TypeCore<F>) -> Observer<'o> {
        Observer {
            signal: self.name,
            table: core,
            raise: None,
        }
    }

    /// Starts watching a send from `M` (see [`watch`]) and records the any-sender view of its
    /// arguments for the captures.
    fn watch<M: 'static>(&self, sender: TypeSender, args: &<F as SentBy<M>>::Args<'_>) -> Watch
    where
        F: SentBy<M>,
    {
        let watch = Watch::begin(self.name, registry::address(self), Some(&sender));
        watch.args(|render| {
            render
                .downcast_ref::<RenderAnyArgs<F>>()
                .map(|render| (render.0)(&F::any_args(args)))
        });
        watch
    }

    /// A sync send from `M` while someone watches: nothing if the signal is muted on this
    /// thread, otherwise the receivers that are not muted, inside the send's span.
    #[cold]
    #[inline(never)]
    fn watched<R: Run<F::Output>, M: 'static>(&self, args: &<F as SentBy<M>>::Args<'_>) -> R::Out
    where
        F: SentBy<M>,
    {
        let core = self.core();
        let sender = TypeSender::of::<M>();
        let watch = self.watch::<M>(sender, args);
        if watch.muted() {
            return R::nothing();
        }
        let _entered = watch.span().enter();
        let observer = self.observer(core);
        core.with_routes(|routes| match typed_list::<F, M>(routes, sender) {
            Some(list) => R::run(&watch.steps(&list.0), &typed_cx(sender, args), &observer),
            None => R::run(
                &watch.steps(&routes.any),
                &any_cx::<F, M>(sender, args),
                &observer,
            ),
        })
    }

    /// Whether any live receiver would run for `sender` (`None`: only any-sender receivers
    /// count).
    pub fn has_listeners(&self, sender: impl Into<Option<TypeSender>>) -> bool {
        let sender = sender.into();
        self.core()
            .with_routes(|routes| routes.entries(sender).iter().any(|(_, alive)| *alive))
    }

    /// The live receivers that would run for `sender`, in dispatch order.
    pub fn receivers(&self, sender: impl Into<Option<TypeSender>>) -> Vec<ReceiverInfo> {
        let sender = sender.into();
        self.core().with_routes(|routes| {
            routes
                .entries(sender)
                .into_iter()
                .filter(|(_, alive)| *alive)
                .map(|(info, _)| info.clone())
                .collect()
        })
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
        let identity = Identity::Uid(Cow::Owned(dispatch_uid.to_owned()));
        self.core()
            .disconnect_key(&identity, sender.into().as_ref())
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
        Identity::code::<C>().is_some_and(|identity| {
            self.core()
                .disconnect_key(&identity, sender.into().as_ref())
        })
    }

    /// Disconnects `receiver` for every sender type it is connected for; returns how many
    /// connections it removed.
    pub fn disconnect_receiver_everywhere<C: 'static>(&self, receiver: C) -> usize {
        drop(receiver); // its type is its identity
        Identity::code::<C>().map_or(0, |identity| self.core().disconnect_identity(&identity))
    }

    /// Every live receiver, static and runtime, for every sender type, in dispatch order, each
    /// with the sender it listens to ([`ReceiverEntry::sender`]).
    #[must_use]
    pub fn connections(&self) -> Vec<ReceiverEntry> {
        let mut receivers = self.listing().receivers;
        receivers.retain(|entry| entry.shadowed_by().is_none());
        receivers
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

    /// A sync send from `M`, `R` saying which; as for value signals, the early return for a
    /// signal without receivers is inlined into the caller.
    #[inline]
    fn dispatch<R: Run<F::Output>, M: 'static>(&self, args: &<F as SentBy<M>>::Args<'_>) -> R::Out
    where
        F: SentBy<M>,
    {
        if self.core.get().is_some_and(Core::is_empty) && !watch::active() {
            return R::nothing();
        }
        self.dispatch_from::<R, M>(args)
    }

    /// The send past the early return, out of line so that callers inline only the check.
    #[inline(never)]
    fn dispatch_from<R: Run<F::Output>, M: 'static>(
        &self,
        args: &<F as SentBy<M>>::Args<'_>,
    ) -> R::Out
    where
        F: SentBy<M>,
    {
        let core = self.core();
        let sender = TypeSender::of::<M>();
        if watch::active() {
            return self.watched::<R, M>(args);
        }
        if !core.may_reach(Some(&sender)) {
            return R::nothing();
        }
        let observer = self.observer(core);
        core.with_routes(|routes| match typed_list::<F, M>(routes, sender) {
            Some(list) => R::run(&list.0, &typed_cx(sender, args), &observer),
            None => R::run(&routes.any, &any_cx::<F, M>(sender, args), &observer),
        })
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

#[inline]
fn typed_list<F: SentBy<M>, M: 'static>(
    routes: &TypeRoutes<F>,
    sender: TypeSender,
) -> Option<&TypedList<F, M>> {
    if routes.by_type.is_empty() {
        return None;
    }
    routes.by_type.get(&sender)?.as_any().downcast_ref()
}

fn typed_cx<'r, 'a, F: SentBy<M>, M: 'static>(
    sender: TypeSender,
    args: &'r <F as SentBy<M>>::Args<'a>,
) -> TypedCx<'r, 'a, F, M> {
    TypedCx {
        sender,
        args,
        any: F::any_args(args),
    }
}

/// The context of a send whose type has no receivers of its own: only any-sender ones run.
/// The returned context borrows the view for the duration of the send.
fn any_cx<'r, F: SentBy<M>, M: 'static>(
    sender: TypeSender,
    args: &'r <F as SentBy<M>>::Args<'_>,
) -> AnyCx<'r, F> {
    AnyCx {
        sender,
        any: F::any_args(args),
    }
}

/// A send's context for the any-sender list: the view, owned by the send.
struct AnyCx<'r, F: TypeSignature> {
    sender: TypeSender,
    any: F::AnyArgs<'r>,
}

impl<'r, F: TypeSignature> Step<AnyCx<'r, F>> for Entry<AnyTypeShape<F>> {
    type Output = F::Output;

    #[inline]
    fn run(&self, cx: &AnyCx<'r, F>) -> Option<Result<F::Output, BoxError>> {
        self.call.invoke(cx.sender, &cx.any)
    }

    fn start<'c>(&'c self, cx: &'c AnyCx<'r, F>) -> Started<'c, F::Output> {
        self.call.start(cx.sender, &cx.any)
    }
}

impl<F: TypeSignature, D: Mode> Indexed for TypeSignal<F, D> {
    type Key = TypeSender;
    type Entry = TypeEntry<F>;
    type Routes = TypeRoutes<F>;

    fn sender_kind() -> SenderKind {
        SenderKind::Type
    }

    fn signal_name(&self) -> &'static str {
        self.name
    }

    fn lazy(&self) -> &Lazy<TypeSender, TypeEntry<F>, TypeRoutes<F>> {
        &self.core
    }
}

/// Renders the any-sender view of a [`TypeSignal<F>`]'s arguments for
/// [`testing::capture`](crate::testing::capture).
#[allow(clippy::type_complexity)] // a closure over every lifetime of the arguments
pub(crate) struct RenderAnyArgs<F: TypeSignature>(
    Box<dyn for<'a, 'b> Fn(&'b F::AnyArgs<'a>) -> String + Send + Sync>,
);

impl<F: TypeSignature, D: Mode> Capturable for TypeSignal<F, D>
where
    for<'a> F::AnyArgs<'a>: fmt::Debug,
{
    fn renderer(&self) -> Arc<dyn Any + Send + Sync> {
        Arc::new(RenderAnyArgs::<F>(Box::new(|args| format!("{args:?}"))))
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

    fn adopt_any<C: Callable<AnyTypeShape<F>>>(
        registration: &'static Registration,
        out: &mut dyn Any,
    ) {
        registry::put(
            out,
            Adopted::<TypeSender, _> {
                sender: None,
                entry: TypeEntry::<F>::Any(registration.entry::<AnyTypeShape<F>, C>()),
            },
        );
    }

    fn adopt_any_async<C: AsyncCallable<AnyTypeShape<F>>>(
        registration: &'static Registration,
        out: &mut dyn Any,
    ) {
        registry::put(
            out,
            Adopted::<TypeSender, _> {
                sender: None,
                entry: TypeEntry::<F>::Any(registration.async_entry::<AnyTypeShape<F>, C>()),
            },
        );
    }
}

#[diagnostic::do_not_recommend]
impl<F: SentBy<M>, M: 'static, D: Mode> TypeSenders<M> for TypeSignal<F, D> {
    type Shape = TypedShape<F, M>;

    fn adopt<C: Callable<TypedShape<F, M>>>(
        registration: &'static Registration,
        out: &mut dyn Any,
    ) {
        registry::put(
            out,
            Adopted {
                sender: Some(TypeSender::of::<M>()),
                entry: TypeEntry::typed(registration.entry::<TypedShape<F, M>, C>()),
            },
        );
    }

    fn adopt_async<C: AsyncCallable<TypedShape<F, M>>>(
        registration: &'static Registration,
        out: &mut dyn Any,
    ) {
        registry::put(
            out,
            Adopted {
                sender: Some(TypeSender::of::<M>()),
                entry: TypeEntry::typed(registration.async_entry::<TypedShape<F, M>, C>()),
            },
        );
    }
}

// A receiver's panic leaves a signal consistent: no lock is held while receivers run, and every
// edit of the table is complete before the lock is released. Sends may be retried after a
// caught panic.
impl<F: TypeSignature, D: Mode> std::panic::RefUnwindSafe for TypeSignal<F, D> {}
impl<F: TypeSignature, D: Mode> std::panic::UnwindSafe for TypeSignal<F, D> {}

impl<F: TypeSignature, D: Mode> fmt::Debug for TypeSignal<F, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypeSignal")
            .field("name", &self.name)
            .finish_non_exhaustive()
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
        let NewReceiver { identity, entry } = receiver;
        self.signal
            .core()
            .connect(Record::new(None, identity, TypeEntry::Any(entry)))
    }

    fn signal(&self) -> &'s dyn Disconnect {
        self.signal
    }
}

impl<'s, F: SentBy<M>, M: 'static, D: Mode> Target<'s> for TypeTarget<'s, F, M, D> {
    type Shape = TypedShape<F, M>;
    type Mode = D;

    fn add(self, receiver: NewReceiver<TypedShape<F, M>>) -> Connection {
        let NewReceiver { identity, entry } = receiver;
        let sender = Some(TypeSender::of::<M>());
        self.signal
            .core()
            .connect(Record::new(sender, identity, TypeEntry::typed::<M>(entry)))
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
            .field("signal", &self.signal.name)
            .finish()
    }
}

impl<F: TypeSignature, M, D: Mode> fmt::Debug for TypeTarget<'_, F, M, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypeTarget")
            .field("signal", &self.signal.name)
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

    /// An async send from `M`, `R` saying which.
    async fn dispatch<R: RunAsync<F::Output>, M: 'static>(
        &self,
        args: &<F as SentBy<M>>::Args<'_>,
    ) -> R::Out
    where
        F: SentBy<M>,
    {
        let core = self.core();
        let sender = TypeSender::of::<M>();
        if watch::active() {
            let watch = self.watch::<M>(sender, args);
            if watch.muted() {
                return R::nothing();
            }
            let routes = core.routes_full();
            let observer = self.observer(core);
            let span = watch.span().clone();
            if let Some(list) = typed_list::<F, M>(&routes, sender) {
                let steps = watch.steps(&list.0);
                return R::run_async(&steps, &typed_cx(sender, args), &observer)
                    .instrument(span)
                    .await;
            }
            let steps = watch.steps(&routes.any);
            let cx = any_cx::<F, M>(sender, args);
            return R::run_async(&steps, &cx, &observer).instrument(span).await;
        }
        if !core.may_reach(Some(&sender)) {
            return R::nothing();
        }
        let routes = core.routes_full();
        let observer = self.observer(core);
        match typed_list::<F, M>(&routes, sender) {
            Some(list) => R::run_async(&list.0, &typed_cx(sender, args), &observer).await,
            None => R::run_async(&routes.any, &any_cx::<F, M>(sender, args), &observer).await,
        }
    }
}

#[diagnostic::do_not_recommend]
impl<F: TypeSignature> AsyncReceivers for AsyncTypeSignal<F> {}
