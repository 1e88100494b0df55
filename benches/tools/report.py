#!/usr/bin/env python3
"""Runs the dispatch benchmark several times and prints every target of BENCHMARKS.md as the
median, over the runs, of its ratio to the baseline measured in the same run.

    python3 benches/tools/report.py [--runs 3] [--django] [--saved]

Each run's medians are kept in target/report-runs/; --saved prints the tables from those
instead of running the benchmark again.

--django also times Django's Signal.send (benches/django/run.sh makes its virtual
environment) and divides by the median Rust figures. Startup and memory have their own
commands: `cargo bench --bench startup` and `cargo bench --bench memory`.
"""

import argparse
import json
import pathlib
import statistics
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
CRITERION = ROOT / "target" / "criterion"
BENCH = ["cargo", "bench", "--bench", "dispatch", "--", "--warm-up-time", "1",
         "--measurement-time", "2", "--noplot"]


def medians():
    figures = {}
    for estimates in CRITERION.glob("**/new/estimates.json"):
        name = str(estimates.parent.parent.relative_to(CRITERION))
        figures[name] = json.loads(estimates.read_text())["median"]["point_estimate"]
    return figures


def scaling(f, kind):
    """Time per send with one thread over time per send with two: 1.0 scales perfectly."""
    return f[f"threads/{kind}/1"] / f[f"threads/{kind}/2"]


# (target, how it is computed from one run's medians in ns, the bound, "<=" or ">=")
TARGETS = [
    ("1. emit, N=1: ns over the Box<dyn Fn> floor",
     lambda f: f["send/emit/1"] - f["send/floor_box_dyn/1"], 6, "<="),
    ("1. emit / floor, N=10", lambda f: f["send/emit/10"] / f["send/floor_box_dyn/10"], 1.3, "<="),
    ("1. emit / floor, N=100",
     lambda f: f["send/emit/100"] / f["send/floor_box_dyn/100"], 1.3, "<="),
    ("1. static emit / Vec<fn>, N=1",
     lambda f: f["static/emit/1"] / f["static/floor_fn_pointer/1"], 1.1, "<="),
    ("1. static emit / Vec<fn>, N=10",
     lambda f: f["static/emit/10"] / f["static/floor_fn_pointer/10"], 1.1, "<="),
    ("2. no receivers (ns)", lambda f: f["filter/no_receivers"], 3, "<="),
    ("2. receivers of other senders only (ns)", lambda f: f["filter/other_senders_only"], 10, "<="),
    ("3. 10 of 1,000 over 100 senders / 10 unfiltered",
     lambda f: f["filter/10_of_1000_over_100_senders"] / f["filter/10_without_filter"], 1.25, "<="),
    ("4. two-thread scaling of emit / of the floor",
     lambda f: scaling(f, "emit") / scaling(f, "floor"), 0.9, ">="),
    ("5. connect 10,000 with uid, total (ms)",
     lambda f: f["connect/connect_with_uid/10000"] / 1e6, 2, "<="),
    ("5. connect: per-connect cost at 10,000 / at 1,000",
     lambda f: f["connect/connect_with_uid/10000"] / 10 / f["connect/connect_with_uid/1000"], 1.0, "~"),
    ("5. disconnect at 10,000 receivers (ns)", lambda f: f["connect/disconnect_one/10000"], 100, "<="),
    ("5. disconnect: at 10,000 / at 1,000",
     lambda f: f["connect/disconnect_one/10000"] / f["connect/disconnect_one/1000"], 1.0, "~"),
    ("6. send_robust / send, N=10", lambda f: f["send/send_robust/10"] / f["send/send/10"], 1.15, "<="),
    ("6. send_robust / send, N=100",
     lambda f: f["send/send_robust/100"] / f["send/send/100"], 1.15, "<="),
    ("7. weak / strong emit, N=10", lambda f: f["send/emit_weak/10"] / f["send/emit/10"], 1.15, "<="),
    ("7. weak / strong emit, N=100",
     lambda f: f["send/emit_weak/100"] / f["send/emit/100"], 1.15, "<="),
    ("obs. emit, error-only subscriber / no subscriber",
     lambda f: f["observe/emit_10_error_only_subscriber"] / f["observe/emit_10_no_subscriber"], 1.0, "~"),
    ("obs. emit, testing guard on another thread / none",
     lambda f: f["observe/emit_10_guard_on_another_thread"] / f["observe/emit_10_no_subscriber"], 1.0, "~"),
    ("obs. emit, debug subscriber / no subscriber",
     lambda f: f["observe/emit_10_debug_subscriber"] / f["observe/emit_10_no_subscriber"], 1.0, "info"),
    ("11. emit / signals2, N=1", lambda f: f["send/emit/1"] / f["send/signals2/1"], 0.8, "<="),
    ("11. emit / signals2, N=10", lambda f: f["send/emit/10"] / f["send/signals2/10"], 0.55, "<="),
]


def verdict(value, bound, op):
    if op == "info":
        return "the cost when on"
    if op == "~":
        return "≈ 1" if value < 1.5 else "grows"
    met = value <= bound if op == "<=" else value >= bound
    return "met" if met else "missed"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--django", action="store_true")
    parser.add_argument("--saved", action="store_true")
    options = parser.parse_args()

    runs = []
    for run in range(options.runs):
        saved = ROOT / "target" / "report-runs" / f"run{run + 1}.json"
        if options.saved:
            runs.append(json.loads(saved.read_text()))
            continue
        print(f"run {run + 1} of {options.runs}: {' '.join(BENCH)}", file=sys.stderr)
        subprocess.run(BENCH, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        runs.append(medians())
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps(runs[-1], indent=1))

    print("| target | bound | median ratio | runs | verdict |")
    print("|---|---|---|---|---|")
    for name, compute, bound, op in TARGETS:
        values = [compute(f) for f in runs]
        value = statistics.median(values)
        each = ", ".join(f"{v:.2f}" for v in values)
        shown = {"~": "≈ 1", "info": "-"}.get(op, f"{op} {bound}")
        print(f"| {name} | {shown} | {value:.2f} | {each} | {verdict(value, bound, op)} |")

    rust = {name: statistics.median(f[name] for f in runs) for name in runs[0]}
    print()
    print("| benchmark | median ns |")
    print("|---|---|")
    for name in sorted(rust):
        print(f"| {name} | {rust[name]:.1f} |")

    if options.django:
        # Django's figures against the medians just measured.
        snapshot = ROOT / "target" / "criterion-median"
        for name, ns in rust.items():
            path = snapshot / name / "new"
            path.mkdir(parents=True, exist_ok=True)
            (path / "estimates.json").write_text(json.dumps({"median": {"point_estimate": ns}}))
        print()
        subprocess.run(["sh", "-c", "benches/django/run.sh target/criterion-median"], cwd=ROOT,
                       check=True)


if __name__ == "__main__":
    main()
