//! The application's errors: what a save, a receiver or a drain can fail with.

use ::signals::SendError;

/// Everything the application can fail with.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AppError {
    /// The database refused a statement.
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    /// The database file could not be opened, or is not a database.
    #[error("database {}: {source}", path.display())]
    Open {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: rusqlite::Error,
    },
    /// The database refused a statement (PostgreSQL).
    #[error("database: {0}")]
    Postgres(#[from] sqlx::Error),
    /// The PostgreSQL server could not be reached, or the schema not created.
    #[error("database {url}: {source}")]
    Connect {
        /// The server's URL, without its password.
        url: String,
        /// Why.
        source: sqlx::Error,
    },
    /// The runtime the PostgreSQL client runs on could not start.
    #[error("cannot start the runtime of the PostgreSQL client: {0}")]
    Runtime(std::io::Error),
    /// Ctrl-C and SIGTERM could not be handled.
    #[error("cannot handle Ctrl-C: {0}")]
    Interrupt(#[from] ctrlc::Error),
    /// The database file is read-only: nothing could be written to it.
    #[error("database {} is read-only; the application needs to write to it", path.display())]
    ReadOnly {
        /// The file.
        path: std::path::PathBuf,
    },
    /// A model failed validation; nothing was written.
    #[error("validation failed: {0}")]
    Validation(String),
    /// A receiver of a signal sent with `send` failed, which stopped the operation.
    #[error(transparent)]
    Receiver(#[from] SendError),
    /// The analytics backend failed.
    #[error(transparent)]
    Analytics(#[from] crate::analytics::AnalyticsDown),
    /// Asking the operator failed.
    #[error("prompt: {0}")]
    Prompt(#[from] std::io::Error),
    /// The outbox failed: its database, or a message that cannot be stored.
    #[error(transparent)]
    Outbox(#[from] ::signals::outbox::OutboxError),
    /// An outbox message was written with a category outside its scope.
    #[error("outbox category {category:?} belongs to scope {expected:?}, not {given:?}")]
    WrongScope {
        /// The category written.
        category: crate::outbox::OutboxCategory,
        /// The scope the category belongs to.
        expected: crate::outbox::OutboxScope,
        /// The scope it was written into.
        given: crate::outbox::OutboxScope,
    },
}

impl AppError {
    /// Whether this is a database error about the schema (a missing table or column) or the
    /// database being busy: what `core::handle_db_failure` swallows, as Sentry's does with
    /// Django's `ProgrammingError` and `OperationalError`. A read-only or unreadable database
    /// is not swallowed: nothing the command does could be written.
    pub(crate) fn is_schema_or_operational(&self) -> bool {
        match self {
            Self::Db(rusqlite::Error::SqliteFailure(failure, message)) => {
                use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked};
                let schema = message.as_deref().is_some_and(|message| {
                    message.starts_with("no such table") || message.starts_with("no such column")
                });
                schema || matches!(failure.code, DatabaseBusy | DatabaseLocked)
            }
            // Undefined table or column; serialization failure, deadlock, lock not available.
            Self::Postgres(_) => matches!(
                self.sqlstate().as_deref(),
                Some("42P01" | "42703" | "40001" | "40P01" | "55P03")
            ),
            Self::Receiver(error) => error
                .error()
                .and_then(|error| error.downcast_ref::<Self>())
                .is_some_and(Self::is_schema_or_operational),
            _ => false,
        }
    }

    /// Whether this is a unique constraint's violation: a row that exists already.
    pub(crate) fn is_unique_violation(&self) -> bool {
        match self {
            Self::Db(rusqlite::Error::SqliteFailure(failure, _)) => matches!(
                failure.extended_code,
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            ),
            Self::Postgres(_) => self.sqlstate().as_deref() == Some("23505"),
            _ => false,
        }
    }

    /// PostgreSQL's code for the error (SQLSTATE), if it is the server's.
    fn sqlstate(&self) -> Option<std::borrow::Cow<'_, str>> {
        match self {
            Self::Postgres(sqlx::Error::Database(error)) => error.code(),
            _ => None,
        }
    }
}
