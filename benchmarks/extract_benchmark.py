"""Information loss of de-identified extracts: the workbench against sdcMicro-style local suppression.

    python benchmarks/extract_benchmark.py [--quick]

Writes benchmarks/results/extract.md and extract.json. Both methods get the same joined record
(one row per student, a column per quasi-identifier and year, the years a student is in) and the
same importance order, at k = 10.

The peer follows sdcMicro's documented `localSuppression` (no Python package provides it):
key variables are given up in importance order, a missing value counts as matching any value when
frequencies are counted (freqCalc with alpha = 1), and for every record whose frequency is below k
the value of its least important key variable still shown is suppressed, until every frequency is
at least k. That frequency counts a blank as matching anything, so the peer's output is also
measured the way the workbench counts (a blank is a value of its own: records showing exactly the
same values and blanks): a record below k there is one a recipient can narrow to fewer than k
students (a blank that only hides a rare value, or a record unique among the students).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workbench.disclosure.extract import _joined_record, class_sizes, suppress_to_k  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
K = 10


def forward_frequencies(codes: np.ndarray) -> np.ndarray:
    """sdcMicro's fk with alpha = 1: records agreeing with r wherever both show a value."""
    blank = codes == -1
    n = len(codes)
    out = np.zeros(n, dtype=np.int64)
    for i in range(n):
        shown = ~blank[i]
        agree = (codes[:, shown] == codes[i, shown]) | blank[:, shown]
        out[i] = agree.all(axis=1).sum()
    return out


def sdcmicro_local_suppression(codes: np.ndarray, blankable: np.ndarray, give_up: list[int], k: int) -> np.ndarray:
    codes = codes.copy()
    while True:
        unsafe = np.flatnonzero(forward_frequencies(codes) < k)
        if not len(unsafe):
            return codes
        progressed = False
        for i in unsafe:
            for j in give_up:
                if codes[i, j] >= 0 and blankable[i, j]:
                    codes[i, j] = -1
                    progressed = True
                    break
        if not progressed:  # nothing left to suppress: sdcMicro stops with the records still below k
            return codes


def measure(name: str, data: pd.DataFrame, quasi: list[str], give_up_fields: list[str], repeats: int) -> list[dict]:
    students = pd.Index(pd.unique(data["student_id"].astype(str)))
    years = sorted(pd.unique(data["school_year"]))
    row_student = students.get_indexer(data["student_id"].astype(str))
    row_year = pd.Index(years).get_indexer(data["school_year"])
    frame = data.copy()
    for q in quasi:
        frame[q] = frame[q].astype(object).where(frame[q].notna(), "").astype(str)
    codes, blankable, columns, _ = _joined_record(frame, quasi, row_student, row_year, len(students), len(years))
    rank = {q: i for i, q in enumerate(give_up_fields)}
    weights = np.array([1.0 + rank[q] for q, _ in columns])
    give_up = sorted(range(len(columns)), key=lambda j: rank[columns[j][0]])
    values = int(blankable.sum())
    rows = []
    for method in ("workbench", "sdcMicro-style local suppression"):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            if method == "workbench":
                out, removed = suppress_to_k(codes, blankable, weights, K)
            else:
                out, removed = sdcmicro_local_suppression(codes, blankable, give_up, K), np.zeros(len(codes), bool)
            times.append(time.perf_counter() - start)
        kept = ~removed
        withheld = int(((out == -1) & blankable)[kept].sum())
        safe = class_sizes(out[kept])
        forward = forward_frequencies(out[kept])
        rows.append({
            "extract": name, "method": method, "students": len(codes), "columns": len(columns),
            "quasi_identifier_values": values, "withheld": withheld,
            "withheld_share": round(withheld / values, 4) if values else 0.0,
            "students_removed": int(removed.sum()),
            "below_k_blanks_as_values": int((safe < K).sum()), "below_k_sdcmicro_count": int((forward < K).sum()),
            "seconds_median": round(statistics.median(times), 3), "runs": repeats,
            "per_field": {q: int(sum(((out[:, j] == -1) & blankable[:, j])[kept].sum() for j, (c, _) in enumerate(columns) if c == q))
                          for q in quasi},
        })
    return rows


def demo_extract() -> tuple[pd.DataFrame, list[str], list[str]]:
    from workbench.report import RequestContext
    from workbench.report.student_level import extract_plan
    from workbench.schema import write_warehouse
    from workbench.synthetic import generate_district

    warehouse = ROOT / "data" / "generated" / "district.duckdb"
    if not warehouse.exists():
        write_warehouse(warehouse, generate_district())
    ctx = RequestContext.open(ROOT / "data" / "requests" / "demo" / "research_extract.yml", "bps", "2026-06-01",
                              None, warehouse=str(warehouse))
    plan = extract_plan(ctx)
    fields = []
    for column in plan.give_up:
        if column not in fields:
            fields.append(column)
    return plan.data, plan.quasi, fields


def synthetic_extract(students: int, seed: int = 5) -> tuple[pd.DataFrame, list[str], list[str]]:
    rng = np.random.default_rng(seed)
    base = pd.DataFrame({
        "student_id": [f"{i:07d}" for i in rng.choice(10_000_000, students, replace=False)],
        "gender": rng.choice(["F", "M", "X"], students, p=[0.49, 0.49, 0.02]),
        "race_ethnicity": rng.choice(["H", "B", "W", "A", "N", "T"], students, p=[0.38, 0.3, 0.15, 0.1, 0.02, 0.05]),
        "grade0": rng.integers(0, 4, students),
        "english_learner": rng.random(students) < 0.2,
    })
    frames = []
    for y in range(2):
        year = base[rng.random(students) < 0.92].copy()
        year["school_year"] = f"{2024 + y}-{2025 + y}"
        year["grade"] = (year.pop("grade0") + y).astype(str)
        year["disability"] = rng.random(len(year)) < 0.15
        year["enrollment"] = np.where(rng.random(len(year)) < 0.04, "part year", "full year")
        frames.append(year)
    quasi = ["grade", "gender", "race_ethnicity", "english_learner", "disability", "enrollment"]
    give_up = ["race_ethnicity", "enrollment", "gender", "disability", "english_learner", "grade"]
    return pd.concat(frames, ignore_index=True), quasi, give_up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run each, small synthetic extract only")
    args = parser.parse_args()
    repeats = 1 if args.quick else 3
    rows = []
    if not args.quick:
        rows += measure("demo research extract (bps, 2 years)", *demo_extract(), repeats=repeats)
    for n in ((400,) if args.quick else (400, 1500)):
        rows += measure(f"synthetic, {n} students, 2 years", *synthetic_extract(n), repeats=repeats)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "extract.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        "# De-identified extracts: information loss at k = 10",
        "",
        "`python benchmarks/extract_benchmark.py` (same joined record and importance order for both methods).",
        "",
        "| extract | method | students | QI values | withheld | share | removed | below k (blanks as values) | below k (sdcMicro count) | seconds (median) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['extract']} | {r['method']} | {r['students']} | {r['quasi_identifier_values']} | {r['withheld']} | "
                     f"{100 * r['withheld_share']:.1f}% | {r['students_removed']} | {r['below_k_blanks_as_values']} | "
                     f"{r['below_k_sdcmicro_count']} | {r['seconds_median']} |")
    lines += ["", "Withheld values per field:", ""]
    for r in rows:
        lines.append(f"- {r['extract']}, {r['method']}: " + ", ".join(f"{q} {n}" for q, n in r["per_field"].items()))
    lines += [
        "",
        "`below k (blanks as values)`: records that fewer than k records match exactly, blanks included; a recipient",
        "who knows the students of the cohort can narrow such a record to fewer than k of them.",
        "`below k (sdcMicro count)`: the same with sdcMicro's own frequency (a blank matches anything).",
    ]
    (RESULTS / "extract.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
