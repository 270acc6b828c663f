"""Information loss of de-identified extracts: the workbench against sdcMicro-style local suppression.

    python benchmarks/extract_benchmark.py [--quick]

Writes benchmarks/results/extract.md and extract.json. Every method gets the same rows (one per
student and year), the same quasi-identifiers and importance order, at k = 10, and every output
is measured by the same code from the released values alone:

* information loss, per released value (row x quasi-identifier): 0 shown as it is, 1 withheld,
  (g - 1) / (d - 1) shown as a group of g of the field's d values in the extract
  (`workbench.disclosure.hierarchy.value_loss`); a removed row loses all its values.
  `changed` counts every value not shown as it is (withheld or grouped) as lost.
* records below k, blanks as values: records that fewer than k records of the joined multi-year
  record match exactly (the same values, the same blanks). The workbench's rule; a recipient who
  knows the cohort can narrow such a record to fewer than k students.
* records below k, sdcMicro's count: a blank matches any value (freqCalc with alpha = 1).

Methods:

* workbench: `protect_extract` with the pack's hierarchies: local recoding, each student's joined
  record shown at one level per field (`workbench/disclosure/recoding.py`);
* workbench, suppression only: the same search with no hierarchy (a value is shown or withheld);
* previous method: the cell-by-cell blank-safe greedy the workbench used before (still its
  fallback for very wide records), no hierarchies;
* sdcMicro-style local suppression. It follows sdcMicro's documented `localSuppression` (no
  Python package provides it): for every record whose frequency (a blank matching anything) is
  below k, the least important key variable still shown is suppressed, until every frequency is at
  least k.

A lower bound on the loss of any method that keeps the strict rule is computed too: a record can
show a choice of levels only if at least k records (itself included) agree with it there, so its
loss is at least that of its cheapest such choice. The bound ignores that records must also
agree with each other, so it is not reachable in general.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workbench.disclosure import WITHHELD, extract, protect_extract  # noqa: E402
from workbench.disclosure.extract import _joined_record, class_sizes  # noqa: E402
from workbench.disclosure.hierarchy import SUPPRESSION_ONLY, Hierarchy, value_loss  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
K = 10
ROW = "benchmark_row"  # carried through every method to line outputs up with the input


# -- the measure, the same for every method -------------------------------------------------

def released_loss(data: pd.DataFrame, released: pd.DataFrame, quasi: list[str],
                  hierarchies: dict[str, Hierarchy]) -> dict:
    """Loss of a released extract against its input, from the released values alone."""
    out = released.set_index(ROW).reindex(data[ROW])
    removed = out[quasi[0]].isna().to_numpy()
    per_field, changed = {}, 0
    for q in quasi:
        truth = data[q].astype(str).to_numpy()
        shown = out[q].astype(object).to_numpy()
        domain = sorted(set(truth))
        hierarchy = hierarchies.get(q, SUPPRESSION_ONLY)
        loss = np.zeros(len(data))
        for i, (value, label) in enumerate(zip(truth, shown)):
            if removed[i] or label == WITHHELD:
                loss[i] = 1.0
            elif label != value:
                level = next(lv for lv in range(1, hierarchy.withheld_level) if hierarchy.shown(value, lv) == label)
                loss[i] = value_loss([value], hierarchy, level, domain)[0]
        per_field[q] = round(float(loss.mean()), 4)
        changed += int((removed | (shown != truth)).sum())
    cells = len(data) * len(quasi)
    return {"loss_share": round(sum(per_field.values()) / len(quasi), 4), "changed_share": round(changed / cells, 4),
            "per_field": per_field, "rows_removed": int(removed.sum()), "values": cells}


def below_k(released: pd.DataFrame, quasi: list[str]) -> tuple[int, int]:
    """(records below k with blanks as values, records below k with sdcMicro's frequency)."""
    frame = released.copy()
    for q in quasi:
        frame[q] = frame[q].astype(str)
    students = pd.Index(pd.unique(frame["student_id"].astype(str)))
    years = sorted(pd.unique(frame["school_year"]))
    codes, _, columns, categories = _joined_record(frame, quasi, students.get_indexer(frame["student_id"].astype(str)),
                                                   pd.Index(years).get_indexer(frame["school_year"]), len(students), len(years))
    blank = np.zeros_like(codes, dtype=bool)
    for j, cats in enumerate(categories):
        if WITHHELD in cats:
            blank[:, j] = codes[:, j] == cats.index(WITHHELD)
    strict = int((class_sizes(codes) < K).sum())
    forward = forward_frequencies(np.where(blank, -1, codes))
    return strict, int((forward < K).sum())


def forward_frequencies(codes: np.ndarray) -> np.ndarray:
    """sdcMicro's fk with alpha = 1: records agreeing with r wherever both show a value."""
    blank = codes == -1
    out = np.zeros(len(codes), dtype=np.int64)
    for i in range(len(codes)):
        shown = ~blank[i]
        out[i] = ((codes[:, shown] == codes[i, shown]) | blank[:, shown]).all(axis=1).sum()
    return out


# -- the peer ---------------------------------------------------------------------------------

def _indexed_records(data: pd.DataFrame, quasi: list[str]):
    """A copy of the rows with the quasi-identifiers as text, each row's student and year index, and
    the joined multi-year records (`_joined_record`)."""
    frame = data.copy()
    for q in quasi:
        frame[q] = frame[q].astype(str)
    students = pd.Index(pd.unique(frame["student_id"].astype(str)))
    years = sorted(pd.unique(frame["school_year"]))
    row_student = students.get_indexer(frame["student_id"].astype(str))
    row_year = pd.Index(years).get_indexer(frame["school_year"])
    joined = _joined_record(frame, quasi, row_student, row_year, len(students), len(years))
    return frame, row_student, row_year, joined


def sdcmicro_local_suppression(data: pd.DataFrame, quasi: list[str], give_up: list[str], k: int) -> pd.DataFrame:
    """Suppress, record by record, the least important key variable still shown while its frequency
    (a blank matching anything) is below k; the joined record is the unit, as for the workbench."""
    frame, row_student, row_year, (codes, blankable, columns, _) = _indexed_records(data, quasi)
    rank = {q: i for i, q in enumerate(give_up)}
    order = sorted(range(len(columns)), key=lambda j: rank[columns[j][0]])
    codes = codes.copy()
    while True:
        unsafe = np.flatnonzero(forward_frequencies(codes) < k)
        progressed = False
        for i in unsafe:
            for j in order:
                if codes[i, j] >= 0 and blankable[i, j]:
                    codes[i, j] = -1
                    progressed = True
                    break
        if not progressed:  # nothing left to suppress: sdcMicro stops with the records still below k
            break
    for j, (q, year_index) in enumerate(columns):
        rows = np.flatnonzero(row_year == year_index) if year_index is not None else np.arange(len(frame))
        frame.loc[frame.index[rows[codes[row_student[rows], j] == -1]], q] = WITHHELD
    return frame


# -- the bound ----------------------------------------------------------------------------------

def lower_bound(data: pd.DataFrame, quasi: list[str], hierarchies: dict[str, Hierarchy], k: int) -> float:
    frame, row_student, row_year, (codes, blankable, columns, categories) = _indexed_records(data, quasi)
    presence = codes[:, -1]
    rows_of = np.bincount(row_student, minlength=len(codes))
    options = []  # per joined column: list of (codes at that level, loss per student)
    for j, (q, year_index) in enumerate(columns):
        hierarchy = hierarchies.get(q, SUPPRESSION_ONLY)
        values = np.array(categories[j], dtype=object)
        domain = sorted(set(frame[q]))
        present = codes[:, j] >= 0
        cells = np.where(present, rows_of if year_index is None else 1, 0)
        per_level = []
        for level in range(hierarchy.withheld_level + 1):
            labels = np.array([hierarchy.shown(v, level) for v in values], dtype=object)
            shown = np.where(present, pd.Index(pd.unique(labels)).get_indexer(labels)[np.maximum(codes[:, j], 0)], -2)
            loss = np.where(present, np.array(value_loss(list(values), hierarchy, level, domain))[np.maximum(codes[:, j], 0)], 0.0)
            per_level.append((shown, loss * cells))
        options.append(per_level)
    best = np.full(len(codes), np.inf)
    for choice in itertools.product(*(range(len(o)) for o in options)):
        key = pd.DataFrame({"p": presence, **{str(j): options[j][level][0] for j, level in enumerate(choice)}})
        agree = key.groupby(list(key.columns))["p"].transform("size").to_numpy()
        loss = sum(options[j][level][1] for j, level in enumerate(choice))
        best = np.where(agree >= k, np.minimum(best, loss), best)
    best = np.where(np.isinf(best), len(quasi) * rows_of, best)  # nobody agrees: the student is removed
    return round(float(best.sum()) / (len(frame) * len(quasi)), 4)


# -- the extracts -------------------------------------------------------------------------------

def demo_extract():
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
    return plan.data, plan.quasi, list(dict.fromkeys(plan.give_up)), plan.hierarchies


def synthetic_extract(students: int, seed: int = 5):
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
    hierarchies = {
        "race_ethnicity": Hierarchy.from_levels([{"Other": ["N", "T"]}, {"Not H": ["B", "W", "A", "N", "T"]}]),
        "grade": Hierarchy.from_levels([{"0-2": ["0", "1", "2"], "3-5": ["3", "4", "5"]}]),
    }
    return pd.concat(frames, ignore_index=True), quasi, give_up, hierarchies


# -- the run ------------------------------------------------------------------------------------

def measure(name: str, data: pd.DataFrame, quasi: list[str], give_up: list[str], hierarchies: dict[str, Hierarchy],
            repeats: int, bound: bool) -> list[dict]:
    data = data.reset_index(drop=True).assign(**{ROW: lambda f: [f"row {i}" for i in range(len(f))]})
    for q in quasi:
        data[q] = data[q].astype(str)

    def workbench(with_hierarchies: bool, budget: int = extract.RECODING_BUDGET):
        saved, extract.RECODING_BUDGET = extract.RECODING_BUDGET, budget
        try:
            out, _ = protect_extract(data, id_col="student_id", year_col="school_year", quasi=quasi, k=K,
                                     suppression_order=give_up, key=b"benchmark",
                                     hierarchies=hierarchies if with_hierarchies else None)
        finally:
            extract.RECODING_BUDGET = saved
        return out

    methods = [
        ("workbench: local recoding with the hierarchies", lambda: workbench(True)),
        ("workbench: local recoding, suppression only", lambda: workbench(False)),
        ("previous method: cell-by-cell suppression", lambda: workbench(False, budget=0)),
        ("sdcMicro-style local suppression", lambda: sdcmicro_local_suppression(data, quasi, give_up, K)),
    ]
    rows = []
    for method, run in methods:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            out = run()
            times.append(time.perf_counter() - start)
        loss = released_loss(data, out, quasi, hierarchies)
        strict, forward = below_k(out, quasi)
        rows.append({
            "extract": name, "method": method, "students": int(data["student_id"].nunique()), "rows": len(data),
            "quasi_identifier_values": loss["values"], "information_loss": loss["loss_share"],
            "changed": loss["changed_share"], "rows_removed": loss["rows_removed"],
            "below_k_blanks_as_values": strict, "below_k_sdcmicro_count": forward,
            "seconds_median": round(statistics.median(times), 3), "runs": repeats,
            "per_field": loss["per_field"],
        })
    if bound:
        for label, h in (("lower bound, suppression only", {}), ("lower bound, with the hierarchies", hierarchies)):
            start = time.perf_counter()
            value = lower_bound(data, quasi, h, K)
            rows.append({"extract": name, "method": label, "students": int(data["student_id"].nunique()), "rows": len(data),
                         "quasi_identifier_values": len(data) * len(quasi), "information_loss": value,
                         "seconds_median": round(time.perf_counter() - start, 3), "runs": 1})
    return rows


def variants(data, quasi, give_up, hierarchies) -> list[dict]:
    """The workbench on what a request could change: k, the fields asked, the years asked."""
    data = data.reset_index(drop=True).assign(**{ROW: lambda f: [f"row {i}" for i in range(len(f))]})
    for q in quasi:
        data[q] = data[q].astype(str)
    last_year = sorted(data["school_year"].unique())[-1]
    cases = [
        (f"as asked, k = {K}", data, quasi, K),
        ("k = 5", data, quasi, 5),
        (f"without race/ethnicity, k = {K}", data, [q for q in quasi if q != "race_ethnicity"], K),
        (f"one year ({last_year}), k = {K}", data[data["school_year"] == last_year], quasi, K),
    ]
    rows = []
    for label, rows_in, fields, k in cases:
        out, _ = protect_extract(rows_in, id_col="student_id", year_col="school_year", quasi=fields, k=k,
                                 suppression_order=[g for g in give_up if g in fields], key=b"benchmark",
                                 hierarchies={c: h for c, h in hierarchies.items() if c in fields})
        loss = released_loss(rows_in.reset_index(drop=True), out, fields, hierarchies)
        rows.append({"variant": label, "information_loss": loss["loss_share"], "per_field": loss["per_field"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run each, the small synthetic extract only")
    args = parser.parse_args()
    repeats = 1 if args.quick else 3
    rows, demo_variants = [], []
    if not args.quick:
        demo = demo_extract()
        rows += measure("demo research extract (bps, 2 years)", *demo, repeats=repeats, bound=True)
        demo_variants = variants(*demo)
    rows += measure("synthetic, 400 students, 2 years", *synthetic_extract(400), repeats=repeats, bound=not args.quick)
    if not args.quick:
        rows += measure("synthetic, 1500 students, 2 years", *synthetic_extract(1500), repeats=1, bound=False)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "extract.json").write_text(json.dumps({"methods": rows, "demo_variants": demo_variants}, indent=2) + "\n")
    lines = [
        "# De-identified extracts: information loss at k = 10",
        "",
        "`python benchmarks/extract_benchmark.py` (same rows, quasi-identifiers and importance order for every method;",
        "every output measured by the same code; see the script's docstring for the definitions).",
        "",
        "| extract | method | students | QI values | information loss | values changed | rows removed | below k (blanks as values) | below k (sdcMicro count) | seconds (median) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "changed" not in r:
            lines.append(f"| {r['extract']} | {r['method']} | {r['students']} | {r['quasi_identifier_values']} | "
                         f"{100 * r['information_loss']:.1f}% | | | | | {r['seconds_median']} |")
            continue
        lines.append(f"| {r['extract']} | {r['method']} | {r['students']} | {r['quasi_identifier_values']} | "
                     f"{100 * r['information_loss']:.1f}% | {100 * r['changed']:.1f}% | {r['rows_removed']} | "
                     f"{r['below_k_blanks_as_values']} | {r['below_k_sdcmicro_count']} | {r['seconds_median']} |")
    lines += ["", "Information loss per field (share of the field's released values):", ""]
    for r in rows:
        if "per_field" in r:
            lines.append(f"- {r['extract']}, {r['method']}: "
                         + ", ".join(f"{q} {100 * v:.1f}%" for q, v in r["per_field"].items()))
    if demo_variants:
        lines += ["", "The workbench on the demo research extract, changed as a request could change it:", "",
                  "| request | information loss | per field |", "|---|---:|---|"]
        for v in demo_variants:
            lines.append(f"| {v['variant']} | {100 * v['information_loss']:.1f}% | "
                         + ", ".join(f"{q} {100 * x:.1f}%" for q, x in v["per_field"].items()) + " |")
    lines += [
        "",
        "`information loss`: per released value, 0 shown as it is, 1 withheld (or its row removed), (g - 1) / (d - 1)",
        "shown as a group of g of the field's d values. `values changed`: every value not shown as it is counts 1.",
        "`below k (blanks as values)`: records that fewer than k records match exactly, blanks included; a recipient",
        "who knows the students of the cohort can narrow such a record to fewer than k of them.",
        "`below k (sdcMicro count)`: the same with sdcMicro's own frequency (a blank matches anything).",
        "`lower bound`: no method that keeps every record among k identical ones can lose less (see the script).",
    ]
    (RESULTS / "extract.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
