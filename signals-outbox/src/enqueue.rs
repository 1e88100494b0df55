//! Writing a durable message: [`Enqueue::enqueue`] in the caller's transaction, with the
//! shard, the object and the destinations it is for.

use rusqlite::{Connection, Savepoint, Transaction};
use serde::Serialize;
use signals_core::DurableSignal;

use crate::message::{Delivery, DurableSignature, MessageId, Shard};
use crate::{OutboxError, store};

/// Where `enqueue` writes: a shared reference to an SQLite transaction (anything
/// [`InTransaction`]), or, with the `postgres` feature, `&mut sqlx::Transaction<'_, Postgres>`.
/// Either way the message is written in the caller's transaction, and exists if and when it
/// commits. Sealed: [`InTransaction`] is the trait to implement for a transaction type of
/// your own.
pub trait Target: sealed::Sealed {}

impl<X: InTransaction + ?Sized> Target for &X {}
impl<X: InTransaction + ?Sized> sealed::Sealed for &X {}

pub(crate) mod sealed {
    pub trait Sealed {}
}

/// Where a durable message may be written on SQLite: a connection with a transaction open on
/// it, so that the message commits with the change it describes, or not at all.
///
/// Implemented for rusqlite's [`Transaction`] and [`Savepoint`], and for a [`Delivery`]: a
/// receiver that enqueues a follow-up message in its delivery's transaction (a fan-out, a
/// re-emit) removes the message it was given and writes the new one in one commit. Implement
/// it for your own transaction type; [`Pending::write`] checks that a transaction is open.
pub trait InTransaction {
    /// The connection the transaction is open on.
    fn connection(&self) -> &Connection;
}

impl InTransaction for Transaction<'_> {
    fn connection(&self) -> &Connection {
        self
    }
}

impl InTransaction for Savepoint<'_> {
    fn connection(&self) -> &Connection {
        self
    }
}

impl InTransaction for Delivery<'_> {
    fn connection(&self) -> &Connection {
        self.transaction()
    }
}

/// Stores a durable signal's sends: `enqueue` is what a durable signal has instead of `send`.
///
/// ```
/// # use signals::outbox::Enqueue;
/// # fn demo(tx: &rusqlite::Transaction<'_>) -> Result<(), signals::outbox::OutboxError> {
/// # #[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
/// # pub enum Category { MemberUpdate }
/// # #[derive(serde::Serialize, serde::Deserialize)] pub enum Scope { Organization }
/// # #[derive(serde::Serialize, serde::Deserialize)]
/// # pub struct MemberJoined { pub member_id: u64, pub org_id: i64 }
/// # signals::signal! { pub static member_joined: durable Signal<MemberJoined, sender = Category>; }
/// let args = MemberJoined { member_id: 7, org_id: 10 };
/// member_joined
///     .enqueue(tx, &Category::MemberUpdate, &args)
///     .shard(Scope::Organization, 10)
///     .object(7)
///     .write()?;
/// # Ok(()) }
/// ```
pub trait Enqueue {
    /// The signal's declaration.
    type Signature: DurableSignature;

    /// A message for the receivers of `sender`, with `args`, written by
    /// [`Pending::write`] in `tx`: it exists if and when `tx` commits.
    fn enqueue<T: Target>(
        &'static self,
        tx: T,
        sender: &<Self::Signature as signals_core::Signature>::Sender,
        args: &<Self::Signature as DurableSignature>::Payload,
    ) -> Pending<T>;
}

impl<F: DurableSignature> Enqueue for DurableSignal<F> {
    type Signature = F;

    fn enqueue<T: Target>(
        &'static self,
        tx: T,
        sender: &F::Sender,
        args: &F::Payload,
    ) -> Pending<T> {
        let signal = self.name();
        Pending {
            tx,
            signal,
            category: json(signal, "sender", sender),
            payload: json(signal, "arguments", args),
            scope: Ok(signal.to_owned()),
            shard: 0,
            object: None,
            destinations: vec![String::new()],
        }
    }
}

/// A message about to be written: say its shard, object and destinations, then
/// [`write`](Self::write) it.
#[must_use = "a message is written only by `write()`"]
#[derive(Debug)]
pub struct Pending<T> {
    tx: T,
    signal: &'static str,
    category: Result<String, OutboxError>,
    payload: Result<String, OutboxError>,
    scope: Result<String, OutboxError>,
    shard: i64,
    object: Option<i64>,
    destinations: Vec<String>,
}

impl<T> Pending<T> {
    /// The shard the message is delivered in order within: `scope` (an enum value such as
    /// `Scope::Organization`, a string or a number) and the id in it. Without it, all the
    /// signal's messages are one shard.
    pub fn shard(mut self, scope: impl Serialize, id: i64) -> Self {
        self.scope = key(self.signal, "shard scope", &scope);
        self.shard = id;
        self
    }

    /// The object the message is about: messages of one shard and sender about the same object
    /// are coalesced, and delivered once with the newest arguments. Without it, the message is
    /// never coalesced.
    pub fn object(mut self, id: i64) -> Self {
        self.object = Some(id);
        self
    }

    /// One message per destination (a region or cell name), each its own shard: Sentry's
    /// control → region fan-out; none for no destinations. Without it, one message with no
    /// destination.
    pub fn to<I, D>(mut self, destinations: I) -> Self
    where
        I: IntoIterator<Item = D>,
        D: Into<String>,
    {
        self.destinations = destinations.into_iter().map(Into::into).collect();
        self
    }

    /// The message's stored parts: its sender, arguments and shard scope as stored, and its
    /// destinations (`""` alone unless [`to`](Self::to) named them).
    pub(crate) fn parts(self) -> Result<(T, Parts), OutboxError> {
        let parts = Parts {
            signal: self.signal,
            category: self.category?,
            payload: self.payload?,
            scope: self.scope?,
            shard: self.shard,
            object: self.object,
            destinations: self.destinations,
        };
        Ok((self.tx, parts))
    }
}

/// A message as stored, one row per destination.
#[derive(Debug)]
pub(crate) struct Parts {
    pub(crate) signal: &'static str,
    pub(crate) category: String,
    pub(crate) payload: String,
    pub(crate) scope: String,
    pub(crate) shard: i64,
    pub(crate) object: Option<i64>,
    pub(crate) destinations: Vec<String>,
}

impl Parts {
    /// The shard of each destination.
    pub(crate) fn shards(&self) -> impl Iterator<Item = Shard> + '_ {
        self.destinations.iter().map(|destination| Shard {
            signal: self.signal.to_owned(),
            destination: destination.clone(),
            scope: self.scope.clone(),
            id: self.shard,
        })
    }
}

impl<X: InTransaction + ?Sized> Pending<&X> {
    /// Writes the message (one per destination) in the transaction.
    ///
    /// # Errors
    ///
    /// [`OutboxError::NoTransaction`] if no transaction is open on the connection,
    /// [`OutboxError::Serialize`] if the sender, the arguments or the scope cannot be stored
    /// as JSON, or [`OutboxError::Database`]; nothing is written then.
    pub fn write(self) -> Result<Enqueued, OutboxError> {
        let (tx, parts) = self.parts()?;
        let conn = tx.connection();
        if conn.is_autocommit() {
            return Err(OutboxError::NoTransaction {
                signal: parts.signal,
            });
        }
        let mut messages = Vec::with_capacity(parts.destinations.len());
        for shard in parts.shards() {
            let id = store::insert(conn, &shard, &parts.category, parts.object, &parts.payload)?;
            messages.push((id, shard));
        }
        Ok(Enqueued { messages })
    }
}

/// The messages one [`Pending::write`] wrote: one per destination. Pass it to
/// [`Worker::flush`](crate::Worker::flush) after commit to deliver them at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    pub(crate) messages: Vec<(MessageId, Shard)>,
}

impl Enqueued {
    /// The messages' ids, one per destination.
    #[must_use]
    pub fn ids(&self) -> impl ExactSizeIterator<Item = MessageId> + '_ {
        self.messages.iter().map(|(id, _)| *id)
    }

    /// Each message with its shard.
    #[must_use]
    pub fn messages(&self) -> &[(MessageId, Shard)] {
        &self.messages
    }
}

/// A value as stored: JSON.
pub(crate) fn json(
    signal: &'static str,
    what: &'static str,
    value: &impl Serialize,
) -> Result<String, OutboxError> {
    serde_json::to_string(value).map_err(unstorable(signal, what))
}

/// A key as stored: a string without its JSON quotes, anything else as JSON.
pub(crate) fn key(
    signal: &'static str,
    what: &'static str,
    value: &impl Serialize,
) -> Result<String, OutboxError> {
    Ok(
        match serde_json::to_value(value).map_err(unstorable(signal, what))? {
            serde_json::Value::String(text) => text,
            other => other.to_string(),
        },
    )
}

/// The error of a `what` of a `signal` message that cannot be stored.
fn unstorable(
    signal: &'static str,
    what: &'static str,
) -> impl FnOnce(serde_json::Error) -> OutboxError {
    move |source| OutboxError::Serialize {
        signal,
        what,
        source,
    }
}
