//! The PostgreSQL worker under faults, with real worker processes (this test binary started
//! again, in the role of `child` below): four processes drain 100,000 messages over 1,000
//! shards; the same while a random worker is killed (`kill -9`) every 200 ms for a minute; a
//! worker paused (`SIGSTOP`) past its lease, whose shards another takes over, and whose late
//! work is then refused; a server restart (`pg_ctl restart`) in the middle of a run.
//!
//! Every receiver records `(shard, seq, lease)` in its delivery's transaction, and appends
//! `shard seq` to a file outside it. At the end: every message was delivered; no record is
//! there twice (the transactional effect is exactly once); each shard's records are in order,
//! with lease tokens that never go back (no two workers' deliveries of a shard interleaved);
//! the file's duplicates (effects outside the database, at least once) are reported.
//!
//! Each test prints its figures (`cargo test --test postgres_faults -- --nocapture`).
//! `SIGNALS_FAULT_SECONDS` shortens the kill run (60 s by default) when trying things out.
#![allow(missing_docs, non_upper_case_globals)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use signals::outbox::postgres::{PgOutbox, PgWorker};
use signals::outbox::{Delivery, Enqueue, OutboxError};
use signals::{receiver, signal};
use sqlx::PgPool;
use throwaway_postgres::Postgres;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Category {
    Job,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub shard: i64,
    pub seq: i64,
}

signal! {
    pub static job: durable Signal<Job, sender = Category>;
}

const ROLE: &str = "SIGNALS_PG_FAULT_ROLE";
const URL: &str = "SIGNALS_PG_FAULT_URL";
const LEASE_MS: &str = "SIGNALS_PG_FAULT_LEASE_MS";
const LOG: &str = "SIGNALS_PG_FAULT_LOG";

/// The effect: a record in the delivery's transaction, and a line in a file outside it.
#[receiver(signal = job, sender = Category::Job)]
fn record(shard: i64, seq: i64, delivery: &Delivery<'_>) -> Result<(), OutboxError> {
    let lease = delivery.lease().expect("a PostgreSQL delivery has a lease");
    delivery.postgres(async |conn| {
        sqlx::query("INSERT INTO delivered (shard, seq, lease, pid) VALUES ($1, $2, $3, $4)")
            .bind(shard)
            .bind(seq)
            .bind(lease)
            .bind(i64::from(std::process::id()))
            .execute(conn)
            .await
    })??;
    if let Ok(log) = std::env::var(LOG) {
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        log.write_all(format!("{shard} {seq}\n").as_bytes())
            .unwrap();
    }
    Ok(())
}

/// A worker process: runs until SIGTERM, then prints its totals. Does nothing as a test.
#[test]
fn child() {
    let (Ok(_), Ok(url)) = (std::env::var(ROLE), std::env::var(URL)) else {
        return;
    };
    let lease: u64 = std::env::var(LEASE_MS).unwrap().parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let pool = PgPool::connect(&url).await.unwrap();
        let outbox = PgOutbox::open(pool).await.unwrap();
        let mut worker = PgWorker::new(&outbox)
            .signal(&job)
            .lease(Duration::from_millis(lease))
            .poll(Duration::from_millis(100))
            .max_attempts(1_000) // a kill charges an attempt: none is parked for it here
            .batch(50);
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
        println!("ready");
        worker
            .run(async {
                term.recv().await;
            })
            .await
            .unwrap();
        let totals = worker.totals();
        println!(
            "totals delivered={} fenced={} failed_rounds={}",
            totals.delivered,
            totals.fenced,
            worker.failed_rounds()
        );
    });
}

/// A worker process's totals, as it printed them on SIGTERM.
#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    delivered: u64,
    fenced: u64,
    failed_rounds: u64,
}

/// A run: a database on a server, its worker processes, the file of outside effects.
struct Run {
    url: String,
    pool: PgPool,
    lease: Duration,
    directory: tempfile::TempDir,
    workers: Vec<Child>,
}

impl Run {
    async fn new(server: &Postgres, name: &str, lease: Duration) -> Self {
        let url = server.database(name).await;
        let pool = PgPool::connect(&url).await.unwrap();
        PgOutbox::open(pool.clone()).await.unwrap();
        sqlx::raw_sql(
            "CREATE TABLE delivered (n BIGSERIAL PRIMARY KEY, shard BIGINT, seq BIGINT,
                                     lease BIGINT, pid BIGINT)",
        )
        .execute(&pool)
        .await
        .unwrap();
        Self {
            url,
            pool,
            lease,
            directory: tempfile::tempdir().unwrap(),
            workers: Vec::new(),
        }
    }

    /// Starts a worker process; returns its index.
    fn spawn(&mut self) -> usize {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child", "--nocapture", "--test-threads=1"])
            .env(ROLE, "worker")
            .env(URL, &self.url)
            .env(LEASE_MS, self.lease.as_millis().to_string())
            .env(LOG, self.directory.path().join("external"))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until it runs: its first line.
        let mut line = String::new();
        let stdout = child.stdout.take().unwrap();
        let mut reader = BufReader::new(stdout);
        while !line.contains("ready") {
            line.clear();
            assert!(
                reader.read_line(&mut line).unwrap() > 0,
                "a worker process ended before it ran"
            );
        }
        child.stdout = Some(reader.into_inner());
        self.workers.push(child);
        self.workers.len() - 1
    }

    fn pid(&self, worker: usize) -> i32 {
        i32::try_from(self.workers[worker].id()).unwrap()
    }

    fn signal(&self, worker: usize, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.pid(worker).to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} failed");
    }

    /// `kill -9` the worker, and start another in its place.
    fn kill_and_replace(&mut self, worker: usize) {
        self.workers[worker].kill().unwrap();
        self.workers[worker].wait().unwrap();
        let new = self.spawn();
        self.workers.swap(worker, new);
        self.workers.pop();
    }

    /// Enqueues `seqs` for `shards` shards from four connections at once, each writing a
    /// quarter of the shards, one transaction per `seq`: each shard's messages are written
    /// in the order of their `seq`.
    async fn enqueue(&self, shards: i64, seqs: std::ops::Range<i64>) {
        let writers: Vec<_> = (0..4)
            .map(|quarter| {
                let (pool, seqs) = (self.pool.clone(), seqs.clone());
                tokio::spawn(async move {
                    for seq in seqs {
                        write_jobs(&pool, (quarter..shards).step_by(4), seq).await;
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.await.unwrap();
        }
    }

    async fn scalar(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.pool).await.unwrap()
    }

    /// Waits (at most `limit`) until no message waits.
    async fn wait_drained(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let waiting = self
                .scalar("SELECT count(*) FROM signals_outbox_message")
                .await;
            if waiting == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{waiting} messages still waiting after {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops every worker with SIGTERM and sums their totals.
    fn stop(&mut self) -> Totals {
        let mut sum = Totals::default();
        for worker in 0..self.workers.len() {
            self.signal(worker, "-TERM");
        }
        for mut child in self.workers.drain(..) {
            let mut output = String::new();
            std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut output).unwrap();
            assert!(child.wait().unwrap().success(), "a worker failed: {output}");
            let totals = parse_totals(&output);
            sum.delivered += totals.delivered;
            sum.fenced += totals.fenced;
            sum.failed_rounds += totals.failed_rounds;
        }
        sum
    }

    /// Checks every message of `shards` × `seqs` was delivered once, in order, under leases
    /// that never go back; returns the outside effects' duplicates.
    async fn verify(&self, shards: i64, seqs: i64) -> u64 {
        let expected = shards * seqs;
        assert_eq!(
            self.scalar("SELECT count(*) FROM signals_outbox_parked")
                .await,
            0,
            "parked messages"
        );
        assert_eq!(
            self.scalar("SELECT count(*) FROM delivered").await,
            expected,
            "transactional records (a duplicate or a loss)"
        );
        assert_eq!(
            self.scalar("SELECT count(DISTINCT (shard, seq)) FROM delivered")
                .await,
            expected,
            "distinct deliveries"
        );
        // In each shard, by commit order: seq 0, 1, 2 ... and leases that never go back.
        let out_of_order = self
            .scalar(
                "SELECT count(*) FROM (
                     SELECT seq, lease,
                            lag(seq) OVER w AS previous_seq, lag(lease) OVER w AS previous_lease
                     FROM delivered WINDOW w AS (PARTITION BY shard ORDER BY n)) AS d
                 WHERE seq <> coalesce(previous_seq + 1, 0) OR lease < previous_lease",
            )
            .await;
        assert_eq!(
            out_of_order, 0,
            "deliveries out of order, or under an older lease"
        );
        let log = std::fs::read_to_string(self.directory.path().join("external")).unwrap();
        let lines = log.lines().count();
        let distinct: HashSet<&str> = log.lines().collect();
        assert_eq!(
            i64::try_from(distinct.len()).unwrap(),
            expected,
            "outside effects missing"
        );
        u64::try_from(lines - distinct.len()).unwrap()
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        for child in &mut self.workers {
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Writes the job `seq` of each of `shards`, in one transaction.
async fn write_jobs(pool: &PgPool, shards: impl Iterator<Item = i64>, seq: i64) {
    let mut tx = pool.begin().await.unwrap();
    for shard in shards {
        job.enqueue(&mut tx, &Category::Job, &Job { shard, seq })
            .shard("org", shard)
            .write()
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

fn parse_totals(output: &str) -> Totals {
    let line = output
        .lines()
        .find(|line| line.starts_with("totals "))
        .unwrap_or_else(|| panic!("a worker printed no totals: {output}"));
    let field = |name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|part| part.strip_prefix(&format!("{name}=")))
            .unwrap()
            .parse()
            .unwrap()
    };
    Totals {
        delivered: field("delivered"),
        fenced: field("fenced"),
        failed_rounds: field("failed_rounds"),
    }
}

/// A server of this test's own (one test restarts it), or `None` when skipped.
fn server() -> Option<Postgres> {
    Postgres::get()
}

/// The fault runs, apart from `child`: `--skip faults::` leaves them out (CI runs them in one
/// of its two backend passes: they do not depend on the registry backend).
mod faults {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn four_worker_processes_drain_100_000_messages_over_1_000_shards_in_order() {
        let Some(server) = server() else { return };
        let mut run = Run::new(&server, "pg_faults_four", Duration::from_secs(30)).await;
        let started = Instant::now();
        run.enqueue(1_000, 0..100).await;
        let enqueued = started.elapsed();
        let started = Instant::now();
        for _ in 0..4 {
            run.spawn();
        }
        run.wait_drained(Duration::from_secs(600)).await;
        let drained = started.elapsed();
        let totals = run.stop();
        let duplicates = run.verify(1_000, 100).await;
        assert_eq!(totals.delivered, 100_000, "{totals:?}");
        eprintln!(
            "4 processes: 100,000 messages over 1,000 shards enqueued in {enqueued:.1?}, drained in \
             {drained:.1?} ({:.0}/s); nothing lost, order held, 0 transactional duplicates, \
             {duplicates} outside; {totals:?}",
            100_000.0 / drained.as_secs_f64()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn killing_a_random_worker_every_200_ms_loses_nothing_and_keeps_order() {
        let Some(server) = server() else { return };
        let seconds: u64 = std::env::var("SIGNALS_FAULT_SECONDS")
            .ok()
            .and_then(|seconds| seconds.parse().ok())
            .unwrap_or(60);
        let chaos = Duration::from_secs(seconds);
        let mut run = Run::new(&server, "pg_faults_kill", Duration::from_secs(2)).await;
        for _ in 0..4 {
            run.spawn();
        }
        // 100 transactions of 1,000 messages, written through the kills.
        let producer = {
            let pool = run.pool.clone();
            tokio::spawn(async move {
                let pace = chaos / 100;
                for seq in 0..100 {
                    let started = Instant::now();
                    write_jobs(&pool, 0..1_000, seq).await;
                    tokio::time::sleep(pace.saturating_sub(started.elapsed())).await;
                }
            })
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        let seed = (now.as_secs() << 32) ^ u64::from(now.subsec_nanos()) | 1;
        eprintln!("kill order seed {seed}");
        let mut random = seed;
        let started = Instant::now();
        let mut kills = 0;
        while started.elapsed() < chaos || !producer.is_finished() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            random ^= random << 13;
            random ^= random >> 7;
            random ^= random << 17;
            run.kill_and_replace(usize::try_from(random % 4).unwrap());
            kills += 1;
        }
        producer.await.unwrap();
        run.wait_drained(Duration::from_secs(600)).await;
        let totals = run.stop();
        let duplicates = run.verify(1_000, 100).await;
        eprintln!(
            "kill -9: {kills} kills in {:.1?}; 100,000 messages over 1,000 shards: nothing lost, \
             order held, 0 transactional duplicates, {duplicates} outside; survivors' {totals:?}",
            started.elapsed()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_worker_paused_past_its_lease_is_taken_over_and_its_late_work_refused() {
        let Some(server) = server() else { return };
        let lease = Duration::from_secs(1);
        let mut run = Run::new(&server, "pg_faults_pause", lease).await;
        run.enqueue(100, 0..300).await;
        let paused = run.spawn();
        // Pause it while it holds leases.
        let holding = format!(
            "SELECT count(*) FROM signals_outbox_shard WHERE holder LIKE '%:{}:%'
               AND lease_until > (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
            run.pid(paused)
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        while run.scalar(&holding).await == 0 {
            assert!(Instant::now() < deadline, "the worker never held a lease");
        }
        run.signal(paused, "-STOP");
        // The shards it holds now: under a lease not yet over (a row keeps the holder of its
        // last claim after its release).
        let held: Vec<(i64, i64)> = sqlx::query_as(&format!(
            "SELECT shard, claim FROM signals_outbox_shard WHERE holder LIKE '%:{}:%'
               AND lease_until > (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
            run.pid(paused)
        ))
        .fetch_all(&run.pool)
        .await
        .unwrap();
        let other = run.spawn();
        // Wait until the other worker has taken over a shard the paused one held.
        let taken = format!(
            "SELECT count(*) FROM signals_outbox_shard WHERE holder LIKE '%:{}:%' AND shard = ANY($1)",
            run.pid(other)
        );
        let shards: Vec<i64> = held.iter().map(|&(shard, _)| shard).collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let count: i64 = sqlx::query_scalar(&taken)
                .bind(&shards)
                .fetch_one(&run.pool)
                .await
                .unwrap();
            if count > 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no shard of the paused worker was taken over"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        run.signal(paused, "-CONT");
        run.wait_drained(Duration::from_secs(600)).await;
        // The paused worker alone, then the other: its totals say what was refused.
        let mut workers = std::mem::take(&mut run.workers);
        let other_child = workers.pop().unwrap();
        run.workers = workers;
        let refused = run.stop();
        run.workers.push(other_child);
        let other_totals = run.stop();
        let duplicates = run.verify(100, 300).await;
        assert!(
            refused.fenced + refused.failed_rounds > 0,
            "the paused worker's late work was not refused: {refused:?}"
        );
        eprintln!(
            "SIGSTOP past a {lease:?} lease: the paused worker held {} shards; after SIGCONT its \
             late work was refused ({} deliveries fenced by the token, {} rounds cut off by the \
             server); 30,000 messages: nothing lost, order held, 0 transactional duplicates, \
             {duplicates} outside; the other worker: {other_totals:?}",
            held.len(),
            refused.fenced,
            refused.failed_rounds,
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn workers_reconnect_after_a_server_restart_and_finish() {
        let Some(server) = server() else { return };
        let mut run = Run::new(&server, "pg_faults_restart", Duration::from_secs(5)).await;
        run.enqueue(1_000, 0..30).await;
        for _ in 0..4 {
            run.spawn();
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        while run.scalar("SELECT count(*) FROM delivered").await < 3_000 {
            assert!(Instant::now() < deadline, "the workers never started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if !server.started_here() {
            // DATABASE_URL's server is not ours to restart.
            eprintln!("skipped: the restart part: the server is DATABASE_URL's");
            return;
        }
        server
            .restart()
            .expect("pg_ctl restarts the test's own server");
        let restarted = Instant::now();
        run.pool = PgPool::connect(&run.url).await.unwrap();
        run.wait_drained(Duration::from_secs(600)).await;
        let totals = run.stop();
        let duplicates = run.verify(1_000, 30).await;
        assert!(
            totals.failed_rounds > 0,
            "no round saw the restart: {totals:?}"
        );
        eprintln!(
            "pg_ctl restart at 3,000 of 30,000 messages: drained {:.1?} after it; nothing lost, \
             order held, 0 transactional duplicates, {duplicates} outside; {totals:?}",
            restarted.elapsed()
        );
    }
}
