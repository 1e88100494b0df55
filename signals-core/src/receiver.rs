//! Receivers as the dispatcher stores them: who they are ([`ReceiverInfo`]) and how to call
//! them (an erased [`Call`], either a plain `fn` pointer or a shared trait object).
//!
//! Every receiver of every signal is called through the same shape, `(sender, &args) ->
//! Result<output, BoxError>`, described by a [`Shape`]. Static receivers (from `#[receiver]`)
//! are `fn` pointers built in a `const`; runtime receivers are closures behind an `Arc`.

use std::any::type_name;
use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::thread::ThreadId;

use crate::error::BoxError;

/// Where a receiver was defined (`#[receiver]`) or connected (`connect`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceLocation {
    file: &'static str,
    line: u32,
    column: u32,
}

impl SourceLocation {
    /// A location from its parts, as `file!()`, `line!()` and `column!()` give them.
    #[must_use]
    pub const fn new(file: &'static str, line: u32, column: u32) -> Self {
        Self { file, line, column }
    }

    /// The location of the caller of the `#[track_caller]` function that calls this.
    #[must_use]
    #[track_caller]
    pub fn caller() -> Self {
        let location = Location::caller();
        Self::new(location.file(), location.line(), location.column())
    }

    /// The source file, relative to the crate's workspace as `file!()` gives it.
    #[must_use]
    pub const fn file(&self) -> &'static str {
        self.file
    }

    /// The 1-based line.
    #[must_use]
    pub const fn line(&self) -> u32 {
        self.line
    }

    /// The 1-based column.
    #[must_use]
    pub const fn column(&self) -> u32 {
        self.column
    }
}

impl fmt::Display for SourceLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// How a receiver was connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReceiverKind {
    /// Registered at link time by `#[receiver]` (or by hand through the registry).
    Static,
    /// Connected at run time with `connect`; holds its closure strongly.
    Runtime,
    /// Connected at run time with `connect_weak`; stops firing once its target is dropped.
    Weak,
}

/// What is known about a receiver: everything except how to call it.
#[derive(Debug)]
pub struct ReceiverMeta {
    pub(crate) name: &'static str,
    /// `None`: the module part of `name`, a type name, worked out when asked for.
    pub(crate) module_path: Option<&'static str>,
    pub(crate) location: SourceLocation,
    pub(crate) dispatch_uid: Option<Cow<'static, str>>,
    pub(crate) priority: i32,
    pub(crate) kind: ReceiverKind,
}

impl ReceiverMeta {
    /// Metadata of a static receiver, built in a `const` by generated code.
    #[doc(hidden)]
    #[must_use]
    pub const fn new_static(
        name: &'static str,
        module_path: &'static str,
        location: SourceLocation,
        dispatch_uid: Option<&'static str>,
        priority: i32,
    ) -> Self {
        Self {
            name,
            module_path: Some(module_path),
            location,
            dispatch_uid: match dispatch_uid {
                Some(uid) => Some(Cow::Borrowed(uid)),
                None => None,
            },
            priority,
            kind: ReceiverKind::Static,
        }
    }

    /// Metadata of a runtime receiver whose code has type `C`.
    pub(crate) fn new_runtime<C>(
        location: SourceLocation,
        dispatch_uid: Option<Cow<'static, str>>,
        kind: ReceiverKind,
    ) -> Self {
        Self {
            name: type_name::<C>(),
            module_path: None,
            location,
            dispatch_uid,
            priority: 0,
            kind,
        }
    }
}

/// The module part of a type name such as `app::receivers::setup::{{closure}}`.
fn module_of(type_name: &'static str) -> &'static str {
    let path = type_name.split("::{{").next().unwrap_or(type_name);
    let path = path.split('<').next().unwrap_or(path);
    path.rsplit_once("::").map_or("", |(module, _)| module)
}

/// The identity of one receiver: its name, module, source location, `dispatch_uid`, priority
/// and kind. Cheap to clone; carried by every response and error.
#[derive(Clone)]
pub struct ReceiverInfo(InfoRepr);

#[derive(Clone)]
enum InfoRepr {
    Static(&'static ReceiverMeta),
    Runtime(Arc<ReceiverMeta>),
}

impl ReceiverInfo {
    pub(crate) fn from_static(meta: &'static ReceiverMeta) -> Self {
        Self(InfoRepr::Static(meta))
    }

    pub(crate) fn from_runtime(meta: ReceiverMeta) -> Self {
        Self(InfoRepr::Runtime(Arc::new(meta)))
    }

    fn meta(&self) -> &ReceiverMeta {
        match &self.0 {
            InfoRepr::Static(meta) => meta,
            InfoRepr::Runtime(meta) => meta,
        }
    }

    /// The receiver's name: the function's path for static receivers and fns, the closure's
    /// type name (`crate::module::function::{{closure}}`) for closures.
    #[must_use]
    pub fn name(&self) -> &'static str {
        self.meta().name
    }

    /// The module the receiver is defined in.
    #[must_use]
    pub fn module_path(&self) -> &'static str {
        let meta = self.meta();
        meta.module_path.unwrap_or_else(|| module_of(meta.name))
    }

    /// Where the receiver was defined (static) or connected (runtime).
    #[must_use]
    pub fn location(&self) -> SourceLocation {
        self.meta().location
    }

    /// The `dispatch_uid` it was connected with, if any.
    #[must_use]
    pub fn dispatch_uid(&self) -> Option<&str> {
        self.meta().dispatch_uid.as_deref()
    }

    /// Its priority: higher runs first among static receivers; runtime receivers have 0.
    #[must_use]
    pub fn priority(&self) -> i32 {
        self.meta().priority
    }

    /// How it was connected.
    #[must_use]
    pub fn kind(&self) -> ReceiverKind {
        self.meta().kind
    }
}

impl ReceiverInfo {
    /// Whether both describe the same receiver (not merely equal metadata).
    pub(crate) fn same(&self, other: &Self) -> bool {
        std::ptr::eq(self.meta(), other.meta())
    }
}

impl fmt::Debug for ReceiverInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let meta = self.meta();
        f.debug_struct("ReceiverInfo")
            .field("name", &meta.name)
            .field("dispatch_uid", &meta.dispatch_uid)
            .field("location", &meta.location)
            .field("priority", &meta.priority)
            .field("kind", &meta.kind)
            .finish()
    }
}

impl fmt::Display for ReceiverInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let meta = self.meta();
        write!(f, "`{}`", meta.name)?;
        if let Some(uid) = &meta.dispatch_uid {
            write!(f, " (dispatch_uid {uid:?})")?;
        }
        write!(f, " at {}", meta.location)
    }
}

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
/// (`Option<&Sender>` for a value signal, [`TypeSender`](crate::TypeSender) for a type
/// signal). `Self` is what the signal passes, `P` the parameter's type.
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

/// A static receiver of shape `Sh`: the adapter closure `#[receiver]` generates, or any
/// `fn` with that signature.
pub(crate) type StaticCall<Sh> = dyn for<'s, 'r, 'a> Fn(
        <Sh as Shape>::Sender<'s>,
        &'r <Sh as Shape>::Args<'a>,
    ) -> Result<<Sh as Shape>::Output, BoxError>
    + Send
    + Sync;

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

/// A static async receiver of shape `Sh`: the adapter closure `#[receiver]` generates for an
/// `async fn`.
pub(crate) type StaticAsyncCall<Sh> = dyn for<'r, 'a> Fn(
        <Sh as Shape>::Sender<'r>,
        &'r <Sh as Shape>::Args<'a>,
    ) -> BoxFuture<'r, Result<<Sh as Shape>::Output, BoxError>>
    + Send
    + Sync;

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

/// A receiver connected at run time, behind an `Arc`.
pub(crate) trait DynCall<Sh: Shape>: Send + Sync {
    /// Calls the receiver; `None` when it is weak and its target is gone.
    fn call(
        &self,
        sender: Sh::Sender<'_>,
        args: &Sh::Args<'_>,
    ) -> Option<Result<Sh::Output, BoxError>>;

    /// Whether it can still run (a weak receiver whose target was dropped cannot).
    fn alive(&self) -> bool;
}

/// An async receiver connected at run time, behind an `Arc`.
pub(crate) trait DynAsyncCall<Sh: Shape>: Send + Sync {
    /// Starts the receiver; `None` when it is weak and its target is gone.
    fn call<'r>(
        &self,
        sender: Sh::Sender<'r>,
        args: &'r Sh::Args<'_>,
    ) -> Option<BoxFuture<'r, Result<Sh::Output, BoxError>>>;

    /// Whether it can still run.
    fn alive(&self) -> bool;
}

/// How to call one receiver. Sync signals only ever hold the first two kinds: only async
/// signals accept async receivers, at compile time (`#[receiver]`) and in their API (`connect`).
pub(crate) enum Call<Sh: Shape> {
    Static(&'static StaticCall<Sh>),
    Dyn(Arc<dyn DynCall<Sh>>),
    StaticAsync(&'static StaticAsyncCall<Sh>),
    DynAsync(Arc<dyn DynAsyncCall<Sh>>),
}

impl<Sh: Shape> Clone for Call<Sh> {
    fn clone(&self) -> Self {
        match self {
            Self::Static(f) => Self::Static(*f),
            Self::Dyn(f) => Self::Dyn(Arc::clone(f)),
            Self::StaticAsync(f) => Self::StaticAsync(*f),
            Self::DynAsync(f) => Self::DynAsync(Arc::clone(f)),
        }
    }
}

/// A receiver started by an async send: done already (a sync receiver, or a weak one whose
/// target is gone), or a future to await.
pub(crate) enum Started<'r, O> {
    Ready(Option<Result<O, BoxError>>),
    Pending(BoxFuture<'r, Result<O, BoxError>>),
}

impl<Sh: Shape> Call<Sh> {
    /// Runs a sync receiver; `None` when it is weak and its target is gone.
    #[inline]
    pub(crate) fn invoke(
        &self,
        sender: Sh::Sender<'_>,
        args: &Sh::Args<'_>,
    ) -> Option<Result<Sh::Output, BoxError>> {
        match self {
            Self::Static(f) => Some(f(sender, args)),
            Self::Dyn(f) => f.call(sender, args),
            Self::StaticAsync(_) | Self::DynAsync(_) => {
                unreachable!("async receivers are only connected to async signals")
            }
        }
    }

    /// Starts the receiver for an async send.
    pub(crate) fn start<'r>(
        &self,
        sender: Sh::Sender<'r>,
        args: &'r Sh::Args<'_>,
    ) -> Started<'r, Sh::Output> {
        match self {
            Self::Static(_) | Self::Dyn(_) => Started::Ready(self.invoke(sender, args)),
            Self::StaticAsync(f) => Started::Pending(f(sender, args)),
            Self::DynAsync(f) => match f.call(sender, args) {
                Some(future) => Started::Pending(future),
                None => Started::Ready(None),
            },
        }
    }

    /// Whether the receiver is an `async` one, which async sends start after the sync ones.
    pub(crate) fn is_async(&self) -> bool {
        matches!(self, Self::StaticAsync(_) | Self::DynAsync(_))
    }

    /// Whether it can still run: `false` once a weak receiver's target is gone, for good. A
    /// receiver that runs only on another thread is alive.
    pub(crate) fn alive(&self) -> bool {
        match self {
            Self::Static(_) | Self::StaticAsync(_) => true,
            Self::Dyn(f) => f.alive(),
            Self::DynAsync(f) => f.alive(),
        }
    }

    /// This receiver, made to run only for sends started on thread `owner` if there is one.
    pub(crate) fn on_thread(self, owner: Option<ThreadId>) -> Self {
        match (self, owner) {
            (Self::Dyn(inner), Some(owner)) => Self::Dyn(Arc::new(OnThread { owner, inner })),
            (Self::DynAsync(inner), Some(owner)) => {
                Self::DynAsync(Arc::new(OnThread { owner, inner }))
            }
            (call, _) => call,
        }
    }
}

/// A runtime receiver that runs only for sends started on one thread, where an async send
/// starts its receivers on its first poll: the scope of the testing aids. Other threads' sends
/// skip it as if it were not connected.
struct OnThread<C: ?Sized> {
    owner: ThreadId,
    inner: Arc<C>,
}

impl<C: ?Sized> OnThread<C> {
    fn here(&self) -> bool {
        std::thread::current().id() == self.owner
    }
}

impl<Sh: Shape> DynCall<Sh> for OnThread<dyn DynCall<Sh>> {
    fn call(
        &self,
        sender: Sh::Sender<'_>,
        args: &Sh::Args<'_>,
    ) -> Option<Result<Sh::Output, BoxError>> {
        if self.here() {
            self.inner.call(sender, args)
        } else {
            None
        }
    }

    fn alive(&self) -> bool {
        self.inner.alive()
    }
}

impl<Sh: Shape> DynAsyncCall<Sh> for OnThread<dyn DynAsyncCall<Sh>> {
    fn call<'r>(
        &self,
        sender: Sh::Sender<'r>,
        args: &'r Sh::Args<'_>,
    ) -> Option<BoxFuture<'r, Result<Sh::Output, BoxError>>> {
        if self.here() {
            self.inner.call(sender, args)
        } else {
            None
        }
    }

    fn alive(&self) -> bool {
        self.inner.alive()
    }
}

/// A receiver together with its identity: one element of a dispatch list.
pub(crate) struct Entry<Sh: Shape> {
    pub(crate) info: ReceiverInfo,
    pub(crate) call: Call<Sh>,
}

impl<Sh: Shape> Clone for Entry<Sh> {
    fn clone(&self) -> Self {
        Self {
            info: self.info.clone(),
            call: self.call.clone(),
        }
    }
}

/// Releases a runtime receiver's closure where it is dropped, which may be in any later send
/// (the one that rebuilds the snapshot, or one on another thread that still held the old
/// snapshot) or in any edit: a panic in the `Drop` of a captured value is caught there and
/// logged as `signal.drop_panic`, so that it never escapes a send that did not run the
/// receiver, nor an unrelated connect.
impl<Sh: Shape> Drop for Entry<Sh> {
    fn drop(&mut self) {
        if matches!(self.call, Call::Static(_) | Call::StaticAsync(_)) {
            return; // static receivers own nothing
        }
        let call = std::mem::replace(&mut self.call, Call::Static(&released::<Sh>));
        if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(call))) {
            log_drop_panic(&self.info, &*payload);
        }
    }
}

/// What an [`Entry`] holds while its closure is being dropped: never called.
fn released<Sh: Shape>(_: Sh::Sender<'_>, _: &Sh::Args<'_>) -> Result<Sh::Output, BoxError> {
    Err("this receiver was disconnected and released".into())
}

#[cold]
fn log_drop_panic(receiver: &ReceiverInfo, payload: &(dyn std::any::Any + Send)) {
    tracing::error!(
        name: "signal.drop_panic",
        target: "signals",
        receiver = receiver.name(),
        dispatch_uid = receiver.dispatch_uid(),
        location = %receiver.location(),
        panic = %crate::dispatch::panic_message(payload),
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

impl<Sh, C, R> DynCall<Sh> for Strong<C, R>
where
    Sh: Shape,
    C: for<'s, 'r, 'a> Fn(Sh::Sender<'s>, &'r Sh::Args<'a>) -> R + Send + Sync,
    R: IntoResponse<Sh::Output>,
{
    #[inline]
    fn call(
        &self,
        sender: Sh::Sender<'_>,
        args: &Sh::Args<'_>,
    ) -> Option<Result<Sh::Output, BoxError>> {
        Some((self.f)(sender, args).into_response())
    }

    fn alive(&self) -> bool {
        true
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

impl<Sh, T, C, R> DynCall<Sh> for WeakTarget<T, C, R>
where
    Sh: Shape,
    T: Send + Sync,
    C: for<'t, 's, 'r, 'a> Fn(&'t T, Sh::Sender<'s>, &'r Sh::Args<'a>) -> R + Send + Sync,
    R: IntoResponse<Sh::Output>,
{
    #[inline]
    fn call(
        &self,
        sender: Sh::Sender<'_>,
        args: &Sh::Args<'_>,
    ) -> Option<Result<Sh::Output, BoxError>> {
        let target = self.target.upgrade()?;
        Some((self.f)(&target, sender, args).into_response())
    }

    fn alive(&self) -> bool {
        self.target.strong_count() > 0
    }
}

impl<Sh, C, R> DynAsyncCall<Sh> for Strong<C, R>
where
    Sh: Shape,
    C: for<'r, 'a> Fn(Sh::Sender<'r>, &'r Sh::Args<'a>) -> BoxFuture<'r, R> + Send + Sync,
    R: IntoResponse<Sh::Output> + 'static,
{
    fn call<'r>(
        &self,
        sender: Sh::Sender<'r>,
        args: &'r Sh::Args<'_>,
    ) -> Option<BoxFuture<'r, Result<Sh::Output, BoxError>>> {
        let future = (self.f)(sender, args);
        Some(Box::pin(async move { future.await.into_response() }))
    }

    fn alive(&self) -> bool {
        true
    }
}

impl<Sh, T, C, R> DynAsyncCall<Sh> for WeakTarget<T, C, R>
where
    Sh: Shape,
    T: Send + Sync,
    C: for<'r, 'a> Fn(Arc<T>, Sh::Sender<'r>, &'r Sh::Args<'a>) -> BoxFuture<'r, R> + Send + Sync,
    R: IntoResponse<Sh::Output> + 'static,
{
    fn call<'r>(
        &self,
        sender: Sh::Sender<'r>,
        args: &'r Sh::Args<'_>,
    ) -> Option<BoxFuture<'r, Result<Sh::Output, BoxError>>> {
        let target = self.target.upgrade()?;
        let future = (self.f)(target, sender, args);
        Some(Box::pin(async move { future.await.into_response() }))
    }

    fn alive(&self) -> bool {
        self.target.strong_count() > 0
    }
}

#[cfg(test)]
mod tests {
    use super::module_of;

    #[test]
    fn module_of_strips_the_item_and_closure_suffixes() {
        assert_eq!(
            module_of("app::receivers::setup::{{closure}}"),
            "app::receivers"
        );
        assert_eq!(module_of("app::receivers::setup"), "app::receivers");
        assert_eq!(module_of("setup"), "");
        assert_eq!(
            module_of("app::hooks::make<u8>::{{closure}}::{{closure}}"),
            "app::hooks"
        );
    }
}
