//! Storage: `SQLite` (a file, the default) or PostgreSQL (`--database postgres://…`), behind
//! one small API: transactions, savepoints for receivers that must not abort the enclosing
//! transaction, and statements with `?N` parameters (rewritten to `$N` for PostgreSQL) over
//! [`Value`]s. The durable signals' outbox lives in the same database, so that a message
//! commits with the change it describes.

mod postgres;
mod sqlite;

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::path::Path;

use ::signals::Signature;
use ::signals::outbox::{
    Delivery, Drained, DurableSignature, Enqueue, Enqueued, Pending, Shard, Status,
};
#[cfg(test)]
use ::signals::outbox::{Outbox, OutboxBuilder, Worker};
use serde::Serialize;

use crate::context::Context;
use crate::error::AppError;
use crate::signals::{first_event_received, process_control_outbox, send_signal};

use postgres::Postgres;
use sqlite::Sqlite;

/// The schema, in `SQLite`'s words: real tables with the unique constraints the receivers
/// rely on. [`postgres_schema`] says it in PostgreSQL's.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS auth_user (
    id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
    is_superuser INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS sentry_useremail (
    id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES auth_user(id),
    email TEXT NOT NULL, UNIQUE (user_id, email)
);
CREATE TABLE IF NOT EXISTS sentry_email (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS sentry_organization (
    id INTEGER PRIMARY KEY, slug TEXT NOT NULL UNIQUE, name TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sentry_organizationmember (
    id INTEGER PRIMARY KEY, organization_id INTEGER NOT NULL, user_id INTEGER NOT NULL,
    role TEXT NOT NULL, UNIQUE (organization_id, user_id)
);
CREATE TABLE IF NOT EXISTS sentry_organizationmapping (
    organization_id INTEGER NOT NULL PRIMARY KEY, region_name TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sentry_project (
    id INTEGER PRIMARY KEY, organization_id INTEGER NOT NULL, slug TEXT NOT NULL,
    platform TEXT, flags INTEGER NOT NULL DEFAULT 0, first_event INTEGER NOT NULL DEFAULT 0,
    UNIQUE (organization_id, slug)
);
CREATE TABLE IF NOT EXISTS sentry_projectkey (
    id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, label TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sentry_organizationonboardingtask (
    id INTEGER PRIMARY KEY, organization_id INTEGER NOT NULL, task TEXT NOT NULL,
    status TEXT NOT NULL, project_id INTEGER, user_id INTEGER, UNIQUE (organization_id, task)
);
CREATE TABLE IF NOT EXISTS sentry_featureadoption (
    id INTEGER PRIMARY KEY, organization_id INTEGER NOT NULL, feature TEXT NOT NULL,
    UNIQUE (organization_id, feature)
);
CREATE TABLE IF NOT EXISTS sentry_userreport (
    id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, event_id TEXT NOT NULL,
    email TEXT NOT NULL, comments TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sentry_integration (
    id INTEGER PRIMARY KEY, provider TEXT NOT NULL, name TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sentry_sentryapp (
    id INTEGER PRIMARY KEY, application_id INTEGER NOT NULL UNIQUE, slug TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sentry_sentryappinstallation (
    id INTEGER PRIMARY KEY, sentry_app_id INTEGER NOT NULL, organization_id INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sentry_regiontombstone (
    id INTEGER PRIMARY KEY, region_name TEXT NOT NULL, table_name TEXT NOT NULL,
    object_identifier INTEGER NOT NULL, UNIQUE (region_name, table_name, object_identifier)
);
";

/// [`SCHEMA`] in PostgreSQL's words: generated keys are `BIGSERIAL`, and every integer
/// (flags and booleans stored as 0/1 included) is a `BIGINT`, read as `i64` on both.
fn postgres_schema() -> String {
    SCHEMA
        .replace("id INTEGER PRIMARY KEY", "id BIGSERIAL PRIMARY KEY")
        .replace("INTEGER", "BIGINT")
}

/// The tables, in the order the trace reports rows written.
pub(crate) const TABLES: &[&str] = &[
    "auth_user",
    "sentry_useremail",
    "sentry_email",
    "sentry_organization",
    "sentry_organizationmember",
    "sentry_organizationmapping",
    "sentry_project",
    "sentry_projectkey",
    "sentry_organizationonboardingtask",
    "sentry_featureadoption",
    "sentry_userreport",
    "sentry_integration",
    "sentry_sentryapp",
    "sentry_sentryappinstallation",
    "signals_outbox_message",
    "sentry_regiontombstone",
];

/// A value bound to a statement's parameter, or read from a column: an integer or a text,
/// either of which may be `NULL`. A `NULL` keeps its type, which PostgreSQL checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    /// An integer (booleans are 0 and 1).
    Int(Option<i64>),
    /// A text.
    Text(Option<String>),
}

impl From<i64> for Value {
    fn from(value: i64) -> Self {
        Self::Int(Some(value))
    }
}

impl From<Option<i64>> for Value {
    fn from(value: Option<i64>) -> Self {
        Self::Int(value)
    }
}

impl From<bool> for Value {
    fn from(value: bool) -> Self {
        Self::Int(Some(i64::from(value)))
    }
}

impl From<&str> for Value {
    fn from(value: &str) -> Self {
        Self::Text(Some(value.to_owned()))
    }
}

impl From<&String> for Value {
    fn from(value: &String) -> Self {
        Self::Text(Some(value.clone()))
    }
}

impl From<String> for Value {
    fn from(value: String) -> Self {
        Self::Text(Some(value))
    }
}

impl From<Option<String>> for Value {
    fn from(value: Option<String>) -> Self {
        Self::Text(value)
    }
}

/// A statement's arguments, for its `?1`, `?2`, ...: `args![id, "owner"]`.
macro_rules! args {
    ($($value:expr),* $(,)?) => {
        &[$($crate::db::Value::from($value)),*][..]
    };
}
pub(crate) use args;

/// What a column's [`Value`] can be read as.
pub(crate) trait FromValue: Sized {
    /// The value as `Self`, or an error naming what was found.
    fn from_value(value: Value) -> Result<Self, AppError>;
}

fn unexpected<T>(value: &Value) -> AppError {
    AppError::Validation(format!(
        "a column holds {value:?}, not a {}",
        std::any::type_name::<T>()
    ))
}

impl FromValue for Option<i64> {
    fn from_value(value: Value) -> Result<Self, AppError> {
        match value {
            Value::Int(value) => Ok(value),
            Value::Text(None) => Ok(None),
            other @ Value::Text(Some(_)) => Err(unexpected::<Self>(&other)),
        }
    }
}

impl FromValue for Option<String> {
    fn from_value(value: Value) -> Result<Self, AppError> {
        match value {
            Value::Text(value) => Ok(value),
            Value::Int(None) => Ok(None),
            other @ Value::Int(Some(_)) => Err(unexpected::<Self>(&other)),
        }
    }
}

impl FromValue for i64 {
    fn from_value(value: Value) -> Result<Self, AppError> {
        let found = value.clone();
        Option::<i64>::from_value(value)?.ok_or_else(|| unexpected::<Self>(&found))
    }
}

impl FromValue for bool {
    fn from_value(value: Value) -> Result<Self, AppError> {
        Ok(i64::from_value(value)? != 0)
    }
}

impl FromValue for String {
    fn from_value(value: Value) -> Result<Self, AppError> {
        let found = value.clone();
        Option::<String>::from_value(value)?.ok_or_else(|| unexpected::<Self>(&found))
    }
}

/// A row read: its columns' values, in the order selected.
#[derive(Debug)]
pub(crate) struct Row(Vec<Value>);

impl Row {
    /// Column `index` (from 0) as `T`.
    pub(crate) fn get<T: FromValue>(&self, index: usize) -> Result<T, AppError> {
        let value = self.0.get(index).cloned().ok_or_else(|| {
            AppError::Validation(format!("a row of {} columns has no {index}", self.0.len()))
        })?;
        T::from_value(value)
    }
}

/// What a row can be read as: a model (`id, COLUMNS...`), or the first column's value.
pub(crate) trait FromRow: Sized {
    /// Reads `row`.
    fn from_row(row: &Row) -> Result<Self, AppError>;
}

impl<T: FromValue> FromRow for T {
    fn from_row(row: &Row) -> Result<Self, AppError> {
        row.get(0)
    }
}

impl<A: FromValue, B: FromValue> FromRow for (A, B) {
    fn from_row(row: &Row) -> Result<Self, AppError> {
        Ok((row.get(0)?, row.get(1)?))
    }
}

/// `sql` with `SQLite`'s `?N` parameters written as PostgreSQL's `$N`. Values are always
/// parameters, never literals in the text: a literal `?1` would be rewritten too.
fn dollar_parameters(sql: &str) -> Cow<'_, str> {
    if !sql.contains('?') {
        return Cow::Borrowed(sql);
    }
    let mut rewritten = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        let parameter = c == '?' && chars.peek().is_some_and(char::is_ascii_digit);
        rewritten.push(if parameter { '$' } else { c });
    }
    Cow::Owned(rewritten)
}

/// The database a [`Db`] is on.
enum Backend {
    Sqlite(Sqlite),
    Postgres(Postgres),
}

/// A database: a `SQLite` file or a PostgreSQL server, and the outbox in it.
pub(crate) struct Db {
    backend: Backend,
}

impl Db {
    /// An empty `SQLite` database in a temporary directory (removed when the `Db` is dropped),
    /// with the schema.
    #[cfg(test)]
    pub(crate) fn temporary() -> Result<Self, AppError> {
        Self::temporary_with(|outbox| outbox)
    }

    /// [`temporary`](Self::temporary), with the outbox's options (its clock) set by `options`.
    #[cfg(test)]
    pub(crate) fn temporary_with(
        options: impl FnOnce(OutboxBuilder) -> OutboxBuilder,
    ) -> Result<Self, AppError> {
        Ok(Self {
            backend: Backend::Sqlite(Sqlite::temporary(options)?),
        })
    }

    /// The `SQLite` database in the file at `path`, created with the schema (the
    /// application's and the outbox's) if needed. A file that is read-only, or not a
    /// database, is an error naming it.
    pub(crate) fn open(path: &Path) -> Result<Self, AppError> {
        Ok(Self {
            backend: Backend::Sqlite(Sqlite::open(path)?),
        })
    }

    /// The PostgreSQL database at `url` (`postgres://user@host:port/name`), its schema
    /// created (the application's and the outbox's) if needed: by each of several processes
    /// starting at once, safely.
    pub(crate) fn connect(url: &str) -> Result<Self, AppError> {
        Ok(Self {
            backend: Backend::Postgres(Postgres::connect(url)?),
        })
    }

    /// The durable signals the application's workers deliver.
    fn signals() -> [&'static dyn ::signals::outbox::Deliver; 3] {
        [&process_control_outbox, &first_event_received, &send_signal]
    }

    /// A `SQLite` worker delivering the application's durable signals, lending `ctx` to their
    /// receivers; tests set its options.
    #[cfg(test)]
    pub(crate) fn worker(&self, ctx: &Context) -> Result<Worker, AppError> {
        match &self.backend {
            Backend::Sqlite(sqlite) => sqlite.worker(ctx),
            Backend::Postgres(_) => Err(AppError::Validation(
                "a SQLite worker for a PostgreSQL database".into(),
            )),
        }
    }

    /// Delivers what is due once (every shard's due messages, in order), lending `ctx` to
    /// the receivers.
    pub(crate) fn drain_once(&self, ctx: &Context) -> Result<Drained, AppError> {
        match &self.backend {
            Backend::Sqlite(sqlite) => Ok(sqlite.worker(ctx)?.drain_once()?),
            Backend::Postgres(postgres) => postgres.drain_once(ctx),
        }
    }

    /// Delivers the shards `enqueued` wrote to, now, after their transaction committed
    /// (Sentry's synchronous drain). On PostgreSQL, where other workers may be delivering
    /// too, the same as [`drain_once`](Self::drain_once): what this process does not
    /// deliver, another worker does.
    pub(crate) fn flush(&self, ctx: &Context, enqueued: &Enqueued) -> Result<Drained, AppError> {
        match &self.backend {
            Backend::Sqlite(sqlite) => Ok(sqlite.worker(ctx)?.flush(enqueued)?),
            Backend::Postgres(postgres) => postgres.drain_once(ctx),
        }
    }

    /// Delivers until interrupted (Ctrl-C, SIGTERM), finishing the delivery in hand: the
    /// `outbox worker` command. On PostgreSQL, any number of these may run at once, in as
    /// many processes, on as many machines.
    pub(crate) fn run_worker(&self, ctx: &Context) -> Result<(), AppError> {
        match &self.backend {
            Backend::Sqlite(sqlite) => sqlite.run_worker(ctx),
            Backend::Postgres(postgres) => postgres.run_worker(ctx),
        }
    }

    /// What the outbox holds: shards and their messages, backoffs, pauses, dead letters.
    pub(crate) fn status(&self) -> Result<Status, AppError> {
        match &self.backend {
            Backend::Sqlite(sqlite) => Ok(sqlite.outbox().status()?),
            Backend::Postgres(postgres) => postgres.block_on(postgres.outbox().status()),
        }
    }

    /// Makes message `id` due now; a parked one goes back to its shard.
    pub(crate) fn retry_message(&self, id: i64) -> Result<(), AppError> {
        match &self.backend {
            Backend::Sqlite(sqlite) => Ok(sqlite.outbox().retry_message(id)?),
            Backend::Postgres(postgres) => postgres.block_on(postgres.outbox().retry_message(id)),
        }
    }

    /// Makes `shard` due now; its parked messages go back to it. Returns how many did.
    pub(crate) fn retry_shard(&self, shard: &Shard) -> Result<usize, AppError> {
        match &self.backend {
            Backend::Sqlite(sqlite) => Ok(sqlite.outbox().retry_shard(shard)?),
            Backend::Postgres(postgres) => postgres.block_on(postgres.outbox().retry_shard(shard)),
        }
    }

    /// The `SQLite` outbox, for tests of what only it has (pauses, `explain`).
    #[cfg(test)]
    pub(crate) fn outbox(&self) -> &Outbox {
        match &self.backend {
            Backend::Sqlite(sqlite) => sqlite.outbox(),
            Backend::Postgres(_) => panic!("the tests of the SQLite outbox run on SQLite"),
        }
    }

    /// Runs `work` in a transaction: committed if it returns `Ok`, rolled back if it returns
    /// `Err` or panics (a receiver's panic unwinding through it), so that the connection is
    /// usable again. After a commit, runs what `work` registered with [`Tx::on_commit`], in
    /// order; the first error stops them and is returned (the transaction stays committed).
    pub(crate) fn transaction<T>(
        &self,
        work: impl FnOnce(&Tx<'_>) -> Result<T, AppError>,
    ) -> Result<T, AppError> {
        let callbacks = RefCell::default();
        let value =
            match &self.backend {
                Backend::Sqlite(sqlite) => sqlite
                    .transaction(|conn| work(&Tx::new(Conn::Sqlite(conn), Some(&callbacks))))?,
                Backend::Postgres(postgres) => postgres
                    .transaction(|tx| work(&Tx::new(Conn::Postgres(tx), Some(&callbacks))))?,
            };
        for callback in callbacks.into_inner() {
            callback(self)?;
        }
        Ok(value)
    }

    /// Runs `sql` outside any transaction (schema changes in tests).
    #[cfg(test)]
    pub(crate) fn execute_batch(&self, sql: &str) -> Result<(), AppError> {
        match &self.backend {
            Backend::Sqlite(sqlite) => sqlite.execute_batch(sql),
            Backend::Postgres(postgres) => postgres.execute_batch(sql),
        }
    }

    /// How many rows `table` has: read outside any transaction, taking no lock.
    pub(crate) fn count(&self, table: &str) -> Result<i64, AppError> {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        let rows = match &self.backend {
            Backend::Sqlite(sqlite) => sqlite.rows(&sql)?,
            Backend::Postgres(postgres) => postgres.rows(&sql)?,
        };
        rows.first()
            .ok_or_else(|| AppError::Validation(format!("no row from {sql}")))?
            .get(0)
    }
}

/// Where a [`Tx`]'s statements go.
enum Conn<'c> {
    /// A `SQLite` connection in a transaction: the application's, or a delivery's.
    Sqlite(&'c rusqlite::Connection),
    /// The application's own PostgreSQL transaction.
    Postgres(&'c postgres::Transaction<'c>),
    /// A durable delivery's PostgreSQL transaction, reached through the delivery.
    Delivery(&'c Delivery<'c>),
}

/// An open transaction, lent to receivers so that their writes commit or roll back with the
/// operation that sent the signal.
pub(crate) struct Tx<'c> {
    conn: Conn<'c>,
    savepoints: Cell<u32>,
    /// What runs after the commit; `None` in a transaction the outbox lent, which the
    /// application does not commit.
    on_commit: Option<&'c RefCell<Vec<OnCommit>>>,
}

/// Work for after a commit (Django's `transaction.on_commit`), given the database.
type OnCommit = Box<dyn FnOnce(&Db) -> Result<(), AppError>>;

/// Where a durable message goes: its shard, the object it is about (for coalescing), and its
/// destinations (one message each; none: the default one).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Route<'r, S> {
    pub(crate) scope: S,
    pub(crate) shard: i64,
    pub(crate) object: Option<i64>,
    pub(crate) to: &'r [&'static str],
}

impl<S: Serialize> Route<'_, S> {
    fn apply<T>(&self, pending: Pending<T>) -> Pending<T> {
        let pending = pending.shard(&self.scope, self.shard);
        let pending = match self.object {
            Some(object) => pending.object(object),
            None => pending,
        };
        if self.to.is_empty() {
            pending
        } else {
            pending.to(self.to.iter().copied())
        }
    }
}

impl<'c> Tx<'c> {
    fn new(conn: Conn<'c>, on_commit: Option<&'c RefCell<Vec<OnCommit>>>) -> Self {
        Self {
            conn,
            savepoints: Cell::new(0),
            on_commit,
        }
    }

    /// The transaction a durable signal's delivery lends its receivers: the outbox opened it
    /// and ends it, committing the receivers' writes with the message's removal; on either
    /// backend.
    pub(crate) fn lent(delivery: &'c Delivery<'c>) -> Self {
        let conn = match delivery.sqlite() {
            Ok(conn) => Conn::Sqlite(conn),
            Err(_) => Conn::Delivery(delivery),
        };
        Self::new(conn, None)
    }

    /// Runs `callback` after this transaction commits, and never if it rolls back (Django's
    /// `transaction.on_commit`).
    ///
    /// # Errors
    ///
    /// In a transaction the outbox lent (a durable delivery's), whose commit the application
    /// does not see: write a durable message there instead.
    pub(crate) fn on_commit(
        &self,
        callback: impl FnOnce(&Db) -> Result<(), AppError> + 'static,
    ) -> Result<(), AppError> {
        let callbacks = self.on_commit.ok_or_else(|| {
            AppError::Validation(
                "on_commit in a durable delivery's transaction, whose commit the outbox makes: \
                 enqueue a durable message instead"
                    .into(),
            )
        })?;
        callbacks.borrow_mut().push(Box::new(callback));
        Ok(())
    }

    /// Executes one statement; returns the number of rows it changed.
    pub(crate) fn execute(&self, sql: &str, args: &[Value]) -> Result<u64, AppError> {
        match &self.conn {
            Conn::Sqlite(conn) => sqlite::execute(conn, sql, args),
            Conn::Postgres(tx) => tx.run(async |conn| postgres::execute(conn, sql, args).await),
            Conn::Delivery(delivery) => {
                delivery.postgres(async |conn| postgres::execute(conn, sql, args).await)?
            }
        }
    }

    /// The rows `sql` returns, each read as `T`.
    pub(crate) fn query<T: FromRow>(&self, sql: &str, args: &[Value]) -> Result<Vec<T>, AppError> {
        let rows = match &self.conn {
            Conn::Sqlite(conn) => sqlite::rows(conn, sql, args)?,
            Conn::Postgres(tx) => tx.run(async |conn| postgres::rows(conn, sql, args).await)?,
            Conn::Delivery(delivery) => {
                delivery.postgres(async |conn| postgres::rows(conn, sql, args).await)??
            }
        };
        rows.iter().map(T::from_row).collect()
    }

    /// The first row `sql` returns, if any, read as `T`.
    pub(crate) fn query_opt<T: FromRow>(
        &self,
        sql: &str,
        args: &[Value],
    ) -> Result<Option<T>, AppError> {
        Ok(self.query(sql, args)?.into_iter().next())
    }

    /// The first row `sql` returns, read as `T`; no row is an error.
    pub(crate) fn query_one<T: FromRow>(&self, sql: &str, args: &[Value]) -> Result<T, AppError> {
        self.query_opt(sql, args)?
            .ok_or_else(|| AppError::Validation(format!("no row from {sql}")))
    }

    /// Enqueues `args` on the durable `signal` in this transaction, sent by `sender`, to
    /// `route`: it is delivered once the transaction commits, and never if it rolls back.
    pub(crate) fn enqueue<E: Enqueue, S: Serialize>(
        &self,
        signal: &'static E,
        sender: &<E::Signature as Signature>::Sender,
        args: &<E::Signature as DurableSignature>::Payload,
        route: &Route<'_, S>,
    ) -> Result<Enqueued, AppError> {
        match &self.conn {
            Conn::Sqlite(conn) => {
                let conn = sqlite::InTx(conn);
                Ok(route.apply(signal.enqueue(&conn, sender, args)).write()?)
            }
            Conn::Postgres(tx) => tx.run_tx(async |tx| {
                Ok(route
                    .apply(signal.enqueue(tx, sender, args))
                    .write()
                    .await?)
            }),
            Conn::Delivery(_) => Err(AppError::Validation(
                "an enqueue in a PostgreSQL delivery's transaction: the outbox's PostgreSQL \
                 enqueue takes the application's sqlx::Transaction"
                    .into(),
            )),
        }
    }

    /// Runs `work` in a savepoint: released if it returns `Ok`, rolled back (leaving the
    /// enclosing transaction intact) if it returns `Err`.
    pub(crate) fn savepoint<T>(
        &self,
        work: impl FnOnce(&Self) -> Result<T, AppError>,
    ) -> Result<T, AppError> {
        let depth = self.savepoints.get() + 1;
        self.savepoints.set(depth);
        let name = format!("sp_{depth}");
        self.execute(&format!("SAVEPOINT {name}"), args![])?;
        let result = work(self);
        self.savepoints.set(depth - 1);
        match result {
            Ok(value) => {
                self.execute(&format!("RELEASE {name}"), args![])?;
                Ok(value)
            }
            Err(error) => {
                self.execute(&format!("ROLLBACK TO {name}"), args![])?;
                self.execute(&format!("RELEASE {name}"), args![])?;
                Err(error)
            }
        }
    }

    /// Runs `work` in a savepoint and turns a unique-constraint violation into `Ok(None)`:
    /// Django's `try: with transaction.atomic(): create() except IntegrityError: pass`.
    pub(crate) fn ignore_conflict<T>(
        &self,
        work: impl FnOnce(&Self) -> Result<T, AppError>,
    ) -> Result<Option<T>, AppError> {
        match self.savepoint(work) {
            Ok(value) => Ok(Some(value)),
            Err(error) if error.is_unique_violation() => Ok(None),
            Err(error) => Err(error),
        }
    }
}
