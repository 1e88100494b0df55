//! How a signal delivers: [`Plain`] signals run their receivers in the send;
//! [`Async`] signals are sent with `.await`, and their receivers may be
//! `async fn`. `Signal<F>` is `Signal<F, Plain>`; `AsyncSignal<F>` is `Signal<F, Async>`.
//!
//! A receiver has a mode too: a plain receiver is a [`Plain`] one, an `async fn` an [`Async`]
//! one; a signal accepts the receivers of its own mode and of [`Plain`].

/// A delivery mode of a signal; implemented by [`Plain`] and [`Async`] only.
pub trait Mode: sealed::Sealed + 'static {}

/// Plain receivers, run in `send`: a sync signal.
#[derive(Debug)]
pub enum Plain {}

/// Plain and async receivers, run in `send(..).await`: an async signal.
#[derive(Debug)]
pub enum Async {}

impl Mode for Plain {}
impl Mode for Async {}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Plain {}
    impl Sealed for super::Async {}
}
