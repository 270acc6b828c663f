"""A school report's tables on a 1M-student district: our measures against hand-written DuckDB SQL.

    .venv/bin/python benchmarks/district_report_benchmark.py [--warehouse PATH] [--students 1000000]
                                                             [--repeats 3]

The tables of the demo school report (workbench/templates/school_report.ipynb) for the district's
largest school in the latest year: every measure (attendance rate, chronic absence, behavior
incident, course failure, assessment benchmark by subject, and the enrolled counts) by grade, by
race/ethnicity, by English learner and by disability, each beside the whole district, and chronic
absence by grade x race/ethnicity. Two ways, each on a fresh connection, medians of --repeats:

1. ours: `workbench.measures.compute`, called as `build_table` calls it (facts once per
   connection as a temporary table, one aggregation per breakdown);
2. the peer: one hand-written DuckDB script (a temporary facts table, then one GROUPING SETS
   query per population) over the same warehouse file and the same cohort.

Every number of every table is checked equal before any time is reported. Protection is not
timed (it is the same work after either). The warehouse is generated when missing (the
generation time is reported). Results: benchmarks/results/district_report.md and .json.
"""

from __future__ import annotations

import argparse
import json
import platform
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
BREAKDOWNS = ["grade", "race_ethnicity", "english_learner", "disability"]
MEASURES = ["attendance_rate", "chronic_absence", "behavior_incident", "course_failure", "assessment_benchmark"]
DETAIL = ("chronic_absence", ["grade", "race_ethnicity"])

# The measures of docs/measures.md, written by hand for DuckDB.
FACTS_SQL = """
CREATE TEMP TABLE facts AS
WITH days AS (
    SELECT student_id, school_year, school_id, sum(days_enrolled) AS days_enrolled
    FROM attendance WHERE school_year = $year GROUP BY ALL),
entries AS (
    SELECT student_id, school_year, school_id, max(entry_date) AS last_entry
    FROM enrollments WHERE school_year = $year GROUP BY ALL),
record AS (
    SELECT d.student_id, d.school_year, d.school_id FROM days d JOIN entries e USING (student_id, school_year, school_id)
    QUALIFY row_number() OVER (PARTITION BY d.student_id, d.school_year
                               ORDER BY d.days_enrolled DESC, e.last_entry DESC, d.school_id) = 1),
totals AS (
    SELECT student_id, school_year, sum(days_enrolled) AS days_enrolled, sum(days_absent) AS days_absent
    FROM attendance WHERE school_year = $year GROUP BY ALL),
incidents AS (SELECT student_id, school_year, count(*) AS n FROM behavior_incidents WHERE school_year = $year GROUP BY ALL),
marks AS (
    SELECT student_id, school_year, count(*) AS n, count(*) FILTER (WHERE mark = 'F') AS failing
    FROM course_marks WHERE school_year = $year GROUP BY ALL),
tests AS (
    SELECT student_id, school_year,
           count(*) FILTER (WHERE subject = 'ELA') AS tested_ela,
           count(*) FILTER (WHERE subject = 'ELA' AND meets_benchmark) AS meets_ela,
           count(*) FILTER (WHERE subject = 'Math') AS tested_math,
           count(*) FILTER (WHERE subject = 'Math' AND meets_benchmark) AS meets_math
    FROM assessments WHERE school_year = $year GROUP BY ALL)
SELECT r.student_id, r.school_year, y.grade, s.race_ethnicity, y.english_learner, y.disability,
       coalesce(t.days_enrolled, 0) AS days_enrolled, coalesce(t.days_absent, 0) AS days_absent,
       coalesce(t.days_enrolled, 0) >= 10 AS chronic_eligible,
       coalesce(t.days_enrolled, 0) >= 10 AND coalesce(t.days_absent, 0) >= coalesce(t.days_enrolled, 0) * 0.1
           AS chronically_absent,
       coalesce(i.n, 0) > 0 AS any_incident, coalesce(m.n, 0) > 0 AS has_marks, coalesce(m.failing, 0) > 0 AS any_failure,
       coalesce(a.tested_ela, 0) > 0 AS tested_ela, coalesce(a.meets_ela, 0) > 0 AS meets_ela,
       coalesce(a.tested_math, 0) > 0 AS tested_math, coalesce(a.meets_math, 0) > 0 AS meets_math,
       r.student_id IN (SELECT student_id FROM cohort) AS in_cohort
FROM record r
JOIN student_years y USING (student_id, school_year)
JOIN students s USING (student_id)
LEFT JOIN totals t USING (student_id, school_year)
LEFT JOIN incidents i USING (student_id, school_year)
LEFT JOIN marks m USING (student_id, school_year)
LEFT JOIN tests a USING (student_id, school_year)
"""

TABLES_SQL = """
SELECT grade, race_ethnicity, english_learner, disability,
       grouping(grade, race_ethnicity, english_learner, disability) AS grouping_id,
       count(DISTINCT student_id) AS enrolled,
       count(DISTINCT student_id) FILTER (WHERE days_enrolled > 0) AS attendance_students,
       sum(days_enrolled) FILTER (WHERE days_enrolled > 0) AS days_enrolled,
       sum(days_absent) FILTER (WHERE days_enrolled > 0) AS days_absent,
       count(DISTINCT student_id) FILTER (WHERE chronic_eligible) AS chronic_eligible,
       count(DISTINCT student_id) FILTER (WHERE chronic_eligible AND chronically_absent) AS chronically_absent,
       count(DISTINCT student_id) FILTER (WHERE any_incident) AS any_incident,
       count(DISTINCT student_id) FILTER (WHERE has_marks) AS has_marks,
       count(DISTINCT student_id) FILTER (WHERE has_marks AND any_failure) AS any_failure,
       count(DISTINCT student_id) FILTER (WHERE tested_ela) AS tested_ela,
       count(DISTINCT student_id) FILTER (WHERE tested_ela AND meets_ela) AS meets_ela,
       count(DISTINCT student_id) FILTER (WHERE tested_math) AS tested_math,
       count(DISTINCT student_id) FILTER (WHERE tested_math AND meets_math) AS meets_math
FROM facts {where}
GROUP BY GROUPING SETS ((grade), (race_ethnicity), (english_learner), (disability){detail})
"""

# The hand-written columns each measure's (students, count) come from, as in docs/measures.md.
COLUMNS = {
    "enrolled": ("enrolled", "enrolled"),
    "attendance_rate": ("attendance_students", None),
    "chronic_absence": ("chronic_eligible", "chronically_absent"),
    "behavior_incident": ("enrolled", "any_incident"),
    "course_failure": ("has_marks", "any_failure"),
    "assessment_benchmark/ELA": ("tested_ela", "meets_ela"),
    "assessment_benchmark/Math": ("tested_math", "meets_math"),
}


def ensure_warehouse(path: Path, students: int) -> float | None:
    if path.exists():
        return None
    started = time.perf_counter()
    subprocess.run([str(Path(sys.executable).parent / "workbench"), "data", "generate", "--students", str(students),
                    "--out", str(path), "--quiet"], check=True)
    return time.perf_counter() - started


def latest_year_and_cohort(path: Path) -> tuple[str, list[str], str]:
    from workbench.cohort import members_by_year
    from workbench.measures import school_of_record
    from workbench.warehouse import connect

    con = connect(path)
    year = max(con.table("student_years").select("school_year").distinct().to_pandas()["school_year"])
    record = school_of_record(con, [year])
    sizes = record.group_by("school_id").aggregate(n=record.student_id.count()).order_by(["n", "school_id"]).to_pandas()
    school = sizes["school_id"].iloc[-1]
    cohort = sorted(members_by_year(con, [year], school=school)[year])
    con.disconnect()
    return year, cohort, school


def ours(path: Path, year: str, cohort: list[str]) -> tuple[float, dict]:
    """The report's tables through workbench.measures, as build_table asks for them."""
    from workbench.measures import compute, prepare_facts, release_facts
    from workbench.warehouse import connect

    started = time.perf_counter()
    con = connect(path)
    cells = {}

    def take(frame, population, breakdowns, measure):
        for row in frame.itertuples(index=False):
            record = row._asdict()
            key = tuple(record[b] for b in breakdowns)
            name = measure + (f"/{record['subject']}" if "subject" in record else "")
            count = None if measure == "attendance_rate" else int(record["count"])
            extra = (int(record["days_enrolled"]), int(record["days_absent"])) if measure == "attendance_rate" else ()
            cells[(population, tuple(breakdowns), key, name)] = (int(record["students"]), count, *extra)

    for breakdowns in [[b] for b in BREAKDOWNS] + [DETAIL[1]]:
        prepare_facts(con, [year], cohort, district=len(breakdowns) == 1)
        measures = ["enrolled", *MEASURES] if len(breakdowns) == 1 else ["enrolled", DETAIL[0]]
        for measure in measures:
            take(compute(con, measure, [year], breakdowns, cohort), "cohort", breakdowns, measure)
            if len(breakdowns) == 1 and measure != "enrolled":
                take(compute(con, measure, [year], breakdowns, None), "district", breakdowns, measure)
    seconds = time.perf_counter() - started
    release_facts(con)
    con.disconnect()
    return seconds, cells


def hand_written(path: Path, year: str, cohort: list[str]) -> tuple[float, dict]:
    import duckdb
    import pandas as pd

    started = time.perf_counter()
    con = duckdb.connect(str(path), read_only=True)
    con.register("cohort_ids", pd.DataFrame({"student_id": pd.Series(cohort, dtype="string")}))
    con.execute("CREATE TEMP TABLE cohort AS SELECT student_id FROM cohort_ids")
    con.execute(FACTS_SQL.replace("$year", f"'{year}'"))
    district = con.execute(TABLES_SQL.format(where="", detail="")).df()
    mine = con.execute(TABLES_SQL.format(where="WHERE in_cohort", detail=", (grade, race_ethnicity)")).df()
    seconds = time.perf_counter() - started
    con.close()
    cells = {}
    names = ["grade", "race_ethnicity", "english_learner", "disability"]
    for population, frame in (("district", district), ("cohort", mine)):
        for record in frame.to_dict("records"):
            breakdowns = [n for i, n in enumerate(names) if not (record["grouping_id"] >> (len(names) - 1 - i)) & 1]
            key = tuple(record[b] for b in breakdowns)
            for name, (students, count) in COLUMNS.items():
                measure = name.split("/")[0]
                if population == "district" and measure == "enrolled":
                    continue
                if len(breakdowns) == 2 and measure not in ("enrolled", DETAIL[0]):
                    continue
                if record[students] == 0:
                    continue  # no such students in the group: the group has no row
                extra = ((int(record["days_enrolled"]), int(record["days_absent"]))
                         if measure == "attendance_rate" else ())
                cells[(population, tuple(breakdowns), key, name)] = (
                    int(record[students]), None if count is None else int(record[count]), *extra)
    return seconds, cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", type=Path, default=ROOT / "data" / "generated" / "district-1m.duckdb")
    parser.add_argument("--students", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    generated = ensure_warehouse(args.warehouse, args.students)
    year, cohort, school = latest_year_and_cohort(args.warehouse)
    ours_runs, peer_runs = [], []
    for _ in range(args.repeats):  # alternated, so that both see the same machine load
        seconds, our_cells = ours(args.warehouse, year, cohort)
        ours_runs.append(seconds)
        seconds, peer_cells = hand_written(args.warehouse, year, cohort)
        peer_runs.append(seconds)
        if our_cells != peer_cells:
            differing = sorted(set(our_cells.items()) ^ set(peer_cells.items()), key=str)[:5]
            raise SystemExit(f"the two ways give different tables, e.g. {differing}")
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "warehouse": str(args.warehouse.name),
        "students_per_year": args.students,
        "generation_seconds": None if generated is None else round(generated, 1),
        "year": year, "school": school, "cohort": len(cohort), "cells_compared": len(our_cells),
        "repeats": args.repeats,
        "ours_seconds": round(statistics.median(ours_runs), 2),
        "hand_written_seconds": round(statistics.median(peer_runs), 2),
        "ratio": round(statistics.median(ours_runs) / statistics.median(peer_runs), 2),
        "ours_runs": [round(s, 2) for s in ours_runs], "hand_written_runs": [round(s, 2) for s in peer_runs],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "district_report.json").write_text(json.dumps(report, indent=2) + "\n")
    generation = (f"Generating it took {report['generation_seconds']} s." if generated is not None
                  else "It was generated beforehand (`workbench data generate --students N --out PATH`).")
    (RESULTS / "district_report.md").write_text(
        "# A school report's tables on a large district\n\n"
        f"Generated by `benchmarks/district_report_benchmark.py` on {report['machine']} (shared). "
        f"District of {args.students:,} students per year ({report['warehouse']}). {generation}\n\n"
        f"The demo school report's tables for school {school} ({len(cohort):,} students in {year}), each measure "
        "by grade, race/ethnicity, English learner and disability beside the whole district, and chronic "
        f"absence by grade x race/ethnicity: {report['cells_compared']:,} cells, equal both ways. Medians of "
        f"{args.repeats} alternated runs, each on a fresh connection.\n\n"
        "| way | seconds |\n|---|---:|\n"
        f"| `workbench.measures.compute`, as `build_table` calls it | {report['ours_seconds']} |\n"
        f"| hand-written DuckDB SQL (temp facts table + GROUPING SETS) | {report['hand_written_seconds']} |\n"
        f"| ratio (goal <= 1.2) | {report['ratio']} |\n\n"
        "Reproduce: `.venv/bin/python benchmarks/district_report_benchmark.py`\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
