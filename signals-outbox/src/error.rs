//! What can go wrong, typed: each error says what failed and what to do.

use crate::MessageId;

/// An outbox operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutboxError {
    /// The database refused or failed a statement (locked past the busy timeout, disk full,
    /// read-only file, ...); nothing of the operation was kept. Retry, or look at the file.
    #[error("the outbox's database failed: {0}")]
    Database(#[from] rusqlite::Error),
    /// A message's sender or arguments could not be stored as JSON; nothing was written.
    #[error("could not store the {what} of a `{signal}` message as JSON: {source}")]
    Serialize {
        /// The signal the message was for.
        signal: &'static str,
        /// `sender`, `arguments` or `shard scope`.
        what: &'static str,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The database holds an outbox schema newer than this version of `signals-outbox` knows:
    /// a newer release migrated it. Upgrade this program rather than downgrade the file.
    #[error(
        "the outbox schema in this database is version {found}, newer than the {known} this \
         signals-outbox knows; upgrade signals-outbox"
    )]
    SchemaTooNew {
        /// The version in the database.
        found: i64,
        /// The newest version this crate knows.
        known: i64,
    },
    /// No message (waiting or parked) has this id: it was delivered, or never existed.
    #[error("no outbox message {0} is waiting or parked: it was delivered, or never existed")]
    NoSuchMessage(MessageId),
    /// A receiver committed or rolled back the delivery's transaction (lent by
    /// `Delivery::transaction`), which the outbox alone ends: the message stays, and is
    /// retried, then parked, as a failure would be. Fix the receiver.
    #[error(
        "a receiver of `{signal}` committed or rolled back the delivery transaction of message \
         {message}; receivers write through it, and the outbox alone ends it"
    )]
    TransactionEnded {
        /// The signal whose receiver did it.
        signal: &'static str,
        /// The message it was delivering.
        message: MessageId,
    },
    /// A worker was started without signals: it would deliver nothing.
    #[error("a worker needs at least one durable signal: add them with `Worker::signal`")]
    NoSignals,
}
