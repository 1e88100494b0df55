//! `SQLite` storage: the schema, transactions, and savepoints for receivers that must not abort
//! the enclosing transaction. The durable signals' outbox lives in the same file, so that a
//! message commits with the change it describes.

use std::cell::{Cell, RefCell};
use std::path::Path;
use std::sync::Arc;

use ::signals::outbox::{InTransaction, Outbox, OutboxBuilder, OutboxError, Worker};
use rusqlite::{Connection, Params, Transaction, TransactionBehavior};

use crate::context::Context;
use crate::error::AppError;
use crate::signals::{first_event_received, process_control_outbox, send_signal};

/// The schema: real tables with the unique constraints the receivers rely on.
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
    organization_id INTEGER PRIMARY KEY, region_name TEXT NOT NULL
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

/// A database: one `SQLite` connection to a file, and the outbox in it.
pub(crate) struct Db {
    conn: Connection,
    outbox: Outbox,
    /// The directory of a temporary database, removed with it.
    #[cfg(test)]
    _directory: Option<tempfile::TempDir>,
}

impl Db {
    /// An empty database in a temporary directory (removed when the `Db` is dropped), with
    /// the schema.
    #[cfg(test)]
    pub(crate) fn temporary() -> Result<Self, AppError> {
        Self::temporary_with(|outbox| outbox)
    }

    /// [`temporary`](Self::temporary), with the outbox's options (its clock) set by `options`.
    #[cfg(test)]
    pub(crate) fn temporary_with(
        options: impl FnOnce(OutboxBuilder) -> OutboxBuilder,
    ) -> Result<Self, AppError> {
        let directory = tempfile::tempdir().expect("a temporary directory for a test database");
        let path = directory.path().join("sentry.sqlite3");
        let db = Self::open_with(&path, options(Outbox::builder(&path)))?;
        Ok(Self {
            _directory: Some(directory),
            ..db
        })
    }

    /// The database in the file at `path`, created with the schema (the application's and the
    /// outbox's) if needed. A file that is read-only, or not a database, is an error naming it.
    pub(crate) fn open(path: &Path) -> Result<Self, AppError> {
        Self::open_with(path, Outbox::builder(path))
    }

    fn open_with(path: &Path, outbox: OutboxBuilder) -> Result<Self, AppError> {
        let open = || -> Result<Connection, rusqlite::Error> {
            let conn = Connection::open(path)?;
            conn.busy_timeout(std::time::Duration::from_secs(10))?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            Ok(conn)
        };
        let conn = open().map_err(|source| AppError::Open {
            path: path.to_owned(),
            source,
        })?;
        if conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(true) {
            return Err(AppError::ReadOnly {
                path: path.to_owned(),
            });
        }
        conn.execute_batch(SCHEMA)
            .map_err(|source| AppError::Open {
                path: path.to_owned(),
                source,
            })?;
        let outbox = outbox.open().map_err(|error| match error {
            OutboxError::Database(source) => AppError::Open {
                path: path.to_owned(),
                source,
            },
            other => AppError::Outbox(other),
        })?;
        Ok(Self {
            conn,
            outbox,
            #[cfg(test)]
            _directory: None,
        })
    }

    /// The durable signals' outbox, in this database.
    pub(crate) fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// A worker that delivers the application's durable signals, lending `ctx` to their
    /// receivers.
    pub(crate) fn worker(&self, ctx: &Context) -> Result<Worker, AppError> {
        Ok(Worker::new(&self.outbox)?
            .signal(&process_control_outbox)
            .signal(&first_event_received)
            .signal(&send_signal)
            .state(Arc::new(ctx.clone())))
    }

    /// Runs `work` in a transaction: committed if it returns `Ok`, rolled back if it returns
    /// `Err` or panics (a receiver's panic unwinding through it), so that the connection is
    /// usable again. After a commit, runs what `work` registered with [`Tx::on_commit`], in
    /// order; the first error stops them and is returned (the transaction stays committed).
    pub(crate) fn transaction<T>(
        &self,
        work: impl FnOnce(&Tx<'_>) -> Result<T, AppError>,
    ) -> Result<T, AppError> {
        // Rolls back when dropped, also while unwinding.
        let transaction = Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)?;
        let tx = Tx {
            conn: &self.conn,
            savepoints: Cell::new(0),
            on_commit: Some(RefCell::default()),
        };
        match work(&tx) {
            Ok(value) => {
                transaction.commit()?;
                for callback in tx.on_commit.unwrap_or_default().into_inner() {
                    callback(self)?;
                }
                Ok(value)
            }
            Err(error) => {
                transaction.rollback()?;
                Err(error)
            }
        }
    }

    /// Runs `sql` outside any transaction (schema changes in tests).
    #[cfg(test)]
    pub(crate) fn execute_batch(&self, sql: &str) -> Result<(), AppError> {
        Ok(self.conn.execute_batch(sql)?)
    }

    /// How many rows `table` has.
    pub(crate) fn count(&self, table: &str) -> Result<i64, AppError> {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        Ok(self.conn.query_row(&sql, [], |row| row.get(0))?)
    }
}

/// An open transaction, lent to receivers so that their writes commit or roll back with the
/// operation that sent the signal.
pub(crate) struct Tx<'c> {
    conn: &'c Connection,
    savepoints: Cell<u32>,
    /// What runs after the commit; `None` in a transaction the outbox lent, which the
    /// application does not commit.
    on_commit: Option<RefCell<Vec<OnCommit>>>,
}

/// Work for after a commit (Django's `transaction.on_commit`), given the database.
type OnCommit = Box<dyn FnOnce(&Db) -> Result<(), AppError>>;

impl<'c> Tx<'c> {
    /// The transaction a durable signal's delivery lends its receivers (`Delivery::transaction`):
    /// the outbox opened it and ends it, committing the receivers' writes with the message's
    /// removal.
    pub(crate) fn lent(conn: &'c Connection) -> Self {
        Self {
            conn,
            savepoints: Cell::new(0),
            on_commit: None,
        }
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
        let callbacks = self.on_commit.as_ref().ok_or_else(|| {
            AppError::Validation(
                "on_commit in a durable delivery's transaction, whose commit the outbox makes: \
                 enqueue a durable message instead"
                    .into(),
            )
        })?;
        callbacks.borrow_mut().push(Box::new(callback));
        Ok(())
    }

    /// The connection, for queries.
    pub(crate) fn conn(&self) -> &Connection {
        self.conn
    }

    /// Executes one statement; returns the number of rows changed.
    pub(crate) fn execute(&self, sql: &str, params: impl Params) -> Result<usize, AppError> {
        Ok(self.conn.execute(sql, params)?)
    }

    /// Inserts with `sql` and returns the new row's id.
    pub(crate) fn insert(&self, sql: &str, params: impl Params) -> Result<i64, AppError> {
        self.conn.execute(sql, params)?;
        Ok(self.conn.last_insert_rowid())
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
        self.conn.execute_batch(&format!("SAVEPOINT {name}"))?;
        let result = work(self);
        self.savepoints.set(depth - 1);
        match result {
            Ok(value) => {
                self.conn.execute_batch(&format!("RELEASE {name}"))?;
                Ok(value)
            }
            Err(error) => {
                self.conn
                    .execute_batch(&format!("ROLLBACK TO {name}; RELEASE {name}"))?;
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
            Err(AppError::Db(rusqlite::Error::SqliteFailure(failure, _)))
                if failure.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }
}

/// Durable messages are written in the application's transactions.
impl InTransaction for Tx<'_> {
    fn connection(&self) -> &Connection {
        self.conn
    }
}
