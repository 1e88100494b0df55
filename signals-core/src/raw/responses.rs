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
//! Responses dropped on a thread give their buffer to that thread's next sync sends (a few
//! spare buffers a thread, each reused by responses of the same size and alignment), so that
//! sending with responses allocates nothing in steady state either.
//! [`lend`] and [`lend_into`] make them, and [`discard`] gives them up when a send unwinds.

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
    /// Dropped by hand: the buffer goes to the thread's spares (`recycle`).
    items: ManuallyDrop<Vec<Response<T>>>,
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
            items: ManuallyDrop::new(items),
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
        self.take_items().into_iter().map(|r| r.output).collect()
    }

    /// The names of the receivers that ran, in dispatch order.
    #[must_use]
    pub fn names(&self) -> impl ExactSizeIterator<Item = &'static str> + '_ {
        self.items.iter().map(|response| response.receiver.name())
    }

    /// The items, by value, owned; the responses are left empty.
    fn take_items(&mut self) -> Vec<Response<T>> {
        self.own();
        mem::take(&mut *self.items)
    }

    /// Drops the items' outputs, and forgets their lent identities, which own no count.
    fn drop_lent(&mut self) {
        let len = self.items.len();
        // SAFETY: after `set_len(0)` the vector no longer drops its items; their outputs are
        // dropped here once, in place (unless `trivial` says none has anything to drop), and
        // each receiver is a lent copy, which must not be dropped. If an output's `Drop`
        // panics, the other outputs and the buffer leak, which is safe.
        unsafe {
            self.items.set_len(0);
            if !self.trivial {
                drop_outputs(self.items.as_mut_ptr(), len);
            }
        }
    }

    /// Makes every identity owned: lent copies become clones, which take their own count.
    fn own(&mut self) {
        if self.lent.is_some() {
            for item in self.items.iter_mut() {
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
        // SAFETY: `items` is not used again: the responses are being dropped.
        recycle(unsafe { ManuallyDrop::take(&mut self.items) });
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
        Self::owned(Vec::clone(&self.items))
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
        self.take_items().into_iter()
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

/// A buffer allocated by the global allocator for a vector of responses, holding nothing: its
/// address, its capacity and the layout of its responses ([`Element`]). Plain words, so that
/// looking for one is two compares.
#[derive(Clone, Copy)]
struct Buffer {
    address: NonNull<u8>,
    capacity: usize,
    element: Element,
}

/// The size and alignment of a response in one word: the size in the low bits, the
/// alignment's log2 in the top 8.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Element(usize);

/// How many low bits of an [`Element`] hold the size.
const SIZE_BITS: u32 = usize::BITS - 8;

impl Element {
    /// The layout of a `Response<T>`; `None` for a response too large for the word, which
    /// never uses the spares.
    const fn of<T>() -> Option<Self> {
        let size = size_of::<Response<T>>();
        if size >> SIZE_BITS != 0 {
            return None;
        }
        let align = align_of::<Response<T>>().trailing_zeros() as usize;
        Some(Self(size | align << SIZE_BITS))
    }

    fn size(self) -> usize {
        self.0 & ((1 << SIZE_BITS) - 1)
    }

    fn align(self) -> usize {
        1 << (self.0 >> SIZE_BITS)
    }
}

impl Buffer {
    /// Frees the buffer.
    ///
    /// # Safety
    ///
    /// The global allocator allocated it for a vector of `capacity` elements of `element`'s
    /// layout, and nothing holds it.
    unsafe fn free(self) {
        // SAFETY: the size of such a vector's allocation (the caller's promise), with its
        // alignment, is a valid layout.
        unsafe {
            let size = self.capacity * self.element.size();
            let layout = Layout::from_size_align_unchecked(size, self.element.align());
            std::alloc::dealloc(self.address.as_ptr(), layout);
        }
    }
}

/// The thread's spare buffers.
struct Spares([Cell<Option<Buffer>>; SPARES]);

impl Drop for Spares {
    fn drop(&mut self) {
        for spare in &self.0 {
            if let Some(buffer) = spare.take() {
                // SAFETY: `recycle` kept it as the global allocator allocated it.
                unsafe { buffer.free() };
            }
        }
    }
}

/// An empty vector for `count` responses: one of the thread's spare buffers for at least
/// `count` responses of the same size and alignment; otherwise a new one.
#[inline]
fn buffer<T>(count: usize) -> Vec<Response<T>> {
    let Some(element) = Element::of::<T>() else {
        return Vec::with_capacity(count);
    };
    let found = SPARES_HERE.try_with(|spares| {
        spares.0.iter().find_map(|spare| match spare.get() {
            Some(buffer) if buffer.element == element && buffer.capacity >= count => {
                spare.set(None);
                Some(buffer)
            }
            _ => None,
        })
    });
    if let Ok(Some(buffer)) = found {
        // SAFETY: the global allocator allocated `buffer` for a vector of `capacity` elements
        // with the size and alignment of a `Response<T>`: the allocation a `Vec<Response<T>>`
        // of that capacity has. Nothing else holds it (it was taken out of the spares), and
        // it is empty.
        return unsafe { Vec::from_raw_parts(buffer.address.cast().as_ptr(), 0, buffer.capacity) };
    }
    Vec::with_capacity(count)
}

/// Keeps the buffer of `items`, whose responses are dropped or forgotten, among the thread's
/// spares (freeing the oldest if they are all taken).
#[inline]
fn recycle<T>(items: Vec<Response<T>>) {
    // `Response` is never zero-sized (it holds an identity): a capacity is an allocation, of
    // that many responses.
    let Some(element) = Element::of::<T>().filter(|_| items.capacity() != 0) else {
        return;
    };
    let mut items = ManuallyDrop::new(items);
    // From here the spares own the buffer.
    let kept = Some(Buffer {
        // SAFETY: a vector with capacity has a buffer, which is not null.
        address: unsafe { NonNull::new_unchecked(items.as_mut_ptr().cast::<u8>()) },
        capacity: items.capacity(),
        element,
    });
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
    if let Some(buffer) = freed {
        // SAFETY: allocated by the global allocator with its size and alignment, and held by
        // nothing else.
        unsafe { buffer.free() };
    }
}

/// Responses whose identities are lent, while a send collects them: a buffer of `capacity`
/// responses, written from `start` up to `end`. Plain fields rather than a `Vec`, whose drop
/// would need it in memory, so that the end stays in a register through the receivers' calls
/// (`send` at 10 receivers, when it came: 444 instructions against 465). If a receiver's
/// panic unwinds the send before they are handed over, the outputs written are dropped and
/// their lent identities, which own no count, are left alone ([`discard`]).
struct LentItems<T> {
    start: *mut Response<T>,
    end: *mut Response<T>,
    capacity: usize,
}

impl<T> LentItems<T> {
    /// Room for `count` responses, none written.
    #[inline]
    fn with_room(count: usize) -> Self {
        let mut buffer = ManuallyDrop::new(buffer::<T>(count));
        let start = buffer.as_mut_ptr();
        Self {
            start,
            end: start,
            capacity: buffer.capacity(),
        }
    }

    /// How many responses are written.
    #[inline]
    fn len(&self) -> usize {
        // `end` is `start` moved on by one response per response written (`Response` is never
        // zero-sized: it holds an identity).
        (self.end.addr() - self.start.addr()) / size_of::<Response<T>>()
    }

    /// Adds the next response: `output`, with the identity of `step`.
    #[inline]
    fn push<S: Info>(&mut self, step: &S, output: T) {
        // SAFETY: `with_room` gave room for one response per step, and each step adds at most
        // one, so the next response is in the buffer, past the ones counted.
        unsafe { (&raw mut (*self.end).output).write(output) };
        self.count(step);
    }

    /// Counts the next response, whose output is written, with the identity of `step`.
    #[inline]
    fn count<S: Info>(&mut self, step: &S) {
        debug_assert!(self.len() < self.capacity, "one response a step at most");
        let info: *const ReceiverInfo = step.info();
        // SAFETY: the next response is in the buffer (see `push` and `lend_into`) and its
        // output is written. `info` points into the snapshot the responses will keep (the
        // steps come from the snapshot's lists or from `'static` data), and a snapshot is
        // immutable. The copy shares the original's reference count without taking one: it is never dropped,
        // only forgotten or cloned (see the module's invariant; `discard` leaves it alone).
        // With the identity written the response is whole; counting it then keeps `self`
        // right for its drop if a later step unwinds.
        unsafe {
            (&raw mut (*self.end).receiver).write(std::ptr::read(info));
            self.end = self.end.add(1);
        }
    }

    /// The responses collected, keeping `snapshot`.
    #[inline]
    fn into_responses<Rt: Send + Sync + 'static>(self, snapshot: Arc<Rt>) -> Responses<T> {
        let items = ManuallyDrop::new(self);
        Responses {
            // SAFETY: the buffer is a `Vec`'s of `capacity` (`with_room`), its first `len`
            // responses are written, and `items` is not dropped: the vector owns them now.
            items: ManuallyDrop::new(unsafe {
                Vec::from_raw_parts(items.start, items.len(), items.capacity)
            }),
            lent: Some(AssertUnwindSafe(snapshot)),
            trivial: false,
        }
    }
}

impl<T> Drop for LentItems<T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: `start` and `capacity` are the buffer `with_room` took out of its `Vec`,
        // which only `self` holds (`into_responses` forgets `self`), with `len` responses
        // written.
        unsafe { discard(self.start, self.len(), self.capacity) };
    }
}

/// Drops the `len` outputs written at `start` and frees the buffer of `capacity` responses,
/// leaving the lent identities alone: a send that unwound.
///
/// # Safety
///
/// `start` and `capacity` are those of an empty `Vec` that nothing else owns, and its first
/// `len` responses are written.
#[cold]
#[inline(never)]
unsafe fn discard<T>(start: *mut Response<T>, len: usize, capacity: usize) {
    // SAFETY: the vector owns the buffer again from here, holding nothing: if an output's
    // `Drop` panics, the buffer is freed and the other outputs leak, which is safe. Each
    // output is dropped once, in place.
    unsafe {
        let _buffer = Vec::from_raw_parts(start, 0, capacity);
        drop_outputs(start, len);
    }
}

/// Drops the outputs of the `len` responses at `start`, in place, and nothing else of them.
///
/// # Safety
///
/// The `len` responses at `start` are written, their outputs are not used again, and nothing
/// else drops them.
unsafe fn drop_outputs<T>(start: *mut Response<T>, len: usize) {
    for index in 0..len {
        // SAFETY: the caller's promise; each output is dropped once.
        unsafe { std::ptr::drop_in_place(&raw mut (*start.add(index)).output) };
    }
}

/// Runs `each` on the receivers `list` picks in `snapshot`, in order, and returns the
/// responses it gives, which keep `snapshot` and borrow their receivers' identities from it;
/// or why `each` stopped the send (`Err(Some(_))`). `Err(None)`: that receiver has no
/// response. Not `Result<Option<T>, E>`: for a `()` output, that shape made the loop carry the
/// last `Option`'s tag in a register into the error it returns, an instruction a receiver
/// (`send` at 10 receivers: 406 instructions against 416).
#[inline]
pub(crate) fn lend<Rt, S, T, E>(
    snapshot: Arc<Rt>,
    list: impl for<'x> FnOnce(&'x Rt) -> &'x [S],
    mut each: impl FnMut(&S) -> Result<T, Option<E>>,
) -> Result<Responses<T>, E>
where
    Rt: Send + Sync + 'static,
    S: Info,
{
    let steps = list(&snapshot);
    let mut items = LentItems::with_room(steps.len());
    // By index: with 24-byte entries, iterating the slice keeps a pointer and a count in the
    // loop where an index is one register (`send` at 10 receivers: 465 instructions against
    // 482).
    #[allow(
        clippy::needless_range_loop,
        reason = "the index is the loop's only induction variable"
    )]
    for index in 0..steps.len() {
        let step = &steps[index];
        match each(step) {
            Ok(output) => items.push(step, output),
            Err(None) => {}
            Err(Some(error)) => return Err(error),
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
    let mut items = LentItems::with_room(steps.len());
    // By index, as in `lend`.
    #[allow(
        clippy::needless_range_loop,
        reason = "the index is the loop's only induction variable"
    )]
    for index in 0..steps.len() {
        let step = &steps[index];
        let place = items.end;
        // `with_room` gave room for one response per step, and each step adds at most one:
        // the place is in the buffer, past the responses counted.
        if let Some(Written(written)) = each(step, Place(place))? {
            debug_assert!(std::ptr::eq(written.0, place), "this turn's place");
            items.count(step);
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
