//! What the send-path benchmarks share (`dispatch`, timed by criterion, and `instructions`,
//! counted by callgrind): the arguments, the signature, the floors and the receivers. Every
//! receiver is a distinct function (a const-generic instantiation), so that no design is
//! flattered by the CPU predicting one call target.

use std::hint::black_box;
use std::sync::Arc;

use signals::{Signal, Signature};

/// The arguments every receiver gets.
pub(crate) struct Args {
    pub(crate) x: u64,
}

pub(crate) enum Bench {}
impl Signature for Bench {
    type Args<'a> = Args;
    type Sender = u32;
    type Output = ();
}

/// A receiver of the floor.
pub(crate) type Boxed = Box<dyn Fn(&Args) + Send + Sync>;
/// Connects one distinct receiver to a signal, for the given sender.
pub(crate) type Connect = Box<dyn Fn(&Signal<Bench>, Option<u32>) -> signals::Connection>;
/// Connects one distinct weak receiver to a signal.
pub(crate) type ConnectWeak = Box<dyn Fn(&Signal<Bench>, &Arc<u64>) -> signals::Connection>;

/// Calls `$f::<K>()` for K in 0..100, into an array.
macro_rules! hundred {
    ($f:ident) => {
        hundred!(@ $f; 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27
            28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55
            56 57 58 59 60 61 62 63 64 65 66 67 68 69 70 71 72 73 74 75 76 77 78 79 80 81 82 83
            84 85 86 87 88 89 90 91 92 93 94 95 96 97 98 99)
    };
    (@ $f:ident; $($k:literal)*) => {
        [$($f::<$k>()),*]
    };
}

/// One distinct `#[receiver]` of `$signal` (a `signal!` of `Args` with `u32` senders) per
/// literal.
macro_rules! static_receivers {
    ($signal:ident; $($k:literal)*) => {
        $(
            const _: () = {
                #[::signals::receiver(signal = $signal)]
                fn static_receiver(x: u64) {
                    ::std::hint::black_box(x.wrapping_add($k));
                }
            };
        )*
    };
}

/// The floor: a boxed closure per receiver.
pub(crate) fn boxed<const K: u64>() -> Boxed {
    Box::new(|args: &Args| {
        black_box(args.x.wrapping_add(K));
    })
}

/// The static floor: a function pointer per receiver.
pub(crate) fn pointer<const K: u64>() -> fn(&Args) {
    |args: &Args| {
        black_box(args.x.wrapping_add(K));
    }
}

/// A runtime receiver of the signal: a distinct closure type per `K`.
pub(crate) fn closure<const K: u64>() -> Connect {
    Box::new(|signal, sender| {
        let mut connector = signal.connector();
        if let Some(sender) = sender {
            connector = connector.sender(sender);
        }
        connector.connect(|_, args: &Args| {
            black_box(args.x.wrapping_add(K));
        })
    })
}

/// A weak receiver of the signal.
pub(crate) fn weak<const K: u64>() -> ConnectWeak {
    Box::new(|signal, target| {
        signal.connect_weak(target, |target: &u64, _, args: &Args| {
            black_box(args.x.wrapping_add(K).wrapping_add(*target));
        })
    })
}

/// The first `n` receivers of the floor.
pub(crate) fn floor(n: usize) -> Vec<Boxed> {
    hundred!(boxed).into_iter().take(n).collect()
}

/// The first `n` receivers of the static floor.
pub(crate) fn pointers(n: usize) -> Vec<fn(&Args)> {
    hundred!(pointer).into_iter().take(n).collect()
}

/// A signal with `n` distinct runtime receivers for any sender.
pub(crate) fn connected(name: &'static str, n: usize) -> Signal<Bench> {
    let signal = Signal::new(name);
    for connect in hundred!(closure).iter().take(n) {
        connect(&signal, None);
    }
    signal
}

/// A signal with `n` distinct weak receivers of `target`.
pub(crate) fn connected_weak(name: &'static str, n: usize, target: &Arc<u64>) -> Signal<Bench> {
    let signal = Signal::new(name);
    for connect in hundred!(weak).iter().take(n) {
        connect(&signal, target);
    }
    signal
}
