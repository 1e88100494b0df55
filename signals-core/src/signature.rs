//! What a signal is declared by: [`Signature`] for a value-sender signal, [`TypeSignature`]
//! and its [`SentBy`] impls for a type-sender family, and the call shapes their receivers
//! have ([`ValueShape`], [`TypedShape`], [`AnyTypeShape`]).

use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;

use crate::receiver::{Shape, TypeSender};

/// The declaration of a value-sender signal: its argument struct, its sender type and what its
/// receivers return.
///
/// Implement it on a marker type (an empty enum) and declare the signal as a
/// `static Signal<Marker>`:
///
/// ```
/// use signals::{Signal, Signature};
///
/// #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
/// pub enum SiloMode { Monolith, Control, Region }
///
/// /// The arguments of `post_upgrade`; they may borrow (`'a`).
/// pub struct PostUpgrade<'a> { pub interactive: bool, pub database: &'a str }
///
/// pub enum PostUpgradeSignal {}
/// impl Signature for PostUpgradeSignal {
///     type Args<'a> = PostUpgrade<'a>;
///     type Sender = SiloMode;
///     type Output = ();
/// }
///
/// /// Sent after `upgrade` completes, with the running silo mode as sender.
/// #[allow(non_upper_case_globals)]
/// pub static post_upgrade: Signal<PostUpgradeSignal> = Signal::new("post_upgrade");
/// ```
pub trait Signature: 'static {
    /// The argument struct (Django's keyword arguments), borrowed by every receiver.
    type Args<'a>;
    /// The sender's type: receivers connect to one value of it, or to any.
    type Sender: Eq + Hash + Clone + fmt::Debug + Send + Sync + 'static;
    /// What each receiver returns, collected in the responses.
    type Output: 'static;
}

/// The call shape of a value-sender signal's receivers: `(Option<&Sender>, &Args)`.
pub struct ValueShape<F>(PhantomData<fn() -> F>);

impl<F: Signature> Shape for ValueShape<F> {
    type Sender<'s> = Option<&'s F::Sender>;
    type Args<'a> = F::Args<'a>;
    type Output = F::Output;
}

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
