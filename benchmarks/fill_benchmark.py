"""How long a school report takes to fill, against what running any notebook costs.

Three measurements on the demo district, in one run, medians of --repeats:

1. `workbench fill` of the demo school report (plan, guarded kernel, template, checks, publish),
   against papermill running a one-cell notebook in the same guarded kernel (the floor: kernel
   start, guard, shutdown). Goal: fill <= 3x the empty notebook.
2. The school report's tables built in-process (RequestContext + build_table, as the template
   does) with the facts computed once per connection and every measure of a breakdown taken from
   one aggregation of them (the current path), against the facts rebuilt for every measure and
   breakdown (the first path, `WORKBENCH_NO_FACT_CACHE=1`). Both include the disclosure
   protection and audit of each table.
3. `workbench --help` start-up time (goal <= 0.15 s), against `python -c pass`.

The workbench's commands do not build jsonschema's IRI grammars when nbformat loads (2 s); the
papermill command does. So the empty notebook is also timed through papermill with the same
import skipped, and the fill is reported against both.

    .venv/bin/python benchmarks/fill_benchmark.py [--repeats 3]

Results: benchmarks/results/fill.md and fill.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DEMO = ROOT / "data" / "requests" / "demo" / "school_report.yml"
AS_OF = "2026-06-01"

TABLES = """
import time, sys
from workbench.report import RequestContext, build_table
started = time.perf_counter()
ctx = RequestContext.open(sys.argv[1], None, sys.argv[2], None)
measures = list(ctx.decision.measures)
groups = [b for b in ctx.decision.breakdowns if b not in ("grade", "school", "program")]
build_table(ctx, measures, ["grade"], district_comparison=True, name="by_grade")
for breakdown in groups:
    build_table(ctx, measures, [breakdown], district_comparison=True, name=f"by_{breakdown}")
build_table(ctx, ["chronic_absence"], ["grade", groups[0]], name="grade_by_group")
print(time.perf_counter() - started)
"""


LEAN_PAPERMILL = ("import sys; sys.modules['rfc3987_syntax'] = None; from papermill.cli import papermill; "
                  "papermill()")


def _timed(command: list[str], env: dict | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - started


def _empty_notebook(folder: Path) -> Path:
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("x = 1")]
    notebook.metadata["kernelspec"] = {"name": "workbench", "display_name": "Python 3 (workbench)", "language": "python"}
    path = folder / "empty.ipynb"
    nbformat.write(notebook, path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    results: dict = {"repeats": args.repeats, "load_average_start": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        empty = _empty_notebook(scratch)
        fills, empties, lean = [], [], []
        for number in range(args.repeats):
            empties.append(_timed([str(BIN / "papermill"), str(empty), str(scratch / "out.ipynb"), "-k", "workbench",
                                   "--no-progress-bar"]))
            lean.append(_timed([sys.executable, "-c", LEAN_PAPERMILL, str(empty), str(scratch / "out.ipynb"), "-k",
                                "workbench", "--no-progress-bar"]))
            fills.append(_timed([str(BIN / "workbench"), "fill", str(DEMO), "--as-of", AS_OF, "--no-register",
                                 "--releases", str(scratch / f"releases-{number}")]))
        results["fill"] = {"school_report_s": statistics.median(fills), "empty_notebook_s": statistics.median(empties),
                           "ratio": statistics.median(fills) / statistics.median(empties),
                           "empty_notebook_lean_s": statistics.median(lean),
                           "ratio_lean": statistics.median(fills) / statistics.median(lean)}
        tables = {}
        for label, extra in (("facts_once", {}), ("facts_per_table", {"WORKBENCH_NO_FACT_CACHE": "1"})):
            runs = []
            for _ in range(args.repeats):
                out = subprocess.run([sys.executable, "-c", TABLES, str(DEMO), AS_OF], check=True, capture_output=True,
                                     text=True, env={**os.environ, **extra})
                runs.append(float(out.stdout.strip().splitlines()[-1]))
            tables[label] = statistics.median(runs)
        tables["speed_up"] = tables["facts_per_table"] / tables["facts_once"]
        results["tables"] = tables
        helps, bare = [], []
        for _ in range(max(9, args.repeats)):  # alternated: both see the same load
            helps.append(_timed([str(BIN / "workbench"), "--help"]))
            bare.append(_timed([sys.executable, "-c", "pass"]))
        results["cli"] = {"help_s": statistics.median(helps), "python_s": statistics.median(bare)}
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "fill.json").write_text(json.dumps(results, indent=2) + "\n")
    fill, tables, cli = results["fill"], results["tables"], results["cli"]
    (out / "fill.md").write_text(
        "# Filling a school report\n\n"
        f"Demo district (25,000 students), medians of {args.repeats} runs on a shared 2-core machine "
        f"(load average {results['load_average_start']} at the start).\n\n"
        "| what | seconds |\n|---|---|\n"
        f"| `workbench fill` school report | {fill['school_report_s']:.2f} |\n"
        f"| papermill, one-cell notebook, same guarded kernel | {fill['empty_notebook_s']:.2f} |\n"
        f"| ratio (goal <= 3) | {fill['ratio']:.2f} |\n"
        f"| papermill, same, without jsonschema's IRI grammars (as the workbench loads nbformat) | "
        f"{fill['empty_notebook_lean_s']:.2f} |\n"
        f"| ratio against it | {fill['ratio_lean']:.2f} |\n"
        f"| report tables in-process, facts once, one aggregation per breakdown | {tables['facts_once']:.2f} |\n"
        f"| report tables in-process, facts rebuilt per measure (first path) | {tables['facts_per_table']:.2f} |\n"
        f"| speed-up of the tables | {tables['speed_up']:.1f}x |\n"
        f"| `workbench --help` (goal <= 0.15) | {cli['help_s']:.3f} |\n"
        f"| `python -c pass` | {cli['python_s']:.3f} |\n"
        f"| `workbench --help` minus `python -c pass` | {cli['help_s'] - cli['python_s']:.3f} |\n\n"
        "Reproduce: `.venv/bin/python benchmarks/fill_benchmark.py`\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
