//! The statements of enqueueing, claiming, delivering and parking, in one place: the storage
//! seam. The worker's algorithm (walk the shards, claim in the previous round's transaction,
//! deliver each group in a savepoint, settle by fencing token) calls only these; a second
//! backend (PostgreSQL) supplies the same operations, with its own claiming (`SKIP LOCKED`) and
//! clock. The operators' reads and pauses (`admin.rs`) use the same tables and share
//! `shard_state!` and `shard_at` from here.

use std::collections::{HashMap, HashSet};

use rusqlite::{Connection, OptionalExtension, params};

use crate::message::{MessageId, Shard};

/// The join that gives a message (`m`) its shard's delivery state (`s`, absent while the shard
/// has never failed or been claimed): for `concat!` into a statement.
macro_rules! shard_state {
    () => {
        " LEFT JOIN signals_outbox_shard s
            ON s.signal = m.signal AND s.destination = m.destination
           AND s.scope = m.scope AND s.shard = m.shard "
    };
}
pub(crate) use shard_state;

/// The shard whose key columns (signal, destination, scope, id) start at column `first`.
pub(crate) fn shard_at(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Shard> {
    Ok(Shard {
        signal: row.get(first)?,
        destination: row.get(first + 1)?,
        scope: row.get(first + 2)?,
        id: row.get(first + 3)?,
    })
}

/// A stored message, as the worker reads it.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) id: MessageId,
    pub(crate) category: String,
    pub(crate) object: Option<i64>,
    pub(crate) payload: String,
}

/// Writes one message; returns its id.
pub(crate) fn insert(
    conn: &Connection,
    shard: &Shard,
    category: &str,
    object: Option<i64>,
    payload: &str,
) -> rusqlite::Result<MessageId> {
    conn.prepare_cached(
        "INSERT INTO signals_outbox_message
             (signal, destination, scope, shard, category, object, payload, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, CAST(unixepoch('subsec') * 1000 AS INTEGER))",
    )?
    .execute(params![
        shard.signal,
        shard.destination,
        shard.scope,
        shard.id,
        category,
        object,
        payload
    ])?;
    Ok(conn.last_insert_rowid())
}

/// A shard's head: its oldest message, and the newest message of its shard about the same
/// object with the same sender (itself when none is newer, or when it names no object).
pub(crate) struct Head {
    pub(crate) shard: Shard,
    pub(crate) row: Row,
    pub(crate) newest: MessageId,
}

/// The column of a head query (on `signals_outbox_message m`) that finds its newest
/// coalesced message, in the coalescing index: for `concat!` into a statement.
macro_rules! newest_about_object {
    () => {
        "coalesce((SELECT max(c.id) FROM signals_outbox_message c
                   WHERE c.signal = m.signal AND c.destination = m.destination
                     AND c.scope = m.scope AND c.shard = m.shard
                     AND c.category = m.category AND c.object = m.object), m.id)"
    };
}

/// A shard's delivery state, kept while it has failed or been claimed since its last success.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShardState {
    /// Not tried again before (ms since the epoch).
    pub(crate) due_at: i64,
    /// The backoff charged at its last claim (ms).
    pub(crate) delay_ms: i64,
    /// The attempts at its head group: claims since its last success.
    pub(crate) attempts: u32,
}

/// The delivery states of `signal`'s shards (those that failed or were claimed since their last
/// success: few, while deliveries succeed), read once per round.
pub(crate) fn states(
    conn: &Connection,
    signal: &str,
) -> rusqlite::Result<HashMap<Shard, ShardState>> {
    let mut statement = conn.prepare_cached(
        "SELECT signal, destination, scope, shard, due_at, delay_ms, attempts
         FROM signals_outbox_shard WHERE signal = ?1",
    )?;
    let rows = statement.query_map([signal], |row| {
        Ok((
            shard_at(row, 0)?,
            ShardState {
                due_at: row.get(4)?,
                delay_ms: row.get(5)?,
                attempts: row.get(6)?,
            },
        ))
    })?;
    rows.collect()
}

/// The message columns a head or group is read with, from column `first`.
fn row_at(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Row> {
    Ok(Row {
        id: row.get(first)?,
        category: row.get(first + 1)?,
        object: row.get(first + 2)?,
        payload: row.get(first + 3)?,
    })
}

/// The first shard of `signal` after `after` in key order (destination, scope, id), or the
/// first of all without `after`, with its head. Index seeks in the
/// `(signal, destination, scope, shard, id)` index, however many messages wait: the worker
/// walks the shards with it instead of reading every message.
///
/// The next shard in the same destination and scope is one seek; only past the last of those
/// does it look in the next scope, then the next destination. (A row value comparison,
/// `(destination, scope, shard) > (?, ?, ?)`, would be one statement, but SQLite seeks on its
/// first column only and reads every message of the rest.)
pub(crate) fn next_head(
    conn: &Connection,
    signal: &str,
    after: Option<&Shard>,
) -> rusqlite::Result<Option<Head>> {
    macro_rules! head_where {
        ($condition:literal, $order:literal) => {
            concat!(
                "SELECT m.destination, m.scope, m.shard, m.id, m.category, m.object, m.payload, ",
                newest_about_object!(),
                " FROM signals_outbox_message m WHERE m.signal = ?1 ",
                $condition,
                " ORDER BY ",
                $order,
                " LIMIT 1"
            )
        };
    }
    let read = |row: &rusqlite::Row<'_>| {
        Ok(Head {
            shard: Shard {
                signal: signal.to_owned(),
                destination: row.get(0)?,
                scope: row.get(1)?,
                id: row.get(2)?,
            },
            row: row_at(row, 3)?,
            newest: row.get(7)?,
        })
    };
    let Some(after) = after else {
        return conn
            .prepare_cached(head_where!("", "m.destination, m.scope, m.shard, m.id"))?
            .query_row([signal], read)
            .optional();
    };
    let (destination, scope) = (&after.destination, &after.scope);
    let in_scope = head_where!(
        "AND m.destination = ?2 AND m.scope = ?3 AND m.shard > ?4",
        "m.shard, m.id"
    );
    let in_destination = head_where!(
        "AND m.destination = ?2 AND m.scope > ?3",
        "m.scope, m.shard, m.id"
    );
    let beyond = head_where!(
        "AND m.destination > ?2",
        "m.destination, m.scope, m.shard, m.id"
    );
    if let Some(head) = conn
        .prepare_cached(in_scope)?
        .query_row(params![signal, destination, scope, after.id], read)
        .optional()?
    {
        return Ok(Some(head));
    }
    if let Some(head) = conn
        .prepare_cached(in_destination)?
        .query_row(params![signal, destination, scope], read)
        .optional()?
    {
        return Ok(Some(head));
    }
    conn.prepare_cached(beyond)?
        .query_row(params![signal, destination], read)
        .optional()
}

/// The head of `shard`, if it has messages.
pub(crate) fn head(conn: &Connection, shard: &Shard) -> rusqlite::Result<Option<Head>> {
    conn.prepare_cached(concat!(
        "SELECT m.id, m.category, m.object, m.payload, ",
        newest_about_object!(),
        " FROM signals_outbox_message m
         WHERE m.signal = ?1 AND m.destination = ?2 AND m.scope = ?3 AND m.shard = ?4
         ORDER BY m.id LIMIT 1"
    ))?
    .query_row(
        params![shard.signal, shard.destination, shard.scope, shard.id],
        |row| {
            Ok(Head {
                shard: shard.clone(),
                row: row_at(row, 0)?,
                newest: row.get(4)?,
            })
        },
    )
    .optional()
}

/// The key a pause of shard `(scope, id)` is stored under (`SQL`: `scope || '/' || shard`).
pub(crate) fn pause_key(scope: &str, id: i64) -> String {
    format!("{scope}/{id}")
}

/// What is paused of `signal`: its categories (as stored) and its shards (`scope/id`).
#[derive(Debug, Default)]
pub(crate) struct Paused {
    categories: HashSet<String>,
    shards: HashSet<String>,
}

impl Paused {
    /// Reads the pauses of `signal`.
    pub(crate) fn of(conn: &Connection, signal: &str) -> rusqlite::Result<Self> {
        let mut paused = Self::default();
        let mut statement =
            conn.prepare_cached("SELECT kind, key FROM signals_outbox_pause WHERE signal = ?1")?;
        let mut rows = statement.query([signal])?;
        while let Some(row) = rows.next()? {
            let key: String = row.get(1)?;
            match row.get_ref(0)?.as_str()? {
                "category" => paused.categories.insert(key),
                _ => paused.shards.insert(key),
            };
        }
        Ok(paused)
    }

    pub(crate) fn category(&self, category: &str) -> bool {
        self.categories.contains(category)
    }

    pub(crate) fn shard(&self, shard: &Shard) -> bool {
        !self.shards.is_empty() && self.shards.contains(&pause_key(&shard.scope, shard.id))
    }
}

/// The group a shard's head message leads: the ids of the head and, when newer messages of
/// its shard with the same sender are about its object, of those too, oldest first; and the
/// newest of them, whose arguments stand for the group.
pub(crate) fn group(conn: &Connection, head: &Head) -> rusqlite::Result<(Vec<MessageId>, Row)> {
    let row = &head.row;
    let (Some(object), true) = (row.object, head.newest != row.id) else {
        return Ok((vec![row.id], row.clone()));
    };
    let shard = &head.shard;
    let mut statement = conn.prepare_cached(
        "SELECT id FROM signals_outbox_message
         WHERE signal = ?1 AND destination = ?2 AND scope = ?3 AND shard = ?4
           AND category = ?5 AND object = ?6 AND id >= ?7
         ORDER BY id",
    )?;
    let ids = statement
        .query_map(
            params![
                shard.signal,
                shard.destination,
                shard.scope,
                shard.id,
                row.category,
                object,
                row.id
            ],
            |row| row.get(0),
        )?
        .collect::<rusqlite::Result<Vec<MessageId>>>()?;
    let newest = conn
        .prepare_cached(
            "SELECT id, category, object, payload FROM signals_outbox_message WHERE id = ?1",
        )?
        .query_row([ids.last().copied().unwrap_or(row.id)], |row| {
            row_at(row, 0)
        })?;
    Ok((ids, newest))
}

/// Claims `shard` with `token`, charging its head group an attempt: it is not due again before
/// `now + delay_ms`, as if the delivery had failed already ("proof of failure by remaining"): a
/// delivery that succeeds removes the state, one that fails or never reports keeps the backoff
/// and the attempt.
pub(crate) fn claim(
    conn: &Connection,
    shard: &Shard,
    token: i64,
    now: i64,
    delay_ms: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO signals_outbox_shard
             (signal, destination, scope, shard, due_at, delay_ms, claim, attempts)
         VALUES (?1, ?2, ?3, ?4, ?5 + ?6, ?6, ?7, 1)
         ON CONFLICT (signal, destination, scope, shard)
         DO UPDATE SET due_at = excluded.due_at, delay_ms = excluded.delay_ms,
                       claim = excluded.claim, attempts = attempts + 1",
    )?
    .execute(params![
        shard.signal,
        shard.destination,
        shard.scope,
        shard.id,
        now,
        delay_ms,
        token
    ])?;
    Ok(())
}

/// The shards whose last claim is still `token`: the fence a delivery checks before it settles
/// anything (a shard claimed by another worker since is theirs).
pub(crate) fn held(conn: &Connection, token: i64) -> rusqlite::Result<HashSet<Shard>> {
    let mut statement = conn.prepare_cached(
        "SELECT signal, destination, scope, shard FROM signals_outbox_shard WHERE claim = ?1",
    )?;
    let rows = statement.query_map([token], |row| shard_at(row, 0))?;
    rows.collect()
}

/// Forgets the backoff of the shards still claimed with `token`: those whose delivery
/// succeeded (a failed one's claim was released by [`failed`]).
pub(crate) fn settled(conn: &Connection, token: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM signals_outbox_shard WHERE claim = ?1")?
        .execute([token])?;
    Ok(())
}

/// Removes delivered messages.
pub(crate) fn delete(conn: &Connection, ids: &[MessageId]) -> rusqlite::Result<()> {
    // One cached statement per id: cheaper in SQLite than one `IN (json_each(?))` statement
    // for the round, which parses its JSON argument per row.
    let mut statement = conn.prepare_cached("DELETE FROM signals_outbox_message WHERE id = ?1")?;
    for id in ids {
        statement.execute([id])?;
    }
    Ok(())
}

/// Forgets a shard's backoff after a success: its next message is due at once.
pub(crate) fn succeeded(conn: &Connection, shard: &Shard) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "DELETE FROM signals_outbox_shard
         WHERE signal = ?1 AND destination = ?2 AND scope = ?3 AND shard = ?4",
    )?
    .execute(params![
        shard.signal,
        shard.destination,
        shard.scope,
        shard.id
    ])?;
    Ok(())
}

/// Records a failed delivery: the error on its messages and on the shard, which is due again
/// the backoff charged at its claim after `now`; releases the claim.
pub(crate) fn failed(
    conn: &Connection,
    shard: &Shard,
    ids: &[MessageId],
    error: &str,
    now: i64,
) -> rusqlite::Result<()> {
    let mut statement =
        conn.prepare_cached("UPDATE signals_outbox_message SET last_error = ?2 WHERE id = ?1")?;
    for id in ids {
        statement.execute(params![id, error])?;
    }
    conn.prepare_cached(
        "UPDATE signals_outbox_shard
         SET failures = failures + 1, last_error = ?5, due_at = ?6 + delay_ms, claim = 0
         WHERE signal = ?1 AND destination = ?2 AND scope = ?3 AND shard = ?4",
    )?
    .execute(params![
        shard.signal,
        shard.destination,
        shard.scope,
        shard.id,
        error,
        now
    ])?;
    Ok(())
}

/// Moves messages to the dead letters with `error`, after `attempts`: they are not delivered
/// again unless retried by hand, and no longer hold their shard back.
pub(crate) fn park(
    conn: &Connection,
    ids: &[MessageId],
    attempts: u32,
    error: &str,
    now: i64,
) -> rusqlite::Result<()> {
    let mut copy = conn.prepare_cached(
        "INSERT INTO signals_outbox_parked
             (id, signal, destination, scope, shard, category, object, payload, attempts, error,
              created_at, parked_at)
         SELECT id, signal, destination, scope, shard, category, object, payload, ?4, ?2,
                created_at, ?3
         FROM signals_outbox_message WHERE id = ?1",
    )?;
    for id in ids {
        copy.execute(params![id, error, now, attempts])?;
    }
    delete(conn, ids)
}

/// Moves the parked messages `condition` picks (an SQL condition on the dead letters, with
/// `params`) back into their shards, their attempts reset; returns how many.
pub(crate) fn unpark(
    conn: &Connection,
    condition: &str,
    params: &[&dyn rusqlite::ToSql],
) -> rusqlite::Result<usize> {
    let moved = conn.execute(
        &format!(
            "INSERT INTO signals_outbox_message
                 (id, signal, destination, scope, shard, category, object, payload, attempts,
                  last_error, created_at)
             SELECT id, signal, destination, scope, shard, category, object, payload, 0, error,
                    created_at
             FROM signals_outbox_parked WHERE {condition}"
        ),
        params,
    )?;
    conn.execute(
        &format!("DELETE FROM signals_outbox_parked WHERE {condition}"),
        params,
    )?;
    Ok(moved)
}
