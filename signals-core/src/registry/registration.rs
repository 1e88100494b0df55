//! The `const` data that `#[receiver]` and `signal!` emit, and the traits that tie a receiver's
//! call to its signal's types at compile time.
//!
//! Generated code never names a signal's types: `any_receiver(&signal, &|sender, args| ..,
//! meta)` (or `value_receiver` / `type_receiver`) infers them from the `static`, which gives
//! the adapter closure its parameter types, so that every parameter is checked against the
//! signal. The closure is erased behind `dyn Any`, next to an `adopt` function monomorphised
//! for it that undoes the erasure once, when the signal is first indexed.

use std::any::Any;
use std::fmt::{self, Debug};

use crate::error::{BoxError, WiringError};
use crate::info::{ReceiverInfo, ReceiverMeta, SourceLocation};
use crate::mode::{Async, Mode, Plain};
use crate::raw::{Receiver, StaticCallable, static_async_owner};
use crate::receiver::{AsyncCallable, Callable, Shape, TypeSender};
use crate::registry::Listing;
use crate::table::Row;

/// Turns a registration back into its signal's typed entry.
pub(crate) type Adopt = fn(&'static Registration, &mut dyn Any);

/// What the registry, [`explain`](fn@crate::explain) and the testing aids need of any signal,
/// whatever its types: object-safe, so that they hold `&dyn SignalRef`. Implemented by every
/// signal type, through [`Indexed`](super::Indexed).
pub(crate) trait SignalRef: Sync {
    /// The signal's name.
    fn name(&self) -> &'static str;
    /// Indexes the signal if it was not yet, and returns the problems found.
    fn problems(&self) -> Vec<WiringError>;
    /// The problems among the signal's static receivers, found without indexing the signal.
    fn static_problems(&self) -> Vec<WiringError>;
    /// The signal's sender kind and its live receivers, in dispatch order.
    fn listing(&self) -> Listing;
    /// The address that identifies the signal.
    fn address(&self) -> usize {
        crate::registry::address(self)
    }
    /// Every receiver the signal has or had, for [`explain`](fn@crate::explain): the table in
    /// dispatch order, then static receivers that are not in it.
    fn rows(&self) -> Vec<Row>;
}

/// A signal of any kind: [`Signal`](crate::Signal), [`AsyncSignal`](crate::AsyncSignal),
/// [`TypeSignal`](crate::TypeSignal) or [`AsyncTypeSignal`](crate::AsyncTypeSignal). The testing
/// aids and [`explain`](fn@crate::explain) take one. Sealed: implemented by the signal types
/// only.
pub trait AnySignal: sealed::Signal {}

impl<S: sealed::Signal + ?Sized> AnySignal for S {}

/// The crate's view of `signal`.
pub(crate) fn signal_ref<S: AnySignal + ?Sized>(signal: &S) -> &dyn SignalRef {
    signal.erased().get()
}

/// What [`AnySignal`] needs of a signal, out of reach of other crates.
pub(crate) mod sealed {
    use super::SignalRef;

    /// The crate's view of a signal. Not public API.
    pub trait Signal: Sync {
        /// The signal, as the crate's internals use it.
        #[doc(hidden)]
        fn erased(&self) -> Erased<'_>;
    }

    /// A signal as the crate's internals use it. Not public API.
    pub struct Erased<'a>(pub(crate) &'a dyn SignalRef);

    impl<'a> Erased<'a> {
        /// The signal.
        pub(crate) fn get(self) -> &'a dyn SignalRef {
            self.0
        }
    }

    impl<S: SignalRef> Signal for S {
        fn erased(&self) -> Erased<'_> {
            Erased(self)
        }
    }
}

/// A signal that `#[receiver]` can register receivers with.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a signal",
    label = "not a signal",
    note = "`signal = ...` must name a `static` declared with `signals::signal!`"
)]
pub trait SignalKind: AnySignal + Sized + 'static {
    /// The call shape of its any-sender receivers.
    type AnyShape: Shape;
    /// Adopts an any-sender registration whose call is a `C`, a receiver of mode `K`.
    fn adopt_any<K: Mode, C: StaticCallable<Self::AnyShape, K>>(
        registration: &'static Registration,
        out: &mut dyn Any,
    );
}

/// A signal whose sender is a value.
#[diagnostic::on_unimplemented(
    message = "the sender of `{Self}` is a type, not a value",
    label = "this signal is sent by a type",
    note = "write the sender as a type, `sender = User`; a name in capitals (`DB`) or a unit \
            struct is read as a value: mark it a type with `sender = type DB`"
)]
pub trait ValueSenders: SignalKind {
    /// The sender's type.
    type Sender: Any + Debug + Send + Sync;
    /// The call shape of its receivers.
    type Shape: Shape;
    /// Adopts a registration for one sender whose call is a `C`, a receiver of mode `K`.
    fn adopt<K: Mode, C: StaticCallable<<Self as ValueSenders>::Shape, K>>(
        registration: &'static Registration,
        out: &mut dyn Any,
    );
}

/// A signal whose sender is a type, `M` among them.
#[diagnostic::on_unimplemented(
    message = "the sender of `{Self}` is a value, not the type `{M}`",
    label = "this signal is sent by a value",
    note = "write the sender as a value, `sender = Enum::Variant`, a literal or a constant; or \
            force a value with `sender = const VALUE`"
)]
pub trait TypeSenders<M: 'static>: SignalKind {
    /// The call shape of its receivers for `M`.
    type Shape: Shape;
    /// Adopts a registration for `M` whose call is a `C`, a receiver of mode `K`.
    fn adopt<K: Mode, C: StaticCallable<<Self as TypeSenders<M>>::Shape, K>>(
        registration: &'static Registration,
        out: &mut dyn Any,
    );
}

/// A signal whose receivers may be `async fn`. Only async signals implement it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is a sync signal: its receivers cannot be `async fn`",
    label = "a sync signal",
    note = "remove `async` from the receiver, or declare the signal `async` in `signal!`"
)]
pub trait AsyncReceivers: SignalKind {}

/// A sender value held by a static registration.
pub(crate) trait SenderValue: Any + Debug + Send + Sync {
    /// Itself, as `Any`.
    fn as_any(&self) -> &dyn Any;
}

impl<T: Any + Debug + Send + Sync> SenderValue for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The sender a static receiver is connected to.
#[derive(Clone, Copy)]
pub(crate) enum StaticSender {
    Any,
    Value(&'static dyn SenderValue),
    Type(fn() -> TypeSender),
}

/// One static receiver, as `#[receiver]` registers it. Built only by [`any_receiver`],
/// [`value_receiver`] and [`type_receiver`], or for an `async fn` by [`async_any_receiver`],
/// [`async_value_receiver`] and [`async_type_receiver`], which tie its call to its signal's
/// types.
pub struct Registration {
    pub(crate) signal: &'static dyn AnySignal,
    pub(crate) meta: ReceiverMeta,
    pub(crate) sender: StaticSender,
    call: &'static (dyn Any + Send + Sync),
    adopt: Adopt,
}

/// Registers `call` as an any-sender receiver of `signal`.
#[must_use]
pub const fn any_receiver<S, C>(
    signal: &'static S,
    call: &'static C,
    meta: ReceiverMeta,
) -> Registration
where
    S: SignalKind,
    C: Callable<S::AnyShape>,
{
    Registration::new(
        signal,
        meta,
        StaticSender::Any,
        call,
        S::adopt_any::<Plain, C>,
    )
}

/// A value signal's sender as a registration holds it.
const fn sender_value<S: ValueSenders>(sender: &'static S::Sender) -> &'static dyn SenderValue {
    sender
}

/// Registers `call` as a receiver of `signal` for the sender value `sender`.
#[must_use]
pub const fn value_receiver<S, V, C>(
    signal: &'static S,
    sender: &'static V,
    call: &'static C,
    meta: ReceiverMeta,
) -> Registration
where
    // No bound on `V` of its own: when `S` is not a value signal, the one error says so.
    S: ValueSenders<Sender = V>,
    C: Callable<<S as ValueSenders>::Shape>,
{
    let sender = StaticSender::Value(sender_value::<S>(sender));
    Registration::new(signal, meta, sender, call, S::adopt::<Plain, C>)
}

/// Registers `call` as a receiver of `signal` for the sender type `M`.
#[must_use]
pub const fn type_receiver<S, M, C>(
    signal: &'static S,
    call: &'static C,
    meta: ReceiverMeta,
) -> Registration
where
    S: TypeSenders<M>,
    M: 'static,
    // Spelled out rather than `Callable<..>`: when the signal does not take `M`, this is one
    // error (with the bound `M` misses in its notes); `Callable` makes it two.
    C: for<'s, 'r, 'a> Fn(
            <<S as TypeSenders<M>>::Shape as Shape>::Sender<'s>,
            &'r <<S as TypeSenders<M>>::Shape as Shape>::Args<'a>,
        )
            -> Result<<<S as TypeSenders<M>>::Shape as Shape>::Output, BoxError>
        + Send
        + Sync
        + 'static,
{
    let sender = StaticSender::Type(TypeSender::of::<M>);
    Registration::new(
        signal,
        meta,
        sender,
        call,
        <S as TypeSenders<M>>::adopt::<Plain, C>,
    )
}

/// Registers the async `call` as an any-sender receiver of the async `signal`.
#[must_use]
pub const fn async_any_receiver<S, C>(
    signal: &'static S,
    call: &'static C,
    meta: ReceiverMeta,
) -> Registration
where
    S: AsyncReceivers,
    C: AsyncCallable<S::AnyShape>,
{
    Registration::new(
        signal,
        meta.started_by(static_async_owner::<S::AnyShape, C>()),
        StaticSender::Any,
        call,
        S::adopt_any::<Async, C>,
    )
}

/// Registers the async `call` as a receiver of the async `signal` for the sender value
/// `sender`.
#[must_use]
pub const fn async_value_receiver<S, V, C>(
    signal: &'static S,
    sender: &'static V,
    call: &'static C,
    meta: ReceiverMeta,
) -> Registration
where
    S: AsyncReceivers + ValueSenders<Sender = V>,
    C: AsyncCallable<<S as ValueSenders>::Shape>,
{
    let sender = StaticSender::Value(sender_value::<S>(sender));
    let meta = meta.started_by(static_async_owner::<<S as ValueSenders>::Shape, C>());
    Registration::new(signal, meta, sender, call, S::adopt::<Async, C>)
}

/// Registers the async `call` as a receiver of the async `signal` for the sender type `M`.
#[must_use]
pub const fn async_type_receiver<S, M, C>(
    signal: &'static S,
    call: &'static C,
    meta: ReceiverMeta,
) -> Registration
where
    S: AsyncReceivers + TypeSenders<M>,
    M: 'static,
    // Spelled out, as in `type_receiver`.
    C: for<'r, 'a> Fn(
            <<S as TypeSenders<M>>::Shape as Shape>::Sender<'r>,
            &'r <<S as TypeSenders<M>>::Shape as Shape>::Args<'a>,
        ) -> crate::receiver::BoxFuture<
            'r,
            Result<<<S as TypeSenders<M>>::Shape as Shape>::Output, BoxError>,
        > + Send
        + Sync
        + 'static,
{
    let sender = StaticSender::Type(TypeSender::of::<M>);
    Registration::new(
        signal,
        meta.started_by(static_async_owner::<<S as TypeSenders<M>>::Shape, C>()),
        sender,
        call,
        <S as TypeSenders<M>>::adopt::<Async, C>,
    )
}

impl Registration {
    /// The registration of `call`, which `adopt` turns back into the signal's typed entry.
    const fn new(
        signal: &'static dyn AnySignal,
        meta: ReceiverMeta,
        sender: StaticSender,
        call: &'static (dyn Any + Send + Sync),
        adopt: Adopt,
    ) -> Self {
        Self {
            signal,
            meta,
            sender,
            call,
            adopt,
        }
    }

    /// The signal's typed entry for this receiver, an `Adopted<K, E>`, written to `out`, an
    /// `Option<Adopted<K, E>>`.
    pub(crate) fn adopt(&'static self, out: &mut dyn Any) {
        (self.adopt)(self, out);
    }

    /// The entry of shape `Sh` that dispatches to this receiver, whose call is a `C`.
    pub(crate) fn receiver<Sh: Shape, K: Mode, C: StaticCallable<Sh, K>>(
        &'static self,
    ) -> Receiver<Sh> {
        let call: &'static C = self
            .call
            .downcast_ref()
            .expect("a registration is adopted with the call type that built it");
        call.receiver(ReceiverInfo::from_static(&self.meta))
    }

    /// The sender value, for a value-sender signal whose sender type is `T`; `None` for an
    /// any-sender receiver.
    ///
    /// # Panics
    ///
    /// If the registration holds a sender of another type or a sender type: `value_receiver`
    /// only builds registrations whose sender has the signal's sender type, so this is a bug
    /// in the crate, and reading it as "any sender" would connect the receiver to every send.
    pub(crate) fn sender_value<T: Clone + 'static>(&self) -> Option<T> {
        let value = match self.sender {
            StaticSender::Any => return None,
            StaticSender::Value(value) => value.as_any().downcast_ref::<T>(),
            StaticSender::Type(_) => None,
        };
        let Some(value) = value else {
            panic!(
                "receiver `{}` of signal `{}` was registered with the sender {}, not a value of \
                 type `{}`",
                self.meta.name,
                signal_ref(self.signal).name(),
                self.sender_name().unwrap_or_default(),
                std::any::type_name::<T>(),
            )
        };
        Some(value.clone())
    }

    /// The sender, `Debug`-formatted (a type's name for type senders), or `None` for any.
    pub(crate) fn sender_name(&self) -> Option<String> {
        match self.sender {
            StaticSender::Any => None,
            StaticSender::Value(value) => Some(format!("{value:?}")),
            StaticSender::Type(of) => Some(of().name().to_owned()),
        }
    }
}

impl Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("signal", &signal_ref(self.signal).name())
            .field("receiver", &self.meta)
            .field("sender", &self.sender_name())
            .finish_non_exhaustive()
    }
}

/// A signal's declaration, as `signal!` registers it, so that [`registry`](fn@crate::registry)
/// lists signals that have no static receivers.
pub struct Declaration {
    pub(crate) signal: &'static dyn AnySignal,
    pub(crate) module_path: &'static str,
    pub(crate) location: SourceLocation,
}

impl Declaration {
    /// Declares `signal`, defined in `module_path` at `location`.
    #[must_use]
    pub const fn new<S: SignalKind>(
        signal: &'static S,
        module_path: &'static str,
        location: SourceLocation,
    ) -> Self {
        Self {
            signal,
            module_path,
            location,
        }
    }
}

impl Debug for Declaration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Declaration")
            .field("signal", &signal_ref(self.signal).name())
            .field("module_path", &self.module_path)
            .field("location", &self.location)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::{Registration, SignalRef, StaticSender};
    use crate::error::WiringError;
    use crate::info::{ReceiverMeta, SourceLocation};
    use crate::registry::{Listing, SenderKind};
    use crate::table::Row;

    /// A signal named `upgraded`, as far as a registration needs one.
    struct Upgraded;

    impl SignalRef for Upgraded {
        fn name(&self) -> &'static str {
            "upgraded"
        }
        fn problems(&self) -> Vec<WiringError> {
            Vec::new()
        }
        fn static_problems(&self) -> Vec<WiringError> {
            Vec::new()
        }
        fn listing(&self) -> Listing {
            crate::registry::listing(SenderKind::Value("u8"), Vec::new())
        }
        fn rows(&self) -> Vec<Row> {
            Vec::new()
        }
    }

    fn registration(sender: StaticSender) -> &'static Registration {
        let meta = ReceiverMeta::new_static(
            "app::audit",
            "app",
            SourceLocation::new("app.rs", 1, 1),
            None,
            0,
        );
        Box::leak(Box::new(Registration::new(
            &Upgraded,
            meta,
            sender,
            &(),
            |_, _| {},
        )))
    }

    #[test]
    fn a_sender_of_the_signal_type_is_read_back_and_none_means_any_sender() {
        assert_eq!(
            registration(StaticSender::Value(&7_u8)).sender_value::<u8>(),
            Some(7)
        );
        assert_eq!(registration(StaticSender::Any).sender_value::<u8>(), None);
    }

    #[test]
    #[should_panic(
        expected = "receiver `app::audit` of signal `upgraded` was registered with the sender \
                    \"north\", not a value of type `u8`"
    )]
    fn a_sender_of_another_type_panics_instead_of_reading_as_any_sender() {
        registration(StaticSender::Value(&"north")).sender_value::<u8>();
    }
}
