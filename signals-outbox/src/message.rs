//! What a durable signal stores and what its receivers get: [`DurableSignature`],
//! [`Delivered`] and [`Delivery`].

use std::any::{Any, TypeId, type_name};
use std::collections::HashMap;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use rusqlite::Connection;
use serde::Serialize;
use serde::de::DeserializeOwned;
use signals_core::Signature;

use crate::OutboxError;

/// A message's id: stable for its whole life (ids are never reused), so that a receiver with
/// an external effect can use it as an idempotency key.
pub type MessageId = i64;

/// The declaration of a durable signal: a [`Signature`] whose arguments are stored, as JSON,
/// and handed back to receivers with their [`Delivery`]. `signal!` writes it for
/// `durable Signal<Payload, sender = Category>`.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use signals::outbox::{Delivered, Delivery, DurableSignature};
/// use signals::{DurableSignal, Signature};
///
/// #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
/// pub enum Category { MemberUpdate }
///
/// #[derive(Serialize, Deserialize)]
/// pub struct MemberJoined { pub member_id: u64 }
///
/// pub enum MemberJoinedSignal {}
/// impl Signature for MemberJoinedSignal {
///     type Args<'a> = Delivered<'a, MemberJoined>;
///     type Sender = Category;
///     type Output = ();
/// }
/// impl DurableSignature for MemberJoinedSignal {
///     type Payload = MemberJoined;
///     fn delivered<'a>(payload: &'a MemberJoined, delivery: &'a Delivery<'a>) -> Delivered<'a, MemberJoined> {
///         Delivered::new(payload, delivery)
///     }
/// }
///
/// #[allow(non_upper_case_globals)]
/// pub static member_joined: DurableSignal<MemberJoinedSignal> = DurableSignal::new("member_joined");
/// ```
pub trait DurableSignature: Signature<Output = (), Sender: Serialize + DeserializeOwned> {
    /// The stored arguments: owned, and (de)serializable, since they outlive the process
    /// that sent them.
    type Payload: Serialize + DeserializeOwned + 'static;

    /// The arguments receivers get: the payload and its delivery.
    fn delivered<'a>(payload: &'a Self::Payload, delivery: &'a Delivery<'a>) -> Self::Args<'a>;
}

/// What a durable signal's receivers are called with: the stored arguments, whose fields they
/// take by name (through `Deref`), and the [`Delivery`], which a receiver takes as a parameter
/// named `delivery` (so a payload field named `delivery` cannot be taken by name).
pub struct Delivered<'a, A> {
    /// The stored arguments: private, so that a payload field of any other name (`args`
    /// included) is what a receiver parameter of that name takes.
    args: &'a A,
    /// This delivery: its message id, attempt and transaction.
    pub delivery: &'a Delivery<'a>,
}

impl<'a, A> Delivered<'a, A> {
    /// The arguments of a delivery: what [`DurableSignature::delivered`] returns.
    #[must_use]
    pub fn new(args: &'a A, delivery: &'a Delivery<'a>) -> Self {
        Self { args, delivery }
    }

    /// The stored arguments, whole.
    #[must_use]
    pub fn args(&self) -> &'a A {
        self.args
    }
}

impl<A> Deref for Delivered<'_, A> {
    type Target = A;

    fn deref(&self) -> &A {
        self.args
    }
}

impl<A: fmt::Debug> fmt::Debug for Delivered<'_, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivered")
            .field("args", self.args)
            .field("delivery", self.delivery)
            .finish()
    }
}

/// Where a message is delivered in order: one signal's messages with the same destination,
/// scope and shard id go one at a time, in order of first appearance; different shards are
/// independent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Shard {
    /// The durable signal's name.
    pub signal: String,
    /// The destination (a region or cell name), `""` for none.
    pub destination: String,
    /// The shard's scope (`Organization`, `User`, ...), as stored.
    pub scope: String,
    /// The shard's id within its scope (an organization id, ...).
    pub id: i64,
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.signal, self.scope, self.id)?;
        if !self.destination.is_empty() {
            write!(f, " to {}", self.destination)?;
        }
        Ok(())
    }
}

/// Reads a shard as it is displayed, `<signal> <scope>/<id>` or `<signal> <scope>/<id> to
/// <destination>`: what an operator copies from `status` into `retry_shard`.
///
/// ```
/// # use signals::outbox::Shard;
/// let shard: Shard = "process_control_outbox Integration/7 to eu".parse()?;
/// assert_eq!((shard.scope.as_str(), shard.id, shard.destination.as_str()), ("Integration", 7, "eu"));
/// assert_eq!(shard.to_string().parse::<Shard>()?, shard);
/// # Ok::<(), signals::outbox::ParseShardError>(())
/// ```
impl std::str::FromStr for Shard {
    type Err = ParseShardError;

    fn from_str(text: &str) -> Result<Self, ParseShardError> {
        let error = || ParseShardError(text.to_owned());
        let (signal, rest) = text.trim().split_once(' ').ok_or_else(error)?;
        // The key ends at the first `/<id>` followed by the end or ` to `: a scope may hold
        // ` to ` and `/`, a destination anything.
        let (scope, id, destination) = rest
            .match_indices('/')
            .find_map(|(slash, _)| {
                let after = &rest[slash + 1..];
                let digits = after
                    .char_indices()
                    .find(|&(at, c)| !(c.is_ascii_digit() || (at == 0 && c == '-')))
                    .map_or(after.len(), |(at, _)| at);
                let id = after[..digits].parse::<i64>().ok()?;
                let destination = match &after[digits..] {
                    "" => "",
                    tail => tail.strip_prefix(" to ")?,
                };
                Some((&rest[..slash], id, destination))
            })
            .ok_or_else(error)?;
        if signal.is_empty() || scope.is_empty() {
            return Err(error());
        }
        Ok(Self {
            signal: signal.to_owned(),
            destination: destination.to_owned(),
            scope: scope.to_owned(),
            id,
        })
    }
}

/// A text that is not a shard as [`Shard`] displays it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a shard; write it as `status` shows it: `<signal> <scope>/<id>`, then \
     ` to <destination>` if it has one"
)]
pub struct ParseShardError(String);

/// One delivery of a message to its signal's receivers.
///
/// Receivers run inside the delivery's database transaction, lent by
/// [`transaction`](Self::transaction): what they write there commits together with the
/// message's removal, or not at all, so its effect happens once however often the message is
/// delivered. Anything else they do (a request to another service) may happen more than once:
/// give it [`idempotency_key`](Self::idempotency_key).
pub struct Delivery<'a> {
    pub(crate) lent: Lending<'a>,
    pub(crate) id: MessageId,
    pub(crate) attempt: u32,
    pub(crate) shard: &'a Shard,
    pub(crate) object: Option<i64>,
    pub(crate) coalesced: usize,
    pub(crate) state: &'a State,
}

/// The delivery's transaction, as its backend lends it.
pub(crate) enum Lending<'a> {
    /// SQLite's: the worker's connection, in the transaction.
    Sqlite(&'a Connection),
    /// PostgreSQL's: the worker's connection, in the transaction, reached from a receiver's
    /// thread by blocking on the worker's runtime.
    #[cfg(feature = "postgres")]
    Postgres(&'a crate::postgres::Lent),
}

impl<'a> Delivery<'a> {
    /// The delivery's transaction, on the outbox's SQLite database: writes made through it
    /// commit with the message's removal, or roll back with a failed delivery. Do not commit
    /// or roll it back yourself.
    ///
    /// # Panics
    ///
    /// On a delivery from PostgreSQL (a receiver written for SQLite, run by a
    /// `postgres::PgWorker`): there, use `postgres`. The worker catches the
    /// panic as a failed delivery; the message is retried, then parked, never lost.
    #[must_use]
    pub fn transaction(&self) -> &'a Connection {
        match self.lent {
            Lending::Sqlite(conn) => conn,
            #[cfg(feature = "postgres")]
            Lending::Postgres(_) => panic!(
                "Delivery::transaction lends SQLite's transaction, and this delivery is from \
                 PostgreSQL: write through Delivery::postgres"
            ),
        }
    }

    /// The delivery's SQLite transaction, as [`transaction`](Self::transaction), or an error
    /// where that panics: for a receiver that runs on either backend (SQLite in tests,
    /// PostgreSQL in production), and asks which one lent it the transaction.
    ///
    /// ```no_run
    /// # use signals::outbox::{Delivery, OutboxError};
    /// fn record(delivery: &Delivery<'_>, member_id: i64) -> Result<(), OutboxError> {
    ///     if let Ok(conn) = delivery.sqlite() {
    ///         conn.execute("INSERT INTO synced (member) VALUES (?1)", [member_id])?;
    ///     } // else from PostgreSQL: through `delivery.postgres(..)`
    ///     Ok(())
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// [`OutboxError::WrongBackend`] on a delivery from PostgreSQL.
    pub fn sqlite(&self) -> Result<&'a Connection, OutboxError> {
        match self.lent {
            Lending::Sqlite(conn) => Ok(conn),
            #[cfg(feature = "postgres")]
            Lending::Postgres(_) => Err(OutboxError::WrongBackend {
                wanted: "SQLite",
                this: "PostgreSQL",
            }),
        }
    }

    /// Runs `write` on the delivery's PostgreSQL transaction and returns what it returns:
    /// writes made there commit with the message's removal, or roll back with a failed
    /// delivery (receivers are plain functions: this blocks the receiver until `write` is
    /// done, on the worker's runtime). Do not commit or roll it back yourself.
    ///
    /// ```no_run
    /// # use signals::outbox::{Delivery, OutboxError};
    /// # #[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)] pub enum Category { MemberUpdate }
    /// # #[derive(serde::Serialize, serde::Deserialize)] pub struct MemberJoined { pub member_id: i64 }
    /// # signals::signal! { pub static member_joined: durable Signal<MemberJoined, sender = Category>; }
    /// #[signals::receiver(signal = member_joined, sender = Category::MemberUpdate)]
    /// fn sync_member(member_id: i64, delivery: &Delivery<'_>) -> Result<(), OutboxError> {
    ///     delivery.postgres(async |conn| {
    ///         sqlx::query("INSERT INTO synced (member) VALUES ($1)")
    ///             .bind(member_id)
    ///             .execute(conn)
    ///             .await
    ///     })??;
    ///     Ok(())
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// [`OutboxError::WrongBackend`] on a delivery from SQLite (use
    /// [`transaction`](Self::transaction) there), or when called again from inside `write`;
    /// [`OutboxError::Postgres`] when the delivery's transaction could not be prepared for
    /// the receiver's writes.
    #[cfg(feature = "postgres")]
    pub fn postgres<T>(
        &self,
        write: impl AsyncFnOnce(&mut sqlx::PgConnection) -> T,
    ) -> Result<T, OutboxError> {
        match self.lent {
            Lending::Postgres(lent) => lent.run(write),
            Lending::Sqlite(_) => Err(OutboxError::WrongBackend {
                wanted: "PostgreSQL",
                this: "SQLite",
            }),
        }
    }

    /// On PostgreSQL, the fencing token of the lease this delivery runs under: a shard's
    /// later leases have larger tokens (they come from a database sequence), so a store
    /// outside the database that keeps the largest token it saw per shard can refuse a late
    /// write from a worker that lost its lease. `None` on SQLite, whose single writer needs
    /// no lease.
    #[must_use]
    pub fn lease(&self) -> Option<i64> {
        match self.lent {
            Lending::Sqlite(_) => None,
            #[cfg(feature = "postgres")]
            Lending::Postgres(lent) => Some(lent.token),
        }
    }

    /// The message's id: the newest of the messages coalesced into this delivery.
    #[must_use]
    pub fn message_id(&self) -> MessageId {
        self.id
    }

    /// Which attempt this is, from 1.
    #[must_use]
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The shard the message was written to.
    #[must_use]
    pub fn shard(&self) -> &'a Shard {
        self.shard
    }

    /// The destination (a region or cell name), `""` for none.
    #[must_use]
    pub fn destination(&self) -> &'a str {
        &self.shard.destination
    }

    /// The object the message is about (its coalescing key), if it named one.
    #[must_use]
    pub fn object(&self) -> Option<i64> {
        self.object
    }

    /// How many messages this delivery stands for: more than 1 when newer messages about the
    /// same object were coalesced into it.
    #[must_use]
    pub fn coalesced(&self) -> usize {
        self.coalesced
    }

    /// The worker's value of type `T`, given with [`Worker::state`](crate::Worker::state): what
    /// receivers reach besides the database (the application's context, a client of another
    /// service), since their arguments are only what was stored.
    ///
    /// # Errors
    ///
    /// [`OutboxError::NoState`] when the worker holds no `T`.
    pub fn state<T: Any + Send + Sync>(&self) -> Result<&'a T, OutboxError> {
        self.state.get().ok_or(OutboxError::NoState {
            type_name: type_name::<T>(),
        })
    }

    /// A key that is the same on every delivery of this message, and differs between
    /// messages: `"<signal>:<message id>"`.
    #[must_use]
    pub fn idempotency_key(&self) -> String {
        format!("{}:{}", self.shard.signal, self.id)
    }
}

impl fmt::Debug for Delivery<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("message_id", &self.id)
            .field("attempt", &self.attempt)
            .field("shard", self.shard)
            .field("object", &self.object)
            .field("coalesced", &self.coalesced)
            .finish_non_exhaustive()
    }
}

/// The values a worker lends its deliveries, one per type.
#[derive(Default, Clone)]
pub(crate) struct State(HashMap<TypeId, Arc<dyn Any + Send + Sync>>);

impl State {
    pub(crate) fn insert<T: Any + Send + Sync>(&mut self, value: Arc<T>) {
        self.0.insert(TypeId::of::<T>(), value);
    }

    fn get<T: Any>(&self) -> Option<&T> {
        self.0.get(&TypeId::of::<T>())?.downcast_ref()
    }

    pub(crate) fn type_count(&self) -> usize {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::Shard;

    #[test]
    fn a_shard_reads_back_from_its_display_and_anything_else_is_an_error() {
        for shard in [
            Shard {
                signal: "member_joined".into(),
                destination: String::new(),
                scope: "Organization".into(),
                id: -3,
            },
            Shard {
                signal: "process_control_outbox".into(),
                destination: "us-east".into(),
                scope: "\"a/b\"".into(),
                id: 7,
            },
            // Keys that contain the display's own separators.
            Shard {
                signal: "s".into(),
                destination: "eu/1 to west".into(),
                scope: "from a to b".into(),
                id: i64::MIN,
            },
            Shard {
                signal: "s".into(),
                destination: String::new(),
                scope: "x to y/z".into(),
                id: 3,
            },
        ] {
            assert_eq!(shard.to_string().parse::<Shard>(), Ok(shard));
        }
        for text in [
            "",
            "member_joined",
            "member_joined Organization",
            "s Org/x",
            " /1",
            "s /1",
        ] {
            let error = text.parse::<Shard>().unwrap_err();
            assert!(
                error.to_string().contains("is not a shard"),
                "{text:?}: {error}"
            );
        }
    }
}
