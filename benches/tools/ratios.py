#!/usr/bin/env python3
"""Prints every criterion benchmark's median (ns) from target/criterion, for BENCHMARKS.md.

    python3 benches/tools/ratios.py [target/criterion]
"""
import json
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
for estimates in sorted(root.glob("**/new/estimates.json")):
    name = str(estimates.parent.parent.relative_to(root))
    median = json.loads(estimates.read_text())["median"]["point_estimate"]
    print(f"{name:55} {median:14.1f}")
