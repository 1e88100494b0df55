//! `emit` performs no heap allocation, checked with a counting allocator (not a timing). The
//! allocator also checks that every allocation is given back with the layout it was made with,
//! which the spare buffers of responses compute again when they free one.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use signals_core::{Signal, Signature, TypeSignal};

/// Counts allocations per thread, and checks every deallocation's layout against its
/// allocation's ([`LIVE`]).
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

/// How many deallocations gave a layout other than their allocation's, in the whole process.
static WRONG_LAYOUTS: AtomicUsize = AtomicUsize::new(0);

/// The live allocations' layouts by address: an open-addressing table that never allocates
/// (a full table records no more, and what it does not hold is not checked).
static LIVE: Mutex<Live> = Mutex::new(Live {
    addresses: [0; SLOTS],
    layouts: [(0, 0); SLOTS],
});

const SLOTS: usize = 1 << 14;
/// An address slot whose allocation was freed: a probe goes on past it.
const FREED: usize = usize::MAX;

struct Live {
    addresses: [usize; SLOTS],
    layouts: [(usize, usize); SLOTS],
}

impl Live {
    /// The slots `address` may be in, in probing order.
    fn probe(address: usize) -> impl Iterator<Item = usize> {
        let start = (address >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) % SLOTS;
        (0..SLOTS).map(move |step| (start + step) % SLOTS)
    }

    fn record(&mut self, address: usize, layout: Layout) {
        if let Some(slot) = Self::probe(address).find(|&slot| {
            let held = self.addresses[slot];
            held == 0 || held == FREED
        }) {
            self.addresses[slot] = address;
            self.layouts[slot] = (layout.size(), layout.align());
        }
    }

    /// Forgets `address`, and whether it was recorded with another layout than `layout`.
    fn forget(&mut self, address: usize, layout: Layout) -> bool {
        for slot in Self::probe(address) {
            match self.addresses[slot] {
                0 => return false,
                held if held == address => {
                    self.addresses[slot] = FREED;
                    return self.layouts[slot] != (layout.size(), layout.align());
                }
                _ => {}
            }
        }
        false
    }
}

// SAFETY: defers every call to the system allocator; the counter is a const-initialised
// thread-local without destructor, and the table a static behind a mutex, which on this
// platform does not allocate, so neither allocates.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as ours.
        let address = unsafe { System.alloc(layout) };
        if !address.is_null() {
            let mut live = LIVE
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            live.record(address.addr(), layout);
        }
        address
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let wrong = {
            let mut live = LIVE
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            live.forget(ptr.addr(), layout)
        };
        if wrong {
            WRONG_LAYOUTS.fetch_add(1, Ordering::SeqCst);
        }
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Category {
    Integration,
    SentryApp,
}

struct Drained<'a> {
    count: &'a Cell<u32>,
}

enum OutboxSignal {}
impl Signature for OutboxSignal {
    type Args<'a> = Drained<'a>;
    type Sender = Category;
    type Output = ();
}

#[allow(non_upper_case_globals)]
static process_outbox: Signal<OutboxSignal> = Signal::new("process_outbox");

#[test]
fn emit_allocates_nothing_on_a_value_signal() {
    process_outbox.connect(|_, args: &Drained<'_>| args.count.set(args.count.get() + 1));
    process_outbox
        .connector()
        .sender(Category::Integration)
        .connect(|_, args: &Drained<'_>| args.count.set(args.count.get() + 1));
    let count = Cell::new(0);
    let args = Drained { count: &count };
    process_outbox.emit(&Category::Integration, &args).unwrap();
    let allocated = allocations_during(|| {
        for _ in 0..100 {
            process_outbox.emit(&Category::Integration, &args).unwrap();
            process_outbox.emit(&Category::SentryApp, &args).unwrap();
            process_outbox.emit(None, &args).unwrap();
        }
    });
    assert_eq!(allocated, 0);
    assert_eq!(count.get(), 2 + 100 * (2 + 1 + 1));
}

struct Saved<'a, M: ?Sized> {
    instance: &'a M,
}

enum PostSave {}
impl signals_core::TypeSignature for PostSave {
    type AnyArgs<'a> = Saved<'a, dyn std::fmt::Debug + Sync>;
    type Output = ();
}
impl signals_core::SentBy<u64> for PostSave {
    type Args<'a> = Saved<'a, u64>;
    fn any_args<'b>(args: &'b Saved<'_, u64>) -> Saved<'b, dyn std::fmt::Debug + Sync> {
        Saved {
            instance: args.instance,
        }
    }
}

#[allow(non_upper_case_globals)]
static post_save: TypeSignal<PostSave> = TypeSignal::new("post_save");

#[test]
fn emit_allocates_nothing_on_a_type_signal() {
    post_save.connect::<u64, _, _>(|_, args: &Saved<'_, u64>| assert_eq!(*args.instance, 7));
    post_save.connect_any(|sender, _: &Saved<'_, dyn std::fmt::Debug + Sync>| {
        assert!(sender.is::<u64>());
    });
    let args = Saved { instance: &7 };
    post_save.emit::<u64>(&args).unwrap();
    let allocated = allocations_during(|| {
        for _ in 0..100 {
            post_save.emit::<u64>(&args).unwrap();
        }
    });
    assert_eq!(allocated, 0);
}

#[allow(non_upper_case_globals)]
static rebuilt: Signal<OutboxSignal> = Signal::new("rebuilt");

/// What the documentation says about the sends that are not steady: the first emit on a
/// thread may allocate once (its hazard slots, unless an ended thread's are free), and the first emit after edits
/// rebuilds the snapshot, which allocates a few times (its lists), more when it purges dead
/// weak receivers. Every emit after that allocates nothing.
#[test]
fn emit_allocates_only_when_it_rebuilds_after_an_edit_or_first_on_a_thread() {
    let count = Cell::new(0);
    let args = Drained { count: &count };
    rebuilt.connect(|_, args: &Drained<'_>| args.count.set(args.count.get() + 1));
    rebuilt.emit(None, &args).unwrap(); // rebuilds after the connect
    let first_on_thread = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let count = Cell::new(0);
                let args = Drained { count: &count };
                allocations_during(|| rebuilt.emit(None, &args).unwrap())
            })
            .join()
            .unwrap()
    });
    let steady = allocations_during(|| rebuilt.emit(None, &args).unwrap());
    let handle = rebuilt
        .connector()
        .sender(Category::Integration)
        .connect(|_, _: &Drained<'_>| {});
    let after_connect = allocations_during(|| rebuilt.emit(None, &args).unwrap());
    rebuilt.disconnect(handle);
    let after_disconnect = allocations_during(|| rebuilt.emit(None, &args).unwrap());
    let target = std::sync::Arc::new(());
    rebuilt.connect_weak(&target, |(), _, _: &Drained<'_>| {});
    rebuilt.emit(None, &args).unwrap();
    drop(target);
    rebuilt.emit(None, &args).unwrap(); // finds the weak receiver dead
    let purging = allocations_during(|| rebuilt.emit(None, &args).unwrap());
    let steady_again = allocations_during(|| rebuilt.emit(None, &args).unwrap());
    eprintln!(
        "allocations: first emit on a thread {first_on_thread}, steady {steady}, after a connect \
         {after_connect}, after a disconnect {after_disconnect}, purging {purging}, then \
         {steady_again}"
    );
    assert_eq!((steady, steady_again), (0, 0));
    assert!(first_on_thread <= 1, "{first_on_thread}");
    assert!(after_connect <= 8 && after_disconnect <= 8 && purging <= 8);
}

#[allow(non_upper_case_globals)]
static waiting: Signal<OutboxSignal> = Signal::new("waiting");

/// A replaced snapshot that another thread's send still reads waits in a list, which every
/// send that ends looks at: that costs no allocation either.
#[test]
fn emit_allocates_nothing_while_a_replaced_snapshot_waits_for_another_threads_send() {
    use std::sync::Barrier;
    static INSIDE: Barrier = Barrier::new(2);
    static RELEASE: Barrier = Barrier::new(2);
    waiting.connect(|_, args: &Drained<'_>| args.count.set(args.count.get() + 1));
    waiting
        .connector()
        .sender(Category::SentryApp)
        .connect(|_, _: &Drained<'_>| {
            INSIDE.wait();
            RELEASE.wait();
        });
    let count = Cell::new(0);
    let args = Drained { count: &count };
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let count = Cell::new(0);
            waiting
                .emit(&Category::SentryApp, &Drained { count: &count })
                .unwrap();
        });
        INSIDE.wait();
        let handle = waiting.connect(|_, _: &Drained<'_>| {});
        waiting.emit(None, &args).unwrap(); // replaces the snapshot the other send reads
        let allocated = allocations_during(|| {
            for _ in 0..100 {
                waiting.emit(None, &args).unwrap();
            }
        });
        RELEASE.wait();
        assert_eq!(allocated, 0);
        waiting.disconnect(handle);
    });
    assert_eq!(count.get(), 101);
}

#[allow(non_upper_case_globals)]
static skipping: Signal<OutboxSignal> = Signal::new("skipping");

/// A receiver that does not run (a weak one whose target is gone, or one limited to another
/// thread) tells the send so without allocating.
#[test]
fn emit_allocates_nothing_for_receivers_that_do_not_run() {
    let count = Cell::new(0);
    let args = Drained { count: &count };
    let elsewhere = std::thread::spawn(|| {
        skipping
            .connector()
            .this_thread()
            .connect(|_, args: &Drained<'_>| args.count.set(args.count.get() + 1));
    });
    elsewhere.join().unwrap();
    let target = std::sync::Arc::new(());
    skipping.connect_weak(&target, |(), _, args: &Drained<'_>| {
        args.count.set(args.count.get() + 1);
    });
    skipping.emit(None, &args).unwrap(); // rebuilds after the connects
    drop(target);
    let allocated = allocations_during(|| skipping.emit(None, &args).unwrap());
    assert_eq!(
        allocated, 0,
        "meeting a dead weak receiver and another thread's receiver"
    );
    assert_eq!(
        count.get(),
        1,
        "only the weak receiver ran, once, while its target lived"
    );
}

enum Counted {}
impl Signature for Counted {
    type Args<'a> = Drained<'a>;
    type Sender = Category;
    type Output = u32;
}

#[allow(non_upper_case_globals)]
static counted: Signal<Counted> = Signal::new("counted");

/// Responses dropped on a thread leave their buffer to its next send with responses: in steady
/// state `send` and `send_robust` allocate nothing either.
#[test]
fn send_allocates_nothing_in_steady_state_once_responses_are_dropped() {
    counted.connect(|_, args: &Drained<'_>| {
        args.count.set(args.count.get() + 1);
        args.count.get()
    });
    counted.connect(|_, _: &Drained<'_>| 7);
    let count = Cell::new(0);
    let args = Drained { count: &count };
    drop(counted.send(None, &args).unwrap()); // rebuilds after the connects
    drop(counted.send_robust(None, &args));
    let allocated = allocations_during(|| {
        for _ in 0..100 {
            let responses = counted.send(None, &args).unwrap();
            assert_eq!(responses.len(), 2);
            drop(responses);
            let robust = counted.send_robust(None, &args);
            assert_eq!(robust.len(), 2);
            drop(robust);
        }
    });
    assert_eq!(allocated, 0);
}

/// A value signal whose receivers return `T`.
struct Returns<T>(std::marker::PhantomData<T>);
impl<T: Default + Send + Sync + 'static> Signature for Returns<T> {
    type Args<'a> = Drained<'a>;
    type Sender = Category;
    type Output = T;
}

/// Sends on a fresh signal whose receiver returns `T`, twice, dropping the responses.
fn send_returning<T: Default + Send + Sync + 'static>() {
    let signal = Signal::<Returns<T>>::new("returns");
    signal.connect(|_, _: &Drained<'_>| T::default());
    let count = Cell::new(0);
    let args = Drained { count: &count };
    for _ in 0..2 {
        drop(signal.send(None, &args).unwrap());
        drop(signal.send_robust(None, &args));
    }
}

/// The spare buffers of responses of more layouts than a thread keeps: the oldest are freed as
/// newer ones come, the rest when the thread ends, each with the layout it was allocated with.
#[test]
fn spare_buffers_of_responses_are_freed_with_the_layout_they_were_allocated_with() {
    std::thread::spawn(|| {
        send_returning::<()>();
        send_returning::<u8>();
        send_returning::<[u64; 3]>();
        send_returning::<u128>();
        send_returning::<[u16; 9]>();
        send_returning::<String>();
    })
    .join()
    .unwrap();
    assert_eq!(WRONG_LAYOUTS.load(Ordering::SeqCst), 0);
}
