//! Static receivers: the [`Registration`] that `#[receiver]` emits for each receiver, the
//! link-time collection of every registration in the program, and the per-signal index built
//! from it the first time a signal is used.
//!
//! A registration is `const` data: the signal it belongs to (by address), the receiver's
//! metadata, its sender, and its call as a `fn` pointer, erased behind `dyn Any` together with
//! a monomorphised `adopt` function that turns it back into the signal's typed entry. Erasure
//! is undone once, when the signal is first indexed, never on the send path.

mod collect;

use std::any::Any;
use std::cmp::Reverse;
use std::collections::HashMap;
use std::collections::hash_map::Entry as MapEntry;
use std::fmt::{self, Debug};
use std::hash::Hash;
use std::sync::OnceLock;

use crate::error::WiringError;
use crate::receiver::{Call, Entry, ReceiverInfo, ReceiverMeta, StaticFn};
use crate::signal::{Signal, Signature, ValueShape};
use crate::table::{Identity, Record};
use crate::type_signal::{
    AnyTypeShape, SentBy, TypeEntry, TypeSender, TypeSignal, TypeSignature, TypedShape,
};

#[cfg(feature = "linkme")]
pub use collect::REGISTRATIONS;
pub use collect::all as registrations;

/// What the registry needs of a signal, whatever its types.
pub(crate) trait SignalRef: Sync {
    fn name(&self) -> &'static str;
    /// Indexes the signal if it was not yet, and returns the problems found.
    fn problems(&self) -> Vec<WiringError>;
}

/// A sender value held by a static registration.
pub(crate) trait SenderValue: Any + Debug + Send + Sync {
    fn as_any(&self) -> &dyn Any;
}

impl<T: Any + Debug + Send + Sync> SenderValue for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The sender a static receiver is connected to.
enum StaticSender {
    Any,
    Value(&'static dyn SenderValue),
    Type(fn() -> TypeSender),
}

/// One static receiver, as `#[receiver]` registers it. Built only by its `const`
/// constructors, which tie the call's type to the signal's.
pub struct Registration {
    signal: &'static dyn SignalRef,
    meta: ReceiverMeta,
    sender: StaticSender,
    call: &'static (dyn Any + Send + Sync),
    adopt: fn(&'static Registration) -> Box<dyn Any>,
}

/// A registration turned back into a signal's typed entry.
pub(crate) struct Adopted<K, E> {
    pub(crate) sender: Option<K>,
    pub(crate) entry: E,
}

impl Registration {
    /// A receiver of the value-sender signal `signal`, for `sender` (`None`: any sender).
    #[must_use]
    pub const fn value<F: Signature>(
        signal: &'static Signal<F>,
        sender: Option<&'static F::Sender>,
        call: &'static StaticFn<ValueShape<F>>,
        meta: ReceiverMeta,
    ) -> Self {
        Self {
            signal,
            meta,
            sender: match sender {
                Some(sender) => StaticSender::Value(sender),
                None => StaticSender::Any,
            },
            call,
            adopt: adopt_value::<F>,
        }
    }

    /// A receiver of the type-sender signal `signal` for the sender type `M`.
    #[must_use]
    pub const fn typed<F: SentBy<M>, M: 'static>(
        signal: &'static TypeSignal<F>,
        call: &'static StaticFn<TypedShape<F, M>>,
        meta: ReceiverMeta,
    ) -> Self {
        Self {
            signal,
            meta,
            sender: StaticSender::Type(TypeSender::of::<M>),
            call,
            adopt: adopt_typed::<F, M>,
        }
    }

    /// An any-sender receiver of the type-sender signal `signal`.
    #[must_use]
    pub const fn any_type<F: TypeSignature>(
        signal: &'static TypeSignal<F>,
        call: &'static StaticFn<AnyTypeShape<F>>,
        meta: ReceiverMeta,
    ) -> Self {
        Self {
            signal,
            meta,
            sender: StaticSender::Any,
            call,
            adopt: adopt_any_type::<F>,
        }
    }

    /// The name of the signal this receiver is connected to.
    #[must_use]
    pub fn signal_name(&self) -> &'static str {
        self.signal.name()
    }

    /// The receiver's identity.
    #[must_use]
    pub fn receiver(&'static self) -> ReceiverInfo {
        ReceiverInfo::from_static(&self.meta)
    }

    /// The sender, `Debug`-formatted (a type's name for type senders), or `None` for any.
    #[must_use]
    pub fn sender(&self) -> Option<String> {
        match self.sender {
            StaticSender::Any => None,
            StaticSender::Value(value) => Some(format!("{value:?}")),
            StaticSender::Type(of) => Some(of().name().to_owned()),
        }
    }

    /// The dispatch order among one signal's static receivers: higher priority first, then by
    /// module path, file, line and column, which do not depend on link order.
    fn order_key(&self) -> impl Ord + '_ {
        let meta = &self.meta;
        (
            Reverse(meta.priority),
            meta.module_path,
            meta.location,
            meta.name,
        )
    }

    fn call<T: Copy + 'static>(&self) -> T {
        *self
            .call
            .downcast_ref::<T>()
            .expect("a registration's call has the type its constructor gave it")
    }

    fn entry<Sh: crate::receiver::Shape>(&'static self, call: StaticFn<Sh>) -> Entry<Sh> {
        Entry {
            info: ReceiverInfo::from_static(&self.meta),
            call: Call::Static(call),
        }
    }
}

impl Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("signal", &self.signal.name())
            .field("receiver", &self.meta)
            .field("sender", &self.sender())
            .finish_non_exhaustive()
    }
}

fn adopt_value<F: Signature>(registration: &'static Registration) -> Box<dyn Any> {
    let sender = match registration.sender {
        StaticSender::Value(value) => value.as_any().downcast_ref::<F::Sender>().cloned(),
        StaticSender::Any | StaticSender::Type(_) => None,
    };
    let entry = registration.entry::<ValueShape<F>>(registration.call());
    Box::new(Adopted { sender, entry })
}

fn adopt_typed<F: SentBy<M>, M: 'static>(registration: &'static Registration) -> Box<dyn Any> {
    let entry = registration.entry::<TypedShape<F, M>>(registration.call());
    Box::new(Adopted {
        sender: Some(TypeSender::of::<M>()),
        entry: TypeEntry::typed(entry),
    })
}

fn adopt_any_type<F: TypeSignature>(registration: &'static Registration) -> Box<dyn Any> {
    let entry = registration.entry::<AnyTypeShape<F>>(registration.call());
    Box::new(Adopted::<TypeSender, _> {
        sender: None,
        entry: TypeEntry::<F>::Any(entry),
    })
}

/// The address that identifies a signal: statics have one address for the whole program.
pub(crate) fn address<T: ?Sized>(signal: &T) -> usize {
    std::ptr::from_ref(signal).cast::<()>().addr()
}

/// Every registration, grouped by signal and sorted in dispatch order; built once.
fn index() -> &'static HashMap<usize, Vec<&'static Registration>> {
    static INDEX: OnceLock<HashMap<usize, Vec<&'static Registration>>> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut index: HashMap<usize, Vec<&'static Registration>> = HashMap::new();
        for registration in registrations() {
            index
                .entry(address(registration.signal))
                .or_default()
                .push(registration);
        }
        for list in index.values_mut() {
            list.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
        }
        index
    })
}

/// The static receivers of the signal at `signal`, as table records in dispatch order, and the
/// duplicate `dispatch_uid`s found (only the first of each runs).
pub(crate) fn static_records<K, E>(
    signal: usize,
    name: &'static str,
) -> (Vec<Record<K, E>>, Vec<WiringError>)
where
    K: Eq + Hash + Clone + Debug + 'static,
    E: 'static,
{
    let registrations = index().get(&signal).map_or(&[][..], Vec::as_slice);
    let mut records = Vec::with_capacity(registrations.len());
    let mut problems = Vec::new();
    let mut first_of: HashMap<(&str, Option<K>), &Registration> = HashMap::new();
    for &registration in registrations {
        let Adopted { sender, entry } = *(registration.adopt)(registration)
            .downcast::<Adopted<K, E>>()
            .expect("a registration adopts into the entry type of the signal it names");
        let identity = match &registration.meta.dispatch_uid {
            Some(uid) => {
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
                        continue;
                    }
                    MapEntry::Vacant(slot) => slot.insert(registration),
                };
                Identity::Uid(uid.clone())
            }
            None => Identity::Unique,
        };
        records.push(Record::new(sender, identity, entry));
    }
    (records, problems)
}

/// Every wiring problem of the program's static receivers: today, a `dispatch_uid` used twice
/// for the same signal and sender, reported with both source locations. Indexes every signal
/// that has static receivers, so it is best called once at start-up or in a test:
///
/// ```
/// assert_eq!(signals_core::check(), Vec::new());
/// ```
#[must_use]
pub fn check() -> Vec<WiringError> {
    let mut signals: Vec<&'static dyn SignalRef> =
        index().values().map(|list| list[0].signal).collect();
    signals.sort_by_key(|signal| signal.name());
    signals
        .iter()
        .flat_map(|signal| signal.problems())
        .collect()
}
