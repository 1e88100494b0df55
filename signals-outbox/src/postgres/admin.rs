//! What operators ask of a PostgreSQL outbox: its status, its dead letters, retrying a
//! message or a shard, and pausing.

use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row, Transaction};

use crate::admin::{CategoryRow, Waiting, shards, status_sql};
use crate::postgres::{PgOutbox, now_ms, shard_lock};
use crate::{Explanation, MessageId, OutboxError, Parked, Pause, Shard, Status};

impl sqlx::FromRow<'_, PgRow> for CategoryRow {
    fn from_row(row: &PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            shard: Shard {
                signal: row.try_get(0)?,
                destination: row.try_get(1)?,
                scope: row.try_get(2)?,
                id: row.try_get(3)?,
            },
            category: row.try_get(4)?,
            messages: row.try_get(5)?,
            oldest: row.try_get(6)?,
            due_at: row.try_get(7)?,
            failures: u32::try_from(row.try_get::<i32, _>(8)?).unwrap_or(0),
            last_error: row.try_get(9)?,
            paused: row.try_get(10)?,
        })
    }
}

/// SQL: moves the dead letters `$which` picks (a condition on them) back into their shards,
/// with their ids, their attempts reset and their error as their last.
macro_rules! unpark {
    ($which:literal) => {
        concat!(
            "WITH moved AS (DELETE FROM signals_outbox_parked WHERE ",
            $which,
            " RETURNING *)
             INSERT INTO signals_outbox_message
                 (id, signal, destination, scope, shard, category, object, payload, attempts,
                  last_error, created_at)
             OVERRIDING SYSTEM VALUE
             SELECT id, signal, destination, scope, shard, category, object, payload, 0, error,
                    created_at
             FROM moved"
        )
    };
}

/// SQL: makes the shards of the relation `$keys` (signal, destination, scope, shard) due
/// now, their row made if it was removed: their backoff, failures and last error forgotten,
/// as a success does. Their lease is left alone: a claim is taken only once its lease is
/// over, so a worker delivering the shard keeps it, and its fence holds; its attempt, being
/// made, stays charged (one), and the shard is due as soon as that lease ends.
macro_rules! due_now {
    ($keys:literal) => {
        concat!(
            "INSERT INTO signals_outbox_shard AS s
                 (signal, destination, scope, shard, due_at, delay_ms, claim, attempts)
             SELECT k.signal, k.destination, k.scope, k.shard, 0, 0, 0, 0 FROM ",
            $keys,
            "
             ON CONFLICT (signal, destination, scope, shard)
             DO UPDATE SET due_at = 0, delay_ms = 0, failures = 0, last_error = NULL,
                 attempts = CASE WHEN s.lease_until > ",
            now_ms!(),
            " THEN least(s.attempts, 1) ELSE 0 END"
        )
    };
}

/// SQL: takes the advisory lock of the shards of the relation `$keys`, shared (as an enqueue
/// does) until the transaction ends, before their rows are touched: a worker removing the row
/// of a shard it found empty takes it exclusively, so that it cannot remove it under the
/// messages put back here, nor can they come back under its removal.
macro_rules! lock_shards {
    ($keys:literal) => {
        concat!(
            "SELECT ",
            shard_lock!(
                "pg_advisory_xact_lock_shared",
                "k.signal",
                "k.destination",
                "k.scope",
                "k.shard"
            ),
            " FROM ",
            $keys
        )
    };
}

/// A dead letter's columns: id, shard (signal, destination, scope, id), category, attempts,
/// error.
type ParkedRow = (i64, String, String, String, i64, String, i32, String);

/// Binds `shard`'s key as a query's parameters `$1` to `$4`.
fn bind_shard<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    shard: &'q Shard,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    query
        .bind(&shard.signal)
        .bind(&shard.destination)
        .bind(&shard.scope)
        .bind(shard.id)
}

impl PgOutbox {
    /// The parked messages (dead letters), oldest first, each with why it was parked: a
    /// message that no longer decodes, or failed its last attempt.
    ///
    /// # Errors
    ///
    /// [`OutboxError::Postgres`].
    pub async fn parked(&self) -> Result<Vec<Parked>, OutboxError> {
        Self::parked_in(self.pool()).await
    }

    /// The parked messages, read by `executor`.
    async fn parked_in(executor: impl sqlx::PgExecutor<'_>) -> Result<Vec<Parked>, OutboxError> {
        let rows: Vec<ParkedRow> = sqlx::query_as(
            "SELECT id, signal, destination, scope, shard, category, attempts, error
                 FROM signals_outbox_parked ORDER BY id",
        )
        .fetch_all(executor)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, signal, destination, scope, shard, category, attempts, error)| Parked {
                    id,
                    shard: Shard {
                        signal,
                        destination,
                        scope,
                        id: shard,
                    },
                    category,
                    attempts: u32::try_from(attempts).unwrap_or(0),
                    error,
                },
            )
            .collect())
    }

    /// Puts parked message `id` back in its shard, its attempts reset (once its cause is
    /// fixed), or makes a waiting one's shard forget its backoff: either way it is due now.
    ///
    /// # Errors
    ///
    /// [`OutboxError::NoSuchMessage`] if no message has the id; [`OutboxError::Postgres`].
    pub async fn retry_message(&self, id: MessageId) -> Result<(), OutboxError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(lock_shards!(
            "(SELECT signal, destination, scope, shard FROM signals_outbox_parked WHERE id = $1
              UNION ALL
              SELECT signal, destination, scope, shard FROM signals_outbox_message WHERE id = $1)
             AS k"
        ))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(unpark!("id = $1"))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let due = sqlx::query(due_now!("signals_outbox_message k WHERE k.id = $1"))
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if due == 0 {
            return Err(OutboxError::NoSuchMessage(id));
        }
        tx.commit().await?;
        Ok(())
    }

    /// A read-only transaction that sees one snapshot of the outbox, and the database's clock
    /// at its start, in ms since the epoch.
    async fn snapshot(&self) -> Result<(Transaction<'_, Postgres>, i64), OutboxError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let now: i64 = sqlx::query_scalar(concat!("SELECT ", now_ms!()))
            .fetch_one(&mut *tx)
            .await?;
        Ok((tx, now))
    }

    /// Every shard holding messages, oldest first, and every parked message, as
    /// [`Outbox::status`](crate::Outbox::status) reports them (the same [`Status`], printed
    /// the same way), in one snapshot, timed by the server's clock.
    ///
    /// A shard a worker is delivering (under a lease that is not over) is `scheduled_for` the
    /// end of that lease: no other worker takes it before then, and its holder, if it died,
    /// has it tried again then (one that reports frees it sooner). Its `failures` and
    /// `last_error` are those since its last success, as on SQLite.
    ///
    /// # Errors
    ///
    /// [`OutboxError::Postgres`].
    pub async fn status(&self) -> Result<Status, OutboxError> {
        let (mut tx, now) = self.snapshot().await?;
        let rows: Vec<CategoryRow> =
            sqlx::query_as(status_sql!("greatest(s.due_at, s.lease_until)"))
                .fetch_all(&mut *tx)
                .await?;
        let shards = shards(rows, now);
        let parked = Self::parked_in(&mut *tx).await?;
        tx.commit().await?;
        Ok(Status {
            shards,
            parked,
            now,
        })
    }

    /// Why message `id` has not been delivered yet, as [`Outbox::explain`](crate::Outbox::explain)
    /// answers, read in one snapshot and timed by the database's clock; and, on PostgreSQL
    /// only, [`Explanation::Leased`]: a worker holds the message's shard (it claimed it, and
    /// is delivering it or about to), which comes before any other reason.
    ///
    /// # Errors
    ///
    /// [`OutboxError::Postgres`].
    pub async fn explain(&self, id: MessageId) -> Result<Explanation, OutboxError> {
        let (mut tx, now) = self.snapshot().await?;
        let parked: Option<(i32, String)> =
            sqlx::query_as("SELECT attempts, error FROM signals_outbox_parked WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some((attempts, error)) = parked {
            return Ok(Explanation::Parked {
                attempts: u32::try_from(attempts).unwrap_or(0),
                error,
            });
        }
        let Some(row) = sqlx::query(
            "SELECT m.signal, m.destination, m.scope, m.shard, m.category,
                    coalesce(s.attempts, 0), coalesce(m.last_error, s.last_error), s.due_at,
                    coalesce(s.lease_until, 0), s.holder,
                    (SELECT min(h.id) FROM signals_outbox_message h
                     WHERE h.signal = m.signal AND h.destination = m.destination
                       AND h.scope = m.scope AND h.shard = m.shard)
             FROM signals_outbox_message m
             LEFT JOIN signals_outbox_shard s
               ON s.signal = m.signal AND s.destination = m.destination
              AND s.scope = m.scope AND s.shard = m.shard
             WHERE m.id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(Explanation::Unknown);
        };
        let until: i64 = row.try_get(8)?;
        if until > now {
            return Ok(Explanation::Leased {
                holder: row.try_get(9)?,
                until,
                in_ms: until - now,
            });
        }
        let shard = Shard {
            signal: row.try_get(0)?,
            destination: row.try_get(1)?,
            scope: row.try_get(2)?,
            id: row.try_get(3)?,
        };
        for pause in Pause::holding(&shard, row.try_get(4)?) {
            let (signal, kind, key) = pause.row();
            let holds: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM signals_outbox_pause
                                WHERE signal = $1 AND kind = $2 AND key = $3)",
            )
            .bind(signal)
            .bind(kind)
            .bind(key)
            .fetch_one(&mut *tx)
            .await?;
            if holds {
                return Ok(Explanation::Paused(pause));
            }
        }
        let waiting = Waiting {
            id,
            head: row.try_get(10)?,
            due_at: row.try_get(7)?,
            attempts: u32::try_from(row.try_get::<i32, _>(5)?).unwrap_or(0),
            last_error: row.try_get(6)?,
        };
        tx.commit().await?;
        Ok(waiting.explain(now))
    }

    /// Makes `shard` due now, as [`Outbox::retry_shard`](crate::Outbox::retry_shard) does:
    /// its parked messages go back into it (their attempts reset, in their places by id), and
    /// it forgets its backoff, failures and last error. Returns how many parked messages went
    /// back; a shard with none and no messages is left as it is (0).
    ///
    /// A worker delivering the shard right now keeps it until its lease ends (no other worker
    /// takes it meanwhile, and its writes still commit); the shard is due as soon as that
    /// worker lets it go, or its lease ends.
    ///
    /// # Errors
    ///
    /// [`OutboxError::Postgres`]; nothing is changed then.
    pub async fn retry_shard(&self, shard: &Shard) -> Result<usize, OutboxError> {
        let mut tx = self.pool().begin().await?;
        bind_shard(sqlx::query(lock_shards!(
            "(SELECT $1::text, $2::text, $3::text, $4::bigint) AS k (signal, destination, scope, shard)"
        )), shard)
        .execute(&mut *tx)
        .await?;
        let restored = bind_shard(
            sqlx::query(unpark!(
                "signal = $1 AND destination = $2 AND scope = $3 AND shard = $4"
            )),
            shard,
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // Only a shard holding messages has a row to make due.
        bind_shard(
            sqlx::query(due_now!(
                "(SELECT signal, destination, scope, shard FROM signals_outbox_message
              WHERE signal = $1 AND destination = $2 AND scope = $3 AND shard = $4 LIMIT 1) AS k"
            )),
            shard,
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(usize::try_from(restored).unwrap_or(usize::MAX))
    }

    /// Stops delivering what `pause` names, until [`resume`](Self::resume); its messages
    /// wait. Every worker honours it from its next claim.
    ///
    /// # Errors
    ///
    /// [`OutboxError::Postgres`].
    pub async fn pause(&self, pause: &Pause) -> Result<(), OutboxError> {
        let (signal, kind, key) = pause.row();
        sqlx::query(
            "INSERT INTO signals_outbox_pause (signal, kind, key) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
        )
        .bind(signal)
        .bind(kind)
        .bind(key)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Lifts `pause`; returns whether it was set.
    ///
    /// # Errors
    ///
    /// [`OutboxError::Postgres`].
    pub async fn resume(&self, pause: &Pause) -> Result<bool, OutboxError> {
        let (signal, kind, key) = pause.row();
        let removed = sqlx::query(
            "DELETE FROM signals_outbox_pause WHERE signal = $1 AND kind = $2 AND key = $3",
        )
        .bind(signal)
        .bind(kind)
        .bind(key)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(removed > 0)
    }
}
