//! The responses of a send ([`Responses`]), whose receivers' identities are lent by the
//! snapshot the send ran: a sync send keeps its snapshot alive in its responses and copies
//! each receiver's [`ReceiverInfo`] out of it without taking a reference count, so that a
//! response costs no atomic read-modify-write (issue 16).
//!
//! The invariant: while `lent` holds a snapshot, every item's `receiver` is a bitwise copy of
//! a `ReceiverInfo` inside that snapshot, which is immutable, so the copy is valid for as long
//! as the responses keep it; such a copy is never dropped (it owns no count), only forgotten,
//! and whatever leaves the responses by value is first turned into an owned copy. Only
//! [`lend`] makes lent copies, and only of receivers it reads from the snapshot itself.
//!
//! Responses dropped on a thread give their buffer to that thread's next sync send (one spare
//! buffer a thread, reused when its size fits exactly), so that sending with responses
//! allocates nothing in steady state either.

use std::alloc::Layout;
use std::cell::Cell;
use std::fmt;
use std::mem;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::panic::AssertUnwindSafe;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::info::ReceiverInfo;
use crate::receiver::Info;

/// One receiver's response to a send: who answered, and what.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Response<T> {
    /// The receiver that ran.
    pub receiver: ReceiverInfo,
    /// What it returned: the signal's output for `send`, a `Result` for `send_robust`.
    pub output: T,
}

/// The responses of one send, in dispatch order. Dereferences to a slice of [`Response`].
///
/// The responses of a sync send keep the snapshot of receivers it ran, and borrow each
/// receiver's identity from it rather than counting a reference per response: receivers
/// disconnected since are freed when the responses are dropped. A response taken by value
/// (`into_iter`), or a clone, owns its identity.
pub struct Responses<T> {
    items: Vec<Response<T>>,
    /// The snapshot that lends every item's `receiver`, if they are lent. Immutable, so
    /// asserting unwind safety keeps `Responses` as unwind-safe as its outputs.
    lent: Option<AssertUnwindSafe<Arc<dyn Send + Sync>>>,
    /// Whether no item's output has anything to drop (a robust send whose receivers all
    /// succeeded, with outputs that have no drop glue): dropping lent items then skips the
    /// per-item drop, which for `Result<_, ReceiverError>` is an out-of-line call each.
    trivial: bool,
}

impl<T> Responses<T> {
    /// No responses: a send that reached no receiver.
    pub(crate) fn none() -> Self {
        Self::owned(Vec::new())
    }

    /// Responses that own their receivers' identities.
    pub(crate) fn owned(items: Vec<Response<T>>) -> Self {
        Self {
            items,
            lent: None,
            trivial: false,
        }
    }

    /// Records that no output needs dropping, so that dropping the responses skips them. Only
    /// ever true for outputs with nothing to drop; if it were wrong, outputs would leak.
    pub(crate) fn set_trivial(&mut self) {
        self.trivial = true;
    }

    /// The outputs alone, in dispatch order.
    #[must_use]
    pub fn outputs(&self) -> impl ExactSizeIterator<Item = &T> + '_ {
        self.items.iter().map(|response| &response.output)
    }

    /// The outputs alone, by value.
    #[must_use]
    pub fn into_outputs(mut self) -> Vec<T> {
        self.own();
        mem::take(&mut self.items)
            .into_iter()
            .map(|r| r.output)
            .collect()
    }

    /// The names of the receivers that ran, in dispatch order.
    #[must_use]
    pub fn names(&self) -> impl ExactSizeIterator<Item = &'static str> + '_ {
        self.items.iter().map(|response| response.receiver.name())
    }

    /// Drops the items' outputs, and forgets their lent identities, which own no count.
    fn drop_lent(&mut self) {
        let len = self.items.len();
        let items = self.items.as_mut_ptr();
        // SAFETY: after `set_len(0)` the vector no longer drops its items; each output is
        // dropped here once, in place (unless `trivial` says none has anything to drop), and
        // each receiver is a lent copy, which must not be dropped. If an output's `Drop`
        // panics, the rest are leaked, which is safe.
        unsafe {
            self.items.set_len(0);
            if self.trivial {
                return;
            }
            for index in 0..len {
                std::ptr::drop_in_place(&raw mut (*items.add(index)).output);
            }
        }
    }

    /// Makes every identity owned: lent copies become clones, which take their own count.
    fn own(&mut self) {
        if self.lent.is_some() {
            for item in &mut self.items {
                let lent = mem::replace(&mut item.receiver, ReceiverInfo::placeholder());
                item.receiver = lent.clone();
                mem::forget(lent);
            }
            self.lent = None;
        }
    }
}

impl<T> Drop for Responses<T> {
    fn drop(&mut self) {
        if self.lent.is_some() {
            self.drop_lent();
        } else {
            self.items.clear();
        }
        recycle(&mut self.items);
        // The snapshot, if any, is dropped after this, with the fields.
    }
}

impl<T, E> Responses<Result<T, E>> {
    /// The failed receivers of a robust send, with their errors.
    pub fn failures(&self) -> impl Iterator<Item = (&ReceiverInfo, &E)> + '_ {
        self.items.iter().filter_map(|r| match &r.output {
            Ok(_) => None,
            Err(error) => Some((&r.receiver, error)),
        })
    }
}

impl<T> Deref for Responses<T> {
    type Target = [Response<T>];

    fn deref(&self) -> &[Response<T>] {
        &self.items
    }
}

impl<T: Clone> Clone for Responses<T> {
    /// A copy that owns its receivers' identities.
    fn clone(&self) -> Self {
        Self::owned(self.items.clone())
    }
}

impl<T: fmt::Debug> fmt::Debug for Responses<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responses")
            .field("items", &self.items)
            .finish_non_exhaustive()
    }
}

impl<T> IntoIterator for Responses<T> {
    type Item = Response<T>;
    type IntoIter = std::vec::IntoIter<Response<T>>;

    fn into_iter(mut self) -> Self::IntoIter {
        self.own();
        mem::take(&mut self.items).into_iter()
    }
}

impl<'a, T> IntoIterator for &'a Responses<T> {
    type Item = &'a Response<T>;
    type IntoIter = std::slice::Iter<'a, Response<T>>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

/// How many buffers of dropped responses a thread keeps for its next sends.
const SPARES: usize = 4;

thread_local! {
    /// The buffers of the last responses dropped on this thread, for its next sync sends.
    static SPARES_HERE: Spares = const { Spares([const { Cell::new(None) }; SPARES]) };
}

/// A buffer allocated by the global allocator with its layout, holding nothing.
type Buffer = (NonNull<u8>, Layout);

/// The thread's spare buffers.
struct Spares([Cell<Option<Buffer>>; SPARES]);

impl Drop for Spares {
    fn drop(&mut self) {
        for spare in &self.0 {
            if let Some((buffer, layout)) = spare.take() {
                // SAFETY: `recycle` kept it as the global allocator allocated it, with `layout`.
                unsafe { std::alloc::dealloc(buffer.as_ptr(), layout) };
            }
        }
    }
}

/// An empty vector for `count` responses: one of the thread's spare buffers whose size is a
/// whole number of responses, at least `count`, and whose alignment is a response's; otherwise
/// a new one.
#[inline]
fn buffer<T>(count: usize) -> Vec<Response<T>> {
    let size = size_of::<Response<T>>();
    let fits = |layout: Layout| {
        layout.align() == align_of::<Response<T>>()
            && layout.size() % size == 0
            && layout.size() / size >= count
    };
    let found = SPARES_HERE.try_with(|spares| {
        spares.0.iter().find_map(|spare| match spare.get() {
            Some((buffer, layout)) if fits(layout) => {
                spare.set(None);
                Some((buffer, layout))
            }
            _ => None,
        })
    });
    if let Ok(Some((buffer, layout))) = found {
        // SAFETY: the global allocator allocated `buffer` with `layout`, whose size is a whole
        // number of responses and whose alignment is a response's: the allocation a
        // `Vec<Response<T>>` of that capacity has. Nothing else holds it (it was taken out of
        // the spares), and it is empty.
        return unsafe { Vec::from_raw_parts(buffer.as_ptr().cast(), 0, layout.size() / size) };
    }
    Vec::with_capacity(count)
}

/// Keeps the buffer of `items`, now empty, among the thread's spares (freeing the oldest if
/// they are all taken).
#[inline]
fn recycle<T>(items: &mut Vec<Response<T>>) {
    debug_assert!(items.is_empty());
    let Ok(layout) = Layout::array::<Response<T>>(items.capacity()) else {
        return;
    };
    if layout.size() == 0 {
        return;
    }
    let mut items = ManuallyDrop::new(mem::take(items));
    let Some(buffer) = NonNull::new(items.as_mut_ptr().cast::<u8>()) else {
        return;
    };
    // From here the spares own the buffer: a vector of `items.capacity()` responses is
    // allocated with `layout`.
    let kept = Some((buffer, layout));
    let freed = SPARES_HERE
        .try_with(|spares| {
            if let Some(empty) = spares.0.iter().find(|spare| spare.get().is_none()) {
                return empty.replace(kept);
            }
            // All taken: the first goes, the others move up, and this one comes last.
            let oldest = spares.0[0].replace(kept);
            for index in 1..SPARES {
                spares.0[index - 1].swap(&spares.0[index]);
            }
            oldest
        })
        .unwrap_or(kept); // the thread is exiting
    if let Some((buffer, layout)) = freed {
        // SAFETY: allocated by the global allocator with `layout`, and held by nothing else.
        unsafe { std::alloc::dealloc(buffer.as_ptr(), layout) };
    }
}

/// Responses whose identities are lent, while a send collects them: if a receiver's panic
/// unwinds the send before they are handed over, their outputs are dropped and their lent
/// copies forgotten, not dropped.
struct LentItems<T>(Vec<Response<T>>);

impl<T> Drop for LentItems<T> {
    fn drop(&mut self) {
        for item in &mut self.0 {
            mem::forget(mem::replace(
                &mut item.receiver,
                ReceiverInfo::placeholder(),
            ));
        }
    }
}

/// Runs `each` on the receivers `list` picks in `snapshot`, in order, and returns the
/// responses it gives (`None`: that receiver has none), which keep `snapshot` and borrow their
/// receivers' identities from it; or why `each` stopped the send.
#[inline]
pub(crate) fn lend<Rt, S, T, E>(
    snapshot: Arc<Rt>,
    list: impl for<'x> FnOnce(&'x Rt) -> &'x [S],
    mut each: impl FnMut(&S) -> Result<Option<T>, E>,
) -> Result<Responses<T>, E>
where
    Rt: Send + Sync + 'static,
    S: Info,
{
    let steps = list(&snapshot);
    let mut items = LentItems(buffer(steps.len()));
    let start = items.0.as_mut_ptr();
    // By index: with 24-byte entries, iterating the slice keeps a pointer and a count in the
    // loop where an index is one register (`send` at 10 receivers: 465 instructions against
    // 482).
    #[allow(
        clippy::needless_range_loop,
        reason = "the index is the loop's only induction variable"
    )]
    for index in 0..steps.len() {
        let step = &steps[index];
        if let Some(output) = each(step)? {
            let info: *const ReceiverInfo = step.info();
            // SAFETY: as in `LentItems::count`: `info` points into `snapshot`, which the
            // responses keep, and the copy is never dropped.
            let receiver = unsafe { std::ptr::read(info) };
            let len = items.0.len();
            // SAFETY: `buffer` gave room for one response per step, and each step adds at most
            // one, so `len < capacity`; `start` is the buffer's start, which `each` cannot
            // move (it does not see `items`). Writing the response, then counting it, keeps
            // `items` valid for `LentItems` if a later step unwinds.
            unsafe {
                start.add(len).write(Response { receiver, output });
                items.0.set_len(len + 1);
            }
        }
    }
    Ok(items.into_responses(snapshot))
}

/// Like [`lend`], for outputs `each` writes where the response goes ([`Place::write`]): an
/// output such as `Ok(())` is then stored as its tag alone, where a returned value is copied
/// whole, undefined bytes included (which costs `send_robust` about 4 instructions a receiver;
/// for `send`'s plain outputs, returning them costs less).
#[inline]
pub(crate) fn lend_into<Rt, S, T, E>(
    snapshot: Arc<Rt>,
    list: impl for<'x> FnOnce(&'x Rt) -> &'x [S],
    mut each: impl FnMut(&S, Place<T>) -> Result<Option<Written<T>>, E>,
) -> Result<Responses<T>, E>
where
    Rt: Send + Sync + 'static,
    S: Info,
{
    let steps = list(&snapshot);
    let mut items = LentItems(buffer::<T>(steps.len()));
    let start = items.0.as_mut_ptr();
    // By index, as in `lend`.
    #[allow(
        clippy::needless_range_loop,
        reason = "the index is the loop's only induction variable"
    )]
    for index in 0..steps.len() {
        let step = &steps[index];
        let len = items.0.len();
        // `buffer` gave room for one response per step, and each step adds at most one, so
        // `len < capacity`; `start` is the buffer's start, which `each` cannot move (it does
        // not see `items`): the place is in the buffer, past the responses counted.
        if let Some(Written(place)) = each(step, Place(start.wrapping_add(len)))? {
            debug_assert!(
                std::ptr::eq(place.0, start.wrapping_add(len)),
                "this turn's place"
            );
            items.count(place.0, len, step);
        }
    }
    Ok(items.into_responses(snapshot))
}

/// Where the next response goes: room past the end of the responses collected so far, which
/// they do not include yet. Only [`lend_into`] makes one.
pub(crate) struct Place<T>(*mut Response<T>);

/// A [`Place`] whose output is written; only [`Place::write`] makes one.
pub(crate) struct Written<T>(Place<T>);

impl<T> Place<T> {
    /// Writes the response's output.
    #[inline]
    pub(crate) fn write(self, output: T) -> Written<T> {
        // SAFETY: the place has room for a response and is not part of the responses
        // (`lend_into`); `self` is consumed, so the output is written once.
        unsafe { (&raw mut (*self.0).output).write(output) };
        Written(self)
    }
}

impl<T> LentItems<T> {
    /// Adds the `len`th response, at `response`, whose output is written, with the identity of
    /// `step`.
    #[inline]
    fn count<S: Info>(&mut self, response: *mut Response<T>, len: usize, step: &S) {
        let info: *const ReceiverInfo = step.info();
        // SAFETY: `response` is the place of the `len`th response, in the buffer (see
        // `lend_into`), and `len` responses are counted. `info` points into the snapshot the
        // responses will keep (the steps come from the snapshot's lists or from `'static`
        // data), and a snapshot is immutable. The copy shares the original's reference count
        // without taking one: it is never dropped, only forgotten or cloned (see the module's
        // invariant; `LentItems` forgets them on unwinding). With the identity written the
        // response is whole; counting it then keeps the responses valid for `LentItems` if a
        // later step unwinds.
        unsafe {
            (&raw mut (*response).receiver).write(std::ptr::read(info));
            self.0.set_len(len + 1);
        }
    }

    /// The responses collected, keeping `snapshot`.
    #[inline]
    fn into_responses<Rt: Send + Sync + 'static>(mut self, snapshot: Arc<Rt>) -> Responses<T> {
        Responses {
            items: mem::take(&mut self.0),
            lent: Some(AssertUnwindSafe(snapshot)),
            trivial: false,
        }
    }
}
