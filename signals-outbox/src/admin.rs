//! What operators ask of an outbox: its status, why a message has not been delivered, retrying
//! and pausing.

use std::collections::HashMap;
use std::fmt;

use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use signals_core::DurableSignal;

use crate::enqueue::{json, key};
use crate::message::{DurableSignature, MessageId, Shard};
use crate::store::{self, shard_at, shard_state};
use crate::{Outbox, OutboxError};

/// A kill switch: what [`Outbox::pause`] stops delivering, without losing its messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pause {
    /// One category (sender) of a signal; its shards wait at the first message of it.
    Category {
        /// The signal's name.
        signal: String,
        /// The category, as stored (JSON).
        category: String,
    },
    /// One shard of a signal.
    Shard {
        /// The signal's name.
        signal: String,
        /// The shard's scope, as stored.
        scope: String,
        /// The shard's id.
        id: i64,
    },
}

impl Pause {
    /// Pauses `category` of `signal`.
    ///
    /// # Errors
    ///
    /// [`OutboxError::Serialize`] if the category cannot be written as JSON.
    pub fn category<F: DurableSignature>(
        signal: &'static DurableSignal<F>,
        category: &F::Sender,
    ) -> Result<Self, OutboxError> {
        Ok(Self::Category {
            signal: signal.name().to_owned(),
            category: json(signal.name(), "sender", category)?,
        })
    }

    /// Pauses the shard `(scope, id)` of `signal`, for every destination.
    ///
    /// # Errors
    ///
    /// [`OutboxError::Serialize`] if the scope cannot be written as JSON.
    pub fn shard<F: DurableSignature>(
        signal: &'static DurableSignal<F>,
        scope: impl Serialize,
        id: i64,
    ) -> Result<Self, OutboxError> {
        Ok(Self::Shard {
            signal: signal.name().to_owned(),
            scope: key(signal.name(), "shard scope", &scope)?,
            id,
        })
    }

    pub(crate) fn row(&self) -> (&str, &str, String) {
        match self {
            Self::Category { signal, category } => (signal, "category", category.clone()),
            Self::Shard { signal, scope, id } => (signal, "shard", store::pause_key(scope, *id)),
        }
    }
}

impl fmt::Display for Pause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Category { signal, category } => write!(f, "category {category} of {signal}"),
            Self::Shard { signal, scope, id } => write!(f, "shard {scope}/{id} of {signal}"),
        }
    }
}

/// One shard that holds messages, as [`Outbox::status`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardStatus {
    /// The shard.
    pub shard: Shard,
    /// Messages waiting in it.
    pub messages: usize,
    /// Of those, per category (as stored), in order of category.
    pub categories: Vec<(String, usize)>,
    /// When it may be tried again (ms since the epoch); `None`: due now.
    pub scheduled_for: Option<i64>,
    /// Failed attempts since its last success.
    pub failures: u32,
    /// The last failure's error.
    pub last_error: Option<String>,
    /// Whether a pause holds it.
    pub paused: bool,
    /// How long its oldest message has waited (ms).
    pub oldest_age_ms: i64,
}

/// The state of an outbox: its waiting shards and its dead letters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The shards holding messages, oldest first.
    pub shards: Vec<ShardStatus>,
    /// The parked messages.
    pub parked: Vec<Parked>,
    /// The time the status was taken at (ms since the epoch).
    pub now: i64,
}

/// A parked message (a dead letter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parked {
    /// Its id.
    pub id: MessageId,
    /// Its shard.
    pub shard: Shard,
    /// Its category, as stored.
    pub category: String,
    /// Attempts made.
    pub attempts: u32,
    /// Why it was parked.
    pub error: String,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let due = self
            .shards
            .iter()
            .filter(|s| s.scheduled_for.is_none() && !s.paused)
            .count();
        let scheduled = self
            .shards
            .iter()
            .filter(|s| s.scheduled_for.is_some() && !s.paused)
            .count();
        let paused = self.shards.iter().filter(|s| s.paused).count();
        writeln!(
            f,
            "{} shards waiting: {due} due, {scheduled} scheduled, {paused} paused; {} parked",
            self.shards.len(),
            self.parked.len()
        )?;
        for status in &self.shards {
            let state = match (status.paused, status.scheduled_for) {
                (true, _) => "paused".to_owned(),
                (false, None) => "due".to_owned(),
                (false, Some(at)) => format!("retry in {} ms", (at - self.now).max(0)),
            };
            let categories: Vec<String> = status
                .categories
                .iter()
                .map(|(c, n)| format!("{c} ×{n}"))
                .collect();
            write!(
                f,
                "  {}: {} messages ({}), {state}, oldest {} ms",
                status.shard,
                status.messages,
                categories.join(", "),
                status.oldest_age_ms
            )?;
            if let Some(error) = &status.last_error {
                write!(f, ", {} failures, last: {error}", status.failures)?;
            }
            writeln!(f)?;
        }
        for parked in &self.parked {
            writeln!(
                f,
                "  parked {} in {} ({}, {} attempts): {}",
                parked.id, parked.shard, parked.category, parked.attempts, parked.error
            )?;
        }
        Ok(())
    }
}

/// Why a message has not been delivered yet, as [`Outbox::explain`] answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Explanation {
    /// It is due: the next drain delivers it.
    Due,
    /// It waits behind an earlier message of its shard (which is itself explained by
    /// `explain(head)`).
    Behind {
        /// The shard's first message.
        head: MessageId,
    },
    /// Its shard failed and waits out its backoff.
    Scheduled {
        /// When it is tried again (ms since the epoch).
        at: i64,
        /// In how long (ms).
        in_ms: i64,
        /// Attempts made on it.
        attempts: u32,
        /// The last error.
        last_error: Option<String>,
    },
    /// A pause holds it.
    Paused(Pause),
    /// On PostgreSQL: a worker holds its shard under a lease (it claimed the shard, and is
    /// delivering it or about to); no other worker takes the shard before the lease ends.
    Leased {
        /// The worker's name (`PgWorker::name`, on PostgreSQL).
        holder: Option<String>,
        /// When the lease ends (ms since the epoch, by the database's clock).
        until: i64,
        /// In how long (ms).
        in_ms: i64,
    },
    /// It was parked (dead letters): it is not retried unless [`Outbox::retry_message`] says so.
    Parked {
        /// Attempts made.
        attempts: u32,
        /// Why.
        error: String,
    },
    /// No message has this id: it was delivered, or never written (or its transaction rolled
    /// back).
    Unknown,
}

/// A waiting message, neither parked, paused nor (on PostgreSQL) leased, as either backend's
/// `explain` reads it.
pub(crate) struct Waiting {
    pub(crate) id: MessageId,
    /// Its shard's first message.
    pub(crate) head: MessageId,
    /// When its shard may be tried again (ms since the epoch), if it failed.
    pub(crate) due_at: Option<i64>,
    /// Attempts made on its shard's head.
    pub(crate) attempts: u32,
    pub(crate) last_error: Option<String>,
}

impl Waiting {
    /// Why it waits, at `now`: behind its shard's head, or scheduled after a failure, or due.
    pub(crate) fn explain(self, now: i64) -> Explanation {
        if self.head != self.id {
            return Explanation::Behind { head: self.head };
        }
        match self.due_at.filter(|at| *at > now) {
            Some(at) => Explanation::Scheduled {
                at,
                in_ms: at - now,
                attempts: self.attempts,
                last_error: self.last_error,
            },
            None => Explanation::Due,
        }
    }
}

impl Pause {
    /// The pauses that would hold a message of `category` in `shard`, in the order `explain`
    /// reports them.
    pub(crate) fn holding(shard: &Shard, category: String) -> [Self; 2] {
        [
            Self::Shard {
                signal: shard.signal.clone(),
                scope: shard.scope.clone(),
                id: shard.id,
            },
            Self::Category {
                signal: shard.signal.clone(),
                category,
            },
        ]
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Due => write!(f, "due: the next drain delivers it"),
            Self::Behind { head } => {
                write!(f, "waiting behind message {head}, the first of its shard")
            }
            Self::Scheduled {
                at,
                in_ms,
                attempts,
                last_error,
            } => {
                write!(
                    f,
                    "scheduled for {at} (in {in_ms} ms) after {attempts} attempts"
                )?;
                if let Some(error) = last_error {
                    write!(f, "; last error: {error}")?;
                }
                Ok(())
            }
            Self::Paused(pause) => write!(f, "paused: {pause}"),
            Self::Leased {
                holder,
                until,
                in_ms,
            } => write!(
                f,
                "its shard is held by worker {}, whose lease ends at {until} (in {in_ms} ms)",
                holder.as_deref().unwrap_or("(unnamed)")
            ),
            Self::Parked { attempts, error } => {
                write!(f, "parked after {attempts} attempts: {error}")
            }
            Self::Unknown => write!(f, "no such message waiting: delivered, or never committed"),
        }
    }
}

/// SQL, for both backends: a status's rows, one per shard and category of the waiting
/// messages, in order of each one's oldest message, with `$until` (of the shard's row `s`,
/// `NULL` without one) as when the shard may be tried again; the columns of a
/// [`CategoryRow`], the shard's key first.
macro_rules! status_sql {
    ($until:literal) => {
        concat!(
            "SELECT m.signal, m.destination, m.scope, m.shard, m.category, count(*),
                    min(m.created_at), max(",
            $until,
            "), max(coalesce(s.failures, 0)), max(s.last_error),
                    EXISTS (SELECT 1 FROM signals_outbox_pause p
                            WHERE p.signal = m.signal
                              AND ((p.kind = 'shard' AND p.key = m.scope || '/' || m.shard)
                                OR (p.kind = 'category' AND p.key = m.category)))
             FROM signals_outbox_message m",
            $crate::store::shard_state!(),
            "GROUP BY m.signal, m.destination, m.scope, m.shard, m.category
             ORDER BY min(m.id)"
        )
    };
}
#[cfg(feature = "postgres")]
pub(crate) use status_sql;

/// A row of [`status_sql!`]: a shard's waiting messages of one category, and the shard's
/// state.
pub(crate) struct CategoryRow {
    pub(crate) shard: Shard,
    pub(crate) category: String,
    pub(crate) messages: i64,
    /// When its oldest message was written (ms).
    pub(crate) oldest: i64,
    /// Not tried again before (ms); `None`: no backoff.
    pub(crate) due_at: Option<i64>,
    pub(crate) failures: u32,
    pub(crate) last_error: Option<String>,
    pub(crate) paused: bool,
}

/// The shards of a status at `now`, from its rows, which come per shard and category in
/// order of each one's oldest message: a shard is first met at its oldest, so the shards
/// come out oldest first.
pub(crate) fn shards(rows: Vec<CategoryRow>, now: i64) -> Vec<ShardStatus> {
    let mut shards: Vec<ShardStatus> = Vec::new();
    let mut index: HashMap<Shard, usize> = HashMap::new();
    for row in rows {
        let count = usize::try_from(row.messages).unwrap_or(0);
        let age = (now - row.oldest).max(0);
        if let Some(&at) = index.get(&row.shard) {
            let status = &mut shards[at];
            status.messages += count;
            status.categories.push((row.category, count));
            status.paused |= row.paused;
            status.oldest_age_ms = status.oldest_age_ms.max(age);
            continue;
        }
        index.insert(row.shard.clone(), shards.len());
        shards.push(ShardStatus {
            shard: row.shard,
            messages: count,
            categories: vec![(row.category, count)],
            scheduled_for: row.due_at.filter(|at| *at > now),
            failures: row.failures,
            last_error: row.last_error,
            paused: row.paused,
            oldest_age_ms: age,
        });
    }
    for status in &mut shards {
        status.categories.sort();
    }
    shards
}

impl Outbox {
    /// Stops delivering what `pause` names, until [`resume`](Self::resume); its messages wait.
    ///
    /// # Errors
    ///
    /// A database error.
    pub fn pause(&self, pause: &Pause) -> Result<(), OutboxError> {
        let (signal, kind, key) = pause.row();
        self.connect()?.execute(
            "INSERT OR IGNORE INTO signals_outbox_pause (signal, kind, key) VALUES (?1, ?2, ?3)",
            params![signal, kind, key],
        )?;
        Ok(())
    }

    /// Lifts `pause`; returns whether it was set.
    ///
    /// # Errors
    ///
    /// A database error.
    pub fn resume(&self, pause: &Pause) -> Result<bool, OutboxError> {
        let (signal, kind, key) = pause.row();
        let removed = self.connect()?.execute(
            "DELETE FROM signals_outbox_pause WHERE signal = ?1 AND kind = ?2 AND key = ?3",
            params![signal, kind, key],
        )?;
        Ok(removed > 0)
    }

    /// Every shard holding messages, and every parked message.
    ///
    /// # Errors
    ///
    /// A database error.
    pub fn status(&self) -> Result<Status, OutboxError> {
        let conn = self.connect()?;
        let now = self.now();
        let mut statement = conn.prepare(status_sql!("s.due_at"))?;
        let rows = statement.query_map([], |row| {
            Ok(CategoryRow {
                shard: shard_at(row, 0)?,
                category: row.get(4)?,
                messages: row.get(5)?,
                oldest: row.get(6)?,
                due_at: row.get(7)?,
                failures: row.get(8)?,
                last_error: row.get(9)?,
                paused: row.get(10)?,
            })
        })?;
        let shards = shards(rows.collect::<Result<Vec<_>, _>>()?, now);
        Ok(Status {
            shards,
            parked: Self::parked(&conn)?,
            now,
        })
    }

    fn parked(conn: &rusqlite::Connection) -> Result<Vec<Parked>, OutboxError> {
        let mut statement = conn.prepare(
            "SELECT id, signal, destination, scope, shard, category, attempts, error
             FROM signals_outbox_parked ORDER BY id",
        )?;
        let rows = statement.query_map([], |row| {
            Ok(Parked {
                id: row.get(0)?,
                shard: shard_at(row, 1)?,
                category: row.get(5)?,
                attempts: row.get(6)?,
                error: row.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Why message `id` has not been delivered yet.
    ///
    /// # Errors
    ///
    /// A database error.
    pub fn explain(&self, id: MessageId) -> Result<Explanation, OutboxError> {
        let conn = self.connect()?;
        let parked = conn
            .query_row(
                "SELECT attempts, error FROM signals_outbox_parked WHERE id = ?1",
                [id],
                |row| {
                    Ok(Explanation::Parked {
                        attempts: row.get(0)?,
                        error: row.get(1)?,
                    })
                },
            )
            .optional()?;
        if let Some(parked) = parked {
            return Ok(parked);
        }
        let message = conn
            .query_row(
                concat!(
                    "SELECT m.signal, m.destination, m.scope, m.shard, m.category,
                            coalesce(s.attempts, 0), m.last_error, s.due_at, s.last_error,
                            (SELECT min(id) FROM signals_outbox_message h
                             WHERE h.signal = m.signal AND h.destination = m.destination
                               AND h.scope = m.scope AND h.shard = m.shard)
                     FROM signals_outbox_message m",
                    shard_state!(),
                    "WHERE m.id = ?1"
                ),
                [id],
                |row| {
                    Ok((
                        shard_at(row, 0)?,
                        row.get::<_, String>(4)?,
                        row.get::<_, u32>(5)?,
                        row.get::<_, Option<String>>(6)?,
                        row.get::<_, Option<i64>>(7)?,
                        row.get::<_, Option<String>>(8)?,
                        row.get::<_, MessageId>(9)?,
                    ))
                },
            )
            .optional()?;
        let Some((shard, category, attempts, error, due_at, shard_error, head)) = message else {
            return Ok(Explanation::Unknown);
        };
        for pause in Pause::holding(&shard, category) {
            let (signal, kind, key) = pause.row();
            let holds: bool = conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM signals_outbox_pause
                                WHERE signal = ?1 AND kind = ?2 AND key = ?3)",
                params![signal, kind, key],
                |row| row.get(0),
            )?;
            if holds {
                return Ok(Explanation::Paused(pause));
            }
        }
        Ok(Waiting {
            id,
            head,
            due_at,
            attempts,
            last_error: error.or(shard_error),
        }
        .explain(self.now()))
    }

    /// Makes message `id` due now: a parked one goes back to its shard (its attempts reset),
    /// a waiting one's shard forgets its backoff.
    ///
    /// # Errors
    ///
    /// [`OutboxError::NoSuchMessage`] if no message has the id; a database error.
    pub fn retry_message(&self, id: MessageId) -> Result<(), OutboxError> {
        let mut conn = self.connect()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let restored = store::unpark(&tx, "id = ?1", &[&id])?;
        let reset = tx.execute(
            "DELETE FROM signals_outbox_shard
             WHERE (signal, destination, scope, shard) IN
                   (SELECT signal, destination, scope, shard FROM signals_outbox_message WHERE id = ?1)",
            [id],
        )?;
        let exists: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM signals_outbox_message WHERE id = ?1)",
            [id],
            |row| row.get(0),
        )?;
        if restored + reset == 0 && !exists {
            return Err(OutboxError::NoSuchMessage(id));
        }
        tx.commit()?;
        Ok(())
    }

    /// Makes `shard` due now: it forgets its backoff, and its parked messages go back into it
    /// (their attempts reset). Returns how many parked messages went back.
    ///
    /// # Errors
    ///
    /// A database error.
    pub fn retry_shard(&self, shard: &Shard) -> Result<usize, OutboxError> {
        let mut conn = self.connect()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let restored = store::unpark(
            &tx,
            "signal = ?1 AND destination = ?2 AND scope = ?3 AND shard = ?4",
            params![shard.signal, shard.destination, shard.scope, shard.id],
        )?;
        store::succeeded(&tx, shard)?;
        tx.commit()?;
        Ok(restored)
    }
}
