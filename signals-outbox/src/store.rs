//! The statements of enqueueing, delivering and parking, in one place: the storage seam. A
//! second backend (PostgreSQL) supplies the same operations; the worker only calls these. The
//! operators' reads and pauses (`admin.rs`) use the same tables and share `shard_state!` and
//! `shard_at` from here.

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
    pub(crate) attempts: u32,
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

/// The shards of `signal` with a message at or below `up_to` that are due at `now`, oldest
/// head first, at most `limit`; each with its head message's id.
pub(crate) fn due_shards(
    conn: &Connection,
    signal: &str,
    only: Option<&Shard>,
    up_to: MessageId,
    now: i64,
    limit: usize,
) -> rusqlite::Result<Vec<(Shard, MessageId)>> {
    let mut statement = conn.prepare_cached(concat!(
        "SELECT m.signal, m.destination, m.scope, m.shard, MIN(m.id)
         FROM signals_outbox_message m",
        shard_state!(),
        "WHERE m.signal = ?1 AND m.id <= ?2 AND (s.due_at IS NULL OR s.due_at <= ?3)
           AND (?4 IS NULL OR (m.destination = ?4 AND m.scope = ?5 AND m.shard = ?6))
           AND NOT EXISTS (SELECT 1 FROM signals_outbox_pause p
                           WHERE p.signal = m.signal AND p.kind = 'shard'
                             AND p.key = m.scope || '/' || m.shard)
         GROUP BY m.signal, m.destination, m.scope, m.shard
         ORDER BY MIN(m.id)
         LIMIT ?7",
    ))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = statement.query_map(
        params![
            signal,
            up_to,
            now,
            only.map(|shard| &shard.destination),
            only.map(|shard| &shard.scope),
            only.map(|shard| shard.id),
            limit
        ],
        |row| Ok((shard_at(row, 0)?, row.get(4)?)),
    )?;
    rows.collect()
}

/// Whether `category` of `signal` is paused.
pub(crate) fn category_paused(
    conn: &Connection,
    signal: &str,
    category: &str,
) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM signals_outbox_pause
                        WHERE signal = ?1 AND kind = 'category' AND key = ?2)",
    )?
    .query_row(params![signal, category], |row| row.get(0))
}

/// The group a shard's head message leads: the head and, when it names an object, every
/// message of its shard with the same sender and object, oldest first.
pub(crate) fn group(
    conn: &Connection,
    shard: &Shard,
    head: MessageId,
) -> rusqlite::Result<Vec<Row>> {
    let mut statement = conn.prepare_cached(
        "SELECT m.id, m.category, m.object, m.payload, m.attempts
         FROM signals_outbox_message h
         JOIN signals_outbox_message m
           ON m.id = h.id
           OR (h.object IS NOT NULL AND m.signal = h.signal AND m.destination = h.destination
               AND m.scope = h.scope AND m.shard = h.shard AND m.category = h.category
               AND m.object = h.object)
         WHERE h.id = ?1 AND h.signal = ?2
         ORDER BY m.id",
    )?;
    let rows = statement.query_map(params![head, shard.signal], |row| {
        Ok(Row {
            id: row.get(0)?,
            category: row.get(1)?,
            object: row.get(2)?,
            payload: row.get(3)?,
            attempts: row.get(4)?,
        })
    })?;
    rows.collect()
}

/// Charges an attempt to each of `ids`.
pub(crate) fn charge(conn: &Connection, ids: &[MessageId]) -> rusqlite::Result<()> {
    let mut statement = conn.prepare_cached(
        "UPDATE signals_outbox_message SET attempts = attempts + 1 WHERE id = ?1",
    )?;
    for id in ids {
        statement.execute([id])?;
    }
    Ok(())
}

/// The backoff charged at the shard's last claim, in ms (0 if it has no state).
pub(crate) fn delay(conn: &Connection, shard: &Shard) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "SELECT delay_ms FROM signals_outbox_shard
         WHERE signal = ?1 AND destination = ?2 AND scope = ?3 AND shard = ?4",
    )?
    .query_row(
        params![shard.signal, shard.destination, shard.scope, shard.id],
        |row| row.get(0),
    )
    .optional()
    .map(Option::unwrap_or_default)
}

/// Claims `shard` with `token`: it is not due again before `now + delay_ms`, as if the delivery
/// had failed already ("proof of failure by remaining"): a delivery that succeeds removes the
/// state, one that fails or never reports keeps the backoff.
pub(crate) fn claim(
    conn: &Connection,
    shard: &Shard,
    token: i64,
    now: i64,
    delay_ms: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO signals_outbox_shard (signal, destination, scope, shard, due_at, delay_ms, claim)
         VALUES (?1, ?2, ?3, ?4, ?5 + ?6, ?6, ?7)
         ON CONFLICT (signal, destination, scope, shard)
         DO UPDATE SET due_at = excluded.due_at, delay_ms = excluded.delay_ms, claim = excluded.claim",
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

/// Whether the shard's last claim is still `token`: the fence a delivery checks before it
/// settles anything.
pub(crate) fn holds(conn: &Connection, shard: &Shard, token: i64) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM signals_outbox_shard
                        WHERE signal = ?1 AND destination = ?2 AND scope = ?3 AND shard = ?4
                          AND claim = ?5)",
    )?
    .query_row(
        params![
            shard.signal,
            shard.destination,
            shard.scope,
            shard.id,
            token
        ],
        |row| row.get(0),
    )
}

/// Removes delivered messages.
pub(crate) fn delete(conn: &Connection, ids: &[MessageId]) -> rusqlite::Result<()> {
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
/// the backoff charged at its claim after `now`.
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
         SET failures = failures + 1, last_error = ?5, due_at = ?6 + delay_ms
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

/// Moves messages to the dead letters with `error`: they are not delivered again unless
/// retried by hand, and no longer hold their shard back.
pub(crate) fn park(
    conn: &Connection,
    ids: &[MessageId],
    error: &str,
    now: i64,
) -> rusqlite::Result<()> {
    let mut copy = conn.prepare_cached(
        "INSERT INTO signals_outbox_parked
             (id, signal, destination, scope, shard, category, object, payload, attempts, error,
              created_at, parked_at)
         SELECT id, signal, destination, scope, shard, category, object, payload, attempts, ?2,
                created_at, ?3
         FROM signals_outbox_message WHERE id = ?1",
    )?;
    for id in ids {
        copy.execute(params![id, error, now])?;
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
