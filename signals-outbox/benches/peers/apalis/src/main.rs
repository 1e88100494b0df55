//! apalis with its PostgreSQL storage (`apalis-postgres`), driven by the PostgreSQL drain
//! benchmark of `signals-outbox` (`benches/postgres.rs`), which builds and runs this binary:
//!
//! - `apalis-peer URL enqueue N SHARDS`: creates apalis's schema and pushes `N` jobs
//!   `{shard, seq}` to the queue `bench`, then exits;
//! - `apalis-peer URL work`: connects, prints `ready`, waits for a line on standard input,
//!   then works the queue (batches of 100, the bench's batch everywhere) until it is killed.
//!   The bench decides when the queue is drained: apalis keeps finished jobs as `Done`.

use std::hint::black_box;
use std::io::Write as _;

use apalis::prelude::*;
use apalis_postgres::{Config, PgPool, PostgresStorage};
use futures::stream::{self, StreamExt as _};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncBufReadExt as _;

/// The queue (apalis's `job_type`) the bench uses.
const QUEUE: &str = "bench";
/// Jobs fetched per round.
const BATCH: usize = 100;

/// One job: the same arguments as the other sides'.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Job {
    shard: i64,
    seq: i64,
}

/// The per-job function: the same work as the floor's and the receiver's.
#[inline(never)]
fn handle(job: &Job) {
    black_box(job.seq);
}

async fn work(job: Job) -> Result<(), BoxDynError> {
    handle(&job);
    Ok(())
}

fn config() -> Config {
    Config::default().queue(QUEUE).batch_size(BATCH)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxDynError> {
    let args: Vec<String> = std::env::args().collect();
    let (url, role) = match &args[..] {
        [_, url, role, ..] => (url.as_str(), role.as_str()),
        _ => return Err("usage: apalis-peer URL (enqueue N SHARDS | work)".into()),
    };
    let pool = PgPool::connect(url).await?;
    match role {
        "enqueue" => {
            let n: i64 = args.get(3).ok_or("enqueue: N")?.parse()?;
            let shards: i64 = args.get(4).ok_or("enqueue: SHARDS")?.parse()?;
            PostgresStorage::setup(&pool).await?;
            let mut storage = PostgresStorage::new(&pool).with_config(config());
            let mut jobs = stream::iter(0..n).map(move |seq| {
                TaskBuilder::new(Job {
                    shard: seq % shards,
                    seq,
                })
                .build()
            });
            storage.push_all(&mut jobs).await?;
            Ok(())
        }
        "work" => {
            let storage = PostgresStorage::new(&pool).with_config(config());
            let worker = WorkerBuilder::new(format!("bench-{}", std::process::id()))
                .backend(storage)
                .build(work);
            println!("ready");
            std::io::stdout().flush()?;
            let mut go = String::new();
            tokio::io::BufReader::new(tokio::io::stdin())
                .read_line(&mut go)
                .await?;
            worker.run().await?;
            Ok(())
        }
        other => Err(format!("unknown role {other}").into()),
    }
}
