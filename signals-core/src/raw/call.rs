//! A receiver as the dispatch lists hold it ([`Receiver`]): a function pointer monomorphised
//! for the receiver's concrete type, the address of its code, and its identity: 24 bytes. The
//! identity leads to an [`Owner`], one constant per receiver type, that says how to share and
//! release the code and what async sends and the table ask of it (a runtime receiver's
//! metadata points to it, an async static receiver's registration holds it, and a plain
//! static receiver's is one constant). A sync send calls the function with the address, as
//! calling a boxed closure does: no enum to match, no `Arc` header to skip, and the result
//! comes back in registers.
//!
//! The invariant: `data` is the address of the value of type `C` for which `thunk` and the
//! owner were made, and that value lives as long as the receiver: it is the contents of an `Arc`
//! (which never move) that the receiver holds a strong reference to, or it is `'static`, or it
//! is zero-sized without `Drop`, held by no allocation, as a `Box` of it would be. Only this
//! file builds receivers.

use std::any::type_name;
use std::mem;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::NonNull;
use std::sync::Arc;
use std::thread::ThreadId;

use crate::error::BoxError;
use crate::info::{AnyOwner, Connecting, ReceiverInfo, RuntimeCode};
use crate::mode::{Async, Mode, Plain};
use crate::receiver::{
    AsyncCallable, Callable, Calls, Cx, DynCall, Identity, Info, Keyed, OnThread, Shape, Started,
    Step, log_drop_panic,
};

/// How a sync send calls a receiver: with the address of its code, and the send's sender and
/// arguments. A receiver that did not run (a weak one whose target is gone, or one that runs
/// only on another thread) returns [`Failure::not_run`].
type Thunk<Sh> = for<'r, 'a> unsafe fn(
    *const (),
    <Sh as Shape>::Sender<'r>,
    &'r <Sh as Shape>::Args<'a>,
) -> Result<<Sh as Shape>::Output, Failure>;

/// Why a thin call has no output: the receiver did not run, or it failed. One word, so that
/// `Result<(), Failure>` comes back in one register and a receiver's `Ok(())` costs a single
/// instruction: the address of a boxed [`BoxError`], or a dangling address, which no box has,
/// for "did not run". A failure costs one allocation more than its error.
struct Failure(NonNull<BoxError>);

impl Failure {
    /// The receiver did not run.
    fn not_run() -> Self {
        Self(NonNull::dangling())
    }

    /// The receiver failed with `error`.
    #[cold]
    fn failed(error: BoxError) -> Self {
        Self(NonNull::from(Box::leak(Box::new(error))))
    }

    /// What a sync send makes of the failure: `None` if the receiver did not run, otherwise
    /// its error. Out of line, so that the send's loop keeps only the check for `Ok`.
    #[cold]
    #[inline(never)]
    fn into_ran<O>(self) -> Option<Result<O, BoxError>> {
        self.into_error().map(Err)
    }

    /// The receiver's error, or `None` if it did not run.
    fn into_error(self) -> Option<BoxError> {
        let failure = mem::ManuallyDrop::new(self);
        if failure.0 == NonNull::dangling() {
            return None;
        }
        // SAFETY: an address other than the dangling one comes from `Box::leak` in `failed`,
        // and `failure` is never used again (nor dropped), so the box is taken back once.
        Some(*unsafe { Box::from_raw(failure.0.as_ptr()) })
    }
}

impl Drop for Failure {
    fn drop(&mut self) {
        drop(Self(self.0).into_error());
    }
}

/// Calls the static receiver `C` at `data`.
///
/// # Safety
///
/// `data` is the address of a live `C`.
unsafe fn static_thunk<'r, Sh: Shape, C: Callable<Sh>>(
    data: *const (),
    sender: Sh::Sender<'r>,
    args: &'r Sh::Args<'_>,
) -> Result<Sh::Output, Failure> {
    // SAFETY: the caller's promise.
    let f = unsafe { &*data.cast::<C>() };
    f(sender, args).map_err(Failure::failed)
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
) -> Result<Sh::Output, Failure> {
    // SAFETY: the caller's promise.
    let f = unsafe { &*data.cast::<C>() };
    match f.call(sender, args) {
        Some(result) => result.map_err(Failure::failed),
        None => Err(Failure::not_run()),
    }
}

/// The thin call of an async receiver, which sync sends never call: only async signals take
/// async receivers, and async sends start them through their [`Owner`]'s `start`.
///
/// # Safety
///
/// None needed; `unsafe` only to have the type of the others.
unsafe fn async_thunk<'r, Sh: Shape>(
    _: *const (),
    _: Sh::Sender<'r>,
    _: &'r Sh::Args<'_>,
) -> Result<Sh::Output, Failure> {
    unreachable!("async receivers are only connected to async signals")
}

/// What a receiver's `data` is, beside the code its thunk calls: how to share and give up a
/// runtime receiver's `Arc`, and what async sends and the table ask of it. One constant per
/// receiver type, found through the receiver's identity ([`Receiver::owner`]).
struct Owner<Sh: Shape> {
    /// How to share and give up the `Arc` at `data`; `None` for receivers that own nothing
    /// (static ones, and runtime code held by no allocation).
    shared: Option<Shared>,
    alive: unsafe fn(*const ()) -> bool,
    identity: unsafe fn(*const ()) -> Identity<'static>,
    /// Starts an async receiver; `None` for plain ones, which async sends run through the thunk.
    start: Option<Start<Sh>>,
}

/// How a receiver shares the `Arc` its `data` points into.
struct Shared {
    /// Adds a strong reference.
    retain: unsafe fn(*const ()),
    /// Gives up a strong reference, dropping the code with the last one.
    release: unsafe fn(*const ()),
}

impl<Sh: Shape> Owner<Sh> {
    /// A static receiver's: it owns nothing, always runs and is unique; `start` for async ones.
    const fn of_static(start: Option<Start<Sh>>) -> Self {
        Self {
            shared: None,
            alive: always,
            identity: unique,
            start,
        }
    }

    /// A runtime receiver's, whose code is a `C`, in an `Arc` if `in_arc`, otherwise held by
    /// nothing (see [`held_by_nothing`]); `start` for async ones.
    const fn of_dyn<K: Calls, C: DynCall<Sh, K>>(in_arc: bool, start: Option<Start<Sh>>) -> Self {
        Self {
            shared: if in_arc {
                Some(Shared {
                    retain: retain::<C>,
                    release: release::<C>,
                })
            } else {
                None
            },
            alive: dyn_alive::<Sh, K, C>,
            identity: dyn_identity::<Sh, K, C>,
            start,
        }
    }
}

/// How an async send starts an async receiver: with the address of its code.
type Start<Sh> = for<'r, 'a> unsafe fn(
    *const (),
    <Sh as Shape>::Sender<'r>,
    &'r <Sh as Shape>::Args<'a>,
) -> Started<'r, <Sh as Shape>::Output>;

/// Whether a runtime receiver's code `C` needs no allocation: zero-sized (a closure that
/// captures nothing), with nothing to drop.
const fn held_by_nothing<C>() -> bool {
    mem::size_of::<C>() == 0 && !mem::needs_drop::<C>()
}

/// The address of `code`, zero-sized with nothing to drop, held by no allocation: a dangling,
/// well-aligned address, which is a valid place for a zero-sized value, as `Box` uses.
fn hold_nowhere<C>(code: C) -> *const () {
    debug_assert!(held_by_nothing::<C>());
    mem::forget(code);
    std::ptr::NonNull::<C>::dangling()
        .as_ptr()
        .cast_const()
        .cast()
}

/// A static receiver's `alive`: always.
fn always(_: *const ()) -> bool {
    true
}

/// A static receiver's identity without `dispatch_uid`: unique.
fn unique(_: *const ()) -> Identity<'static> {
    Identity::Unique
}

/// Adds a strong reference to the `Arc<C>` whose contents are at `data`.
///
/// # Safety
///
/// `data` came from `Arc::<C>::into_raw`, and that `Arc`'s count has not reached zero.
unsafe fn retain<C>(data: *const ()) {
    // SAFETY: the caller's promise.
    unsafe { Arc::increment_strong_count(data.cast::<C>()) }
}

/// Gives up a strong reference to the `Arc<C>` whose contents are at `data`.
///
/// # Safety
///
/// As for [`retain`], and the caller gives up the reference it held.
unsafe fn release<C>(data: *const ()) {
    // SAFETY: the caller's promise.
    unsafe { Arc::decrement_strong_count(data.cast::<C>()) }
}

/// Whether the runtime receiver `C` at `data` can still run.
///
/// # Safety
///
/// `data` is the address of a live `C`.
unsafe fn dyn_alive<Sh: Shape, K: Calls, C: DynCall<Sh, K>>(data: *const ()) -> bool {
    // SAFETY: the caller's promise.
    unsafe { &*data.cast::<C>() }.alive()
}

/// The identity of the runtime receiver `C` at `data`, without `dispatch_uid`.
///
/// # Safety
///
/// `data` is the address of a live `C`.
unsafe fn dyn_identity<Sh: Shape, K: Calls, C: DynCall<Sh, K>>(
    data: *const (),
) -> Identity<'static> {
    // SAFETY: the caller's promise.
    unsafe { &*data.cast::<C>() }.identity()
}

/// Starts the runtime async receiver `C` at `data`.
///
/// # Safety
///
/// `data` is the address of a `C` that lives for `'r`.
unsafe fn dyn_start<'r, Sh: Shape, C: DynCall<Sh, Async>>(
    data: *const (),
    sender: Sh::Sender<'r>,
    args: &'r Sh::Args<'_>,
) -> Started<'r, Sh::Output> {
    // SAFETY: the caller's promise.
    let f = unsafe { &*data.cast::<C>() };
    match f.call(sender, args) {
        Some(future) => Started::Pending(future),
        None => Started::Ready(None),
    }
}

/// Starts the static async receiver `C` at `data`.
///
/// # Safety
///
/// `data` is the address of a live `C`.
unsafe fn static_start<'r, Sh: Shape, C: AsyncCallable<Sh>>(
    data: *const (),
    sender: Sh::Sender<'r>,
    args: &'r Sh::Args<'_>,
) -> Started<'r, Sh::Output> {
    // SAFETY: the caller's promise.
    let f = unsafe { &*data.cast::<C>() };
    Started::Pending(f(sender, args))
}

/// A receiver together with its identity: one element of a dispatch list, 24 bytes. Its
/// [`Owner`] is found through its identity ([`Receiver::owner`]).
pub(crate) struct Receiver<Sh: Shape> {
    thunk: Thunk<Sh>,
    /// The address of the value `thunk` calls: the contents of an `Arc` this receiver holds a
    /// strong reference to (runtime receivers), or a `'static` value.
    data: *const (),
    pub(crate) info: ReceiverInfo,
}

// SAFETY: `data` is the address of a `Send + Sync` value (`Callable`, `AsyncCallable` and
// `DynCall` require both) that the receiver owns through an `Arc` or that is `'static`;
// `thunk` and `owner` are plain functions.
unsafe impl<Sh: Shape> Send for Receiver<Sh> {}
// SAFETY: as for `Send`: sharing the receiver shares `&C` for a `Sync` `C`.
unsafe impl<Sh: Shape> Sync for Receiver<Sh> {}

impl<Sh: Shape> Receiver<Sh> {
    /// A runtime receiver, plain, whose code is named by `N`, connected as `connecting` says,
    /// that runs only for sends started on `thread` if there is one.
    pub(crate) fn plain<N, C: DynCall<Sh, Plain> + 'static>(
        connecting: Connecting,
        code: C,
        thread: Option<ThreadId>,
    ) -> Self {
        match thread {
            Some(thread) => Self::of_dyn::<N, _>(connecting, OnThread::new(thread, code)),
            None => Self::of_dyn::<N, _>(connecting, code),
        }
    }

    /// A runtime receiver, async, whose code is named by `N`, connected as `connecting` says,
    /// that runs only for sends started on `thread` if there is one.
    pub(crate) fn async_<N, C: DynCall<Sh, Async> + 'static>(
        connecting: Connecting,
        code: C,
        thread: Option<ThreadId>,
    ) -> Self {
        match thread {
            Some(thread) => Self::of_dyn_async::<N, _>(connecting, OnThread::new(thread, code)),
            None => Self::of_dyn_async::<N, _>(connecting, code),
        }
    }

    fn of_dyn<N, C: DynCall<Sh, Plain> + 'static>(connecting: Connecting, code: C) -> Self {
        let data = if held_by_nothing::<C>() {
            hold_nowhere(code)
        } else {
            Arc::into_raw(Arc::new(code)).cast()
        };
        let runtime = const {
            &RuntimeCode::new(
                type_name::<N>,
                C::KIND,
                AnyOwner(const { &Owner::of_dyn::<Plain, C>(!held_by_nothing::<C>(), None) }),
            )
        };
        Self {
            thunk: dyn_thunk::<Sh, C>,
            data,
            info: connecting.info(runtime),
        }
    }

    fn of_dyn_async<N, C: DynCall<Sh, Async> + 'static>(connecting: Connecting, code: C) -> Self {
        let runtime = const {
            &RuntimeCode::new(
                type_name::<N>,
                C::KIND,
                AnyOwner(const { &Owner::of_dyn::<Async, C>(true, Some(dyn_start::<Sh, C>)) }),
            )
        };
        Self {
            thunk: async_thunk::<Sh>,
            data: Arc::into_raw(Arc::new(code)).cast(),
            info: connecting.info(runtime),
        }
    }

    fn of_static<C: Callable<Sh>>(info: ReceiverInfo, code: &'static C) -> Self {
        Self {
            thunk: static_thunk::<Sh, C>,
            data: std::ptr::from_ref(code).cast(),
            info,
        }
    }

    fn of_static_async<C: AsyncCallable<Sh>>(info: ReceiverInfo, code: &'static C) -> Self {
        debug_assert!(
            info.owner().is_some(),
            "registered by an async registration"
        );
        Self {
            thunk: async_thunk::<Sh>,
            data: std::ptr::from_ref(code).cast(),
            info,
        }
    }

    /// What `data` is: the owner its identity names, made with the receiver (runtime ones)
    /// or by its async registration (static async ones), or a plain static receiver's.
    fn owner(&self) -> &'static Owner<Sh> {
        match self.info.owner() {
            Some(owner) => owner
                .downcast()
                .expect("a receiver's owner is made for its shape"),
            None => const { &Owner::of_static(None) },
        }
    }

    /// Runs a sync receiver; `None` when it did not run.
    #[inline]
    pub(crate) fn invoke<'r>(
        &self,
        sender: Sh::Sender<'r>,
        args: &'r Sh::Args<'_>,
    ) -> Option<Result<Sh::Output, BoxError>> {
        // SAFETY: `data` is the address of the value `thunk` was made for, which `self` holds
        // a strong reference to or which is `'static` (see the constructors); `self` is
        // borrowed, so that reference is held for the call. Async receivers' thunk reads
        // nothing.
        match unsafe { (self.thunk)(self.data, sender, args) } {
            Ok(output) => Some(Ok(output)),
            Err(failure) => failure.into_ran(),
        }
    }

    /// Starts the receiver for an async send: an async one gives its future, a plain one runs.
    pub(crate) fn start<'r>(
        &self,
        sender: Sh::Sender<'r>,
        args: &'r Sh::Args<'_>,
    ) -> Started<'r, Sh::Output> {
        match self.owner().start {
            // SAFETY: `start` was made for the value at `data` (see the constructors), which
            // lives while `self` is borrowed. The future it returns does not borrow that value:
            // its type names only the lifetime of the sender and the arguments.
            Some(start) => unsafe { start(self.data, sender, args) },
            None => Started::Ready(self.invoke(sender, args)),
        }
    }
}

impl<Sh: Shape> Clone for Receiver<Sh> {
    fn clone(&self) -> Self {
        if let Some(shared) = &self.owner().shared {
            // SAFETY: `shared` is set only for runtime receivers, whose `data` came from
            // `Arc::into_raw` for the type `retain` was made for, and `self` holds a strong
            // reference, so the count is not zero. The clone holds the one it adds.
            unsafe { (shared.retain)(self.data) };
        }
        Self {
            thunk: self.thunk,
            data: self.data,
            info: self.info.clone(),
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
        let Some(Shared { release, .. }) = self.owner().shared else {
            return; // nothing owned: a static receiver, or code held by no allocation
        };
        let data = self.data;
        // SAFETY: `shared` is set only for runtime receivers, whose `data` came from
        // `Arc::into_raw` for the type `release` was made for; `self` gives up the strong
        // reference it held, and is not used again.
        let released = catch_unwind(AssertUnwindSafe(move || unsafe { release(data) }));
        if let Err(payload) = released {
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
        self.owner().start.is_some()
    }

    fn alive(&self) -> bool {
        // SAFETY: `alive` was made for the value at `data`, which `self` holds.
        unsafe { (self.owner().alive)(self.data) }
    }
}

impl<Sh: Shape> Keyed for Receiver<Sh> {
    fn identity(&self) -> Identity<'_> {
        match self.info.dispatch_uid() {
            Some(uid) => Identity::Uid(uid),
            // SAFETY: `identity` was made for the value at `data`, which `self` holds.
            None => unsafe { (self.owner().identity)(self.data) },
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
        Receiver::start(self, cx.sender, cx.args)
    }
}

/// The [`Owner`] of the static async receiver `C`, which its registration puts in its
/// metadata (`ReceiverMeta::started_by`), so that its identity leads to how async sends start
/// it.
pub(crate) const fn static_async_owner<Sh: Shape, C: AsyncCallable<Sh>>() -> AnyOwner {
    AnyOwner(const { &Owner::<Sh>::of_static(Some(static_start::<Sh, C>)) })
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
    use crate::receiver::{Strong, WeakTarget};
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counted;
    impl Shape for Counted {
        type Sender<'s> = u8;
        type Args<'a> = AtomicUsize;
        type Output = usize;
    }

    fn connecting() -> Connecting {
        Connecting {
            location: std::panic::Location::caller(),
            dispatch_uid: None,
        }
    }

    #[allow(clippy::unnecessary_wraps, reason = "the shape of a static receiver")]
    fn add(sender: u8, args: &AtomicUsize) -> Result<usize, BoxError> {
        Ok(args.fetch_add(usize::from(sender), Ordering::SeqCst) + usize::from(sender))
    }

    static ADD: fn(u8, &AtomicUsize) -> Result<usize, BoxError> = add;

    #[test]
    fn a_static_receiver_is_called_through_its_thin_call() {
        let receiver: Receiver<Counted> =
            StaticCallable::<Counted, Plain>::receiver(&ADD, ReceiverInfo::placeholder());
        let args = AtomicUsize::new(1);
        assert_eq!(receiver.invoke(2, &args).unwrap().unwrap(), 3);
    }

    #[test]
    fn a_clone_calls_the_same_closure_after_the_original_is_dropped() {
        let captured = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&captured);
        let receiver = Receiver::<Counted>::plain::<Counted, _>(
            connecting(),
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
    fn a_closure_without_captures_is_held_by_no_allocation_and_still_runs() {
        let receiver = Receiver::<Counted>::plain::<Counted, _>(
            connecting(),
            Strong::new(|sender: u8, args: &AtomicUsize| {
                args.fetch_add(usize::from(sender), Ordering::SeqCst)
            }),
            None,
        );
        assert!(receiver.owner().shared.is_none(), "nothing to release");
        let clone = receiver.clone();
        drop(receiver);
        let args = AtomicUsize::new(1);
        assert_eq!(clone.invoke(2, &args).unwrap().unwrap(), 1);
        assert_eq!(args.load(Ordering::SeqCst), 3);
        assert!(matches!(clone.identity(), Identity::Code(_)));
        assert!(clone.alive());
    }

    #[test]
    fn a_failure_is_one_word_and_gives_back_the_error_it_boxed() {
        assert_eq!(
            mem::size_of::<Result<(), Failure>>(),
            mem::size_of::<usize>()
        );
        assert!(Failure::not_run().into_error().is_none());
        let error = Failure::failed("no disk".into()).into_error().unwrap();
        assert_eq!(error.to_string(), "no disk");
        // Dropped unread: the boxed error is freed (Miri reports a leak otherwise).
        drop(Failure::failed("dropped".into()));
        drop(Failure::not_run());
    }

    #[test]
    fn a_receiver_that_did_not_run_is_told_apart_from_one_that_failed() {
        let target = Arc::new(7_usize);
        let weak = Receiver::<Counted>::plain::<Counted, _>(
            connecting(),
            WeakTarget::new(&target, |target: &usize, _: u8, _: &AtomicUsize| *target),
            None,
        );
        let failing = Receiver::<Counted>::plain::<Counted, _>(
            connecting(),
            Strong::new(|_: u8, _: &AtomicUsize| -> Result<usize, std::fmt::Error> {
                Err(std::fmt::Error)
            }),
            None,
        );
        let elsewhere = Receiver::<Counted>::plain::<Counted, _>(
            connecting(),
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
