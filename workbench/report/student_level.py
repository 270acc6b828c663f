"""Student-level releases: de-identified extracts, identified rosters, directory lists.

Rows are assembled in the warehouse for exactly the students the decision allows, with exactly
the fields it grants; aggregate-only fields never leave as a per-student column.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from ibis import _

from workbench.disclosure import protect_extract
from workbench.measures import student_year_facts
from workbench.report.files import write_xlsx
from workbench.errors import InputError

# Fields and the columns they become in a student-level file.
FIELD_COLUMNS: dict[str, list[str]] = {
    "student_id": ["student_id"],
    "state_id": ["state_id"],
    "name": ["first_name", "last_name"],
    "date_of_birth": ["date_of_birth"],
    "age": ["age"],
    "grade": ["grade"],
    "school": ["school"],
    "enrollment_dates": ["first_enrolled", "last_enrolled"],
    "gender": ["gender"],
    "race_ethnicity": ["race_ethnicity"],
    "english_learner": ["english_learner"],
    "disability": ["disability"],
    "low_income": ["low_income"],
    "attendance": ["days_enrolled", "days_absent"],
    "chronic_absence": ["chronically_absent"],
    "behavior": ["behavior_incidents"],
    "marks": ["courses_marked", "failing_marks"],
    "course_failure": ["failed_a_course"],
    "assessments": ["ela_scaled_score", "ela_level", "math_scaled_score", "math_level"],
    "programs": ["programs"],
}


class StudentLevelError(InputError):
    """A student-level file that cannot be produced as asked."""


@dataclass
class StudentFile:
    """A student-level artifact and what was done to it on the way out."""

    name: str
    title: str
    frame: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    def save(self, folder: str | Path, when=None) -> list[Path]:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        csv_path = folder / f"{self.name}.csv"
        self.frame.to_csv(csv_path, index=False)
        notes = pd.DataFrame({"notes": [self.title, *self.notes]})
        xlsx_path = write_xlsx(folder / f"{self.name}.xlsx", {"rows": self.frame, "notes": notes}, when)
        return [csv_path, xlsx_path]

    def describe(self) -> str:
        """What the file holds, without any row of it."""
        return "\n".join([f"{self.title}: {len(self.frame):,} rows, columns {', '.join(self.frame.columns)}", *self.notes])


def student_rows(con, student_ids: list[str], fields: list[str], year: str) -> pd.DataFrame:
    """One row per student enrolled in `year`, with the columns of `fields` (and student_id)."""
    unknown = [f for f in fields if f not in FIELD_COLUMNS]
    if unknown:
        raise StudentLevelError(f"unknown field(s): {', '.join(unknown)}")
    ids = list(student_ids)
    facts = student_year_facts(con, [year], ids)
    students = con.table("students").select("student_id", "state_id", "first_name", "last_name", "date_of_birth")
    schools = con.table("schools").select("school_id", school=_.name)
    enrollments = con.table("enrollments")
    spans = (
        enrollments.filter((enrollments.school_year == year) & enrollments.student_id.isin(ids))
        .group_by("student_id").aggregate(first_enrolled=_.entry_date.min(), last_enrolled=_.exit_date.max())
    )
    incidents = con.table("behavior_incidents")
    incident_counts = (
        incidents.filter((incidents.school_year == year) & incidents.student_id.isin(ids))
        .group_by("student_id").aggregate(behavior_incidents=_.count())
    )
    marks = con.table("course_marks")
    mark_counts = (
        marks.filter((marks.school_year == year) & marks.student_id.isin(ids))
        .group_by("student_id")
        .aggregate(courses_marked=_.section_id.nunique(), failing_marks=_.count(where=_.mark == "F"))
    )
    tests = con.table("assessments")
    tests = tests.filter((tests.school_year == year) & tests.student_id.isin(ids))
    scores = tests.group_by("student_id").aggregate(
        ela_scaled_score=_.scaled_score.max(where=_.subject == "ELA"),
        ela_level=_.achievement_level.max(where=_.subject == "ELA"),
        math_scaled_score=_.scaled_score.max(where=_.subject == "Math"),
        math_level=_.achievement_level.max(where=_.subject == "Math"),
    )
    calendar = con.table("school_calendar")
    bounds = calendar.filter(calendar.school_year == year).aggregate(first=_.first_day.min(), last=_.last_day.max())
    tags = con.table("program_students").filter(_.student_id.isin(ids)).cross_join(bounds)
    programs = (
        tags.filter((tags.added_on <= tags["last"]) & (tags.dropped_on.isnull() | (tags.dropped_on > tags["first"])))
        .group_by("student_id").aggregate(programs=_.program_id.collect(distinct=True))
    )
    joined = (
        facts.join(students, "student_id").join(schools, "school_id")
        .left_join(spans, "student_id").left_join(incident_counts, "student_id")
        .left_join(mark_counts, "student_id").left_join(scores, "student_id").left_join(programs, "student_id")
    )
    start_year = int(year[:4])
    frame = joined.select(
        "student_id", "state_id", "first_name", "last_name", "date_of_birth", "grade", "school",
        "first_enrolled", "last_enrolled", "gender", "race_ethnicity", "english_learner", "disability",
        "low_income", "days_enrolled", "days_absent",
        chronically_absent=_.chronically_absent,
        behavior_incidents=_.behavior_incidents.fill_null(0),
        courses_marked=_.courses_marked.fill_null(0),
        failing_marks=_.failing_marks.fill_null(0),
        failed_a_course=_.any_failure,
        ela_scaled_score=_.ela_scaled_score, ela_level=_.ela_level,
        math_scaled_score=_.math_scaled_score, math_level=_.math_level,
        programs=_.programs,
    ).order_by("student_id").to_pandas()
    september_first = pd.Timestamp(year=start_year, month=9, day=1)
    born = pd.to_datetime(frame["date_of_birth"])
    frame["age"] = (september_first.year - born.dt.year - ((born.dt.month > 9) | ((born.dt.month == 9) & (born.dt.day > 1)))).astype("Int64")
    frame["programs"] = frame["programs"].map(_joined)
    frame["grade"] = frame["grade"].map(lambda g: "K" if int(g) == 0 else str(int(g)))
    for column in ("date_of_birth", "first_enrolled", "last_enrolled"):
        frame[column] = pd.to_datetime(frame[column]).dt.strftime("%Y-%m-%d")
    columns = ["student_id"] + [c for f in fields for c in FIELD_COLUMNS[f] if c != "student_id"]
    return frame[list(dict.fromkeys(columns))].reset_index(drop=True)


def _joined(values) -> str:
    """A collected list of program IDs as text; a student in no program gets an empty cell."""
    if values is None or (isinstance(values, float) and pd.isna(values)):
        return ""
    return ", ".join(sorted(values))


def _stable_seed(text: str) -> int:
    """A seed from the request id, so re-running a request gives the same pseudonyms."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def deidentified_extract(ctx, year: str | None = None) -> StudentFile:
    """Pseudonymized rows, aggregate-only fields removed, quasi-identifiers blanked to k."""
    year = year or ctx.latest_year
    pack = ctx.policy.pack
    identifiers = set(pack.fields.direct_identifiers.fields) | {"student_id", "state_id", "name", "date_of_birth"}
    aggregate_only = set(pack.fields.aggregate_only.fields)
    fields = [f for f in ctx.decision.fields if f not in identifiers and f not in aggregate_only]
    ids = ctx.row_students(year)
    rows = student_rows(ctx.con, ids, fields, year)
    quasi = [c for f in pack.fields.quasi_identifiers.fields for c in FIELD_COLUMNS.get(f, []) if c in rows.columns]
    rows_for_extract = rows.copy()
    for column in quasi:
        rows_for_extract[column] = rows_for_extract[column].astype(str)
    rule = ctx.rule
    k = rule.threshold + (1 if rule.comparison == "<=" else 0)
    extract, report = protect_extract(rows_for_extract, id_col="student_id", quasi=quasi, k=k, seed=_stable_seed(ctx.request.id))
    notes = [
        f"De-identified under {ctx.policy.name}: every row shares its {', '.join(quasi) or 'quasi-identifier'} values "
        f"with at least {k - 1} other rows (blank matches anything).",
        *report.lines(),
    ]
    withheld = sorted((set(ctx.request.fields) - set(fields)))
    if withheld:
        notes.append("Not included (identifying or aggregate-only under the policy): " + ", ".join(withheld))
    return StudentFile(f"extract_{year}", f"De-identified student-level extract, {year}", extract, notes)


def identified_roster(ctx, year: str | None = None) -> StudentFile:
    """Rows for the students whose decision is `identified` (current, accepted consent)."""
    year = year or ctx.latest_year
    aggregate_only = set(ctx.policy.pack.fields.aggregate_only.fields)
    fields = [f for f in ctx.decision.fields if f not in aggregate_only]
    ids = ctx.students_at("identified", year)
    rows = student_rows(ctx.con, ids, fields, year) if ids else pd.DataFrame(columns=["student_id"])
    notes = [f"{len(rows)} students with a current consent the policy accepts; others are not listed."]
    withheld = sorted(set(ctx.request.fields) - set(fields))
    if withheld:
        notes.append("Withheld per student: " + ", ".join(withheld) + " (aggregate only under the policy).")
    return StudentFile(f"roster_{year}", f"Identified roster, {year} (consented students only)", rows, notes)


def directory_list(ctx, year: str | None = None) -> StudentFile:
    """Directory information only, leaving out students whose families opted out."""
    year = year or ctx.latest_year
    directory = ctx.policy.pack.directory
    fields = [f for f in ctx.decision.fields if f in set(directory.fields)]
    if not fields:
        raise StudentLevelError(f"{ctx.policy.name} designates no directory information that this request may receive")
    ids = ctx.row_students(year)
    rows = student_rows(ctx.con, ids, fields, year)
    notes = []
    if directory.honor_opt_outs:
        opt_outs = ctx.con.table("directory_opt_outs")
        opted = set(opt_outs.filter(opt_outs.school_year == year).student_id.to_pandas())
        kept = ~rows["student_id"].isin(opted)
        notes.append(f"{int((~kept).sum())} students left out: their families opted out of directory information.")
        rows = rows[kept]
    # The district ID is not directory information: it is used to select rows, never released.
    rows = rows.drop(columns="student_id").reset_index(drop=True)
    return StudentFile(f"directory_{year}", f"Directory information, {year}", rows, notes)
