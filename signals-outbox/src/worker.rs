//! Delivering stored messages: [`Worker`] claims due shards, runs each message's receivers in
//! a transaction that also removes it, and backs a failing shard off.

use std::collections::{BTreeMap, HashMap};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use rusqlite::{Connection, Transaction, TransactionBehavior};
use signals_core::DurableSignal;

use crate::message::{Delivery, DurableSignature, Lending, MessageId, Shard, State};
use crate::store::{self, Head, Paused, Row, ShardState};
use crate::{Outbox, OutboxError};

/// A durable signal, as a worker delivers it: by name, from stored JSON.
pub trait Deliver: Sync {
    /// The signal's name, as its messages store it.
    fn name(&self) -> &'static str;

    /// Decodes a stored message and runs its receivers.
    ///
    /// # Errors
    ///
    /// [`Failure::Undecodable`] when the stored sender or arguments no longer decode (the
    /// message is parked at once), [`Failure::Failed`] when a receiver failed or panicked
    /// (the message is retried).
    fn deliver(
        &self,
        category: &str,
        payload: &str,
        delivery: &Delivery<'_>,
    ) -> Result<(), Failure>;
}

/// Why a delivery did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The stored message no longer decodes into the signal's sender or arguments (their
    /// types changed): retrying cannot help.
    Undecodable(String),
    /// A receiver returned `Err` or panicked: the message is retried with backoff.
    Failed(String),
}

impl Failure {
    /// What becomes of the message after this failure on `attempt`: it is parked if it
    /// cannot decode or this was its last attempt, and retried otherwise. The same on every
    /// backend.
    pub(crate) fn verdict(self, attempt: u32, max_attempts: u32) -> Verdict {
        match self {
            Self::Undecodable(error) => Verdict::Park(error),
            Self::Failed(error) if attempt >= max_attempts => {
                Verdict::Park(format!("gave up after {attempt} attempts: {error}"))
            }
            Self::Failed(error) => Verdict::Retry(error),
        }
    }
}

/// What becomes of a message whose delivery did not succeed, and why.
pub(crate) enum Verdict {
    Retry(String),
    Park(String),
}

/// Why a message charged `attempts` claims that never reported is parked.
pub(crate) fn never_reported(attempts: u32) -> String {
    format!(
        "gave up after {attempts} attempts that never reported (did the worker crash delivering it?)"
    )
}

/// Logs a failed delivery (`outbox.failure`), which will be retried.
pub(crate) fn report_failure(shard: &Shard, message_id: MessageId, attempt: u32, error: &str) {
    tracing::error!(
        name: "outbox.failure",
        target: "signals",
        signal = shard.signal,
        shard = %shard,
        message_id,
        attempt,
        error = %error,
        "a durable message's delivery failed; it will be retried",
    );
}

/// Logs parked messages (`outbox.parked`).
pub(crate) fn report_parked(shard: &Shard, ids: &[MessageId], error: &str) {
    tracing::error!(
        name: "outbox.parked",
        target: "signals",
        shard = %shard,
        messages = ?ids,
        error = %error,
        "durable messages were parked (dead letters); `retry` them once the cause is fixed",
    );
}

impl<F: DurableSignature> Deliver for DurableSignal<F> {
    fn name(&self) -> &'static str {
        DurableSignal::name(self)
    }

    fn deliver(
        &self,
        category: &str,
        payload: &str,
        delivery: &Delivery<'_>,
    ) -> Result<(), Failure> {
        let sender: F::Sender = serde_json::from_str(category).map_err(|error| {
            Failure::Undecodable(format!("its sender {category} does not decode: {error}"))
        })?;
        let payload: F::Payload = serde_json::from_str(payload).map_err(|error| {
            Failure::Undecodable(format!("its arguments do not decode: {error}"))
        })?;
        let args = F::delivered(&payload, delivery);
        match catch_unwind(AssertUnwindSafe(|| {
            DurableSignal::deliver(self, &sender, &args)
        })) {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(Failure::Failed(error.to_string())),
            Err(panic) => Err(Failure::Failed(format!(
                "a receiver panicked: {}",
                panic_message(&*panic)
            ))),
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(a non-string payload)")
}

/// What one drain did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drained {
    /// Deliveries that succeeded (a coalesced group counts once).
    pub delivered: usize,
    /// Messages removed by those deliveries (coalesced ones included).
    pub removed: usize,
    /// Deliveries that failed and will be retried.
    pub failed: usize,
    /// Messages parked (dead letters).
    pub parked: usize,
    /// Claimed deliveries not committed because the worker lost its claim first (it was too
    /// slow, and another worker took the shard over): the new owner delivers them, and a
    /// fenced worker writes nothing of them. On PostgreSQL, a shard taken over before its
    /// groups were read counts once.
    pub fenced: usize,
}

impl std::ops::AddAssign for Drained {
    fn add_assign(&mut self, other: Self) {
        self.delivered += other.delivered;
        self.removed += other.removed;
        self.failed += other.failed;
        self.parked += other.parked;
        self.fenced += other.fenced;
    }
}

/// Stops a running [`Worker::run`] from another thread: it finishes the delivery in hand and
/// returns.
#[derive(Debug, Clone, Default)]
pub struct Stopper(Arc<(Mutex<bool>, Condvar)>);

impl Stopper {
    /// Asks the worker to stop.
    pub fn stop(&self) {
        *self
            .0
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        self.0.1.notify_all();
    }

    fn stopped(&self) -> bool {
        *self
            .0
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits up to `timeout`, or until stopped; returns whether it was stopped.
    fn wait(&self, timeout: Duration) -> bool {
        let (lock, condvar) = &*self.0;
        let guard = lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (guard, _) = condvar
            .wait_timeout_while(guard, timeout, |stopped| !*stopped)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *guard
    }
}

/// Delivers a set of durable signals' messages from one outbox.
///
/// ```no_run
/// # use signals::outbox::{Outbox, Worker};
/// # #[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)] pub enum Category { A }
/// # #[derive(serde::Serialize, serde::Deserialize)] pub struct MemberJoined { pub id: u64 }
/// # signals::signal! { pub static member_joined: durable Signal<MemberJoined, sender = Category>; }
/// let outbox = Outbox::open("app.db")?;
/// let mut worker = Worker::new(&outbox)?.signal(&member_joined);
/// let stopper = worker.stopper();
/// std::thread::spawn(move || { /* on shutdown: */ stopper.stop() });
/// worker.run()?; // until stopped
/// # Ok::<(), signals::outbox::OutboxError>(())
/// ```
pub struct Worker {
    outbox: Outbox,
    conn: Connection,
    signals: BTreeMap<&'static str, &'static dyn Deliver>,
    max_attempts: u32,
    batch: usize,
    poll: Duration,
    stopper: Stopper,
    state: State,
    /// Per signal, the shard its last claim stopped at: the next goes on from there.
    cursors: HashMap<&'static str, Option<Shard>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("signals", &self.signals.keys().collect::<Vec<_>>())
            .field("max_attempts", &self.max_attempts)
            .field("batch", &self.batch)
            .field("poll", &self.poll)
            .field("state_types", &self.state.type_count())
            .finish_non_exhaustive()
    }
}

/// The first backoff of a failing shard.
pub(crate) const FIRST_DELAY_MS: i64 = 1_000;

impl Worker {
    /// A worker on `outbox`, with its own connection to the database; add its signals with
    /// [`signal`](Self::signal).
    ///
    /// # Errors
    ///
    /// When the database cannot be opened.
    pub fn new(outbox: &Outbox) -> Result<Self, OutboxError> {
        Ok(Self {
            outbox: outbox.clone(),
            conn: outbox.connect()?,
            signals: BTreeMap::new(),
            max_attempts: 10,
            batch: 100,
            poll: Duration::from_millis(200),
            stopper: Stopper::default(),
            state: State::default(),
            cursors: HashMap::new(),
        })
    }

    /// Delivers `signal`'s messages too.
    #[must_use]
    pub fn signal(mut self, signal: &'static dyn Deliver) -> Self {
        self.signals.insert(signal.name(), signal);
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
    /// [`Delivery::state`]: the application's context, a client of another service. One value
    /// per type; a second of the same type replaces the first.
    ///
    /// ```no_run
    /// # use std::sync::Arc;
    /// # use signals::outbox::{Delivery, Outbox, OutboxError, Worker};
    /// # #[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)] pub enum Category { A }
    /// # #[derive(serde::Serialize, serde::Deserialize)] pub struct Joined { pub id: u64 }
    /// # signals::signal! { pub static joined: durable Signal<Joined, sender = Category>; }
    /// pub struct Mailer { /* a client */ }
    ///
    /// #[signals::receiver(signal = joined, sender = Category::A)]
    /// fn welcome(id: u64, delivery: &Delivery<'_>) -> Result<(), OutboxError> {
    ///     let mailer: &Mailer = delivery.state()?;
    ///     # let _ = (mailer, id);
    ///     Ok(())
    /// }
    ///
    /// let outbox = Outbox::open("app.db")?;
    /// let mut worker = Worker::new(&outbox)?.signal(&joined).state(Arc::new(Mailer {}));
    /// # Ok::<(), OutboxError>(())
    /// ```
    #[must_use]
    pub fn state<T: std::any::Any + Send + Sync>(mut self, value: Arc<T>) -> Self {
        self.state.insert(value);
        self
    }

    /// After how many failed attempts a message is parked (dead letters) instead of retried
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

    /// How long [`run`](Self::run) waits between drains that found nothing (default 200 ms).
    #[must_use]
    pub fn poll(mut self, every: Duration) -> Self {
        self.poll = every;
        self
    }

    /// A handle that stops [`run`](Self::run).
    #[must_use]
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Drains until stopped by its [`Stopper`] (from another thread, or from a Ctrl-C or
    /// SIGTERM handler: `ctrlc::set_handler(move || stopper.stop())`, as the example's
    /// `outbox worker` does): everything due, then again every poll interval. A drain that
    /// fails (the database is locked or gone, a receiver ended its transaction) is logged as
    /// `outbox.worker_error` and tried again, waiting twice as long each time, up to a minute.
    ///
    /// # Errors
    ///
    /// [`OutboxError::NoSignals`] without signals; nothing else stops it.
    pub fn run(&mut self) -> Result<(), OutboxError> {
        if self.signals.is_empty() {
            return Err(OutboxError::NoSignals);
        }
        let mut pause = self.poll;
        while !self.stopper.stopped() {
            match self.drain_once() {
                Ok(drained)
                    if drained.delivered + drained.failed + drained.parked + drained.fenced > 0 =>
                {
                    pause = self.poll;
                    continue;
                }
                Ok(_) => pause = self.poll,
                Err(error) => {
                    tracing::error!(name: "outbox.worker_error", target: "signals", error = %error, "the outbox worker's drain failed; retrying");
                    pause = (pause * 2).min(Duration::from_secs(60));
                }
            }
            if self.stopper.wait(pause) {
                break;
            }
        }
        Ok(())
    }

    /// Delivers every message due now, shard by shard, and returns what it did: for tests and
    /// cron-style use.
    ///
    /// # Errors
    ///
    /// [`OutboxError::NoSignals`] without signals, or a database error (what was delivered
    /// before it stays delivered).
    pub fn drain_once(&mut self) -> Result<Drained, OutboxError> {
        self.drain(None, MessageId::MAX)
    }

    /// Delivers the messages just written, after their transaction committed, and those before
    /// them in their shards, but none written after this call started: Sentry's synchronous
    /// drain of the shard written. A shard backing off after a failure is left to the worker.
    ///
    /// # Errors
    ///
    /// As [`drain_once`](Self::drain_once).
    pub fn flush(&mut self, enqueued: &crate::Enqueued) -> Result<Drained, OutboxError> {
        let mut drained = Drained::default();
        for (id, shard) in enqueued.messages() {
            drained += self.drain(Some(shard), *id)?;
        }
        Ok(drained)
    }

    /// Delivers in rounds of up to `batch` groups (a shard's head and the messages coalesced
    /// with it). Each round's groups are claimed, charging each an attempt, in a committed
    /// transaction before any of them is delivered, so that a worker that dies while
    /// delivering still counts the attempt and the shard waits out its backoff. That claim
    /// rides in the previous round's delivery transaction: one commit per round.
    fn drain(&mut self, only: Option<&Shard>, up_to: MessageId) -> Result<Drained, OutboxError> {
        if self.signals.is_empty() {
            return Err(OutboxError::NoSignals);
        }
        let mut total = Drained::default();
        let mut claimed: Option<(i64, Vec<Group>)> = None;
        loop {
            // On a shared borrow of the connection, which the worker alone uses.
            let tx = Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)?;
            let mut round = Drained::default();
            if let Some((token, groups)) = claimed.take() {
                self.deliver(&tx, token, &groups, &mut round)?;
                if round.delivered + round.parked == 0 {
                    // Nothing but failures: they back off; claiming again would find them.
                    tx.commit()?;
                    total += round;
                    return Ok(total);
                }
            }
            let token = self.outbox.token();
            let mut claim = Claim {
                tx: &tx,
                now: self.outbox.now(),
                cap: self.outbox.max_delay_ms(),
                token,
                up_to,
                max_attempts: self.max_attempts,
                batch: self.batch,
                claimed: Vec::new(),
                drained: &mut round,
            };
            claim.round(&self.signals, &mut self.cursors, only)?;
            let groups = claim.claimed;
            tx.commit()?;
            total += round;
            if groups.is_empty() {
                return Ok(total);
            }
            claimed = Some((token, groups));
        }
    }

    /// Delivers the groups claimed with `token` in `tx`, each in a savepoint, and settles
    /// them: removes the delivered messages, backs the failed shards off, parks what failed
    /// its last attempt.
    fn deliver(
        &self,
        tx: &Connection,
        token: i64,
        groups: &[Group],
        drained: &mut Drained,
    ) -> Result<(), OutboxError> {
        let held = store::held(tx, token)?;
        for group in groups {
            if !held.contains(&group.shard) {
                drained.fenced += 1; // another worker claimed the shard since: it is theirs now
                continue;
            }
            let signal = self.signals[group.shard.signal.as_str()];
            let delivered = deliver_group(tx, signal, group, &self.state)?;
            // Read after the receivers ran: a failure's backoff counts from its end.
            let now = self.outbox.now();
            match delivered {
                Ok(()) => {
                    // Removed with the delivery, not at the round's end: a receiver that
                    // commits the transaction later in the round commits this removal too.
                    store::delete(tx, &group.ids)?;
                    drained.delivered += 1;
                    drained.removed += group.ids.len();
                }
                Err(failure) => match failure.verdict(group.attempt, self.max_attempts) {
                    Verdict::Park(error) => drained.parked += park(tx, group, &error, now)?,
                    Verdict::Retry(error) => {
                        store::failed(tx, &group.shard, &group.ids, &error, now)?;
                        drained.failed += 1;
                    }
                },
            }
        }
        // The round's succeeded shards, in one statement.
        store::settled(tx, token)?;
        Ok(())
    }
}

/// Visits each shard of `signal` once, in key order, from the one after `cursor` round to
/// `cursor` itself, until `visit` returns `false`; leaves `cursor` at the last shard visited,
/// where the next walk goes on. Each step is one index seek: a round costs what it visits,
/// not what waits, and every shard gets its turn.
fn walk(
    tx: &Connection,
    signal: &str,
    cursor: &mut Option<Shard>,
    mut visit: impl FnMut(Head) -> Result<bool, OutboxError>,
) -> Result<(), OutboxError> {
    let start = cursor.clone();
    let mut wrapped = start.is_none();
    loop {
        let Some(head) = store::next_head(tx, signal, cursor.as_ref())? else {
            if wrapped {
                return Ok(());
            }
            wrapped = true;
            *cursor = None;
            continue;
        };
        if wrapped && start.as_ref().is_some_and(|start| head.shard > *start) {
            return Ok(()); // round to where it started: every shard was visited
        }
        *cursor = Some(head.shard.clone());
        if !visit(head)? {
            return Ok(());
        }
    }
}

/// One claim transaction: what it may claim, and what it claimed.
struct Claim<'t, 'd> {
    tx: &'t Connection,
    now: i64,
    cap: i64,
    token: i64,
    up_to: MessageId,
    max_attempts: u32,
    batch: usize,
    claimed: Vec<Group>,
    drained: &'d mut Drained,
}

impl Claim<'_, '_> {
    /// Claims up to `batch` groups of `signals` (of `only`, when it is given; otherwise
    /// walking each signal's shards from its cursor).
    fn round(
        &mut self,
        signals: &BTreeMap<&'static str, &'static dyn Deliver>,
        cursors: &mut HashMap<&'static str, Option<Shard>>,
        only: Option<&Shard>,
    ) -> Result<(), OutboxError> {
        for &signal in signals.keys() {
            if self.claimed.len() >= self.batch {
                break;
            }
            let paused = Paused::of(self.tx, signal)?;
            let states = store::states(self.tx, signal)?;
            match only {
                Some(shard) if shard.signal == signal => {
                    if let Some(head) = store::head(self.tx, shard)? {
                        self.consider(head, &paused, &states)?;
                    }
                }
                Some(_) => {}
                None => {
                    let cursor = cursors.entry(signal).or_default();
                    walk(self.tx, signal, cursor, |head| {
                        self.consider(head, &paused, &states)
                    })?;
                }
            }
        }
        Ok(())
    }

    /// Claims the group `head` leads, charging its shard an attempt, if the shard is due and
    /// not paused, its sender not paused, and `head` within `up_to`; parks the group instead
    /// when its attempts are used up. Returns whether there is room for more.
    fn consider(
        &mut self,
        head: Head,
        paused: &Paused,
        states: &HashMap<Shard, ShardState>,
    ) -> Result<bool, OutboxError> {
        let state = states.get(&head.shard).copied();
        if head.row.id > self.up_to
            || paused.shard(&head.shard)
            || paused.category(&head.row.category)
            || state.is_some_and(|state| state.due_at > self.now)
        {
            return Ok(true);
        }
        let (ids, newest) = store::group(self.tx, &head)?;
        let group = Group {
            shard: head.shard,
            ids,
            newest,
            attempt: state.map_or(0, |state| state.attempts),
        };
        if group.attempt >= self.max_attempts {
            // Charged as many times as allowed without a report: its worker died delivering
            // it each time.
            let error = never_reported(group.attempt);
            self.drained.parked += park(self.tx, &group, &error, self.now)?;
            return Ok(true);
        }
        let delay = next_delay(state.map_or(0, |state| state.delay_ms), self.cap);
        store::claim(self.tx, &group.shard, self.token, self.now, delay)?;
        self.claimed.push(group.charged());
        Ok(self.claimed.len() < self.batch)
    }
}

/// A claimed group: a shard's head message and those coalesced with it (their ids, oldest
/// first), the newest of them, whose arguments stand for the group, and the attempt it is on
/// (its shard's count of claims since its last success).
struct Group {
    shard: Shard,
    ids: Vec<MessageId>,
    newest: Row,
    attempt: u32,
}

impl Group {
    /// This group, with the attempt its claim charged.
    fn charged(self) -> Self {
        Self {
            attempt: self.attempt + 1,
            ..self
        }
    }
}

/// Parks `group` with `error`, reports it, and frees its shard from its backoff: the next
/// message is due at once. Returns how many messages were parked.
fn park(tx: &Connection, group: &Group, error: &str, now: i64) -> rusqlite::Result<usize> {
    let ids = &group.ids;
    report_parked(&group.shard, ids, error);
    store::park(tx, ids, group.attempt, error, now)?;
    store::succeeded(tx, &group.shard)?;
    Ok(ids.len())
}

/// The backoff after `previous`: 1 s, then doubling, at most `cap`.
fn next_delay(previous: i64, cap: i64) -> i64 {
    if previous <= 0 {
        FIRST_DELAY_MS.min(cap)
    } else {
        previous.saturating_mul(2).min(cap)
    }
}

/// Runs one group's receivers in a savepoint of `tx`: their writes stay if they succeed, and
/// are rolled back if they fail. The outer `Result` is the database's (or a receiver that ended
/// the transaction); the inner the delivery's.
fn deliver_group(
    tx: &Connection,
    signal: &dyn Deliver,
    group: &Group,
    state: &State,
) -> Result<Result<(), Failure>, OutboxError> {
    let newest = &group.newest;
    let span = tracing::info_span!(
        target: "signals",
        "outbox.deliver",
        signal = signal.name(),
        category = %newest.category,
        shard = %group.shard,
        message_id = newest.id,
        attempt = group.attempt,
    );
    let _entered = span.enter();
    // Cached statements: parsed once per connection, not at every delivery.
    tx.prepare_cached("SAVEPOINT signals_outbox_delivery")?
        .execute([])?;
    let delivery = Delivery {
        lent: Lending::Sqlite(tx),
        id: newest.id,
        attempt: group.attempt,
        shard: &group.shard,
        object: newest.object,
        coalesced: group.ids.len(),
        state,
    };
    let result = signal.deliver(&newest.category, &newest.payload, &delivery);
    if tx.is_autocommit() {
        return Err(OutboxError::TransactionEnded {
            signal: signal.name(),
            message: newest.id,
        });
    }
    match &result {
        Ok(()) => {
            tx.prepare_cached("RELEASE signals_outbox_delivery")?
                .execute([])?;
        }
        Err(failure) => {
            tx.execute_batch(
                "ROLLBACK TO signals_outbox_delivery; RELEASE signals_outbox_delivery",
            )?;
            if let Failure::Failed(error) = failure {
                report_failure(&group.shard, newest.id, group.attempt, error);
            }
        }
    }
    Ok(result)
}
