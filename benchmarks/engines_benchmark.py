"""Engines benchmark: the same measure on DuckDB, Spark (local mode) and PostgreSQL, by size, with
the memory the workbench's Python side needs.

    .venv/bin/python benchmarks/engines_benchmark.py [--student-years 1000000,10000000]
        [--postgres-up-to 1000000] [--repeats 3]

For each size (student-years over three school years: 1,000,000 is about 333,000 students a year):

1. `workbench data generate --format parquet` writes the district as Parquet partitioned by school
   year (timed, with the command's peak memory); above 500,000 students a year it does so in chunks
   of schools, so 10,000,000 student-years need the memory of one chunk, not of the district.
2. For each engine, a fresh workbench process connects and computes chronic absence by school x
   grade x race/ethnicity for one school year: the first call (builds the per-student facts and
   keeps them in the engine) and the median of the calls after it (each queries the engine again:
   the sums the workbench keeps per connection are dropped before each). The engines read the same
   district: DuckDB reads the Parquet folder in place, Spark registers it as views (local mode,
   on this machine's cores), PostgreSQL gets it loaded with `workbench data generate --out
   postgresql://...` (same seed) on a throwaway server (tests/postgres_server.py).
3. Memory on the workbench side: the process's peak resident memory (VmHWM) and the peak of
   Python's own allocations (tracemalloc). DuckDB runs inside the workbench process, so its peak
   includes the engine's work; Spark's JVM and PostgreSQL's server are other processes, so their
   peaks are the workbench's alone. Every engine's result is checked identical to DuckDB's.

Results go to benchmarks/results/engines.json and benchmarks/results/engines.md; sizes measured
earlier and not in this run are kept. A size whose generation would not fit in this machine's memory
is listed as not run, with the command to run it elsewhere.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from workbench.synthetic.chunks import DEFAULT_CHUNK_STUDENTS  # noqa: E402
RESULTS = ROOT / "benchmarks" / "results"
WORKBENCH = Path(sys.executable).parent / "workbench"
YEARS = 3
YEAR = "2025-2026"
BREAKDOWN = "school,grade,race_ethnicity"
SEED = 20261122
# What a repeat asks the engine: since the workbench computes every measure's sums of a breakdown in
# one aggregation, a repeat times that query; sizes measured before it timed one measure's query.
ALL_SUMS = "all_sums"

# Run in a fresh process per engine so each peak is that engine's alone.
_ONE_ENGINE = r"""
import json, re, statistics, sys, time, tracemalloc
tracemalloc.start()
from workbench.measures import _SUMS_CACHE, cached_facts, compute
from workbench.warehouse import connect
def peak_mb():
    with open("/proc/self/status") as status:
        return int(re.search(r"VmHWM:\s+(\d+) kB", status.read()).group(1)) / 1024
location, year, breakdown, repeats, out = sys.argv[1], sys.argv[2], sys.argv[3].split(","), int(sys.argv[4]), sys.argv[5]
started = time.perf_counter()
con = connect(location)
connected_s = time.perf_counter() - started
connected_mb = peak_mb()
started = time.perf_counter()
result = compute(con, "chronic_absence", [year], breakdown)
first_s = time.perf_counter() - started
times = []
for _ in range(repeats):
    # The measure's sums are kept per connection once queried; drop them so each repeat asks the
    # engine again (over the facts it keeps), as the first call after the facts would.
    _SUMS_CACHE.pop(con, None)
    started = time.perf_counter()
    again = compute(con, "chronic_absence", [year], breakdown)
    times.append(time.perf_counter() - started)
facts_rows = int(cached_facts(con, [year]).count().to_pandas())
result.to_parquet(out)
print(json.dumps({"connect_s": round(connected_s, 2), "first_s": round(first_s, 2),
                  "median_s": round(statistics.median(times), 3), "facts_rows": facts_rows, "cells": len(result),
                  "connected_mb": round(connected_mb, 1), "peak_mb": round(peak_mb(), 1),
                  "python_alloc_peak_mb": round(tracemalloc.get_traced_memory()[1] / 2**20, 1)}))
"""


def _time_command(command: list[str]) -> tuple[float, float]:
    completed = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True)
    if completed.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{completed.stderr[-2000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", completed.stderr)
    hours, minutes, seconds = (float(g) if g else 0.0 for g in wall.groups())
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", completed.stderr).group(1))
    return round(hours * 3600 + minutes * 60 + seconds, 1), round(rss_kb / 1024, 1)


def _generate(students: int, *out: str) -> tuple[float, float]:
    return _time_command([str(WORKBENCH), "data", "generate", "--students", str(students), "--seed", str(SEED),
                          "--quiet", *out])


def _one_engine(location: str, repeats: int, scratch: Path) -> tuple[dict, pd.DataFrame]:
    out = scratch / "result.parquet"
    completed = subprocess.run(
        [sys.executable, "-c", _ONE_ENGINE, location, YEAR, BREAKDOWN, str(repeats), str(out)],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if completed.returncode != 0:
        raise SystemExit(f"the measure on {location} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1]), pd.read_parquet(out)


def run_size(student_years: int, repeats: int, with_postgres: bool, scratch: Path) -> dict:
    students = student_years // YEARS
    folder = scratch / f"district-{student_years}"
    print(f"{student_years:,} student-years ({students:,} students a year): generating Parquet ...", flush=True)
    generate_s, generate_mb = _generate(students, "--format", "parquet", "--out", str(folder))
    parquet_mb = sum(p.stat().st_size for p in folder.rglob("*.parquet")) / 1e6
    size = {"student_years": student_years, "students_per_year": students, "generate_parquet_s": generate_s,
            "generate_peak_mb": generate_mb, "parquet_mb": round(parquet_mb, 1), "engines": {},
            "median_query": ALL_SUMS}
    engines = {"duckdb": str(folder), "spark": f"spark://{folder}?spark.driver.memory=3g"}
    server = None
    if with_postgres:
        from tests.postgres_server import throwaway_server

        server = throwaway_server()
        pg = server.__enter__()
        url = pg.create_database("district")
        print("  loading into PostgreSQL ...", flush=True)
        load_s, _ = _generate(students, "--out", url)
        size["postgres_generate_and_load_s"] = load_s
        engines["postgresql"] = url
    try:
        reference = None
        for engine, location in engines.items():
            print(f"  {engine} ...", flush=True)
            figures, result = _one_engine(location, repeats, scratch)
            if reference is None:
                reference = result
            else:
                pd.testing.assert_frame_equal(reference, result, check_exact=True)
            size["engines"][engine] = figures
            print(f"    {figures}", flush=True)
    finally:
        if server is not None:
            server.__exit__(None, None, None)
    return size


def write_results(sizes: list[dict], not_run: list[str], repeats: int) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"machine": {"python": platform.python_version(), "platform": platform.platform(),
                           "cpus": os.cpu_count()}, "measure": f"chronic_absence by {BREAKDOWN}, {YEAR}",
               "repeats": repeats, "sizes": sizes, "not_run": not_run}
    (RESULTS / "engines.json").write_text(json.dumps(payload, indent=2) + "\n")
    lines = [
        "# Engines benchmark: DuckDB, Spark (local mode) and PostgreSQL on the same district",
        "",
        "Command: `.venv/bin/python benchmarks/engines_benchmark.py [--student-years N,N...]` (default "
        "1,000,000 and 10,000,000; sizes from earlier runs are kept, so each row may come from its own run). "
        f"{os.cpu_count()} cores, shared with other work while it ran.",
        "",
        f"Measure: chronic absence by {BREAKDOWN.replace(',', ' x ')}, one school year ({YEAR}), computed in a fresh "
        "workbench process per engine; every engine's table is checked identical to DuckDB's. First call: builds "
        f"the per-student facts of the year and keeps them in the engine; median of {repeats} calls after it, each "
        "querying the engine again over those facts (the sums the workbench keeps per connection are dropped "
        "before each call).",
        "",
        "Memory on the workbench side: peak resident memory of the workbench process (VmHWM) and the peak of "
        "Python's own allocations (tracemalloc). DuckDB runs inside the workbench process, so its resident peak "
        "includes the engine; Spark's JVM and the PostgreSQL server are other processes and are not counted.",
        "",
        "Facts rows: the per-student facts of the school year the measure is over (one row per student), which "
        "stay in the engine; cells back: the rows of the table that reaches Python. Ratios are against DuckDB in "
        "the same run.",
        "",
        "| student-years | engine | facts rows | cells back | connect (s) | first (s) | median (s) | median / DuckDB | "
        "process peak (MB) | Python allocations peak (MB) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in sizes:
        peer = size["engines"].get("duckdb")
        for engine, f in size["engines"].items():
            ratio = round(f["median_s"] / peer["median_s"], 1) if peer else ""
            lines.append(f"| {size['student_years']:,} | {engine} | {f['facts_rows']:,} | {f['cells']:,} | "
                         f"{f['connect_s']} | {f['first_s']} | {f['median_s']} | {ratio} | {f['peak_mb']:,} | "
                         f"{f['python_alloc_peak_mb']} |")
    older = [f"{size['student_years']:,}" for size in sizes if size.get("median_query") != ALL_SUMS]
    if older:
        lines += ["", f"Median column: the {' and '.join(older)} student-year rows were measured when a call asked the "
                  "engine for chronic absence alone; the others time what the workbench asks now, every measure's "
                  "sums of the breakdown in one aggregation (14 distinct counts, `_measure_sums` in "
                  "workbench/measures.py), so their medians are not comparable with the older rows'; the same holds "
                  "for the first call, which builds the facts and then runs that query."]
    lines += ["", "Generating the district as Parquet (`workbench data generate --format parquet`; above "
              f"{DEFAULT_CHUNK_STUDENTS:,} students a year it is generated and written a chunk of schools at a time, "
              "so the peak is that of one chunk):", "",
              "| student-years | students a year | wall time (s) | peak memory (MB) | Parquet (MB) |",
              "|---:|---:|---:|---:|---:|"]
    lines += [f"| {s['student_years']:,} | {s['students_per_year']:,} | {s['generate_parquet_s']} | "
              f"{s['generate_peak_mb']:,} | {s['parquet_mb']} |" for s in sizes]
    loads = [s for s in sizes if "postgres_generate_and_load_s" in s]
    if loads:
        lines += ["", "PostgreSQL: `workbench data generate --out postgresql://...` (generating again and loading with COPY): "
                  + ", ".join(f"{s['postgres_generate_and_load_s']} s at {s['student_years']:,} student-years"
                              for s in loads) + "."]
    if not_run:
        lines += ["", "Not run:", ""] + [f"- {item}" for item in not_run]
    lines.append("")
    (RESULTS / "engines.md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--student-years", default="1000000,10000000")
    parser.add_argument("--postgres-up-to", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-generate-memory-gb", type=float, default=None,
                        help="Skip sizes whose generation would need more memory than this (default: 80%% of "
                             "this machine's memory): the generator holds one chunk of the district in memory.")
    parser.add_argument("--report-only", action="store_true",
                        help="Rewrite engines.md from engines.json without running anything.")
    args = parser.parse_args()
    if args.report_only:
        earlier = json.loads((RESULTS / "engines.json").read_text())
        write_results(earlier["sizes"], earlier["not_run"], earlier["repeats"])
        return
    sizes = [int(s) for s in args.student_years.split(",") if s]
    total_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    limit_gb = args.max_generate_memory_gb or 0.8 * total_gb
    results = []
    # Sizes measured by an earlier run and not this one are kept, so sizes can be run one at a time.
    earlier_file = RESULTS / "engines.json"
    earlier = json.loads(earlier_file.read_text()) if earlier_file.exists() else {"sizes": [], "not_run": []}
    kept = [size for size in earlier["sizes"] if size["student_years"] not in sizes]
    not_run = [item for item in earlier.get("not_run", [])
               if int(item.split(" ", 1)[0].replace(",", "")) not in sizes]

    def write_all() -> None:
        write_results(sorted(kept + results, key=lambda size: size["student_years"]), not_run, args.repeats)

    with tempfile.TemporaryDirectory() as scratch:
        for student_years in sizes:
            # The generator holds one chunk of the district in memory at a time: about 2.2 GB per
            # million student-years of the chunk (benchmarks/results/warehouse.md: 6.7 GB for 3 million).
            needed_gb = 2.2 * min(student_years, YEARS * DEFAULT_CHUNK_STUDENTS) / 1e6
            if needed_gb > limit_gb:
                not_run.append(f"{student_years:,} student-years: generating it needs about {needed_gb:.0f} GB of "
                               f"memory, more than the {limit_gb:.0f} GB allowed here ({total_gb:.0f} GB machine, "
                               "shared). On a larger machine: "
                               f"`.venv/bin/python benchmarks/engines_benchmark.py --student-years {student_years}`")
                print(not_run[-1], flush=True)
                continue
            if student_years > args.postgres_up_to:
                not_run.append(f"{student_years:,} student-years on PostgreSQL: measured up to --postgres-up-to "
                               f"({args.postgres_up_to:,}); loading it (`workbench data generate --out "
                               "postgresql://...`) builds the district in one piece, about "
                               f"{2.2 * student_years / 1e6:.0f} GB of memory at this size")
            results.append(run_size(student_years, args.repeats, student_years <= args.postgres_up_to, Path(scratch)))
            write_all()
    write_all()
    print(f"results in {RESULTS / 'engines.md'}")


if __name__ == "__main__":
    main()
