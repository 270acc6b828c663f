"""The plan's contract, checked on the files of a release as a recipient receives them.

A release may hold only what its plan grants (workbench.plan):

- student-level files: per school year, no more rows than the plan grants at the release's level;
  in an identified file every student ID, and in a named list every name, belongs to a student
  the plan grants that year; every column belongs to a granted field;
- tables: a school year the plan grants, measures and breakdowns it grants, and a published total
  equal to the plan's population for that year (the table counts exactly the plan's students);
- every school year the plan grants is released: a roster or directory list holds exactly the
  students the plan grants that year, and an aggregate release has a table for the year. (A
  de-identified extract may hold fewer rows: k-anonymity can remove records, and says how many.)

The check reads the files, not what the template says it wrote, and returns what it found
released (counts only) for the manifest.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from workbench.release.check import Finding

_YEAR_IN_NAME = re.compile(r"(\d{4}-\d{4})")
# Columns a student-level file may carry besides the granted fields' own columns.
_STRUCTURAL_COLUMNS = {"student_id", "school_year"}
_BREAKDOWN_OF_DIM = {"level": "school_level"}
TOTAL = "Total"


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    return (rows[0], rows[1:]) if rows else ([], [])


def _granted_columns(plan) -> set[str]:
    """The columns of the granted fields, as written or as the pack generalizes them."""
    from workbench.report.student_level import FIELD_COLUMNS, _quasi_columns

    generalize = plan.policy().pack.fields.quasi_identifiers.generalize
    columns = set(_STRUCTURAL_COLUMNS)
    for name in plan.decision.fields:
        columns.update(FIELD_COLUMNS.get(name, [name]))
        if generalize.get(name):
            columns.update(_quasi_columns(name, generalize[name]))
    return columns


def _names_of(con, student_ids: list[str]) -> set[tuple[str, str]]:
    from workbench.warehouse import rows_with

    if con is None or not student_ids:
        return set()
    students = rows_with(con.table("students"), "student_id", student_ids)
    frame = students.select("first_name", "last_name").to_pandas()
    return set(zip(frame["first_name"].str.strip().str.lower(), frame["last_name"].str.strip().str.lower()))


def _student_file_findings(path: Path, name: str, plan, con) -> tuple[list[Finding], dict]:
    findings: list[Finding] = []
    header, rows = _read_csv(path)
    column = {title: index for index, title in enumerate(header)}
    single_year = plan.years[0] if len(plan.years) == 1 else None
    named_year = _YEAR_IN_NAME.search(Path(name).name)

    def year_of(row: list[str]) -> str | None:
        if "school_year" in column:
            return row[column["school_year"]]
        return named_year.group(1) if named_year else single_year

    by_year = Counter(year_of(row) for row in rows)
    for year, count in sorted(by_year.items(), key=lambda item: str(item[0])):
        if year is None or year not in plan.years:
            findings.append(Finding(name, "rows", "plan", f"{count} rows for a school year the plan does not grant"))
            continue
        granted = plan.row_students(year)
        if count > len(granted):
            findings.append(Finding(name, f"{year} rows", "plan",
                                    f"{count} rows, but the plan grants {len(granted)} students at the {plan.level} level"))
    extra = sorted(set(header) - _granted_columns(plan))
    if extra:
        findings.append(Finding(name, "columns", "plan", f"column(s) of fields the plan does not grant: {', '.join(extra)}"))
    if plan.level == "identified" and "student_id" in column:
        for year in [y for y in by_year if y in plan.years]:
            allowed = set(plan.row_students(year))
            outside = sum(1 for row in rows if year_of(row) == year and row[column["student_id"]] not in allowed)
            if outside:
                findings.append(Finding(name, f"{year} rows", "plan",
                                        f"{outside} rows of students the plan does not grant at the identified level"))
    if {"first_name", "last_name"} <= set(column) and con is not None:
        for year in [y for y in by_year if y in plan.years]:
            allowed_names = _names_of(con, plan.row_students(year))
            outside = sum(
                1 for row in rows if year_of(row) == year
                and (row[column["first_name"]].strip().lower(), row[column["last_name"]].strip().lower()) not in allowed_names
            )
            if outside:
                findings.append(Finding(name, f"{year} rows", "plan",
                                        f"{outside} named rows of students the plan does not grant"))
    released = {"rows": len(rows), "rows_by_year": {str(y): n for y, n in sorted(by_year.items(), key=lambda i: str(i[0]))}}
    return findings, released


def _table_findings(folder: Path, name: str, summary: dict, plan) -> tuple[list[Finding], dict]:
    findings: list[Finding] = []
    label = f"tables/{name}.csv"
    year = summary.get("year")
    if year not in plan.years:
        findings.append(Finding(label, "year", "plan", f"a table for {year}, which the plan does not grant"))
    measures = set(summary.get("measures") or [])
    not_granted = sorted(measures - set(plan.decision.measures))
    if not_granted:
        findings.append(Finding(label, "measures", "plan", f"measure(s) the plan does not grant: {', '.join(not_granted)}"))
    dims = list(summary.get("dims") or [])
    breakdowns = sorted({_BREAKDOWN_OF_DIM.get(d, d) for d in dims} - set(plan.decision.breakdowns))
    if breakdowns:
        findings.append(Finding(label, "breakdowns", "plan",
                                f"breakdown(s) the plan does not grant: {', '.join(breakdowns)}"))
    released: dict = {"year": year, "total": None}
    path = folder / "tables" / f"{name}.csv"
    if not path.is_file() or not dims:
        return findings, released
    header, rows = _read_csv(path)
    if "students" not in header or not all(d in header for d in dims):
        return findings, released
    positions = [header.index(d) for d in dims]
    findings += _band_findings(label, dims, positions, rows, plan)
    students = header.index("students")
    for row in rows:
        if all(row[i] == TOTAL for i in positions):
            cell = row[students].strip().replace(",", "")
            if cell.isdigit():
                released["total"] = int(cell)
                if year in plan.years and int(cell) != len(plan.students(year)):
                    findings.append(Finding(label, "Total row", "plan",
                                            f"the table counts {cell} students; the plan covers "
                                            f"{len(plan.students(year))} in {year}"))
            break
    return findings, released


def _band_findings(label: str, dims: list[str], positions: list[int], rows: list[list[str]], plan) -> list[Finding]:
    """A breakdown is published in bands exactly when the plan says so."""
    findings = []
    granted = set(getattr(plan, "bands", ()) or ())
    policy = plan.policy()
    for dim, position in zip(dims, positions):
        breakdown = _BREAKDOWN_OF_DIM.get(dim, dim)
        groups = policy.bands(breakdown) or {}
        members = {m for band in groups.values() for m in band}
        shown = {row[position] for row in rows if len(row) > position} - {TOTAL}
        if breakdown in granted:
            merged = sorted(shown & members - set(groups))
            if merged:
                findings.append(Finding(label, dim, "plan", f"the plan publishes {breakdown} in bands, but the table "
                                                            f"shows {breakdown} {', '.join(merged)}"))
        else:
            banded = sorted(shown & set(groups) - members)
            if banded:
                findings.append(Finding(label, dim, "plan", f"{breakdown} bands the plan does not grant: "
                                                            f"{', '.join(banded)}"))
    return findings


def contract_findings(folder: Path, plan, tables: dict[str, dict], con,
                      is_student_level: Callable[[str], bool]) -> tuple[list[Finding], dict[str, dict]]:
    """Every way the files of `folder` hold more than `plan` grants, and what they hold."""
    folder = Path(folder)
    findings: list[Finding] = []
    released: dict[str, dict] = {}
    for path in sorted(folder.rglob("*.csv")):
        name = path.relative_to(folder).as_posix()
        if is_student_level(name):
            found, held = _student_file_findings(path, name, plan, con)
            findings += found
            released[name] = held
    for name, summary in sorted(tables.items()):
        found, held = _table_findings(folder, name, summary, plan)
        findings += found
        released[f"tables/{name}.csv"] = held
    findings += _missing_year_findings(plan, released)
    return findings, released


# Levels whose files must hold every student the plan grants (nothing removes rows on the way out).
_EVERY_ROW_LEVELS = ("identified", "directory")


def _missing_year_findings(plan, released: dict[str, dict]) -> list[Finding]:
    """Granted school years the files leave out (or cover only in part): what the manifest counts
    would then claim and the release would not hold."""
    findings = []
    if plan.level == "aggregate":
        covered = {entry.get("year") for name, entry in released.items() if name.startswith("tables/")}
        for year in plan.years:
            if year not in covered:
                findings.append(Finding("tables", year, "plan",
                                        f"no table for {year}, which the plan grants ({len(plan.students(year))} students)"))
    elif plan.level in _EVERY_ROW_LEVELS:
        rows: Counter = Counter()
        for entry in released.values():
            rows.update(entry.get("rows_by_year") or {})
        for year in plan.years:
            granted = len(plan.row_students(year))
            if rows[year] < granted:  # more rows than granted: reported per file above
                findings.append(Finding("data", year, "plan", f"{rows[year]} rows for {year}, but the plan grants "
                                                              f"{granted} students at the {plan.level} level"))
    return findings
