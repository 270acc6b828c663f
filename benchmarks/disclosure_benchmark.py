"""Benchmark: table protection speed and quality against peer tools, every output audited by us.

    .venv/bin/python benchmarks/disclosure_benchmark.py [--quick]
    .venv/bin/python benchmarks/disclosure_benchmark.py --tau-only --tables 2,3   # information loss, ~2 min
    .venv/bin/python benchmarks/disclosure_benchmark.py --quick --tables 4         # 4-way speed, ~3 min

Tables come from a small self-contained synthetic district (numpy, fixed seed): about 200,000
students in ~40 regular schools (K-5, K-8, 6-8, 9-12) plus three very small schools, uneven
race shares like an urban district, genders F/M/X. From it: school x grade (2-way), school x
grade x race (3-way), school x grade x race x gender (4-way).

Tools, each on each table, all under the NCES rule (groups of fewer than 10 students):
  * workbench   our protect_tables, default rule (hidden-sum rule on), audit in proof mode and
                exact mode; and with the hidden-sum rule off (the rule the peers apply);
  * naive       primary suppression plus "also hide the next-smallest cell in the row";
  * tau-Argus   pytauargus (native engine in the wheel), Modular, FREQ(10,0), and its audit;
  * ACRO        acro in suppress mode (a separate virtualenv: it needs pandas < 3);
  * DAR-T       dar-tool's DataAnonymizer.
Peers run in subprocesses with a 10-minute limit. For every output we run OUR audit
(workbench.disclosure.audit_published_table, exact intervals) and count exactly disclosed cells.
Results: benchmarks/results/disclosure.md and disclosure.json (full run),
disclosure-information-loss.* (--tau-only) and disclosure-speed.* (--tables 4).
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
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workbench.disclosure import SmallGroupRule, audit_published_table, protect_tables  # noqa: E402
from workbench.disclosure.table import CountTable  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
PEER_TIMEOUT = 600
ACRO_VENV = Path(os.environ.get("WORKBENCH_ACRO_VENV", Path.home() / ".cache" / "workbench-bench" / "acro-venv"))
ACRO_VERSION = "1.0.2"

RACES = ("Hispanic", "Black", "White", "Asian", "Two or more", "American Indian", "Pacific Islander")
RACE_SHARES = np.array([0.42, 0.30, 0.14, 0.09, 0.04, 0.006, 0.004])
GENDERS = ("F", "M", "X")
GENDER_SHARES = np.array([0.4975, 0.4975, 0.005])
SPANS = {"K-5": (0, 5), "K-8": (0, 8), "6-8": (6, 8), "9-12": (9, 12)}
LEVEL_COUNTS = {"K-5": 20, "K-8": 5, "6-8": 7, "9-12": 6}
SMALL_SCHOOLS = ((9, 12, 70), (6, 12, 45), (0, 12, 25))
TABLES = {
    "2-way school x grade": ["school", "grade"],
    "3-way school x grade x race": ["school", "grade", "race"],
    "4-way school x grade x race x gender": ["school", "grade", "race", "gender"],
}


def synthetic_counts(students: int = 200_000, seed: int = 20261122) -> pd.DataFrame:
    """Inner counts school x grade x race x gender (non-zero combinations only)."""
    rng = np.random.default_rng(seed)
    spans = [SPANS[level] for level, n in LEVEL_COUNTS.items() for _ in range(n)]
    size = rng.lognormal(0.0, 0.35, len(spans)) * np.array([b - a + 1 for a, b in spans])
    regular = students - sum(n for *_, n in SMALL_SCHOOLS)
    enrolled = rng.multinomial(regular, size / size.sum())
    schools = [(f"S{i:02d}", a, b, n) for i, ((a, b), n) in enumerate(zip(spans, enrolled))]
    schools += [(f"Small {i + 1}", a, b, n) for i, (a, b, n) in enumerate(SMALL_SCHOOLS)]
    rows = []
    for name, first, last, n in schools:
        grades = np.arange(first, last + 1)
        # Each school's mix differs from the district's (neighbourhoods differ).
        race_mix = rng.dirichlet(RACE_SHARES * 60)
        per_grade = rng.multinomial(n, np.full(len(grades), 1 / len(grades)))
        for grade, in_grade in zip(grades, per_grade):
            cells = rng.multinomial(in_grade, np.outer(race_mix, GENDER_SHARES).ravel())
            for k, count in enumerate(cells):
                if count:
                    rows.append((name, "K" if grade == 0 else str(grade), RACES[k // 3], GENDERS[k % 3], count))
    return pd.DataFrame(rows, columns=["school", "grade", "race", "gender", "n"])


def long_table(counts: pd.DataFrame, dims: list[str]) -> pd.DataFrame:
    table = CountTable.from_frame(counts.groupby(dims, as_index=False)["n"].sum(), dims, "n")
    frame = table.labels()
    frame["true"] = table.counts.reshape(-1)
    return frame


def audit(published: pd.DataFrame, dims: list[str], truth: pd.DataFrame | None = None) -> dict:
    started = time.perf_counter()
    # Some tools pad their labels (tau-Argus writes " 1"); compare labels without the padding.
    published = published.assign(**{d: published[d].astype(str).str.strip() for d in dims})
    # Proof mode settles exactly which cells are disclosed (their intervals are then exact).
    checked = audit_published_table(published[[*dims, "value"]], dims, intervals="proof")
    exact = checked.intervals[checked.intervals["exact"]]
    nonzero = len(exact)
    if truth is not None and len(exact):
        # A hidden zero pinned at 0 counts as a disclosure too; this column separates the two.
        merged = exact.astype({d: str for d in dims}).merge(truth[[*dims, "true"]], on=dims, how="left")
        nonzero = int((merged["true"] > 0).sum())
    hidden_students = None
    if truth is not None:
        inner = truth[~(truth[dims] == "Total").any(axis=1)][[*dims, "true"]]
        shown = published[[*dims, "value"]].astype({d: str for d in dims})
        merged = inner.astype({d: str for d in dims}).merge(shown, on=dims, how="left")
        hidden_students = int(merged.loc[merged["value"].isna(), "true"].sum())
    return {
        "students_hidden": hidden_students,
        "our_audit_exact_disclosures": checked.exactly_disclosed,
        "exact_nonzero_cells": nonzero,
        "our_audit_seconds": round(time.perf_counter() - started, 3),
        "suppressed_cells": int(published["value"].isna().sum()),
    }


# --- our tool -----------------------------------------------------------------------------


def run_workbench(counts, dims, *, intervals: str, hidden_sums: bool, repeats: int, costs: str = "students",
                  prune: bool | None = None) -> dict:
    frame = counts.groupby(dims, as_index=False)["n"].sum()
    rule = SmallGroupRule(protect_hidden_sums=hidden_sums)
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = protect_tables(frame, dims, "n", rule, intervals=intervals, costs=costs, prune=prune)
        times.append(time.perf_counter() - started)
    summary = result.summary()
    published = result.cells
    out = {
        "seconds": round(statistics.median(times), 3),
        "runs": repeats,
        "primary": summary["primary"],
        "secondary": summary["secondary"],
        "students_hidden_in_inner_cells": summary["students_hidden_in_inner_cells"],
        "safe_by_own_audit": summary["safe"],
        "lp_count": summary["lp_count"],
        "protect_seconds": round(result.timings["secondary"], 3),
        "audit_seconds": round(result.timings["audit"], 3),
        "prune_seconds": round(result.timings.get("prune", 0.0), 3),
        "rounds": summary["rounds"],
    }
    out.update(audit(published, dims, long_table(counts, dims)))
    return out


def run_naive(counts, dims, rule=SmallGroupRule()) -> dict:
    """Primary cells plus, for each, the next-smallest non-zero cell of its row (last dimension)."""
    started = time.perf_counter()
    table = long_table(counts, dims)
    values = table["true"].to_numpy()
    small = np.array([v > 0 and rule.is_small(int(v)) for v in values])
    hidden = small.copy()
    last = dims[-1]
    row_keys = table[dims[:-1]].astype(str).agg("|".join, axis=1) if len(dims) > 1 else pd.Series([""] * len(table))
    for _, idx in table.groupby(row_keys.to_numpy()).groups.items():
        idx = np.asarray(idx)
        inner = idx[(table.loc[idx, last] != "Total").to_numpy()]
        for cell in inner[small[inner]]:
            options = [i for i in inner if not hidden[i] and values[i] > 0]
            if options:
                hidden[min(options, key=lambda i: values[i])] = True
    published = table[dims].copy()
    published["value"] = pd.array(np.where(hidden, 0, values), dtype="Int64")
    published.loc[hidden, "value"] = pd.NA
    seconds = time.perf_counter() - started
    out = {"seconds": round(seconds, 3), "runs": 1, "primary": int(small.sum()), "secondary": int(hidden.sum() - small.sum())}
    out.update(audit(published, dims, table))
    return out


# --- peers, each in a subprocess -------------------------------------------------------------

TAU_SCRIPT = """
import json, sys, time
import pandas as pd
import pytauargus
counts = pd.read_csv(sys.argv[1], dtype={"n": int}, keep_default_na=False)
dims = sys.argv[2].split(",")
records = counts.loc[counts.index.repeat(counts["n"]), dims].reset_index(drop=True).astype(str)
records["one"] = 1
started = time.perf_counter()
result = pytauargus.protect(records, dims, "one", safety_rules="FREQ(10,0)", suppress="MOD(1)")
protect_seconds = time.perf_counter() - started
started = time.perf_counter()
audit_rows = result.engine.audit(0)
audit_seconds = time.perf_counter() - started
table = result.tables[0].dataframe()
table["status"].value_counts().to_json(sys.argv[3] + ".status.json")
out = table[dims].copy()
hidden = table["status"].isin(["U", "M", "D"]).to_numpy()
out["value"] = pd.array(table["freq"].astype(int), dtype="Int64")
out.loc[hidden, "value"] = pd.NA
out.to_csv(sys.argv[3], index=False)
print(json.dumps({"protect_seconds": protect_seconds, "own_audit_seconds": audit_seconds,
                  "own_audit_cells": len(audit_rows),
                  "primary": int((table["status"] == "U").sum()),
                  "secondary": int(table["status"].isin(["M", "D"]).sum()),
                  "version": pytauargus.__version__}))
"""

ACRO_SCRIPT = """
import contextlib, io, json, sys, time
import pandas as pd
from acro import ACRO
counts = pd.read_csv(sys.argv[1], dtype={"n": int}, keep_default_na=False)
dims = sys.argv[2].split(",")
records = counts.loc[counts.index.repeat(counts["n"]), dims].reset_index(drop=True).astype(str)
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    session = ACRO(suppress=True)
    started = time.perf_counter()
    index = [records[d] for d in dims[:-1]] if len(dims) > 1 else records[dims[0]]
    columns = records[dims[-1]] if len(dims) > 1 else pd.Series(["all"] * len(records), name="_")
    table = session.crosstab(index, columns, margins=True, margins_name="Total")
    seconds = time.perf_counter() - started
long = table.stack(future_stack=True).rename("value").reset_index() if len(dims) > 1 else table.reset_index()
long.columns = [*dims, "value"]
long.to_csv(sys.argv[3], index=False)
from importlib.metadata import version
print(json.dumps({"protect_seconds": seconds, "version": version("acro")}))
"""

DART_SCRIPT = """
import contextlib, io, json, logging, sys, time
import pandas as pd
logging.disable(logging.CRITICAL)
from dar_tool.suppression_check import DataAnonymizer
table = pd.read_csv(sys.argv[1], dtype=str, keep_default_na=False)
dims = sys.argv[2].split(",")
table["value"] = table["true"].astype(int)
frame = table[[*dims, "value"]].copy()
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    started = time.perf_counter()
    tool = DataAnonymizer(frame, child_organization=dims[0], sensitive_columns=dims[1:] or None,
                          frequency="value", minimum_threshold=10)
    redacted = tool.apply_anonymization()
    seconds = time.perf_counter() - started
flag = [c for c in redacted.columns if "redact" in c.lower()]
out = redacted[[*dims, "value"]].copy()
hidden = redacted[flag].astype(str).apply(lambda s: s.str.lower().isin(["1", "true", "yes"])).any(axis=1) if flag else out["value"].isna()
out["value"] = pd.array(pd.to_numeric(out["value"], errors="coerce").round().astype("Int64"))
out.loc[hidden.to_numpy(), "value"] = pd.NA
out.to_csv(sys.argv[3], index=False)
from importlib.metadata import version
print(json.dumps({"protect_seconds": seconds, "flag_columns": flag, "version": version("dar-tool")}))
"""


def run_peer(name: str, python: Path, script: str, input_csv: Path, dims: list[str], workdir: Path) -> dict:
    out_csv = workdir / f"{name}.csv"
    script_path = workdir / f"{name}_peer.py"
    script_path.write_text(textwrap.dedent(script))
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            [str(python), str(script_path), str(input_csv), ",".join(dims), str(out_csv)],
            capture_output=True,
            text=True,
            timeout=PEER_TIMEOUT,
            cwd=workdir,
        )
    except subprocess.TimeoutExpired:
        return {"status": f"did not finish in {PEER_TIMEOUT // 60} minutes"}
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        return {"status": f"failed: {last[:200]}"}
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    published = pd.read_csv(out_csv, dtype={d: str for d in dims}, keep_default_na=False, na_values=[""])
    published["value"] = pd.array(published["value"], dtype="Int64")
    result = {"status": "ok", "seconds": round(info.pop("protect_seconds"), 3), "wall_seconds": round(wall, 3)}
    result.update({k: v for k, v in info.items()})
    return published, result


def acro_python() -> Path | None:
    python = ACRO_VENV / "bin" / "python"
    if not python.exists():
        try:
            subprocess.run([sys.executable, "-m", "venv", str(ACRO_VENV)], check=True, capture_output=True)
            subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"acro=={ACRO_VERSION}"], check=True,
                           capture_output=True, timeout=900)
        except (subprocess.SubprocessError, OSError):
            return None
    return python


def peer_results(counts, dims, workdir: Path, only_tau: bool = False) -> dict:
    table = long_table(counts, dims)
    inner = counts.groupby(dims, as_index=False)["n"].sum()
    inner_csv = workdir / "inner.csv"
    inner.to_csv(inner_csv, index=False)
    long_csv = workdir / "long.csv"
    table.to_csv(long_csv, index=False)
    results = {}

    def finish(name, outcome, true_margins: bool = False):
        if isinstance(outcome, dict):
            results[name] = outcome
            return
        published, info = outcome
        if true_margins:
            # ACRO recomputes totals from what it kept; the district publishes its true totals
            # anyway, so audit ACRO's inner cells together with the true margins.
            merged = table[dims + ["true"]].merge(published, on=dims, how="left")
            is_margin = (table[dims] == "Total").any(axis=1).to_numpy()
            value = merged["value"].astype("Int64")
            value[is_margin] = merged.loc[is_margin, "true"].astype("Int64")
            published = merged[dims].assign(value=value)
            info["note"] = "audited with the district's true totals (ACRO's own totals leave out suppressed cells)"
        info.update(audit(published, dims, table))
        if "primary" not in info:
            info["primary"] = info["suppressed_cells"]  # one pass, no complementary cells
            info["secondary"] = 0
        results[name] = info

    try:
        import pytauargus  # noqa: F401

        finish("tau-Argus Modular", run_peer("tau", Path(sys.executable), TAU_SCRIPT, inner_csv, dims, workdir))
    except ImportError as exc:
        results["tau-Argus Modular"] = {"status": f"not available: {exc}"}
    if only_tau:
        return results
    python = acro_python()
    if python is None:
        results["ACRO"] = {"status": "not available: could not create a virtualenv with acro"}
    else:
        finish("ACRO", run_peer("acro", python, ACRO_SCRIPT, inner_csv, dims, workdir), true_margins=True)
    try:
        import dar_tool  # noqa: F401

        finish("DAR-T", run_peer("dart", Path(sys.executable), DART_SCRIPT, long_csv, dims, workdir))
    except ImportError as exc:
        results["DAR-T"] = {"status": f"not available: {exc}"}
    return results


# --- report -------------------------------------------------------------------------------


def markdown(report: dict) -> str:
    lines = [
        "# Disclosure benchmark",
        "",
        f"Generated by `benchmarks/disclosure_benchmark.py` on {report['machine']}"
        + (f", load average {report['load_average_at_start']} at the start (a shared machine)." if "load_average_at_start" in report else "."),
        f"Synthetic district: {report['students']:,} students, {report['schools']} schools, seed {report['seed']}. "
        "Rule: NCES, groups of fewer than 10 students. Times are medians of the runs shown.",
        "Every output is audited by our attacker (LPs; each cell settled as disclosed or not); `exact` counts suppressed cells it pins to one value, `exact, non-zero` those whose true count is not 0.",
        "",
        "| table | tool | seconds | runs | primary | secondary | suppressed | students hidden | exact (our audit) | exact, non-zero | note |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for table, tools in report["tables"].items():
        lines.append(f"| **{table}** ({tools['_cells']} cells) | | | | | | | | | | |")
        for tool, r in tools.items():
            if tool.startswith("_"):
                continue
            if r.get("status", "ok") != "ok":
                lines.append(f"| | {tool} | | | | | | | | | {r['status']} |")
                continue
            note = r.get("note", "")
            if "lp_count" in r:
                note = f"protect {r['protect_seconds']}s + audit {r['audit_seconds']}s, {r['lp_count']} LPs"
                if r.get("rounds"):
                    note += f", {r['rounds']} round{'s' if r['rounds'] > 1 else ''}"
                if r.get("prune_seconds"):
                    note += f" + dropping redundant cells {r['prune_seconds']}s"
            if "own_audit_seconds" in r:
                note = f"own audit {r['own_audit_seconds']:.2f}s"
            lines.append(
                f"| | {tool} | {r['seconds']} | {r.get('runs', 1)} | {r['primary']if 'primary' in r else ''} | "
                f"{r['secondary'] if 'secondary' in r else ''} | {r.get('suppressed_cells', '')} | "
                f"{'' if r.get('students_hidden') is None else format(r['students_hidden'], ',')} | {r['our_audit_exact_disclosures']} | "
                f"{r['exact_nonzero_cells']} | {note} |"
            )
    lines += ["", "Information lost relative to tau-Argus Modular (same rule: hidden-sum rule off, redundant cells published; Modular with cell values as costs):", ""]
    for table, ratio in report["ratio_vs_modular"].items():
        lines.append(f"- {table}: {ratio}")
    lines += [
        "",
        "Notes:",
        "- ACRO and DAR-T do not tell primary from complementary suppressions: their `primary` column counts every hidden cell.",
        "- A hidden zero that the attacker pins at 0 counts as an exact disclosure (the brief's rule: all siblings published zeros);",
        "  `exact, non-zero` counts only cells hiding at least one student.",
        "- `workbench (proof audit)` proves the guarantees (no exact disclosure, primary widths) and reports the proven part of",
        "  each interval; `workbench (exact intervals)` computes every suppressed cell's exact attacker interval.",
        "- tau-Argus runs in-process from the pytauargus wheel (its bundled native engine); its time includes building its tables from microdata.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the peers and the exact-interval runs")
    parser.add_argument("--tables", default="2,3,4", help="which tables by number of dimensions, e.g. 2,3")
    parser.add_argument("--tau-only", action="store_true",
                        help="of the peers, run tau-Argus Modular only, on the 2- and 3-way tables (a short run)")
    parser.add_argument("--report-only", action="store_true", help="rewrite disclosure.md from disclosure.json")
    args = parser.parse_args()
    if args.report_only:
        (RESULTS / "disclosure.md").write_text(markdown(json.loads((RESULTS / "disclosure.json").read_text())))
        return
    seed = 20261122
    counts = synthetic_counts(seed=seed)
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        # The machine is shared: its load says how far times stand from an idle machine.
        "load_average_at_start": round(os.getloadavg()[0], 2),
        "students": int(counts["n"].sum()),
        "schools": int(counts["school"].nunique()),
        "seed": seed,
        "tables": {},
        "ratio_vs_modular": {},
    }
    with tempfile.TemporaryDirectory(prefix="disclosure-bench-") as tmp:
        wanted = {int(k) for k in args.tables.split(",")}
        for name, dims in TABLES.items():
            if len(dims) not in wanted:
                continue
            print(f"== {name}", file=sys.stderr)
            n_cells = int(np.prod([counts[d].nunique() + 1 for d in dims]))
            big = len(dims) == 4
            tools: dict = {"_cells": n_cells}
            tools["workbench (proof audit)"] = run_workbench(
                counts, dims, intervals="proof", hidden_sums=True, repeats=3 if not big else 3
            )
            if not args.quick:
                tools["workbench (exact intervals)"] = run_workbench(
                    counts, dims, intervals="exact", hidden_sums=True, repeats=1 if big else 3
                )
            tools["workbench, hidden-sum rule off"] = run_workbench(
                counts, dims, intervals="proof", hidden_sums=False, repeats=1 if big else 3, prune=False
            )
            if not big:  # dropping redundant cells takes minutes on the 4-way pattern
                tools["workbench, hidden-sum rule off, redundant cells published"] = run_workbench(
                    counts, dims, intervals="proof", hidden_sums=False, repeats=1, prune=True
                )
            tools["previous method (margins kept)"] = run_workbench(
                counts, dims, intervals="proof", hidden_sums=True, repeats=1, costs="margins"
            )
            tools["naive next-smallest"] = run_naive(counts, dims)
            if args.tau_only and not big:
                workdir = Path(tmp) / name.split()[0]
                workdir.mkdir()
                tools.update(peer_results(counts, dims, workdir, only_tau=True))
            elif args.tau_only:
                tools["tau-Argus Modular"] = {"status": "not run: it did not finish the 4-way table in 10 minutes"}
            elif not args.quick:
                workdir = Path(tmp) / name.split()[0]
                workdir.mkdir()
                tools.update(peer_results(counts, dims, workdir))
            modular = tools.get("tau-Argus Modular", {})
            if modular.get("status", "ok") == "ok" and modular.get("secondary"):
                ours = tools.get("workbench, hidden-sum rule off, redundant cells published",
                                 tools["workbench, hidden-sum rule off"])
                report["ratio_vs_modular"][name] = (
                    f"cells suppressed {ours['suppressed_cells']} vs {modular['suppressed_cells']} = "
                    f"{ours['suppressed_cells'] / modular['suppressed_cells']:.2f}x; students hidden "
                    f"{ours['students_hidden']:,} vs {modular['students_hidden']:,} = "
                    f"{ours['students_hidden'] / max(modular['students_hidden'], 1):.2f}x"
                )
            report["tables"][name] = tools
            for tool, r in tools.items():
                if not tool.startswith("_"):
                    print(f"   {tool}: {r}", file=sys.stderr)
    RESULTS.mkdir(parents=True, exist_ok=True)
    # A partial run (some tables, or tau-Argus only) must not overwrite the full results.
    stem = "disclosure" if args.tables == "2,3,4" and not args.tau_only else "disclosure-information-loss"
    if args.tables == "4":
        stem = "disclosure-speed"
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (RESULTS / f"{stem}.md").write_text(markdown(report))
    print((RESULTS / f"{stem}.md").read_text())


if __name__ == "__main__":
    main()
