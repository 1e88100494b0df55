//! How a signal publishes its routing snapshot to sends without a lock and without an atomic
//! read-modify-write on shared memory: [`Published`], a pointer to an `Arc`'s value that sends
//! read under a per-thread hazard pointer, and whose replaced values are freed once no send
//! reads them any more.
//!
//! A send ([`Pin`], [`Published::read`]) writes the pointer it is about to read into one of its
//! thread's hazard slots, one per nesting level, checks that the pointer is still current, reads, and
//! clears the slot when it ends (also when a receiver's panic unwinds it). A replaced value is
//! *retired*: it is freed at once if no hazard slot holds it, and otherwise by the thread whose
//! send held it last, when that send ends. So a disconnected receiver's closure is freed, as
//! with the `arc-swap` crate this replaces, when the last send that had already loaded a
//! snapshot holding it ends, on that send's thread (or by the edit that replaced the snapshot,
//! when no send was reading it).
//!
//! Cost: two stores and two loads per send, no lock, no allocation (a thread's first send may
//! allocate its slots once; they are reused by later threads). While a retired value waits for
//! a send that holds it, every send that ends checks the retired list under a lock.

use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// Nesting levels of sends that have a hazard slot of their own on each thread; deeper sends
/// borrow a spare set of slots (slower, still correct).
const LEVELS: usize = 16;

/// One thread's hazard slots, one per nesting level: the value a send at that level reads, or
/// null. Slots are never freed: a thread that ends gives its set back for a later thread.
struct Slots {
    hazards: [AtomicPtr<()>; LEVELS],
    in_use: AtomicBool,
    next: OnceLock<&'static Slots>,
}

impl Slots {
    const fn new(in_use: bool) -> Self {
        Self {
            hazards: [const { AtomicPtr::new(std::ptr::null_mut()) }; LEVELS],
            in_use: AtomicBool::new(in_use),
            next: OnceLock::new(),
        }
    }

    /// Takes a set of slots nobody uses, adding one to the list if all are taken.
    fn acquire() -> &'static Self {
        let mut slots: &'static Self = &FIRST;
        loop {
            if !slots.in_use.load(Ordering::Relaxed)
                && slots
                    .in_use
                    .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return slots;
            }
            slots = slots
                .next
                .get_or_init(|| Box::leak(Box::new(Self::new(false))));
        }
    }

    /// Gives the slots back: every hazard is clear, since the sends that set them have ended.
    fn release(&self) {
        self.in_use.store(false, Ordering::Release);
    }

    /// Every set of slots ever made.
    fn all() -> impl Iterator<Item = &'static Self> {
        std::iter::successors(Some(&FIRST), |slots| slots.next.get().copied())
    }
}

/// The head of the list of hazard slot sets.
static FIRST: Slots = Slots::new(false);

/// What a thread uses: its slots (taken on its first send) and how deep its sends nest. No
/// destructor, so that it stays usable while the thread's other thread-locals are destroyed;
/// [`OWNER`] gives the slots back when the thread ends.
struct Local {
    slots: Cell<Option<&'static Slots>>,
    depth: Cell<u32>,
}

thread_local! {
    static LOCAL: Local = const {
        Local {
            slots: Cell::new(None),
            depth: Cell::new(0),
        }
    };
    /// Gives the thread's slots back when it ends.
    static OWNER: SlotsOwner = const { SlotsOwner(Cell::new(None)) };
}

/// The thread's hold on its slots, released when the thread ends.
struct SlotsOwner(Cell<Option<&'static Slots>>);

impl Drop for SlotsOwner {
    fn drop(&mut self) {
        if let Some(slots) = self.0.take() {
            // Sends later in the thread's exit take spare slots for themselves.
            let _ = LOCAL.try_with(|local| local.slots.set(None));
            slots.release();
        }
    }
}

/// The thread's slots, taken on its first send; `None` while it exits.
#[cold]
#[inline(never)]
fn own_slots(local: &Local) -> Option<&'static Slots> {
    let slots = Slots::acquire();
    let owned = OWNER.try_with(|owner| owner.0.set(Some(slots)));
    if owned.is_err() {
        slots.release();
        return None;
    }
    local.slots.set(Some(slots));
    Some(slots)
}

/// Values replaced while a send may still have been reading them, with their addresses.
static RETIRED: Mutex<Vec<Retired>> = Mutex::new(Vec::new());

/// How many values [`RETIRED`] holds: sends that end look at the list only when it is not 0.
static PENDING: AtomicUsize = AtomicUsize::new(0);

struct Retired {
    address: usize,
    /// Held only to be dropped once no hazard slot holds `address`.
    _value: Arc<dyn Send + Sync>,
}

/// One send's place on its thread: how deep it nests in the thread's other sends, and the
/// hazard slot through which it reads one published value ([`Published::read`]). Dropping it
/// ends the send: the slot is cleared and the values retired meanwhile that nobody else reads
/// are freed, here.
pub(crate) struct Pin {
    /// The thread's own slot for the send's depth, or the first of a spare set.
    slot: &'static AtomicPtr<()>,
    depth: u32,
    /// Whether `slot` is in a spare set, taken for this send alone: sends nested deeper than
    /// [`LEVELS`], and sends while the thread exits.
    spare: bool,
}

impl Pin {
    /// Enters a send on this thread.
    #[inline]
    pub(crate) fn enter() -> Self {
        let (depth, slots) = LOCAL.with(|local| {
            let depth = local.depth.get();
            local.depth.set(depth + 1);
            (depth, local.slots.get())
        });
        match slots {
            Some(slots) if (depth as usize) < LEVELS => Self {
                slot: &slots.hazards[depth as usize],
                depth,
                spare: false,
            },
            _ => Self::slow(depth),
        }
    }

    /// A pin whose thread has no slots yet, or whose send nests too deep for them.
    #[cold]
    #[inline(never)]
    fn slow(depth: u32) -> Self {
        let own = LOCAL.with(|local| local.slots.get().or_else(|| own_slots(local)));
        match own {
            Some(slots) if (depth as usize) < LEVELS => Self {
                slot: &slots.hazards[depth as usize],
                depth,
                spare: false,
            },
            _ => Self {
                slot: &Slots::acquire().hazards[0],
                depth,
                spare: true,
            },
        }
    }

    /// How many sends this one is nested in, on its thread.
    #[inline]
    pub(crate) fn depth(&self) -> u32 {
        self.depth
    }

    /// Reads `source` and holds what it read: a retired value is not freed while a hazard
    /// slot holds it.
    #[inline]
    fn protect<T>(&mut self, source: &AtomicPtr<T>) -> *const T {
        let mut read = source.load(Ordering::Acquire);
        loop {
            self.slot.store(read.cast(), Ordering::SeqCst);
            // Whoever replaces the value after this store sees the hazard; a value replaced
            // before it is not read here.
            let again = source.load(Ordering::SeqCst);
            if again == read {
                return read;
            }
            read = again;
        }
    }
}

impl Drop for Pin {
    #[inline]
    fn drop(&mut self) {
        LOCAL.with(|local| local.depth.set(self.depth));
        // Only this thread writes the slot: a plain load tells whether the send read anything.
        if !self.slot.load(Ordering::Relaxed).is_null() {
            self.slot.store(std::ptr::null_mut(), Ordering::SeqCst);
            // Either the retiring thread sees the hazard cleared, or this sees its value
            // pending.
            if PENDING.load(Ordering::SeqCst) != 0 {
                reclaim();
            }
        }
        if self.spare {
            release_spare(self.slot);
        }
    }
}

/// Gives back the spare set whose first slot is `slot`.
#[cold]
fn release_spare(slot: &AtomicPtr<()>) {
    if let Some(slots) = Slots::all().find(|slots| std::ptr::eq(&raw const slots.hazards[0], slot))
    {
        slots.release();
    }
}

/// Frees the retired values no hazard holds, one at a time outside the lock, so that their
/// `Drop` may send, connect or disconnect (and so that freeing allocates nothing).
#[cold]
#[inline(never)]
fn reclaim() {
    loop {
        let freed = {
            let mut retired = RETIRED.lock().unwrap_or_else(PoisonError::into_inner);
            let free = retired.iter().position(|value| !held(value.address));
            let freed = free.map(|index| retired.swap_remove(index));
            PENDING.store(retired.len(), Ordering::SeqCst);
            freed
        };
        match freed {
            Some(freed) => drop(freed),
            None => return,
        }
    }
}

/// Whether a send holds the value at `address`.
fn held(address: usize) -> bool {
    Slots::all().any(|slots| {
        slots
            .hazards
            .iter()
            .any(|hazard| hazard.load(Ordering::SeqCst).addr() == address)
    })
}

/// An `Arc<T>` published to sends: they read it with [`read`](Self::read) under a [`Pin`],
/// edits replace it with [`replace`](Self::replace).
pub(crate) struct Published<T> {
    /// From `Arc::into_raw`: this owns one strong count of the current value.
    current: AtomicPtr<T>,
    _owns: PhantomData<Arc<T>>,
}

impl<T: Send + Sync + 'static> Published<T> {
    pub(crate) fn new(value: Arc<T>) -> Self {
        Self {
            current: AtomicPtr::new(Arc::into_raw(value).cast_mut()),
            _owns: PhantomData,
        }
    }

    /// The current value, alive as long as `pin` is (even if it is replaced meanwhile). A pin
    /// reads one value at a time.
    #[inline]
    pub(crate) fn read<'p>(&'p self, pin: &'p mut Pin) -> &'p T {
        let value = pin.protect(&self.current);
        // SAFETY: `value` came from `Arc::into_raw` and was current after the pin's hazard slot
        // held it (`protect` checked). A value is freed only after it stopped being current
        // (`replace`) and then no hazard slot held it (`reclaim`); the slot holds it until
        // `pin` is dropped or reads again, which the borrows of `pin` forbid while the returned
        // reference lives.
        unsafe { &*value }
    }

    /// The current value, owned.
    pub(crate) fn load_full(&self) -> Arc<T> {
        self.load_full_with(&mut Pin::enter())
    }

    /// The current value, owned, read through the send's own `pin`.
    #[inline]
    pub(crate) fn load_full_with(&self, pin: &mut Pin) -> Arc<T> {
        let value = pin.protect(&self.current);
        // SAFETY: `value` is alive (see `read`) and came from `Arc::into_raw` on an `Arc<T>`;
        // the new strong count is owned by the `Arc` made from it.
        unsafe {
            Arc::increment_strong_count(value);
            Arc::from_raw(value)
        }
    }

    /// Publishes `value`; sends that start after this read it. The value it replaces is freed
    /// when the sends that read it have ended: drop the returned [`Replaced`] where its `Drop`
    /// may run (outside any lock its receivers' captures might take).
    #[must_use = "dropping the result frees the replaced value"]
    pub(crate) fn replace(&self, value: Arc<T>) -> Replaced {
        let new = Arc::into_raw(value).cast_mut();
        let old = self.current.swap(new, Ordering::SeqCst);
        // SAFETY: `old` came from `Arc::into_raw`, and this strong count was owned by
        // `current`, which no longer holds it. Sends may still read through `old`: the `Arc`
        // is only dropped by `reclaim`, once no hazard slot holds its address.
        let old = unsafe { Arc::from_raw(old) };
        Replaced(Some(Retired {
            address: Arc::as_ptr(&old).addr(),
            _value: old,
        }))
    }
}

impl<T> Drop for Published<T> {
    fn drop(&mut self) {
        // SAFETY: `current` owns one strong count, from `Arc::into_raw`. Nothing reads it any
        // more: `with` and `load_full` borrow `self`, which is being dropped.
        drop(unsafe { Arc::from_raw(*self.current.get_mut()) });
    }
}

/// A value [`Published::replace`] replaced: dropping it frees the value, or leaves it to the
/// last send that reads it.
pub(crate) struct Replaced(Option<Retired>);

impl Drop for Replaced {
    fn drop(&mut self) {
        if let Some(retired) = self.0.take() {
            {
                let mut list = RETIRED.lock().unwrap_or_else(PoisonError::into_inner);
                list.push(retired);
                PENDING.store(list.len(), Ordering::SeqCst);
            }
            reclaim();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::mpsc;

    /// Counts its drops, and on which thread the last one happened.
    struct Tracked {
        drops: Arc<AtomicUsize>,
        dropped_on: Arc<Mutex<Option<std::thread::ThreadId>>>,
    }

    impl Drop for Tracked {
        fn drop(&mut self) {
            self.drops.fetch_add(1, Ordering::SeqCst);
            *self.dropped_on.lock().unwrap() = Some(std::thread::current().id());
        }
    }

    /// Runs `f` with the current value, as a send reads it.
    fn with<T: Send + Sync + 'static, R>(published: &Published<T>, f: impl FnOnce(&T) -> R) -> R {
        let mut pin = Pin::enter();
        f(published.read(&mut pin))
    }

    fn tracked() -> (
        Arc<Tracked>,
        Arc<AtomicUsize>,
        Arc<Mutex<Option<std::thread::ThreadId>>>,
    ) {
        let drops = Arc::new(AtomicUsize::new(0));
        let dropped_on = Arc::new(Mutex::new(None));
        let value = Arc::new(Tracked {
            drops: Arc::clone(&drops),
            dropped_on: Arc::clone(&dropped_on),
        });
        (value, drops, dropped_on)
    }

    #[test]
    fn a_value_nobody_reads_is_freed_when_its_replacement_is_dropped() {
        let (first, drops, _) = tracked();
        let published = Published::new(first);
        let (second, _, _) = tracked();
        let replaced = published.replace(second);
        assert_eq!(
            drops.load(Ordering::SeqCst),
            0,
            "not before `Replaced` is dropped"
        );
        drop(replaced);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_value_replaced_during_a_read_on_this_thread_is_freed_when_the_read_ends() {
        let (first, drops, _) = tracked();
        let published = Published::new(first);
        with(&published, |value| {
            let (second, _, _) = tracked();
            drop(published.replace(second));
            assert_eq!(drops.load(Ordering::SeqCst), 0, "still read");
            assert_eq!(value.drops.load(Ordering::SeqCst), 0);
            // A nested read sees the new value and does not free the old one when it ends.
            with(&published, |inner| assert!(!std::ptr::eq(inner, value)));
            assert_eq!(drops.load(Ordering::SeqCst), 0);
        });
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_value_read_on_another_thread_is_freed_there_when_its_read_ends() {
        let (first, drops, dropped_on) = tracked();
        let published = &Published::new(first);
        let (reading, read) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        std::thread::scope(|scope| {
            let reader = scope.spawn(move || {
                with(published, |_| {
                    reading.send(()).unwrap();
                    released.recv().unwrap();
                });
                std::thread::current().id()
            });
            read.recv().unwrap();
            let (second, _, _) = tracked();
            drop(published.replace(second));
            assert_eq!(
                drops.load(Ordering::SeqCst),
                0,
                "the other thread still reads it"
            );
            release.send(()).unwrap();
            let reader = reader.join().unwrap();
            assert_eq!(drops.load(Ordering::SeqCst), 1);
            assert_eq!(*dropped_on.lock().unwrap(), Some(reader));
        });
    }

    #[test]
    fn a_panic_while_reading_clears_the_hazard() {
        let (first, drops, _) = tracked();
        let published = Published::new(first);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            with(&published, |_| panic!("receiver panicked"));
        }));
        assert!(caught.is_err());
        let (second, _, _) = tracked();
        drop(published.replace(second));
        assert_eq!(drops.load(Ordering::SeqCst), 1, "nothing holds it any more");
    }

    #[test]
    fn reads_nested_deeper_than_the_thread_slots_use_spare_slots() {
        fn nest(published: &Published<Tracked>, left: usize) {
            if left == 0 {
                let (next, _, _) = tracked();
                drop(published.replace(next));
                return;
            }
            with(published, |_| nest(published, left - 1));
        }
        let (first, drops, _) = tracked();
        let published = Published::new(first);
        nest(&published, LEVELS + 4);
        assert_eq!(
            drops.load(Ordering::SeqCst),
            1,
            "freed when the outermost read ended"
        );
        let full = published.load_full();
        let (third, third_drops, _) = tracked();
        drop(published.replace(third));
        assert_eq!(Arc::strong_count(&full), 1, "the owned copy keeps it");
        drop(full);
        drop(published);
        assert_eq!(
            third_drops.load(Ordering::SeqCst),
            1,
            "dropping the publisher frees it"
        );
    }
}
