//! The dispatch lists a snapshot of a signal's table is built into, one per sender that has
//! receivers of its own and one for the rest: [`ValueRoutes`] for value signals, and
//! [`TypeRoutes`] for type signals, whose lists are typed by sender type with the type erased
//! until a send names it.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

use crate::error::BoxError;
use crate::info::ReceiverInfo;
use crate::raw::Receiver;
use crate::receiver::{Identity, Info, Keyed, Started, Step, TypeSender};
use crate::signature::{AnyTypeShape, SentBy, Signature, TypeSignature, TypedShape, ValueShape};
use crate::table::{Record, Routes};

pub(crate) type ValueReceiver<F> = Receiver<ValueShape<F>>;

/// The dispatch lists of one snapshot: one for sends without a sender (the any-sender
/// receivers) and one per sender that has receivers of its own (those and the any-sender ones,
/// interleaved in dispatch order). A sender with no receivers of its own uses the first. Lists
/// are shared between snapshots, so that an edit copies only the lists it changes.
pub(crate) struct ValueRoutes<F: Signature> {
    any: Arc<[ValueReceiver<F>]>,
    by_sender: HashMap<F::Sender, Arc<[ValueReceiver<F>]>, foldhash::fast::RandomState>,
}

impl<F: Signature> ValueRoutes<F> {
    #[inline]
    pub(crate) fn route(&self, sender: Option<&F::Sender>) -> &[ValueReceiver<F>] {
        match sender {
            Some(sender) if !self.by_sender.is_empty() => {
                self.by_sender.get(sender).unwrap_or(&self.any)
            }
            _ => &self.any,
        }
    }
}

impl<F: Signature> Routes<F::Sender, ValueReceiver<F>> for ValueRoutes<F> {
    fn build<'r>(
        records: impl Iterator<Item = &'r Record<F::Sender, ValueReceiver<F>>> + Clone,
    ) -> Self {
        // Each list is gathered as references, then cloned once, straight into its shared
        // slice: a list of a start-up table's thousands of receivers is neither grown nor
        // copied from a `Vec` into the `Arc`. The first pass counts, so that every list is
        // allocated at its final length.
        let mut any_count = 0;
        let mut own_counts: HashMap<&F::Sender, usize, foldhash::fast::RandomState> =
            HashMap::default();
        for record in records.clone() {
            match &record.sender {
                None => any_count += 1,
                Some(sender) => *own_counts.entry(sender).or_default() += 1,
            }
        }
        let mut any = Vec::with_capacity(any_count);
        let mut by_sender: HashMap<
            &F::Sender,
            Vec<&ValueReceiver<F>>,
            foldhash::fast::RandomState,
        > = own_counts
            .into_iter()
            .map(|(sender, own)| (sender, Vec::with_capacity(own + any_count)))
            .collect();
        for record in records {
            match &record.sender {
                None => {
                    for list in by_sender.values_mut() {
                        list.push(&record.entry);
                    }
                    any.push(&record.entry);
                }
                Some(sender) => {
                    if let Some(list) = by_sender.get_mut(sender) {
                        list.push(&record.entry);
                    }
                }
            }
        }
        let shared = |list: &[&ValueReceiver<F>]| -> Arc<[ValueReceiver<F>]> {
            list.iter().map(|&entry| entry.clone()).collect()
        };
        Self {
            any: shared(&any),
            by_sender: by_sender
                .into_iter()
                .map(|(sender, list)| (sender.clone(), shared(&list)))
                .collect(),
        }
    }

    fn listeners(&self, sender: Option<&F::Sender>, each: &mut dyn FnMut(&ReceiverInfo, bool)) {
        for entry in self.route(sender) {
            each(&entry.info, entry.alive());
        }
    }

    fn live_receivers(&self, sender: Option<&F::Sender>) -> Vec<ReceiverInfo> {
        let route = self.route(sender);
        let mut live = Vec::with_capacity(route.len());
        live.extend(
            route
                .iter()
                .filter(|entry| entry.alive())
                .map(|entry| entry.info.clone()),
        );
        live
    }
}

/// A receiver of a type-sender signal as the table holds it: the sender type is erased from
/// typed receivers until a snapshot groups them by type.
pub(crate) enum TypeReceiver<F: TypeSignature> {
    Any(Receiver<AnyTypeShape<F>>),
    Typed(Arc<dyn ErasedTyped<F>>),
}

impl<F: TypeSignature> TypeReceiver<F> {
    pub(crate) fn typed<M: 'static>(entry: Receiver<TypedShape<F, M>>) -> Self
    where
        F: SentBy<M>,
    {
        Self::Typed(Arc::new(entry))
    }
}

impl<F: TypeSignature> Clone for TypeReceiver<F> {
    fn clone(&self) -> Self {
        match self {
            Self::Any(entry) => Self::Any(entry.clone()),
            Self::Typed(entry) => Self::Typed(Arc::clone(entry)),
        }
    }
}

impl<F: TypeSignature> Info for TypeReceiver<F> {
    fn info(&self) -> &ReceiverInfo {
        match self {
            Self::Any(entry) => &entry.info,
            Self::Typed(entry) => entry.info(),
        }
    }

    fn alive(&self) -> bool {
        match self {
            Self::Any(entry) => entry.alive(),
            Self::Typed(entry) => entry.alive(),
        }
    }

    fn is_async(&self) -> bool {
        match self {
            Self::Any(entry) => entry.is_async(),
            Self::Typed(entry) => entry.is_async(),
        }
    }
}

impl<F: TypeSignature> Keyed for TypeReceiver<F> {
    fn identity(&self) -> Identity<'_> {
        match self {
            Self::Any(entry) => entry.identity(),
            Self::Typed(entry) => entry.identity(),
        }
    }
}

/// A receiver for one sender type, with that type erased.
pub(crate) trait ErasedTyped<F: TypeSignature>: Info + Keyed + Send + Sync {
    fn as_any(&self) -> &dyn Any;
    /// Builds the dispatch list of this receiver's sender type from `entries`, which hold the
    /// any-sender receivers and the receivers of this type, in dispatch order.
    fn build_list(&self, entries: &[&TypeReceiver<F>]) -> Box<dyn ErasedList>;
}

impl<F: SentBy<M>, M: 'static> ErasedTyped<F> for Receiver<TypedShape<F, M>> {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn build_list(&self, entries: &[&TypeReceiver<F>]) -> Box<dyn ErasedList> {
        let steps = entries
            .iter()
            .filter_map(|entry| match entry {
                TypeReceiver::Any(entry) => Some(TypedStep::Any(entry.clone())),
                TypeReceiver::Typed(entry) => entry
                    .as_any()
                    .downcast_ref::<Self>()
                    .map(|entry| TypedStep::Typed(entry.clone())),
            })
            .collect();
        Box::new(TypedList::<F, M>(steps))
    }
}

/// One element of a sender type's dispatch list.
pub(crate) enum TypedStep<F: SentBy<M>, M: 'static> {
    Typed(Receiver<TypedShape<F, M>>),
    Any(Receiver<AnyTypeShape<F>>),
}

/// The dispatch list of sender type `M`.
pub(crate) struct TypedList<F: SentBy<M>, M: 'static>(pub(crate) Box<[TypedStep<F, M>]>);

/// A sender type's dispatch list, with the type erased, for introspection.
pub(crate) trait ErasedList: Send + Sync {
    fn as_any(&self) -> &dyn Any;
    fn listeners(&self, each: &mut dyn FnMut(&ReceiverInfo, bool));
    /// How many receivers `listeners` reports.
    fn len(&self) -> usize;
}

impl<F: SentBy<M>, M: 'static> ErasedList for TypedList<F, M> {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn listeners(&self, each: &mut dyn FnMut(&ReceiverInfo, bool)) {
        for step in &self.0 {
            each(step.info(), step.alive());
        }
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

/// What a send for sender type `M` runs its list against: the arguments, and their any-sender
/// view, made once per send.
pub(crate) struct TypedCx<'r, 'a, F: SentBy<M>, M: 'static> {
    sender: TypeSender,
    args: &'r <F as SentBy<M>>::Args<'a>,
    any: F::AnyArgs<'r>,
}

impl<F: SentBy<M>, M: 'static> Info for TypedStep<F, M> {
    #[inline]
    fn info(&self) -> &ReceiverInfo {
        match self {
            Self::Typed(entry) => &entry.info,
            Self::Any(entry) => &entry.info,
        }
    }

    fn is_async(&self) -> bool {
        match self {
            Self::Typed(entry) => entry.is_async(),
            Self::Any(entry) => entry.is_async(),
        }
    }

    fn alive(&self) -> bool {
        match self {
            Self::Typed(entry) => entry.alive(),
            Self::Any(entry) => entry.alive(),
        }
    }
}

impl<'r, 'a, F: SentBy<M>, M: 'static> Step<TypedCx<'r, 'a, F, M>> for TypedStep<F, M> {
    type Output = F::Output;

    #[inline]
    fn run(&self, cx: &TypedCx<'r, 'a, F, M>) -> Option<Result<F::Output, BoxError>> {
        match self {
            Self::Typed(entry) => entry.invoke(cx.sender, cx.args),
            Self::Any(entry) => entry.invoke(cx.sender, &cx.any),
        }
    }

    fn start<'c>(&'c self, cx: &'c TypedCx<'r, 'a, F, M>) -> Started<'c, F::Output> {
        match self {
            Self::Typed(entry) => entry.start(cx.sender, cx.args),
            Self::Any(entry) => entry.start(cx.sender, &cx.any),
        }
    }
}

/// The dispatch lists of one snapshot: the any-sender receivers, and one list per sender type
/// that has receivers of its own.
pub(crate) struct TypeRoutes<F: TypeSignature> {
    pub(crate) any: Box<[Receiver<AnyTypeShape<F>>]>,
    by_type: HashMap<TypeSender, Box<dyn ErasedList>>,
}

impl<F: TypeSignature> Routes<TypeSender, TypeReceiver<F>> for TypeRoutes<F> {
    fn build<'r>(
        records: impl Iterator<Item = &'r Record<TypeSender, TypeReceiver<F>>> + Clone,
    ) -> Self {
        let mut any = Vec::new();
        let mut first_of_type: Vec<(TypeSender, &Arc<dyn ErasedTyped<F>>)> = Vec::new();
        for record in records.clone() {
            match (&record.entry, record.sender) {
                (TypeReceiver::Any(entry), _) => any.push(entry.clone()),
                (TypeReceiver::Typed(entry), Some(sender)) => {
                    if !first_of_type.iter().any(|(seen, _)| *seen == sender) {
                        first_of_type.push((sender, entry));
                    }
                }
                (TypeReceiver::Typed(_), None) => {}
            }
        }
        let by_type = first_of_type
            .into_iter()
            .map(|(sender, builder)| {
                let entries: Vec<&TypeReceiver<F>> = records
                    .clone()
                    .filter(|record| record.sender.is_none() || record.sender == Some(sender))
                    .map(|record| &record.entry)
                    .collect();
                (sender, builder.build_list(&entries))
            })
            .collect();
        Self {
            any: any.into(),
            by_type,
        }
    }
    fn listeners(&self, sender: Option<&TypeSender>, each: &mut dyn FnMut(&ReceiverInfo, bool)) {
        match sender.and_then(|sender| self.by_type.get(sender)) {
            Some(list) => list.listeners(each),
            None => {
                for entry in &self.any {
                    each(&entry.info, entry.alive());
                }
            }
        }
    }

    fn live_receivers(&self, sender: Option<&TypeSender>) -> Vec<ReceiverInfo> {
        let list = sender.and_then(|sender| self.by_type.get(sender));
        let mut live = Vec::with_capacity(list.map_or(self.any.len(), |list| list.len()));
        self.listeners(sender, &mut |info, alive| {
            if alive {
                live.push(info.clone());
            }
        });
        live
    }
}

#[inline]
pub(crate) fn typed_list<F: SentBy<M>, M: 'static>(
    routes: &TypeRoutes<F>,
    sender: TypeSender,
) -> Option<&TypedList<F, M>> {
    if routes.by_type.is_empty() {
        return None;
    }
    routes.by_type.get(&sender)?.as_any().downcast_ref()
}

pub(crate) fn typed_cx<'r, 'a, F: SentBy<M>, M: 'static>(
    sender: TypeSender,
    args: &'r <F as SentBy<M>>::Args<'a>,
) -> TypedCx<'r, 'a, F, M> {
    TypedCx {
        sender,
        args,
        any: F::any_args(args),
    }
}

/// The context of a send whose type has no receivers of its own: only any-sender ones run.
/// The returned context borrows the view for the duration of the send.
pub(crate) fn any_cx<'r, F: SentBy<M>, M: 'static>(
    sender: TypeSender,
    args: &'r <F as SentBy<M>>::Args<'_>,
) -> AnyCx<'r, F> {
    AnyCx {
        sender,
        any: F::any_args(args),
    }
}

/// A send's context for the any-sender list: the view, owned by the send.
pub(crate) struct AnyCx<'r, F: TypeSignature> {
    sender: TypeSender,
    any: F::AnyArgs<'r>,
}

impl<'r, F: TypeSignature> Step<AnyCx<'r, F>> for Receiver<AnyTypeShape<F>> {
    type Output = F::Output;

    #[inline]
    fn run(&self, cx: &AnyCx<'r, F>) -> Option<Result<F::Output, BoxError>> {
        self.invoke(cx.sender, &cx.any)
    }

    fn start<'c>(&'c self, cx: &'c AnyCx<'r, F>) -> Started<'c, F::Output> {
        Receiver::start(self, cx.sender, &cx.any)
    }
}
