//! What a receiver is: the traits that say which closures may be receivers, how a runtime one
//! is held ([`DynCall`]), and how a dispatch list runs them ([`Step`]). The dispatch lists
//! hold `raw::Receiver`s: a function pointer and the address of the receiver's code, with its
//! identity ([`ReceiverInfo`]).
//!
//! Every receiver of every signal is called through the same shape, `(sender, &args) ->
//! Result<output, BoxError>`, described by a [`Shape`]. Static receivers (from `#[receiver]`)
//! are the capture-free adapter closures it generates, borrowed for `'static` by their
//! registration ([`Callable`], [`AsyncCallable`]); runtime receivers are closures behind an
//! `Arc`, or, when they capture nothing, held by no allocation at all.

use crate::mode::{Async, Mode, Plain};
use std::any::{TypeId, type_name};
use std::fmt;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::thread::ThreadId;

use crate::error::BoxError;
use crate::info::{ReceiverInfo, ReceiverKind};

/// What a receiver may return: the signal's output `O` itself, or `Result<O, E>` for any error
/// type `E`. A receiver of a signal whose output is `()` may therefore return `()` or
/// `Result<(), E>`.
#[diagnostic::on_unimplemented(
    message = "a receiver of this signal must return `{O}` or `Result<{O}, E>`, not `{Self}`",
    label = "this receiver returns `{Self}`",
    note = "the error type `E` must implement `std::error::Error + Send + Sync + 'static`"
)]
pub trait IntoResponse<O> {
    /// The output, or the error boxed.
    ///
    /// # Errors
    ///
    /// The receiver's own error, boxed.
    fn into_response(self) -> Result<O, BoxError>;
}

impl<O> IntoResponse<O> for O {
    fn into_response(self) -> Result<O, BoxError> {
        Ok(self)
    }
}

impl<O, E: std::error::Error + Send + Sync + 'static> IntoResponse<O> for Result<O, E> {
    fn into_response(self) -> Result<O, BoxError> {
        self.map_err(Into::into)
    }
}

/// Keeps [`IntoResponse`]'s output ambiguous until the signal fixes it: with a second impl for
/// every type, the compiler cannot guess the output from the receiver's return type, so a wrong
/// return type is reported against the signal's output by `IntoResponse`'s own message. Never
/// a signal's output.
#[doc(hidden)]
pub struct Unfixed<T>(PhantomData<T>);

#[doc(hidden)]
impl<T> IntoResponse<Unfixed<T>> for T {
    fn into_response(self) -> Result<Unfixed<T>, BoxError> {
        Ok(Unfixed(PhantomData))
    }
}

/// A receiver's return value as a response to a signal whose output is `O`; `O` comes from
/// the signal, so that a wrong return type is reported as such.
///
/// # Errors
///
/// The receiver's own error, boxed.
pub fn respond<O, R: IntoResponse<O>>(response: R) -> Result<O, BoxError> {
    response.into_response()
}

/// How a receiver's reference parameter borrows a field of the signal's arguments: a field
/// `T` or `&T` (or `Box<T>`, `Arc<T>`) lends `&T`; a `String` lends `&str` and a `Vec<T>`
/// lends `&[T]`. Used by `#[receiver]`; `Self` is the field's type, `P` what the parameter
/// refers to.
#[diagnostic::on_unimplemented(
    message = "a receiver parameter of type `&{P}` cannot borrow a signal argument of type `{Self}`",
    label = "the signal's field has type `{Self}`",
    note = "a reference parameter borrows the field of the same name; give it the field's type",
    note = "a receiver of a type signal without `sender` gets the any-sender view of the \
            arguments (a trait object such as `&dyn Model`); for one sender type's own \
            arguments, add `sender = ThatType` to #[receiver]"
)]
pub trait AsParam<P: ?Sized> {
    /// The field, as the parameter borrows it.
    fn as_param(&self) -> &P;
}

impl<T: ?Sized> AsParam<T> for T {
    fn as_param(&self) -> &T {
        self
    }
}

impl<T: ?Sized> AsParam<T> for &T {
    fn as_param(&self) -> &T {
        self
    }
}

impl<T: ?Sized> AsParam<T> for Box<T> {
    fn as_param(&self) -> &T {
        self
    }
}

impl<T: ?Sized> AsParam<T> for Arc<T> {
    fn as_param(&self) -> &T {
        self
    }
}

impl AsParam<str> for String {
    fn as_param(&self) -> &str {
        self
    }
}

impl<T> AsParam<[T]> for Vec<T> {
    fn as_param(&self) -> &[T] {
        self
    }
}

/// How a receiver's parameter named `sender` takes the sender: as the signal passes it
/// (`Option<&Sender>` for a value signal, [`TypeSender`] for a type signal). `Self` is what
/// the signal passes, `P` the parameter's type.
#[diagnostic::on_unimplemented(
    message = "a receiver's parameter named `sender` gets the signal's sender, `{Self}`, not `{P}`",
    label = "this parameter is the sender, of type `{Self}`",
    note = "to take a field of the signal's arguments named `sender`, name the parameter \
            `r#sender`"
)]
pub trait SenderParam<P> {
    /// The sender, as the parameter takes it.
    fn sender_param(self) -> P;
}

impl<T> SenderParam<T> for T {
    fn sender_param(self) -> T {
        self
    }
}

/// Keeps [`SenderParam`]'s parameter type from being guessed from the sender's, so that a
/// parameter of another type is reported by `SenderParam`'s own message.
#[doc(hidden)]
impl<T> SenderParam<Unfixed<T>> for T {
    fn sender_param(self) -> Unfixed<T> {
        Unfixed(PhantomData)
    }
}

/// How a receiver's by-value parameter takes a field of the signal's arguments: by copy.
#[must_use]
pub const fn copy_field<T: Copy>(field: &T) -> T {
    *field
}

/// A sender type, as receivers of a type-sender signal are told it: its `TypeId` and name.
#[derive(Clone, Copy)]
pub struct TypeSender {
    id: TypeId,
    name: &'static str,
}

impl TypeSender {
    /// The sender `M`.
    #[must_use]
    pub fn of<M: ?Sized + 'static>() -> Self {
        Self {
            id: TypeId::of::<M>(),
            name: type_name::<M>(),
        }
    }

    /// The sender type's `TypeId`.
    #[must_use]
    pub fn type_id(&self) -> TypeId {
        self.id
    }

    /// The sender type's name, as `std::any::type_name` gives it.
    #[must_use]
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Whether the sender is `M`.
    #[must_use]
    pub fn is<M: ?Sized + 'static>(&self) -> bool {
        self.id == TypeId::of::<M>()
    }
}

impl PartialEq for TypeSender {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for TypeSender {}

impl Hash for TypeSender {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

impl fmt::Debug for TypeSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl fmt::Display for TypeSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// The call shape of one group of receivers: what they are given and what they return.
///
/// A value-sender signal has one shape; a type-sender signal has one per sender type plus one
/// for its any-sender receivers.
pub trait Shape: 'static {
    /// What the receiver is told about the sender.
    type Sender<'s>: Copy;
    /// The argument struct, borrowed for the duration of the call.
    type Args<'a>;
    /// What the receiver returns on success.
    type Output;
}

/// What a static receiver of shape `Sh` is: a `'static`, thread-safe function of the shape.
pub trait Callable<Sh: Shape>:
    for<'s, 'r, 'a> Fn(Sh::Sender<'s>, &'r Sh::Args<'a>) -> Result<Sh::Output, BoxError>
    + Send
    + Sync
    + 'static
{
}

impl<Sh: Shape, C> Callable<Sh> for C where
    C: for<'s, 'r, 'a> Fn(Sh::Sender<'s>, &'r Sh::Args<'a>) -> Result<Sh::Output, BoxError>
        + Send
        + Sync
        + 'static
{
}

/// A boxed future that may borrow for `'a`: what async receivers return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a static async receiver of shape `Sh` is: a `'static`, thread-safe function of the
/// shape returning a boxed future that may borrow the arguments.
pub trait AsyncCallable<Sh: Shape>:
    for<'r, 'a> Fn(Sh::Sender<'r>, &'r Sh::Args<'a>) -> BoxFuture<'r, Result<Sh::Output, BoxError>>
    + Send
    + Sync
    + 'static
{
}

impl<Sh: Shape, C> AsyncCallable<Sh> for C where
    C: for<'r, 'a> Fn(
            Sh::Sender<'r>,
            &'r Sh::Args<'a>,
        ) -> BoxFuture<'r, Result<Sh::Output, BoxError>>
        + Send
        + Sync
        + 'static
{
}

/// An async receiver of shape `Sh` connected at run time: a closure that takes the sender and
/// the arguments and returns a boxed future of `R` that may borrow both,
/// `|sender, args| Box::pin(async move { .. })`. Implemented for every such closure.
pub trait AsyncReceiverFn<Sh: Shape, R>:
    for<'r, 'a> Fn(Sh::Sender<'r>, &'r Sh::Args<'a>) -> BoxFuture<'r, R> + Send + Sync + 'static
{
}

impl<Sh: Shape, R, C> AsyncReceiverFn<Sh, R> for C where
    C: for<'r, 'a> Fn(Sh::Sender<'r>, &'r Sh::Args<'a>) -> BoxFuture<'r, R> + Send + Sync + 'static
{
}

/// An async receiver of shape `Sh` bound to a weak target `T`: while the target lives, the
/// closure gets it as an `Arc`, which its future keeps alive until it completes. Implemented
/// for every such closure.
pub trait WeakAsyncReceiverFn<T, Sh: Shape, R>:
    for<'r, 'a> Fn(Arc<T>, Sh::Sender<'r>, &'r Sh::Args<'a>) -> BoxFuture<'r, R> + Send + Sync + 'static
{
}

impl<T, Sh: Shape, R, C> WeakAsyncReceiverFn<T, Sh, R> for C where
    C: for<'r, 'a> Fn(Arc<T>, Sh::Sender<'r>, &'r Sh::Args<'a>) -> BoxFuture<'r, R>
        + Send
        + Sync
        + 'static
{
}

/// What calling a runtime receiver of mode `K` gives: its result (a plain receiver) or the
/// future of it (an async one).
pub(crate) trait Calls: Mode {
    type Called<'r, O: 'r>;
}

impl Calls for Plain {
    type Called<'r, O: 'r> = Result<O, BoxError>;
}

impl Calls for Async {
    type Called<'r, O: 'r> = BoxFuture<'r, Result<O, BoxError>>;
}

/// What a runtime receiver of shape `Sh` and mode `K` gives when called.
type Called<'r, Sh, K> = Option<<K as Calls>::Called<'r, <Sh as Shape>::Output>>;

/// A receiver connected at run time, behind an `Arc`: plain or async, as `K` says.
pub(crate) trait DynCall<Sh: Shape, K: Calls>: Send + Sync {
    /// How it was connected: [`ReceiverKind::Runtime`] or [`ReceiverKind::Weak`].
    const KIND: ReceiverKind;

    /// Calls (or, async, starts) the receiver; `None` when it is weak and its target is gone.
    fn call<'r>(&self, sender: Sh::Sender<'r>, args: &'r Sh::Args<'_>) -> Called<'r, Sh, K>;

    /// Whether it can still run (a weak receiver whose target was dropped cannot).
    fn alive(&self) -> bool;

    /// Its identity when it has no `dispatch_uid`: its code's if it has no captures, bound to
    /// its target if it is weak.
    fn identity(&self) -> Identity<'static>;
}

/// A receiver started by an async send: done already (a sync receiver, or a weak one whose
/// target is gone), or a future to await.
pub(crate) enum Started<'r, O> {
    Ready(Option<Result<O, BoxError>>),
    Pending(BoxFuture<'r, Result<O, BoxError>>),
}

/// A runtime receiver that runs only for sends started on one thread, where an async send
/// starts its receivers on its first poll: the scope of the testing aids. Other threads' sends
/// skip it as if it were not connected.
pub(crate) struct OnThread<C> {
    owner: ThreadId,
    inner: C,
}

impl<C> OnThread<C> {
    pub(crate) fn new(owner: ThreadId, inner: C) -> Self {
        Self { owner, inner }
    }

    fn here(&self) -> bool {
        std::thread::current().id() == self.owner
    }
}

impl<Sh: Shape, K: Calls, C: DynCall<Sh, K>> DynCall<Sh, K> for OnThread<C> {
    const KIND: ReceiverKind = C::KIND;

    fn call<'r>(&self, sender: Sh::Sender<'r>, args: &'r Sh::Args<'_>) -> Called<'r, Sh, K> {
        if self.here() {
            self.inner.call(sender, args)
        } else {
            None
        }
    }

    fn alive(&self) -> bool {
        self.inner.alive()
    }

    fn identity(&self) -> Identity<'static> {
        self.inner.identity()
    }
}

#[cold]
pub(crate) fn log_drop_panic(receiver: &ReceiverInfo, payload: &(dyn std::any::Any + Send)) {
    tracing::error!(
        name: "signal.drop_panic",
        target: "signals",
        receiver = receiver.name(),
        dispatch_uid = receiver.dispatch_uid(),
        location = %receiver.location(),
        panic = %crate::error::panic_message(payload),
        "dropping a disconnected receiver panicked; the panic was caught where it was dropped",
    );
}

/// A closure held strongly.
pub(crate) struct Strong<C, R> {
    f: C,
    _returns: PhantomData<fn() -> R>,
}

impl<C, R> Strong<C, R> {
    pub(crate) fn new(f: C) -> Self {
        Self {
            f,
            _returns: PhantomData,
        }
    }
}

impl<Sh, C, R> DynCall<Sh, Plain> for Strong<C, R>
where
    Sh: Shape,
    C: for<'s, 'r, 'a> Fn(Sh::Sender<'s>, &'r Sh::Args<'a>) -> R + Send + Sync + 'static,
    R: IntoResponse<Sh::Output>,
{
    const KIND: ReceiverKind = ReceiverKind::Runtime;

    #[inline]
    fn call<'r>(&self, sender: Sh::Sender<'r>, args: &'r Sh::Args<'_>) -> Called<'r, Sh, Plain> {
        Some((self.f)(sender, args).into_response())
    }

    fn alive(&self) -> bool {
        true
    }

    fn identity(&self) -> Identity<'static> {
        Identity::of::<C>()
    }
}

/// A closure called with a target it holds weakly; it stops firing once the target is dropped.
/// A plain one borrows the target for the call; an async one gets it as an `Arc`, kept alive
/// until its future completes.
pub(crate) struct WeakTarget<T, C, R> {
    target: std::sync::Weak<T>,
    f: C,
    _returns: PhantomData<fn() -> R>,
}

impl<T, C, R> WeakTarget<T, C, R> {
    pub(crate) fn new(target: &Arc<T>, f: C) -> Self {
        Self {
            target: Arc::downgrade(target),
            f,
            _returns: PhantomData,
        }
    }
}

impl<Sh, T, C, R> DynCall<Sh, Plain> for WeakTarget<T, C, R>
where
    Sh: Shape,
    T: Send + Sync,
    C: for<'t, 's, 'r, 'a> Fn(&'t T, Sh::Sender<'s>, &'r Sh::Args<'a>) -> R + Send + Sync + 'static,
    R: IntoResponse<Sh::Output>,
{
    const KIND: ReceiverKind = ReceiverKind::Weak;

    #[inline]
    fn call<'r>(&self, sender: Sh::Sender<'r>, args: &'r Sh::Args<'_>) -> Called<'r, Sh, Plain> {
        let target = self.target.upgrade()?;
        Some((self.f)(&target, sender, args).into_response())
    }

    fn alive(&self) -> bool {
        self.target.strong_count() > 0
    }

    fn identity(&self) -> Identity<'static> {
        Identity::bound::<C>(self.target.as_ptr().cast())
    }
}

impl<Sh, C, R> DynCall<Sh, Async> for Strong<C, R>
where
    Sh: Shape,
    C: AsyncReceiverFn<Sh, R>,
    R: IntoResponse<Sh::Output> + 'static,
{
    const KIND: ReceiverKind = ReceiverKind::Runtime;

    fn call<'r>(&self, sender: Sh::Sender<'r>, args: &'r Sh::Args<'_>) -> Called<'r, Sh, Async> {
        let future = (self.f)(sender, args);
        Some(Box::pin(async move { future.await.into_response() }))
    }

    fn alive(&self) -> bool {
        true
    }

    fn identity(&self) -> Identity<'static> {
        Identity::of::<C>()
    }
}

impl<Sh, T, C, R> DynCall<Sh, Async> for WeakTarget<T, C, R>
where
    Sh: Shape,
    T: Send + Sync,
    C: WeakAsyncReceiverFn<T, Sh, R>,
    R: IntoResponse<Sh::Output> + 'static,
{
    const KIND: ReceiverKind = ReceiverKind::Weak;

    fn call<'r>(&self, sender: Sh::Sender<'r>, args: &'r Sh::Args<'_>) -> Called<'r, Sh, Async> {
        let target = self.target.upgrade()?;
        let future = (self.f)(target, sender, args);
        Some(Box::pin(async move { future.await.into_response() }))
    }

    fn alive(&self) -> bool {
        self.target.strong_count() > 0
    }

    fn identity(&self) -> Identity<'static> {
        Identity::bound::<C>(self.target.as_ptr().cast())
    }
}

/// What the table, the dispatch loops and the diagnostics ask of a receiver, whatever its
/// shape.
pub(crate) trait Info {
    /// Who it is.
    fn info(&self) -> &ReceiverInfo;

    /// Whether the receiver is async.
    fn is_async(&self) -> bool;

    /// Whether it can still run: `false` once a weak receiver's target is gone, for good. A
    /// receiver that runs only on another thread is alive.
    fn alive(&self) -> bool;
}

/// `steps` in the order an async send starts them, which is also the order of its responses:
/// the plain receivers in dispatch order, then the async ones in dispatch order.
pub(crate) fn in_start_order<S: Info>(steps: &[S]) -> impl Iterator<Item = &S> {
    let plain = steps.iter().filter(|step| !step.is_async());
    plain.chain(steps.iter().filter(|step| step.is_async()))
}

/// One element of a dispatch list, run against a send's context `Cx`.
pub(crate) trait Step<Cx>: Info {
    type Output;

    /// Runs the receiver; `None` when it did not run: it is weak and its target is gone, or it
    /// runs only for sends started on another thread.
    fn run(&self, cx: &Cx) -> Option<Result<Self::Output, BoxError>>;

    /// Starts the receiver for an async send.
    fn start<'c>(&'c self, cx: &'c Cx) -> Started<'c, Self::Output>;
}

/// What a receiver of shape `Sh` is called with.
pub(crate) struct Cx<'r, 'a, Sh: Shape> {
    pub(crate) sender: Sh::Sender<'r>,
    pub(crate) args: &'r Sh::Args<'a>,
}

impl<Sh: Shape> Clone for Cx<'_, '_, Sh> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<Sh: Shape> Copy for Cx<'_, '_, Sh> {}

impl<'r, 'a, Sh: Shape> Cx<'r, 'a, Sh> {
    #[inline]
    pub(crate) fn new(sender: Sh::Sender<'r>, args: &'r Sh::Args<'a>) -> Self {
        Self { sender, args }
    }
}

/// What Django's lookup key is made of besides the sender: the `dispatch_uid`, or the
/// receiver's own identity. Worked out from the receiver when asked for ([`Keyed`]), so that a
/// record does not keep a copy of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Identity<'u> {
    /// Connected with a `dispatch_uid`.
    Uid(&'u str),
    /// A zero-sized receiver (a `fn` item or a closure that captures nothing): its type is its
    /// identity, as a Python function's `id` is.
    Code(TypeId),
    /// A zero-sized receiver bound to a weak target: the pair is its identity, as a bound
    /// method's `(id(self), id(func))` is in Django.
    Bound(TypeId, usize),
    /// A closure with captures, or a static receiver without uid: never equal to another.
    Unique,
}

impl Identity<'static> {
    /// The identity of the receiver `C` connected without uid, if it has one: zero-sized
    /// receivers (`fn` items, closures that capture nothing) are identified by their code.
    pub(crate) fn code<C: 'static>() -> Option<Self> {
        (mem::size_of::<C>() == 0).then(|| Self::Code(TypeId::of::<C>()))
    }

    /// The identity of a runtime receiver of type `C` connected without uid.
    pub(crate) fn of<C: 'static>() -> Self {
        Self::code::<C>().unwrap_or(Self::Unique)
    }

    /// The identity of a receiver of type `C` connected without uid, bound to the target at
    /// `target`.
    pub(crate) fn bound<C: 'static>(target: *const ()) -> Self {
        match Self::of::<C>() {
            Self::Code(code) => Self::Bound(code, target.addr()),
            other => other,
        }
    }
}

/// What has a lookup identity: the receivers a table holds.
pub(crate) trait Keyed {
    /// Its identity: its `dispatch_uid` if it has one, otherwise its code's (see
    /// [`Identity`]).
    fn identity(&self) -> Identity<'_>;
}
