"""The measures districts are asked for, as Ibis expressions run in the warehouse.

Every measure is computed from one row per student and school year (`student_year_facts`), with
the student placed at their *school of record* for the year, so each student counts once per
year and breakdown tables add up to their totals. Only the aggregated result comes back as
pandas. Definitions are written down in docs/measures.md.
"""

from __future__ import annotations

import hashlib
import os
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import ibis
import ibis.expr.types as ir
from ibis import _
import pandas as pd
from workbench.errors import InputError
from workbench.warehouse import rows_with

BREAKDOWNS = (
    "school",
    "school_level",
    "grade",
    "race_ethnicity",
    "gender",
    "english_learner",
    "disability",
    "low_income",
    "program",
)
_BREAKDOWN_COLUMN = {"school": "school_id", "school_level": "level"}

MIN_DAYS_FOR_CHRONIC_ABSENCE = 10
CHRONIC_ABSENCE_SHARE = 0.10


class MeasureError(InputError):
    """A measure or breakdown that does not exist, or years that are not in the warehouse."""


@dataclass(frozen=True)
class Measure:
    name: str
    title: str
    kind: str  # "count" (students with the outcome among students) or "rate" (days-based)
    description: str


MEASURES: dict[str, Measure] = {
    m.name: m
    for m in (
        Measure("enrolled", "Students enrolled", "count",
                "Distinct students whose school of record in the year is in the group."),
        Measure("attendance_rate", "Attendance rate", "rate",
                "Days present divided by days enrolled, over all students in the group."),
        Measure("chronic_absence", "Chronically absent", "count",
                "Students enrolled at least 10 days who missed at least 10% of their enrolled days."),
        Measure("behavior_incident", "Students with a behavior incident", "count",
                "Students with at least one recorded behavior incident in the year."),
        Measure("course_failure", "Students failing a course", "count",
                "Students with a course mark who received at least one F in any term."),
        Measure("assessment_benchmark", "Students meeting the assessment benchmark", "count",
                "Tested students scoring Meeting or Exceeding, by subject (ELA, Math)."),
        Measure("low_income", "Students from low-income families", "count",
                "Students eligible for free or reduced-price lunch. Aggregate only."),
    )
}


def _year_list(years: Iterable[str]) -> list[str]:
    chosen = [str(y) for y in years]
    if not chosen:
        raise MeasureError("at least one school year is needed")
    return chosen


def school_of_record(con, years: Sequence[str]) -> ir.Table:
    """One row per student and year: the school with the most enrolled days (ties: later entry)."""
    years = _year_list(years)
    attendance = con.table("attendance")
    enrollments = con.table("enrollments")
    days = (
        attendance.filter(attendance.school_year.isin(years))
        .group_by(["student_id", "school_year", "school_id"])
        .aggregate(days_enrolled=_.days_enrolled.sum(), days_absent=_.days_absent.sum())
    )
    entries = (
        enrollments.filter(enrollments.school_year.isin(years))
        .group_by(["student_id", "school_year", "school_id"])
        .aggregate(last_entry=_.entry_date.max())
    )
    stays = days.join(entries, ["student_id", "school_year", "school_id"])
    ranked = stays.mutate(
        rank=ibis.row_number().over(
            group_by=[stays.student_id, stays.school_year],
            order_by=[ibis.desc(stays.days_enrolled), ibis.desc(stays.last_entry), stays.school_id],
        )
    )
    student_years = con.table("student_years")
    chosen = ranked.filter(ranked["rank"] == 0).select("student_id", "school_year", "school_id")
    return chosen.join(student_years, ["student_id", "school_year"]).select(
        "student_id", "school_year", "school_id", "grade"
    )


def student_year_facts(con, years: Sequence[str], student_ids: Sequence[str] | None = None) -> ir.Table:
    """One row per student and year with attributes and outcomes; the base of every measure."""
    years = _year_list(years)
    record = school_of_record(con, years)
    if student_ids is not None:
        record = rows_with(record, "student_id", list(student_ids))

    attendance = con.table("attendance")
    totals = (
        attendance.filter(attendance.school_year.isin(years))
        .group_by(["student_id", "school_year"])
        .aggregate(days_enrolled=_.days_enrolled.sum(), days_absent=_.days_absent.sum())
    )
    incidents = con.table("behavior_incidents")
    with_incident = (
        incidents.filter(incidents.school_year.isin(years))
        .group_by(["student_id", "school_year"])
        .aggregate(incidents=_.count())
    )
    marks = con.table("course_marks")
    marked = (
        marks.filter(marks.school_year.isin(years))
        .group_by(["student_id", "school_year"])
        # Filtered counts, not sums of booleans cast to integers: PostgreSQL has no such cast.
        .aggregate(marks=_.count(), failing_marks=_.count(where=_.mark == "F"))
    )
    tests = con.table("assessments")
    tested = (
        tests.filter(tests.school_year.isin(years))
        .group_by(["student_id", "school_year"])
        .aggregate(
            tested_ela=_.count(where=_.subject == "ELA"),
            meets_ela=_.count(where=(_.subject == "ELA") & _.meets_benchmark),
            tested_math=_.count(where=_.subject == "Math"),
            meets_math=_.count(where=(_.subject == "Math") & _.meets_benchmark),
        )
    )
    student_years = con.table("student_years").select(
        "student_id", "school_year", "english_learner", "disability", "low_income"
    )
    students = con.table("students").select("student_id", "race_ethnicity", "gender")
    schools = con.table("schools").select("school_id", "level")

    keys = ["student_id", "school_year"]
    facts = (
        record.join(student_years, keys)
        .join(students, "student_id")
        .join(schools, "school_id")
        .left_join(totals, keys)
        .left_join(with_incident, keys)
        .left_join(marked, keys)
        .left_join(tested, keys)
    )
    days_enrolled = facts.days_enrolled.fill_null(0)
    days_absent = facts.days_absent.fill_null(0)
    return facts.select(
        "student_id", "school_year", "school_id", "level", "grade", "race_ethnicity", "gender",
        "english_learner", "disability", "low_income",
        days_enrolled=days_enrolled,
        days_absent=days_absent,
        chronic_eligible=days_enrolled >= MIN_DAYS_FOR_CHRONIC_ABSENCE,
        chronically_absent=(days_enrolled >= MIN_DAYS_FOR_CHRONIC_ABSENCE)
        & (days_absent >= days_enrolled * CHRONIC_ABSENCE_SHARE),
        any_incident=facts.incidents.fill_null(0) > 0,
        has_marks=facts.marks.fill_null(0) > 0,
        any_failure=facts.failing_marks.fill_null(0) > 0,
        tested_ela=facts.tested_ela.fill_null(0) > 0,
        meets_ela=facts.meets_ela.fill_null(0) > 0,
        tested_math=facts.tested_math.fill_null(0) > 0,
        meets_math=facts.meets_math.fill_null(0) > 0,
    )


def _with_programs(con, facts: ir.Table, years: Sequence[str]) -> ir.Table:
    """Facts joined to every program a student was tagged to at some point in the year."""
    calendar = con.table("school_calendar")
    bounds = calendar.group_by("school_year").aggregate(first=_.first_day.min(), last=_.last_day.max())
    tags = con.table("program_students")
    tagged = tags.cross_join(bounds.filter(bounds.school_year.isin(list(years))))
    active = tagged.filter(
        (tagged.added_on <= tagged["last"]) & (tagged.dropped_on.isnull() | (tagged.dropped_on > tagged["first"]))
    ).select("student_id", "school_year", program="program_id").distinct()
    return facts.join(active, ["student_id", "school_year"])


def _group_columns(breakdowns: Sequence[str]) -> list[str]:
    unknown = [b for b in breakdowns if b not in BREAKDOWNS]
    if unknown:
        raise MeasureError(f"unknown breakdown(s): {', '.join(unknown)}; choose from {', '.join(BREAKDOWNS)}")
    if len(set(breakdowns)) != len(breakdowns):
        raise MeasureError("a breakdown is listed twice")
    return ["school_year"] + [_BREAKDOWN_COLUMN.get(b, b) for b in breakdowns]


def _aggregate(facts: ir.Table, measure: str, group: list[str]) -> list[ir.Table]:
    """Aggregations (one per subject for assessments) with columns students, count, value."""

    def counted(eligible: str | None, outcome: str) -> ir.Table:
        base = facts.filter(facts[eligible]) if eligible else facts
        return base.group_by(group).aggregate(
            students=_.student_id.nunique(),
            count=_.student_id.nunique(where=_[outcome]),
        )

    if measure == "enrolled":
        return [facts.group_by(group).aggregate(students=_.student_id.nunique(), count=_.student_id.nunique())]
    if measure == "attendance_rate":
        base = facts.filter(facts.days_enrolled > 0)
        return [base.group_by(group).aggregate(
            students=_.student_id.nunique(),
            days_enrolled=_.days_enrolled.sum(),
            days_absent=_.days_absent.sum(),
        )]
    if measure == "chronic_absence":
        return [counted("chronic_eligible", "chronically_absent")]
    if measure == "behavior_incident":
        return [counted(None, "any_incident")]
    if measure == "course_failure":
        return [counted("has_marks", "any_failure")]
    if measure == "low_income":
        return [counted(None, "low_income")]
    if measure == "assessment_benchmark":
        return [
            counted("tested_ela", "meets_ela").mutate(subject=ibis.literal("ELA")),
            counted("tested_math", "meets_math").mutate(subject=ibis.literal("Math")),
        ]
    raise MeasureError(f"unknown measure {measure!r}; choose from {', '.join(MEASURES)}")


def _breakdown_facts(con, years: Sequence[str], breakdowns: Sequence[str], student_ids,
                     facts: ir.Table | None = None) -> ir.Table:
    """The facts (the connection's, unless given) with each student's programs when broken down by them."""
    if facts is None:
        facts = cached_facts(con, years, student_ids)
    if "program" in breakdowns:
        facts = _with_programs(con, facts, years)
    return facts


def _measure_by_measure(con, measure: str, years: Sequence[str], breakdowns: Sequence[str], student_ids,
                        facts: ir.Table | None = None) -> pd.DataFrame:
    """One query per measure (per subject for assessments) over the facts: the measures as
    defined, kept as the reference the one-aggregation path is tested against."""
    facts = _breakdown_facts(con, years, breakdowns, student_ids, facts)
    parts = _aggregate(facts, measure, _group_columns(breakdowns))
    return pd.concat([p.to_pandas() for p in parts], ignore_index=True)


def _finish(frame: pd.DataFrame, measure: str) -> pd.DataFrame:
    if measure == "attendance_rate":
        # The day totals stay so that margins over any breakdown can be summed exactly.
        frame["days_enrolled"] = frame["days_enrolled"].astype("int64")
        frame["days_absent"] = frame["days_absent"].astype("int64")
        enrolled = frame["days_enrolled"].astype("float64")
        frame["count"] = pd.NA
        frame["value"] = (enrolled - frame["days_absent"]) / enrolled
    else:
        frame["value"] = frame["count"].astype("float64") / frame["students"].astype("float64")
    frame["students"] = frame["students"].astype("int64")
    frame["count"] = frame["count"].astype("Int64")
    return frame


# Facts first, then tables: a report asks for many measures and breakdowns of the same students
# and years. Each (years, students) fact table is built once per connection as a temporary table
# in the warehouse, and every aggregation reads it; only the aggregates come back.
_FACTS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_YEARS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _ids_key(student_ids: Sequence[str] | None) -> str | None:
    if student_ids is None:
        return None
    return hashlib.sha256("\n".join(sorted(student_ids)).encode()).hexdigest()


def cached_facts(con, years: Sequence[str], student_ids: Sequence[str] | None = None) -> ir.Table:
    """`student_year_facts`, computed once per connection for the same years and students."""
    key = (tuple(years), _ids_key(student_ids))
    if os.environ.get("WORKBENCH_NO_FACT_CACHE"):  # the previous path, for benchmarks/fill_benchmark.py
        return student_year_facts(con, years, student_ids)
    try:
        per_connection = _FACTS.setdefault(con, {})
    except TypeError:  # a backend that cannot be weakly referenced: no cache
        return student_year_facts(con, years, student_ids)
    if key not in per_connection:
        district = per_connection.get((tuple(years), None))
        if student_ids is not None and district is not None:
            # The district's facts are already in the warehouse: a cohort's are its rows of them
            # (every fact is per student and year), not a second pass over the raw tables.
            facts = rows_with(district, "student_id", list(student_ids))
        else:
            facts = student_year_facts(con, years, student_ids)
        try:
            facts = facts.cache()
        except Exception:  # noqa: BLE001 - a backend without temporary tables computes each time
            pass
        per_connection[key] = facts
    return per_connection[key]


def prepare_facts(con, years: Sequence[str], student_ids: Sequence[str] | None, *, district: bool) -> None:
    """Build the facts a table will need, the district's first when it is compared with the
    district: the cohort's facts are then taken from them instead of from the raw tables."""
    if district:
        cached_facts(con, years, None)
    cached_facts(con, years, student_ids)


def release_facts(con) -> None:
    """Drop the connection's cached fact tables from the warehouse now (they are temporary
    tables, dropped anyway when the connection closes); call it before closing a connection
    to a server that may go away first."""
    try:
        cached = _FACTS.pop(con, {})
        _SUMS_CACHE.pop(con, None)
    except TypeError:
        return
    for facts in cached.values():
        release = getattr(facts, "release", None)
        if release is not None:
            release()


def _available_years(con) -> set[str]:
    try:
        cached = _YEARS.get(con)
    except TypeError:
        cached = None
    if cached is None:
        cached = set(con.table("student_years").select("school_year").distinct().to_pandas()["school_year"])
        try:
            _YEARS[con] = cached
        except TypeError:
            pass
    return cached


# Each measure's columns in `_measure_sums`: (students column, count column, subject); the
# students column counts the rows the measure is over, as the filter in `_aggregate` does.
_SUMS = {
    "enrolled": [("sum_enrolled_students", "sum_enrolled_students", None)],
    "attendance_rate": [("sum_attendance_students", None, None)],
    "chronic_absence": [("sum_chronic_eligible", "sum_chronically_absent", None)],
    "behavior_incident": [("sum_enrolled_students", "sum_any_incident", None)],
    "course_failure": [("sum_has_marks", "sum_any_failure", None)],
    "low_income": [("sum_enrolled_students", "sum_low_income", None)],
    "assessment_benchmark": [("sum_tested_ela", "sum_meets_ela", "ELA"), ("sum_tested_math", "sum_meets_math", "Math")],
}


def _measure_sums(facts: ir.Table, group: list[str]) -> ir.Table:
    """Every measure's sums for each group in one aggregation: the same numbers `_aggregate`
    gives measure by measure, with a filtered count where `_aggregate` filters the rows first."""
    student = _.student_id
    attending = _.days_enrolled > 0
    return facts.group_by(group).aggregate(
        sum_enrolled_students=student.nunique(),
        sum_attendance_students=student.nunique(where=attending),
        sum_days_enrolled=_.days_enrolled.sum(where=attending),
        sum_days_absent=_.days_absent.sum(where=attending),
        sum_chronic_eligible=student.nunique(where=_.chronic_eligible),
        sum_chronically_absent=student.nunique(where=_.chronic_eligible & _.chronically_absent),
        sum_any_incident=student.nunique(where=_.any_incident),
        sum_has_marks=student.nunique(where=_.has_marks),
        sum_any_failure=student.nunique(where=_.has_marks & _.any_failure),
        sum_low_income=student.nunique(where=_.low_income),
        sum_tested_ela=student.nunique(where=_.tested_ela),
        sum_meets_ela=student.nunique(where=_.tested_ela & _.meets_ela),
        sum_tested_math=student.nunique(where=_.tested_math),
        sum_meets_math=student.nunique(where=_.tested_math & _.meets_math),
    )


_SUMS_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _cached_sums(con, years: Sequence[str], breakdowns: Sequence[str], student_ids) -> pd.DataFrame:
    """`_measure_sums` of the (years, students) facts by the breakdowns, queried once per connection."""
    group = _group_columns(breakdowns)
    key = (tuple(years), _ids_key(student_ids), tuple(breakdowns))
    try:
        per_connection = _SUMS_CACHE.setdefault(con, {})
    except TypeError:
        per_connection = {}
    if key not in per_connection:
        facts = _breakdown_facts(con, years, breakdowns, student_ids)
        per_connection[key] = _measure_sums(facts, group).to_pandas()
    return per_connection[key]


def _from_sums(sums: pd.DataFrame, measure: str, group: list[str]) -> pd.DataFrame:
    """One measure's frame, as `_aggregate` + to_pandas give it, taken from `_measure_sums`."""
    parts = []
    for students, count, subject in _SUMS[measure]:
        rows = sums[sums[students] > 0]  # a group with none of the measure's students has no row
        part = rows[group].copy()
        part["students"] = rows[students].astype("int64")
        if measure == "attendance_rate":
            part["days_enrolled"] = rows["sum_days_enrolled"]
            part["days_absent"] = rows["sum_days_absent"]
        else:
            part["count"] = rows[count].astype("int64")
        if subject is not None:
            part["subject"] = subject
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def _run(con, measure: str, years: Sequence[str], breakdowns: Sequence[str], student_ids) -> pd.DataFrame:
    group = _group_columns(breakdowns)
    if os.environ.get("WORKBENCH_NO_FACT_CACHE"):  # the previous path, for benchmarks/fill_benchmark.py
        frame = _measure_by_measure(con, measure, years, breakdowns, student_ids)
    else:
        frame = _from_sums(_cached_sums(con, years, breakdowns, student_ids), measure, group)
    frame = _finish(frame, measure)
    order = group + (["subject"] if "subject" in frame.columns else [])
    leading = order + ["students", "count", "value"]
    leading += [c for c in ("days_enrolled", "days_absent") if c in frame.columns]
    return frame[leading].sort_values(order, kind="stable").reset_index(drop=True)


def _prior(year: str) -> str:
    start = int(year[:4]) - 1
    return f"{start}-{start + 1}"


def compute(
    con,
    measure: str,
    years: Sequence[str],
    breakdowns: Sequence[str] = (),
    student_ids: Sequence[str] | None = None,
    *,
    prior_year: bool = False,
    district_comparison: bool = False,
) -> pd.DataFrame:
    """A measure by school year and the chosen breakdowns, computed in the warehouse.

    Columns: ``school_year``, one column per breakdown (``school_id`` for school, ``level`` for
    school_level), ``subject`` for assessments, then ``students`` (students in the group the
    measure is over), ``count`` (students with the outcome; empty for attendance rate) and
    ``value`` (the rate, 0-1).

    ``prior_year`` adds ``prior_value`` and ``change`` (value minus the same group's value the
    year before, where the warehouse has that year). ``district_comparison`` adds
    ``district_value``: the same measure and breakdown over every student in the district, which
    only makes sense with a cohort (``student_ids``).
    """
    if measure not in MEASURES:
        raise MeasureError(f"unknown measure {measure!r}; choose from {', '.join(MEASURES)}")
    years = _year_list(years)
    available = _available_years(con)
    missing = [y for y in years if y not in available]
    if missing:
        raise MeasureError(f"school year(s) not in the warehouse: {', '.join(missing)}")
    result = _run(con, measure, years, breakdowns, student_ids)
    keys = [c for c in result.columns if c not in ("students", "count", "value", "school_year", "days_enrolled", "days_absent")]
    if prior_year:
        earlier = [_prior(y) for y in years if _prior(y) in available]
        prior = _run(con, measure, earlier, breakdowns, student_ids) if earlier else result.iloc[0:0]
        prior = prior.assign(school_year=prior["school_year"].map(lambda y: f"{int(y[:4]) + 1}-{int(y[:4]) + 2}"))
        prior = prior[["school_year", *keys, "value"]].rename(columns={"value": "prior_value"})
        result = result.merge(prior, on=["school_year", *keys], how="left")
        result["change"] = result["value"] - result["prior_value"]
    if district_comparison:
        district = _run(con, measure, years, breakdowns, None)
        district = district[["school_year", *keys, "value"]].rename(columns={"value": "district_value"})
        result = result.merge(district, on=["school_year", *keys], how="left")
    return result
