"""Benchmark: protect + audit of the 4-way table, this checkout against an earlier revision.

    .venv/bin/python benchmarks/disclosure_speed_compare.py --against 42b8aef [--runs 5]

The machine is shared, so absolute seconds drift with its load; this runs both versions in the
same session, alternating them (earlier, current, earlier, current, ...), each run in a fresh
process, and reports medians and the ratio current / earlier. The earlier revision is exported
with `git archive` into a temporary directory (the working tree is not touched). Both must
produce the same suppression pattern (the same cells hidden) and both must be proven safe;
the run fails otherwise. Table: school x grade x race x gender of the disclosure benchmark's
synthetic district (200,000 students, 18,816 cells), NCES rule, proof audit.
Results: benchmarks/results/disclosure-speed-compare.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

ONE_RUN = r"""
import hashlib, json, sys, time
import numpy as np
root = sys.argv[1]
sys.path[:0] = [root, root + "/benchmarks"]
from disclosure_benchmark import synthetic_counts
from workbench.disclosure import SmallGroupRule, protect_tables
import workbench.disclosure
assert workbench.disclosure.__file__.startswith(root), workbench.disclosure.__file__
dims = ["school", "grade", "race", "gender"]
frame = synthetic_counts().groupby(dims, as_index=False)["n"].sum()
started = time.perf_counter()
result = protect_tables(frame, dims, "n", SmallGroupRule(), intervals="proof")
total = time.perf_counter() - started
summary = result.summary()
print(json.dumps({
    "protect_and_audit_seconds": result.timings["secondary"] + result.timings["audit"],
    "protect_seconds": result.timings["secondary"],
    "audit_seconds": result.timings["audit"],
    "total_seconds": total,
    "lp_count": summary["lp_count"],
    "rounds": summary["rounds"],
    "suppressed_cells": summary["suppressed"],
    "students_hidden": summary["students_hidden_in_inner_cells"],
    "safe": summary["safe"],
    "pattern": hashlib.sha256(np.flatnonzero(result.suppressed).tobytes()).hexdigest()[:16],
}))
"""


def run_once(root: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", ONE_RUN, str(root)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
        timeout=300,
    )
    if done.returncode != 0:
        raise SystemExit(f"run in {root} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", required=True, help="git revision to compare with, e.g. 42b8aef")
    parser.add_argument("--runs", type=int, default=5, help="runs of each version (alternated)")
    args = parser.parse_args()
    if args.runs < 1:
        print("--runs: give at least 1", file=sys.stderr)
        raise SystemExit(2)
    revision = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", args.against], capture_output=True, text=True
    )
    if revision.returncode != 0:
        print(f"--against: unknown git revision {args.against!r}", file=sys.stderr)
        raise SystemExit(2)
    current = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    load = os.getloadavg()[0]
    runs: dict[str, list[dict]] = {"earlier": [], "current": []}
    with tempfile.TemporaryDirectory(prefix="disclosure-compare-") as tmp:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", args.against, "workbench", "benchmarks"],
            capture_output=True,
            check=True,
        )
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        for i in range(args.runs):
            for name, root in (("earlier", Path(tmp)), ("current", ROOT)):
                runs[name].append(run_once(root))
                print(f"{name} run {i + 1}: {runs[name][-1]}", file=sys.stderr)
    pattern = {(r["pattern"], r["students_hidden"], r["safe"]) for rs in runs.values() for r in rs}
    if len(pattern) != 1 or not next(iter(pattern))[2]:
        raise SystemExit(f"the versions disagree or a result is not safe: {sorted(pattern)}")

    def median(name: str, key: str) -> float:
        return round(statistics.median(r[key] for r in runs[name]), 3)

    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_average_at_start": round(load, 2),
        "earlier_revision": revision.stdout.strip(),
        "current_revision": current.stdout.strip(),
        "runs_each": args.runs,
        "medians": {
            name: {key: median(name, key) for key in runs[name][0] if key.endswith("seconds")}
            | {key: runs[name][0][key] for key in ("lp_count", "rounds", "suppressed_cells", "students_hidden")}
            for name in runs
        },
        "ratio_protect_and_audit": round(
            median("current", "protect_and_audit_seconds") / median("earlier", "protect_and_audit_seconds"), 2
        ),
        "ratio_audit": round(median("current", "audit_seconds") / median("earlier", "audit_seconds"), 2),
        "runs": runs,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "disclosure-speed-compare.json").write_text(json.dumps(report, indent=2) + "\n")
    e, c = report["medians"]["earlier"], report["medians"]["current"]
    lines = [
        "# Disclosure speed: this version against an earlier one, same session",
        "",
        f"Generated by `benchmarks/disclosure_speed_compare.py --against {args.against} --runs {args.runs}` on "
        f"{report['machine']}, load average {report['load_average_at_start']} at the start (a shared machine).",
        "4-way table school x grade x race x gender (18,816 cells, 200,000 students), NCES rule, proof audit. "
        "Runs alternate between the versions, each in a fresh process; seconds are medians.",
        "",
        "| version | protect + audit (s) | protect (s) | audit (s) | LPs | rounds | cells hidden | students hidden |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, m in ((f"earlier ({report['earlier_revision']})", e), (f"current ({report['current_revision']})", c)):
        lines.append(
            f"| {label} | {m['protect_and_audit_seconds']} | {m['protect_seconds']} | {m['audit_seconds']} | "
            f"{m['lp_count']} | {m['rounds']} | {m['suppressed_cells']:,} | {m['students_hidden']:,} |"
        )
    lines += [
        "",
        f"Ratio current / earlier: protect + audit {report['ratio_protect_and_audit']}x, "
        f"audit {report['ratio_audit']}x. Both versions hide the same cells and are proven safe.",
        "",
    ]
    (RESULTS / "disclosure-speed-compare.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
