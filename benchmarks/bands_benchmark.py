"""Benchmark: information lost by grade and by grade band on the disclosure benchmark's district.

    .venv/bin/python benchmarks/bands_benchmark.py      # about 10 seconds

The synthetic district of benchmarks/disclosure_benchmark.py (200,000 students, ~40 regular
schools and three very small ones). For the school x grade and school x grade x race tables,
workbench protects the table as asked and the same counts in the NCES baseline pack's grade bands
(K-5, 6-8, 9-12) with the same rule and audit (compare_bands, proof mode, 3 runs, median
seconds), and reports cells and students hidden in each; every output is audited again by the
published-table attacker (exact disclosures must be 0).
Results: benchmarks/results/disclosure-bands.md and .json.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.disclosure_benchmark import RESULTS, synthetic_counts  # noqa: E402
from workbench.disclosure import SmallGroupRule, audit_published_table  # noqa: E402
from workbench.disclosure.bands import compare_bands, information_loss  # noqa: E402
from workbench.disclosure.table import CountTable  # noqa: E402
from workbench.policy import load_policy  # noqa: E402

TABLES = {"2-way school x grade": ["school", "grade"], "3-way school x grade x race": ["school", "grade", "race"]}


def exact_disclosures(result, dims) -> int:
    published = result.cells[[*dims, "value"]]
    return audit_published_table(published, dims, intervals="proof").exactly_disclosed


def main() -> None:
    bands = load_policy("nces").bands("grade")
    counts = synthetic_counts()
    rule = SmallGroupRule()
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_average_at_start": round(os.getloadavg()[0], 2),
        "students": int(counts["n"].sum()),
        "bands": {k: list(v) for k, v in bands.items()},
        "tables": {},
    }
    for name, dims in TABLES.items():
        table = CountTable.from_frame(counts.groupby(dims, as_index=False)["n"].sum(), dims, "n")
        times, comparison = [], None
        for _ in range(3):
            started = time.perf_counter()
            comparison = compare_bands(table, "grade", bands, rule, intervals="proof")
            times.append(time.perf_counter() - started)
        row = {}
        for label, result in (("by grade", comparison.original), ("by grade band", comparison.banded)):
            loss = information_loss(result)
            row[label] = {**loss.as_dict(), "safe": result.is_safe, "exact_disclosures": exact_disclosures(result, dims),
                          "protect_seconds": round(result.timings.get("total", 0.0), 3)}
        row["both versions, median seconds (3 runs)"] = round(statistics.median(times), 3)
        row["offered"] = comparison.offered
        report["tables"][name] = row
        print(name, row, file=sys.stderr)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "disclosure-bands.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["# Information lost by grade and by grade band", "",
             f"{report['students']:,} students; {report['machine']}; load average at start {report['load_average_at_start']}.",
             "Bands: " + ", ".join(report["bands"]) + " (nces pack). Command: `python benchmarks/bands_benchmark.py`.", "",
             "| table | version | cells | cells hidden | students hidden | exact disclosures (our attacker) | safe |",
             "|---|---|---:|---:|---:|---:|---|"]
    for name, row in report["tables"].items():
        for label in ("by grade", "by grade band"):
            r = row[label]
            lines.append(f"| {name} | {label} | {r['cells']:,} | {r['cells_hidden']:,} | {r['students_hidden']:,} | "
                         f"{r['exact_disclosures']} | {r['safe']} |")
    lines += ["", "Ratios, banded / by grade (students hidden; cells hidden): " + "; ".join(
        f"{name} {row['by grade band']['students_hidden'] / max(row['by grade']['students_hidden'], 1):.2f}x; "
        f"{row['by grade band']['cells_hidden'] / max(row['by grade']['cells_hidden'], 1):.2f}x"
        for name, row in report["tables"].items())]
    lines += ["", "Median seconds to protect and audit both versions: " + "; ".join(
        f"{name} {row['both versions, median seconds (3 runs)']}" for name, row in report["tables"].items()), ""]
    (RESULTS / "disclosure-bands.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
