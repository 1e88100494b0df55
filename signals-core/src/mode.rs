//! How a signal delivers: [`Plain`] signals run their receivers in the send;
//! [`Async`] signals are sent with `.await`, and their receivers may be
//! `async fn`; [`Durable`] signals store each send in the sender's database transaction, and
//! the outbox's workers deliver it after commit. `Signal<F>` is `Signal<F, Plain>`,
//! `AsyncSignal<F>` is `Signal<F, Async>` and `DurableSignal<F>` is `Signal<F, Durable>`.
//!
//! A receiver has a mode too: a plain receiver is a [`Plain`] one, an `async fn` an [`Async`]
//! one; a signal accepts the receivers of its own mode and of [`Plain`].

/// A delivery mode of a signal; implemented by [`Plain`], [`Async`] and [`Durable`] only.
pub trait Mode: sealed::Sealed + 'static {}

/// Plain receivers, run in `send`: a sync signal.
#[derive(Debug)]
pub enum Plain {}

/// Plain and async receivers, run in `send(..).await`: an async signal.
#[derive(Debug)]
pub enum Async {}

/// Plain receivers, run by a worker after the transaction that stored the send commits: a
/// durable signal (`signals::outbox`).
#[derive(Debug)]
pub enum Durable {}

impl Mode for Plain {}
impl Mode for Async {}
impl Mode for Durable {}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Plain {}
    impl Sealed for super::Async {}
    impl Sealed for super::Durable {}
}
