//! Tombstones: the record that an object was deleted, for the receivers of messages about it
//! that arrive after the deletion (Sentry's `maybe_process_tombstone`).

use rusqlite::Connection;

/// Records that `object` of `table` was deleted; recording it again is a no-op. Returns
/// whether this call recorded it.
///
/// # Errors
///
/// A database error.
pub fn record_tombstone(conn: &Connection, table: &str, object: i64) -> rusqlite::Result<bool> {
    let inserted = conn.execute(
        "INSERT OR IGNORE INTO signals_outbox_tombstone (table_name, object, created_at)
         VALUES (?1, ?2, CAST(unixepoch('subsec') * 1000 AS INTEGER))",
        rusqlite::params![table, object],
    )?;
    Ok(inserted == 1)
}

/// Loads the object a message is about with `load`; if it is gone, records its tombstone and
/// returns `None`, so that the receiver returns early (the deletion is what it delivers).
///
/// ```
/// # use signals::outbox::maybe_process_tombstone;
/// # fn demo(conn: &rusqlite::Connection, id: i64) -> rusqlite::Result<()> {
/// let Some(name) = maybe_process_tombstone(conn, "integration", id, |conn| {
///     conn.query_row("SELECT name FROM integration WHERE id = ?1", [id], |row| row.get::<_, String>(0))
/// })?
/// else {
///     return Ok(()); // deleted: its tombstone is recorded
/// };
/// # let _ = name; Ok(()) }
/// ```
///
/// # Errors
///
/// An error of `load` other than "no row", or of recording the tombstone.
pub fn maybe_process_tombstone<T>(
    conn: &Connection,
    table: &str,
    object: i64,
    load: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<Option<T>> {
    match load(conn) {
        Ok(found) => Ok(Some(found)),
        Err(rusqlite::Error::QueryReturnedNoRows) => {
            record_tombstone(conn, table, object)?;
            Ok(None)
        }
        Err(error) => Err(error),
    }
}
