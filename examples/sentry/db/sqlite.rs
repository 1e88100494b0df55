//! The `SQLite` backend: one connection to a file, transactions that take the write lock at
//! their start (`BEGIN IMMEDIATE`), and the outbox in the same file.

use std::path::Path;
use std::sync::Arc;

use ::signals::outbox::{InTransaction, Outbox, OutboxBuilder, OutboxError, Worker};
use rusqlite::types::{ToSql, ToSqlOutput, ValueRef};
use rusqlite::{Connection, Transaction, TransactionBehavior};

use super::{Db, Row, SCHEMA, Value};
use crate::context::Context;
use crate::error::AppError;
use crate::out;

/// A `SQLite` database, and the outbox in it.
pub(super) struct Sqlite {
    conn: Connection,
    outbox: Outbox,
    /// The directory of a temporary database, removed with it.
    #[cfg(test)]
    _directory: Option<tempfile::TempDir>,
}

impl Sqlite {
    /// An empty database in a temporary directory, removed with it.
    #[cfg(test)]
    pub(super) fn temporary(
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

    pub(super) fn open(path: &Path) -> Result<Self, AppError> {
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

    pub(super) fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    pub(super) fn worker(&self, ctx: &Context) -> Result<Worker, AppError> {
        Ok(Worker::new(&self.outbox)?
            .signals(Db::signals())
            .state(Arc::new(ctx.clone())))
    }

    pub(super) fn run_worker(&self, ctx: &Context) -> Result<(), AppError> {
        let mut worker = self.worker(ctx)?;
        let stopper = worker.stopper();
        ctrlc::set_handler(move || stopper.stop())
            .map_err(|error| AppError::Validation(format!("cannot handle Ctrl-C: {error}")))?;
        out::line("delivering durable messages until interrupted (Ctrl-C)");
        worker.run()?;
        out::line("stopped after the delivery in hand");
        Ok(())
    }

    /// Runs `work` in an immediate transaction, rolled back (also when `work` panics) unless
    /// it returns `Ok`.
    pub(super) fn transaction<T>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, AppError>,
    ) -> Result<T, AppError> {
        // Rolls back when dropped, also while unwinding.
        let transaction = Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)?;
        match work(&self.conn) {
            Ok(value) => {
                transaction.commit()?;
                Ok(value)
            }
            Err(error) => {
                transaction.rollback()?;
                Err(error)
            }
        }
    }

    /// The rows of `sql`, outside any transaction.
    pub(super) fn rows(&self, sql: &str) -> Result<Vec<Row>, AppError> {
        rows(&self.conn, sql, &[])
    }

    #[cfg(test)]
    pub(super) fn execute_batch(&self, sql: &str) -> Result<(), AppError> {
        Ok(self.conn.execute_batch(sql)?)
    }
}

impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Int(value) => value.to_sql()?,
            Value::Text(value) => value.to_sql()?,
        })
    }
}

pub(super) fn execute(conn: &Connection, sql: &str, args: &[Value]) -> Result<u64, AppError> {
    let changed = conn
        .prepare_cached(sql)?
        .execute(rusqlite::params_from_iter(args))?;
    Ok(u64::try_from(changed).unwrap_or(u64::MAX))
}

pub(super) fn rows(conn: &Connection, sql: &str, args: &[Value]) -> Result<Vec<Row>, AppError> {
    let mut statement = conn.prepare_cached(sql)?;
    let columns = statement.column_count();
    let mut rows = statement.query(rusqlite::params_from_iter(args))?;
    let mut read = Vec::new();
    while let Some(row) = rows.next()? {
        let values = (0..columns)
            .map(|index| {
                Ok(match row.get_ref(index)? {
                    ValueRef::Null => Value::Int(None),
                    ValueRef::Integer(value) => Value::Int(Some(value)),
                    ValueRef::Text(text) => {
                        Value::Text(Some(String::from_utf8_lossy(text).into_owned()))
                    }
                    other => {
                        return Err(AppError::Validation(format!(
                            "column {index} of `{sql}` holds a {:?}, which the application \
                             does not store",
                            other.data_type()
                        )));
                    }
                })
            })
            .collect::<Result<_, AppError>>()?;
        read.push(Row(values));
    }
    Ok(read)
}

/// A connection with the application's transaction open, where durable messages are written.
pub(super) struct InTx<'c>(pub(super) &'c Connection);

impl InTransaction for InTx<'_> {
    fn connection(&self) -> &Connection {
        self.0
    }
}
