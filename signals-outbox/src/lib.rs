//! Durable signals: a transactional outbox that delivers a signal's sends to its
//! `#[receiver]`s after the sender's transaction commits, at least once, on SQLite, or on
//! PostgreSQL with workers in many processes (the `postgres` module and feature).
//!
//! A durable signal is declared like any other, with `durable` (its arguments are stored, so
//! they are owned and `serde`-serializable, and so is its sender, the message's category):
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use signals::outbox::{Delivery, Enqueue, Outbox, Worker};
//! use signals::{receiver, signal};
//!
//! #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
//! pub enum Category { MemberUpdate }
//! #[derive(Serialize, Deserialize)]
//! pub enum Scope { Organization }
//! #[derive(Serialize, Deserialize)]
//! pub struct MemberJoined { pub member_id: i64, pub org_id: i64 }
//!
//! signal! { pub static member_joined: durable Signal<MemberJoined, sender = Category>; }
//!
//! #[receiver(signal = member_joined, sender = Category::MemberUpdate)]
//! fn sync_member(member_id: i64, delivery: &Delivery<'_>) -> rusqlite::Result<()> {
//!     // Written in the delivery's transaction: it commits with the message's removal.
//!     delivery.transaction().execute("INSERT INTO synced (member) VALUES (?1)", [member_id])?;
//!     Ok(())
//! }
//!
//! # let dir = tempfile::tempdir()?; let path = dir.path().join("app.db");
//! let outbox = Outbox::open(&path)?;
//! let mut conn = outbox.connect()?;
//! conn.execute("CREATE TABLE synced (member INTEGER)", [])?;
//!
//! let tx = conn.transaction()?;
//! // ... the domain write ...
//! member_joined
//!     .enqueue(&tx, &Category::MemberUpdate, &MemberJoined { member_id: 7, org_id: 10 })
//!     .shard(Scope::Organization, 10)
//!     .object(7)
//!     .write()?;
//! tx.commit()?;
//!
//! let mut worker = Worker::new(&outbox)?.signal(&member_joined);
//! assert_eq!(worker.drain_once()?.delivered, 1);
//! let synced: i64 = conn.query_row("SELECT count(*) FROM synced", [], |row| row.get(0))?;
//! assert_eq!(synced, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Guarantees
//!
//! - **Written with the change, or not at all**: `enqueue` takes the caller's transaction; a
//!   rollback leaves no message.
//! - **At least once**: a message is removed only when every receiver succeeded, in the
//!   transaction that ran them; an `Err`, a panic or a crash keeps it, to be retried.
//! - **Exactly-once effects in the same database**: what receivers write through
//!   [`Delivery::transaction`] commits with the removal, or rolls back with the failure.
//! - **Coalescing**: messages of one shard and sender about the same
//!   [`object`](Pending::object) are delivered once, with the newest arguments, and all removed.
//! - **Order**: within a [shard](Pending::shard), one delivery at a time, in order of first
//!   appearance; shards are independent, and a failing one never holds the others back.
//!   A worker takes the shards in turns (a round of [`Worker::batch`] shards goes on where the
//!   last stopped), so a large backlog in some shards does not starve the others.
//! - **Backoff**: a failing shard waits 1 s, then 2 s, 4 s ... up to [`Outbox::max_delay`]
//!   (1 h by default); after [`Worker::max_attempts`] attempts its message is parked (dead
//!   letters), reported, and the shard moves on.
//! - **Pauses**: [`Outbox::pause`] stops a category or a shard without losing its messages.
//!
//! Not guaranteed: an effect outside the database (a request to another service) can happen
//! more than once, when a delivery succeeds and its commit does not. Give it
//! [`Delivery::idempotency_key`].
//!
//! SQLite allows one writer at a time: a delivery holds the database's write lock while its
//! receivers run, so keep durable receivers short (other writers wait up to the busy timeout).

mod admin;
mod clock;
mod enqueue;
mod error;
mod message;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod schema;
mod store;
mod tombstone;
mod worker;

use std::hash::{BuildHasher, RandomState};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use rusqlite::Connection;

pub use admin::{Explanation, Parked, Pause, ShardStatus, Status};
pub use clock::{Clock, ManualClock, SystemClock};
pub use enqueue::{Enqueue, Enqueued, InTransaction, Pending, Target};
pub use error::OutboxError;
pub use message::{Delivered, Delivery, DurableSignature, MessageId, ParseShardError, Shard};
pub use tombstone::{maybe_process_tombstone, record_tombstone};
pub use worker::{Deliver, Drained, Failure, Stopper, Worker};

/// An outbox: the database file its messages live in, its clock and its backoff cap. Cheap to
/// clone; each [`Worker`] opens its own connection.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    clock: Arc<dyn Clock>,
    max_delay: Duration,
    busy_timeout: Duration,
    tokens: AtomicI64,
    keys: RandomState,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("path", &self.inner.path)
            .field("max_delay", &self.inner.max_delay)
            .finish_non_exhaustive()
    }
}

impl Outbox {
    /// Opens (creating it if needed) the SQLite database at `path`, in WAL mode, and brings the
    /// outbox's tables to the current schema.
    ///
    /// # Errors
    ///
    /// When the file cannot be opened or migrated, or holds a newer schema
    /// ([`OutboxError::SchemaTooNew`]).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OutboxError> {
        Self::builder(path).open()
    }

    /// Options for opening an outbox: its clock, backoff cap and busy timeout.
    pub fn builder(path: impl AsRef<Path>) -> OutboxBuilder {
        OutboxBuilder {
            path: path.as_ref().to_owned(),
            clock: Arc::new(SystemClock),
            max_delay: Duration::from_secs(3600),
            busy_timeout: Duration::from_secs(30),
        }
    }

    /// A new connection to the outbox's database, configured as the outbox needs it (WAL,
    /// busy timeout): for the application's own writes and `enqueue`s.
    ///
    /// # Errors
    ///
    /// When the file cannot be opened.
    pub fn connect(&self) -> Result<Connection, OutboxError> {
        let conn = Connection::open(&self.inner.path)?;
        conn.busy_timeout(self.inner.busy_timeout)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        Ok(conn)
    }

    /// The longest a failing shard waits between attempts.
    #[must_use]
    pub fn max_delay(&self) -> Duration {
        self.inner.max_delay
    }

    pub(crate) fn max_delay_ms(&self) -> i64 {
        i64::try_from(self.inner.max_delay.as_millis()).unwrap_or(i64::MAX)
    }

    pub(crate) fn now(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// A claim token no other claim has, but by a 64-bit chance: a counter, hashed with keys
    /// the operating system drew at random for this outbox.
    pub(crate) fn token(&self) -> i64 {
        let count = self.inner.tokens.fetch_add(1, Ordering::Relaxed);
        match i64::from_ne_bytes(self.inner.keys.hash_one(count).to_ne_bytes()) {
            0 => 1, // 0 marks a released claim
            token => token,
        }
    }
}

/// Options for [`Outbox::builder`].
#[derive(Clone)]
pub struct OutboxBuilder {
    path: PathBuf,
    clock: Arc<dyn Clock>,
    max_delay: Duration,
    busy_timeout: Duration,
}

impl std::fmt::Debug for OutboxBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxBuilder")
            .field("path", &self.path)
            .field("max_delay", &self.max_delay)
            .field("busy_timeout", &self.busy_timeout)
            .finish_non_exhaustive()
    }
}

impl OutboxBuilder {
    /// Reads the time from `clock` (default: the system's): a [`ManualClock`] in tests.
    #[must_use]
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The longest backoff of a failing shard (default 1 h).
    #[must_use]
    pub fn max_delay(mut self, max: Duration) -> Self {
        self.max_delay = max;
        self
    }

    /// How long a connection waits for another writer before failing (default 30 s).
    #[must_use]
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Opens the outbox, migrating its tables to the current schema.
    ///
    /// # Errors
    ///
    /// As [`Outbox::open`].
    pub fn open(self) -> Result<Outbox, OutboxError> {
        self.open_at(schema::VERSION)
    }

    /// Opens the outbox with its schema migrated up to `version` only: for tests of a
    /// migration from an older schema.
    #[doc(hidden)]
    pub fn open_at(self, version: i64) -> Result<Outbox, OutboxError> {
        let outbox = Outbox {
            inner: Arc::new(Inner {
                path: self.path,
                clock: self.clock,
                max_delay: self.max_delay,
                busy_timeout: self.busy_timeout,
                tokens: AtomicI64::new(0),
                keys: RandomState::new(),
            }),
        };
        let mut conn = outbox.connect()?;
        schema::migrate(&mut conn, version)?;
        Ok(outbox)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::Outbox;

    /// A claim token is the fence of a shard's claim: two claims with one token would let a
    /// worker that lost its claim settle the other's work.
    #[test]
    fn claim_tokens_do_not_repeat() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path().join("tokens.db")).unwrap();
        let mut seen = HashSet::new();
        for n in 0..1_000_000 {
            let token = outbox.token();
            assert!(
                seen.insert(token),
                "token {token} repeated after {n} claims"
            );
        }
    }
}
