//! The PostgreSQL backend: a pool, a runtime the synchronous application blocks on, and the
//! outbox's PostgreSQL worker, of which any number of processes may run at once.

use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

use ::signals::outbox::Drained;
use ::signals::outbox::postgres::{PgOutbox, PgWorker};
use sqlx::postgres::{PgArguments, PgPoolOptions, PgRow};
use sqlx::{Column as _, Connection as _, PgConnection, Row as _, TypeInfo as _};
use tokio::runtime::Runtime;

use super::{Db, Row, Value, dollar_parameters, postgres_schema};
use crate::context::Context;
use crate::error::AppError;
use crate::out;

/// A PostgreSQL database, the outbox in it, and the runtime its client runs on.
pub(super) struct Postgres {
    runtime: Runtime,
    outbox: PgOutbox,
}

impl Postgres {
    pub(super) fn connect(url: &str) -> Result<Self, AppError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(AppError::Runtime)?;
        let connect = async {
            // Alone first: a pool that cannot connect says only that it timed out.
            PgConnection::connect(url).await?.close().await?;
            let pool = PgPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await?;
            // Under a lock, so that worker processes starting at once create each table once.
            let mut tx = pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext('signals_example_schema'))")
                .execute(&mut *tx)
                .await?;
            sqlx::raw_sql(&postgres_schema()).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(pool)
        };
        let pool = runtime
            .block_on(connect)
            .map_err(|source| AppError::Connect {
                url: redacted(url),
                source,
            })?;
        let outbox = runtime.block_on(PgOutbox::open(pool))?;
        Ok(Self { runtime, outbox })
    }

    /// Runs `future` to its end on the runtime.
    pub(super) fn block_on<T, E: Into<AppError>>(
        &self,
        future: impl Future<Output = Result<T, E>>,
    ) -> Result<T, AppError> {
        self.runtime.block_on(future).map_err(Into::into)
    }

    pub(super) fn outbox(&self) -> &PgOutbox {
        &self.outbox
    }

    fn worker(&self, ctx: &Context) -> PgWorker {
        PgWorker::new(&self.outbox)
            .signals(Db::signals())
            .state(Arc::new(ctx.clone()))
    }

    pub(super) fn drain_once(&self, ctx: &Context) -> Result<Drained, AppError> {
        let mut worker = self.worker(ctx);
        self.block_on(worker.drain_once())
    }

    pub(super) fn run_worker(&self, ctx: &Context) -> Result<(), AppError> {
        let stop = Arc::new(tokio::sync::Notify::new());
        ctrlc::set_handler({
            let stop = Arc::clone(&stop);
            move || stop.notify_one()
        })?;
        let name = format!("worker {}", std::process::id());
        out::line(format_args!(
            "{name}: delivering durable messages from PostgreSQL until interrupted (Ctrl-C); \
             start more `outbox worker` processes, here or on other machines, to share them"
        ));
        let mut worker = self.worker(ctx).name(name.clone());
        self.block_on(worker.run(stop.notified()))?;
        let totals = worker.totals();
        out::line(format_args!(
            "{name}: stopped after the round in hand: {} delivered, {} failed, {} parked, \
             {} fenced",
            totals.delivered, totals.failed, totals.parked, totals.fenced
        ));
        Ok(())
    }

    /// Runs `work` in a transaction, rolled back unless it returns `Ok` (also when `work`
    /// panics: dropped, the transaction rolls back when its connection is next used).
    pub(super) fn transaction<T>(
        &self,
        work: impl FnOnce(&Transaction<'_>) -> Result<T, AppError>,
    ) -> Result<T, AppError> {
        // The pool hands back a dropped connection on the runtime: also while unwinding.
        let _context = self.runtime.enter();
        let tx = Transaction {
            tx: Cell::new(Some(self.runtime.block_on(self.outbox.pool().begin())?)),
            runtime: &self.runtime,
        };
        let result = work(&tx);
        let tx = tx.tx.take().ok_or(AppError::Validation(
            "the transaction was lost by a statement that panicked".into(),
        ))?;
        match result {
            Ok(value) => {
                self.runtime.block_on(tx.commit())?;
                Ok(value)
            }
            Err(error) => {
                self.runtime.block_on(tx.rollback())?;
                Err(error)
            }
        }
    }

    /// The rows of `sql`, outside any transaction.
    pub(super) fn rows(&self, sql: &str) -> Result<Vec<Row>, AppError> {
        self.block_on(async {
            let mut conn = self.outbox.pool().acquire().await?;
            rows(&mut conn, sql, &[]).await
        })
    }

    #[cfg(test)]
    pub(super) fn execute_batch(&self, sql: &str) -> Result<(), AppError> {
        self.block_on(sqlx::raw_sql(sql).execute(self.outbox.pool()))?;
        Ok(())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.runtime.block_on(self.outbox.pool().close());
    }
}

/// The application's own transaction, which statements reach by blocking on the runtime.
pub(super) struct Transaction<'r> {
    /// `None` while a statement has it.
    tx: Cell<Option<sqlx::Transaction<'static, sqlx::Postgres>>>,
    runtime: &'r Runtime,
}

impl Transaction<'_> {
    /// Runs `work` on the transaction.
    pub(super) fn run_tx<T>(
        &self,
        work: impl AsyncFnOnce(&mut sqlx::Transaction<'static, sqlx::Postgres>) -> Result<T, AppError>,
    ) -> Result<T, AppError> {
        let mut tx = self.tx.take().ok_or(AppError::Validation(
            "a statement inside another on the same transaction".into(),
        ))?;
        let result = self.runtime.block_on(work(&mut tx));
        self.tx.set(Some(tx));
        result
    }

    /// Runs `work` on the transaction's connection.
    pub(super) fn run<T>(
        &self,
        work: impl AsyncFnOnce(&mut PgConnection) -> Result<T, AppError>,
    ) -> Result<T, AppError> {
        self.run_tx(async |tx| work(&mut **tx).await)
    }
}

fn query<'q>(
    sql: &'q str,
    args: &'q [Value],
) -> sqlx::query::Query<'q, sqlx::Postgres, PgArguments> {
    args.iter().fold(sqlx::query(sql), |query, arg| match arg {
        Value::Int(value) => query.bind(*value),
        Value::Text(value) => query.bind(value.as_deref()),
    })
}

pub(super) async fn execute(
    conn: &mut PgConnection,
    sql: &str,
    args: &[Value],
) -> Result<u64, AppError> {
    let sql = dollar_parameters(sql);
    Ok(query(&sql, args).execute(conn).await?.rows_affected())
}

pub(super) async fn rows(
    conn: &mut PgConnection,
    sql: &str,
    args: &[Value],
) -> Result<Vec<Row>, AppError> {
    let sql = dollar_parameters(sql);
    let rows = query(&sql, args).fetch_all(conn).await?;
    rows.iter()
        .map(|row| {
            let values = (0..row.len()).map(|index| value(row, index));
            Ok(Row(values.collect::<Result<_, AppError>>()?))
        })
        .collect()
}

/// Column `index` of `row`, by its type.
fn value(row: &PgRow, index: usize) -> Result<Value, AppError> {
    let column = &row.columns()[index];
    Ok(match column.type_info().name() {
        "INT8" => Value::Int(row.try_get(index)?),
        "INT4" => Value::Int(row.try_get::<Option<i32>, _>(index)?.map(i64::from)),
        "INT2" => Value::Int(row.try_get::<Option<i16>, _>(index)?.map(i64::from)),
        "BOOL" => Value::Int(row.try_get::<Option<bool>, _>(index)?.map(i64::from)),
        "TEXT" | "VARCHAR" | "NAME" | "BPCHAR" => Value::Text(row.try_get(index)?),
        other => {
            return Err(AppError::Validation(format!(
                "column {} is a {other}, which the application does not store",
                column.name()
            )));
        }
    })
}

/// `url` without its password, for messages.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if scheme < at => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_url_is_shown_without_its_password() {
        for (url, shown) in [
            (
                "postgres://ada:s3cr@t@db:5432/sentry",
                "postgres://ada:***@db:5432/sentry",
            ),
            ("postgres://ada@db/sentry", "postgres://ada@db/sentry"),
            ("postgres://db/sentry", "postgres://db/sentry"),
        ] {
            assert_eq!(super::redacted(url), shown);
        }
    }
}
