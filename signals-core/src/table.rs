//! The receivers of one signal: an ordered table that connects and disconnects edit under a
//! lock, and an immutable routing snapshot, updated after each edit, that sends read without
//! taking any lock.
//!
//! A send loads the current snapshot once and dispatches from it, so the set of receivers is
//! fixed when the send starts (Django's semantics): a receiver disconnected during the send
//! still runs, one connected during it does not. Edits never wait for sends and sends never
//! wait for edits or for each other.
//!
//! Three things keep the send path cheap. Until the first runtime edit, a signal dispatches
//! from the snapshot of its static receivers, which never changes, without touching the
//! `arc-swap` pointer. A summary word (are there any-sender receivers; a Bloom filter of the
//! senders that have receivers of their own) lets a send that can reach nobody return after
//! one load. And edits update the snapshot incrementally where they can: a connect copies the
//! lists of its sender, not the whole table.

use std::any::TypeId;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::mem;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arc_swap::ArcSwap;

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
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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

/// What a send needs to know before loading a snapshot: whether any-sender receivers exist,
/// and a Bloom filter of the senders with receivers of their own. `0` means no receivers.
pub(crate) mod summary {
    use std::hash::{BuildHasher, Hash};

    /// The bit set when any-sender receivers exist.
    pub(crate) const ANY: u64 = 1 << 63;

    /// The Bloom bit of `sender`.
    #[inline]
    pub(crate) fn bit<K: Hash + ?Sized>(sender: &K) -> u64 {
        let hash = foldhash::fast::FixedState::with_seed(0x5157_4e41_4c53).hash_one(sender);
        1 << (hash % 63)
    }

    /// Whether a send from `sender` (`None`: without sender) may reach a receiver.
    #[inline]
    pub(crate) fn may_reach<K: Hash + ?Sized>(summary: u64, sender: Option<&K>) -> bool {
        summary & ANY != 0 || sender.is_some_and(|sender| summary & bit(sender) != 0)
    }
}

/// A routing snapshot, in dispatch order.
pub(crate) trait Routes<K, E>: Send + Sync + Sized {
    /// The snapshot of `records`, in order.
    fn build<'r>(records: impl Iterator<Item = &'r Record<K, E>> + Clone) -> Self
    where
        K: 'r,
        E: 'r;

    /// This snapshot with `record` appended, or `None` if it must be rebuilt.
    fn connected(&self, record: &Record<K, E>) -> Option<Self>;

    /// This snapshot without `record`, or `None` if it must be rebuilt.
    fn disconnected(&self, record: &Record<K, E>) -> Option<Self>;

    /// The summary of this snapshot: see [`summary`].
    fn summary(&self) -> u64;
}

/// The receivers of a signal: in dispatch order, and indexed by handle and lookup key.
struct Table<K, E> {
    records: BTreeMap<u64, Record<K, E>>,
    by_connection: HashMap<Connection, u64, foldhash::fast::RandomState>,
    by_key: HashMap<(Identity, Option<K>), u64, foldhash::fast::RandomState>,
    next: u64,
    /// The size at which the next edit sweeps for weak receivers whose target is gone, twice
    /// the size after the last sweep: sweeping costs O(1) per edit, amortised, and dead
    /// receivers never make up more than half the table.
    sweep_at: usize,
}

impl<K: Eq + Hash + Clone, E: Listed> Table<K, E> {
    fn new(records: Vec<Record<K, E>>) -> Self {
        let mut table = Self {
            records: BTreeMap::new(),
            by_connection: HashMap::default(),
            by_key: HashMap::default(),
            next: 0,
            sweep_at: 0,
        };
        for record in records {
            table.insert(record);
        }
        table
    }

    /// The record with the same lookup key, if one is connected and alive.
    fn duplicate_of(&self, record: &Record<K, E>) -> Option<u64> {
        if record.identity == Identity::Unique {
            return None;
        }
        let key = (record.identity.clone(), record.sender.clone());
        self.by_key.get(&key).copied()
    }

    fn insert(&mut self, record: Record<K, E>) {
        let position = self.next;
        self.next += 1;
        self.by_connection.insert(record.connection, position);
        if record.identity != Identity::Unique {
            self.by_key
                .insert((record.identity.clone(), record.sender.clone()), position);
        }
        self.records.insert(position, record);
    }

    fn remove(&mut self, position: u64) -> Option<Record<K, E>> {
        let record = self.records.remove(&position)?;
        self.by_connection.remove(&record.connection);
        if record.identity != Identity::Unique {
            self.by_key
                .remove(&(record.identity.clone(), record.sender.clone()));
        }
        Some(record)
    }

    /// Removes every weak receiver whose target is gone.
    fn purge_dead(&mut self) -> Vec<Record<K, E>> {
        let dead: Vec<u64> = self
            .records
            .iter()
            .filter(|(_, record)| !record.entry.alive())
            .map(|(position, _)| *position)
            .collect();
        let removed = dead.into_iter().filter_map(|p| self.remove(p)).collect();
        self.sweep_at = (2 * self.records.len()).max(1);
        removed
    }
}

/// The live state of one signal.
pub(crate) struct Core<K, E, R> {
    table: Mutex<Table<K, E>>,
    routes: ArcSwap<R>,
    /// The snapshot of the static receivers, dispatched from until the first edit.
    initial: Arc<R>,
    edited: AtomicBool,
    /// The published snapshot's summary.
    summary: AtomicU64,
    /// Set by a send that met a weak receiver whose target is gone.
    dead: AtomicBool,
    /// Problems found while indexing the static receivers.
    problems: Vec<WiringError>,
}

impl<K, E, R> Core<K, E, R>
where
    K: Eq + Hash + Clone + Send,
    E: Listed,
    R: Routes<K, E>,
{
    pub(crate) fn new(records: Vec<Record<K, E>>, problems: Vec<WiringError>) -> Self {
        let initial = Arc::new(R::build(records.iter()));
        let summary = initial.summary();
        Self {
            table: Mutex::new(Table::new(records)),
            routes: ArcSwap::new(Arc::clone(&initial)),
            initial,
            edited: AtomicBool::new(false),
            summary: AtomicU64::new(summary),
            dead: AtomicBool::new(false),
            problems,
        }
    }

    /// Whether a send from `sender` may reach a receiver; `false` means it reaches none.
    #[inline]
    pub(crate) fn may_reach<S: Hash + ?Sized>(&self, sender: Option<&S>) -> bool {
        summary::may_reach(self.summary.load(Ordering::Acquire), sender)
    }

    /// Runs `f` with the current snapshot. Holding it does not block anything.
    #[inline]
    pub(crate) fn with_routes<T>(&self, f: impl FnOnce(&R) -> T) -> T {
        if self.edited.load(Ordering::Acquire) {
            f(&self.routes.load())
        } else {
            f(&self.initial)
        }
    }

    /// The current snapshot, owned: for async sends, whose futures may move between threads.
    pub(crate) fn routes_full(&self) -> Arc<R> {
        if self.edited.load(Ordering::Acquire) {
            self.routes.load_full()
        } else {
            Arc::clone(&self.initial)
        }
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
            .records
            .values()
            .filter(|record| record.entry.alive())
            .map(|record| {
                let sender = record.sender.as_ref().map(|sender| format!("{sender:?}"));
                ReceiverEntry::new(record.entry.info().clone(), sender, record.entry.is_async())
            })
            .collect()
    }

    /// Adds `record` unless a live receiver with the same lookup key is connected; returns its
    /// handle, or [`Connection::DUPLICATE`].
    pub(crate) fn connect(&self, record: Record<K, E>) -> Connection {
        let mut table = self.lock();
        let mut removed = self.take_dead(&mut table);
        if let Some(existing) = table.duplicate_of(&record) {
            let alive = table
                .records
                .get(&existing)
                .is_some_and(|r| r.entry.alive());
            if alive {
                drop(table);
                drop((removed, record));
                return Connection::DUPLICATE;
            }
            // A weak receiver whose target is gone does not count: purge it now, so that a new
            // target at the same address is not taken for it.
            removed.extend(table.remove(existing));
        }
        let connection = record.connection;
        let incremental = if removed.is_empty() {
            self.routes.load().connected(&record)
        } else {
            None
        };
        table.insert(record);
        let old = self.publish(&table, incremental);
        drop(table);
        // User closures and their captures are dropped here, outside the lock, so that their
        // `Drop` may connect or disconnect on this signal.
        drop((removed, old));
        connection
    }

    /// Disconnects the receiver connected with `connection`; returns whether it was connected
    /// (and alive).
    pub(crate) fn disconnect(&self, connection: Connection) -> bool {
        let table = self.lock();
        let position = table.by_connection.get(&connection).copied();
        self.remove(table, position)
    }

    /// Disconnects the receiver with `identity` for exactly `sender`.
    pub(crate) fn disconnect_key(&self, identity: Identity, sender: Option<K>) -> bool {
        let table = self.lock();
        let position = table.by_key.get(&(identity, sender)).copied();
        self.remove(table, position)
    }

    fn remove(&self, mut table: MutexGuard<'_, Table<K, E>>, position: Option<u64>) -> bool {
        let mut removed = self.take_dead(&mut table);
        let purged = !removed.is_empty();
        let record = position.and_then(|position| table.remove(position));
        let found = record.as_ref().is_some_and(|record| record.entry.alive());
        let mut old = None;
        if let Some(record) = record {
            let incremental = if purged {
                None
            } else {
                self.routes.load().disconnected(&record)
            };
            old = Some(self.publish(&table, incremental));
            removed.push(record);
        } else if purged {
            old = Some(self.publish(&table, None));
        }
        drop(table);
        drop((removed, old));
        found
    }

    /// Purges weak receivers whose target is gone if a send met one, or if the table has
    /// doubled since the last sweep.
    fn take_dead(&self, table: &mut Table<K, E>) -> Vec<Record<K, E>> {
        if self.dead.swap(false, Ordering::AcqRel) || table.records.len() >= table.sweep_at {
            table.purge_dead()
        } else {
            Vec::new()
        }
    }
}

impl<K, E, R> FoundDead for Core<K, E, R>
where
    K: Eq + Hash + Clone + Send + Sync,
    E: Listed,
    R: Routes<K, E>,
{
    /// Purges weak receivers whose target is gone now if the table is free, otherwise leaves
    /// them to the next edit. Never blocks.
    #[cold]
    fn found_dead(&self) {
        self.dead.store(true, Ordering::Release);
        let Ok(mut table) = self.table.try_lock() else {
            return;
        };
        let removed = self.take_dead(&mut table);
        let old = (!removed.is_empty()).then(|| self.publish(&table, None));
        drop(table);
        drop((removed, old));
    }
}

impl<K, E, R> Core<K, E, R>
where
    K: Eq + Hash + Clone + Send,
    E: Listed,
    R: Routes<K, E>,
{
    /// How many receivers the table holds, dead weak ones included until they are purged.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().records.len()
    }

    fn lock(&self) -> MutexGuard<'_, Table<K, E>> {
        // Nothing that can panic runs between the edits of one lock, except a user sender's
        // `Hash` or `PartialEq`; the table is consistent after every single edit, so a
        // poisoned lock is safe to use.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Publishes `next`, or a snapshot rebuilt from `table`; returns the previous one, to be
    /// dropped by the caller once the lock is released.
    fn publish(&self, table: &Table<K, E>, next: Option<R>) -> Arc<R> {
        let routes = next.unwrap_or_else(|| R::build(table.records.values()));
        let summary = routes.summary();
        let old = self.routes.swap(Arc::new(routes));
        self.edited.store(true, Ordering::Release);
        self.summary.store(summary, Ordering::Release);
        old
    }
}
