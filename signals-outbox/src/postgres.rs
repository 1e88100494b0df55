//! The PostgreSQL backend, first part: the outbox's tables, created or migrated by
//! [`PgOutbox::open`], and `enqueue` in the caller's `sqlx::Transaction<'_, Postgres>`, as one
//! statement with no extra round trip. Its worker (claims with `SKIP LOCKED`, fenced leases,
//! `LISTEN/NOTIFY`) is not written yet: messages enqueued here wait until it is.
//!
//! ```no_run
//! # use serde::{Deserialize, Serialize};
//! # use signals::outbox::Enqueue;
//! # use signals::outbox::postgres::PgOutbox;
//! # #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)] pub enum Category { MemberUpdate }
//! # #[derive(Serialize, Deserialize)] pub struct MemberJoined { pub member_id: i64, pub org_id: i64 }
//! # signals::signal! { pub static member_joined: durable Signal<MemberJoined, sender = Category>; }
//! # async fn demo(pool: sqlx::PgPool) -> Result<(), signals::outbox::OutboxError> {
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
//! # Ok(()) }
//! ```

use sqlx::{PgPool, Postgres, Transaction};

use crate::enqueue::{Pending, Target, sealed};
use crate::{Enqueued, OutboxError};

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
    /// Writes the message (one per destination) in the transaction, in one statement; the
    /// times stored are the server's.
    ///
    /// # Errors
    ///
    /// [`OutboxError::Serialize`] if the sender, the arguments or the scope cannot be stored
    /// as JSON, or [`OutboxError::Postgres`]; nothing is written then.
    pub async fn write(self) -> Result<Enqueued, OutboxError> {
        let (tx, parts) = self.parts()?;
        let mut ids: Vec<i64> = sqlx::query_scalar(
            "INSERT INTO signals_outbox_message
                 (signal, destination, scope, shard, category, object, payload, created_at)
             SELECT $1, d.destination, $2, $3, $4, $5, $6,
                    (extract(epoch FROM clock_timestamp()) * 1000)::bigint
             FROM unnest($7::text[]) WITH ORDINALITY AS d (destination, n)
             ORDER BY d.n
             RETURNING id",
        )
        .bind(parts.signal)
        .bind(&parts.scope)
        .bind(parts.shard)
        .bind(&parts.category)
        .bind(parts.object)
        .bind(&parts.payload)
        .bind(&parts.destinations)
        .fetch_all(&mut **tx)
        .await?;
        // Identities are drawn in the order rows are inserted: the destinations' order.
        ids.sort_unstable();
        Ok(Enqueued {
            messages: ids.into_iter().zip(parts.shards()).collect(),
        })
    }
}
