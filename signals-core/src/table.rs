//! The receivers of one signal: an ordered table that connects and disconnects edit under a
//! lock, and an immutable routing snapshot that sends read without taking any lock.
//!
//! A send loads the current snapshot once and dispatches from it, so the set of receivers is
//! fixed when the send starts (Django's semantics): a receiver disconnected during the send
//! still runs, one connected during it does not. Sends never wait for each other; a send
//! waits for the table only when it is the first after an edit, to rebuild the snapshot.
//!
//! Three things keep the send path cheap. Until the first runtime edit, a signal dispatches
//! from the snapshot of its static receivers, which never changes, without touching the
//! published pointer (see `publish`). A summary word (are there any-sender receivers; a Bloom filter of the
//! senders that have receivers of their own) lets a send that can reach nobody return after
//! one load. And edits cost O(1): they change the table and leave the rebuild to the next
//! send, so a burst of connects costs one rebuild.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::mem;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use hashbrown::HashTable;

use crate::connect::{Connection, next_connection};
use crate::error::WiringError;
use crate::info::{ReceiverInfo, SourceLocation};
use crate::raw::{Pin, Published};
use crate::receiver::{Identity, Info, Keyed};

/// A `dispatch_uid` as the connectors store it: an empty one counts as none, as Django's falsy
/// uid does.
pub(crate) fn dispatch_uid(uid: impl Into<Cow<'static, str>>) -> Option<Cow<'static, str>> {
    let uid = uid.into();
    (!uid.is_empty()).then_some(uid)
}

/// Told by a send that a weak receiver's target is gone.
pub(crate) trait FoundDead: Sync {
    fn found_dead(&self);
}

/// A dispatch list element as the table keeps it: a receiver that snapshots can share.
pub(crate) trait Listed: Info + Keyed + Clone + Send + Sync {}

impl<E: Info + Keyed + Clone + Send + Sync> Listed for E {}

/// One connected receiver.
pub(crate) struct Record<K, E> {
    pub(crate) connection: Connection,
    pub(crate) sender: Option<K>,
    pub(crate) entry: E,
}

impl<K, E> Record<K, E> {
    /// A runtime receiver, with a fresh handle.
    pub(crate) fn new(sender: Option<K>, entry: E) -> Self {
        Self {
            connection: next_connection(),
            sender,
            entry,
        }
    }

    /// A static receiver: it has no handle, as nothing connected it.
    pub(crate) fn new_static(sender: Option<K>, entry: E) -> Self {
        Self {
            connection: Connection::NONE,
            sender,
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
        summary & ANY != 0
            || (summary != 0 && sender.is_some_and(|sender| summary & bit(sender) != 0))
    }
}

/// A routing snapshot, in dispatch order.
pub(crate) trait Routes<K, E>: Send + Sync + Sized {
    /// The snapshot of `records`, in order.
    fn build<'r>(records: impl Iterator<Item = &'r Record<K, E>> + Clone) -> Self
    where
        K: 'r,
        E: 'r;

    /// Calls `each` with every receiver a send from `sender` (`None`: without sender) would
    /// run, in dispatch order, and whether it is alive.
    fn listeners(&self, sender: Option<&K>, each: &mut dyn FnMut(&ReceiverInfo, bool));

    /// The receivers a send from `sender` would run that are alive, in dispatch order.
    fn live_receivers(&self, sender: Option<&K>) -> Vec<ReceiverInfo>;
}

/// A sender as [`explain`](crate::explain) compares it: by value, with the signal's own `Eq`, as dispatch
/// does (a type's identity for type signals), and written for people as its `Debug`
/// rendering. Public only because the hidden `Explain::sender_key` returns it.
#[doc(hidden)]
#[derive(Clone)]
pub struct SenderKey {
    /// The sender's `Debug` rendering.
    pub(crate) label: String,
    value: Arc<dyn Any + Send + Sync>,
    same: fn(&dyn Any, &dyn Any) -> bool,
}

impl SenderKey {
    pub(crate) fn of<K>(sender: &K) -> Self
    where
        K: PartialEq + fmt::Debug + Clone + Send + Sync + 'static,
    {
        fn same<K: PartialEq + 'static>(a: &dyn Any, b: &dyn Any) -> bool {
            matches!((a.downcast_ref::<K>(), b.downcast_ref::<K>()), (Some(a), Some(b)) if a == b)
        }
        Self {
            label: format!("{sender:?}"),
            value: Arc::new(sender.clone()),
            same: same::<K>,
        }
    }

    /// Whether both are the same sender, as dispatch decides it.
    pub(crate) fn is(&self, other: &Self) -> bool {
        (self.same)(&*self.value, &*other.value)
    }
}

/// One receiver of a signal as the table or the static registrations know it, for the
/// diagnostics.
pub(crate) struct Row {
    pub(crate) receiver: ReceiverInfo,
    pub(crate) sender: Option<SenderKey>,
    pub(crate) is_async: bool,
    pub(crate) state: RowState,
}

impl Row {
    /// The row of `record`, standing as `state`.
    pub(crate) fn of<K, E>(record: &Record<K, E>, state: RowState) -> Self
    where
        K: PartialEq + fmt::Debug + Clone + Send + Sync + 'static,
        E: Listed,
    {
        Self {
            receiver: record.entry.info().clone(),
            sender: record.sender.as_ref().map(SenderKey::of),
            is_async: record.entry.is_async(),
            state,
        }
    }
}

/// Where a [`Row`] stands.
pub(crate) enum RowState {
    /// In the table; `alive` is false for a weak receiver whose target is gone.
    Connected { alive: bool },
    /// A static receiver disconnected at run time.
    Disconnected,
    /// A static receiver left out because another one has its `dispatch_uid` and sender.
    Duplicate { first: SourceLocation },
}

/// How many slots a chunk of [`Slots`] holds.
const CHUNK: usize = 64;

/// A table's slots in connection order, holes included: chunks of at most [`CHUNK`] slots, so
/// that growing never copies records and leaves at most one chunk of spare capacity, where a
/// `Vec` that doubles may leave as much spare as it holds.
struct Slots<T> {
    chunks: Vec<Vec<Option<T>>>,
    len: usize,
}

impl<T> Slots<T> {
    /// Slots holding `records`, in order, each moved once. Chunks are allocated whole, as
    /// [`push`](Self::push) allocates them, except the only chunk of a smaller table, whose
    /// capacity is a power of two, so that growing it as a `Vec` does stops at [`CHUNK`].
    fn from_vec(records: Vec<T>) -> Self {
        let len = records.len();
        let capacity = len.next_power_of_two().min(CHUNK);
        let mut chunks = Vec::with_capacity(len.div_ceil(CHUNK));
        let mut records = records.into_iter().map(Some);
        while records.len() > 0 {
            let mut chunk = Vec::with_capacity(capacity);
            chunk.extend(records.by_ref().take(CHUNK));
            chunks.push(chunk);
        }
        Self { chunks, len }
    }

    fn len(&self) -> usize {
        self.len
    }

    fn push(&mut self, record: T) {
        match self.chunks.last_mut() {
            Some(chunk) if chunk.len() < CHUNK => chunk.push(Some(record)),
            last => {
                // The first chunk grows as a `Vec` does, so that a small table stays small;
                // the others are allocated whole.
                let mut chunk = Vec::with_capacity(if last.is_none() { 0 } else { CHUNK });
                chunk.push(Some(record));
                self.chunks.push(chunk);
            }
        }
        self.len += 1;
    }

    fn get(&self, slot: usize) -> Option<&T> {
        self.chunks.get(slot / CHUNK)?.get(slot % CHUNK)?.as_ref()
    }

    /// Empties `slot`, returning what it held.
    fn take(&mut self, slot: usize) -> Option<T> {
        self.chunks
            .get_mut(slot / CHUNK)?
            .get_mut(slot % CHUNK)?
            .take()
    }

    /// The records, in slot order.
    fn iter(&self) -> impl Iterator<Item = &T> + Clone {
        self.chunks.iter().flatten().flatten()
    }

    /// The records, in slot order, leaving no slot.
    fn drain(&mut self) -> impl Iterator<Item = T> {
        self.len = 0;
        mem::take(&mut self.chunks).into_iter().flatten().flatten()
    }
}

/// The receivers of a signal, in dispatch order, indexed by handle and by lookup key.
///
/// Records sit in connection order in `slots`; a disconnect leaves a hole, and the slots are
/// compacted once holes make up half of them, so that every edit costs O(1), amortised. The
/// indexes hold slot numbers alone (4 bytes an entry): a hash is worked out again from the
/// record when an index grows.
struct Table<K, E> {
    slots: Slots<Record<K, E>>,
    live: usize,
    /// The slots of the records with a handle, by handle.
    by_connection: HashTable<u32>,
    /// The slots of the records with an identity, by `(identity, sender)`.
    by_key: HashTable<u32>,
    hasher: foldhash::fast::RandomState,
    /// The size at which the next edit sweeps for weak receivers whose target is gone, twice
    /// the size after the last sweep: sweeping costs O(1) per edit, amortised, and dead
    /// receivers never make up more than half the table.
    sweep_at: usize,
}

/// The hash of a record's handle in [`Table::by_connection`].
fn connection_hash(hasher: &foldhash::fast::RandomState, connection: Connection) -> u64 {
    hasher.hash_one(connection)
}

/// The hash of a lookup key in [`Table::by_key`]; `None` for receivers without one.
fn key_hash<K: Hash>(
    hasher: &foldhash::fast::RandomState,
    identity: Identity<'_>,
    sender: Option<&K>,
) -> Option<u64> {
    (identity != Identity::Unique).then(|| hasher.hash_one((identity, sender)))
}

/// Indexes the record in `slot` by its handle `connection`, if it has one, and by its lookup
/// key, whose hash is `key`, if it has one.
fn index<K: Hash, E: Keyed>(
    slots: &Slots<Record<K, E>>,
    hasher: &foldhash::fast::RandomState,
    by_connection: &mut HashTable<u32>,
    by_key: &mut HashTable<u32>,
    slot: u32,
    connection: Connection,
    key: Option<u64>,
) {
    if connection != Connection::NONE {
        by_connection.insert_unique(connection_hash(hasher, connection), slot, |&slot| {
            connection_hash(hasher, indexed(slots, slot).connection)
        });
    }
    if let Some(hash) = key {
        by_key.insert_unique(hash, slot, |&slot| {
            let record = indexed(slots, slot);
            key_hash(hasher, record.entry.identity(), record.sender.as_ref())
                .expect("only records with an identity are indexed by key")
        });
    }
}

/// The record an index entry names: indexes only name slots that hold a record.
fn indexed<K, E>(slots: &Slots<Record<K, E>>, slot: u32) -> &Record<K, E> {
    slots
        .get(slot as usize)
        .expect("an index names only slots that hold a record")
}

impl<K: Eq + Hash, E: Listed> Table<K, E> {
    /// The table of `records`, in order: moved into their slots at once, then indexed (a
    /// start-up's thousands of static receivers, most of them without handle or identity).
    fn new(records: Vec<Record<K, E>>) -> Self {
        Self::of(records, foldhash::fast::RandomState::default(), 0)
    }

    /// The table of `records`, in order, hashing with `hasher`.
    fn of(
        records: Vec<Record<K, E>>,
        hasher: foldhash::fast::RandomState,
        sweep_at: usize,
    ) -> Self {
        let slots = Slots::from_vec(records);
        let mut by_connection = HashTable::new();
        let mut by_key = HashTable::new();
        for (slot, record) in slots.iter().enumerate() {
            let slot = u32::try_from(slot).expect("fewer than 2^32 receivers a signal");
            let key = key_hash(&hasher, record.entry.identity(), record.sender.as_ref());
            let connection = record.connection;
            index(
                &slots,
                &hasher,
                &mut by_connection,
                &mut by_key,
                slot,
                connection,
                key,
            );
        }
        Self {
            live: slots.len(),
            slots,
            by_connection,
            by_key,
            hasher,
            sweep_at,
        }
    }

    fn records(&self) -> impl Iterator<Item = &Record<K, E>> + Clone {
        self.slots.iter()
    }

    /// The hash of a lookup key; `None` for receivers without one.
    fn key_hash(&self, identity: Identity<'_>, sender: Option<&K>) -> Option<u64> {
        key_hash(&self.hasher, identity, sender)
    }

    /// The slot of the record with this lookup key, whose hash is `hash`.
    fn find(&self, hash: Option<u64>, identity: Identity<'_>, sender: Option<&K>) -> Option<usize> {
        let slots = &self.slots;
        self.by_key
            .find(hash?, |&slot| {
                let record = indexed(slots, slot);
                record.entry.identity() == identity && record.sender.as_ref() == sender
            })
            .map(|&slot| slot as usize)
    }

    /// The slot of the record connected with `connection`.
    fn find_connection(&self, connection: Connection) -> Option<usize> {
        let slots = &self.slots;
        self.by_connection
            .find(connection_hash(&self.hasher, connection), |&slot| {
                indexed(slots, slot).connection == connection
            })
            .map(|&slot| slot as usize)
    }

    /// Appends `record`, whose lookup key hashes to `hash`.
    fn insert(&mut self, record: Record<K, E>, hash: Option<u64>) {
        let slot = u32::try_from(self.slots.len()).expect("fewer than 2^32 receivers a signal");
        let connection = record.connection;
        self.slots.push(record);
        self.live += 1;
        let Self {
            slots,
            by_connection,
            by_key,
            hasher,
            ..
        } = self;
        index(slots, hasher, by_connection, by_key, slot, connection, hash);
    }

    /// Takes the record out of `slot`, leaving a hole. Slot numbers stay valid until the holes
    /// are closed by [`compact_if_sparse`](Self::compact_if_sparse), at the end of the edit.
    fn take(&mut self, slot: usize) -> Option<Record<K, E>> {
        let record = self.slots.take(slot)?;
        self.live -= 1;
        let slot = u32::try_from(slot).expect("slot numbers fit in 32 bits");
        if record.connection != Connection::NONE
            && let Ok(found) = self
                .by_connection
                .find_entry(connection_hash(&self.hasher, record.connection), |&s| {
                    s == slot
                })
        {
            found.remove();
        }
        if let Some(hash) = self.key_hash(record.entry.identity(), record.sender.as_ref())
            && let Ok(found) = self.by_key.find_entry(hash, |&s| s == slot)
        {
            found.remove();
        }
        Some(record)
    }

    /// Closes the holes once they make up half the slots, so that every edit costs O(1),
    /// amortised. It renumbers the slots: only the end of an edit calls it, when no slot number
    /// is held any more.
    fn compact_if_sparse(&mut self) {
        if self.slots.len() < 32 || self.live * 2 >= self.slots.len() {
            return;
        }
        let records: Vec<_> = self.slots.drain().collect();
        *self = Self::of(records, self.hasher.clone(), self.sweep_at);
    }

    /// Takes out every weak receiver whose target is gone, into `retired`.
    fn purge_dead(&mut self, retired: &mut Vec<Record<K, E>>) {
        for slot in 0..self.slots.len() {
            if self
                .slots
                .get(slot)
                .is_some_and(|record| !record.entry.alive())
            {
                retired.extend(self.take(slot));
            }
        }
        self.sweep_at = (2 * self.live).max(1);
    }

    /// The summary of every record: see [`summary`].
    fn summary(&self) -> u64 {
        self.records()
            .fold(0, |bits, record| bits | summary_of(record))
    }
}

fn summary_of<K: Hash, E>(record: &Record<K, E>) -> u64 {
    record.sender.as_ref().map_or(summary::ANY, summary::bit)
}

/// The snapshot a send dispatches from (see [`Core::state`]).
mod state {
    /// The static receivers' snapshot: nothing was ever connected or disconnected at run time.
    pub(super) const INITIAL: u8 = 0;
    /// The published snapshot.
    pub(super) const CURRENT: u8 = 1;
    /// The table was edited since the snapshot was published: the next send rebuilds it.
    pub(super) const STALE: u8 = 2;
}

/// The live state of one signal.
///
/// Edits change the table and mark the snapshot stale; the first send after them rebuilds
/// and publishes it, as Django's first send after a `connect` rebuilds its sender cache. A
/// burst of connects at start-up costs O(1) each, and one rebuild.
pub(crate) struct Core<K, E, Rt> {
    table: Mutex<Table<K, E>>,
    /// Which snapshot sends use: one of the [`state`] constants.
    state: AtomicU8,
    /// A superset of the table's summary: bits are added by connects, and cleared when the
    /// snapshot is rebuilt.
    summary: AtomicU64,
    routes: Published<Rt>,
    /// The snapshot of the static receivers, dispatched from until the first edit.
    initial: Arc<Rt>,
    /// Set by a send that met a weak receiver whose target is gone.
    dead: AtomicBool,
    /// Problems found while indexing the static receivers.
    problems: Vec<WiringError>,
}

impl<K, E, Rt> Core<K, E, Rt>
where
    K: Eq + Hash + Clone + Send,
    E: Listed,
    Rt: Routes<K, E> + 'static,
{
    pub(crate) fn new(records: Vec<Record<K, E>>, problems: Vec<WiringError>) -> Self {
        let table = Table::new(records);
        let initial = Arc::new(Rt::build(table.records()));
        Self {
            summary: AtomicU64::new(table.summary()),
            table: Mutex::new(table),
            state: AtomicU8::new(state::INITIAL),
            routes: Published::new(Arc::clone(&initial)),
            initial,
            dead: AtomicBool::new(false),
            problems,
        }
    }

    /// Whether a send from `sender` may reach a receiver; `false` means it reaches none.
    #[inline]
    pub(crate) fn may_reach<S: Hash + ?Sized>(&self, sender: Option<&S>) -> bool {
        summary::may_reach(self.summary(), sender)
    }

    /// The summary of the receivers (see [`summary`]): `0` when none is connected. A sync send
    /// loads it once, for its early return and its routing check.
    #[inline]
    pub(crate) fn summary(&self) -> u64 {
        self.summary.load(Ordering::Acquire)
    }

    /// The current snapshot, for the send `pin` stands for: alive as long as `pin` is. Holding
    /// it does not block anything.
    #[inline]
    pub(crate) fn routes<'p>(&'p self, pin: &'p mut Pin) -> &'p Rt {
        match self.state.load(Ordering::Acquire) {
            state::INITIAL => &self.initial,
            state::CURRENT => self.routes.read(pin),
            _ => {
                self.refresh();
                self.routes.read(pin)
            }
        }
    }

    /// The current snapshot, owned, read through the send's `pin`: for sends whose responses
    /// keep it.
    #[inline]
    pub(crate) fn routes_kept(&self, pin: &mut Pin) -> Arc<Rt> {
        match self.state.load(Ordering::Acquire) {
            state::INITIAL => Arc::clone(&self.initial),
            state::CURRENT => self.routes.load_full_with(pin),
            _ => {
                self.refresh();
                self.routes.load_full_with(pin)
            }
        }
    }

    /// Runs `f` with the current snapshot, outside any send.
    fn with_routes<T>(&self, f: impl FnOnce(&Rt) -> T) -> T {
        let mut pin = Pin::enter();
        f(self.routes(&mut pin))
    }

    /// The current snapshot, owned: for async sends, whose futures may move between threads.
    pub(crate) fn routes_full(&self) -> Arc<Rt> {
        match self.state.load(Ordering::Acquire) {
            state::INITIAL => Arc::clone(&self.initial),
            state::CURRENT => self.routes.load_full(),
            _ => {
                self.refresh();
                self.routes.load_full()
            }
        }
    }

    /// Rebuilds and publishes the snapshot after edits.
    #[cold]
    #[inline(never)]
    fn refresh(&self) {
        let replaced = self.edit(|table, _| {
            if self.state.load(Ordering::Acquire) != state::STALE {
                return None; // another send got there first
            }
            let replaced = self.routes.replace(Arc::new(Rt::build(table.records())));
            self.summary.store(table.summary(), Ordering::Release);
            self.state.store(state::CURRENT, Ordering::Release);
            Some(replaced)
        });
        // The old snapshot may hold the last reference to disconnected closures: it is freed
        // here, outside the lock, so that their `Drop` may connect, disconnect or send, or by
        // the last send still reading it, when that send ends.
        drop(replaced);
    }

    /// Runs one edit of the table under its lock: first the purge of weak receivers whose
    /// target is gone, when one is due, then `f`. Slot numbers stay valid for the whole edit,
    /// since only its end closes the holes, which renumbers the slots. The records `f` retires
    /// and those the purge took out are dropped after the lock is released, so that their
    /// `Drop` may connect, disconnect or send on this signal.
    fn edit<T>(&self, f: impl FnOnce(&mut Table<K, E>, &mut Vec<Record<K, E>>) -> T) -> T {
        let mut table = self.lock();
        let mut retired = Vec::new();
        // A plain load first: the swap is a locked instruction, and the flag is rarely set.
        let found_dead =
            self.dead.load(Ordering::Relaxed) && self.dead.swap(false, Ordering::AcqRel);
        if found_dead || table.live >= table.sweep_at {
            table.purge_dead(&mut retired);
            if !retired.is_empty() {
                self.mark_stale();
            }
        }
        let out = f(&mut table, &mut retired);
        table.compact_if_sparse();
        drop(table);
        drop(retired);
        out
    }

    /// Tells sends that the table changed: the next one rebuilds the snapshot.
    fn mark_stale(&self) {
        self.state.store(state::STALE, Ordering::Release);
    }

    pub(crate) fn problems(&self) -> &[WiringError] {
        &self.problems
    }

    /// Every receiver in the table, dead weak ones included, in dispatch order.
    pub(crate) fn rows(&self) -> Vec<Row>
    where
        K: std::fmt::Debug + Sync + 'static,
    {
        self.lock()
            .records()
            .map(|record| {
                let alive = record.entry.alive();
                Row::of(record, RowState::Connected { alive })
            })
            .collect()
    }

    /// Adds `record` unless a live receiver with the same lookup key is connected; returns its
    /// handle, or [`Connection::NONE`].
    pub(crate) fn connect(&self, record: Record<K, E>) -> Connection {
        self.edit(|table, retired| {
            let hash = table.key_hash(record.entry.identity(), record.sender.as_ref());
            if let Some(existing) =
                table.find(hash, record.entry.identity(), record.sender.as_ref())
            {
                let alive = table.slots.get(existing).is_some_and(|r| r.entry.alive());
                if alive {
                    retired.push(record);
                    return Connection::NONE;
                }
                // A weak receiver whose target is gone does not count: purge it now, so that a
                // new target at the same address is not taken for it.
                retired.extend(table.take(existing));
            }
            let connection = record.connection;
            let summary = self.summary.load(Ordering::Relaxed) | summary_of(&record);
            table.insert(record, hash);
            self.summary.store(summary, Ordering::Release);
            self.mark_stale();
            connection
        })
    }

    /// Disconnects the receiver connected with `connection`; returns whether it was connected
    /// (and alive).
    pub(crate) fn disconnect(&self, connection: Connection) -> bool {
        self.edit(|table, retired| {
            let slot = table.find_connection(connection);
            self.retire(table, slot, retired)
        })
    }

    /// Whether any live receiver would run for `sender`.
    pub(crate) fn has_listeners(&self, sender: Option<&K>) -> bool {
        let mut live = false;
        self.with_routes(|routes| routes.listeners(sender, &mut |_, alive| live |= alive));
        live
    }

    /// The live receivers that would run for `sender`, in dispatch order.
    pub(crate) fn receivers(&self, sender: Option<&K>) -> Vec<ReceiverInfo> {
        self.with_routes(|routes| routes.live_receivers(sender))
    }

    /// Disconnects the receiver connected with `dispatch_uid` for exactly `sender`.
    pub(crate) fn disconnect_uid(&self, dispatch_uid: &str, sender: Option<&K>) -> bool {
        self.disconnect_key(Identity::Uid(dispatch_uid), sender)
    }

    /// Disconnects the receiver whose code is `C`, connected without `dispatch_uid` for
    /// exactly `sender`. A receiver with captures has no identity: nothing matches it.
    pub(crate) fn disconnect_code<C: 'static>(&self, sender: Option<&K>) -> bool {
        Identity::code::<C>().is_some_and(|identity| self.disconnect_key(identity, sender))
    }

    /// Disconnects the receiver whose code is `C` for every sender; returns how many live
    /// connections it removed.
    pub(crate) fn disconnect_code_everywhere<C: 'static>(&self) -> usize {
        Identity::code::<C>().map_or(0, |identity| self.disconnect_identity(identity))
    }

    /// Disconnects the receiver with `identity` for exactly `sender`.
    fn disconnect_key(&self, identity: Identity<'_>, sender: Option<&K>) -> bool {
        self.edit(|table, retired| {
            let slot = table.find(table.key_hash(identity, sender), identity, sender);
            self.retire(table, slot, retired)
        })
    }

    /// Disconnects every receiver with `identity`, for any sender; returns how many live ones
    /// it removed.
    fn disconnect_identity(&self, identity: Identity<'_>) -> usize {
        self.edit(|table, retired| {
            let slots: Vec<usize> = (0..table.slots.len())
                .filter(|&slot| {
                    table
                        .slots
                        .get(slot)
                        .is_some_and(|record| record.entry.identity() == identity)
                })
                .collect();
            slots
                .into_iter()
                .filter(|&slot| self.retire(table, Some(slot), retired))
                .count()
        })
    }

    /// Takes the record in `slot` out of the table, into `retired`; returns whether it was
    /// there and alive.
    fn retire(
        &self,
        table: &mut Table<K, E>,
        slot: Option<usize>,
        retired: &mut Vec<Record<K, E>>,
    ) -> bool {
        let Some(record) = slot.and_then(|slot| table.take(slot)) else {
            return false;
        };
        self.mark_stale();
        let alive = record.entry.alive();
        retired.push(record);
        alive
    }

    /// How many receivers the table holds, dead weak ones included until they are purged.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().live
    }

    fn lock(&self) -> MutexGuard<'_, Table<K, E>> {
        // Nothing that can panic runs between the edits of one lock, except a user sender's
        // `Hash` or `PartialEq`; the table is consistent after every single edit, so a
        // poisoned lock is safe to use.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<K, E, Rt> FoundDead for Core<K, E, Rt>
where
    K: Send + Sync,
    E: Send + Sync,
    Rt: Send + Sync,
{
    /// Marks the snapshot stale, so that the next send purges receivers whose target is gone
    /// and rebuilds it. Never blocks.
    #[cold]
    fn found_dead(&self) {
        self.dead.store(true, Ordering::Release);
        // Only published snapshots hold weak receivers: static ones are never weak.
        let _ = self.state.compare_exchange(
            state::CURRENT,
            state::STALE,
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }
}
