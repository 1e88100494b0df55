#![allow(missing_docs, non_upper_case_globals)]
//! Start-up: how long a fresh process takes to collect and index 10,000 static receivers
//! (ten signals of 1,000, half of them filtered by sender), against a hand-written index of
//! 10,000 function pointers built in the same process.
//!
//! `cargo bench --bench startup` (inventory) or `cargo bench --bench startup --features
//! linkme`. The binary runs itself as a child process 31 times, one measurement per fresh
//! process, and prints the medians. With inventory, the constructors that link the 10,000
//! registrations into a list run before `main` and are not in the figure; they do no more than
//! push onto a linked list.

use std::collections::HashMap;
use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

use signals::{receiver, signal};

/// The arguments of every signal.
pub struct Args {
    x: u64,
}

signal! {
    static s0: Signal<Args, sender = u32>;
    static s1: Signal<Args, sender = u32>;
    static s2: Signal<Args, sender = u32>;
    static s3: Signal<Args, sender = u32>;
    static s4: Signal<Args, sender = u32>;
    static s5: Signal<Args, sender = u32>;
    static s6: Signal<Args, sender = u32>;
    static s7: Signal<Args, sender = u32>;
    static s8: Signal<Args, sender = u32>;
    static s9: Signal<Args, sender = u32>;
}

/// One static receiver of `$signal`, optionally for one sender, in its own scope.
macro_rules! one {
    ($signal:ident $(, $sender:literal)?) => {
        const _: () = {
            #[receiver(signal = $signal $(, sender = $sender)?)]
            fn receiver(x: u64) {
                black_box(x);
            }
        };
    };
}

/// Ten times `$m!($($args)*)`.
macro_rules! ten {
    ($m:ident!($($args:tt)*)) => {
        $m!($($args)*); $m!($($args)*); $m!($($args)*); $m!($($args)*); $m!($($args)*);
        $m!($($args)*); $m!($($args)*); $m!($($args)*); $m!($($args)*); $m!($($args)*);
    };
}

macro_rules! hundred {
    ($($args:tt)*) => { ten!(ten!(one!($($args)*))); };
}

/// Five times `$m!($($args)*)`.
macro_rules! five {
    ($m:ident!($($args:tt)*)) => {
        $m!($($args)*); $m!($($args)*); $m!($($args)*); $m!($($args)*); $m!($($args)*);
    };
}

/// 1,000 receivers of `$signal`: 500 for any sender, 500 for sender 1.
macro_rules! thousand {
    ($signal:ident) => {
        five!(hundred!($signal));
        five!(hundred!($signal, 1));
    };
}

thousand!(s0);
thousand!(s1);
thousand!(s2);
thousand!(s3);
thousand!(s4);
thousand!(s5);
thousand!(s6);
thousand!(s7);
thousand!(s8);
thousand!(s9);

const RUNS: usize = 31;
const CHILD: &str = "SIGNALS_STARTUP_CHILD";

fn main() {
    if std::env::var_os(CHILD).is_some() {
        measure();
        return;
    }
    let exe = std::env::current_exe().expect("the benchmark knows its own path");
    let mut baseline = Vec::new();
    let mut startup = Vec::new();
    for _ in 0..RUNS {
        let output = Command::new(&exe)
            .env(CHILD, "1")
            .output()
            .expect("the benchmark can run itself");
        assert!(output.status.success(), "child failed: {output:?}");
        let text = String::from_utf8(output.stdout).expect("the child prints numbers");
        let mut figures = text.split_whitespace().map(|n| n.parse::<u64>().unwrap());
        baseline.push(figures.next().unwrap());
        startup.push(figures.next().unwrap());
    }
    let baseline = median(&mut baseline);
    let startup = median(&mut startup);
    let backend = if cfg!(feature = "linkme") {
        "linkme"
    } else {
        "inventory"
    };
    println!("startup/{backend}: median of {RUNS} fresh processes");
    println!(
        "  hand-written index of 10,000 fn pointers: {:>10.1} us",
        us(baseline)
    );
    println!(
        "  signals: collect and index 10,000 static receivers: {:>10.1} us",
        us(startup)
    );
    println!("  ratio: {:.2}x", as_f64(startup) / as_f64(baseline));
}

/// In a fresh process: the baseline, then the first use of every signal, which collects the
/// registrations, indexes them by signal and builds each signal's table and snapshot. Each is
/// a function of its own, which `benches/instructions.rs` counts alone with callgrind's
/// `--toggle-collect`.
fn measure() {
    let pointers: Vec<Entry> = (0..10_000)
        .map(|i| (i % 10, black_box(receiver_pointer as fn(u64))))
        .collect();
    let start = Instant::now();
    let index = hand_index(black_box(&pointers));
    let baseline = start.elapsed();
    assert_eq!(black_box(index).len(), 10);

    let start = Instant::now();
    let reached = collect_and_index();
    let startup = start.elapsed();
    assert_eq!(reached, 10_000);
    println!("{} {}", nanos(baseline), nanos(startup));
}

/// A hand-written registration: the signal's number and the receiver.
type Entry = (usize, fn(u64));

/// The baseline: a hand-written index of function pointers by signal.
#[inline(never)]
fn hand_index(pointers: &[Entry]) -> HashMap<usize, Vec<fn(u64)>> {
    let mut index: HashMap<usize, Vec<fn(u64)>> = HashMap::new();
    for (signal, pointer) in pointers {
        index.entry(*signal).or_default().push(*pointer);
    }
    index
}

/// The first use of every signal; the receivers it reached.
#[inline(never)]
fn collect_and_index() -> usize {
    let mut reached = 0;
    macro_rules! first_use {
        ($($signal:ident)*) => { $(reached += $signal.receivers(&1).len();)* };
    }
    first_use!(s0 s1 s2 s3 s4 s5 s6 s7 s8 s9);
    reached
}

fn receiver_pointer(x: u64) {
    black_box(x);
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

fn median(values: &mut [u64]) -> u64 {
    values.sort_unstable();
    values[values.len() / 2]
}

#[allow(clippy::cast_precision_loss)] // nanoseconds of a start-up fit an f64
fn as_f64(nanos: u64) -> f64 {
    nanos as f64
}

fn us(nanos: u64) -> f64 {
    as_f64(nanos) / 1_000.0
}
