#![allow(missing_docs, non_upper_case_globals)] // `signal!` statics are named like functions
//! Durable signals on PostgreSQL against a hand-written floor and the peers a team would
//! pick, in one run, on one throwaway server (`throwaway-postgres`: the same settings for
//! everyone, `fsync = off`). Report ratios between figures of the same run.
//!
//! - **drain**: `MESSAGES` messages over `SHARDS` shards, filled and vacuumed untimed, then
//!   drained by 1 and by 4 worker processes (this binary again, or a peer's), timed from the
//!   moment every worker is connected and told to go to the moment the last one is done:
//!   - the floor: per batch of 100 rows, one transaction of `DELETE … WHERE id IN (SELECT id
//!     … ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED) RETURNING id, payload` that decodes
//!     each row's JSON and calls a function, then commits (at least once, as the outbox is);
//!     the same without the transaction (each batch committed before its rows are handled:
//!     at most once) for information;
//!   - `PgWorker::drain_once` with one receiver doing the floor's per-row work;
//!   - `PgQueuer` (Python, asyncpg), in drain mode, batches of 100
//!     (`benches/peers/pgqueuer`, in a virtual environment made under `target/peers`);
//!   - apalis with `apalis-postgres`, batches of 100 (`benches/peers/apalis`, a workspace of
//!     its own, built in release under `target/peers`); it keeps finished jobs, so this
//!     process watches its table every 10 ms for the end.
//! - **enqueue**: 1,000 messages per transaction, commit included, by `enqueue(..).write()`
//!   and by a plain `INSERT` of the same row into a table of the same shape, alternately.
//! - **latency**: from the commit's return in this process to the receiver's start in a
//!   worker process (`PgWorker::run`, woken by `NOTIFY`), by the wall clock both share: at
//!   idle (one message every 10 ms), and under load at half the peak drain throughput.
//!
//! `cargo bench -p signals-outbox --bench postgres`; the environment variables
//! `SIGNALS_PG_BENCH_MESSAGES`, `SIGNALS_PG_BENCH_SHARDS` and `SIGNALS_PG_BENCH_ROUNDS`
//! change the sizes.
#![allow(clippy::cast_precision_loss)] // rates and ratios of counts far below 2^52

use std::fmt::Write as _;
use std::hint::black_box;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use signals::outbox::Enqueue;
use signals::outbox::postgres::{PgOutbox, PgWorker};
use signals::{receiver, signal};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection as _, PgConnection, PgPool};
use throwaway_postgres::Postgres;
use tokio::runtime::Runtime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Category {
    Job,
}

/// Every side's message: the same two numbers, as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub shard: i64,
    pub seq: i64,
}

signal! {
    /// The drained messages.
    pub static job: durable Signal<Job, sender = Category>;
}

signal! {
    /// The latency's messages.
    pub static ping: durable Signal<Job, sender = Category>;
}

/// The role of a worker process (this binary started again); unset in the bench itself.
const ROLE: &str = "SIGNALS_PG_BENCH_ROLE";
/// The worker process's database.
const URL: &str = "SIGNALS_PG_BENCH_URL";
/// The shard scope of every message.
const SCOPE: &str = "org";
/// Rows (floor, peers) or shards (`PgWorker`) per round, everywhere.
const BATCH: usize = 100;
/// Messages per transaction in `enqueue`.
const PER_COMMIT: i64 = 1_000;
/// Latency at idle: messages, one every `IDLE_GAP`.
const IDLE_SAMPLES: i64 = 400;
const IDLE_GAP: Duration = Duration::from_millis(10);
/// Latency under load: how long, and a transaction every `TICK`.
const LOAD_TIME: Duration = Duration::from_secs(5);
const TICK: Duration = Duration::from_millis(10);
/// Concurrent transactions per tick under load.
const SENDERS: i64 = 4;

/// Rows the floor's function saw, and deliveries the drain receiver saw, in this process.
static HANDLED: AtomicU64 = AtomicU64::new(0);
/// The latency receiver's starts: `(seq, ns since the epoch)`.
static STARTS: Mutex<Vec<(i64, i128)>> = Mutex::new(Vec::new());

/// The per-message work of every side: the floor calls it per row with the decoded
/// arguments, the drain receiver per delivery, the peers' handlers per job.
#[inline(never)]
fn handle(seq: i64) {
    black_box(seq);
    HANDLED.fetch_add(1, Ordering::Relaxed);
}

#[receiver(signal = job, sender = Category::Job)]
fn drained(seq: i64) {
    handle(seq);
}

#[receiver(signal = ping, sender = Category::Job)]
fn timed(seq: i64) {
    let now = wall_ns();
    STARTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push((seq, now));
}

/// Now, in ns since the epoch: the clock this process and the workers share.
fn wall_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i128::try_from(since.as_nanos()).unwrap_or(i128::MAX)
        })
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn main() {
    if let Ok(role) = std::env::var(ROLE) {
        let url = std::env::var(URL).expect("a worker process gets its database's URL");
        runtime().block_on(worker_process(&role, &url));
        return;
    }
    let Some(server) = Postgres::get() else {
        return; // `get` said why
    };
    let bench = Bench::new(server);
    bench.run();
}

// ---------------------------------------------------------------- worker processes

/// Says `ready`, then waits for the bench's `go`.
fn ready() {
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").and_then(|()| out.flush()).unwrap();
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).unwrap();
}

/// The statement of the floor's rounds.
const FLOOR_DELETE: &str = "DELETE FROM floor_message WHERE id IN (
         SELECT id FROM floor_message ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED)
     RETURNING id, payload";

async fn worker_process(role: &str, url: &str) {
    match role {
        "floor" | "floor-autocommit" => {
            let mut conn = PgConnection::connect(url).await.unwrap();
            let transactional = role == "floor";
            ready();
            loop {
                let rows: Vec<(i64, String)> = if transactional {
                    let mut tx = conn.begin().await.unwrap();
                    let rows: Vec<(i64, String)> = sqlx::query_as(FLOOR_DELETE)
                        .fetch_all(&mut *tx)
                        .await
                        .unwrap();
                    for (_, payload) in &rows {
                        let args: Job = serde_json::from_str(payload).unwrap();
                        handle(args.seq);
                    }
                    tx.commit().await.unwrap();
                    rows
                } else {
                    let rows: Vec<(i64, String)> = sqlx::query_as(FLOOR_DELETE)
                        .fetch_all(&mut conn)
                        .await
                        .unwrap();
                    for (_, payload) in &rows {
                        let args: Job = serde_json::from_str(payload).unwrap();
                        handle(args.seq);
                    }
                    rows
                };
                if rows.is_empty() {
                    break;
                }
            }
        }
        "signals" => {
            let outbox = PgOutbox::open(PgPool::connect(url).await.unwrap())
                .await
                .unwrap();
            let mut worker = PgWorker::new(&outbox).signal(&job).batch(BATCH);
            ready();
            // Until a drain finds nothing: when the others hold every shard left, they finish.
            while worker.drain_once().await.unwrap().delivered > 0 {}
        }
        "listen" => {
            let outbox = PgOutbox::open(PgPool::connect(url).await.unwrap())
                .await
                .unwrap();
            let mut worker = PgWorker::new(&outbox).signal(&ping).batch(BATCH);
            ready();
            let stop = async {
                tokio::task::spawn_blocking(|| std::io::stdin().read_line(&mut String::new()))
                    .await
                    .ok();
            };
            worker.run(stop).await.unwrap();
            let starts = std::mem::take(&mut *STARTS.lock().unwrap());
            HANDLED.store(u64::try_from(starts.len()).unwrap(), Ordering::Relaxed);
            let mut out = std::io::stdout().lock();
            for (seq, ns) in starts {
                writeln!(out, "start {seq} {ns}").unwrap();
            }
        }
        other => panic!("unknown worker role {other}"),
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "done {}", HANDLED.load(Ordering::Relaxed))
        .and_then(|()| out.flush())
        .unwrap();
}

/// A worker process, talked to by lines: `ready`, `go`, then `done COUNT` (with `start SEQ NS`
/// lines before it, from a latency worker told to stop by a second line).
struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Worker {
    fn spawn(command: &mut Command) -> Self {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {command:?}: {error}"));
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Self {
            child,
            stdin,
            stdout,
        }
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        let read = self.stdout.read_line(&mut line).unwrap();
        assert!(
            read > 0,
            "a worker process ended early: {:?}",
            self.child.wait()
        );
        line.trim_end().to_owned()
    }

    fn ready(&mut self) {
        let line = self.line();
        assert_eq!(line, "ready", "a worker process said {line:?}");
    }

    fn tell(&mut self, word: &str) {
        writeln!(self.stdin, "{word}")
            .and_then(|()| self.stdin.flush())
            .unwrap();
    }

    /// Waits for `done COUNT` and the exit; returns COUNT, with the `start` lines before it.
    fn finish(mut self) -> (u64, Vec<(i64, i128)>) {
        let mut starts = Vec::new();
        loop {
            let line = self.line();
            let mut words = line.split(' ');
            match (words.next(), words.next(), words.next()) {
                (Some("start"), Some(seq), Some(ns)) => {
                    starts.push((seq.parse().unwrap(), ns.parse().unwrap()));
                }
                (Some("done"), Some(count), None) => {
                    let status = self.child.wait().unwrap();
                    assert!(status.success(), "a worker process failed: {status}");
                    return (count.parse().unwrap(), starts);
                }
                _ => panic!("a worker process said {line:?}"),
            }
        }
    }
}

// ---------------------------------------------------------------- the bench

/// A side of the drain comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Floor,
    FloorAutocommit,
    Signals,
    PgQueuer,
    Apalis,
}

impl Side {
    const ALL: [Side; 5] = [
        Side::Floor,
        Side::FloorAutocommit,
        Side::Signals,
        Side::PgQueuer,
        Side::Apalis,
    ];

    fn label(self) -> &'static str {
        match self {
            Side::Floor => "floor (DELETE … SKIP LOCKED RETURNING, in a transaction)",
            Side::FloorAutocommit => "floor without the transaction (at most once)",
            Side::Signals => "signals PgWorker::drain_once",
            Side::PgQueuer => "PgQueuer",
            Side::Apalis => "apalis (apalis-postgres)",
        }
    }

    fn database(self) -> &'static str {
        match self {
            Side::Floor => "floor",
            Side::FloorAutocommit => "floor_autocommit",
            Side::Signals => "signals",
            Side::PgQueuer => "pgqueuer",
            Side::Apalis => "apalis",
        }
    }
}

/// Why a peer is not measured.
#[derive(Debug, Clone)]
struct Skipped(String);

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

struct Bench {
    server: Postgres,
    rt: Runtime,
    messages: i64,
    shards: i64,
    rounds: usize,
    peers_dir: PathBuf,
    /// The virtual environment's Python, with `PgQueuer`.
    python: Result<PathBuf, Skipped>,
    /// apalis's binary.
    apalis: Result<PathBuf, Skipped>,
}

fn env_number(name: &str, default: i64) -> i64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// The bench's sources of the peers.
fn peers_source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers")
}

/// Runs `command`; on failure, its last line of output as the reason.
fn run(command: &mut Command) -> Result<(), Skipped> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|error| Skipped(format!("cannot run {command:?}: {error}")))?;
    if output.status.success() {
        return Ok(());
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let last = text.lines().rev().find(|line| !line.trim().is_empty());
    Err(Skipped(format!(
        "{:?} failed ({}): {}",
        command.get_program(),
        output.status,
        last.unwrap_or("no output")
    )))
}

/// A virtual environment with `PgQueuer` and asyncpg, made on first use.
fn prepare_pgqueuer(peers_dir: &Path) -> Result<PathBuf, Skipped> {
    let venv = peers_dir.join("pgqueuer-venv");
    let python = venv.join("bin/python");
    let importable =
        |python: &Path| run(Command::new(python).args(["-c", "import pgqueuer, asyncpg"])).is_ok();
    if python.is_file() && importable(&python) {
        return Ok(python);
    }
    eprintln!(
        "PgQueuer: making a virtual environment in {}",
        venv.display()
    );
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    run(Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "-r"])
        .arg(peers_source().join("pgqueuer/requirements.txt")))?;
    if importable(&python) {
        Ok(python)
    } else {
        Err(Skipped("pgqueuer does not import after pip install".into()))
    }
}

/// apalis's peer binary, built in release (the first build takes minutes).
fn prepare_apalis(peers_dir: &Path) -> Result<PathBuf, Skipped> {
    let target = peers_dir.join("apalis");
    eprintln!("apalis: building the peer (cargo build --release; minutes the first time)");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run(Command::new(cargo)
        .args([
            "build",
            "--release",
            "--locked",
            "--quiet",
            "--manifest-path",
        ])
        .arg(peers_source().join("apalis/Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target))?;
    Ok(target.join("release/apalis-peer"))
}

/// Median of `values` (sorted here).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The `q` quantile of sorted `values`, by rank (`ceil(q n)`th).
fn quantile(sorted: &[i128], q: f64) -> i128 {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // a rank in 1..=len
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(ns: i128) -> String {
    format!("{:.2} ms", ns as f64 / 1e6)
}

/// One row of the final table.
struct Row {
    what: String,
    figure: String,
    baseline: String,
    ratio: String,
    target: &'static str,
    verdict: String,
}

/// The verdict of `value` against `bound`: `at_least` or at most.
fn verdict(value: f64, bound: f64, at_least: bool) -> String {
    let met = if at_least {
        value >= bound
    } else {
        value <= bound
    };
    if met { "met" } else { "missed" }.to_owned()
}

/// Drain latencies: commit-to-start times, sorted, and the rate sent.
struct Latency {
    sorted: Vec<i128>,
    rate: f64,
}

impl Bench {
    fn new(server: Postgres) -> Self {
        let exe = std::env::current_exe().unwrap();
        // target/<profile>/deps/<bench>: the peers go in target/peers.
        let target = exe
            .ancestors()
            .nth(3)
            .map_or_else(|| PathBuf::from("target"), Path::to_path_buf);
        let peers_dir = target.join("peers");
        std::fs::create_dir_all(&peers_dir).unwrap();
        let python = prepare_pgqueuer(&peers_dir);
        let apalis = prepare_apalis(&peers_dir);
        for (name, ready) in [("PgQueuer", python.as_ref()), ("apalis", apalis.as_ref())] {
            if let Err(why) = ready {
                println!("{name}: skipped ({why})");
            }
        }
        Self {
            server,
            rt: runtime(),
            messages: env_number("SIGNALS_PG_BENCH_MESSAGES", 20_000),
            shards: env_number("SIGNALS_PG_BENCH_SHARDS", 1_000),
            rounds: usize::try_from(env_number("SIGNALS_PG_BENCH_ROUNDS", 3)).unwrap_or(1),
            peers_dir,
            python,
            apalis,
        }
    }

    fn available(&self, side: Side) -> bool {
        match side {
            Side::PgQueuer => self.python.is_ok(),
            Side::Apalis => self.apalis.is_ok(),
            _ => true,
        }
    }

    fn pool(&self, url: &str) -> PgPool {
        self.rt
            .block_on(PgPoolOptions::new().max_connections(2).connect(url))
            .unwrap()
    }

    fn run(&self) {
        println!(
            "PostgreSQL drain, enqueue and latency: {} messages over {} shards, {} rounds, \
             batches of {BATCH}; peers built in {}",
            self.messages,
            self.shards,
            self.rounds,
            self.peers_dir.display()
        );
        let mut rows = Vec::new();
        let peak = self.drains(&mut rows);
        self.enqueue(&mut rows);
        self.latencies(peak, &mut rows);
        print_table(&rows);
    }

    // ------------------------------------------------------------ drain

    /// Fills `url`'s database with `side`'s messages.
    fn fill(&self, side: Side, url: &str) {
        let n = self.messages.to_string();
        let shards = self.shards.to_string();
        match side {
            Side::Floor | Side::FloorAutocommit => {
                let pool = self.pool(url);
                let (shard, payload): (Vec<i64>, Vec<String>) = (0..self.messages)
                    .map(|seq| {
                        let args = self.args(seq);
                        (args.shard, serde_json::to_string(&args).unwrap())
                    })
                    .unzip();
                self.rt.block_on(async {
                    sqlx::raw_sql(
                        "CREATE TABLE floor_message (
                             id BIGSERIAL PRIMARY KEY, shard BIGINT NOT NULL, payload TEXT NOT NULL)",
                    )
                    .execute(&pool)
                    .await
                    .unwrap();
                    sqlx::query(
                        "INSERT INTO floor_message (shard, payload)
                         SELECT * FROM unnest($1::bigint[], $2::text[])",
                    )
                    .bind(&shard)
                    .bind(&payload)
                    .execute(&pool)
                    .await
                    .unwrap();
                });
            }
            Side::Signals => {
                let pool = self.pool(url);
                self.rt.block_on(async {
                    let outbox = PgOutbox::open(pool).await.unwrap();
                    let mut tx = outbox.pool().begin().await.unwrap();
                    for seq in 0..self.messages {
                        let args = self.args(seq);
                        job.enqueue(&mut tx, &Category::Job, &args)
                            .shard(SCOPE, args.shard)
                            .write()
                            .await
                            .unwrap();
                    }
                    tx.commit().await.unwrap();
                });
            }
            Side::PgQueuer => {
                let python = self.python.as_ref().unwrap();
                run(Command::new(python)
                    .arg(peers_source().join("pgqueuer/peer.py"))
                    .args([url, "enqueue", &n, &shards]))
                .unwrap_or_else(|why| panic!("PgQueuer's enqueue: {why}"));
            }
            Side::Apalis => {
                let apalis = self.apalis.as_ref().unwrap();
                run(Command::new(apalis).args([url, "enqueue", &n, &shards]))
                    .unwrap_or_else(|why| panic!("apalis's enqueue: {why}"));
            }
        }
    }

    fn args(&self, seq: i64) -> Job {
        Job {
            shard: seq % self.shards,
            seq,
        }
    }

    fn spawn(&self, side: Side, url: &str) -> Worker {
        let batch = BATCH.to_string();
        Worker::spawn(&mut match side {
            Side::Floor | Side::FloorAutocommit | Side::Signals => {
                let role = match side {
                    Side::Floor => "floor",
                    Side::FloorAutocommit => "floor-autocommit",
                    _ => "signals",
                };
                let mut command = Command::new(std::env::current_exe().unwrap());
                command.env(ROLE, role).env(URL, url);
                command
            }
            Side::PgQueuer => {
                let mut command = Command::new(self.python.as_ref().unwrap());
                command
                    .arg(peers_source().join("pgqueuer/peer.py"))
                    .args([url, "work", &batch]);
                command
            }
            Side::Apalis => {
                let mut command = Command::new(self.apalis.as_ref().unwrap());
                command.args([url, "work"]);
                command
            }
        })
    }

    /// What is left undone on `side`'s tables, and what was done (where the table tells).
    fn left(&self, side: Side, conn: &mut PgConnection) -> (i64, Option<i64>) {
        let sql = match side {
            Side::Floor | Side::FloorAutocommit => {
                "SELECT count(*), NULL::bigint FROM floor_message"
            }
            Side::Signals => "SELECT count(*), NULL::bigint FROM signals_outbox_message",
            Side::PgQueuer => "SELECT count(*), NULL::bigint FROM pgqueuer",
            Side::Apalis => {
                "SELECT count(*) FILTER (WHERE status <> 'Done'),
                        count(*) FILTER (WHERE status = 'Done')
                 FROM apalis.jobs"
            }
        };
        self.rt
            .block_on(sqlx::query_as(sql).fetch_one(conn))
            .unwrap()
    }

    /// One timed drain of a fresh database by `workers` processes of `side`.
    fn drain_once(&self, side: Side, workers: usize) -> Duration {
        let url = self
            .rt
            .block_on(self.server.database(&format!("drain_{}", side.database())));
        self.fill(side, &url);
        let mut conn = self.rt.block_on(PgConnection::connect(&url)).unwrap();
        self.rt.block_on(async {
            // One statement each: several in one query run in one transaction.
            for statement in ["VACUUM ANALYZE", "CHECKPOINT"] {
                sqlx::raw_sql(statement).execute(&mut conn).await.unwrap();
            }
        });
        let mut children: Vec<Worker> = (0..workers).map(|_| self.spawn(side, &url)).collect();
        for child in &mut children {
            child.ready();
        }
        let start = Instant::now();
        for child in &mut children {
            child.tell("go");
        }
        let (elapsed, handled) = if side == Side::Apalis {
            // apalis keeps its finished jobs and its workers never stop by themselves.
            loop {
                let (left, done) = self.left(side, &mut conn);
                if left == 0 {
                    let elapsed = start.elapsed();
                    for mut child in children {
                        child.child.kill().ok();
                        child.child.wait().ok();
                    }
                    break (elapsed, done.unwrap_or(0));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        } else {
            let handled: u64 = children.into_iter().map(|child| child.finish().0).sum();
            (start.elapsed(), i64::try_from(handled).unwrap())
        };
        let (left, _) = self.left(side, &mut conn);
        assert_eq!(
            (left, handled),
            (0, self.messages),
            "{side:?}: every message handled once, none left"
        );
        elapsed
    }

    /// The drain throughputs; returns the peak of ours and the workers it took.
    fn drains(&self, rows: &mut Vec<Row>) -> (f64, usize) {
        let workers = [1, 4];
        let sides: Vec<Side> = Side::ALL
            .into_iter()
            .filter(|&side| self.available(side))
            .collect();
        // rates[worker index][side index]: one per round.
        let mut rates = vec![vec![Vec::new(); sides.len()]; workers.len()];
        for round in 0..self.rounds {
            for (w, &count) in workers.iter().enumerate() {
                for (s, &side) in sides.iter().enumerate() {
                    let elapsed = self.drain_once(side, count);
                    let rate = self.messages as f64 / elapsed.as_secs_f64();
                    println!(
                        "round {}: drain, {count} worker(s), {}: {:.0} ms, {rate:.0} messages/s",
                        round + 1,
                        side.label(),
                        elapsed.as_secs_f64() * 1e3
                    );
                    rates[w][s].push(rate);
                }
            }
        }
        let mut peak = (0.0, 1);
        for (w, &count) in workers.iter().enumerate() {
            let runs = |side: Side| {
                sides
                    .iter()
                    .position(|&s| s == side)
                    .map(|s| rates[w][s].clone())
            };
            let ours = drain_rows(count, runs, rows);
            if ours > peak.0 {
                peak = (ours, count);
            }
        }
        peak
    }

    // ------------------------------------------------------------ enqueue

    fn enqueue(&self, rows: &mut Vec<Row>) {
        let url = self.rt.block_on(self.server.database("enqueue"));
        let pool = self.pool(&url);
        let (ours, plain) = self.rt.block_on(async {
            let outbox = PgOutbox::open(pool.clone()).await.unwrap();
            sqlx::raw_sql("CREATE TABLE plain_message (LIKE signals_outbox_message INCLUDING ALL)")
                .execute(&pool)
                .await
                .unwrap();
            self.same_row(&outbox).await;
            let mut conn = pool.acquire().await.unwrap();
            let mut ours = Vec::new();
            let mut plain = Vec::new();
            let mut seq = 0;
            // A first round of each untimed: statements prepared, every shard's row there.
            for round in 0..=(10 * self.rounds) {
                for signals in [true, false] {
                    let start = Instant::now();
                    let mut tx = conn.begin().await.unwrap();
                    for _ in 0..PER_COMMIT {
                        let args = self.args(seq);
                        seq += 1;
                        if signals {
                            black_box(write_message(&mut tx, &args).await);
                        } else {
                            plain_insert(&mut tx, &args).await;
                        }
                    }
                    tx.commit().await.unwrap();
                    let each = start.elapsed().as_secs_f64() / PER_COMMIT as f64;
                    if round > 0 {
                        if signals { &mut ours } else { &mut plain }.push(each);
                    }
                    sqlx::raw_sql("TRUNCATE signals_outbox_message, plain_message")
                        .execute(&mut *conn)
                        .await
                        .unwrap();
                }
            }
            (ours, plain)
        });
        let ratios: Vec<f64> = ours.iter().zip(&plain).map(|(a, b)| a / b).collect();
        let (mut ours, mut plain, mut ratios) = (ours, plain, ratios);
        let (ours, plain, ratio) = (median(&mut ours), median(&mut plain), median(&mut ratios));
        rows.push(Row {
            what: format!(
                "enqueue, {PER_COMMIT} per transaction, commit included: signals / plain INSERT"
            ),
            figure: format!("{:.1} µs", ours * 1e6),
            baseline: format!("{:.1} µs", plain * 1e6),
            ratio: format!(
                "{ratio:.2}× (median of {} pairs; {:.2}–{:.2})",
                ratios.len(),
                ratios[0],
                ratios[ratios.len() - 1]
            ),
            target: "≤ 1.1×",
            verdict: verdict(ratio, 1.1, false),
        });
    }

    /// Checks that the plain insert writes the row `enqueue` writes (but its id and time).
    async fn same_row(&self, outbox: &PgOutbox) {
        let args = self.args(42);
        let mut tx = outbox.pool().begin().await.unwrap();
        write_message(&mut tx, &args).await;
        plain_insert(&mut tx, &args).await;
        let select = "SELECT signal, destination, scope, shard, category, object, payload, \
                      attempts, last_error IS NULL, created_at > 0 FROM ";
        let mut written = Vec::new();
        for table in ["signals_outbox_message", "plain_message"] {
            type Columns = (
                String,
                String,
                String,
                i64,
                String,
                Option<i64>,
                String,
                i32,
                bool,
                bool,
            );
            let row: Columns = sqlx::query_as(&format!("{select}{table}"))
                .fetch_one(&mut *tx)
                .await
                .unwrap();
            written.push(format!("{row:?}"));
        }
        assert_eq!(
            written[0], written[1],
            "enqueue and the plain insert differ"
        );
        tx.rollback().await.unwrap();
    }

    // ------------------------------------------------------------ latency

    /// Commit-to-start latencies through `workers` listening workers, sending at `rate`
    /// messages/s (in a transaction every `TICK`), or one message every `IDLE_GAP`.
    fn latency(&self, workers: usize, rate: Option<f64>) -> Latency {
        let url = self.rt.block_on(self.server.database("latency"));
        let pool = self
            .rt
            .block_on(
                PgPoolOptions::new()
                    .max_connections(u32::try_from(SENDERS).unwrap())
                    .connect(&url),
            )
            .unwrap();
        let outbox = self.rt.block_on(PgOutbox::open(pool)).unwrap();
        let mut children: Vec<Worker> = (0..workers)
            .map(|_| {
                Worker::spawn(
                    Command::new(std::env::current_exe().unwrap())
                        .env(ROLE, "listen")
                        .env(URL, &url),
                )
            })
            .collect();
        for child in &mut children {
            child.ready();
        }
        for child in &mut children {
            child.tell("go");
        }
        let (commits, sent, took) = self.rt.block_on(async {
            // The workers listen, and have found nothing to do.
            tokio::time::sleep(Duration::from_secs(1)).await;
            // (first seq, messages, commit time) of each transaction.
            let mut sends: Vec<(i64, i64, i128)> = Vec::new();
            let mut seq = 0;
            let start = Instant::now();
            let per_tick = rate.map(|rate| {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // a small count
                let n = (rate * TICK.as_secs_f64()).round().max(1.0) as i64;
                n
            });
            let mut next = tokio::time::Instant::now();
            loop {
                if per_tick.is_some() && start.elapsed() >= LOAD_TIME
                    || per_tick.is_none() && seq >= IDLE_SAMPLES
                {
                    break;
                }
                // Under load, a tick's messages in `SENDERS` transactions at once, as an
                // application's many connections would send them.
                let batch = per_tick.unwrap_or(1);
                let senders = if per_tick.is_some() { SENDERS } else { 1 };
                sends.extend(send(outbox.pool(), self.shards, seq, batch, senders).await);
                seq += batch;
                next += if per_tick.is_some() { TICK } else { IDLE_GAP };
                tokio::time::sleep_until(next).await;
            }
            let took = start.elapsed();
            // Until the last ones were delivered (bounded: a message left is a failure).
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let waiting: i64 =
                    sqlx::query_scalar("SELECT count(*) FROM signals_outbox_message")
                        .fetch_one(outbox.pool())
                        .await
                        .unwrap();
                if waiting == 0 {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{waiting} messages never delivered"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let mut commits = vec![0; usize::try_from(seq).unwrap()];
            for (first, count, ns) in sends {
                for seq in first..first + count {
                    commits[usize::try_from(seq).unwrap()] = ns;
                }
            }
            (commits, seq, took)
        });
        let mut starts = Vec::new();
        for child in &mut children {
            child.tell("stop");
        }
        for child in children {
            starts.extend(child.finish().1);
        }
        assert_eq!(
            i64::try_from(starts.len()).unwrap(),
            sent,
            "every message's receiver started once"
        );
        let mut sorted: Vec<i128> = starts
            .into_iter()
            .map(|(seq, ns)| ns - commits[usize::try_from(seq).unwrap()])
            .collect();
        sorted.sort_unstable();
        Latency {
            sorted,
            rate: sent as f64 / took.as_secs_f64(),
        }
    }

    fn latencies(&self, (peak, workers): (f64, usize), rows: &mut Vec<Row>) {
        let idle = self.latency(1, None);
        let load = self.latency(workers, Some(peak / 2.0));
        for (what, latency, target) in [
            (
                format!(
                    "latency commit → receiver start, idle (1 worker, one message every {} ms)",
                    IDLE_GAP.as_millis()
                ),
                &idle,
                "p99 ≤ 10 ms",
            ),
            (
                format!(
                    "latency commit → receiver start, {:.0} messages/s (half the peak, {workers} worker{})",
                    load.rate,
                    if workers == 1 { "" } else { "s" }
                ),
                &load,
                "(information)",
            ),
        ] {
            let p50 = quantile(&latency.sorted, 0.5);
            let p99 = quantile(&latency.sorted, 0.99);
            rows.push(Row {
                what,
                figure: format!("median {}, p99 {}", ms(p50), ms(p99)),
                baseline: format!(
                    "{} messages; max {}",
                    latency.sorted.len(),
                    ms(latency.sorted[latency.sorted.len() - 1])
                ),
                ratio: "-".into(),
                target,
                verdict: if target == "(information)" {
                    "(information)".into()
                } else {
                    verdict(p99 as f64, 10e6, false)
                },
            });
        }
    }
}

/// The table's rows of the drains by `count` worker processes, from each side's rates per
/// round (`None`: not measured); returns our median rate.
fn drain_rows(count: usize, runs: impl Fn(Side) -> Option<Vec<f64>>, rows: &mut Vec<Row>) -> f64 {
    let floor = median(&mut runs(Side::Floor).unwrap());
    let ours = median(&mut runs(Side::Signals).unwrap());
    let per_round = |side: Side| {
        let ours = runs(Side::Signals).unwrap();
        let theirs = runs(side).unwrap();
        let ratios: Vec<String> = ours
            .iter()
            .zip(&theirs)
            .map(|(a, b)| format!("{:.2}", a / b))
            .collect();
        ratios.join(", ")
    };
    let plural = if count == 1 { "" } else { "es" };
    let floor_target = if count == 4 {
        "≥ 0.7×"
    } else {
        "(information)"
    };
    rows.push(Row {
        what: format!("drain, {count} worker process{plural}: signals / floor"),
        figure: format!("{ours:.0}/s"),
        baseline: format!("floor {floor:.0}/s"),
        ratio: format!("{:.2}× (rounds: {})", ours / floor, per_round(Side::Floor)),
        target: floor_target,
        verdict: if count == 4 {
            verdict(ours / floor, 0.7, true)
        } else {
            "(information)".into()
        },
    });
    let autocommit = median(&mut runs(Side::FloorAutocommit).unwrap());
    rows.push(Row {
        what: format!("drain, {count} worker process{plural}: floor at most once / floor"),
        figure: format!("{autocommit:.0}/s"),
        baseline: format!("floor {floor:.0}/s"),
        ratio: format!("{:.2}×", autocommit / floor),
        target: "(information)",
        verdict: "(information)".into(),
    });
    for (side, target, bound) in [
        (Side::PgQueuer, "≥ 2×", Some(2.0)),
        (Side::Apalis, "(information)", None),
    ] {
        let Some(mut theirs) = runs(side) else {
            rows.push(Row {
                what: format!(
                    "drain, {count} worker process{plural}: signals / {}",
                    side.label()
                ),
                figure: format!("{ours:.0}/s"),
                baseline: "skipped".into(),
                ratio: "-".into(),
                target,
                verdict: "not measured".into(),
            });
            continue;
        };
        let theirs_median = median(&mut theirs);
        rows.push(Row {
            what: format!(
                "drain, {count} worker process{plural}: signals / {}",
                side.label()
            ),
            figure: format!("{ours:.0}/s"),
            baseline: format!(
                "{theirs_median:.0}/s ({:.2}× the floor)",
                theirs_median / floor
            ),
            ratio: format!("{:.2}× (rounds: {})", ours / theirs_median, per_round(side)),
            target,
            verdict: bound.map_or_else(
                || "(information)".into(),
                |bound| verdict(ours / theirs_median, bound, true),
            ),
        });
    }
    ours
}

/// Enqueues `ping` messages `first..first + count` in `senders` concurrent transactions;
/// returns each one's first message, message count and commit time.
async fn send(
    pool: &PgPool,
    shards: i64,
    first: i64,
    count: i64,
    senders: i64,
) -> Vec<(i64, i64, i128)> {
    let mut transactions = tokio::task::JoinSet::new();
    let mut next = first;
    for sender in 0..senders {
        let count = count / senders + i64::from(sender < count % senders);
        if count == 0 {
            continue;
        }
        let (pool, first) = (pool.clone(), next);
        next += count;
        transactions.spawn(async move {
            let mut tx = pool.begin().await.unwrap();
            for seq in first..first + count {
                let args = Job {
                    shard: seq % shards,
                    seq,
                };
                ping.enqueue(&mut tx, &Category::Job, &args)
                    .shard(SCOPE, args.shard)
                    .write()
                    .await
                    .unwrap();
            }
            tx.commit().await.unwrap();
            (first, count, wall_ns())
        });
    }
    transactions.join_all().await
}

/// One message, enqueued as the application writes it.
async fn write_message(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    args: &Job,
) -> signals::outbox::Enqueued {
    job.enqueue(tx, &Category::Job, args)
        .shard(SCOPE, args.shard)
        .write()
        .await
        .unwrap()
}

/// The plain side of `enqueue`: the same row, by one `INSERT`, the arguments serialized here.
async fn plain_insert(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>, args: &Job) {
    sqlx::query(
        "INSERT INTO plain_message
             (signal, destination, scope, shard, category, object, payload, created_at)
         VALUES ($1, '', $2, $3, $4, NULL, $5,
                 (extract(epoch FROM clock_timestamp()) * 1000)::bigint)",
    )
    .bind("job")
    .bind(SCOPE)
    .bind(args.shard)
    .bind("\"Job\"")
    .bind(serde_json::to_string(args).unwrap())
    .execute(&mut **tx)
    .await
    .unwrap();
}

fn print_table(rows: &[Row]) {
    let mut out = String::new();
    writeln!(
        out,
        "\n| Measurement | Figure | Baseline | Ratio | Target | Verdict |\n|---|---|---|---|---|---|"
    )
    .unwrap();
    for row in rows {
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            row.what, row.figure, row.baseline, row.ratio, row.target, row.verdict
        )
        .unwrap();
    }
    writeln!(
        out,
        "\nThe drain receiver and every peer's handler do the floor's per-message work: decode \
         the JSON arguments, call a no-op `#[inline(never)]` function."
    )
    .unwrap();
    print!("{out}");
}
