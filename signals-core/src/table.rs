//! The receivers of one signal: an ordered table that connects and disconnects edit under a
//! lock, and an immutable routing snapshot, rebuilt after each edit, that sends read without
//! taking any lock.
//!
//! A send loads the current snapshot once and dispatches from it, so the set of receivers is
//! fixed when the send starts (Django's semantics): a receiver disconnected during the send
//! still runs, one connected during it does not. Edits never wait for sends and sends never
//! wait for edits or for each other.

use std::any::TypeId;
use std::borrow::Cow;
use std::mem;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arc_swap::{ArcSwap, Guard};

use crate::dispatch::FoundDead;
use crate::error::WiringError;
use crate::receiver::ReceiverInfo;
use crate::registry::ReceiverEntry;

/// A handle to one runtime connection, returned by `connect`; pass it to `disconnect`.
///
/// Dropping it does nothing: the receiver stays connected. Use a
/// [`ScopedConnection`](crate::ScopedConnection) to disconnect at the end of a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Connection {
    id: u64,
}

impl Connection {
    /// The handle of a connect that changed nothing because its `dispatch_uid` (or its
    /// receiver) was already connected for that sender.
    pub(crate) const DUPLICATE: Self = Self { id: 0 };

    /// Whether the connect that returned this handle was a no-op, because a receiver with the
    /// same lookup key (`dispatch_uid`, or the same function, and sender) was already
    /// connected. Disconnecting such a handle does nothing.
    #[must_use]
    pub fn is_duplicate(&self) -> bool {
        self.id == 0
    }
}

fn next_connection() -> Connection {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    Connection {
        id: NEXT.fetch_add(1, Ordering::Relaxed),
    }
}

/// What Django's lookup key is made of besides the sender: the `dispatch_uid`, or the
/// receiver's own identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Identity {
    /// Connected with a `dispatch_uid`.
    Uid(Cow<'static, str>),
    /// A zero-sized receiver (a `fn` item or a closure that captures nothing): its type is its
    /// identity, as a Python function's `id` is.
    Code(TypeId),
    /// A zero-sized receiver bound to a weak target: the pair is its identity, as a bound
    /// method's `(id(self), id(func))` is in Django.
    Bound(TypeId, usize),
    /// A closure with captures, or a static receiver without uid: never equal to another.
    Unique,
}

/// A `dispatch_uid` as the connectors store it: an empty one counts as none, as Django's falsy
/// uid does.
pub(crate) fn dispatch_uid(uid: impl Into<Cow<'static, str>>) -> Option<Cow<'static, str>> {
    let uid = uid.into();
    (!uid.is_empty()).then_some(uid)
}

impl Identity {
    /// The identity of a runtime receiver of type `C`, connected with `uid`.
    pub(crate) fn of<C: 'static>(uid: Option<&Cow<'static, str>>) -> Self {
        match uid {
            Some(uid) => Self::Uid(uid.clone()),
            None if mem::size_of::<C>() == 0 => Self::Code(TypeId::of::<C>()),
            None => Self::Unique,
        }
    }

    /// The identity of a receiver of type `C` bound to the target at `target`.
    pub(crate) fn bound<C: 'static, T>(uid: Option<&Cow<'static, str>>, target: &Arc<T>) -> Self {
        match Self::of::<C>(uid) {
            Self::Code(code) => Self::Bound(code, Arc::as_ptr(target).cast::<()>().addr()),
            other => other,
        }
    }

    fn same_receiver(&self, other: &Self) -> bool {
        !matches!(self, Self::Unique) && self == other
    }
}

/// A dispatch list element as the table needs to see it.
pub(crate) trait Listed: Clone + Send + Sync {
    fn info(&self) -> &ReceiverInfo;
    fn alive(&self) -> bool;
    fn is_async(&self) -> bool;
}

/// One connected receiver.
pub(crate) struct Record<K, E> {
    pub(crate) connection: Connection,
    pub(crate) sender: Option<K>,
    pub(crate) identity: Identity,
    pub(crate) entry: E,
}

impl<K, E> Record<K, E> {
    pub(crate) fn new(sender: Option<K>, identity: Identity, entry: E) -> Self {
        Self {
            connection: next_connection(),
            sender,
            identity,
            entry,
        }
    }
}

/// A routing snapshot, built from the table in dispatch order.
pub(crate) trait Routes<K, E>: Send + Sync + Sized {
    fn build(records: &[Record<K, E>]) -> Self;
}

/// The live state of one signal.
pub(crate) struct Core<K, E, R> {
    table: Mutex<Vec<Record<K, E>>>,
    routes: ArcSwap<R>,
    /// Problems found while indexing the static receivers.
    problems: Vec<WiringError>,
}

impl<K, E, R> Core<K, E, R>
where
    K: Eq + Send,
    E: Listed,
    R: Routes<K, E>,
{
    pub(crate) fn new(records: Vec<Record<K, E>>, problems: Vec<WiringError>) -> Self {
        let routes = ArcSwap::from_pointee(R::build(&records));
        Self {
            table: Mutex::new(records),
            routes,
            problems,
        }
    }

    /// The current snapshot. Holding it does not block anything.
    #[inline]
    pub(crate) fn routes(&self) -> Guard<Arc<R>> {
        self.routes.load()
    }

    /// The current snapshot, owned: for async sends, whose futures may move between threads.
    pub(crate) fn routes_full(&self) -> Arc<R> {
        self.routes.load_full()
    }

    pub(crate) fn problems(&self) -> &[WiringError] {
        &self.problems
    }

    /// The live receivers, for every sender, in dispatch order.
    pub(crate) fn receivers(&self) -> Vec<ReceiverEntry>
    where
        K: std::fmt::Debug,
    {
        self.lock()
            .iter()
            .filter(|record| record.entry.alive())
            .map(|record| {
                let sender = record.sender.as_ref().map(|sender| format!("{sender:?}"));
                ReceiverEntry::new(record.entry.info().clone(), sender, record.entry.is_async())
            })
            .collect()
    }

    /// Adds `record` unless a receiver with the same lookup key is connected; returns its
    /// handle, or [`Connection::DUPLICATE`].
    pub(crate) fn connect(&self, record: Record<K, E>) -> Connection {
        let mut table = self.lock();
        let mut removed = Self::purge_dead(&mut table);
        let duplicate = table
            .iter()
            .any(|r| r.sender == record.sender && r.identity.same_receiver(&record.identity));
        let connection = if duplicate {
            removed.push(record);
            Connection::DUPLICATE
        } else {
            let connection = record.connection;
            table.push(record);
            connection
        };
        let old = self.publish(&table);
        drop(table);
        // User closures and their captures are dropped here, outside the lock, so that their
        // `Drop` may connect or disconnect on this signal.
        drop((removed, old));
        connection
    }

    /// Removes the receivers `remove` selects; returns whether any was removed.
    pub(crate) fn disconnect(&self, mut remove: impl FnMut(&Record<K, E>) -> bool) -> bool {
        let mut table = self.lock();
        let mut removed = Self::purge_dead(&mut table);
        let before = removed.len();
        extract(&mut table, &mut removed, &mut remove);
        let found = removed.len() > before;
        let old = (!removed.is_empty()).then(|| self.publish(&table));
        drop(table);
        drop((removed, old));
        found
    }
}

impl<K, E, R> FoundDead for Core<K, E, R>
where
    K: Eq + Send,
    E: Listed,
    R: Routes<K, E>,
{
    /// Purges weak receivers whose target is gone now if the table is free, otherwise leaves
    /// them to the next edit. Never blocks.
    #[cold]
    fn found_dead(&self) {
        let Ok(mut table) = self.table.try_lock() else {
            return;
        };
        let removed = Self::purge_dead(&mut table);
        let old = (!removed.is_empty()).then(|| self.publish(&table));
        drop(table);
        drop((removed, old));
    }
}

impl<K, E, R> Core<K, E, R>
where
    K: Eq + Send,
    E: Listed,
    R: Routes<K, E>,
{
    /// How many receivers the table holds, dead weak ones included until they are purged.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Record<K, E>>> {
        // Nothing that can panic runs between the edits of one lock, except a user sender's
        // `PartialEq`; the table is consistent after every single edit, so a poisoned lock is
        // safe to use.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn purge_dead(table: &mut Vec<Record<K, E>>) -> Vec<Record<K, E>> {
        let mut removed = Vec::new();
        extract(table, &mut removed, |record| !record.entry.alive());
        removed
    }

    /// Publishes a snapshot of `table`; returns the previous one, to be dropped by the caller
    /// once the lock is released.
    fn publish(&self, table: &[Record<K, E>]) -> Arc<R> {
        self.routes.swap(Arc::new(R::build(table)))
    }
}

/// Moves the records `pred` selects from `table` to `out`, keeping the order of the rest.
fn extract<T>(table: &mut Vec<T>, out: &mut Vec<T>, mut pred: impl FnMut(&T) -> bool) {
    let mut kept = Vec::with_capacity(table.len());
    for item in table.drain(..) {
        if pred(&item) {
            out.push(item);
        } else {
            kept.push(item);
        }
    }
    *table = kept;
}
