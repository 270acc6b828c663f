"""Decide once: what `workbench fill` releases is exactly what the decision granted.

Each case fills a real request through the guarded kernel on the demo district and reads the
released files as a recipient would. What may be in them is worked out here with SQL on the raw
warehouse tables (program tags, enrolments, consents), independently of the workbench's cohort,
plan and measure code. The contract: released students are a subset of the granted students per
year and level; released fields and years are the granted ones; the manifest's counts are the
rows and table totals actually released.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from workbench.fill import fill
from workbench.release.store import ReleaseStore

AS_OF = "2026-06-01"
PARTNER = {"name": "Morgan Lee", "organization": "Reading Partners Collaborative", "role": "community_partner",
           "partner_id": "P-04", "nda_id": "NDA-0004"}
PROGRAM, PROGRAM_SCHOOL = "PRG-007", "8106"
YEARS = ["2024-2025", "2025-2026"]


def _write_request(folder: Path, name: str, body: dict) -> Path:
    import yaml

    data = {"id": name, "received": "2026-05-18", "purpose": "contract test", "audience": "tests", **body}
    path = folder / f"{name}.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def sql(demo_warehouse):
    con = duckdb.connect(demo_warehouse, read_only=True)
    yield lambda query, *params: con.execute(query, list(params)).df()
    con.close()


@pytest.fixture(scope="module")
def filled(demo_warehouse, tmp_path_factory):
    folder = tmp_path_factory.mktemp("requests")
    store = ReleaseStore(tmp_path_factory.mktemp("releases"))

    def run(name: str, policy: str, body: dict):
        result = fill(_write_request(folder, name, body), policy, AS_OF, store=store, warehouse=demo_warehouse)
        manifest = json.loads((result.release.path / "manifest.json").read_text())
        return result.release.path, manifest

    return run


def _rows(folder: Path, pattern: str) -> dict[str, pd.DataFrame]:
    return {p.name: pd.read_csv(p, dtype=str, keep_default_na=False) for p in sorted(folder.glob(pattern))}


def _partner_students_at_school(sql, year: str) -> set[str]:
    """Students tagged to any of the partner's programs during `year` and enrolled at the school in it."""
    frame = sql("""
        SELECT DISTINCT t.student_id FROM program_students t
        JOIN programs p ON p.program_id = t.program_id
        JOIN enrollments e ON e.student_id = t.student_id AND e.school_year = ? AND e.school_id = ?
        WHERE p.partner_id = ?
    """, year, PROGRAM_SCHOOL, PARTNER["partner_id"])
    return set(frame["student_id"])


def test_a_school_cohort_extract_holds_only_the_partner_s_students(filled, sql):
    """The leak this fixes: a DMPS partner's de-identified extract of a whole school held every
    student of the school, not only those the decision granted (the partner's program students)."""
    folder, manifest = filled("CONTRACT-EXTRACT", "dmps", {
        "requester": PARTNER, "level": "deidentified", "years": YEARS,
        "cohort": {"school": PROGRAM_SCHOOL}, "fields": ["grade", "gender", "attendance"]})
    assert manifest["decision"]["level"] == "deidentified"
    extracts = _rows(folder / "data", "*.csv")
    assert extracts, "the extract must be released"
    school_size = int(sql("SELECT count(DISTINCT student_id) AS n FROM enrollments WHERE school_id = ? AND school_year = ?",
                          PROGRAM_SCHOOL, YEARS[-1])["n"].iloc[0])
    for year in YEARS:
        granted = manifest["plan"]["students_by_year"].get(year, {})
        rows = sum(len(frame) for name, frame in extracts.items() if year in name) + sum(
            int((frame["school_year"] == year).sum()) for frame in extracts.values() if "school_year" in frame)
        allowed = _partner_students_at_school(sql, year)
        assert rows <= len(allowed) < school_size
        assert rows <= sum(granted.values())
        assert manifest["released"], "the manifest records what was released"
    released_rows = sum(entry["rows"] for name, entry in manifest["released"].items() if name.endswith(".csv"))
    assert released_rows == sum(len(frame) for frame in extracts.values())


def test_a_program_roster_lists_only_consented_program_students(filled, sql):
    """An identified roster for a program cohort: every listed student has a current virtual consent
    for this partner (DMPS) and is in the program; before, such a roster came out empty."""
    folder, manifest = filled("CONTRACT-ROSTER", "dmps", {
        "requester": PARTNER, "level": "identified", "years": ["2025-2026"],
        "cohort": {"program": PROGRAM}, "fields": ["name", "grade", "attendance"]})
    rosters = _rows(folder / "data", "roster*.csv")
    listed = set().union(*(set(frame["student_id"]) for frame in rosters.values()))
    consented = set(sql("""
        SELECT DISTINCT student_id FROM consents WHERE partner_id = ? AND channel = 'virtual'
        AND signed_on <= DATE '2026-06-01' AND expires_on >= DATE '2026-06-01'
        AND (revoked_on IS NULL OR revoked_on > DATE '2026-06-01')
    """, PARTNER["partner_id"])["student_id"])
    in_program = set(sql("SELECT DISTINCT student_id FROM program_students WHERE program_id = ?", PROGRAM)["student_id"])
    assert listed, "consented program students exist, so the roster must not be empty"
    assert listed <= consented & in_program
    granted = manifest["plan"]["students_by_year"]["2025-2026"].get("identified", 0)
    assert len(listed) == granted
    assert set(next(iter(rosters.values())).columns) <= {"student_id", "first_name", "last_name", "grade",
                                                          "days_enrolled", "days_absent"}


def test_a_program_report_counts_one_cohort_everywhere(filled, sql):
    """The program's students in each year: the same number in the decision, the manifest, the
    report's text and every table's total."""
    folder, manifest = filled("CONTRACT-PROGRAM", "dmps", {
        "requester": PARTNER, "level": "aggregate", "years": YEARS, "cohort": {"program": PROGRAM},
        "measures": ["chronic_absence"], "breakdowns": ["grade", "gender"]})
    by_year = manifest["decision"]["cohort"]["by_year"]
    assert by_year == {y: sum(c.values()) for y, c in manifest["plan"]["students_by_year"].items()}
    for year in by_year:
        served = sql("""
            SELECT count(DISTINCT t.student_id) AS n FROM program_students t
            JOIN (SELECT school_year, min(first_day) AS first, max(last_day) AS last FROM school_calendar
                  GROUP BY school_year) c ON c.school_year = ?
            JOIN student_years s ON s.student_id = t.student_id AND s.school_year = c.school_year
            WHERE t.program_id = ? AND t.added_on <= c.last AND (t.dropped_on IS NULL OR t.dropped_on > c.first)
        """, year, PROGRAM)["n"].iloc[0]
        assert by_year[year] == served
    totals = {name: entry for name, entry in manifest["released"].items() if name.startswith("tables/")}
    assert totals
    for name, entry in totals.items():
        table = pd.read_csv(folder / name, dtype=str, keep_default_na=False)
        dims = [c for c in table.columns if c in ("grade", "gender")]
        total = table[(table[dims] == "Total").all(axis=1)]["students"].iloc[0]
        assert total == "" or int(total) == by_year[entry["year"]]
        if total:
            assert entry["total"] == int(total)
    report = (folder / "report.ipynb").read_text()
    for year, count in by_year.items():
        assert f"{year}: {count:,}" in report


def test_a_district_report_counts_every_enrolled_student(filled, sql):
    folder, manifest = filled("CONTRACT-DISTRICT", "nces", {
        "requester": {"name": "Analyst", "role": "district_staff", "organization": "Office of Data"},
        "level": "aggregate", "years": ["2025-2026"], "measures": ["chronic_absence"], "breakdowns": ["grade"]})
    enrolled = int(sql("SELECT count(DISTINCT student_id) AS n FROM student_years WHERE school_year = '2025-2026'")["n"].iloc[0])
    assert manifest["plan"]["students_by_year"] == {"2025-2026": {"aggregate": enrolled}}
    assert manifest["released"]["tables/by_grade.csv"]["total"] == enrolled


def test_a_school_and_grades_report_covers_those_grades_only(filled, sql):
    folder, manifest = filled("CONTRACT-GRADES", "bps", {
        "requester": {"name": "Principal", "role": "district_staff", "organization": "Office of Data"},
        "level": "aggregate", "years": ["2025-2026"], "cohort": {"school": PROGRAM_SCHOOL, "grades": [6, 7]},
        "measures": ["chronic_absence"], "breakdowns": ["grade", "gender"]})
    table = pd.read_csv(folder / "tables" / "by_grade.csv", dtype=str, keep_default_na=False)
    assert set(table["grade"]) <= {"6", "7", "Total"}
    at_school = int(sql("""SELECT count(DISTINCT e.student_id) AS n FROM enrollments e
        JOIN student_years s ON s.student_id = e.student_id AND s.school_year = e.school_year
        WHERE e.school_id = ? AND e.school_year = '2025-2026' AND s.grade IN (6, 7)""", PROGRAM_SCHOOL)["n"].iloc[0])
    granted = manifest["plan"]["students_by_year"]["2025-2026"]["aggregate"]
    assert granted <= at_school
    total = table[table["grade"] == "Total"]["students"].iloc[0]
    assert total == "" or int(total) == granted


def test_a_directory_list_of_a_school_names_only_granted_students(filled, sql):
    folder, manifest = filled("CONTRACT-DIRECTORY", "bps", {
        "requester": PARTNER, "level": "directory", "years": ["2025-2026"],
        "cohort": {"school": PROGRAM_SCHOOL}, "fields": ["name", "grade"]})
    listed = pd.concat(_rows(folder / "data", "directory*.csv").values())
    allowed = sql("""SELECT DISTINCT lower(s.first_name) AS f, lower(s.last_name) AS l FROM students s
        JOIN enrollments e ON e.student_id = s.student_id AND e.school_year = '2025-2026' AND e.school_id = ?
        WHERE s.student_id NOT IN (SELECT student_id FROM directory_opt_outs WHERE school_year = '2025-2026')""",
                  PROGRAM_SCHOOL)
    allowed_names = set(zip(allowed["f"], allowed["l"]))
    names = set(zip(listed["first_name"].str.lower(), listed["last_name"].str.lower()))
    assert names and names <= allowed_names
    assert len(listed) <= manifest["plan"]["students_by_year"]["2025-2026"]["directory"]


# -- the release check enforces the same contract on files it did not write -----------------

@pytest.fixture(scope="module")
def roster_plan(demo_warehouse):
    from datetime import date

    from workbench.plan import make_plan
    from workbench.policy import load_policy
    from workbench.request import parse_request
    from workbench.warehouse import connect

    request = parse_request({"id": "CONTRACT-CHECK", "received": "2026-05-18", "purpose": "p", "audience": "a",
                             "requester": PARTNER, "level": "identified", "years": ["2025-2026"],
                             "cohort": {"program": PROGRAM}, "fields": ["name", "grade"]})
    con = connect(demo_warehouse)
    return make_plan(request, load_policy("dmps"), con, date(2026, 6, 1)), con


def _check(folder, plan, con, tables=None):
    from workbench.policy import load_policy
    from workbench.release.check import check_release

    return check_release(folder, plan.level, load_policy("dmps").small_group_rule(), None,
                         plan=plan, tables=tables or {}, con=con)


def test_the_release_check_refuses_rows_the_plan_does_not_grant(tmp_path, roster_plan, sql):
    plan, con = roster_plan
    granted = plan.students("2025-2026", {"identified"})
    excluded = sorted(set(plan.decision.population["2025-2026"]) - set(granted))
    outsider = sql("SELECT student_id FROM students WHERE student_id NOT IN (SELECT student_id FROM program_students) LIMIT 1")
    data = tmp_path / "data"
    data.mkdir()
    good = pd.DataFrame({"student_id": granted, "grade": "5"})
    good.to_csv(data / "roster_2025-2026.csv", index=False)
    assert _check(tmp_path, plan, con).passed

    bad = pd.concat([good, pd.DataFrame({"student_id": excluded[:1] + list(outsider["student_id"]), "grade": "5"})])
    bad.to_csv(data / "roster_2025-2026.csv", index=False)
    kinds = [f.detail for f in _check(tmp_path, plan, con).findings if f.kind == "plan"]
    assert any("rows of students the plan does not grant" in k for k in kinds)
    assert any("but the plan grants" in k for k in kinds)

    good.assign(days_absent=3).to_csv(data / "roster_2025-2026.csv", index=False)
    assert any("days_absent" in f.detail for f in _check(tmp_path, plan, con).findings)

    good.to_csv(data / "roster_2024-2025.csv", index=False)
    (data / "roster_2025-2026.csv").unlink()
    assert any("school year the plan does not grant" in f.detail for f in _check(tmp_path, plan, con).findings)


def test_the_release_check_refuses_a_table_that_counts_other_students(tmp_path, demo_warehouse):
    from datetime import date

    from workbench.plan import make_plan
    from workbench.policy import load_policy
    from workbench.request import parse_request
    from workbench.warehouse import connect

    request = parse_request({"id": "CONTRACT-TABLE", "received": "2026-05-18", "purpose": "p", "audience": "a",
                             "requester": PARTNER, "level": "aggregate", "years": ["2025-2026"],
                             "cohort": {"program": PROGRAM}, "measures": ["chronic_absence"], "breakdowns": ["grade"]})
    con = connect(demo_warehouse)
    plan = make_plan(request, load_policy("dmps"), con, date(2026, 6, 1))
    size = len(plan.students("2025-2026"))
    tables = tmp_path / "tables"
    tables.mkdir()
    summary = {"by_grade": {"year": "2025-2026", "dims": ["grade"], "measures": ["chronic_absence"]}}
    pd.DataFrame({"grade": ["6", "Total"], "students": ["", str(size)]}).to_csv(tables / "by_grade.csv", index=False)
    assert _check(tmp_path, plan, con, summary).passed
    pd.DataFrame({"grade": ["6", "Total"], "students": ["", str(size + 14)]}).to_csv(tables / "by_grade.csv", index=False)
    assert any("the plan covers" in f.detail for f in _check(tmp_path, plan, con, summary).findings)
    summary["by_grade"] |= {"dims": ["grade", "race_ethnicity"], "measures": ["chronic_absence", "course_failure"]}
    details = " ".join(f.detail for f in _check(tmp_path, plan, con, summary).findings)
    assert "race_ethnicity" in details and "course_failure" in details


# -- every granted year is released: the manifest's counts are what the files hold ----------

def _rows_by_year(manifest: dict) -> dict[str, int]:
    counts: dict[str, int] = {}
    for entry in manifest["released"].values():
        for year, rows in (entry.get("rows_by_year") or {}).items():
            counts[year] = counts.get(year, 0) + rows
    return counts


def test_a_two_year_roster_lists_each_year_s_consented_students(filled):
    """The plan grants identified students in both years asked; before, the roster covered the
    latest year only while the manifest counted both."""
    folder, manifest = filled("CONTRACT-ROSTER-2Y", "bps", {
        "requester": PARTNER, "level": "identified", "years": YEARS,
        "cohort": {"school": PROGRAM_SCHOOL}, "fields": ["name", "grade"]})
    granted = {year: levels.get("identified", 0) for year, levels in manifest["plan"]["students_by_year"].items()}
    assert set(granted) == set(YEARS) and all(granted.values())
    assert _rows_by_year(manifest) == granted
    for year in YEARS:
        assert len(pd.read_csv(folder / "data" / f"roster_{year}.csv", dtype=str)) == granted[year]


def test_a_two_year_directory_list_covers_each_year(filled):
    folder, manifest = filled("CONTRACT-DIRECTORY-2Y", "bps", {
        "requester": PARTNER, "level": "directory", "years": YEARS,
        "cohort": {"school": PROGRAM_SCHOOL}, "fields": ["name", "grade"]})
    granted = {year: levels.get("directory", 0) + levels.get("identified", 0)
               for year, levels in manifest["plan"]["students_by_year"].items()}
    assert set(granted) == set(YEARS)
    assert _rows_by_year(manifest) == granted


def test_a_two_year_school_report_has_a_table_for_each_year(filled, sql):
    """The school report answered only the latest of the years its plan granted."""
    folder, manifest = filled("CONTRACT-SCHOOL-2Y", "bps", {
        "requester": {"name": "Analyst", "role": "district_staff", "organization": "Office of Data"},
        "level": "aggregate", "years": YEARS, "cohort": {"school": PROGRAM_SCHOOL},
        "measures": ["chronic_absence"], "breakdowns": ["grade"]})
    assert manifest["plan"]["template"] == "school_report"
    totals = {entry["year"]: entry["total"] for name, entry in manifest["released"].items() if name.startswith("tables/")}
    assert set(totals) == set(YEARS)
    for year in YEARS:
        at_school = int(sql("""SELECT count(DISTINCT e.student_id) AS n FROM enrollments e
            JOIN student_years s ON s.student_id = e.student_id AND s.school_year = e.school_year
            WHERE e.school_id = ? AND e.school_year = ?""", PROGRAM_SCHOOL, year)["n"].iloc[0])
        assert totals[year] == manifest["plan"]["students_by_year"][year]["aggregate"] <= at_school


def test_the_release_check_refuses_a_release_that_leaves_a_granted_year_out(tmp_path, demo_warehouse):
    from datetime import date

    from workbench.plan import make_plan
    from workbench.policy import load_policy
    from workbench.request import parse_request
    from workbench.warehouse import connect

    con = connect(demo_warehouse)
    base = {"received": "2026-05-18", "purpose": "p", "audience": "a", "requester": PARTNER, "years": YEARS,
            "cohort": {"school": PROGRAM_SCHOOL}}
    roster = make_plan(parse_request({**base, "id": "CONTRACT-YEARS", "level": "identified", "fields": ["name"]}),
                       load_policy("bps"), con, date(2026, 6, 1))
    data = tmp_path / "roster" / "data"
    data.mkdir(parents=True)
    for year in YEARS:
        pd.DataFrame({"student_id": roster.row_students(year)}).to_csv(data / f"roster_{year}.csv", index=False)
    assert _check(tmp_path / "roster", roster, con).passed
    (data / f"roster_{YEARS[0]}.csv").unlink()
    found = [f.detail for f in _check(tmp_path / "roster", roster, con).findings if f.kind == "plan"]
    assert any(YEARS[0] in detail and "grants" in detail for detail in found), found

    table_plan = make_plan(parse_request({**base, "id": "CONTRACT-YEARS-T", "level": "aggregate",
                                          "measures": ["chronic_absence"], "breakdowns": ["grade"]}),
                           load_policy("bps"), con, date(2026, 6, 1))
    tables = tmp_path / "tables" / "tables"
    tables.mkdir(parents=True)
    summary = {}
    for year in YEARS:
        name = f"by_grade_{year}"
        pd.DataFrame({"grade": ["Total"], "students": [str(len(table_plan.students(year)))]}).to_csv(
            tables / f"{name}.csv", index=False)
        summary[name] = {"year": year, "dims": ["grade"], "measures": ["chronic_absence"]}
    assert _check(tmp_path / "tables", table_plan, con, summary).passed
    del summary[f"by_grade_{YEARS[0]}"]
    (tables / f"by_grade_{YEARS[0]}.csv").unlink()
    found = [f.detail for f in _check(tmp_path / "tables", table_plan, con, summary).findings if f.kind == "plan"]
    assert any(YEARS[0] in detail for detail in found), found
