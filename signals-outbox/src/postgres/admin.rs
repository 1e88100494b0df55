//! What operators ask of a PostgreSQL outbox: its dead letters, retrying one, and pausing.

use crate::postgres::{PgOutbox, shard_lock};
use crate::{MessageId, OutboxError, Parked, Pause, Shard};

/// A dead letter's columns: id, shard (signal, destination, scope, id), category, attempts,
/// error.
type ParkedRow = (i64, String, String, String, i64, String, i32, String);

impl PgOutbox {
    /// The parked messages (dead letters), oldest first, each with why it was parked: a
    /// message that no longer decodes, or failed its last attempt.
    ///
    /// # Errors
    ///
    /// [`OutboxError::Postgres`].
    pub async fn parked(&self) -> Result<Vec<Parked>, OutboxError> {
        let rows: Vec<ParkedRow> = sqlx::query_as(
            "SELECT id, signal, destination, scope, shard, category, attempts, error
                 FROM signals_outbox_parked ORDER BY id",
        )
        .fetch_all(self.pool())
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
        // The shard's lock first, as an enqueue takes it: a worker removing the shard's row
        // (it found the shard empty) cannot do so under this message.
        sqlx::query(concat!(
            "SELECT ",
            shard_lock!(
                "pg_advisory_xact_lock_shared",
                "signal",
                "destination",
                "scope",
                "shard"
            ),
            " FROM (SELECT signal, destination, scope, shard FROM signals_outbox_parked WHERE id = $1
                    UNION ALL
                    SELECT signal, destination, scope, shard FROM signals_outbox_message WHERE id = $1)
                   AS k"
        ))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "WITH moved AS (DELETE FROM signals_outbox_parked WHERE id = $1 RETURNING *)
             INSERT INTO signals_outbox_message
                 (id, signal, destination, scope, shard, category, object, payload, attempts,
                  last_error, created_at)
             OVERRIDING SYSTEM VALUE
             SELECT id, signal, destination, scope, shard, category, object, payload, 0, error,
                    created_at
             FROM moved",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        // Its shard is due now, its backoff forgotten; its row made if it was removed.
        let due = sqlx::query(
            "INSERT INTO signals_outbox_shard
                 (signal, destination, scope, shard, due_at, delay_ms, claim, attempts)
             SELECT signal, destination, scope, shard, 0, 0, 0, 0
             FROM signals_outbox_message WHERE id = $1
             ON CONFLICT (signal, destination, scope, shard)
             DO UPDATE SET due_at = 0, delay_ms = 0, attempts = 0",
        )
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
