//! The runtime of [`signals`](https://docs.rs/signals): Django-style signals and receivers,
//! wired at compile time. Depend on the `signals` facade, which re-exports this crate and the
//! macros; this crate's public surface is documented there.
//!
//! A signal is a `static` [`Signal`] (the sender is a value, such as an enum variant) or
//! [`TypeSignal`] (the sender is a type, such as a model). Receivers are connected at link time
//! by `#[receiver]`, which emits a [`Registration`](__private::Registration) collected by
//! `inventory` (default) or `linkme`, or at run time with `connect`. Sends run the receivers of
//! a snapshot taken when the send starts, in a deterministic order, without holding any lock.
//!
//! ```
//! use signals::{Signal, Signature};
//!
//! pub struct UserCreated<'a> { pub email: &'a str }
//! pub enum UserCreatedSignal {}
//! impl Signature for UserCreatedSignal {
//!     type Args<'a> = UserCreated<'a>;
//!     type Sender = &'static str;
//!     type Output = String;
//! }
//! #[allow(non_upper_case_globals)]
//! static user_created: Signal<UserCreatedSignal> = Signal::new("user_created");
//!
//! user_created.connect(|_, args: &UserCreated<'_>| format!("welcome mail to {}", args.email));
//! let email = String::from("ada@example.com");
//! let responses = user_created.send(&"signup", &UserCreated { email: &email })?;
//! assert_eq!(responses.into_outputs(), ["welcome mail to ada@example.com"]);
//! # Ok::<(), signals::SendError>(())
//! ```
//!
//! # Layers
//!
//! Each module names only the modules listed after it (`tests/layers.rs` checks it), top
//! first:
//!
//! - `testing`: the test aids' public guards (`capture`, `mute`, `raise_on_send`,
//!   `connected_to`, `assert_sent!`), over `watch`'s state and the signals.
//! - `type_signal`: [`TypeSignal`] and [`AsyncTypeSignal`]: sends, connects, introspection.
//! - `signal`: [`Signal`] and [`AsyncSignal`]: sends, connects, introspection.
//! - `explain`: [`explain`](fn@explain) and [`explain_by_name`], over the signals' rows.
//! - `render`: [`report`] and the Mermaid and DOT drawings of the [`registry`](fn@registry).
//! - `dispatch`: running a dispatch list (`send`, `send_robust`, `emit`, and their async
//!   forms), [`Responses`], nesting depth.
//! - `watch`: the testing guards' per-thread state, and watched sends (spans, captures, mutes);
//!   [`testing::Capturable`].
//! - `registry`: what every signal holds and is ([`AnySignal`]); static registrations, their
//!   collection and index; [`check`], [`registry`](fn@registry).
//! - `connector`: the [`Connector`] builder, each connect method written once for any target.
//! - `routes`: the dispatch lists a snapshot is built into, per sender or sender type.
//! - `table`: one signal's receivers: the edited table, the published snapshot, their rows.
//! - `connect`: [`Connection`], [`ScopedConnection`].
//! - `signature`: what declares a signal ([`Signature`], [`TypeSignature`], [`SentBy`]) and
//!   the call shapes of its receivers.
//! - `raw`: the crate's only `unsafe` code: snapshots published to sends without locks and
//!   freed once the sends that read them have ended, and receivers called through a function
//!   pointer and the address of their code.
//! - `receiver`: a connected receiver and how it is called: shapes, calls, steps,
//!   [`TypeSender`].
//! - `error`: [`SendError`], [`ReceiverError`], [`WiringError`], [`ExplainError`].
//! - `info`: who a receiver is: [`ReceiverInfo`], [`SourceLocation`].
//! - `mode`: how a signal delivers, and which receivers it takes: [`mode::Plain`],
//!   [`mode::Async`], [`mode::Durable`].

mod connect;
mod connector;
mod dispatch;
mod error;
mod explain;
mod info;
pub mod mode;
mod raw;
mod receiver;
mod registry;
mod render;
mod routes;
mod signal;
mod signature;
mod table;
pub mod testing;
mod type_signal;
mod watch;

pub use connect::{Connection, ScopedConnection};
pub use connector::Connector;
pub use dispatch::{Response, Responses, STACK_RESERVE};
pub use error::{BoxError, ExplainError, ReceiverError, SendError, WiringError};
pub use explain::{Explain, Explained, Explanation, Verdict, explain, explain_by_name};
pub use info::{ReceiverInfo, ReceiverKind, SourceLocation};
pub use receiver::{AsyncReceiverFn, BoxFuture, IntoResponse, TypeSender, WeakAsyncReceiverFn};
pub use registry::{AnySignal, ReceiverEntry, Registry, SenderKind, SignalEntry, check, registry};
pub use render::report;
pub use signal::{AsyncSignal, DurableSignal, Signal, ValueTarget};
pub use signature::{SentBy, Signature, TypeSignature};
pub use type_signal::{AnyTypeTarget, AsyncTypeSignal, TypeSignal, TypeTarget};

/// What generated code names: `#[receiver]`'s and `signal!`'s expansions, and the bounds their
/// error messages print. Not public API: it changes without notice.
#[doc(hidden)]
pub mod __private {
    /// Not public API: used by generated code (submits a registration or a declaration).
    pub use crate::__register as register;
    /// Not public API: used by generated code (a static receiver's identity).
    pub use crate::info::ReceiverMeta;
    /// Not public API: used by generated code (where a receiver or a signal is declared).
    pub use crate::info::SourceLocation;
    /// Not public API: used by generated code (passes a field to a receiver parameter).
    pub use crate::receiver::AsParam;
    /// Not public API: used by generated code (passes the sender to a `sender` parameter).
    pub use crate::receiver::SenderParam;
    /// Not public API: named by the messages of generated code's bounds.
    pub use crate::receiver::Shape;
    /// Not public API: used by generated code (passes a `Copy` field by value).
    pub use crate::receiver::copy_field;
    /// Not public API: used by generated code (turns a receiver's return value into a
    /// response).
    pub use crate::receiver::respond;
    /// Not public API: used by generated code (a `signal!` declaration, as the backends
    /// collect it).
    pub use crate::registry::Declaration;
    /// Not public API: used by generated code (a static receiver, as the backends collect it).
    pub use crate::registry::Registration;
    /// Not public API: the bounds of the registering functions, named by their messages.
    pub use crate::registry::{AsyncReceivers, SignalKind, TypeSenders, ValueSenders};
    /// Not public API: the linkme backend's slices, used by generated code.
    #[cfg(feature = "linkme")]
    pub use crate::registry::{DECLARATIONS, REGISTRATIONS};
    /// Not public API: used by generated code (registers a static receiver; the name says its
    /// sender kind and whether it is async).
    pub use crate::registry::{
        any_receiver, async_any_receiver, async_type_receiver, async_value_receiver, type_receiver,
        value_receiver,
    };
    /// Not public API: the receivers' call shapes, named by messages of generated code.
    pub use crate::signature::{AnyTypeShape, TypedShape, ValueShape};
    /// Not public API: the inventory backend, used by generated code.
    #[cfg(feature = "inventory")]
    pub use inventory;
    /// Not public API: the linkme backend, used by generated code.
    #[cfg(feature = "linkme")]
    pub use linkme;
}

/// Links crates whose receivers the program needs but whose items it does not name.
///
/// A crate that nothing names is left out of the program by the compiler, and its
/// `#[receiver]` registrations with it, with either backend. Name each such crate once, in
/// the binary (or the test) that sends the signals:
///
/// ```text
/// signals::link!(billing_receivers, audit_receivers);
/// ```
///
/// It expands to `use billing_receivers as _;` for each crate.
#[macro_export]
macro_rules! link {
    ($($krate:ident),+ $(,)?) => {
        $(
            #[allow(unused_imports)]
            use $krate as _;
        )+
    };
}
