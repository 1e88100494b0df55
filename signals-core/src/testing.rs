//! Aids for tests of code that sends signals.

use std::cell::Cell;
use std::marker::PhantomData;

thread_local! {
    static RAISE_ON_SEND: Cell<usize> = const { Cell::new(0) };
}

/// Makes `send_robust` on this thread re-raise the first failure instead of recording it, until
/// the returned guard is dropped: a receiver's panic is resumed and an `Err` becomes a panic
/// naming the receiver (Sentry's `receivers_raise_on_send`). A test then fails at the
/// receiver that broke instead of passing with a logged error.
///
/// The switch is per thread, so tests running in parallel threads of one test binary do not
/// affect each other; sends made on threads the test spawns are not affected. Guards nest.
///
/// ```
/// # use signals_core::{Signal, Signature};
/// # enum Saved {}
/// # impl Signature for Saved { type Args<'a> = (); type Sender = &'static str; type Output = (); }
/// # static saved: Signal<Saved> = Signal::new("saved");
/// saved.connect(|_, _: &()| -> Result<(), std::io::Error> { Err(std::io::Error::other("disk full")) });
/// let _raise = signals_core::testing::raise_on_send();
/// let caught = std::panic::catch_unwind(|| saved.send_robust(None, &()));
/// assert!(caught.is_err());
/// ```
#[must_use = "the switch is off again as soon as the guard is dropped"]
pub fn raise_on_send() -> RaiseOnSend {
    RAISE_ON_SEND.with(|count| count.set(count.get() + 1));
    RaiseOnSend {
        _not_send: PhantomData,
    }
}

/// Guard returned by [`raise_on_send`]; robust sends on this thread record failures again once
/// every such guard is dropped.
#[derive(Debug)]
pub struct RaiseOnSend {
    _not_send: PhantomData<*const ()>,
}

impl Drop for RaiseOnSend {
    fn drop(&mut self) {
        RAISE_ON_SEND.with(|count| count.set(count.get() - 1));
    }
}

/// Whether robust sends on this thread re-raise.
pub(crate) fn raises_on_send() -> bool {
    RAISE_ON_SEND.with(|count| count.get() > 0)
}
