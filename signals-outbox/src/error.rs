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
    /// The PostgreSQL database refused or failed a statement, or could not be reached;
    /// nothing of the operation was kept. Retry, or look at the server.
    #[cfg(feature = "postgres")]
    #[error("the outbox's PostgreSQL database failed: {0}")]
    Postgres(#[from] sqlx::Error),
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
    /// A message was enqueued on a connection with no transaction open (an
    /// [`InTransaction`](crate::InTransaction) implementation that does not open one): it
    /// would be written alone, not with the change it describes. Nothing was written; open a
    /// transaction and enqueue in it.
    #[error(
        "a `{signal}` message was enqueued outside a transaction; enqueue it in the transaction \
         of the change it describes"
    )]
    NoTransaction {
        /// The signal the message was for.
        signal: &'static str,
    },
    /// A receiver asked its [`Delivery`](crate::Delivery) for state of a type its worker was
    /// not given: the message stays, and is retried, then parked. Give the worker the state
    /// with `Worker::state`.
    #[error(
        "a receiver asked its delivery for a `{type_name}`, which its worker does not hold; \
         give it with `Worker::state(Arc::new(..))`"
    )]
    NoState {
        /// The type asked for.
        type_name: &'static str,
    },
    /// A receiver asked its [`Delivery`](crate::Delivery) for the transaction of a backend
    /// other than the one delivering (`transaction` is SQLite's, `postgres` PostgreSQL's).
    /// The message stays, and is retried, then parked: write through the delivering
    /// backend's method.
    #[error(
        "a receiver asked for the delivery's {wanted} transaction, and this delivery is from \
         {this}"
    )]
    WrongBackend {
        /// The backend the receiver asked for.
        wanted: &'static str,
        /// The backend delivering.
        this: &'static str,
    },
    /// A receiver called `Delivery::postgres` from inside the closure it gave it: the
    /// transaction is already lent to that closure. Use the connection the closure got.
    #[error(
        "Delivery::postgres was called from inside its own closure; use the connection the \
         closure was given"
    )]
    TransactionInUse,
    /// A worker's delivery thread panicked outside any receiver (a bug in signals-outbox):
    /// the round was rolled back; its messages stay.
    #[error("the outbox worker's delivery thread panicked: {0}")]
    WorkerPanicked(String),
    /// A worker was started without signals: it would deliver nothing.
    #[error("a worker needs at least one durable signal: add them with `Worker::signal`")]
    NoSignals,
}
