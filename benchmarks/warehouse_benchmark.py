"""Warehouse benchmark: generation cost by size, and a measure in DuckDB versus pandas.

    .venv/bin/python benchmarks/warehouse_benchmark.py [--sizes 25000,100000,1000000] [--repeats 5]

1. `workbench data generate` at each size in a fresh process under /usr/bin/time: wall time and
   peak resident memory.
2. Chronic absence by school x grade x race/ethnicity (a 3-way breakdown) for one year at each
   size: computed in the warehouse (DuckDB through Ibis, only the result comes
   back) versus computed in pandas from the same tables loaded into memory. Both results are
   checked to be identical before any time is reported. Median of several runs, and the ratio.

Results go to benchmarks/results/warehouse.json and benchmarks/results/warehouse.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
WORKBENCH = Path(sys.executable).parent / "workbench"
YEAR = "2025-2026"
BREAKDOWN = ["school", "grade", "race_ethnicity"]


def measure_generation(students: int, out: Path) -> dict:
    command = ["/usr/bin/time", "-v", str(WORKBENCH), "data", "generate", "--students", str(students),
               "--out", str(out), "--quiet"]
    completed = subprocess.run(command, capture_output=True, text=True, check=True)
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", completed.stderr)
    hours, minutes, seconds = (float(g) if g else 0.0 for g in wall.groups())
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", completed.stderr).group(1))
    return {
        "students": students,
        "seconds": round(hours * 3600 + minutes * 60 + seconds, 2),
        "peak_rss_mb": round(rss_kb / 1024, 1),
        "file_mb": round(out.stat().st_size / 1e6, 1),
    }


def chronic_absence_in_pandas(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The same definition as workbench.measures, written directly in pandas."""
    attendance = tables["attendance"][tables["attendance"]["school_year"] == YEAR]
    enrollments = tables["enrollments"][tables["enrollments"]["school_year"] == YEAR]
    per_school = attendance.groupby(["student_id", "school_id"], as_index=False)[["days_enrolled"]].sum()
    last_entry = enrollments.groupby(["student_id", "school_id"], as_index=False)["entry_date"].max()
    stays = per_school.merge(last_entry, on=["student_id", "school_id"])
    stays = stays.sort_values(["student_id", "days_enrolled", "entry_date", "school_id"],
                              ascending=[True, False, False, True])
    record = stays.drop_duplicates("student_id")[["student_id", "school_id"]]
    totals = attendance.groupby("student_id", as_index=False)[["days_enrolled", "days_absent"]].sum()
    years = tables["student_years"][tables["student_years"]["school_year"] == YEAR][["student_id", "grade"]]
    facts = (record.merge(years, on="student_id").merge(tables["students"][["student_id", "race_ethnicity"]], on="student_id")
             .merge(totals, on="student_id", how="left"))
    facts = facts[facts["days_enrolled"] >= 10]
    facts["chronic"] = facts["days_absent"] >= facts["days_enrolled"] * 0.10
    grouped = facts.groupby(["school_id", "grade", "race_ethnicity"], as_index=False).agg(
        students=("student_id", "nunique"), count=("chronic", "sum"))
    return grouped.sort_values(["school_id", "grade", "race_ethnicity"]).reset_index(drop=True)


def timed(function, repeats: int) -> tuple[float, object]:
    times = []
    result = None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def compare_measure(path: Path, repeats: int) -> dict:
    from workbench.measures import compute
    from workbench.warehouse import connect

    con = connect(path)

    def in_warehouse():
        return compute(con, "chronic_absence", [YEAR], BREAKDOWN)

    load_started = time.perf_counter()
    tables = {name: con.table(name).to_pandas() for name in ("attendance", "enrollments", "student_years", "students")}
    load_seconds = time.perf_counter() - load_started

    warehouse_seconds, warehouse_result = timed(in_warehouse, repeats)
    pandas_seconds, pandas_result = timed(lambda: chronic_absence_in_pandas(tables), repeats)

    ours = warehouse_result[["school_id", "grade", "race_ethnicity", "students", "count"]].astype(
        {"grade": "int64", "students": "int64", "count": "int64"}).reset_index(drop=True)
    theirs = pandas_result.astype({"grade": "int64", "students": "int64", "count": "int64"})
    pd.testing.assert_frame_equal(ours, theirs[ours.columns.tolist()], check_dtype=False)
    return {
        "measure": "chronic_absence",
        "breakdown": BREAKDOWN,
        "cells": len(ours),
        "repeats": repeats,
        "duckdb_ibis_median_s": round(warehouse_seconds, 4),
        "pandas_median_s": round(pandas_seconds, 4),
        "pandas_load_tables_s": round(load_seconds, 3),
        "pandas_over_duckdb": round(pandas_seconds / warehouse_seconds, 2),
        "pandas_with_load_over_duckdb": round((pandas_seconds + load_seconds) / warehouse_seconds, 2),
    }


def write_results(generation: list[dict], comparison: list[dict]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": __import__("os").cpu_count()},
        "generation": generation,
        "measure": comparison,
    }
    (RESULTS / "warehouse.json").write_text(json.dumps(payload, indent=2) + "\n")
    lines = [
        "# Warehouse benchmark",
        "",
        "Command: `.venv/bin/python benchmarks/warehouse_benchmark.py`",
        "",
        "## Generating the synthetic district (`workbench data generate`, 3 school years)",
        "",
        "| students per year | wall time (s) | peak memory (MB) | DuckDB file (MB) |",
        "|---:|---:|---:|---:|",
    ]
    lines += [f"| {g['students']:,} | {g['seconds']} | {g['peak_rss_mb']:,} | {g['file_mb']} |" for g in generation]
    first = comparison[0]
    lines += [
        "",
        f"## One measure, 3-way breakdown ({first['measure']} by {' x '.join(first['breakdown'])}, one school year)",
        "",
        f"Median of {first['repeats']} runs at each size; the DuckDB and pandas results are checked identical first.",
        "DuckDB runs inside the warehouse through Ibis and returns only the result; pandas works on the",
        "tables already loaded into memory (loading them is timed separately, once).",
        "",
        "| students | cells | DuckDB via Ibis (s) | pandas, loaded (s) | loading for pandas (s) | pandas / DuckDB | (pandas + load) / DuckDB |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {c['students']:,} | {c['cells']:,} | {c['duckdb_ibis_median_s']} | {c['pandas_median_s']} | "
        f"{c['pandas_load_tables_s']} | {c['pandas_over_duckdb']} | {c['pandas_with_load_over_duckdb']} |"
        for c in comparison
    ]
    lines.append("")
    (RESULTS / "warehouse.md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="25000,100000,1000000")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    generation = []
    comparisons = []
    with tempfile.TemporaryDirectory() as scratch:
        for students in sizes:
            out = Path(scratch) / f"district-{students}.duckdb"
            print(f"generating {students:,} students ...", flush=True)
            generation.append(measure_generation(students, out))
            print(f"  {generation[-1]}", flush=True)
            print("  comparing a 3-way measure in DuckDB and pandas ...", flush=True)
            comparisons.append({"students": students, **compare_measure(out, args.repeats)})
            print(f"  {comparisons[-1]}", flush=True)
            out.unlink()
    comparison = comparisons
    write_results(generation, comparison)
    print(f"results in {RESULTS / 'warehouse.md'}")


if __name__ == "__main__":
    main()
