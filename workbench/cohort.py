"""Cohorts: which students a request is about.

A cohort comes from a list of district or state student IDs, from a program tag as of a date, or
from a school and grades. ID lists arrive from spreadsheets and e-mails, so every ID is
normalized (whitespace, a lost leading zero, a spreadsheet's trailing ``.0``) and checked. The
result says which IDs matched, which are unknown, duplicated, malformed, or not enrolled in the
years asked. Nothing is guessed: an ID that could mean two things is malformed.

A `Cohort` never shows identified data in its repr; the lists are there for the analyst to
read on purpose.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Literal

from workbench.errors import InputError
from workbench.warehouse import rows_with

if TYPE_CHECKING:  # imported where used: reading and checking a request file needs neither
    import ibis
    import pandas as pd

DISTRICT_ID_WIDTH = 7
STATE_ID_WIDTH = 10

IdKind = Literal["district", "state", "auto"]

_SPREADSHEET_FLOAT = re.compile(r"^(\d+)\.0+$")
_DIGITS = re.compile(r"^\d+$")


class CohortError(InputError):
    """A cohort definition that cannot be evaluated (unknown program, school, bad grades)."""


@dataclass(frozen=True)
class NormalizedId:
    raw: str
    value: str | None  # the canonical ID, or None when malformed
    kind: Literal["district", "state"] | None
    problem: str | None = None


def normalize_student_id(raw: object, kind: IdKind = "auto") -> NormalizedId:
    """Canonical form of one student ID as typed or pasted.

    District IDs are 7 digits; spreadsheets drop their leading zeros, so shorter digit strings
    are zero-padded. State IDs are 10 digits and never start with 0. With ``kind="auto"`` an ID
    of 8 or 9 digits is neither and reported as malformed rather than guessed at.
    """
    text = "" if raw is None else str(raw)
    cleaned = text.strip().replace("\u00a0", "").replace(" ", "")
    float_form = _SPREADSHEET_FLOAT.match(cleaned)
    if float_form:
        cleaned = float_form.group(1)
    if not cleaned:
        return NormalizedId(text, None, None, "empty")
    if not _DIGITS.match(cleaned):
        return NormalizedId(text, None, None, "not all digits")
    if kind in ("district", "auto") and len(cleaned) <= DISTRICT_ID_WIDTH:
        if int(cleaned) == 0:
            return NormalizedId(text, None, None, "all zeros")
        return NormalizedId(text, cleaned.zfill(DISTRICT_ID_WIDTH), "district")
    if kind in ("state", "auto") and len(cleaned) == STATE_ID_WIDTH and cleaned[0] != "0":
        return NormalizedId(text, cleaned, "state")
    if kind == "district":
        return NormalizedId(text, None, None, f"longer than {DISTRICT_ID_WIDTH} digits")
    if kind == "state":
        return NormalizedId(text, None, None, f"not {STATE_ID_WIDTH} digits starting 1-9")
    return NormalizedId(
        text, None, None,
        f"neither a district ID (up to {DISTRICT_ID_WIDTH} digits) nor a state ID "
        f"({STATE_ID_WIDTH} digits starting 1-9)",
    )


_TYPO_LIKE = re.compile(r"[0-9A-Za-z]{1,12}")


def shown_entry(raw: str, position: int) -> str:
    """How a malformed entry is shown: as given when it is a mistyped ID, else only where it was.

    A mistyped ID (``12A``, ``00412 75``) is shown so the analyst can correct it. Anything else
    where an ID belongs (a name, a birth date pasted with it) must not travel on into the decision,
    the register or a log, where malformed entries are listed.
    """
    compact = raw.strip().replace(" ", "").replace("\u00a0", "")
    digits = sum(ch.isdigit() for ch in compact)
    if _TYPO_LIKE.fullmatch(compact) and digits * 2 >= len(compact):
        return raw
    return f"entry {position} (text, not shown)"


_ID_SEPARATORS = re.compile(r"[\s,;|]+")


def split_id_text(text: str) -> list[str]:
    """IDs from pasted text: any mix of newlines, spaces, commas, semicolons, tabs or pipes."""
    return [part for part in _ID_SEPARATORS.split(text) if part]


@dataclass
class Cohort:
    """The students a request covers, with everything found wrong on the way in."""

    source: str
    years: tuple[str, ...]
    matched: pd.DataFrame  # input, student_id, state_id (one row per distinct student)
    unknown: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    malformed: list[tuple[str, str]] = field(default_factory=list)  # (entry as shown, problem); see shown_entry
    not_enrolled: list[str] = field(default_factory=list)

    @property
    def student_ids(self) -> list[str]:
        """District IDs of the students in the cohort (matched and enrolled in the years asked)."""
        return self.matched["student_id"].tolist()

    @property
    def size(self) -> int:
        return len(self.matched)

    @property
    def is_clean(self) -> bool:
        return not (self.unknown or self.duplicated or self.malformed or self.not_enrolled)

    def counts(self) -> dict[str, int]:
        return {
            "matched": self.size,
            "unknown": len(self.unknown),
            "duplicated": len(self.duplicated),
            "malformed": len(self.malformed),
            "not_enrolled": len(self.not_enrolled),
        }

    def summary(self) -> str:
        """Counts only, so it is safe to print or log."""
        parts = ", ".join(f"{n} {label.replace('_', ' ')}" for label, n in self.counts().items())
        return f"cohort from {self.source} for {', '.join(self.years)}: {parts}"

    def __repr__(self) -> str:  # deliberately free of IDs
        return f"<Cohort {self.summary()}>"


def _enrolled_ids(con, years: Sequence[str]) -> ibis.Table:
    student_years = con.table("student_years")
    return student_years.filter(student_years.school_year.isin(list(years))).select("student_id").distinct()


def cohort_from_ids(
    con,
    ids: Iterable[object] | str,
    years: Sequence[str],
    id_kind: IdKind = "auto",
) -> Cohort:
    """Check a list of IDs (or pasted text) against the warehouse.

    Only the distinct normalized IDs are sent to the warehouse; the lookup is one query for
    district IDs and one for state IDs.
    """
    import pandas as pd

    if isinstance(ids, str):
        ids = split_id_text(ids)
    years = tuple(years)
    if not years:
        raise CohortError("a cohort needs at least one school year")
    seen: dict[str, str] = {}
    duplicated: list[str] = []
    malformed: list[tuple[str, str]] = []
    by_kind: dict[str, list[str]] = {"district": [], "state": []}
    for position, raw in enumerate(ids, start=1):
        normalized = normalize_student_id(raw, id_kind)
        if normalized.value is None:
            malformed.append((shown_entry(normalized.raw, position), normalized.problem or "malformed"))
            continue
        key = f"{normalized.kind}:{normalized.value}"
        if key in seen:
            duplicated.append(normalized.raw)
            continue
        seen[key] = normalized.raw
        by_kind[normalized.kind].append(normalized.value)

    students = con.table("students")
    found_parts = []
    for kind, column in (("district", "student_id"), ("state", "state_id")):
        if not by_kind[kind]:
            continue
        hits = rows_with(students, column, by_kind[kind]).select("student_id", "state_id")
        frame = hits.to_pandas()
        frame["key"] = kind + ":" + frame[column]
        found_parts.append(frame)
    found = (
        pd.concat(found_parts, ignore_index=True)
        if found_parts
        else pd.DataFrame(columns=["student_id", "state_id", "key"])
    )
    found_keys = set(found["key"])
    unknown = [raw for key, raw in seen.items() if key not in found_keys]

    # The same student given once by district ID and once by state ID is a duplicate too.
    position = {key: index for index, key in enumerate(seen)}
    found["input"] = found["key"].map(seen)
    found["position"] = found["key"].map(position)
    found = found.sort_values("position", kind="stable")
    repeated = found.duplicated("student_id", keep="first")
    duplicated.extend(found.loc[repeated, "input"].tolist())
    found = found.loc[~repeated]

    enrolled = set()
    if len(found):
        enrolled_table = _enrolled_ids(con, years)
        enrolled = set(rows_with(enrolled_table, "student_id", found["student_id"].tolist()).to_pandas()["student_id"])
    in_years = found["student_id"].isin(enrolled)
    not_enrolled = found.loc[~in_years, "input"].tolist()
    matched = found.loc[in_years, ["input", "student_id", "state_id"]].reset_index(drop=True)
    return Cohort(
        source="student IDs",
        years=years,
        matched=matched,
        unknown=unknown,
        duplicated=duplicated,
        malformed=malformed,
        not_enrolled=not_enrolled,
    )


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def cohort_from_program(con, program_id: str, as_of: date | str | None, years: Sequence[str]) -> Cohort:
    """Students tagged to a program on a date (added on or before it, not yet dropped).

    With ``as_of=None``, every student tagged at any time during the school years: the students
    a program served, which is what a partner's evaluation report is about.
    """
    import pandas as pd

    years = tuple(years)
    programs = con.table("programs")
    if programs.filter(programs.program_id == program_id).count().to_pandas() == 0:
        raise CohortError(f"no program {program_id!r} in the warehouse")
    tags = con.table("program_students")
    tags = tags.filter(tags.program_id == program_id)
    if as_of is not None:
        as_of = _as_date(as_of)
        active = tags.filter((tags.added_on <= as_of) & (tags.dropped_on.isnull() | (tags.dropped_on > as_of)))
        when = f"as of {as_of.isoformat()}"
    else:
        calendar = con.table("school_calendar")
        calendar = calendar.filter(calendar.school_year.isin(list(years)))
        first = calendar.first_day.min().to_pandas()
        last = calendar.last_day.max().to_pandas()
        if first is None or pd.isna(first):
            raise CohortError(f"no school calendar for {', '.join(years)}")
        active = tags.filter((tags.added_on <= last) & (tags.dropped_on.isnull() | (tags.dropped_on > first)))
        when = f"during {', '.join(years)}"
    active = active.select("student_id").distinct()
    enrolled = _enrolled_ids(con, years)
    students = con.table("students")
    tagged = active.join(students, "student_id").select("student_id", "state_id")
    in_years = tagged.join(enrolled, "student_id").select("student_id", "state_id")
    matched = in_years.order_by("student_id").to_pandas()
    out_of_years = tagged.anti_join(enrolled, "student_id").select("student_id").to_pandas()
    matched.insert(0, "input", matched["student_id"])
    return Cohort(
        source=f"program {program_id} {when}",
        years=years,
        matched=matched,
        not_enrolled=out_of_years["student_id"].tolist(),
    )


def cohort_from_school(
    con, school_id: str, years: Sequence[str], grades: Sequence[int] | None = None
) -> Cohort:
    """Students whose school of record in any of the years is the school (optionally by grade)."""
    from workbench.measures import school_of_record

    years = tuple(years)
    schools = con.table("schools")
    if schools.filter(schools.school_id == school_id).count().to_pandas() == 0:
        raise CohortError(f"no school {school_id!r} in the warehouse")
    if grades is not None:
        bad = [g for g in grades if not isinstance(g, int) or not 0 <= g <= 12]
        if bad:
            raise CohortError(f"grades must be whole numbers 0 (kindergarten) to 12, got {bad}")
    records = school_of_record(con, years)
    chosen = records.filter(records.school_id == school_id)
    if grades is not None:
        chosen = chosen.filter(chosen.grade.isin(list(grades)))
    students = con.table("students")
    matched = (
        chosen.select("student_id").distinct().join(students, "student_id")
        .select("student_id", "state_id").order_by("student_id").to_pandas()
    )
    matched.insert(0, "input", matched["student_id"])
    grade_text = f" grades {', '.join(map(str, grades))}" if grades is not None else ""
    return Cohort(source=f"school {school_id}{grade_text}", years=years, matched=matched)


def members_by_year(
    con,
    years: Sequence[str],
    *,
    student_ids: Sequence[str] | None = None,
    program: str | None = None,
    school: str | None = None,
    grades: Sequence[int] | None = None,
) -> dict[str, set[str]]:
    """The students a cohort definition covers in each school year: the one place that says so.

    A student belongs to year Y when their school of record in Y exists (they count in Y's
    tables) and, by the cohort's kind:

    - a list of IDs: the student is on the list;
    - a program: the student was tagged to it at some time during Y (added on or before Y's last
      day, not dropped before its first day);
    - a school (and grades): Y's school of record is the school (in one of the grades);
    - nothing: every student.

    Decisions, tables, extracts and the release check all use this definition, so a plan's
    population and what is released cannot differ.
    """
    from workbench.measures import school_of_record

    years = [str(y) for y in years]
    if not years:
        raise CohortError("a cohort needs at least one school year")
    records = school_of_record(con, years)
    if school is not None:
        records = records.filter(records.school_id == school)
        if grades is not None:
            records = records.filter(records.grade.isin(list(grades)))
    if student_ids is not None:
        records = rows_with(records, "student_id", list(student_ids))
    if program is not None:
        calendar = con.table("school_calendar")
        bounds = calendar.filter(calendar.school_year.isin(years)).group_by("school_year").aggregate(
            first=calendar.first_day.min(), last=calendar.last_day.max())
        tags = con.table("program_students")
        tags = tags.filter(tags.program_id == program).cross_join(bounds)
        active = tags.filter(
            (tags.added_on <= tags["last"]) & (tags.dropped_on.isnull() | (tags.dropped_on > tags["first"]))
        ).select("student_id", "school_year").distinct()
        records = records.semi_join(active, ["student_id", "school_year"])
    frame = records.select("student_id", "school_year").to_pandas()
    members: dict[str, set[str]] = {year: set() for year in years}
    for year, ids in frame.groupby("school_year")["student_id"]:
        members[str(year)] = set(ids)
    return members
