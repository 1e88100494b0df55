//! The builder every signal's `connector()` returns: a `dispatch_uid`, a thread, then one of
//! the connect methods (plain, weak or scoped; on async signals, the same for async
//! receivers). Each connect method is written once, for any [`Target`]: the target says which
//! receivers it takes (its [`Shape`]) and how a new one joins its signal (value signal; type
//! signal for any sender; type signal for one sender type).

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::panic::Location;
use std::sync::Arc;
use std::thread::ThreadId;

use crate::connect::{Connection, Disconnect, ScopedConnection};
use crate::info::Connecting;
use crate::mode::{Async, Mode};
use crate::raw::Receiver;
use crate::receiver::{
    AsyncReceiverFn, IntoResponse, Shape, Strong, WeakAsyncReceiverFn, WeakTarget,
};
use crate::table;

/// Where a [`Connector`] connects: a signal, and which of its receivers' shapes. Implemented
/// for the targets of the signal types only.
pub trait Target<'s>: Sized {
    /// What the receivers it connects are given and return.
    type Shape: Shape;
    /// The signal's delivery mode: async signals' connectors also connect async receivers.
    type Mode: Mode;

    /// Adds `receiver` to the signal; returns its handle, or a duplicate's.
    #[doc(hidden)]
    fn add(self, receiver: NewReceiver<Self::Shape>) -> Connection;

    /// The signal, for a guard to disconnect from.
    #[doc(hidden)]
    fn signal(&self) -> &'s dyn Disconnect;
}

/// A receiver about to join a signal: its entry, which knows its lookup identity.
#[doc(hidden)]
pub struct NewReceiver<Sh: Shape> {
    pub(crate) entry: Receiver<Sh>,
}

/// Makes a runtime receiver from its identity and the thread it is limited to, if any.
trait Make<Sh: Shape>: FnOnce(Connecting, Option<ThreadId>) -> Receiver<Sh> {}

impl<Sh: Shape, F: FnOnce(Connecting, Option<ThreadId>) -> Receiver<Sh>> Make<Sh> for F {}

/// The sender a receiver of shape `Sh` is told about, by lifetime.
type SenderOf<'x, Sh> = <Sh as Shape>::Sender<'x>;
/// The arguments a receiver of shape `Sh` gets, by lifetime.
type ArgsOf<'a, Sh> = <Sh as Shape>::Args<'a>;
/// What a receiver of shape `Sh` returns on success.
type OutputOf<Sh> = <Sh as Shape>::Output;

/// Builder returned by every signal's `connector()`: set a `dispatch_uid` (and, on a value
/// signal, a sender; on a type signal, a sender type), then connect.
#[must_use = "nothing is connected until `connect`, `connect_weak` or `connect_scoped` is called"]
pub struct Connector<'s, To: Target<'s>> {
    pub(crate) target: To,
    dispatch_uid: Option<Cow<'static, str>>,
    thread: Option<ThreadId>,
    _signal: PhantomData<&'s ()>,
}

impl<'s, To: Target<'s>> Connector<'s, To> {
    pub(crate) fn new(target: To) -> Self {
        Self {
            target,
            dispatch_uid: None,
            thread: None,
            _signal: PhantomData,
        }
    }

    /// This builder, for another target of the same signal (a sender type picked).
    pub(crate) fn retarget<Other: Target<'s>>(self, target: Other) -> Connector<'s, Other> {
        Connector {
            target,
            dispatch_uid: self.dispatch_uid,
            thread: self.thread,
            _signal: PhantomData,
        }
    }

    /// Identify the receiver by `uid` instead of by its code: a second connect with the same
    /// uid for the same sender is a no-op that keeps the first, and `disconnect_uid` removes
    /// it. An empty uid counts as none, as in Django.
    pub fn dispatch_uid(mut self, uid: impl Into<Cow<'static, str>>) -> Self {
        self.dispatch_uid = table::dispatch_uid(uid);
        self
    }

    /// Fire only for sends started on the calling thread (for an async send, the thread that
    /// first polls it): the scope of the [testing aids](crate::testing), for a receiver that
    /// lasts one test while other tests send on other threads. Their sends skip it, though
    /// `has_listeners` and `receivers` count it on every thread.
    pub fn this_thread(mut self) -> Self {
        self.thread = Some(std::thread::current().id());
        self
    }

    /// Connects `receiver`, which takes the sender and the arguments and returns the output or
    /// `Result<output, E>`. A `fn` or a closure that captures nothing is identified by its code,
    /// so connecting the same one twice (for the same sender) is a no-op, as in Django;
    /// closures with captures are distinct receivers each time.
    #[track_caller]
    pub fn connect<C, R>(self, receiver: C) -> Connection
    where
        C: for<'x, 'r, 'a> Fn(SenderOf<'x, To::Shape>, &'r ArgsOf<'a, To::Shape>) -> R
            + Send
            + Sync
            + 'static,
        R: IntoResponse<OutputOf<To::Shape>> + 'static,
    {
        self.add(|connecting, thread| {
            Receiver::plain::<C, _>(connecting, Strong::new(receiver), thread)
        })
    }

    /// Connects `receiver` with a weak hold on `target`: it is called with `&T` while `target`
    /// is alive, stops firing once it is dropped, and is then purged. A zero-sized receiver
    /// bound to the same target twice is one receiver, as a bound method is in Django.
    #[track_caller]
    pub fn connect_weak<T, C, R>(self, target: &Arc<T>, receiver: C) -> Connection
    where
        T: Send + Sync + 'static,
        C: for<'t, 'x, 'r, 'a> Fn(&'t T, SenderOf<'x, To::Shape>, &'r ArgsOf<'a, To::Shape>) -> R
            + Send
            + Sync
            + 'static,
        R: IntoResponse<OutputOf<To::Shape>> + 'static,
    {
        let weak = WeakTarget::new(target, receiver);
        self.add(|connecting, thread| Receiver::plain::<C, _>(connecting, weak, thread))
    }

    /// Connects `receiver` until the returned guard is dropped (also while unwinding).
    #[track_caller]
    pub fn connect_scoped<C, R>(self, receiver: C) -> ScopedConnection<'s>
    where
        C: for<'x, 'r, 'a> Fn(SenderOf<'x, To::Shape>, &'r ArgsOf<'a, To::Shape>) -> R
            + Send
            + Sync
            + 'static,
        R: IntoResponse<OutputOf<To::Shape>> + 'static,
    {
        let signal = self.target.signal();
        ScopedConnection::new(signal, self.connect(receiver))
    }

    /// Connects the receiver `make` makes with the builder's options.
    #[track_caller]
    fn add(self, make: impl Make<To::Shape>) -> Connection {
        let connecting = Connecting {
            location: Location::caller(),
            dispatch_uid: self.dispatch_uid,
        };
        let entry = make(connecting, self.thread);
        self.target.add(NewReceiver { entry })
    }
}

impl<'s, To: Target<'s, Mode = Async>> Connector<'s, To> {
    /// Connects the async `receiver`: a closure that returns a boxed future, which may borrow
    /// the sender and the arguments: `|_, args: &Args<'_>| Box::pin(async move { .. })`.
    #[track_caller]
    pub fn connect_async<C, R>(self, receiver: C) -> Connection
    where
        C: AsyncReceiverFn<To::Shape, R>,
        R: IntoResponse<OutputOf<To::Shape>> + 'static,
    {
        self.add(|connecting, thread| {
            Receiver::async_::<C, _>(connecting, Strong::new(receiver), thread)
        })
    }

    /// Connects the async `receiver` with a weak hold on `target`: while the target lives, the
    /// receiver gets it as an `Arc`, which its future keeps alive until it completes.
    #[track_caller]
    pub fn connect_weak_async<T, C, R>(self, target: &Arc<T>, receiver: C) -> Connection
    where
        T: Send + Sync + 'static,
        C: WeakAsyncReceiverFn<T, To::Shape, R>,
        R: IntoResponse<OutputOf<To::Shape>> + 'static,
    {
        let weak = WeakTarget::new(target, receiver);
        self.add(|connecting, thread| Receiver::async_::<C, _>(connecting, weak, thread))
    }

    /// Connects the async `receiver` until the returned guard is dropped.
    #[track_caller]
    pub fn connect_scoped_async<C, R>(self, receiver: C) -> ScopedConnection<'s>
    where
        C: AsyncReceiverFn<To::Shape, R>,
        R: IntoResponse<OutputOf<To::Shape>> + 'static,
    {
        let signal = self.target.signal();
        ScopedConnection::new(signal, self.connect_async(receiver))
    }
}

impl<'s, To: Target<'s> + fmt::Debug> fmt::Debug for Connector<'s, To> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("target", &self.target)
            .field("dispatch_uid", &self.dispatch_uid)
            .field("thread", &self.thread)
            .finish()
    }
}
