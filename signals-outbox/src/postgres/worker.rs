//! [`PgWorker`]: delivering a PostgreSQL outbox's messages, from any number of processes.
//!
//! A round is one transaction: it reads the head groups of the shards the previous round
//! claimed, runs their receivers (each group's writes in a savepoint, taken only when a
//! receiver writes), then locks those shards if their fencing token is still this worker's:
//! if any was taken over meanwhile (this worker was paused or slow past its lease), the round
//! commits nothing. Otherwise it settles them (removes what was delivered, backs off what
//! failed, parks what is dead) and claims the next round's shards with `FOR UPDATE SKIP
//! LOCKED`, charging each an attempt. Its commit publishes the deliveries and the new leases
//! together: one commit per round.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Waker};
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use tokio::runtime::Handle;

use super::{CHANNEL, PgOutbox, now_ms, shard_lock};
use crate::OutboxError;
use crate::message::{Delivery, Lending, MessageId, Shard, State};
/// SQL: rows `$a` and `$b` are of the same shard.
macro_rules! same_shard {
    ($a:literal, $b:literal) => {
        concat!(
            $a,
            ".signal = ",
            $b,
            ".signal AND ",
            $a,
            ".destination = ",
            $b,
            ".destination AND ",
            $a,
            ".scope = ",
            $b,
            ".scope AND ",
            $a,
            ".shard = ",
            $b,
            ".shard"
        )
    };
}

/// SQL: the shard keys bound as parameters `$2` to `$5` (by `bind_keys!`), as the relation
/// `k`.
macro_rules! keys {
    () => {
        "unnest($2::text[], $3::text[], $4::text[], $5::bigint[]) AS k (signal, destination, scope, shard)"
    };
}

/// Binds `$keys`' columns as a query's next four parameters (`$2` to `$5` after its token).
macro_rules! bind_keys {
    ($query:expr, $keys:expr) => {
        $query
            .bind(&$keys.signal)
            .bind(&$keys.destination)
            .bind(&$keys.scope)
            .bind(&$keys.id)
    };
}

use crate::worker::{
    Deliver, Drained, FIRST_DELAY_MS, Failure, Verdict, never_reported, report_failure,
    report_parked,
};

/// Delivers a set of durable signals' messages from a PostgreSQL outbox; run as many as you
/// like, in as many processes and on as many machines.
///
/// ```no_run
/// # use signals::outbox::postgres::{PgOutbox, PgWorker};
/// # #[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)] pub enum Category { A }
/// # #[derive(serde::Serialize, serde::Deserialize)] pub struct MemberJoined { pub id: u64 }
/// # signals::signal! { pub static member_joined: durable Signal<MemberJoined, sender = Category>; }
/// # async fn demo(outbox: PgOutbox) -> Result<(), signals::outbox::OutboxError> {
/// let mut worker = PgWorker::new(&outbox).signal(&member_joined);
/// worker.run(tokio::signal::ctrl_c()).await?; // until Ctrl-C
/// # Ok(()) }
/// ```
pub struct PgWorker {
    outbox: PgOutbox,
    /// The worker's own connections: the application's options, and a server-side limit on
    /// idling in a transaction (a paused worker loses its locks with its lease).
    pool: Option<PgPool>,
    /// Shared with each round's blocking thread.
    signals: Arc<BTreeMap<&'static str, &'static dyn Deliver>>,
    state: Arc<State>,
    max_attempts: u32,
    batch: usize,
    per_shard: usize,
    poll: Duration,
    lease: Duration,
    max_delay: Duration,
    name: String,
    /// The claim the last round committed and the next delivers.
    claimed: Option<Claim>,
    totals: Drained,
    failed_rounds: u64,
}

impl std::fmt::Debug for PgWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgWorker")
            .field("name", &self.name)
            .field("signals", &self.signals.keys().collect::<Vec<_>>())
            .field("max_attempts", &self.max_attempts)
            .field("batch", &self.batch)
            .field("poll", &self.poll)
            .field("lease", &self.lease)
            .field("state_types", &self.state.type_count())
            .finish_non_exhaustive()
    }
}

impl PgWorker {
    /// A worker on `outbox`; add its signals with [`signal`](Self::signal). It connects when
    /// it first drains, with the options of the outbox's pool.
    #[must_use]
    pub fn new(outbox: &PgOutbox) -> Self {
        static WORKERS: AtomicU64 = AtomicU64::new(0);
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|host| host.trim().to_owned())
            .unwrap_or_default();
        let name = format!(
            "{host}:{}:{}",
            std::process::id(),
            WORKERS.fetch_add(1, Ordering::Relaxed)
        );
        Self {
            outbox: outbox.clone(),
            pool: None,
            signals: Arc::default(),
            state: Arc::new(State::default()),
            max_attempts: 10,
            batch: 100,
            per_shard: 10,
            poll: Duration::from_secs(1),
            lease: Duration::from_secs(30),
            max_delay: Duration::from_secs(3600),
            name,
            claimed: None,
            totals: Drained::default(),
            failed_rounds: 0,
        }
    }

    /// Delivers `signal`'s messages too.
    #[must_use]
    pub fn signal(mut self, signal: &'static dyn Deliver) -> Self {
        Arc::make_mut(&mut self.signals).insert(signal.name(), signal);
        self
    }

    /// Delivers each of `signals`' messages too.
    #[must_use]
    pub fn signals(mut self, signals: impl IntoIterator<Item = &'static dyn Deliver>) -> Self {
        for signal in signals {
            self = self.signal(signal);
        }
        self
    }

    /// Lends `value` to every delivery, where receivers get it with
    /// [`Delivery::state`]. One value per type; a second of the same type replaces the first.
    #[must_use]
    pub fn state<T: std::any::Any + Send + Sync>(mut self, value: Arc<T>) -> Self {
        Arc::make_mut(&mut self.state).insert(value);
        self
    }

    /// After how many attempts a message is parked (dead letters) instead of retried
    /// (default 10; at least 1).
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// How many shards one round claims and delivers in one transaction (default 100).
    #[must_use]
    pub fn batch(mut self, shards: usize) -> Self {
        self.batch = shards.max(1);
        self
    }

    /// How many groups (a message and those coalesced with it) of each claimed shard a round
    /// delivers, one after another, in order (default 10; at least 1). A shard's later groups
    /// wait while its earlier one fails; after an attempt that never reported (its worker
    /// died), a shard delivers its head alone, so that the attempt is charged to the right
    /// message.
    #[must_use]
    pub fn per_shard(mut self, groups: usize) -> Self {
        self.per_shard = groups.max(1);
        self
    }

    /// How long [`run`](Self::run) waits for a notification before it looks anyway
    /// (default 1 s).
    #[must_use]
    pub fn poll(mut self, every: Duration) -> Self {
        self.poll = every;
        self
    }

    /// How long a claim holds its shards (default 30 s; at least 1 s, to which a shorter
    /// lease is raised): another worker takes them over after it, and this one's late writes
    /// to them are refused. Longer than a round's receivers take, or they are delivered
    /// twice. The server cuts this worker off if it idles three leases inside a transaction.
    ///
    /// The floor keeps a lease longer than a round's own statements: a lease of a few
    /// milliseconds would let every round be taken over (fenced) before it commits, and the
    /// server cut off a worker whose receivers paused for longer than three of them.
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(MIN_LEASE);
        self
    }

    /// The longest backoff of a failing shard (default 1 h).
    #[must_use]
    pub fn max_delay(mut self, cap: Duration) -> Self {
        self.max_delay = cap;
        self
    }

    /// The name the worker's leases carry (`host:pid:n` by default), shown as their holder.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// What this worker did since it was made, all rounds together: for metrics.
    #[must_use]
    pub fn totals(&self) -> Drained {
        self.totals
    }

    /// How many of this worker's rounds failed (the database went away, a statement failed)
    /// and were rolled back, to be tried again.
    #[must_use]
    pub fn failed_rounds(&self) -> u64 {
        self.failed_rounds
    }

    /// Delivers until `shutdown` completes (its output is ignored: `tokio::signal::ctrl_c()`
    /// serves): everything due, then again on each notification of a commit that enqueued
    /// for its signals, or every poll interval. A round that fails
    /// (the server restarted, the network dropped) is logged as `outbox.worker_error` and
    /// tried again, waiting twice as long each time, up to 30 s; the worker reconnects.
    /// Shutdown is checked between rounds: the round in hand finishes.
    ///
    /// # Errors
    ///
    /// [`OutboxError::NoSignals`] without signals; nothing else stops it.
    pub async fn run(&mut self, shutdown: impl Future) -> Result<(), OutboxError> {
        if self.signals.is_empty() {
            return Err(OutboxError::NoSignals);
        }
        let mut shutdown = pin!(shutdown);
        let mut listener: Option<PgListener> = None;
        let mut pause = self.poll;
        loop {
            if listener.is_none() {
                listener = self.listen().await;
            }
            match self.drain_until(shutdown.as_mut()).await {
                Ok(Some(())) => return self.release(true).await,
                Ok(None) => pause = self.poll,
                Err(error) => {
                    tracing::error!(name: "outbox.worker_error", target: "signals", error = %error, "the outbox worker's round failed; retrying");
                    pause = (pause * 2).min(Duration::from_secs(30));
                }
            }
            tokio::select! {
                _ = &mut shutdown => return self.release(true).await,
                woken = wait(listener.as_mut(), &self.signals) => {
                    if !woken {
                        listener = None; // lost: reconnected at the next turn
                    }
                }
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Delivers every message due now, in rounds, and returns what it did.
    ///
    /// # Errors
    ///
    /// [`OutboxError::NoSignals`] without signals, or a database error (what was delivered
    /// before it stays delivered).
    pub async fn drain_once(&mut self) -> Result<Drained, OutboxError> {
        let mut total = Drained::default();
        loop {
            let (round, more) = self.round().await?;
            total += round;
            if !more {
                return Ok(total);
            }
        }
    }

    /// Drains as [`drain_once`](Self::drain_once) does, but returns `Some(())` as soon as
    /// `shutdown` has completed, between rounds.
    async fn drain_until(
        &mut self,
        mut shutdown: std::pin::Pin<&mut impl Future>,
    ) -> Result<Option<()>, OutboxError> {
        loop {
            // A context of its own, not held across the round's awaits (it is not `Send`).
            let done = {
                let mut cx = Context::from_waker(Waker::noop());
                shutdown.as_mut().poll(&mut cx).is_ready()
            };
            if done {
                return Ok(Some(()));
            }
            let (_, more) = self.round().await?;
            if !more {
                return Ok(None);
            }
        }
    }

    /// Gives back the shards the last round claimed and this worker will not deliver (it is
    /// stopping), uncharging their attempt: other workers need not wait out the lease.
    async fn release(&mut self, uncharge: bool) -> Result<(), OutboxError> {
        if let Some(claim) = self.claimed.take() {
            give_back_or_log(&self.pool(), &claim, uncharge).await;
        }
        Ok(())
    }

    /// A listener on the channel enqueues notify, or `None` (logged) when it cannot connect:
    /// the worker polls meanwhile.
    async fn listen(&mut self) -> Option<PgListener> {
        let pool = self.pool();
        let listening = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        match listening.await {
            Ok(listener) => Some(listener),
            Err(error) => {
                tracing::warn!(name: "outbox.listen_error", target: "signals", error = %error, "the outbox worker cannot listen for notifications; polling");
                None
            }
        }
    }

    /// The worker's pool, made on first use.
    fn pool(&mut self) -> PgPool {
        if let Some(pool) = &self.pool {
            return pool.clone();
        }
        // Three leases: a worker paused in a transaction (between its fence and its commit,
        // holding the fence's locks) is cut off, and its shards freed.
        let timeout = (self.lease.as_millis() * 3).max(1).to_string();
        let options = (*self.outbox.pool().connect_options())
            .clone()
            .options([("idle_in_transaction_session_timeout", timeout.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect_lazy_with(options);
        self.pool = Some(pool.clone());
        pool
    }

    /// One round: delivers what the last round claimed, claims the next, commits. Returns
    /// what it did and whether there may be more to do.
    async fn round(&mut self) -> Result<(Drained, bool), OutboxError> {
        let round = self.try_round().await;
        match &round {
            Ok((drained, _)) => self.totals += *drained,
            Err(_) => self.failed_rounds += 1,
        }
        round
    }

    async fn try_round(&mut self) -> Result<(Drained, bool), OutboxError> {
        if self.signals.is_empty() {
            return Err(OutboxError::NoSignals);
        }
        let pool = self.pool();
        // Rolled back if dropped uncommitted: an error leaves nothing half-done.
        let mut tx = pool.begin().await?;
        let mut drained = Drained::default();
        let delivering = self.claimed.is_some();
        if let Some(claim) = self.claimed.take() {
            let (token, count) = (claim.token, claim.keys.id.len());
            let heads = load(&mut tx, &claim).await?;
            let loaded = heads.len();
            let groups = following(&mut tx, heads, self.per_shard).await?;
            drained.fenced += count.saturating_sub(loaded); // taken over already
            let (returned, outcomes) = self.deliver(tx, token, groups).await?;
            tx = returned;
            // The fence: lock the shards still held under the token. A shard taken over while
            // its receivers ran is another worker's now, and may be delivered already: this
            // round's writes must not commit.
            let fenced = held(&mut tx, &claim).await? < loaded;
            if fenced || drained.fenced > 0 {
                tracing::warn!(name: "outbox.fenced", target: "signals", lease = token, "the outbox worker lost shards it had claimed to another worker (it was slower than its lease): it writes nothing of them, and they are the other worker's");
            }
            if fenced {
                tx.rollback().await?;
                drained.fenced += outcomes.len(); // run, and not committed
                // The shards it still holds go back at once, their attempt charged.
                give_back_or_log(&pool, &claim, false).await;
                return Ok((drained, true));
            }
            self.settle(&mut tx, token, outcomes, &mut drained).await?;
        }
        // Failed shards were backed off above, so this claim does not find them again.
        let claim = self.claim(&mut tx).await?;
        tx.commit().await?;
        // A round that delivered what it had claimed goes on; one that found only empty
        // shards (their rows stayed for enqueues about to commit, which will notify) stops,
        // keeping its new claim for the next drain, rather than claim them again and again.
        let more = claim.is_some()
            && (!delivering || drained.delivered + drained.failed + drained.parked > 0);
        self.claimed = claim;
        Ok((drained, more))
    }

    /// Runs the groups' receivers on a blocking thread (receivers are plain functions, and
    /// may block), lending them the connection, and returns it with each group's outcome.
    async fn deliver(
        &self,
        tx: Transaction<'static, Postgres>,
        token: i64,
        groups: Vec<Group>,
    ) -> Result<(Transaction<'static, Postgres>, Vec<(Group, Outcome)>), OutboxError> {
        let signals = Arc::clone(&self.signals);
        let state = Arc::clone(&self.state);
        let max_attempts = self.max_attempts;
        let lent = Lent::new(token, tx);
        tokio::task::spawn_blocking(move || {
            let mut outcomes: Vec<(Group, Outcome)> = Vec::with_capacity(groups.len());
            // Whether the shard being delivered stopped: its later groups wait.
            let mut stopped = false;
            for (index, group) in groups.into_iter().enumerate() {
                stopped &= !group.first;
                let outcome = match &group.head {
                    // After a receiver left the transaction aborted, nothing more is tried.
                    _ if stopped || lent.aborted() => Outcome::Skipped,
                    None => Outcome::Empty,
                    Some(_) if group.attempt > max_attempts => {
                        Outcome::Park(never_reported(group.attempt - 1))
                    }
                    Some(head) => {
                        let signal = signals[group.shard.signal.as_str()];
                        match lent.deliver(index, signal, &group, head, &state)? {
                            // Found aborted by this group's first write: its own writes were
                            // rolled back too, and it waits.
                            _ if lent.aborted() => Outcome::Skipped,
                            Ok(()) => Outcome::Delivered,
                            Err(failure) => failure.verdict(group.attempt, max_attempts).into(),
                        }
                    }
                };
                stopped |= !matches!(outcome, Outcome::Delivered);
                outcomes.push((group, outcome));
            }
            let (tx, aborted) = lent.finish()?;
            for index in aborted {
                let failure = Failure::Failed(
                    "a receiver went on after one of its statements failed, which aborted the \
                     delivery's transaction; its writes were rolled back"
                        .to_owned(),
                );
                let attempt = outcomes[index].0.attempt;
                outcomes[index].1 = failure.verdict(attempt, max_attempts).into();
                // The groups after it in its shard (none of which wrote) wait for it.
                for (group, outcome) in outcomes.iter_mut().skip(index + 1) {
                    if group.first {
                        break;
                    }
                    *outcome = Outcome::Skipped;
                }
            }
            Ok::<_, OutboxError>((tx, outcomes))
        })
        .await
        .map_err(|error| OutboxError::WorkerPanicked(error.to_string()))?
    }

    /// Writes the round's outcomes: removes what was delivered and releases those shards, in
    /// one statement; backs off what failed; parks what is dead.
    async fn settle(
        &self,
        conn: &mut PgConnection,
        token: i64,
        outcomes: Vec<(Group, Outcome)>,
        drained: &mut Drained,
    ) -> Result<(), OutboxError> {
        let mut released = Keys::default();
        let mut removed: Vec<MessageId> = Vec::new();
        let mut untried = Keys::default();
        let mut outcomes = outcomes.into_iter().peekable();
        while let Some(first) = outcomes.next() {
            // A shard's groups: its head's and those after it, delivered in order up to the
            // first that did not succeed, which decides what becomes of the shard.
            let mut shard = vec![first];
            while let Some(next) = outcomes.next_if(|(group, _)| !group.first) {
                shard.push(next);
            }
            let delivered = shard
                .iter()
                .take_while(|(_, outcome)| matches!(outcome, Outcome::Delivered))
                .count();
            for (group, _) in &shard[..delivered] {
                drained.delivered += 1;
                drained.removed += group.ids.len();
                removed.extend(&group.ids);
            }
            // What stopped the shard, if anything (a group not delivered; never `Delivered`).
            match shard.get(delivered) {
                Some((group, Outcome::Skipped)) if delivered == 0 => untried.push(&group.shard),
                None | Some((_, Outcome::Empty | Outcome::Skipped | Outcome::Delivered)) => {
                    released.push(&shard[0].0.shard);
                }
                Some((group, Outcome::Failed(error))) => {
                    report_failure(&group.shard, group.newest(), group.attempt, error);
                    failed(conn, token, group, error, self.max_delay).await?;
                    drained.failed += 1;
                }
                Some((group, Outcome::Park(error))) => {
                    report_parked(&group.shard, &group.ids, error);
                    park(conn, token, group, error).await?;
                    drained.parked += group.ids.len();
                }
            }
        }
        if !untried.id.is_empty() {
            give_back(&mut *conn, token, &untried, true).await?;
        }
        if released.id.is_empty() && removed.is_empty() {
            return Ok(());
        }
        let emptied = release(conn, token, &released, &removed).await?;
        if !emptied.id.is_empty() {
            remove_emptied(conn, token, &emptied).await?;
        }
        Ok(())
    }

    /// Claims up to `batch` due shards that are not paused, skipping those other workers are
    /// claiming, under a new fencing token; charges each an attempt. A shard has a row only
    /// while it holds messages, so the claim reads the due rows in order and stops.
    async fn claim(&self, conn: &mut PgConnection) -> Result<Option<Claim>, OutboxError> {
        let lease = i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX);
        let rows: Vec<(i64, String, String, String, i64)> = sqlx::query_as(concat!(
            "WITH now AS (SELECT ",
            now_ms!(),
            " AS ms),
             token AS (SELECT nextval('signals_outbox_token') AS token),
             picked AS (
                 SELECT s.signal, s.destination, s.scope, s.shard
                 FROM signals_outbox_shard s
                 WHERE s.signal = ANY($1)
                   AND s.due_at <= (SELECT ms FROM now) AND s.lease_until <= (SELECT ms FROM now)
                   AND (NOT EXISTS (SELECT 1 FROM signals_outbox_pause WHERE signal = ANY($1))
                        OR (NOT EXISTS (SELECT 1 FROM signals_outbox_pause p
                                        WHERE p.signal = s.signal AND p.kind = 'shard'
                                          AND p.key = s.scope || '/' || s.shard)
                            AND NOT EXISTS (SELECT 1 FROM signals_outbox_pause p
                                            WHERE p.signal = s.signal AND p.kind = 'category'
                                              AND p.key = (SELECT m.category FROM signals_outbox_message m
                                                           WHERE ", same_shard!("m", "s"), "
                                                           ORDER BY m.id LIMIT 1))))
                 ORDER BY s.due_at
                 LIMIT $2
                 FOR UPDATE OF s SKIP LOCKED)
             UPDATE signals_outbox_shard s
             SET claim = token.token, lease_until = now.ms + $3, holder = $4,
                 attempts = s.attempts + 1
             FROM picked, token, now
             WHERE ", same_shard!("s", "picked"), "
             RETURNING token.token, s.signal, s.destination, s.scope, s.shard"
        ))
        .bind(self.signals.keys().copied().collect::<Vec<&str>>())
        .bind(i64::try_from(self.batch).unwrap_or(i64::MAX))
        .bind(lease)
        .bind(&self.name)
        .fetch_all(&mut *conn)
        .await?;
        let Some(&(token, ..)) = rows.first() else {
            return Ok(None);
        };
        let keys = rows
            .into_iter()
            .map(|(_, signal, destination, scope, id)| (signal, destination, scope, id))
            .collect();
        Ok(Some(Claim { token, keys }))
    }
}

/// Releases the shards of a round's delivered (and empty) groups, due again at the back of
/// the line, their failures forgotten, and removes the delivered messages, in one statement.
/// Returns those left empty whose lock it took (an enqueue about to commit to a shard holds
/// it shared, and then the row stays).
async fn release(
    conn: &mut PgConnection,
    token: i64,
    released: &Keys,
    removed: &[MessageId],
) -> Result<Keys, OutboxError> {
    let query = sqlx::query_as(concat!(
        "WITH gone AS (DELETE FROM signals_outbox_message WHERE id = ANY($6))
         UPDATE signals_outbox_shard s
         SET attempts = 0, delay_ms = 0, failures = 0, last_error = NULL, lease_until = 0,
             due_at = ",
        now_ms!(),
        "
         FROM ",
        keys!(),
        "
         WHERE s.claim = $1 AND ",
        same_shard!("s", "k"),
        "
         RETURNING s.signal, s.destination, s.scope, s.shard,
             CASE WHEN NOT EXISTS (SELECT 1 FROM signals_outbox_message m
                                   WHERE ",
        same_shard!("m", "s"),
        " AND m.id <> ALL($6))
                  THEN ",
        shard_lock!(
            "pg_try_advisory_xact_lock",
            "s.signal",
            "s.destination",
            "s.scope",
            "s.shard"
        ),
        "
                  ELSE false END"
    ));
    let rows: Vec<(String, String, String, i64, bool)> = bind_keys!(query.bind(token), released)
        .bind(removed)
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows
        .into_iter()
        .filter(|row| row.4)
        .map(|(signal, destination, scope, id, _)| (signal, destination, scope, id))
        .collect())
}

/// Removes the rows of the shards in `emptied` (whose locks this round holds) that hold no
/// message: in a statement of its own, whose snapshot sees every message committed before
/// the locks were taken.
async fn remove_emptied(
    conn: &mut PgConnection,
    token: i64,
    emptied: &Keys,
) -> Result<(), OutboxError> {
    let query = sqlx::query(concat!(
        "DELETE FROM signals_outbox_shard s USING ",
        keys!(),
        "
         WHERE s.claim = $1 AND ",
        same_shard!("s", "k"),
        "
           AND NOT EXISTS (SELECT 1 FROM signals_outbox_message m WHERE ",
        same_shard!("m", "s"),
        ")"
    ));
    bind_keys!(query.bind(token), emptied)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Gives back `claim`'s shards (see [`give_back`]); a failure is logged, and the lease then
/// ends by itself.
async fn give_back_or_log(pool: &PgPool, claim: &Claim, uncharge: bool) {
    if let Err(error) = give_back(pool, claim.token, &claim.keys, uncharge).await {
        tracing::warn!(name: "outbox.release_error", target: "signals", error = %error, "the outbox worker could not give back its claim; it ends with its lease");
    }
}

/// Gives back the shards `keys` claimed under `token`, which were not tried: their lease
/// ends now, and (if `uncharge`) the attempt their claim charged is taken back.
async fn give_back(
    executor: impl sqlx::PgExecutor<'_>,
    token: i64,
    keys: &Keys,
    uncharge: bool,
) -> Result<(), OutboxError> {
    let query = sqlx::query(concat!(
        "UPDATE signals_outbox_shard s
         SET lease_until = 0, attempts = greatest(s.attempts - $6, 0)
         FROM ",
        keys!(),
        "
         WHERE s.claim = $1 AND ",
        same_shard!("s", "k")
    ));
    bind_keys!(query.bind(token), keys)
        .bind(i32::from(uncharge))
        .execute(executor)
        .await?;
    Ok(())
}

/// Waits for a notification on `listener` of a commit that enqueued for one of `signals`
/// (forever without a listener); `false` when the listener failed and should be replaced.
async fn wait(
    listener: Option<&mut PgListener>,
    signals: &BTreeMap<&'static str, &'static dyn Deliver>,
) -> bool {
    let Some(listener) = listener else {
        return std::future::pending().await;
    };
    loop {
        match listener.recv().await {
            Ok(notification) if signals.contains_key(notification.payload()) => {
                return true;
            }
            Ok(_) => {} // another signal's, for other workers
            Err(_) => return false,
        }
    }
}

/// A committed claim: its fencing token and its shards.
struct Claim {
    token: i64,
    keys: Keys,
}

/// Shard keys, as the columns `unnest` takes.
#[derive(Default)]
struct Keys {
    signal: Vec<String>,
    destination: Vec<String>,
    scope: Vec<String>,
    id: Vec<i64>,
}

impl FromIterator<(String, String, String, i64)> for Keys {
    fn from_iter<I: IntoIterator<Item = (String, String, String, i64)>>(rows: I) -> Self {
        let mut keys = Self::default();
        for (signal, destination, scope, id) in rows {
            keys.signal.push(signal);
            keys.destination.push(destination);
            keys.scope.push(scope);
            keys.id.push(id);
        }
        keys
    }
}

impl Keys {
    fn push(&mut self, shard: &Shard) {
        self.signal.push(shard.signal.clone());
        self.destination.push(shard.destination.clone());
        self.scope.push(shard.scope.clone());
        self.id.push(shard.id);
    }
}

/// A claimed shard, still held, and its head group: the head message and those coalesced
/// with it (ids oldest first), with the newest one's stored sender and arguments.
struct Group {
    shard: Shard,
    /// Whether it is its shard's head group (the later ones follow it in the round).
    first: bool,
    attempt: u32,
    ids: Vec<MessageId>,
    head: Option<Head>,
}

impl Group {
    fn newest(&self) -> MessageId {
        self.ids.last().copied().unwrap_or_default()
    }
}

/// The newest message of a group: what its receivers get.
struct Head {
    id: MessageId,
    category: String,
    object: Option<i64>,
    payload: String,
}

impl From<Verdict> for Outcome {
    fn from(verdict: Verdict) -> Self {
        match verdict {
            Verdict::Retry(error) => Self::Failed(error),
            Verdict::Park(error) => Self::Park(error),
        }
    }
}

/// What became of a group.
enum Outcome {
    /// Its shard had no message left.
    Empty,
    Delivered,
    Failed(String),
    Park(String),
    /// Not delivered this round: a group before it in its shard did not succeed, or a
    /// receiver left the transaction aborted.
    Skipped,
}

/// After each head group in `heads` whose shard is on its first attempt, the groups that
/// follow it in its shard, up to `per_shard` groups in all: the next messages in order, each
/// with those about the same object among them coalesced into it (they are delivered with the
/// newest one's arguments, and all removed).
async fn following(
    conn: &mut PgConnection,
    heads: Vec<Group>,
    per_shard: usize,
) -> Result<Vec<Group>, OutboxError> {
    let mut keys = Keys::default();
    let mut after: Vec<i64> = Vec::new();
    for group in &heads {
        if per_shard > 1 && group.attempt == 1 && group.head.is_some() {
            keys.push(&group.shard);
            after.push(group.ids[0]);
        }
    }
    if keys.id.is_empty() {
        return Ok(heads);
    }
    let query = sqlx::query_as(concat!(
        "SELECT k.n, m.id, m.category, m.object, m.payload
         FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[])
              WITH ORDINALITY AS k (signal, destination, scope, shard, after, n)
         CROSS JOIN LATERAL (
             SELECT m.id, m.category, m.object, m.payload FROM signals_outbox_message m
             WHERE ",
        same_shard!("m", "k"),
        " AND m.id > k.after
             ORDER BY m.id LIMIT $6) m
         ORDER BY k.n, m.id"
    ));
    let rows: Vec<FollowingRow> = query
        .bind(&keys.signal)
        .bind(&keys.destination)
        .bind(&keys.scope)
        .bind(&keys.id)
        .bind(&after)
        .bind(i64::try_from(per_shard).unwrap_or(i64::MAX))
        .fetch_all(conn)
        .await?;
    // Each shard's window of messages, by the shard's place in `keys` (from 1).
    let mut windows: Vec<Vec<Head>> = (0..keys.id.len()).map(|_| Vec::new()).collect();
    for (n, id, category, object, payload) in rows {
        let index = usize::try_from(n).unwrap_or(1).saturating_sub(1);
        windows[index].push(Head {
            id,
            category,
            object,
            payload,
        });
    }
    let mut windows = windows.into_iter();
    let mut groups = Vec::with_capacity(heads.len());
    for head in heads {
        let extends = per_shard > 1 && head.attempt == 1 && head.head.is_some();
        let window = if extends {
            windows.next().unwrap_or_default()
        } else {
            Vec::new()
        };
        let shard = head.shard.clone();
        let mut taken: std::collections::HashSet<MessageId> = head.ids.iter().copied().collect();
        groups.push(head);
        let mut count = 1;
        for (at, message) in window.iter().enumerate() {
            if count >= per_shard {
                break;
            }
            if !taken.insert(message.id) {
                continue;
            }
            let mut ids = vec![message.id];
            let mut newest = at;
            if message.object.is_some() {
                for (later, other) in window.iter().enumerate().skip(at + 1) {
                    if other.object == message.object
                        && other.category == message.category
                        && taken.insert(other.id)
                    {
                        ids.push(other.id);
                        newest = later;
                    }
                }
            }
            let newest = &window[newest];
            groups.push(Group {
                shard: shard.clone(),
                first: false,
                attempt: 1,
                ids,
                head: Some(Head {
                    id: newest.id,
                    category: newest.category.clone(),
                    object: newest.object,
                    payload: newest.payload.clone(),
                }),
            });
            count += 1;
        }
    }
    Ok(groups)
}

/// A message that follows a head: its shard's place among the keys (from 1), its id,
/// category, object and payload.
type FollowingRow = (i64, i64, String, Option<i64>, String);

/// Locks the shards still held under `token` (another worker's claim since changed the token
/// of those it took over) until the round commits, and returns how many there are.
async fn held(conn: &mut PgConnection, claim: &Claim) -> Result<usize, OutboxError> {
    let query = sqlx::query_scalar(concat!(
        "SELECT count(*) FROM
             (SELECT 1 FROM signals_outbox_shard s JOIN ",
        keys!(),
        " ON ",
        same_shard!("s", "k"),
        "
              WHERE s.claim = $1
              FOR NO KEY UPDATE OF s) AS held"
    ));
    let held: i64 = bind_keys!(query.bind(claim.token), claim.keys)
        .fetch_one(conn)
        .await?;
    Ok(usize::try_from(held).unwrap_or(0))
}

/// Reads the head group of each shard still held under `token` (those taken over since are
/// left out).
async fn load(conn: &mut PgConnection, claim: &Claim) -> Result<Vec<Group>, OutboxError> {
    type Row = (
        String,
        String,
        String,
        i64,
        i32,
        Option<Vec<i64>>,
        Option<i64>,
        Option<String>,
        Option<i64>,
        Option<String>,
    );
    let query = sqlx::query_as(concat!(
        "WITH held AS (
             SELECT s.signal, s.destination, s.scope, s.shard, s.attempts
             FROM signals_outbox_shard s JOIN ",
        keys!(),
        " ON ",
        same_shard!("s", "k"),
        "
             WHERE s.claim = $1)
         SELECT h.signal, h.destination, h.scope, h.shard, h.attempts, g.ids,
                n.id, n.category, n.object, n.payload
         FROM held h
         LEFT JOIN LATERAL (
             SELECT m.id, m.category, m.object FROM signals_outbox_message m
             WHERE ",
        same_shard!("m", "h"),
        "
             ORDER BY m.id LIMIT 1) head ON true
         LEFT JOIN LATERAL (
             SELECT CASE
                 WHEN head.id IS NULL THEN NULL
                 WHEN head.object IS NULL THEN ARRAY[head.id]
                 ELSE ARRAY(
                     SELECT c.id FROM signals_outbox_message c
                     WHERE ",
        same_shard!("c", "h"),
        "
                       AND c.category = head.category AND c.object = head.object
                     ORDER BY c.id)
             END AS ids) g ON true
         LEFT JOIN signals_outbox_message n ON n.id = g.ids[cardinality(g.ids)]
         ORDER BY h.signal, h.destination, h.scope, h.shard"
    ));
    let rows: Vec<Row> = bind_keys!(query.bind(claim.token), claim.keys)
        .fetch_all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(
            |(signal, destination, scope, id, attempts, ids, newest, category, object, payload)| {
                let head = match (newest, category, payload) {
                    (Some(id), Some(category), Some(payload)) => Some(Head {
                        id,
                        category,
                        object,
                        payload,
                    }),
                    _ => None,
                };
                Group {
                    shard: Shard {
                        signal,
                        destination,
                        scope,
                        id,
                    },
                    first: true,
                    attempt: u32::try_from(attempts).unwrap_or(0),
                    ids: if head.is_some() {
                        ids.unwrap_or_default()
                    } else {
                        Vec::new()
                    },
                    head,
                }
            },
        )
        .collect())
}

/// Records a failed delivery: the error on its messages and its shard, which backs off (1 s,
/// doubling, at most `cap`) from now, by the server's clock; releases the lease.
async fn failed(
    conn: &mut PgConnection,
    token: i64,
    group: &Group,
    error: &str,
    cap: Duration,
) -> Result<(), OutboxError> {
    let cap = i64::try_from(cap.as_millis()).unwrap_or(i64::MAX);
    sqlx::query(concat!(
        "WITH noted AS (UPDATE signals_outbox_message SET last_error = $3 WHERE id = ANY($2)),
         delay AS (
             SELECT CASE WHEN s.delay_ms <= 0 THEN least($8, $4)
                         ELSE least(s.delay_ms * 2, $4) END AS ms
             FROM signals_outbox_shard s
             WHERE s.signal = $5 AND s.destination = $6 AND s.scope = $7 AND s.shard = $9)
         UPDATE signals_outbox_shard
         SET failures = failures + 1, last_error = $3, lease_until = 0, delay_ms = delay.ms,
             due_at = ",
        now_ms!(),
        " + delay.ms
         FROM delay
         WHERE claim = $1 AND signal = $5 AND destination = $6 AND scope = $7 AND shard = $9"
    ))
    .bind(token)
    .bind(&group.ids)
    .bind(error)
    .bind(cap)
    .bind(&group.shard.signal)
    .bind(&group.shard.destination)
    .bind(&group.shard.scope)
    .bind(FIRST_DELAY_MS)
    .bind(group.shard.id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves `group`'s messages to the dead letters with `error`, and frees its shard: the next
/// message is due at once, with none of their failures (the dead letters keep the error), as
/// on SQLite.
async fn park(
    conn: &mut PgConnection,
    token: i64,
    group: &Group,
    error: &str,
) -> Result<(), OutboxError> {
    sqlx::query(concat!(
        "WITH moved AS (DELETE FROM signals_outbox_message WHERE id = ANY($2) RETURNING *),
         parked AS (
             INSERT INTO signals_outbox_parked
                 (id, signal, destination, scope, shard, category, object, payload, attempts,
                  error, created_at, parked_at)
             SELECT id, signal, destination, scope, shard, category, object, payload, $3, $4,
                    created_at, ",
        now_ms!(),
        "
             FROM moved)
         UPDATE signals_outbox_shard
         SET attempts = 0, delay_ms = 0, lease_until = 0, failures = 0, last_error = NULL
         WHERE claim = $1 AND signal = $5 AND destination = $6 AND scope = $7 AND shard = $8"
    ))
    .bind(token)
    .bind(&group.ids)
    .bind(i32::try_from(group.attempt).unwrap_or(i32::MAX))
    .bind(error)
    .bind(&group.shard.signal)
    .bind(&group.shard.destination)
    .bind(&group.shard.scope)
    .bind(group.shard.id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Where the delivery's savepoint stands.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    /// None is set.
    None,
    /// One is set, before an earlier group's writes: the next writing group needs its own.
    Stale,
    /// One is set at the start of the group being delivered.
    Current,
}

/// The delivery transaction, as a [`PgWorker`] lends it to receivers on their blocking
/// thread: they reach it through [`Delivery::postgres`], which blocks on the worker's
/// runtime. A group's savepoint is taken before its first write, so that groups whose
/// receivers do not write cost no round trip for it; the savepoint of a group that succeeded
/// is released with the next one's taking, in one round trip.
///
/// A receiver that goes on after one of its statements failed (it ignored the error) leaves
/// the transaction aborted: the next statement on it fails with `25P02`. Then the writing
/// group before is rolled back to its savepoint and counted as failed, whatever its receivers
/// returned, so that its message is not removed without its effects.
pub(crate) struct Lent {
    pub(crate) token: i64,
    handle: Handle,
    tx: RefCell<Transaction<'static, Postgres>>,
    mark: Cell<Mark>,
    /// The group being delivered, and the one that set the savepoint (by index).
    group: Cell<usize>,
    writer: Cell<usize>,
    /// The groups found to have left the transaction aborted.
    aborted: RefCell<Vec<usize>>,
}

/// The shortest lease [`PgWorker::lease`] sets.
const MIN_LEASE: Duration = Duration::from_secs(1);

/// The savepoint of a delivery's writes.
const SAVEPOINT: &str = "SAVEPOINT signals_outbox_delivery";
const RELEASE: &str = "RELEASE signals_outbox_delivery";
const ROLLBACK: &str = "ROLLBACK TO signals_outbox_delivery";

/// Whether `error` is PostgreSQL's refusal of a statement in an aborted transaction.
fn aborts(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(error) if error.code().as_deref() == Some("25P02"))
}

impl Lent {
    fn new(token: i64, tx: Transaction<'static, Postgres>) -> Self {
        Self {
            token,
            handle: Handle::current(),
            tx: RefCell::new(tx),
            mark: Cell::new(Mark::None),
            group: Cell::new(0),
            writer: Cell::new(0),
            aborted: RefCell::new(Vec::new()),
        }
    }

    /// Runs `write` on the transaction, after setting the group's savepoint if it is its
    /// first write.
    pub(crate) fn run<T>(
        &self,
        write: impl AsyncFnOnce(&mut PgConnection) -> T,
    ) -> Result<T, OutboxError> {
        let mut conn = self
            .tx
            .try_borrow_mut()
            .map_err(|_| OutboxError::TransactionInUse)?;
        let conn: &mut PgConnection = &mut conn;
        self.handle.block_on(async {
            match self.mark.get() {
                Mark::Current => {}
                Mark::None => {
                    sqlx::raw_sql(SAVEPOINT).execute(&mut *conn).await?;
                }
                Mark::Stale => {
                    let renewed = sqlx::raw_sql(
                        "RELEASE signals_outbox_delivery; SAVEPOINT signals_outbox_delivery",
                    )
                    .execute(&mut *conn)
                    .await;
                    match renewed {
                        Ok(_) => {}
                        // The savepoint then marks the end of the groups before that one:
                        // where this group starts.
                        Err(error) if aborts(&error) => self.abort_writer(conn).await?,
                        Err(error) => return Err(error.into()),
                    }
                }
            }
            self.mark.set(Mark::Current);
            self.writer.set(self.group.get());
            Ok(write(conn).await)
        })
    }

    /// Whether a receiver left the transaction aborted (its group was rolled back).
    fn aborted(&self) -> bool {
        !self.aborted.borrow().is_empty()
    }

    /// Rolls the group that set the savepoint back to it, and notes it as failed.
    async fn abort_writer(&self, conn: &mut PgConnection) -> Result<(), OutboxError> {
        sqlx::raw_sql(ROLLBACK).execute(conn).await?;
        self.aborted.borrow_mut().push(self.writer.get());
        Ok(())
    }

    /// Delivers `group` (the `index`th, whose newest message is `head`) to `signal`'s
    /// receivers; rolls back their writes if they fail. The outer `Result` is the database's.
    fn deliver(
        &self,
        index: usize,
        signal: &dyn Deliver,
        group: &Group,
        head: &Head,
        state: &State,
    ) -> Result<Result<(), Failure>, OutboxError> {
        self.group.set(index);
        let span = tracing::info_span!(
            target: "signals",
            "outbox.deliver",
            signal = signal.name(),
            category = %head.category,
            shard = %group.shard,
            message_id = head.id,
            attempt = group.attempt,
            lease = self.token,
        );
        let _entered = span.enter();
        let delivery = Delivery {
            lent: Lending::Postgres(self),
            id: head.id,
            attempt: group.attempt,
            shard: &group.shard,
            object: head.object,
            coalesced: group.ids.len(),
            state,
        };
        let before = self.aborted.borrow().len();
        let result = signal.deliver(&head.category, &head.payload, &delivery);
        // Whether its first write found an earlier group's receiver had left the transaction
        // aborted: then its own writes go too.
        let interrupted = self.aborted.borrow().len() > before;
        match (&result, self.mark.get()) {
            (Ok(()), Mark::Current) if !interrupted => self.mark.set(Mark::Stale),
            (_, Mark::Current) => {
                // The savepoint still marks the end of the earlier groups: it serves the next.
                let mut conn = self.tx.borrow_mut();
                self.handle
                    .block_on(sqlx::raw_sql(ROLLBACK).execute(&mut **conn))?;
            }
            _ => {}
        }
        Ok(result)
    }

    /// After the last group: checks that the last writing group left the transaction usable
    /// (rolling it back otherwise), and returns the transaction with the indexes of the
    /// groups that left it aborted.
    fn finish(self) -> Result<(Transaction<'static, Postgres>, Vec<usize>), OutboxError> {
        if self.mark.get() == Mark::Stale {
            let mut conn = self.tx.borrow_mut();
            let conn: &mut PgConnection = &mut conn;
            self.handle.block_on(async {
                match sqlx::raw_sql(RELEASE).execute(&mut *conn).await {
                    Ok(_) => Ok(()),
                    Err(error) if aborts(&error) => {
                        self.abort_writer(&mut *conn).await?;
                        sqlx::raw_sql(RELEASE).execute(conn).await?;
                        Ok(())
                    }
                    Err(error) => Err(OutboxError::from(error)),
                }
            })?;
        }
        Ok((self.tx.into_inner(), self.aborted.into_inner()))
    }
}
