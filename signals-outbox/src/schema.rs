//! The outbox's tables, owned by this crate: versioned migrations, applied in order when an
//! [`Outbox`](crate::Outbox) opens a database, each in its own transaction, each once.
//!
//! The version lives in the table `signals_outbox_schema` (not in `PRAGMA user_version`,
//! which belongs to the application). A migration is never edited once released: a change is a
//! new migration at the end.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::OutboxError;

/// The migrations, in order: the schema after migration `i` is version `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: messages, and each shard's delivery state.
    "
    CREATE TABLE signals_outbox_message (
        id          INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: a stable message id
        signal      TEXT    NOT NULL,
        destination TEXT    NOT NULL DEFAULT '',
        scope       TEXT    NOT NULL,
        shard       INTEGER NOT NULL,
        category    TEXT    NOT NULL,                  -- the sender, as JSON
        object      INTEGER,                           -- coalescing key; NULL: never coalesced
        payload     TEXT    NOT NULL,                  -- the arguments, as JSON
        attempts    INTEGER NOT NULL DEFAULT 0,
        last_error  TEXT,
        created_at  INTEGER NOT NULL                   -- ms since the epoch
    );
    CREATE INDEX signals_outbox_message_order
        ON signals_outbox_message (signal, destination, scope, shard, id);
    CREATE INDEX signals_outbox_message_coalesce
        ON signals_outbox_message (signal, destination, scope, shard, category, object);
    CREATE TABLE signals_outbox_shard (
        signal      TEXT    NOT NULL,
        destination TEXT    NOT NULL,
        scope       TEXT    NOT NULL,
        shard       INTEGER NOT NULL,
        due_at      INTEGER NOT NULL,   -- not tried again before (ms)
        delay_ms    INTEGER NOT NULL,   -- the backoff charged at the last claim
        claim       INTEGER NOT NULL,   -- the token of the last claim: its fence
        failures    INTEGER NOT NULL DEFAULT 0,
        last_error  TEXT,
        PRIMARY KEY (signal, destination, scope, shard)
    );
    ",
    // 2: dead letters, the kill switch, tombstones.
    "
    CREATE TABLE signals_outbox_parked (
        id          INTEGER PRIMARY KEY, -- the message's id
        signal      TEXT    NOT NULL,
        destination TEXT    NOT NULL,
        scope       TEXT    NOT NULL,
        shard       INTEGER NOT NULL,
        category    TEXT    NOT NULL,
        object      INTEGER,
        payload     TEXT    NOT NULL,
        attempts    INTEGER NOT NULL,
        error       TEXT    NOT NULL,
        created_at  INTEGER NOT NULL,
        parked_at   INTEGER NOT NULL
    );
    CREATE TABLE signals_outbox_pause (
        signal   TEXT NOT NULL,
        kind     TEXT NOT NULL CHECK (kind IN ('category', 'shard')),
        key      TEXT NOT NULL, -- the category as JSON, or 'scope/shard'
        PRIMARY KEY (signal, kind, key)
    );
    CREATE TABLE signals_outbox_tombstone (
        table_name TEXT    NOT NULL,
        object     INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (table_name, object)
    );
    ",
    // 3: a shard counts the attempts at its head group (claims since its last success), so
    // that a claim writes one shard row rather than every message it claims; and the shard
    // table is keyed by its primary key alone (WITHOUT ROWID): a claim and its settling write
    // one b-tree, not a table and its index.
    "
    CREATE TABLE signals_outbox_shard_v3 (
        signal      TEXT    NOT NULL,
        destination TEXT    NOT NULL,
        scope       TEXT    NOT NULL,
        shard       INTEGER NOT NULL,
        due_at      INTEGER NOT NULL,   -- not tried again before (ms)
        delay_ms    INTEGER NOT NULL,   -- the backoff charged at the last claim
        claim       INTEGER NOT NULL,   -- the token of the last claim (0: released): its fence
        attempts    INTEGER NOT NULL,   -- claims of the head group since the last success
        failures    INTEGER NOT NULL DEFAULT 0,
        last_error  TEXT,
        PRIMARY KEY (signal, destination, scope, shard)
    ) WITHOUT ROWID;
    INSERT INTO signals_outbox_shard_v3
        (signal, destination, scope, shard, due_at, delay_ms, claim, attempts, failures, last_error)
    SELECT s.signal, s.destination, s.scope, s.shard, s.due_at, s.delay_ms, s.claim,
           coalesce((SELECT max(m.attempts) FROM signals_outbox_message m
                     WHERE m.signal = s.signal AND m.destination = s.destination
                       AND m.scope = s.scope AND m.shard = s.shard), 0),
           s.failures, s.last_error
    FROM signals_outbox_shard s;
    DROP TABLE signals_outbox_shard;
    ALTER TABLE signals_outbox_shard_v3 RENAME TO signals_outbox_shard;
    ",
];

/// The newest schema version this crate knows.
#[allow(clippy::cast_possible_wrap)] // a handful of migrations
pub(crate) const VERSION: i64 = MIGRATIONS.len() as i64;

/// The schema version of the database behind `conn`: 0 for one without the outbox's tables.
///
/// # Errors
///
/// When the database cannot be read.
pub fn version(conn: &Connection) -> Result<i64, OutboxError> {
    let exists: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'signals_outbox_schema')",
        [],
        |row| row.get(0),
    )?;
    if !exists {
        return Ok(0);
    }
    let version = conn
        .query_row("SELECT version FROM signals_outbox_schema", [], |row| {
            row.get(0)
        })
        .optional()?;
    Ok(version.unwrap_or(0))
}

/// Brings the database up to [`VERSION`] (or `target`, for tests of one step), each migration
/// in an immediate transaction that also re-reads the version, so that two processes opening
/// one file at once apply each migration once.
pub(crate) fn migrate(conn: &mut Connection, target: i64) -> Result<(), OutboxError> {
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current = version(&tx)?;
        if current > VERSION {
            return Err(OutboxError::SchemaTooNew {
                found: current,
                known: VERSION,
            });
        }
        if current >= target {
            return Ok(());
        }
        if current == 0 {
            tx.execute_batch(
                "CREATE TABLE IF NOT EXISTS signals_outbox_schema (version INTEGER NOT NULL);
                 DELETE FROM signals_outbox_schema;
                 INSERT INTO signals_outbox_schema (version) VALUES (0);",
            )?;
        }
        let index = usize::try_from(current).expect("a schema version is small and positive");
        tx.execute_batch(MIGRATIONS[index])?;
        tx.execute(
            "UPDATE signals_outbox_schema SET version = ?1",
            [current + 1],
        )?;
        tx.commit()?;
    }
}
