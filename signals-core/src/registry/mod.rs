//! Static receivers and declared signals: the link-time collection of every [`Registration`]
//! and [`Declaration`] in the program, the per-signal index built from it the first time a
//! signal is used, and the program-wide views of it: [`check`] and [`registry`].

mod collect;
mod registration;

use std::any::Any;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::collections::hash_map::Entry as MapEntry;
use std::fmt;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};

use crate::connect::{Connection, Disconnect};
use crate::error::WiringError;
use crate::info::{ReceiverInfo, SourceLocation};
use crate::receiver::Shape;
use crate::table::{Core, Listed, Record, Routes, Row, RowState};

#[cfg(feature = "linkme")]
pub use collect::{DECLARATIONS, REGISTRATIONS};
pub use registration::{
    AnySignal, AsyncReceivers, Declaration, Registration, SignalKind, TypeSenders, ValueSenders,
    any_receiver, async_any_receiver, async_type_receiver, async_value_receiver, type_receiver,
    value_receiver,
};
pub(crate) use registration::{SignalRef, signal_ref};

/// What the registry needs of a signal type to build its table and to list it: implemented by
/// [`Signal`](crate::Signal) and [`TypeSignal`](crate::TypeSignal), which get [`SignalRef`],
/// [`Disconnect`] and, when their arguments are `Debug`, capture rendering from it.
pub(crate) trait Indexed: Sync + Sized + 'static {
    /// How the table keys a receiver's sender.
    type Key: Eq + Hash + Clone + Debug + Send + Sync + 'static;
    /// A receiver, as the table keeps it.
    type Receiver: Listed + 'static;
    /// The table's snapshot.
    type Routes: Routes<Self::Key, Self::Receiver>;
    /// The shape whose arguments [`testing::capture`](crate::testing::capture) records: the
    /// signal's own for value signals, the any-sender view for type signals.
    type Captured: Shape;

    /// What the signal's receivers are told about its sender.
    fn sender_kind() -> SenderKind;
    /// The signal's name and table.
    fn base(&self) -> &Base<Self::Key, Self::Receiver, Self::Routes>;

    /// The signal's name.
    fn signal_name(&self) -> &'static str {
        self.base().name
    }

    /// The signal's table, built from its static receivers the first time it is asked for.
    #[inline]
    fn core(&self) -> &Core<Self::Key, Self::Receiver, Self::Routes> {
        match self.base().get() {
            Some(core) => core,
            None => self.base().index(address(self)),
        }
    }

    /// Every live receiver, static and runtime, for every sender, in dispatch order, each with
    /// its sender; receivers shadowed by another with the same key are left out.
    fn connections(&self) -> Vec<ReceiverEntry> {
        let mut receivers = self.listing().receivers;
        receivers.retain(|entry| entry.shadowed_by().is_none());
        receivers
    }
}

/// What every signal holds: its name, and its table, built from the program's static
/// registrations on first use.
pub(crate) struct Base<K, E, Rt> {
    name: &'static str,
    core: OnceLock<Core<K, E, Rt>>,
}

impl<K, E, Rt> Base<K, E, Rt> {
    pub(crate) const fn new(name: &'static str) -> Self {
        Self {
            name,
            core: OnceLock::new(),
        }
    }

    /// The signal's name.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// The table, if the signal was used already.
    #[inline]
    pub(crate) fn get(&self) -> Option<&Core<K, E, Rt>> {
        self.core.get()
    }

    /// Writes the signal of type `kind` for `{:?}`: its name.
    pub(crate) fn debug(&self, kind: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(kind)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

// A receiver's panic leaves a signal consistent: no lock is held while receivers run, and every
// edit of the table is complete before the lock is released. Sends may be retried after a
// caught panic.
impl<K, E, Rt> std::panic::RefUnwindSafe for Base<K, E, Rt> {}
impl<K, E, Rt> std::panic::UnwindSafe for Base<K, E, Rt> {}

impl<K, E, Rt> Base<K, E, Rt>
where
    K: Eq + Hash + Clone + Debug + Send + 'static,
    E: Listed + 'static,
    Rt: Routes<K, E> + 'static,
{
    /// Indexes the static receivers of the signal at `signal`, on first use.
    #[cold]
    #[inline(never)]
    fn index(&self, signal: usize) -> &Core<K, E, Rt> {
        self.core.get_or_init(|| {
            let statics = static_records(signal, self.name);
            Core::new(statics.records, statics.problems)
        })
    }
}

impl<S: Indexed> SignalRef for S {
    fn name(&self) -> &'static str {
        self.signal_name()
    }

    fn problems(&self) -> Vec<WiringError> {
        self.core().problems().to_vec()
    }

    fn static_problems(&self) -> Vec<WiringError> {
        static_records::<S::Key, S::Receiver>(address(self), self.signal_name()).problems
    }

    fn listing(&self) -> Listing {
        listing(S::sender_kind(), self.rows())
    }

    fn rows(&self) -> Vec<Row> {
        explain_rows::<S::Key, S::Receiver>(address(self), self.signal_name(), self.core().rows())
    }
}

impl<S: Indexed> Disconnect for S {
    fn disconnect_connection(&self, connection: Connection) -> bool {
        self.core().disconnect(connection)
    }
}

/// A registration turned back into a signal's typed entry.
struct Adopted<K, E> {
    sender: Option<K>,
    entry: E,
}

/// The address that identifies a signal: statics have one address for the whole program.
pub(crate) fn address<T: ?Sized>(signal: &T) -> usize {
    std::ptr::from_ref(signal).cast::<()>().addr()
}

/// Writes a registration's receiver and its sender to `out`, an `Option<Adopted<K, E>>`: how a
/// registration hands its typed receiver to the signal that adopts it, without allocating.
pub(crate) fn adopt<K: 'static, E: 'static>(out: &mut dyn Any, sender: Option<K>, entry: E) {
    *out.downcast_mut::<Option<Adopted<K, E>>>()
        .expect("a registration adopts into the entry type of the signal it names") =
        Some(Adopted { sender, entry });
}

/// The dispatch order among one signal's static receivers: higher priority first, then by
/// module path, source location and name, none of which depends on link order.
fn order(a: &Registration, b: &Registration) -> Ordering {
    /// Receivers of one crate share their module and file strings: compare addresses first.
    fn strs(a: &'static str, b: &'static str) -> Ordering {
        if std::ptr::eq(a, b) {
            Ordering::Equal
        } else {
            a.cmp(b)
        }
    }
    let (a, b) = (&a.meta, &b.meta);
    b.priority
        .cmp(&a.priority)
        .then_with(|| strs(a.module_path.unwrap_or(""), b.module_path.unwrap_or("")))
        .then_with(|| strs(a.location.file(), b.location.file()))
        .then_with(|| {
            (a.location.line(), a.location.column()).cmp(&(b.location.line(), b.location.column()))
        })
        .then_with(|| strs(a.name, b.name))
}

/// Every registration, grouped by the address of its signal and sorted in dispatch order.
/// Hashed with `foldhash`: `std`'s `SipHash` of an address was most of the cost of grouping
/// (140 instructions a registration, against about 45 for the whole grouping now).
type Index = HashMap<usize, Vec<&'static Registration>, foldhash::fast::FixedState>;

/// Every registration, grouped by signal and sorted in dispatch order; built once. In debug
/// builds, building it logs what [`check`] finds at link time (see [`log_link_time_findings`]).
fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    if let Some(index) = INDEX.get() {
        return index;
    }
    let index = build_index(&INDEX);
    if cfg!(debug_assertions) {
        log_link_time_findings();
    }
    index
}

#[cold]
fn build_index(index: &'static OnceLock<Index>) -> &'static Index {
    index.get_or_init(|| {
        let mut index = Index::default();
        for registration in collect::registrations() {
            index
                .entry(address(registration.signal))
                .or_default()
                .push(registration);
        }
        for list in index.values_mut() {
            // Stable: receivers equal in dispatch order keep their link order.
            list.sort_by(|a, b| order(a, b));
        }
        index
    })
}

/// The static receivers of one signal, as table records in dispatch order.
pub(crate) struct StaticRecords<K, E> {
    /// The receivers that run.
    pub(crate) records: Vec<Record<K, E>>,
    /// The receivers left out because an earlier one has their `dispatch_uid` and sender,
    /// with where that one is defined.
    pub(crate) shadowed: Vec<(Record<K, E>, SourceLocation)>,
    /// The duplicate `dispatch_uid`s, as [`check`] reports them.
    pub(crate) problems: Vec<WiringError>,
}

/// The static receivers of the signal at `signal`: see [`StaticRecords`].
pub(crate) fn static_records<K, E>(signal: usize, name: &'static str) -> StaticRecords<K, E>
where
    K: Eq + Hash + Clone + Debug + 'static,
    E: 'static,
{
    let registrations = index().get(&signal).map_or(&[][..], Vec::as_slice);
    let mut records = Vec::with_capacity(registrations.len());
    let mut shadowed = Vec::new();
    let mut problems = Vec::new();
    let mut first_of: HashMap<(&str, Option<K>), &Registration> = HashMap::new();
    for &registration in registrations {
        let mut adopted: Option<Adopted<K, E>> = None;
        registration.adopt(&mut adopted);
        let Adopted { sender, entry } = adopted.expect("adopting writes the entry");
        if let Some(uid) = &registration.meta.dispatch_uid {
            match first_of.entry((uid, sender.clone())) {
                MapEntry::Occupied(first) => {
                    problems.push(WiringError::DuplicateDispatchUid {
                        signal: name,
                        dispatch_uid: uid.to_string(),
                        sender: sender
                            .as_ref()
                            .map_or_else(|| "any".to_owned(), |s| format!("{s:?}")),
                        first: first.get().meta.location,
                        second: registration.meta.location,
                    });
                    let record = Record::new_static(sender, entry);
                    shadowed.push((record, first.get().meta.location));
                    continue;
                }
                MapEntry::Vacant(slot) => slot.insert(registration),
            };
        }
        records.push(Record::new_static(sender, entry));
    }
    StaticRecords {
        records,
        shadowed,
        problems,
    }
}

/// Every signal the program declares with `signal!` or registers a static receiver with,
/// sorted by name, with where it was declared when known.
fn signals() -> Vec<(&'static dyn SignalRef, Option<&'static Declaration>)> {
    let mut signals: HashMap<usize, (&'static dyn SignalRef, Option<&'static Declaration>)> =
        HashMap::new();
    for list in index().values() {
        signals.insert(address(list[0].signal), (signal_ref(list[0].signal), None));
    }
    for declaration in collect::declarations() {
        signals.insert(
            address(declaration.signal),
            (signal_ref(declaration.signal), Some(declaration)),
        );
    }
    let mut signals: Vec<_> = signals.into_values().collect();
    signals.sort_by_key(|(signal, declaration)| {
        (
            signal.name(),
            declaration.map(|d| (d.module_path, d.location)),
        )
    });
    signals
}

/// Every signal of the program, as [`signals`] lists them, with its path: its module path
/// and name when it was declared with `signal!`, its name otherwise.
pub(crate) fn named_signals() -> Vec<(&'static dyn SignalRef, String)> {
    signals()
        .into_iter()
        .map(|(signal, declaration)| {
            let path = declaration.map_or_else(
                || signal.name().to_owned(),
                |declaration| format!("{}::{}", declaration.module_path, signal.name()),
            );
            (signal, path)
        })
        .collect()
}

/// The rows of [`explain`](fn@crate::explain) for the signal at `signal`: its table's `rows`,
/// then its static receivers that are not in the table, disconnected or left out as
/// duplicates.
pub(crate) fn explain_rows<K, E>(signal: usize, name: &'static str, mut rows: Vec<Row>) -> Vec<Row>
where
    K: Eq + Hash + Clone + Debug + Send + Sync + 'static,
    E: Listed + 'static,
{
    let statics = static_records::<K, E>(signal, name);
    for record in statics.records {
        let info = record.entry.info();
        if rows.iter().any(|row| row.receiver.same(info)) {
            continue;
        }
        rows.push(Row::of(&record, RowState::Disconnected));
    }
    for (record, first) in statics.shadowed {
        rows.push(Row::of(&record, RowState::Duplicate { first }));
    }
    rows
}

/// The listing of a signal whose [rows](SignalRef::rows) are `rows`: its live receivers, in
/// dispatch order, then the static receivers shadowed by a duplicate `dispatch_uid`.
pub(crate) fn listing(sender: SenderKind, rows: Vec<Row>) -> Listing {
    let receivers = rows
        .into_iter()
        .filter_map(|row| {
            let shadowed_by = match row.state {
                RowState::Connected { alive: true } => None,
                RowState::Duplicate { first } => Some(first),
                RowState::Connected { alive: false } | RowState::Disconnected => return None,
            };
            Some(ReceiverEntry {
                receiver: row.receiver,
                sender: row.sender.map(|sender| sender.label),
                is_async: row.is_async,
                shadowed_by,
            })
        })
        .collect();
    Listing { sender, receivers }
}

/// Every wiring problem of the program: errors (a `dispatch_uid` used twice for the same
/// signal and sender, with both source locations) and warnings (a signal with no receiver at
/// all, usually a receiver crate the linker left out); see [`WiringError::is_error`]. Indexes
/// every signal, so it is best called once at start-up or in a test of the program's wiring:
///
/// ```
/// assert_eq!(signals::check(), Vec::new());
/// ```
///
/// In debug builds, the first use of any signal logs what this finds at link time (before
/// run-time connects) once, as `tracing` `warn` events named `signals.wiring` on the `signals`
/// target.
#[must_use]
pub fn check() -> Vec<WiringError> {
    let mut problems = Vec::new();
    for (signal, declaration) in signals() {
        problems.extend(signal.problems());
        let listing = signal.listing();
        if listing
            .receivers
            .iter()
            .all(|entry| entry.shadowed_by.is_some())
        {
            problems.push(WiringError::NoReceivers {
                signal: signal.name(),
                declared_at: declaration.map(|d| d.location),
            });
        }
    }
    problems
}

/// Logs, once, what [`check`] finds among the static receivers: the signals without any and
/// the duplicate `dispatch_uid`s. Reads only the registrations, never a signal's table, so it
/// may run while a signal is being set up.
fn log_link_time_findings() {
    static LOGGED: AtomicBool = AtomicBool::new(false);
    if LOGGED.swap(true, AtomicOrdering::AcqRel) {
        return;
    }
    let index = index();
    for (signal, declaration) in signals() {
        let mut problems = signal.static_problems();
        if !index.contains_key(&address(signal)) {
            problems.push(WiringError::NoReceivers {
                signal: signal.name(),
                declared_at: declaration.map(|d| d.location),
            });
        }
        for problem in problems {
            tracing::warn!(name: "signals.wiring", target: "signals", "{problem}");
        }
    }
}

/// What a signal's receivers are told about its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SenderKind {
    /// The sender is a value of the named type.
    Value(&'static str),
    /// The sender is a type.
    Type,
}

/// A signal's sender kind and receivers, as the signal lists them.
#[derive(Debug, Clone)]
pub(crate) struct Listing {
    pub(crate) sender: SenderKind,
    pub(crate) receivers: Vec<ReceiverEntry>,
}

/// One receiver of a signal in the [`registry`]: who it is and which sender it listens to.
#[derive(Debug, Clone)]
pub struct ReceiverEntry {
    receiver: ReceiverInfo,
    sender: Option<String>,
    is_async: bool,
    shadowed_by: Option<SourceLocation>,
}

impl ReceiverEntry {
    /// An entry for the graph renderers' tests.
    #[cfg(test)]
    pub(crate) fn new(
        receiver: ReceiverInfo,
        sender: Option<String>,
        is_async: bool,
        shadowed_by: Option<SourceLocation>,
    ) -> Self {
        Self {
            receiver,
            sender,
            is_async,
            shadowed_by,
        }
    }

    /// Where the receiver that runs instead of this one is defined, when this is a static
    /// receiver whose `dispatch_uid` and sender an earlier one has: it never runs.
    #[must_use]
    pub fn shadowed_by(&self) -> Option<SourceLocation> {
        self.shadowed_by
    }

    /// Whether the receiver is `async` (it can only be on an async signal).
    #[must_use]
    pub fn is_async(&self) -> bool {
        self.is_async
    }

    /// The receiver's identity: name, module path, location, `dispatch_uid`, priority, kind.
    #[must_use]
    pub fn receiver(&self) -> &ReceiverInfo {
        &self.receiver
    }

    /// The sender it listens to, `Debug`-formatted (a type's name for type senders), or
    /// `None` for any sender.
    #[must_use]
    pub fn sender(&self) -> Option<&str> {
        self.sender.as_deref()
    }
}

/// One signal in the [`registry`], with its receivers in dispatch order.
#[derive(Debug, Clone)]
pub struct SignalEntry {
    name: &'static str,
    module_path: Option<&'static str>,
    location: Option<SourceLocation>,
    sender: SenderKind,
    receivers: Vec<ReceiverEntry>,
}

impl SignalEntry {
    pub(crate) fn new(
        name: &'static str,
        sender: SenderKind,
        receivers: Vec<ReceiverEntry>,
    ) -> Self {
        Self {
            name,
            module_path: None,
            location: None,
            sender,
            receivers,
        }
    }

    /// The signal's name.
    #[must_use]
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The module that declares it, when it was declared with `signal!`.
    #[must_use]
    pub fn module_path(&self) -> Option<&'static str> {
        self.module_path
    }

    /// Where it is declared, when it was declared with `signal!`.
    #[must_use]
    pub fn location(&self) -> Option<SourceLocation> {
        self.location
    }

    /// What its receivers are told about the sender.
    #[must_use]
    pub fn sender(&self) -> SenderKind {
        self.sender
    }

    /// Its live receivers, static and runtime, for every sender, in dispatch order, then the
    /// static receivers that never run because an earlier one has their `dispatch_uid` and
    /// sender ([`ReceiverEntry::shadowed_by`]).
    #[must_use]
    pub fn receivers(&self) -> &[ReceiverEntry] {
        &self.receivers
    }
}

/// The program's wiring: every signal and its receivers, from [`registry`].
#[derive(Debug, Clone)]
pub struct Registry {
    pub(crate) signals: Vec<SignalEntry>,
}

impl Registry {
    /// The signals, sorted by name.
    #[must_use]
    pub fn signals(&self) -> &[SignalEntry] {
        &self.signals
    }

    /// The signal named `name`, if the program has one.
    #[must_use]
    pub fn signal(&self, name: &str) -> Option<&SignalEntry> {
        self.signals.iter().find(|signal| signal.name == name)
    }
}

/// Lists every signal of the program and its receivers: the signals declared with `signal!`
/// or having a static receiver, each with its static and runtime receivers (name, module path,
/// location, sender, `dispatch_uid`, priority, kind, sync or async) in dispatch order. Render it with
/// [`Registry::to_mermaid`] or [`Registry::to_dot`].
///
/// A signal created at run time (a `Signal::new` outside a `static`) is not listed.
#[must_use]
pub fn registry() -> Registry {
    let signals = signals()
        .into_iter()
        .map(|(signal, declaration)| {
            let Listing { sender, receivers } = signal.listing();
            SignalEntry {
                module_path: declaration.map(|d| d.module_path),
                location: declaration.map(|d| d.location),
                ..SignalEntry::new(signal.name(), sender, receivers)
            }
        })
        .collect();
    Registry { signals }
}
