"""Batch benchmark: school reports for every school, sequential versus parallel, and the cost of a notebook.

    .venv/bin/python benchmarks/batch_benchmark.py [--schools 40] [--workers 2]

On the default demo district (generated when missing), the demo school report is repeated for the
first N schools (`workbench batch --every-school`), then:

1. sequential: `run_batch(..., workers=1)`, one release after another, into a fresh store;
2. parallel: `run_batch(..., workers=W)` in worker processes, into another fresh store;
3. the work itself: the template code of a sample of schools (--in-process-sample, evenly spaced)
   run in this process (no kernel, no papermill, no release check or publish), after one warm-up
   run, to separate what a report costs from what running it as a notebook release costs.

Per-notebook overhead = fill seconds - in-process seconds, per sampled school; the median is reported.
Both stores are checked to hold the same releases (same content digests) before any time is
reported. Results go to benchmarks/results/batch.json and benchmarks/results/batch.md.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
TEMPLATE_REQUEST = ROOT / "data" / "requests" / "demo" / "school_report.yml"
AS_OF = "2026-06-01"
POLICY = "bps"


def ensure_district() -> str:
    from workbench.config import DEFAULT_WAREHOUSE_PATH
    from workbench.schema import write_warehouse
    from workbench.synthetic import generate_district

    if not Path(DEFAULT_WAREHOUSE_PATH).exists():
        write_warehouse(DEFAULT_WAREHOUSE_PATH, generate_district())
    return str(DEFAULT_WAREHOUSE_PATH)


def run_in_process(request_file: Path, warehouse: str) -> float:
    """The school report template's code, executed here with its parameters; seconds."""
    from workbench.fill import TEMPLATES_DIR

    notebook = nbformat.read(TEMPLATES_DIR / "school_report.ipynb", as_version=4)
    code = [c.source for c in notebook.cells if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", [])]
    os.environ["WORKBENCH_WAREHOUSE"] = warehouse
    with tempfile.TemporaryDirectory() as out:
        namespace = {"request_file": str(request_file), "policy": POLICY, "as_of": AS_OF, "output_dir": out,
                     "plan_file": None}
        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            for source in code:
                exec(compile(source, "school_report", "exec"), namespace)
        return time.perf_counter() - started


def digests(store_root: Path) -> dict[str, str]:
    return {p.name: json.loads((p / "manifest.json").read_text())["content_digest"]
            for p in sorted(store_root.iterdir()) if (p / "manifest.json").is_file()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schools", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--in-process-sample", type=int, default=10,
                        help="schools (evenly spaced) whose template is also run in-process for the overhead")
    args = parser.parse_args()

    from workbench.batch import FillJob, requests_for_every_school, run_batch
    from workbench.warehouse import connect

    warehouse = ensure_district()
    con = connect(warehouse)
    work = Path(tempfile.mkdtemp(prefix="batch-bench-"))
    all_requests = requests_for_every_school(TEMPLATE_REQUEST, con, work / "requests", date.fromisoformat(AS_OF))
    requests = all_requests[: args.schools]
    print(f"{len(requests)} school reports (of {len(all_requests)} schools), {args.workers} workers")

    def jobs(store: Path) -> list[FillJob]:
        return [FillJob(str(r), POLICY, AS_OF, str(store), warehouse, False) for r in requests]

    # Parallel first: its workers are forked from this process, which must not yet hold the
    # sequential run's warm kernel (a process with a live kernel connection cannot be forked safely).
    started = time.perf_counter()
    parallel = run_batch(jobs(work / "parallel"), args.workers)
    parallel_wall = time.perf_counter() - started
    started = time.perf_counter()
    sequential = run_batch(jobs(work / "sequential"), 1, on_done=lambda r: print(f"  sequential {Path(r['request']).stem}: {r['seconds']:.1f}s", flush=True))
    sequential_wall = time.perf_counter() - started
    print(f"sequential {sequential_wall:.1f}s, parallel {parallel_wall:.1f}s")

    failed = [r for r in sequential + parallel if not r["ok"]]
    if failed:
        raise SystemExit(f"{len(failed)} fills failed, e.g. {failed[0]['request']}: {failed[0]['error']}")
    if digests(work / "sequential") != digests(work / "parallel"):
        raise SystemExit("sequential and parallel releases differ: refusing to report times")

    run_in_process(requests[0], warehouse)  # warm-up: imports and first connection
    step = max(1, len(requests) // max(1, args.in_process_sample))
    sample = list(range(0, len(requests), step))[: args.in_process_sample]
    in_process = [run_in_process(requests[i], warehouse) for i in sample]
    sampled_fills = [sequential[i]["seconds"] for i in sample]
    fill_seconds = [r["seconds"] for r in sequential]
    overhead = [f - w for f, w in zip(sampled_fills, in_process)]
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "schools": len(requests),
        "workers": args.workers,
        "sequential_seconds": round(sequential_wall, 1),
        "parallel_seconds": round(parallel_wall, 1),
        "speedup": round(sequential_wall / parallel_wall, 2),
        "fill_median_seconds": round(statistics.median(fill_seconds), 2),
        "in_process_sample": len(sample),
        "sampled_fill_median_seconds": round(statistics.median(sampled_fills), 2),
        "in_process_median_seconds": round(statistics.median(in_process), 2),
        "overhead_median_seconds": round(statistics.median(overhead), 2),
        "overhead_share": round(statistics.median(overhead) / statistics.median(sampled_fills), 2),
        "per_school": [{"request": Path(r["request"]).stem, "fill_seconds": round(r["seconds"], 2),
                        "in_process_seconds": round(in_process[sample.index(i)], 2) if i in sample else None}
                       for i, r in enumerate(sequential)],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "batch.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "batch.md").write_text(markdown(report))
    print(markdown(report))


def markdown(report: dict) -> str:
    return "\n".join([
        "# Batch benchmark",
        "",
        f"Generated by `benchmarks/batch_benchmark.py` on {report['machine']}.",
        f"The demo school report (BPS policy, two school years, five measures, four breakdowns) for "
        f"{report['schools']} schools of the default demo district (25,000 students), as of {AS_OF}.",
        "",
        "| run | wall seconds | per report |",
        "|---|---:|---:|",
        f"| sequential (1 process) | {report['sequential_seconds']} | {report['sequential_seconds'] / report['schools']:.1f} |",
        f"| parallel ({report['workers']} worker processes) | {report['parallel_seconds']} | "
        f"{report['parallel_seconds'] / report['schools']:.1f} |",
        "",
        f"Speed-up: {report['speedup']}x with {report['workers']} workers. Both runs produced identical releases "
        "(same content digests).",
        "",
        f"Per notebook (medians; sequential run; the in-process run on {report['in_process_sample']} evenly spaced schools):",
        "",
        f"- a fill (decide, papermill in the guarded kernel, release check, publish): {report['fill_median_seconds']}s "
        f"over all schools, {report['sampled_fill_median_seconds']}s over the sampled ones",
        f"- the same template code run in-process (the work itself): {report['in_process_median_seconds']}s",
        f"- overhead of running it as a notebook release: {report['overhead_median_seconds']}s "
        f"({report['overhead_share']:.0%} of a fill)",
        "",
    ])


if __name__ == "__main__":
    main()
