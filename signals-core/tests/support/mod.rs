//! Signals and helpers shared by the behaviour tests.

#![allow(dead_code, non_upper_case_globals, unreachable_pub)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use signals_core::{SentBy, Signature, TypeSignature};

/// A value sender, as Sentry's `SiloMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Silo {
    Monolith,
    Control,
    Region,
}

/// Records which receivers ran, in order.
#[derive(Debug, Default)]
pub struct Log(Mutex<Vec<String>>);

impl Log {
    pub fn push(&self, entry: impl Into<String>) {
        self.0.lock().unwrap().push(entry.into());
    }

    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// Arguments that borrow: the log and a value.
pub struct Event<'a> {
    pub log: &'a Log,
    pub value: u32,
}

/// An event with value 0 that logs to `log`.
pub fn ev(log: &Log) -> Event<'_> {
    Event { log, value: 0 }
}

/// A value-sender signal whose receivers return a number.
pub enum Numbered {}
impl Signature for Numbered {
    type Args<'a> = Event<'a>;
    type Sender = Silo;
    type Output = u32;
}

/// A value-sender signal whose receivers return nothing.
pub enum Plain {}
impl Signature for Plain {
    type Args<'a> = Event<'a>;
    type Sender = Silo;
    type Output = ();
}

/// A model, for type-sender signals.
pub trait Model: Send + Sync {
    fn table(&self) -> &'static str;
}

#[derive(Debug)]
pub struct User {
    pub email: String,
}

impl Model for User {
    fn table(&self) -> &'static str {
        "auth_user"
    }
}

#[derive(Debug)]
pub struct Team {
    pub name: String,
}

impl Model for Team {
    fn table(&self) -> &'static str {
        "team"
    }
}

/// `post_save`'s arguments; `M: ?Sized` so that the any-sender view is `Saved<'_, dyn Model>`.
pub struct Saved<'a, M: ?Sized> {
    pub instance: &'a M,
    pub created: bool,
    pub log: &'a Log,
}

pub enum PostSave {}
impl TypeSignature for PostSave {
    type AnyArgs<'a> = Saved<'a, dyn Model>;
    type Output = ();
}
impl<M: Model + 'static> SentBy<M> for PostSave {
    type Args<'a> = Saved<'a, M>;
    fn any_args<'b>(args: &'b Saved<'_, M>) -> Saved<'b, dyn Model> {
        Saved {
            instance: args.instance,
            created: args.created,
            log: args.log,
        }
    }
}

/// Waits until `parties` threads have arrived, or `timeout` passed; returns whether all did.
pub struct Rendezvous {
    parties: usize,
    arrived: Mutex<usize>,
    all_here: Condvar,
}

impl Rendezvous {
    pub const fn new(parties: usize) -> Self {
        Self {
            parties,
            arrived: Mutex::new(0),
            all_here: Condvar::new(),
        }
    }

    pub fn wait(&self, timeout: Duration) -> bool {
        let mut arrived = self.arrived.lock().unwrap();
        *arrived += 1;
        self.all_here.notify_all();
        let (arrived, result) = self
            .all_here
            .wait_timeout_while(arrived, timeout, |arrived| *arrived < self.parties)
            .unwrap();
        drop(arrived);
        !result.timed_out()
    }
}

/// Long enough that a correct test never reaches it, even on a machine whose cores are all busy
/// with other work; short enough that a deadlock fails instead of hanging the run.
pub const DEADLOCK: Duration = Duration::from_secs(60);

/// Raises a flag when dropped, also while unwinding: a thread that stops the others (an editor
/// that ends a run, a test that fails an assertion) still lets them finish, so a failure is
/// reported instead of hanging in `thread::scope`.
pub struct RaiseOnDrop<'a>(pub &'a AtomicBool);

impl Drop for RaiseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Raises a flag if the thread panics while it lives: a worker that fails stops the others,
/// one that finishes lets them go on.
pub struct RaiseOnPanic<'a>(pub &'a AtomicBool);

impl Drop for RaiseOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::Release);
        }
    }
}
