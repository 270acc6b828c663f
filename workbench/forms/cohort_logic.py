"""The cohort picker's logic, without widgets: pasted text, an uploaded file, a program or a school
-> a checked cohort, its counts, and the cohort spec a request file takes.

IDs are normalized by `workbench.cohort` (any separators, lost leading zeros, a spreadsheet's
``.0``); files are read by `workbench.id_files.read_id_file` (finds the ID column by its contents);
consents are judged by `workbench.policy.evidence.consent_status` under the policy's consent rule,
the same check the decision makes. The warehouse is asked a fixed number of queries whatever the
number of IDs (no per-ID queries).

The summary shows counts, and the problem entries exactly as the analyst gave them (IDs only:
never names or dates of birth, which the picker does not read).
"""

from __future__ import annotations

import html
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from workbench.cohort import Cohort, cohort_from_ids, cohort_from_program, cohort_from_school, normalize_student_id, split_id_text
from workbench.policy import evidence
from workbench.id_files import ID_FILE_SUFFIXES, IdFileError, read_id_file

PROBLEM_LABELS = {
    "unknown": "not found in the warehouse",
    "duplicated": "duplicated (counted once)",
    "malformed": "malformed (not a student ID)",
    "not_enrolled": "out of scope: not enrolled in the years asked",
}


@dataclass(frozen=True)
class CohortChoice:
    """What the analyst picked, before it is checked against the warehouse."""

    kind: str  # student_ids | program | school
    source: str  # for people: "pasted IDs", "file roster.csv", "program PRG-001", ...
    raw_ids: tuple[str, ...] = ()  # as given, for student_ids
    id_kind: str = "auto"
    program: str | None = None
    program_as_of: date | None = None  # None: every student the program served during the years
    school: str | None = None
    grades: tuple[int, ...] | None = None

    @property
    def ids(self) -> list[str]:
        """The distinct well-formed IDs, normalized (leading zeros restored), in the order given."""
        seen: dict[str, None] = {}
        for raw in self.raw_ids:
            normalized = normalize_student_id(raw, self.id_kind)  # type: ignore[arg-type]
            if normalized.value is not None:
                seen.setdefault(normalized.value, None)
        return list(seen)

    def spec(self, cohort: Cohort | None = None) -> dict[str, Any] | None:
        """The request's `cohort:` entry (IDs inline), or None when nothing usable was picked.

        A program picked as of a fixed date is frozen to the IDs of the students tagged that day
        (a request's `program:` means every student the program served during the years asked), so
        it needs the checked cohort.
        """
        if self.kind == "student_ids":
            ids = self.ids
            if not ids:
                return None
            return {"student_ids": ids, **({"id_kind": self.id_kind} if self.id_kind != "auto" else {})}
        if self.kind == "program" and self.program:
            if self.program_as_of is None:
                return {"program": self.program}
            if cohort is None or not cohort.student_ids:
                return None
            return {"student_ids": list(cohort.student_ids)}
        if self.kind == "school" and self.school:
            spec: dict[str, Any] = {"school": self.school}
            if self.grades:
                spec["grades"] = list(self.grades)
            return spec
        return None

    def ids_for_file(self, cohort: Cohort | None = None) -> list[str] | None:
        """IDs to write to an ID file next to the request (None: the spec needs no file)."""
        spec = self.spec(cohort)
        if spec is None or not isinstance(spec.get("student_ids"), list):
            return None
        return spec["student_ids"]


def choice_from_ids(raw_ids: Sequence[object], source: str = "pasted IDs", id_kind: str = "auto") -> CohortChoice:
    return CohortChoice("student_ids", source, tuple("" if r is None else str(r) for r in raw_ids), id_kind)


def choice_from_text(text: str, id_kind: str = "auto") -> CohortChoice:
    """IDs pasted with any separators (newlines, commas, semicolons, tabs, spaces, pipes)."""
    return choice_from_ids(split_id_text(text or ""), "pasted IDs", id_kind)


def ids_from_upload(name: str, content: bytes | memoryview) -> tuple[list[str], str]:
    """IDs from an uploaded CSV, XLSX or TXT file, read as text (leading zeros kept)."""
    suffix = Path(name).suffix.lower()
    label = Path(name).name
    if suffix not in ID_FILE_SUFFIXES:
        raise IdFileError(f"{label}: IDs are read from {', '.join(ID_FILE_SUFFIXES)} files, "
                          f"not {suffix or 'a file without extension'}")
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / f"upload{suffix}"
        path.write_bytes(bytes(content))
        return read_id_file(path, label)


def choice_from_upload(name: str, content: bytes | memoryview) -> CohortChoice:
    ids, kind = ids_from_upload(name, content)
    return choice_from_ids(ids, f"file {Path(name).name}", kind)


def choice_from_program(program: str, as_of: date | None = None) -> CohortChoice:
    when = f" as of {as_of.isoformat()}" if as_of else ""
    return CohortChoice("program", f"program {program}{when}", program=program, program_as_of=as_of)


def choice_from_school(school: str, grades: Sequence[int] | None = None) -> CohortChoice:
    grades_tuple = tuple(sorted(int(g) for g in grades)) if grades else None
    text = f" grades {', '.join(map(str, grades_tuple))}" if grades_tuple else ""
    return CohortChoice("school", f"school {school}{text}", school=school, grades=grades_tuple)


def resolve(con, choice: CohortChoice, years: Sequence[str]) -> Cohort:
    """Check the choice against the warehouse.

    A program without its own date counts the way the decision counts a request's `program:`:
    every student tagged to it at some time during the years (workbench.cohort.members_by_year),
    so the picker's count and the decision beside it are the same number.
    """
    if choice.kind == "student_ids":
        return cohort_from_ids(con, list(choice.raw_ids), years, choice.id_kind)  # type: ignore[arg-type]
    if choice.kind == "program":
        return cohort_from_program(con, choice.program or "", choice.program_as_of, years)
    if choice.kind == "school":
        return cohort_from_school(con, choice.school or "", years, list(choice.grades) if choice.grades else None)
    raise ValueError(f"unknown cohort kind {choice.kind!r}")


@dataclass
class CohortSummary:
    """Counts about a checked cohort, with the problem entries as given. No names, no dates of birth."""

    source: str
    years: tuple[str, ...]
    given: int  # entries given (pasted or uploaded lines); for program/school: students found
    counts: dict[str, int]
    problems: dict[str, list[str]] = field(default_factory=dict)  # label -> entries as given
    consent_partner: str | None = None
    consent_valid: int | None = None  # matched students with a consent the policy accepts
    consent_note: str = ""
    outside_scope: int | None = None  # from the decision: outside the students the requester may see

    @property
    def matched(self) -> int:
        return self.counts["matched"]

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "years": list(self.years), "given": self.given, "counts": dict(self.counts),
                "consent_partner": self.consent_partner, "consent_valid": self.consent_valid,
                "outside_scope": self.outside_scope}


def count_valid_consents(con, student_ids: Sequence[str], partner_id: str | None, as_of: date, policy) -> int:
    """How many of the students have a consent for the partner that the policy accepts on `as_of`."""
    status = evidence.consent_status(con, list(student_ids), partner_id, as_of, policy.pack.consent)
    return sum(1 for problem in status.values() if problem is None)


def summarize(con, choice: CohortChoice, years: Sequence[str], *, policy=None, partner_id: str | None = None,
              as_of: date | None = None, cohort: Cohort | None = None) -> CohortSummary:
    """Check the choice and count: matched, unknown, duplicated, malformed, not enrolled, consents."""
    as_of = as_of or date.today()
    cohort = cohort if cohort is not None else resolve(con, choice, years)
    problems = {
        "unknown": list(cohort.unknown),
        "duplicated": list(cohort.duplicated),
        "malformed": [f"{raw} ({problem})" for raw, problem in cohort.malformed],
        "not_enrolled": list(cohort.not_enrolled),
    }
    given = len(choice.raw_ids) if choice.kind == "student_ids" else cohort.size + len(cohort.not_enrolled)
    summary = CohortSummary(cohort.source if choice.kind != "student_ids" else choice.source, tuple(years), given,
                            cohort.counts(), {k: v for k, v in problems.items() if v})
    partner = (partner_id or "").strip() or None
    if policy is None:
        summary.consent_note = "choose a policy to count consents"
    elif partner is None:
        summary.consent_note = "consents are given to a partner: enter the partner ID to count them"
    else:
        summary.consent_partner = partner
        summary.consent_valid = count_valid_consents(con, cohort.student_ids, partner, as_of, policy)
        summary.consent_note = f"under the {policy.name} consent rule, as of {as_of.isoformat()}"
    return summary


def scope_exclusions(decision) -> int:
    """Students the decision left out because they are outside the requester's scope."""
    return sum(1 for s in decision.students
               if s.level == "excluded" and s.reasons and s.reasons[0].rule.endswith(".student_scope"))


def summary_html(summary: CohortSummary, limit: int = 25) -> str:
    """Counts first, then up to `limit` problem entries of each kind (IDs as given, nothing else)."""
    e = html.escape
    rows = [("given", "Entries given", summary.given),
            ("matched", "Matched (enrolled in the years)", summary.counts["matched"])]
    rows += [(k, PROBLEM_LABELS[k][0].upper() + PROBLEM_LABELS[k][1:], summary.counts[k])
             for k in ("unknown", "duplicated", "malformed", "not_enrolled")]
    if summary.outside_scope is not None:
        rows.append(("outside_scope", "Out of scope: outside the students the requester may see", summary.outside_scope))
    if summary.consent_valid is not None:
        rows.append(("consent", f"With a consent for {summary.consent_partner} the policy accepts", summary.consent_valid))
    table = "".join(
        f"<tr><th style='text-align:left;padding-right:1em'>{e(label)}</th>"
        f"<td class='wb-count' data-count='{key}'>{n}</td></tr>" for key, label, n in rows)
    details = []
    for key, entries in summary.problems.items():
        shown = ", ".join(e(x) for x in entries[:limit])
        more = f" and {len(entries) - limit} more" if len(entries) > limit else ""
        details.append(f"<li class='wb-problem-ids' data-kind='{e(key)}'><b>{e(PROBLEM_LABELS[key])}</b>: {shown}{more}</li>")
    note = f"<div style='color:#555'>Consents: {e(summary.consent_note)}</div>" if summary.consent_note else ""
    return (f"<div class='wb-cohort-summary' data-matched='{summary.counts['matched']}'>"
            f"<div><b>{e(summary.source)}</b> for {e(', '.join(summary.years))}</div>"
            f"<table>{table}</table>{note}"
            + (f"<ul>{''.join(details)}</ul>" if details else "") + "</div>")
