//! The PostgreSQL backend: durable signals across processes and machines. The application
//! enqueues in its own `sqlx::Transaction<'_, Postgres>`, in one statement; any number of
//! [`PgWorker`]s, in any number of processes, deliver.
//!
//! ```no_run
//! # use serde::{Deserialize, Serialize};
//! # use signals::outbox::{Delivery, Enqueue, OutboxError};
//! # use signals::outbox::postgres::{PgOutbox, PgWorker};
//! # #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)] pub enum Category { MemberUpdate }
//! # #[derive(Serialize, Deserialize)] pub struct MemberJoined { pub member_id: i64, pub org_id: i64 }
//! # signals::signal! { pub static member_joined: durable Signal<MemberJoined, sender = Category>; }
//! #[signals::receiver(signal = member_joined, sender = Category::MemberUpdate)]
//! fn sync_member(member_id: i64, delivery: &Delivery<'_>) -> Result<(), OutboxError> {
//!     // Written in the delivery's transaction: it commits with the message's removal.
//!     delivery.postgres(async |conn| {
//!         sqlx::query("INSERT INTO synced (member) VALUES ($1)").bind(member_id).execute(conn).await
//!     })??;
//!     Ok(())
//! }
//!
//! # async fn demo(pool: sqlx::PgPool) -> Result<(), OutboxError> {
//! let outbox = PgOutbox::open(pool).await?;
//! let mut tx = outbox.pool().begin().await?;
//! // ... the domain write, in `tx` ...
//! member_joined
//!     .enqueue(&mut tx, &Category::MemberUpdate, &MemberJoined { member_id: 7, org_id: 10 })
//!     .shard("Organization", 10)
//!     .object(7)
//!     .write()
//!     .await?;
//! tx.commit().await?;
//!
//! // In each worker process:
//! let mut worker = PgWorker::new(&outbox).signal(&member_joined);
//! worker.run(tokio::signal::ctrl_c()).await?; // until Ctrl-C
//! # Ok(()) }
//! ```
//!
//! # What the guarantees become across machines
//!
//! The same as on SQLite ([the crate's guarantees](crate#guarantees)), with:
//!
//! - **Leases**: a worker claims a round of shards with `FOR UPDATE SKIP LOCKED` (workers never
//!   wait on one another), each for [`PgWorker::lease`] (30 s by default), under a fencing
//!   token from a database sequence. After their receivers ran, and before it commits, it
//!   locks the shards that still carry its token: if another worker took any of them over
//!   meanwhile (this one was paused, partitioned, slower than its lease), the round commits
//!   nothing, and counts its deliveries as [`fenced`](crate::Drained::fenced). A worker
//!   paused between that lock and its commit is cut off by the server after three leases
//!   (`idle_in_transaction_session_timeout`), which rolls it back.
//! - **One shard, one worker at a time**, so per-shard order holds across processes; shards
//!   are spread over the workers by their claims.
//! - **The database's clock** times backoffs and leases: the workers' clocks may disagree.
//! - **Wake-ups**: an enqueue notifies the workers on commit (`LISTEN/NOTIFY`, one
//!   notification per signal per transaction); they also poll every [`PgWorker::poll`], so a
//!   notification lost to a reconnection delays a message, never loses it.
//! - **Crashes**: a worker that dies is replaced by the others when its lease ends; the
//!   attempt it was making counts towards [`PgWorker::max_attempts`].

mod admin;
mod worker;

use sqlx::{PgPool, Postgres, Transaction};

use crate::enqueue::{Pending, Target, sealed};
use crate::{Enqueued, OutboxError};

pub(crate) use worker::Lent;
pub use worker::PgWorker;

/// The channel enqueues notify, with the signal's name as the payload.
const CHANNEL: &str = "signals_outbox";

/// The advisory lock (SQL, of the shard's key columns) that orders enqueues against the
/// removal of an emptied shard's row: an enqueue holds it shared until it commits, and a
/// worker removes a row only holding it exclusively, so that it never removes the row of a
/// shard whose message is about to commit. One of 1,024 locks, by the key's hash: a
/// transaction that enqueues to many shards holds at most 1,024 (PostgreSQL's lock table
/// holds `max_locks_per_transaction` × `max_connections`, 6,400 by default), and a worker
/// that finds its lock taken only leaves an empty row for later. In the two-`int4` key space,
/// which the application's one-`bigint` advisory locks do not share.
macro_rules! shard_lock {
    ($lock:literal, $signal:literal, $destination:literal, $scope:literal, $shard:literal) => {
        concat!(
            $lock,
            "(hashtext('signals_outbox'), hashtext(",
            $signal,
            " || chr(31) || ",
            $destination,
            " || chr(31) || ",
            $scope,
            " || chr(31) || ",
            $shard,
            "::text) & 1023)"
        )
    };
}
pub(crate) use shard_lock;

/// Now, in milliseconds since the epoch, by the server's clock (SQL).
macro_rules! now_ms {
    () => {
        "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"
    };
}
pub(crate) use now_ms;

/// The migrations of the PostgreSQL schema, in order, each a list of statements: the schema
/// after migration `i` is version `i + 1`. Never edited once released: a change is a new
/// migration at the end.
const MIGRATIONS: &[&[&str]] = &[
    // 1: the tables of the SQLite schema 3, in PostgreSQL's types.
    &[
        "CREATE TABLE signals_outbox_message (
             id          BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- never reused
             signal      TEXT    NOT NULL,
             destination TEXT    NOT NULL DEFAULT '',
             scope       TEXT    NOT NULL,
             shard       BIGINT  NOT NULL,
             category    TEXT    NOT NULL,                  -- the sender, as JSON
             object      BIGINT,                            -- coalescing key (NULL: none)
             payload     TEXT    NOT NULL,                  -- the arguments, as JSON
             attempts    INTEGER NOT NULL DEFAULT 0,
             last_error  TEXT,
             created_at  BIGINT  NOT NULL                   -- ms since the epoch, the server's clock
         )",
        "CREATE INDEX signals_outbox_message_order
             ON signals_outbox_message (signal, destination, scope, shard, id)",
        "CREATE INDEX signals_outbox_message_coalesce
             ON signals_outbox_message (signal, destination, scope, shard, category, object)",
        "CREATE TABLE signals_outbox_shard (
             signal      TEXT    NOT NULL,
             destination TEXT    NOT NULL,
             scope       TEXT    NOT NULL,
             shard       BIGINT  NOT NULL,
             due_at      BIGINT  NOT NULL,   -- not tried again before (ms)
             delay_ms    BIGINT  NOT NULL,   -- the backoff charged at the last claim
             claim       BIGINT  NOT NULL,   -- the token of the last claim (0: released): its fence
             attempts    INTEGER NOT NULL,   -- claims of the head group since the last success
             failures    INTEGER NOT NULL DEFAULT 0,
             last_error  TEXT,
             PRIMARY KEY (signal, destination, scope, shard)
         )",
        "CREATE INDEX signals_outbox_shard_claim ON signals_outbox_shard (claim)",
        "CREATE TABLE signals_outbox_parked (
             id          BIGINT  PRIMARY KEY, -- the message's id
             signal      TEXT    NOT NULL,
             destination TEXT    NOT NULL,
             scope       TEXT    NOT NULL,
             shard       BIGINT  NOT NULL,
             category    TEXT    NOT NULL,
             object      BIGINT,
             payload     TEXT    NOT NULL,
             attempts    INTEGER NOT NULL,
             error       TEXT    NOT NULL,
             created_at  BIGINT  NOT NULL,
             parked_at   BIGINT  NOT NULL
         )",
        "CREATE TABLE signals_outbox_pause (
             signal   TEXT NOT NULL,
             kind     TEXT NOT NULL CHECK (kind IN ('category', 'shard')),
             key      TEXT NOT NULL, -- the category as JSON, or 'scope/shard'
             PRIMARY KEY (signal, kind, key)
         )",
        "CREATE TABLE signals_outbox_tombstone (
             table_name TEXT   NOT NULL,
             object     BIGINT NOT NULL,
             created_at BIGINT NOT NULL,
             PRIMARY KEY (table_name, object)
         )",
    ],
    // 2: the worker's leases. Every shard with messages has a row (enqueue writes it, a worker
    // removes it once the shard is empty), which claims lock with `SKIP LOCKED`, in order of
    // `due_at`, and which holds the lease: its holder, until when, and the fencing token
    // (`claim`) drawn from a sequence. Claims find their rows by key: the token's index is
    // dropped, and room is left in pages, so that a claim's update stays on its page (HOT).
    &[
        "ALTER TABLE signals_outbox_shard
             ADD COLUMN lease_until BIGINT NOT NULL DEFAULT 0, -- ms, the server's clock
             ADD COLUMN holder      TEXT",
        "ALTER TABLE signals_outbox_shard SET (fillfactor = 70)",
        "DROP INDEX signals_outbox_shard_claim",
        "CREATE SEQUENCE signals_outbox_token",
        "CREATE INDEX signals_outbox_shard_due ON signals_outbox_shard (due_at)",
        "INSERT INTO signals_outbox_shard
             (signal, destination, scope, shard, due_at, delay_ms, claim, attempts)
         SELECT DISTINCT signal, destination, scope, shard, 0, 0, 0, 0
         FROM signals_outbox_message
         ON CONFLICT DO NOTHING",
    ],
];

/// The newest PostgreSQL schema version this crate knows.
#[allow(clippy::cast_possible_wrap)] // a handful of migrations
pub const VERSION: i64 = MIGRATIONS.len() as i64;

/// An outbox in a PostgreSQL database, reached through a pool the application shares.
#[derive(Debug, Clone)]
pub struct PgOutbox {
    pool: PgPool,
}

impl PgOutbox {
    /// The outbox in `pool`'s database, its tables created or migrated to the current schema:
    /// in one transaction holding an advisory lock, so that processes opening it at once apply
    /// each migration once.
    ///
    /// # Errors
    ///
    /// [`OutboxError::Postgres`] when the database cannot be reached or migrated;
    /// [`OutboxError::SchemaTooNew`] when a newer release migrated it.
    #[allow(clippy::needless_range_loop)] // see the loop
    pub async fn open(pool: PgPool) -> Result<Self, OutboxError> {
        let mut tx = pool.begin().await?;
        let conn: &mut sqlx::PgConnection = &mut tx;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('signals_outbox_schema'))")
            .execute(&mut *conn)
            .await?;
        for statement in [
            "CREATE TABLE IF NOT EXISTS signals_outbox_schema (version BIGINT NOT NULL)",
            "INSERT INTO signals_outbox_schema (version)
             SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM signals_outbox_schema)",
        ] {
            sqlx::query(statement).execute(&mut *conn).await?;
        }
        let found: i64 = sqlx::query_scalar("SELECT version FROM signals_outbox_schema")
            .fetch_one(&mut *conn)
            .await?;
        if found > VERSION {
            return Err(OutboxError::SchemaTooNew {
                found,
                known: VERSION,
            });
        }
        // A negative version is none: every migration is applied.
        let applied = usize::try_from(found).unwrap_or(0);
        // By index: an iterator held across the awaits would make the future not `Send`
        // for every lifetime (rust-lang/rust#100013), so that it could not be spawned.
        for migration in applied..MIGRATIONS.len() {
            for index in 0..MIGRATIONS[migration].len() {
                let statement: &'static str = MIGRATIONS[migration][index];
                sqlx::query(statement).execute(&mut *conn).await?;
            }
        }
        sqlx::query("UPDATE signals_outbox_schema SET version = $1")
            .bind(VERSION)
            .execute(&mut *conn)
            .await?;
        tx.commit().await?;
        Ok(Self { pool })
    }

    /// The pool: for the application's transactions, in which it enqueues.
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

impl Target for &mut Transaction<'_, Postgres> {}
impl sealed::Sealed for &mut Transaction<'_, Postgres> {}

impl Pending<&mut Transaction<'_, Postgres>> {
    /// Writes the message (one per destination) in the transaction, in one statement that
    /// also makes sure its shard has a row for workers to claim, and notifies them when the
    /// transaction commits; the times stored are the server's.
    ///
    /// # Errors
    ///
    /// [`OutboxError::Serialize`] if the sender, the arguments or the scope cannot be stored
    /// as JSON, or [`OutboxError::Postgres`]; nothing is written then.
    pub async fn write(self) -> Result<Enqueued, OutboxError> {
        let (tx, parts) = self.parts()?;
        // The shard's row, written after its lock is taken (the insert reads the lock's
        // rows): `DO NOTHING` takes no lock on a row that exists, so an enqueue does not wait
        // for the worker delivering the shard. The notification is sent on commit, once per
        // signal however many messages the transaction wrote.
        let mut ids: Vec<i64> = sqlx::query_scalar(concat!(
            "WITH locked AS (
                 SELECT d.destination, ",
            shard_lock!(
                "pg_advisory_xact_lock_shared",
                "$1",
                "d.destination",
                "$2",
                "$3"
            ),
            "
                 FROM (SELECT DISTINCT destination FROM unnest($7::text[]) AS u (destination)) AS d),
             message AS (
                 INSERT INTO signals_outbox_message
                     (signal, destination, scope, shard, category, object, payload, created_at)
                 SELECT $1, d.destination, $2, $3, $4, $5, $6, ",
            now_ms!(),
            "
                 FROM unnest($7::text[]) WITH ORDINALITY AS d (destination, n)
                 ORDER BY d.n
                 RETURNING id),
             shard AS (
                 INSERT INTO signals_outbox_shard
                     (signal, destination, scope, shard, due_at, delay_ms, claim, attempts)
                 SELECT $1, locked.destination, $2, $3, 0, 0, 0, 0 FROM locked
                 ON CONFLICT DO NOTHING)
             SELECT message.id FROM message, (SELECT pg_notify($8, $1)) AS wake",
        ))
        .bind(parts.signal)
        .bind(&parts.scope)
        .bind(parts.shard)
        .bind(&parts.category)
        .bind(parts.object)
        .bind(&parts.payload)
        .bind(&parts.destinations)
        .bind(CHANNEL)
        .fetch_all(&mut **tx)
        .await?;
        // Identities are drawn in the order rows are inserted: the destinations' order.
        ids.sort_unstable();
        Ok(Enqueued {
            messages: ids.into_iter().zip(parts.shards()).collect(),
        })
    }
}
