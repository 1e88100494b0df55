//! A receiver as the dispatch lists hold it ([`Receiver`]): its identity, its [`Call`] (which
//! owns its code), and for sync sends a thin call, a function pointer monomorphised for the
//! receiver's concrete type and the address of its code. A sync send calls the function with
//! the address, as calling a boxed closure does: no enum to match, no `Arc` header to skip, and
//! the result comes back in registers.
//!
//! The invariant: `data` is the address of the value of type `C` for which `thunk` was made,
//! and that value lives as long as the receiver, because the receiver's `call` owns it (the
//! contents of an `Arc`, which never move) or it is `'static`. Only this file builds receivers.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread::ThreadId;

use crate::error::BoxError;
use crate::info::ReceiverInfo;
use crate::mode::{Async, Mode, Plain};
use crate::receiver::{
    AsyncCallable, Call, Callable, Cx, DynCall, Identity, Info, Keyed, OnThread, Shape, Started,
    StaticAsyncCall, Step, log_drop_panic, released,
};

/// How a sync send calls a receiver: with the address of its code, and the send's sender and
/// arguments. A receiver that did not run (a weak one whose target is gone, or one that runs
/// only on another thread) returns [`NotRun`] as its error.
type Thunk<Sh> = for<'r, 'a> unsafe fn(
    *const (),
    <Sh as Shape>::Sender<'r>,
    &'r <Sh as Shape>::Args<'a>,
) -> Result<<Sh as Shape>::Output, BoxError>;

/// The error a receiver's thin call returns when the receiver did not run. Zero-sized, so that
/// boxing it does not allocate; never seen outside this file.
#[derive(Debug)]
struct NotRun;

impl fmt::Display for NotRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the receiver did not run")
    }
}

impl std::error::Error for NotRun {}

/// Calls the static receiver `C` at `data`.
///
/// # Safety
///
/// `data` is the address of a live `C`.
unsafe fn static_thunk<'r, Sh: Shape, C: Callable<Sh>>(
    data: *const (),
    sender: Sh::Sender<'r>,
    args: &'r Sh::Args<'_>,
) -> Result<Sh::Output, BoxError> {
    // SAFETY: the caller's promise.
    let f = unsafe { &*data.cast::<C>() };
    f(sender, args)
}

/// Calls the runtime receiver `C` at `data`.
///
/// # Safety
///
/// `data` is the address of a live `C`.
unsafe fn dyn_thunk<'r, Sh: Shape, C: DynCall<Sh, Plain>>(
    data: *const (),
    sender: Sh::Sender<'r>,
    args: &'r Sh::Args<'_>,
) -> Result<Sh::Output, BoxError> {
    // SAFETY: the caller's promise.
    let f = unsafe { &*data.cast::<C>() };
    match f.call(sender, args) {
        Some(result) => result,
        None => Err(Box::new(NotRun)),
    }
}

/// The thin call of an async receiver, which sync sends never call: only async signals take
/// async receivers, and async sends start them through their [`Call`].
///
/// # Safety
///
/// None needed; `unsafe` only to have the type of the others.
unsafe fn async_thunk<'r, Sh: Shape>(
    _: *const (),
    _: Sh::Sender<'r>,
    _: &'r Sh::Args<'_>,
) -> Result<Sh::Output, BoxError> {
    unreachable!("async receivers are only connected to async signals")
}

/// A receiver together with its identity: one element of a dispatch list.
pub(crate) struct Receiver<Sh: Shape> {
    thunk: Thunk<Sh>,
    /// The address of the value `thunk` calls, owned by `call` or `'static`.
    data: *const (),
    pub(crate) info: ReceiverInfo,
    call: Call<Sh>,
}

// SAFETY: `data` is the address of a `Send + Sync` value (`Callable` and `DynCall` require
// both) that the receiver's `Call`, itself `Send + Sync`, owns or that is `'static`; `thunk`
// is a plain function.
unsafe impl<Sh: Shape> Send for Receiver<Sh> {}
// SAFETY: as for `Send`: sharing the receiver shares `&C` for a `Sync` `C`.
unsafe impl<Sh: Shape> Sync for Receiver<Sh> {}

impl<Sh: Shape> Receiver<Sh> {
    /// A runtime receiver, plain, that runs only for sends started on `thread` if there is one.
    pub(crate) fn plain<C: DynCall<Sh, Plain> + 'static>(
        info: ReceiverInfo,
        code: C,
        thread: Option<ThreadId>,
    ) -> Self {
        match thread {
            Some(owner) => Self::of_dyn(info, Arc::new(OnThread::new(owner, code))),
            None => Self::of_dyn(info, Arc::new(code)),
        }
    }

    /// A runtime receiver, async, that runs only for sends started on `thread` if there is one.
    pub(crate) fn async_<C: DynCall<Sh, Async> + 'static>(
        info: ReceiverInfo,
        code: C,
        thread: Option<ThreadId>,
    ) -> Self {
        let call: Arc<dyn DynCall<Sh, Async>> = match thread {
            Some(owner) => Arc::new(OnThread::new(owner, code)),
            None => Arc::new(code),
        };
        Self {
            thunk: async_thunk::<Sh>,
            data: std::ptr::null(),
            info,
            call: Call::DynAsync(call),
        }
    }

    fn of_dyn<C: DynCall<Sh, Plain> + 'static>(info: ReceiverInfo, code: Arc<C>) -> Self {
        Self {
            thunk: dyn_thunk::<Sh, C>,
            data: Arc::as_ptr(&code).cast(),
            info,
            call: Call::Dyn(code),
        }
    }

    fn of_static<C: Callable<Sh>>(info: ReceiverInfo, code: &'static C) -> Self {
        Self {
            thunk: static_thunk::<Sh, C>,
            data: std::ptr::from_ref(code).cast(),
            info,
            call: Call::Static(code),
        }
    }

    fn of_static_async(info: ReceiverInfo, code: &'static StaticAsyncCall<Sh>) -> Self {
        Self {
            thunk: async_thunk::<Sh>,
            data: std::ptr::null(),
            info,
            call: Call::StaticAsync(code),
        }
    }

    /// How the receiver is called by async sends, and what keeps its code alive.
    pub(crate) fn call(&self) -> &Call<Sh> {
        &self.call
    }

    /// Runs a sync receiver; `None` when it did not run.
    #[inline]
    pub(crate) fn invoke<'r>(
        &self,
        sender: Sh::Sender<'r>,
        args: &'r Sh::Args<'_>,
    ) -> Option<Result<Sh::Output, BoxError>> {
        // SAFETY: `data` is the address of the value `thunk` was made for, which `self.call`
        // owns or which is `'static` (see the constructors); `self` is borrowed, so `call` is
        // alive and unchanged (only `Drop` replaces it). Async receivers' thunk reads nothing.
        match unsafe { (self.thunk)(self.data, sender, args) } {
            Ok(output) => Some(Ok(output)),
            Err(error) => not_run_or_failed(error),
        }
    }
}

/// A thin call's error: `None` if the receiver did not run, otherwise its error.
#[cold]
fn not_run_or_failed<O>(error: BoxError) -> Option<Result<O, BoxError>> {
    if error.is::<NotRun>() {
        None
    } else {
        Some(Err(error))
    }
}

impl<Sh: Shape> Clone for Receiver<Sh> {
    fn clone(&self) -> Self {
        // The clone's `call` shares the same code (a `&'static`, or the same `Arc`), at the
        // same address.
        Self {
            thunk: self.thunk,
            data: self.data,
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
impl<Sh: Shape> Drop for Receiver<Sh> {
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

impl<Sh: Shape> Info for Receiver<Sh> {
    #[inline]
    fn info(&self) -> &ReceiverInfo {
        &self.info
    }

    fn is_async(&self) -> bool {
        self.call.is_async()
    }

    fn alive(&self) -> bool {
        self.call.alive()
    }
}

impl<Sh: Shape> Keyed for Receiver<Sh> {
    fn identity(&self) -> Identity<'_> {
        match self.info.dispatch_uid() {
            Some(uid) => Identity::Uid(uid),
            None => self.call.identity(),
        }
    }
}

impl<'r, 'a, Sh: Shape> Step<Cx<'r, 'a, Sh>> for Receiver<Sh> {
    type Output = Sh::Output;

    #[inline]
    fn run(&self, cx: &Cx<'r, 'a, Sh>) -> Option<Result<Sh::Output, BoxError>> {
        self.invoke(cx.sender, cx.args)
    }

    fn start<'c>(&'c self, cx: &'c Cx<'r, 'a, Sh>) -> Started<'c, Sh::Output> {
        self.call.start(cx.sender, cx.args)
    }
}

/// A static receiver of shape `Sh` and of mode `K`: a [`Callable`] is a [`Plain`] one, an
/// [`AsyncCallable`] an [`Async`] one. Not public API: used by the registrations.
pub trait StaticCallable<Sh: Shape, K: Mode>: Send + Sync + 'static {
    /// The receiver, with its identity `info`.
    #[doc(hidden)]
    #[allow(private_interfaces)]
    fn receiver(&'static self, info: ReceiverInfo) -> Receiver<Sh>;
}

impl<Sh: Shape, C: Callable<Sh>> StaticCallable<Sh, Plain> for C {
    #[allow(private_interfaces)]
    fn receiver(&'static self, info: ReceiverInfo) -> Receiver<Sh> {
        Receiver::of_static(info, self)
    }
}

impl<Sh: Shape, C: AsyncCallable<Sh>> StaticCallable<Sh, Async> for C {
    #[allow(private_interfaces)]
    fn receiver(&'static self, info: ReceiverInfo) -> Receiver<Sh> {
        Receiver::of_static_async(info, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::info::ReceiverKind;
    use crate::receiver::{Strong, WeakTarget};
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counted;
    impl Shape for Counted {
        type Sender<'s> = u8;
        type Args<'a> = AtomicUsize;
        type Output = usize;
    }

    fn info() -> ReceiverInfo {
        ReceiverInfo::runtime::<Counted>(
            std::panic::Location::caller(),
            None,
            ReceiverKind::Runtime,
        )
    }

    #[allow(clippy::unnecessary_wraps, reason = "the shape of a static receiver")]
    fn add(sender: u8, args: &AtomicUsize) -> Result<usize, BoxError> {
        Ok(args.fetch_add(usize::from(sender), Ordering::SeqCst) + usize::from(sender))
    }

    static ADD: fn(u8, &AtomicUsize) -> Result<usize, BoxError> = add;

    #[test]
    fn a_static_receiver_is_called_through_its_thin_call() {
        let receiver: Receiver<Counted> = StaticCallable::<Counted, Plain>::receiver(&ADD, info());
        let args = AtomicUsize::new(1);
        assert_eq!(receiver.invoke(2, &args).unwrap().unwrap(), 3);
    }

    #[test]
    fn a_clone_calls_the_same_closure_after_the_original_is_dropped() {
        let captured = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&captured);
        let receiver = Receiver::<Counted>::plain(
            info(),
            Strong::new(move |sender: u8, _: &AtomicUsize| {
                seen.fetch_add(usize::from(sender), Ordering::SeqCst)
            }),
            None,
        );
        let clone = receiver.clone();
        drop(receiver);
        let args = AtomicUsize::new(0);
        assert_eq!(clone.invoke(5, &args).unwrap().unwrap(), 0);
        assert_eq!(captured.load(Ordering::SeqCst), 5);
        drop(clone);
        assert_eq!(Arc::strong_count(&captured), 1, "the closure was freed");
    }

    #[test]
    fn a_receiver_that_did_not_run_is_told_apart_from_one_that_failed() {
        let target = Arc::new(7_usize);
        let weak = Receiver::<Counted>::plain(
            info(),
            WeakTarget::new(&target, |target: &usize, _: u8, _: &AtomicUsize| *target),
            None,
        );
        let failing = Receiver::<Counted>::plain(
            info(),
            Strong::new(|_: u8, _: &AtomicUsize| -> Result<usize, std::fmt::Error> {
                Err(std::fmt::Error)
            }),
            None,
        );
        let elsewhere = Receiver::<Counted>::plain(
            info(),
            Strong::new(|_: u8, _: &AtomicUsize| 1_usize),
            Some(
                std::thread::spawn(|| std::thread::current().id())
                    .join()
                    .unwrap(),
            ),
        );
        let args = AtomicUsize::new(0);
        assert_eq!(weak.invoke(0, &args).unwrap().unwrap(), 7);
        assert!(failing.invoke(0, &args).unwrap().is_err());
        assert!(
            elsewhere.invoke(0, &args).is_none(),
            "runs only on another thread"
        );
        drop(target);
        assert!(weak.invoke(0, &args).is_none(), "its target is gone");
    }
}
