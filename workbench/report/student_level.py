"""Student-level releases: de-identified extracts, identified rosters, directory lists.

Rows are assembled in the warehouse for exactly the students the decision allows, with exactly
the fields it grants; aggregate-only fields never leave as a per-student column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import ibis
import pandas as pd
from ibis import _

from workbench.disclosure import WITHHELD, protect_extract
from workbench.disclosure.hierarchy import Hierarchy
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
    # Counts only (no row, no value): what protection did, for the release manifest.
    report: dict | None = None

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


def student_rows(con, student_ids: list[str] | None, fields: list[str], year: str) -> pd.DataFrame:
    """One row per student enrolled in `year`, with the columns of `fields` (and student_id).

    `student_ids` None: every student enrolled in the district that year. Rows come in no
    meaningful order; each release orders its own (see `_named_order`, `protect_extract`).
    """
    unknown = [f for f in fields if f not in FIELD_COLUMNS]
    if unknown:
        raise StudentLevelError(f"unknown field(s): {', '.join(unknown)}")
    ids = list(student_ids) if student_ids is not None else None
    facts = student_year_facts(con, [year], ids)

    def mine(table):
        return table.student_id.isin(ids) if ids is not None else ibis.literal(True)

    students = con.table("students").select("student_id", "state_id", "first_name", "last_name", "date_of_birth")
    schools = con.table("schools").select("school_id", school=_.name)
    enrollments = con.table("enrollments")
    spans = (
        enrollments.filter((enrollments.school_year == year) & mine(enrollments))
        .group_by("student_id").aggregate(first_enrolled=_.entry_date.min(), last_enrolled=_.exit_date.max())
    )
    incidents = con.table("behavior_incidents")
    incident_counts = (
        incidents.filter((incidents.school_year == year) & mine(incidents))
        .group_by("student_id").aggregate(behavior_incidents=_.count())
    )
    marks = con.table("course_marks")
    mark_counts = (
        marks.filter((marks.school_year == year) & mine(marks))
        .group_by("student_id")
        .aggregate(courses_marked=_.section_id.nunique(), failing_marks=_.count(where=_.mark == "F"))
    )
    tests = con.table("assessments")
    tests = tests.filter((tests.school_year == year) & mine(tests))
    scores = tests.group_by("student_id").aggregate(
        ela_scaled_score=_.scaled_score.max(where=_.subject == "ELA"),
        ela_level=_.achievement_level.max(where=_.subject == "ELA"),
        math_scaled_score=_.scaled_score.max(where=_.subject == "Math"),
        math_level=_.achievement_level.max(where=_.subject == "Math"),
    )
    calendar = con.table("school_calendar")
    bounds = calendar.filter(calendar.school_year == year).aggregate(first=_.first_day.min(), last=_.last_day.max())
    program_students = con.table("program_students")
    tags = program_students.filter(mine(program_students)).cross_join(bounds)
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


# Fields that describe who a student is: whatever a pack lists, each of these singles students
# out in combination (a part-year kindergartner with a disability), so a de-identified extract
# always counts them as quasi-identifiers. Outcomes (attendance days absent, scores) are not.
DESCRIBES_STUDENT = ("grade", "school", "age", "gender", "race_ethnicity", "english_learner", "disability",
                     "programs", "enrollment_dates", "attendance")
# Released columns of a field once it is generalized, and the columns it replaces.
_GENERALIZED = {
    ("attendance", "part_year"): (["days_enrolled"], ["enrollment"]),
    ("enrollment_dates", "month"): (["first_enrolled", "last_enrolled"], ["first_enrolled_month", "last_enrolled_month"]),
}
# The part of a field that identifies: attendance's days absent are an outcome, days enrolled are not.
_IDENTIFYING_COLUMNS = {"attendance": ["days_enrolled"]}


def _year_days(con, year: str) -> int:
    calendar = con.table("school_calendar")
    days = calendar.filter(calendar.school_year == year).instructional_days.sum().to_pandas()
    return int(days) if days is not None and not pd.isna(days) else 0


def _generalize(rows: pd.DataFrame, field_name: str, how: str, con, year: str) -> int:
    """Coarsen one field in place; returns how many values were coarsened."""
    if (field_name, how) == ("attendance", "part_year"):
        full_year = _year_days(con, year)
        rows.insert(rows.columns.get_loc("days_enrolled"), "enrollment",
                    ["full year" if days >= full_year else "part year" for days in rows["days_enrolled"]])
        del rows["days_enrolled"]
        return len(rows)
    if (field_name, how) == ("enrollment_dates", "month"):
        for column in ("first_enrolled", "last_enrolled"):
            rows.insert(rows.columns.get_loc(column), f"{column}_month", rows[column].str[:7])
            del rows[column]
        return 2 * len(rows)
    raise StudentLevelError(f"no generalization {how!r} for {field_name}")


def _quasi_columns(field_name: str, how: str | None) -> list[str]:
    if how and (field_name, how) in _GENERALIZED:
        return _GENERALIZED[(field_name, how)][1]
    return _IDENTIFYING_COLUMNS.get(field_name, FIELD_COLUMNS[field_name])


def _keyed_order(ids: list[str], key: bytes) -> list[int]:
    from workbench.disclosure.extract import pseudonym_order

    return list(pseudonym_order(ids, key))


@dataclass
class ExtractPlan:
    """The rows of a de-identified extract before protection, and how to protect them."""

    years: list[str]
    data: pd.DataFrame  # one row per student and year, identifying fields already generalized
    quasi: list[str]
    give_up: list[str]  # quasi-identifier columns, least important first
    k: int
    fields: list[str]
    from_data: list[str]  # quasi-identifiers the pack does not list
    generalized: dict[str, int]
    hierarchies: dict[str, Hierarchy] = field(default_factory=dict)  # per quasi-identifier column


def extract_plan(ctx, year: str | None = None) -> ExtractPlan:
    """What `deidentified_extract` protects: the rows, the quasi-identifiers and their order."""
    years = [year] if year else list(ctx.years)
    pack = ctx.policy.pack
    rules = pack.fields.quasi_identifiers
    identifiers = set(pack.fields.direct_identifiers.fields) | {"student_id", "state_id", "name", "date_of_birth"}
    aggregate_only = set(pack.fields.aggregate_only.fields)
    fields = [f for f in ctx.decision.fields if f not in identifiers and f not in aggregate_only]
    withheld_here = [f for f in fields if rules.generalize.get(f) == "withhold"]
    fields = [f for f in fields if f not in withheld_here]
    quasi_fields = [f for f in fields if f in rules.fields or f in DESCRIBES_STUDENT]
    from_data = [f for f in quasi_fields if f not in rules.fields]

    frames = []
    generalized: dict[str, int] = {}
    for one_year in years:
        rows = student_rows(ctx.con, ctx.row_students(one_year), fields, one_year)
        for field_name in quasi_fields:
            how = rules.generalize.get(field_name)
            if how and how != "withhold":
                count = _generalize(rows, field_name, how, ctx.con, one_year)
                for column in _quasi_columns(field_name, how):
                    generalized[column] = generalized.get(column, 0) + count // len(_quasi_columns(field_name, how))
        rows.insert(1, "school_year", one_year)
        frames.append(rows)
    data = pd.concat(frames, ignore_index=True)

    field_columns = {f: [c for c in _quasi_columns(f, rules.generalize.get(f)) if c in data.columns] for f in quasi_fields}
    quasi = [c for f in quasi_fields for c in field_columns[f]]
    # Most important first: the request's own order, then the pack's, then the rest as asked.
    ranked = list(dict.fromkeys([*ctx.request.priority, *rules.priority, *quasi_fields]))
    give_up = [c for f in reversed(ranked) if f in field_columns for c in field_columns[f]]
    rule = ctx.rule
    k = rule.smallest_publishable
    # A field's hierarchy applies to its released column where the field is not coarsened otherwise.
    hierarchies = {FIELD_COLUMNS[f][0]: Hierarchy.from_levels(levels) for f, levels in rules.hierarchies.items()
                   if f in field_columns and not rules.generalize.get(f) and field_columns[f] == FIELD_COLUMNS[f][:1]}
    return ExtractPlan(years, data, quasi, give_up, k, fields, from_data, generalized, hierarchies)


def deidentified_extract(ctx, year: str | None = None) -> StudentFile:
    """One release over every year asked (or one `year`): a pseudonym per student across its years,
    identifying fields generalized or withheld, k-anonymity over the joined record."""
    from workbench.report.pseudonyms import release_key

    plan = extract_plan(ctx, year)
    years, quasi, k, fields, from_data, generalized = plan.years, plan.quasi, plan.k, plan.fields, plan.from_data, plan.generalized
    rules = ctx.policy.pack.fields.quasi_identifiers
    quasi_fields = [f for f in fields if f in rules.fields or f in DESCRIBES_STUDENT]
    extract, report = protect_extract(plan.data, id_col="student_id", year_col="school_year", quasi=quasi, k=k,
                                      suppression_order=plan.give_up, key=release_key(ctx.request.id),
                                      hierarchies=plan.hierarchies)
    for column, count in generalized.items():
        if column in report.fields:
            report.fields[column].generalized = count
    span = years[0] if len(years) == 1 else f"{years[0]} to {years[-1]}"
    notes = [
        f"De-identified under {ctx.policy.name}: every student, over all the years of this file, is one of at least "
        f"{k} records with the same {', '.join(quasi) or 'quasi-identifier'} values shown; a value is shown as it is, "
        f"as a group of the policy's, or as 'Not reported' (withheld), and every record shows exactly what at least "
        f"{k - 1} others show.",
        *report.lines(),
    ]
    if from_data:
        notes.append("Also checked as quasi-identifiers (they describe who a student is): " + ", ".join(from_data))
    if generalized:
        notes.append("Generalized: " + ", ".join(f"{f} ({rules.generalize[f].replace('_', ' ')})"
                                                 for f in quasi_fields if rules.generalize.get(f) not in (None, "withhold")))
    for column, hierarchy in plan.hierarchies.items():
        domain = sorted(set(plan.data[column].astype(str)))
        groups = sorted(set(extract[column].astype(str)) - set(domain) - {WITHHELD})
        if groups:
            level_of = {g: next(lv for lv in range(1, hierarchy.withheld_level) if hierarchy.members(g, lv, domain)) for g in groups}
            notes.append(f"{column}: some values shown as a group of the policy's: "
                         + "; ".join(f"{g} = {', '.join(hierarchy.members(g, level_of[g], domain))}" for g in groups))
    withheld = sorted((set(ctx.request.fields) - set(fields)))
    if withheld:
        notes.append("Not included (identifying, aggregate-only, or withheld as a quasi-identifier under the policy): "
                     + ", ".join(withheld))
    name = f"extract_{year}" if year else "extract"
    return StudentFile(name, f"De-identified student-level extract, {span}", extract, notes, report=report.as_dict())


def _named_order(rows: pd.DataFrame, key: bytes) -> pd.DataFrame:
    """Rows by last and first name; rows with equal names (or no names) in the release's keyed order."""
    by = [c for c in ("last_name", "first_name") if c in rows.columns]
    sort_keys = {f"_sort_{c}": rows[c].astype(str).str.casefold() for c in by}
    sort_keys["_sort_keyed"] = _keyed_order(list(rows["student_id"].astype(str)), key)
    ordered = rows.assign(**sort_keys).sort_values(list(sort_keys), kind="stable")
    return ordered.drop(columns=list(sort_keys)).reset_index(drop=True)


def identified_roster(ctx, year: str | None = None) -> StudentFile:
    """Rows for the students whose decision is `identified` (current, accepted consent), by name."""
    from workbench.report.pseudonyms import release_key

    year = year or ctx.latest_year
    aggregate_only = set(ctx.policy.pack.fields.aggregate_only.fields)
    fields = [f for f in ctx.decision.fields if f not in aggregate_only]
    ids = ctx.students_at("identified", year)
    rows = student_rows(ctx.con, ids, fields, year) if ids else pd.DataFrame(columns=["student_id"])
    rows = _named_order(rows, release_key(ctx.request.id))
    notes = [f"{len(rows)} students with a current consent the policy accepts; others are not listed."]
    withheld = sorted(set(ctx.request.fields) - set(fields))
    if withheld:
        notes.append("Withheld per student: " + ", ".join(withheld) + " (aggregate only under the policy).")
    return StudentFile(f"roster_{year}", f"Identified roster, {year} (consented students only)", rows, notes)


def directory_list(ctx, year: str | None = None) -> StudentFile:
    """Directory information only, leaving out students whose families opted out; by name."""
    from workbench.report.pseudonyms import release_key

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
    rows = _named_order(rows, release_key(ctx.request.id))
    # The district ID is not directory information: it is used to select rows, never released.
    rows = rows.drop(columns="student_id").reset_index(drop=True)
    return StudentFile(f"directory_{year}", f"Directory information, {year}", rows, notes)
