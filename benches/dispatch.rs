#![allow(missing_docs, non_upper_case_globals)] // criterion_group! emits an undocumented fn
//! The send path against hand-written baselines and a peer, in one run. Every receiver is a
//! distinct function (a const-generic instantiation), so that no design is flattered by the CPU
//! predicting one call target. Report ratios between benchmarks of the same run.
//!
//! `cargo bench --bench dispatch`

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Args, Bench, Boxed, closure, connected, connected_weak, floor, pointers};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use signals::{Signal, signal};

#[macro_use]
mod common;

/// Connects one distinct slot to a `signals2` signal.
type ConnectSlot = Box<dyn Fn(&signals2::Signal<(u64,)>)>;

/// A `signals2` slot.
fn slot<const K: u64>() -> ConnectSlot {
    Box::new(|signal| {
        use signals2::Connect1;
        signal.connect(|x: u64| {
            black_box(x.wrapping_add(K));
        });
    })
}

const SIZES: [usize; 3] = [1, 10, 100];

fn runtime_sends(c: &mut Criterion) {
    let mut group = c.benchmark_group("send");
    let args = Args { x: 7 };
    for n in SIZES {
        let floor = floor(n);
        group.bench_with_input(BenchmarkId::new("floor_box_dyn", n), &n, |b, _| {
            b.iter(|| {
                for receiver in &floor {
                    receiver(black_box(&args));
                }
            });
        });

        let signal = connected("bench", n);
        group.bench_with_input(BenchmarkId::new("emit", n), &n, |b, _| {
            b.iter(|| signal.emit(black_box(&1), black_box(&args)).unwrap());
        });
        group.bench_with_input(BenchmarkId::new("send", n), &n, |b, _| {
            b.iter(|| signal.send(black_box(&1), black_box(&args)).unwrap());
        });
        group.bench_with_input(BenchmarkId::new("send_robust", n), &n, |b, _| {
            b.iter(|| signal.send_robust(black_box(&1), black_box(&args)));
        });

        let target = Arc::new(3);
        let weak_signal = connected_weak("weak", n, &target);
        group.bench_with_input(BenchmarkId::new("emit_weak", n), &n, |b, _| {
            b.iter(|| weak_signal.emit(black_box(&1), black_box(&args)).unwrap());
        });

        let peer: signals2::Signal<(u64,)> = signals2::Signal::new();
        for connect in hundred!(slot).iter().take(n) {
            connect(&peer);
        }
        group.bench_with_input(BenchmarkId::new("signals2", n), &n, |b, _| {
            use signals2::Emit1;
            b.iter(|| peer.emit(black_box(7)));
        });
    }
    group.finish();
}

signal! {
    /// Ten static receivers.
    static static_ten: Signal<Args, sender = u32>;
    /// One static receiver.
    static static_one: Signal<Args, sender = u32>;
}

static_receivers!(static_ten; 0 1 2 3 4 5 6 7 8 9);
static_receivers!(static_one; 0);

fn static_sends(c: &mut Criterion) {
    let mut group = c.benchmark_group("static");
    let args = Args { x: 7 };
    macro_rules! compare {
        ($n:literal, $signal:ident) => {
            let floor = pointers($n);
            group.bench_with_input(BenchmarkId::new("floor_fn_pointer", $n), &$n, |b, _| {
                b.iter(|| {
                    for receiver in &floor {
                        receiver(black_box(&args));
                    }
                });
            });
            assert_eq!($signal.receivers(&1).len(), $n);
            group.bench_with_input(BenchmarkId::new("emit", $n), &$n, |b, _| {
                b.iter(|| $signal.emit(black_box(&1), black_box(&args)).unwrap());
            });
        };
    }
    compare!(1, static_one);
    compare!(10, static_ten);
    group.finish();
}

fn empty_and_filtered(c: &mut Criterion) {
    let mut group = c.benchmark_group("filter");
    let args = Args { x: 7 };
    let nothing = Signal::<Bench>::new("nothing");
    group.bench_function("no_receivers", |b| {
        b.iter(|| nothing.emit(black_box(&1), black_box(&args)).unwrap());
    });
    let others = Signal::<Bench>::new("others");
    for (sender, connect) in hundred!(closure).iter().enumerate().take(10) {
        connect(&others, Some(u32::try_from(sender).unwrap() + 100));
    }
    group.bench_function("other_senders_only", |b| {
        b.iter(|| others.emit(black_box(&1), black_box(&args)).unwrap());
    });

    // 1,000 receivers over 100 senders, 10 per sender; one send reaches 10 of them.
    let spread = Signal::<Bench>::new("spread");
    let connects = hundred!(closure);
    for sender in 0..100 {
        for connect in connects.iter().take(10) {
            connect(&spread, Some(sender));
        }
    }
    assert_eq!(spread.receivers(&42).len(), 10);
    group.bench_function("10_of_1000_over_100_senders", |b| {
        b.iter(|| spread.emit(black_box(&42), black_box(&args)).unwrap());
    });
    let ten = Signal::<Bench>::new("ten");
    for connect in connects.iter().take(10) {
        connect(&ten, None);
    }
    group.bench_function("10_without_filter", |b| {
        b.iter(|| ten.emit(black_box(&42), black_box(&args)).unwrap());
    });
    group.finish();
}

fn connects(c: &mut Criterion) {
    let mut group = c.benchmark_group("connect");
    group.sample_size(10);
    for n in [1_000_u32, 10_000] {
        group.bench_with_input(BenchmarkId::new("connect_with_uid", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let signal = Signal::<Bench>::new("connects");
                    let uids: Vec<String> = (0..n).map(|i| format!("receiver-{i}")).collect();
                    let start = Instant::now();
                    for (i, uid) in (0..n).zip(uids) {
                        signal
                            .connector()
                            .sender(i % 100)
                            .dispatch_uid(uid)
                            .connect(|_, args: &Args| {
                                black_box(args.x);
                            });
                    }
                    total += start.elapsed();
                    // Dropped out of the timing: the receivers, and their uids.
                    drop(signal);
                }
                total
            });
        });
        group.bench_with_input(BenchmarkId::new("disconnect_one", n), &n, |b, &n| {
            let signal = Signal::<Bench>::new("disconnects");
            for i in 0..n {
                signal
                    .connector()
                    .dispatch_uid(format!("receiver-{i}"))
                    .connect(|_, _: &Args| {});
            }
            // Disconnects in batches of up to 1,000 receivers, connected untimed beforehand.
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let batch = left.min(1_000);
                    let connections: Vec<_> = (0..batch)
                        .map(|i| {
                            signal.connect(move |_, _: &Args| {
                                black_box(i);
                            })
                        })
                        .collect();
                    let start = Instant::now();
                    for connection in connections {
                        black_box(signal.disconnect(connection));
                    }
                    total += start.elapsed();
                    left -= batch;
                }
                total
            });
        });
    }
    group.finish();
}

/// Two threads sending on one signal, against two threads looping over one shared `Vec`: the
/// time for each thread to do `iters` sends, one thread alone and two at once.
fn threads(c: &mut Criterion) {
    static shared: Signal<Bench> = Signal::new("shared");
    let mut group = c.benchmark_group("threads");
    let floor: Arc<Vec<Boxed>> = Arc::new(floor(10));
    for connect in hundred!(closure).iter().take(10) {
        connect(&shared, None);
    }
    let floor_send = move || {
        let args = Args { x: 7 };
        for receiver in floor.iter() {
            receiver(black_box(&args));
        }
    };
    let signal_send = || {
        let args = Args { x: 7 };
        shared.emit(black_box(&1), black_box(&args)).unwrap();
    };
    for threads in [1, 2] {
        let floor_send = floor_send.clone();
        group.bench_with_input(
            BenchmarkId::new("floor", threads),
            &threads,
            |b, &threads| {
                b.iter_custom(|iters| in_parallel(threads, iters, &floor_send));
            },
        );
        group.bench_with_input(
            BenchmarkId::new("emit", threads),
            &threads,
            |b, &threads| {
                b.iter_custom(|iters| in_parallel(threads, iters, &signal_send));
            },
        );
    }
    group.finish();
}

/// Runs `send` `iters` times on each of `threads` threads at once; the wall time.
fn in_parallel(threads: usize, iters: u64, send: &(impl Fn() + Sync)) -> Duration {
    let start = std::sync::Barrier::new(threads);
    let times: Vec<Duration> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    start.wait();
                    let began = Instant::now();
                    for _ in 0..iters {
                        send();
                    }
                    began.elapsed()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    times.into_iter().max().unwrap_or_default()
}

/// What watching costs: `emit` to 10 receivers with no subscriber, with a subscriber that wants
/// only errors, with a testing guard alive on another thread, and with a subscriber that takes
/// every `signals` span and event (the cost when it is on).
fn observe(c: &mut Criterion) {
    let mut group = c.benchmark_group("observe");
    let args = Args { x: 7 };
    let signal = connected("observed", 10);
    group.bench_function("emit_10/no_subscriber", |b| {
        b.iter(|| signal.emit(black_box(&1), black_box(&args)).unwrap());
    });
    {
        let _errors = tracing::subscriber::set_default(Quiet(tracing::Level::ERROR));
        group.bench_function("emit_10/error_only_subscriber", |b| {
            b.iter(|| signal.emit(black_box(&1), black_box(&args)).unwrap());
        });
    }
    let (started, stop) = (std::sync::Barrier::new(2), std::sync::Barrier::new(2));
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let _muted = signals::testing::mute(&signal);
            started.wait();
            stop.wait();
        });
        started.wait();
        group.bench_function("emit_10/guard_on_another_thread", |b| {
            b.iter(|| signal.emit(black_box(&1), black_box(&args)).unwrap());
        });
        stop.wait();
    });
    {
        let _all = tracing::subscriber::set_default(Quiet(tracing::Level::TRACE));
        group.bench_function("emit_10/debug_subscriber", |b| {
            b.iter(|| signal.emit(black_box(&1), black_box(&args)).unwrap());
        });
    }
    group.finish();
}

/// A subscriber that enables everything up to `self.0` and records nothing.
struct Quiet(tracing::Level);

impl tracing::Subscriber for Quiet {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() <= self.0
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::from_level(self.0))
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        black_box(event);
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

criterion_group!(
    benches,
    runtime_sends,
    static_sends,
    empty_and_filtered,
    connects,
    threads,
    // Last: once a subscriber has wanted debug events, tracing's cached interest makes every
    // later send ask the (absent) thread's subscriber, which would skew the groups after it.
    observe
);
criterion_main!(benches);
