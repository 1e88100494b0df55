#![allow(missing_docs, non_upper_case_globals)] // signal! statics are lower-case, as users write them
//! Issue 16's acceptance figures: instructions counted by callgrind, which repeat from run to
//! run on a shared machine where times move by a third.
//!
//! `cargo bench --bench instructions` (add `-- --markdown` for BENCHMARKS.md's table, or
//! `-- --send-only` for the send-path targets alone, in well under a minute: no memory or
//! start-up figure, so no build of their benches).
//!
//! The binary has two modes:
//!
//! - `--op NAME --n COUNT` runs one operation (`emit/10`, `floor_box/10`, ...) COUNT times after
//!   its set-up and one untimed call (which builds the snapshot), and exits.
//! - Without `--op` (as `cargo bench` runs it), it is the driver: it runs its own executable
//!   under `valgrind --tool=callgrind` for 1,000 and for 11,000 operations, and takes
//!   (Ir(11,000) − Ir(1,000)) / 10,000 as the instructions of one operation, so that start-up,
//!   set-up and the untimed call cancel out. Every target's baseline is counted the same way in
//!   the same run.
//!
//! Two targets are not counted here but by the benches that already measure them, which the
//! driver builds with `cargo bench --no-run --features linkme` and runs: heap bytes per runtime
//! receiver (`benches/memory.rs`, a counting global allocator: callgrind does not count bytes)
//! and collecting and indexing 10,000 static receivers (`benches/startup.rs`, one fresh process
//! under callgrind per side, collecting only inside the measured function with
//! `--toggle-collect`, since a process starts only once).
//!
//! Without valgrind the driver says so in one line and exits successfully.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use common::{Args, connected, connected_weak, floor, pointers};
use signals::signal;

#[macro_use]
mod common;

signal! {
    /// One static receiver.
    static static_one: Signal<Args, sender = u32>;
    /// Ten static receivers.
    static static_ten: Signal<Args, sender = u32>;
}

static_receivers!(static_one; 0);
static_receivers!(static_ten; 0 1 2 3 4 5 6 7 8 9);

/// The operation counts of the two runs whose difference is the figure.
const FEW: u64 = 1_000;
const MANY: u64 = 11_000;

fn main() {
    let mut op = None;
    let mut count = None;
    let mut markdown = false;
    let mut send_only = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--op" => op = args.next(),
            "--n" => count = args.next().and_then(|n| n.parse::<u64>().ok()),
            "--markdown" => markdown = true,
            "--send-only" => send_only = true,
            "--bench" => {} // what `cargo bench` passes to every bench binary
            _ => {
                eprintln!("usage: instructions [--markdown] [--send-only] | --op NAME --n COUNT");
                std::process::exit(2);
            }
        }
    }
    match (op, count) {
        (Some(op), Some(count)) => run(&op, count),
        (None, None) => drive(markdown, send_only),
        _ => {
            eprintln!("--op NAME and --n COUNT go together");
            std::process::exit(2);
        }
    }
}

/// Runs `op` `count` times after its set-up.
fn run(op: &str, count: u64) {
    let (name, n) = op
        .split_once('/')
        .and_then(|(name, n)| Some((name, n.parse::<usize>().ok()?)))
        .unwrap_or_else(|| panic!("an operation is NAME/RECEIVERS, not {op}"));
    let args = Args { x: 7 };
    match name {
        "floor_box" => {
            let floor = floor(n);
            repeat(count, || {
                for receiver in &floor {
                    receiver(black_box(&args));
                }
            });
        }
        "floor_fn" => {
            let floor = pointers(n);
            repeat(count, || {
                for receiver in &floor {
                    receiver(black_box(&args));
                }
            });
        }
        "emit" => {
            let signal = connected("emit", n);
            repeat(count, || {
                signal.emit(black_box(&1), black_box(&args)).unwrap();
            });
        }
        "send" => {
            let signal = connected("send", n);
            repeat(count, || {
                black_box(signal.send(black_box(&1), black_box(&args)).unwrap());
            });
        }
        "send_robust" => {
            let signal = connected("send_robust", n);
            repeat(count, || {
                black_box(signal.send_robust(black_box(&1), black_box(&args)));
            });
        }
        "emit_weak" => {
            let target = Arc::new(3);
            let signal = connected_weak("emit_weak", n, &target);
            repeat(count, || {
                signal.emit(black_box(&1), black_box(&args)).unwrap();
            });
        }
        "static_emit" => {
            // Each static signal is of its own type.
            macro_rules! emits {
                ($signal:ident) => {{
                    assert_eq!($signal.receivers(&1).len(), n);
                    repeat(count, || {
                        $signal.emit(black_box(&1), black_box(&args)).unwrap()
                    });
                }};
            }
            match n {
                1 => emits!(static_one),
                10 => emits!(static_ten),
                _ => panic!("static-only signals have 1 or 10 receivers, not {n}"),
            }
        }
        _ => panic!("no operation {name}"),
    }
}

/// Runs `op` once, untimed in effect (both counts include it), then `count` times.
#[inline(never)]
fn repeat(count: u64, mut op: impl FnMut()) {
    op();
    for _ in 0..black_box(count) {
        op();
    }
}

/// How a figure is held to its target.
#[derive(Clone, Copy)]
enum Limit {
    /// At most this many times the baseline.
    Ratio(f64),
    /// At most this many instructions over the baseline.
    Over(f64),
    /// At most this many bytes, whatever the baseline.
    Bytes(f64),
}

/// One row of the table.
struct Target {
    what: &'static str,
    figure: &'static str,
    baseline: &'static str,
    baseline_name: &'static str,
    limit: Limit,
}

const fn target(
    what: &'static str,
    figure: &'static str,
    baseline_name: &'static str,
    baseline: &'static str,
    limit: Limit,
) -> Target {
    Target {
        what,
        figure,
        baseline,
        baseline_name,
        limit,
    }
}

/// Issue 16's targets. The figures named `memory/...` and `startup/...` come from the other
/// benches; every other one is an operation of this binary, in instructions per operation.
const TARGETS: &[Target] = &[
    target(
        "emit, 1 runtime receiver",
        "emit/1",
        "`Vec<Box<dyn Fn>>`",
        "floor_box/1",
        Limit::Over(50.0),
    ),
    target(
        "emit, 10 runtime receivers",
        "emit/10",
        "`Vec<Box<dyn Fn>>`",
        "floor_box/10",
        Limit::Ratio(1.6),
    ),
    target(
        "emit, 100 runtime receivers",
        "emit/100",
        "`Vec<Box<dyn Fn>>`",
        "floor_box/100",
        Limit::Ratio(1.3),
    ),
    target(
        "emit, static-only signal, 1 receiver",
        "static_emit/1",
        "`Vec<fn>`",
        "floor_fn/1",
        Limit::Over(30.0),
    ),
    target(
        "emit, static-only signal, 10 receivers",
        "static_emit/10",
        "`Vec<fn>`",
        "floor_fn/10",
        Limit::Ratio(1.3),
    ),
    target(
        "send, 10 runtime receivers",
        "send/10",
        "emit",
        "emit/10",
        Limit::Ratio(1.5),
    ),
    target(
        "send_robust, 10 runtime receivers",
        "send_robust/10",
        "send",
        "send/10",
        Limit::Ratio(1.1),
    ),
    target(
        "weak emit, 10 receivers",
        "emit_weak/10",
        "strong emit",
        "emit/10",
        Limit::Ratio(1.2),
    ),
    target(
        "weak emit, 100 receivers",
        "emit_weak/100",
        "strong emit",
        "emit/100",
        Limit::Ratio(1.2),
    ),
    target(
        "heap bytes per runtime receiver with dispatch_uid and sender",
        "memory/signals",
        "hand-written `HashMap`",
        "memory/hand",
        Limit::Bytes(128.0),
    ),
    target(
        "collect and index 10,000 static receivers (linkme), instructions",
        "startup/signals",
        "hand-written index",
        "startup/hand",
        Limit::Ratio(3.0),
    ),
];

/// Counts every target's figures (the send path's alone with `send_only`) and prints the table.
fn drive(markdown: bool, send_only: bool) {
    match Command::new("valgrind").arg("--version").output() {
        Ok(output) if output.status.success() => {
            eprintln!(
                "instructions: {} (callgrind), ({MANY} - {FEW}) operations per figure",
                String::from_utf8_lossy(&output.stdout).trim()
            );
        }
        _ => {
            println!(
                "instructions: valgrind is not installed (apt-get install valgrind); nothing measured"
            );
            return;
        }
    }
    let exe = std::env::current_exe().expect("the driver knows its own path");
    let out = scratch();
    let mut figures: HashMap<&str, f64> = HashMap::new();
    for target in TARGETS {
        for op in [target.figure, target.baseline] {
            let counted_here = !op.starts_with("memory/") && !op.starts_with("startup/");
            if counted_here && !figures.contains_key(op) {
                let per_op = per_operation(&out, &exe, op);
                eprintln!("  {op}: {per_op:.1} instructions");
                figures.insert(op, per_op);
            }
        }
    }
    if send_only {
        let _ = std::fs::remove_dir_all(&out);
        print!("{}", table(&figures, markdown));
        return;
    }
    let companions = companions();
    let memory = memory(&companions["memory"]);
    figures.insert("memory/hand", memory.0);
    figures.insert("memory/signals", memory.1);
    for (key, function) in [
        ("startup/hand", "hand_index"),
        ("startup/signals", "collect_and_index"),
    ] {
        let counted = callgrind(
            &out,
            &companions["startup"],
            &[],
            &[
                "--collect-atstart=no",
                &format!("--toggle-collect=*startup::{function}"),
            ],
            // What makes the bench a child that measures once, rather than its driver.
            &[("SIGNALS_STARTUP_CHILD", "1")],
        );
        #[allow(clippy::cast_precision_loss)]
        figures.insert(key, counted as f64);
        eprintln!("  {key}: {counted} instructions");
    }
    let _ = std::fs::remove_dir_all(&out);
    print!("{}", table(&figures, markdown));
}

/// The instructions of one `op`: (Ir(MANY) − Ir(FEW)) / (MANY − FEW).
fn per_operation(out: &Path, exe: &Path, op: &str) -> f64 {
    let [few, many] = [FEW, MANY]
        .map(|count| callgrind(out, exe, &["--op", op, "--n", &count.to_string()], &[], &[]));
    #[allow(clippy::cast_precision_loss)] // counts far below 2^52
    let per_op = (many - few) as f64 / (MANY - FEW) as f64;
    per_op
}

/// The table of every target, as text or as Markdown.
fn table(figures: &HashMap<&str, f64>, markdown: bool) -> String {
    let mut rows = vec![[
        "Target".to_owned(),
        "Figure".to_owned(),
        "Baseline".to_owned(),
        "Ratio / difference".to_owned(),
        "Limit".to_owned(),
        "Verdict".to_owned(),
    ]];
    for target in TARGETS {
        let (Some(&figure), Some(&baseline)) =
            (figures.get(target.figure), figures.get(target.baseline))
        else {
            continue; // not counted in this run (--send-only)
        };
        let ratio = figure / baseline;
        let (compared, limit, met) = match target.limit {
            Limit::Ratio(most) => (format!("{ratio:.2}×"), format!("≤ {most}×"), ratio <= most),
            Limit::Over(most) => (
                format!("+{}", count(figure - baseline)),
                format!("≤ baseline + {most}"),
                figure - baseline <= most,
            ),
            Limit::Bytes(most) => (
                format!("{ratio:.2}×"),
                format!("≤ {most} B"),
                figure <= most,
            ),
        };
        let unit = if matches!(target.limit, Limit::Bytes(_)) {
            " B"
        } else {
            ""
        };
        rows.push([
            target.what.to_owned(),
            format!("{}{unit}", count(figure)),
            format!("{}: {}{unit}", target.baseline_name, count(baseline)),
            compared,
            limit,
            (if met { "met" } else { "missed" }).to_owned(),
        ]);
    }
    let mut text = String::new();
    if markdown {
        for (i, row) in rows.iter().enumerate() {
            let _ = writeln!(text, "| {} |", row.join(" | "));
            if i == 0 {
                let _ = writeln!(text, "|{}", "---|".repeat(row.len()));
            }
        }
    } else {
        let widths: Vec<usize> = (0..rows[0].len())
            .map(|c| {
                rows.iter()
                    .map(|row| row[c].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in &rows {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell}{}", " ".repeat(width - cell.chars().count())))
                .collect();
            let _ = writeln!(text, "{}", cells.join("  ").trim_end());
        }
    }
    text
}

/// A figure with thousands separators, with one decimal below 1,000.
fn count(figure: f64) -> String {
    if figure.abs() < 1_000.0 {
        return format!("{figure:.1}");
    }
    let digits = format!("{:.0}", figure.abs());
    let mut grouped = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    if figure < 0.0 {
        grouped.insert(0, '-');
    }
    grouped
}

/// A fresh directory for callgrind's output files.
fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("signals-instructions-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("the temporary directory is writable");
    dir
}

/// The instructions callgrind counts in one run of `exe` with `args` and `env`, given
/// callgrind's `options`.
fn callgrind(out: &Path, exe: &Path, args: &[&str], options: &[&str], env: &[(&str, &str)]) -> u64 {
    let file = out.join("callgrind.out");
    let status = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", file.display()))
        .arg("--quiet")
        .args(options)
        .arg(exe)
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .status()
        .expect("valgrind runs");
    assert!(
        status.success(),
        "valgrind {} {args:?} failed: {status}",
        exe.display()
    );
    let text = std::fs::read_to_string(&file).expect("callgrind wrote its output");
    text.lines()
        .find_map(|line| {
            line.strip_prefix("totals:")
                .or_else(|| line.strip_prefix("summary:"))
        })
        .and_then(|figures| figures.split_whitespace().next()?.parse().ok())
        .expect("callgrind's output has a totals line")
}

/// Builds the `memory` and `startup` benches with linkme (the backend issue 16's start-up
/// target names) and gives their executables by name.
fn companions() -> HashMap<String, PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    eprintln!("instructions: building the memory and startup benches with --features linkme");
    let output = Command::new(cargo)
        .args([
            "bench", "--no-run", "--bench", "memory", "--bench", "startup",
        ])
        .args(["--features", "linkme", "--message-format", "json"])
        .arg("--manifest-path")
        .arg(manifest)
        .stderr(Stdio::inherit())
        .output()
        .expect("cargo runs");
    assert!(output.status.success(), "cargo bench --no-run failed");
    let mut executables = HashMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if let (Some(name), Some(executable)) = (
            message["target"]["name"].as_str(),
            message["executable"].as_str(),
        ) {
            executables.insert(name.to_owned(), PathBuf::from(executable));
        }
    }
    assert!(
        executables.contains_key("memory") && executables.contains_key("startup"),
        "cargo built no memory or startup bench: {executables:?}"
    );
    executables
}

/// The memory bench's heap bytes per receiver: the hand-written registry's, and signals' once
/// connected and sent to once (its snapshot included).
fn memory(exe: &Path) -> (f64, f64) {
    let output = Command::new(exe)
        .arg("--figures")
        .output()
        .expect("the memory bench runs");
    assert!(
        output.status.success(),
        "the memory bench failed: {output:?}"
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let figures: Vec<f64> = text
        .split_whitespace()
        .map(|figure| figure.parse().expect("the memory bench prints numbers"))
        .collect();
    let [hand, connected, snapshot] = figures[..] else {
        panic!("the memory bench printed {text:?}");
    };
    (hand, connected + snapshot)
}
