"""Warehouse benchmark: generation cost by size, and a measure in DuckDB versus pandas.

    .venv/bin/python benchmarks/warehouse_benchmark.py [--sizes 25000,100000,1000000] [--repeats 5]

1. `workbench data generate` at each size in a fresh process under /usr/bin/time: wall time and
   peak resident memory.
2. Chronic absence by school x grade x race/ethnicity (a 3-way breakdown) for one year at each
   size: computed in the warehouse (DuckDB through Ibis, only the result comes
   back) versus computed in pandas from the same tables loaded into memory. Both results are
   checked to be identical before any time is reported. Median of several runs, and the ratio.

3. PostgreSQL (sizes in --postgres-sizes), on a throwaway server from Debian's binaries (the tests'
   tests/postgres_server.py: default settings, fsync off): `workbench data generate --out
   postgresql://...` against the same command writing a DuckDB file (wall time, the part spent
   writing, peak memory of the command), then the same measure on both warehouses, checked
   identical: the first call on a fresh connection (facts computed and kept as a temporary table)
   and the median of the calls after it; and the peak memory of a fresh workbench process
   computing it once on each (the workbench side: DuckDB runs inside it, PostgreSQL does not).

With `--sizes ""` only the PostgreSQL part runs and the earlier DuckDB sections are kept.
Results go to benchmarks/results/warehouse.json and benchmarks/results/warehouse.md.
"""

from __future__ import annotations

import argparse
import json
import os
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
sys.path.insert(0, str(ROOT))
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


def _run_generate(students: int, out: str) -> dict:
    """`workbench data generate` in a fresh process: wall time, time spent writing, peak memory."""
    command = ["/usr/bin/time", "-v", str(WORKBENCH), "data", "generate", "--students", str(students), "--out", out]
    completed = subprocess.run(command, capture_output=True, text=True, check=True)
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", completed.stderr)
    hours, minutes, seconds = (float(g) if g else 0.0 for g in wall.groups())
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", completed.stderr).group(1))
    writing_from = float(re.search(r"\[\s*([\d.]+)s\] writing the warehouse", completed.stderr).group(1))
    done_at = float(re.search(r"^Wrote .* in ([\d.]+)s$", completed.stderr, re.MULTILINE).group(1))
    return {
        "seconds": round(hours * 3600 + minutes * 60 + seconds, 2),
        "writing_s": round(done_at - writing_from, 2),
        "peak_rss_mb": round(rss_kb / 1024, 1),
    }


def _first_and_median(connect_warehouse, repeats: int) -> tuple[float, float, pd.DataFrame]:
    from workbench.measures import compute, release_facts

    con = connect_warehouse()
    started = time.perf_counter()
    result = compute(con, "chronic_absence", [YEAR], BREAKDOWN)
    first = time.perf_counter() - started
    median, again = timed(lambda: compute(con, "chronic_absence", [YEAR], BREAKDOWN), repeats)
    pd.testing.assert_frame_equal(result, again)
    release_facts(con)
    con.disconnect()
    return first, median, result


# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent through fork and exec.
_MEASURE_IN_A_FRESH_PROCESS = """
import re, sys
from workbench.measures import compute
from workbench.warehouse import connect
def peak_kb():
    with open("/proc/self/status") as status:
        return int(re.search(r"VmHWM:\\s+(\\d+) kB", status.read()).group(1))
con = connect(sys.argv[1])
before = peak_kb()
compute(con, "chronic_absence", [sys.argv[2]], sys.argv[3].split(","))
print(before, peak_kb())
"""


def workbench_side_memory(location: str) -> tuple[float, float]:
    """Peak memory (MB) of a fresh workbench process before and after computing the measure. With
    DuckDB the engine runs inside that process; with PostgreSQL only the workbench does."""
    completed = subprocess.run([sys.executable, "-c", _MEASURE_IN_A_FRESH_PROCESS, location, YEAR, ",".join(BREAKDOWN)],
                               capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    before_kb, after_kb = (int(v) for v in completed.stdout.split()[-2:])
    return round(before_kb / 1024, 1), round(after_kb / 1024, 1)


def compare_postgres(students: int, server, scratch: Path, repeats: int) -> dict:
    """Generating into PostgreSQL and DuckDB, then the same measure on both."""
    from workbench.warehouse import connect

    url = server.create_database(f"district_{students}")
    duck_path = scratch / f"peer-{students}.duckdb"
    print("  generating into DuckDB (the peer) ...", flush=True)
    duck_generation = _run_generate(students, str(duck_path))
    print("  generating into PostgreSQL ...", flush=True)
    pg_generation = _run_generate(students, url)
    print("  the measure on both ...", flush=True)
    duck_first, duck_median, duck_result = _first_and_median(lambda: connect(duck_path), repeats)
    pg_first, pg_median, pg_result = _first_and_median(lambda: connect(url), repeats)
    pd.testing.assert_frame_equal(duck_result, pg_result, check_exact=True)
    duck_connected_mb, duck_peak_mb = workbench_side_memory(str(duck_path))
    pg_connected_mb, pg_peak_mb = workbench_side_memory(url)
    import psycopg

    with psycopg.connect(url) as connection:
        pg_bytes = connection.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    result = {
        "students": students,
        "duckdb_generate_s": duck_generation["seconds"],
        "duckdb_write_s": duck_generation["writing_s"],
        "duckdb_generate_peak_rss_mb": duck_generation["peak_rss_mb"],
        "duckdb_file_mb": round(duck_path.stat().st_size / 1e6, 1),
        "postgres_generate_s": pg_generation["seconds"],
        "postgres_load_s": pg_generation["writing_s"],
        "postgres_generate_peak_rss_mb": pg_generation["peak_rss_mb"],
        "postgres_database_mb": round(pg_bytes / 1e6, 1),
        "cells": len(pg_result),
        "repeats": repeats,
        "duckdb_first_s": round(duck_first, 3),
        "duckdb_median_s": round(duck_median, 4),
        "postgres_first_s": round(pg_first, 3),
        "postgres_median_s": round(pg_median, 4),
        "postgres_over_duckdb_first": round(pg_first / duck_first, 2),
        "postgres_over_duckdb_median": round(pg_median / duck_median, 2),
        "duckdb_process_connected_mb": duck_connected_mb,
        "duckdb_process_peak_mb": duck_peak_mb,
        "postgres_process_connected_mb": pg_connected_mb,
        "postgres_process_peak_mb": pg_peak_mb,
    }
    duck_path.unlink()
    return result


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


def write_results(generation: list[dict], comparison: list[dict], postgres: list[dict]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": __import__("os").cpu_count()},
        "generation": generation,
        "measure": comparison,
        "postgres": postgres,
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
    if postgres:
        lines += [
            "",
            "## PostgreSQL (the same district loaded with `workbench data generate --out postgresql://...`)",
            "",
            "A throwaway PostgreSQL server on this machine (Debian's package, default settings but fsync off),",
            "started by the benchmark. DuckDB is the peer, measured in the same run at the same size.",
            "Generating: the whole command, of which writing the warehouse (COPY into PostgreSQL, the DuckDB",
            "file for the peer), and the command's peak memory.",
            "",
            "| students | DuckDB: command (s) | of which writing (s) | peak (MB) | file (MB) | PostgreSQL: command (s) | of which COPY (s) | peak (MB) | database (MB) |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {p['students']:,} | {p['duckdb_generate_s']} | {p['duckdb_write_s']} | {p['duckdb_generate_peak_rss_mb']:,} | "
            f"{p['duckdb_file_mb']} | {p['postgres_generate_s']} | {p['postgres_load_s']} | "
            f"{p['postgres_generate_peak_rss_mb']:,} | {p['postgres_database_mb']} |"
            for p in postgres
        ]
        lines += [
            "",
            f"The measure above ({first['measure']} by {' x '.join(first['breakdown'])}, one school year) on both, "
            "results checked identical:",
            "the first call on a fresh connection (builds the per-student facts, kept as a temporary table) and the",
            f"median of {postgres[0]['repeats']} calls after it.",
            "",
            "| students | cells | DuckDB first (s) | PostgreSQL first (s) | PostgreSQL / DuckDB | DuckDB median (s) | PostgreSQL median (s) | PostgreSQL / DuckDB |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {p['students']:,} | {p['cells']:,} | {p['duckdb_first_s']} | {p['postgres_first_s']} | "
            f"{p['postgres_over_duckdb_first']} | {p['duckdb_median_s']} | {p['postgres_median_s']} | "
            f"{p['postgres_over_duckdb_median']} |"
            for p in postgres
        ]
        lines += [
            "",
            "Peak memory of a fresh workbench process that connects and computes the measure once (MB,",
            "after connecting / at the end). DuckDB runs inside that process, so its peak includes the",
            "engine's work; with PostgreSQL the per-student facts stay in the server and only the table comes back.",
            "",
            "| students | DuckDB: connected | DuckDB: peak | PostgreSQL: connected | PostgreSQL: peak |",
            "|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {p['students']:,} | {p['duckdb_process_connected_mb']} | {p['duckdb_process_peak_mb']} | "
            f"{p['postgres_process_connected_mb']} | {p['postgres_process_peak_mb']} |"
            for p in postgres
        ]
    lines.append("")
    (RESULTS / "warehouse.md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="25000,100000,1000000")
    # PostgreSQL at 1M students takes about five minutes here (generating twice, loading, facts).
    parser.add_argument("--postgres-sizes", default="25000,100000")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    postgres_sizes = [int(s) for s in args.postgres_sizes.split(",") if s]
    generation = []
    comparisons = []
    if not sizes:
        earlier = json.loads((RESULTS / "warehouse.json").read_text())
        generation, comparisons = earlier["generation"], earlier["measure"]
    postgres = []
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
        if postgres_sizes:
            from tests.postgres_server import throwaway_server

            with throwaway_server() as server:
                for students in postgres_sizes:
                    print(f"PostgreSQL at {students:,} students ...", flush=True)
                    postgres.append(compare_postgres(students, server, Path(scratch), args.repeats))
                    print(f"  {postgres[-1]}", flush=True)
    write_results(generation, comparisons, postgres)
    print(f"results in {RESULTS / 'warehouse.md'}")


if __name__ == "__main__":
    main()
