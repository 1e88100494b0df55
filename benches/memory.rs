//! Heap bytes per runtime receiver connected with a `dispatch_uid` and a sender filter,
//! counted by a counting global allocator, against a hand-written registry of the same
//! receivers (`HashMap<(uid, sender), Box<dyn Fn>>`) counted in the same run.
//!
//! `cargo bench --bench memory` (`-- --figures` prints the three figures alone, for
//! `benches/instructions.rs`). The uids are `&'static str`, as Django's `dispatch_uid`s are
//! literals, so that neither side counts their text.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};

use signals::{Signal, Signature};

/// The system allocator, counting the bytes it has live.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to `System` unchanged; the counter is only arithmetic.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(size(layout), Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(size(layout), Ordering::Relaxed);
        // SAFETY: `ptr` was allocated by `System` with `layout`, as the caller guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            isize::try_from(new_size).unwrap() - size(layout),
            Ordering::Relaxed,
        );
        // SAFETY: as for `realloc` on `System`, whose contract the caller upholds.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn size(layout: Layout) -> isize {
    isize::try_from(layout.size()).unwrap()
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

enum Saved {}
impl Signature for Saved {
    type Args<'a> = u64;
    type Sender = u32;
    type Output = ();
}

const RECEIVERS: u32 = 10_000;
const SENDERS: u32 = 100;

/// The live heap bytes that `build` adds and keeps, per receiver.
fn per_receiver<T>(build: impl FnOnce() -> T) -> (f64, T) {
    let before = LIVE.load(Ordering::Relaxed);
    let value = build();
    let after = LIVE.load(Ordering::Relaxed);
    (
        f64::from(i32::try_from(after - before).unwrap()) / f64::from(RECEIVERS),
        value,
    )
}

type Receiver = Box<dyn Fn(u32, &u64) + Send + Sync>;

fn main() {
    let uids: Vec<&'static str> = (0..RECEIVERS)
        .map(|i| &*Box::leak(format!("receiver-{i}").into_boxed_str()))
        .collect();

    let (baseline, registry) = per_receiver(|| {
        let mut registry: HashMap<(&'static str, u32), Receiver> = HashMap::new();
        for (i, uid) in (0..RECEIVERS).zip(&uids) {
            registry.insert(
                (uid, i % SENDERS),
                Box::new(|_, args| {
                    black_box(*args);
                }),
            );
        }
        registry
    });

    let (connected, signal) = per_receiver(|| {
        let signal = Signal::<Saved>::new("saved");
        for (i, uid) in (0..RECEIVERS).zip(&uids) {
            signal
                .connector()
                .sender(i % SENDERS)
                .dispatch_uid(*uid)
                .connect(|_, args: &u64| {
                    black_box(*args);
                });
        }
        signal
    });
    let (snapshot, ()) = per_receiver(|| signal.emit(&7, &1).unwrap());

    if std::env::args().any(|arg| arg == "--figures") {
        // For benches/instructions.rs: the three figures alone.
        println!("{baseline} {connected} {snapshot}");
        drop((registry, signal));
        return;
    }
    println!("memory: heap bytes per runtime receiver with dispatch_uid and sender filter");
    println!("  hand-written HashMap<(uid, sender), Box<dyn Fn>>: {baseline:6.1}");
    println!("  signals, connected:                               {connected:6.1}");
    println!("  signals, and the snapshot the next send builds:   {snapshot:6.1}");
    println!(
        "  total {:.1}, ratio to the hand-written registry {:.2}x",
        connected + snapshot,
        (connected + snapshot) / baseline
    );
    drop((registry, signal));
}
