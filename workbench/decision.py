"""Decide what a request may receive, under a policy pack, from the agreements on file.

    decision = decide(request, load_policy("bps"), connect(), as_of=date(2026, 11, 2))
    decision.outcome        # approve | partial | refuse | redirect
    decision.to_json()

The decision is made before any measure is computed. It names the level granted, the exact
students of each school year with each one's level (`population`), the fields withheld, every
reason with the pack rule and the seed lines behind it, the due dates in business days and a fee
estimate. It is made once per request: `workbench.plan` carries it to the template, the release
check and the manifest, and nothing downstream resolves the cohort again.

A decision never releases more than was asked. "More" is the order of vocabulary.level_at_most:
aggregate < deidentified < identified, directory < identified; the only way down a decision takes
is identified -> deidentified. Fields, measures, breakdowns, years and students granted are
subsets of those asked; each student's level is at most the level asked.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from workbench.cohort import (
    Cohort,
    CohortError,
    cohort_from_ids,
    cohort_from_program,
    cohort_from_school,
    members_by_year,
)
from workbench.policy import evidence
from workbench.policy.loader import Policy
from workbench.policy.model import Note, RoleRule, Source
from workbench.policy.vocabulary import DOWNGRADE, PER_STUDENT_REQUIREMENTS, STUDENT_LEVELS
from workbench.request import DataRequest

OUTCOMES = ("approve", "partial", "refuse", "redirect")
EFFECTS = ("refuse", "redirect", "limit", "condition", "info")
EXCLUDED = "excluded"
_LEVEL_RANK = {"aggregate": 1, "directory": 1, "deidentified": 2, "identified": 3}


@dataclass(frozen=True)
class Reason:
    rule: str  # dotted path of the rule in the resolved pack, e.g. roles.researcher.requires
    message: str
    source: dict | None  # {"file": ..., "lines": [...]} or {"external": ...}
    effect: str = "info"  # refuse | redirect | limit | condition | info
    see_also: tuple[dict, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = {"rule": self.rule, "message": self.message, "source": self.source, "effect": self.effect}
        if self.see_also:
            out["see_also"] = list(self.see_also)
        return out


def citation(source: dict | None) -> str:
    """Where a reason comes from, for a person: the document's title, its lines and the words quoted."""
    source = source or {}
    if source.get("file"):
        lines = source.get("lines") or []
        where = f", line{'s' if len(lines) > 1 else ''} {', '.join(map(str, lines))}" if lines else ""
        quote = f': "{source["quote"]}"' if source.get("quote") else ""
        return f"{source.get('document') or source['file']}{where}{quote}"
    return source.get("external", "") or ""


@dataclass
class StudentDecision:
    student_id: str  # the district ID; for IDs not found, the entry as given
    level: str  # identified | deidentified | directory | aggregate | excluded
    reasons: list[Reason] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"student_id": self.student_id, "level": self.level, "reasons": [r.to_dict() for r in self.reasons]}


@dataclass
class Decision:
    request_id: str
    policy: str
    policy_hash: str
    as_of: date
    requested_level: str
    outcome: str
    level: str | None  # the highest level granted; None when refused or redirected
    years: list[str]
    measures: list[str]
    breakdowns: list[str]
    fields: list[str]
    withheld_fields: list[dict]
    redact_as_needed: list[str]
    students: list[StudentDecision]  # per student when the cohort is a list of IDs
    cohort: dict[str, Any]  # counts by level, free of IDs
    reasons: list[Reason]
    conditions: list[str]
    redirect_to: dict | None
    due_date: date | None
    clarify_by: date | None
    fee_estimate: dict | None
    small_groups: dict | None
    public_data: list[dict]
    office: dict | None = None  # who answers for the district, from the pack
    # year -> {district student ID: level} for every student the release may cover that year
    # (excluded students are not in it). Holds IDs: never part of to_dict(); see workbench.plan.
    population: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "request_id": self.request_id,
            "policy": self.policy,
            "policy_hash": self.policy_hash,
            "as_of": self.as_of.isoformat(),
            "requested_level": self.requested_level,
            "outcome": self.outcome,
            "level": self.level,
            "years": self.years,
            "measures": self.measures,
            "breakdowns": self.breakdowns,
            "fields": self.fields,
            "withheld_fields": self.withheld_fields,
            "redact_as_needed": self.redact_as_needed,
            "students": [s.to_dict() for s in self.students],
            "cohort": self.cohort,
            "reasons": [r.to_dict() for r in self.reasons],
            "conditions": self.conditions,
            "redirect_to": self.redirect_to,
            "due_date": self.due_date.isoformat() if self.due_date else None,
            "clarify_by": self.clarify_by.isoformat() if self.clarify_by else None,
            "fee_estimate": self.fee_estimate,
            "small_groups": self.small_groups,
            "public_data": self.public_data,
            "office": self.office,
        }
        return out

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def to_public_dict(self) -> dict[str, Any]:
        """The decision without student IDs: what a release (manifest, letter) may carry."""
        out = self.to_dict()
        out["students"] = f"{len(self.students)} students, by level: {self.cohort.get('by_level', {})}"
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], population: dict[str, dict[str, str]] | None = None) -> "Decision":
        """The decision `to_dict` wrote (a plan file), with the population kept beside it."""

        def reason(item: dict) -> Reason:
            return Reason(item["rule"], item["message"], item.get("source"), item.get("effect", "info"),
                          tuple(item.get("see_also", ())))

        def day(text: str | None) -> date | None:
            return date.fromisoformat(text) if text else None

        students = data.get("students") or []
        return cls(
            request_id=data["request_id"], policy=data["policy"], policy_hash=data["policy_hash"],
            as_of=date.fromisoformat(data["as_of"]), requested_level=data["requested_level"],
            outcome=data["outcome"], level=data["level"], years=list(data["years"]),
            measures=list(data["measures"]), breakdowns=list(data["breakdowns"]), fields=list(data["fields"]),
            withheld_fields=list(data["withheld_fields"]), redact_as_needed=list(data["redact_as_needed"]),
            students=[StudentDecision(s["student_id"], s["level"], [reason(r) for r in s.get("reasons", [])])
                      for s in students if isinstance(s, dict)],
            cohort=dict(data["cohort"]), reasons=[reason(r) for r in data["reasons"]],
            conditions=list(data["conditions"]), redirect_to=data.get("redirect_to"),
            due_date=day(data.get("due_date")), clarify_by=day(data.get("clarify_by")),
            fee_estimate=data.get("fee_estimate"), small_groups=data.get("small_groups"),
            public_data=list(data.get("public_data") or []), office=data.get("office"),
            population={year: dict(levels) for year, levels in (population or {}).items()},
        )

    def student_levels(self) -> dict[str, str]:
        """Each student's level, over every year of the population (and any listed student)."""
        levels = {s.student_id: s.level for s in self.students}
        for members in self.population.values():
            levels.update(members)
        return levels

    def students_in(self, year: str, levels: set[str] | frozenset[str] | None = None) -> list[str]:
        """The students the release may cover in `year` (at one of `levels`), sorted."""
        members = self.population.get(year, {})
        return sorted(sid for sid, level in members.items() if levels is None or level in levels)

    def summary(self) -> str:
        """One line without student data."""
        level = self.level or "nothing"
        return f"{self.request_id} under {self.policy}: {self.outcome}, {level} ({self.cohort.get('by_level', {})})"


def _source(source: Source | None) -> dict | None:
    return source.as_dict() if source is not None else None


class _Decider:
    """One decision in progress: the request, the pack, the warehouse and the reasons so far."""

    def __init__(self, request: DataRequest, policy: Policy, con, as_of: date) -> None:
        self.request = request
        self.policy = policy
        self.pack = policy.pack
        self.con = con
        self.as_of = as_of
        self.requester = request.requester
        self.reasons: list[Reason] = []
        self.conditions: list[str] = []
        self._checks: dict[str, evidence.Check] = {}
        self._current_year: str | None = None

    # -- reasons -------------------------------------------------------------------------
    def note(self, rule: str, message: str, cited, effect: str = "info") -> Reason:
        source = getattr(cited, "source", cited)
        see_also = tuple(s.as_dict() for s in getattr(cited, "see_also", ()) or ())
        reason = Reason(rule=rule, message=message, source=_source(source), effect=effect, see_also=see_also)
        self.reasons.append(reason)
        return reason

    def refused(self) -> bool:
        return any(r.effect == "refuse" for r in self.reasons)

    @property
    def current_year(self) -> str:
        if self._current_year is None:
            self._current_year = evidence.current_school_year(self.con, self.as_of)
        return self._current_year

    # -- requirements --------------------------------------------------------------------
    def check(self, requirement: str, role: RoleRule) -> evidence.Check:
        if requirement not in self._checks:
            r = self.requester
            if requirement == "partner_registration":
                result = evidence.partner_registration(self.con, r.partner_id, self.as_of)
            elif requirement == "nda":
                result = evidence.nda(self.con, nda_id=r.nda_id, partner_id=r.partner_id,
                                      organization=r.organization, as_of=self.as_of)
            elif requirement == "research_approval":
                result = evidence.research_approval(self.con, approval_id=r.research_approval_id,
                                                    organization=r.organization, as_of=self.as_of)
            elif requirement == "staff_assignment":
                result = evidence.staff_assignment(self.con, staff_id=r.staff_id, school_id=r.staff_school_id,
                                                   staff_role=role.staff_role or "", year=self.current_year)
            else:  # per-student requirements are checked student by student
                raise ValueError(f"{requirement} is not a request-wide requirement")
            self._checks[requirement] = result
        return self._checks[requirement]


def _connect(warehouse):
    if warehouse is None or isinstance(warehouse, (str, os.PathLike)):
        from workbench.warehouse import connect

        return connect(warehouse)
    return warehouse


@dataclass
class _Effective:
    """The role's rule with a claimed FERPA exception applied."""

    role_name: str
    role: RoleRule
    levels: tuple[str, ...]
    requires: dict[str, str]  # requirement -> rule path it comes from
    waives: frozenset[str]
    scope: str
    exception: str | None


def _effective_rule(d: _Decider, role_name: str, role: RoleRule) -> _Effective:
    requires = {req: f"roles.{role_name}.requires" for req in role.requires}
    waives = set(role.waives)
    levels = tuple(role.levels)
    scope = role.student_scope
    claimed = d.request.exception
    applied = None
    if claimed:
        rule = d.pack.exceptions.get(claimed)
        if rule is None:
            d.reasons.append(Reason("exceptions", f"the {d.policy.name} policy does not recognise the {claimed} "
                                    "exception; decided without it", None, "limit"))
        elif role_name not in rule.roles:
            d.note(f"exceptions.{claimed}.roles",
                   f"the {claimed} exception is not available to a {role_name.replace('_', ' ')}; decided without it",
                   rule, "limit")
        else:
            applied = claimed
            d.note(f"exceptions.{claimed}", f"FERPA exception claimed: {rule.description}", rule)
            levels = tuple(dict.fromkeys(levels + tuple(rule.levels)))
            requires.update({req: f"exceptions.{claimed}.requires" for req in rule.requires})
            waives |= set(rule.waives)
            scope = rule.student_scope or scope
    return _Effective(role_name, role, levels, requires, frozenset(waives), scope, applied)


def _level_requirements(d: _Decider, eff: _Effective, level: str) -> dict[str, str]:
    needed = dict(eff.requires)
    for req in d.pack.levels[level].requires:
        needed.setdefault(req, f"levels.{level}.requires")
    return {req: path for req, path in needed.items() if req not in eff.waives}


def _cited_for(d: _Decider, path: str):
    """The pack rule object a dotted path points at (for its source)."""
    node: Any = d.pack
    for part in path.split(".")[:-1] if path.endswith(".requires") else path.split("."):
        node = node.get(part) if isinstance(node, dict) else getattr(node, part)
    return node


def _request_wide_failures(d: _Decider, eff: _Effective, level: str) -> list[tuple[str, str, evidence.Check]]:
    failures = []
    for req, path in _level_requirements(d, eff, level).items():
        if req in PER_STUDENT_REQUIREMENTS:
            continue
        result = d.check(req, eff.role)
        if not result.ok:
            failures.append((req, path, result))
    return failures


_REQUIREMENT_WORDS = {
    "partner_registration": "a complete, current partner registration",
    "nda": "a current signed NDA",
    "research_approval": "an approved, current research proposal",
    "staff_assignment": "a staff assignment in the current school year",
}


def _choose_level(d: _Decider, eff: _Effective) -> str | None:
    """The requested level, or the one below it that the role and the agreements allow.

    A requirement of the role (or of a claimed exception) holds at every level, so failing it
    refuses outright; a requirement of one level only sends the decision one level down.
    """
    requested = d.request.level
    candidate: str | None = requested
    while candidate is not None:
        lower = DOWNGRADE.get(candidate)
        then = f"; trying {lower} rows instead" if lower else ""
        if candidate not in eff.levels:
            allowed = ", ".join(eff.levels) or "none"
            d.note(f"roles.{eff.role_name}.levels",
                   f"a {eff.role_name.replace('_', ' ')} may receive {allowed} data, not {candidate}{then}",
                   eff.role, "limit" if lower else "refuse")
            candidate = lower
            continue
        failures = _request_wide_failures(d, eff, candidate)
        if not failures:
            for req, path in _level_requirements(d, eff, candidate).items():
                if req not in PER_STUDENT_REQUIREMENTS:
                    d.note(path, d.check(req, eff.role).message, _cited_for(d, path))
            return candidate
        everywhere = [f for f in failures if not f[1].startswith("levels.")]
        for req, path, result in everywhere or failures:
            scope = "any data" if everywhere else f"{candidate} data"
            tail = "" if everywhere else then
            d.note(path, f"{scope} needs {_REQUIREMENT_WORDS[req]}: {result.message}{tail}",
                   _cited_for(d, path), "refuse" if everywhere or not lower else "limit")
        if everywhere:
            return None
        candidate = lower
    return None


# -- cohort --------------------------------------------------------------------------------

@dataclass
class _Students:
    ids: list[str]  # district IDs in the cohort, over every year
    kind: str
    by_year: dict[str, set[str]]  # the cohort's students in each year (workbench.cohort.members_by_year)
    cohort: Cohort | None = None


def _resolve_cohort(d: _Decider, eff: _Effective, years: list[str]) -> _Students | None:
    spec = d.request.cohort

    def students(kind: str, cohort: Cohort | None = None, **definition) -> _Students:
        by_year = members_by_year(d.con, years, **definition)
        ids = sorted(set().union(*by_year.values()))
        return _Students(ids, kind, by_year, cohort)

    if spec is None and eff.scope == "own_children":
        return students("student_ids", student_ids=sorted(evidence.district_ids(d.con, d.requester.student_ids)))
    kind = spec.kind if spec is not None else "district"
    kind_rule = d.pack.cohort.kinds.get(kind)
    if kind_rule is not None:
        d.note(f"cohort.kinds.{kind}", kind_rule.message, kind_rule, "info" if kind_rule.accepted else "refuse")
        if not kind_rule.accepted:
            return None
    try:
        if kind == "student_ids":
            cohort = cohort_from_ids(d.con, list(spec.student_ids), years, spec.id_kind)
            _note_cohort_problems(d, cohort)
            return students(kind, cohort, student_ids=cohort.student_ids)
        if kind == "program":
            # The students the program served in each year asked (see members_by_year).
            cohort = cohort_from_program(d.con, spec.program, None, years)
            return students(kind, cohort, program=spec.program)
        if kind == "school":
            grades = list(spec.grades) if spec.grades else None
            cohort = cohort_from_school(d.con, spec.school, years, grades)
            return students(kind, cohort, school=spec.school, grades=grades)
    except CohortError as exc:
        d.reasons.append(Reason(rule="cohort", message=str(exc), source=None, effect="refuse"))
        return None
    return students("district")


def _note_cohort_problems(d: _Decider, cohort: Cohort) -> None:
    problems = {
        "unknown": "not found in the warehouse",
        "malformed": "not valid student IDs",
        "duplicated": "listed more than once (counted once)",
        "not_enrolled": "not enrolled in the years asked",
    }
    for label, what in problems.items():
        count = cohort.counts()[label]
        if count:
            effect = "info" if label == "duplicated" else "limit"
            ids = "1 ID given is" if count == 1 else f"{count} IDs given are"
            d.reasons.append(Reason(rule=f"cohort.{label}", message=f"{ids} {what}", source=None, effect=effect))


def _unmatched_entries(cohort: Cohort | None) -> list[StudentDecision]:
    if cohort is None:
        return []
    entries = []
    for raw in cohort.unknown:
        entries.append(StudentDecision(raw, EXCLUDED, [Reason("cohort.unknown", "not found in the warehouse", None, "limit")]))
    for raw, problem in cohort.malformed:
        entries.append(StudentDecision(raw, EXCLUDED, [Reason("cohort.malformed", f"not a valid student ID: {problem}", None, "limit")]))
    for raw in cohort.not_enrolled:
        entries.append(StudentDecision(raw, EXCLUDED, [Reason("cohort.not_enrolled", "not enrolled in the years asked", None, "limit")]))
    return entries


# -- per-student levels --------------------------------------------------------------------

def _scope_members(d: _Decider, eff: _Effective, years: list[str]) -> set[str] | None:
    r = d.requester
    if eff.scope == "all":
        return None
    if eff.scope == "own_school":
        return evidence.school_students(d.con, r.staff_school_id or "", d.current_year)
    if eff.scope == "own_sections":
        return evidence.section_students(d.con, r.staff_id or "", d.current_year)
    if eff.scope == "own_children":
        return evidence.district_ids(d.con, r.student_ids)
    if eff.scope == "partner_programs":
        if not r.partner_id:
            return set()
        return evidence.partner_program_students(d.con, r.partner_id, evidence.year_start(d.con, years), d.as_of)
    raise ValueError(f"unknown student scope {eff.scope!r}")


_SCOPE_WORDS = {
    "own_school": "not enrolled at the requester's school this school year",
    "own_sections": "not in a section the requester teaches this school year",
    "own_children": "not one of the requester's own children",
    "partner_programs": "not tagged to the partner's programs in the years asked",
}


def _student_levels(d: _Decider, eff: _Effective, granted: str, students: _Students, years: list[str]) -> dict[str, StudentDecision]:
    scope = _scope_members(d, eff, years)
    scope_reason = Reason(f"roles.{eff.role_name}.student_scope", _SCOPE_WORDS.get(eff.scope, ""),
                          _source(eff.role.source), "limit")
    needs_consent = "consent" in _level_requirements(d, eff, granted)
    consent: dict[str, str | None] = {}
    if needs_consent:
        in_scope = [s for s in students.ids if scope is None or s in scope]
        consent = evidence.consent_status(d.con, in_scope, d.requester.partner_id, d.as_of, d.pack.consent)
    fallback_ok = (
        granted == "identified"
        and eff.role.not_covered == "deidentify"
        and "deidentified" in eff.levels
        and not _request_wide_failures(d, eff, "deidentified")
        and "consent" not in _level_requirements(d, eff, "deidentified")
    )
    opted_out: set[str] = set()
    if granted == "directory" and d.pack.directory.honor_opt_outs:
        opted_out = evidence.directory_opt_outs(d.con, students.ids, years)

    decided: dict[str, StudentDecision] = {}
    consent_source = _source(d.pack.consent.source)
    for sid in students.ids:
        if scope is not None and sid not in scope:
            decided[sid] = StudentDecision(sid, EXCLUDED, [scope_reason])
            continue
        if sid in opted_out:
            decided[sid] = StudentDecision(sid, EXCLUDED, [Reason(
                "directory.honor_opt_outs", "the family opted out of directory disclosure",
                _source(d.pack.directory.source), "limit")])
            continue
        problem = consent.get(sid) if needs_consent else None
        if problem is None:
            decided[sid] = StudentDecision(sid, granted)
            continue
        why = Reason("consent", problem, consent_source, "limit")
        if fallback_ok:
            decided[sid] = StudentDecision(sid, "deidentified", [why, Reason(
                f"roles.{eff.role_name}.not_covered", "released de-identified instead",
                _source(eff.role.source), "limit")])
        else:
            decided[sid] = StudentDecision(sid, EXCLUDED, [why])
    return decided


def _summarize_students(d: _Decider, decided) -> None:
    """One top-level reason per rule that held students back, with counts and no IDs."""
    tally: dict[tuple[str, str], tuple[int, Reason]] = {}
    for entry in decided:
        if not entry.reasons:
            continue
        first = entry.reasons[0]
        key = (first.rule, entry.level)
        count, _ = tally.get(key, (0, first))
        tally[key] = (count + 1, first)
    for (rule, level), (count, example) in sorted(tally.items()):
        students = "student" if count == 1 else "students"
        outcome = "left out" if level == EXCLUDED else f"released {level}"
        what = _RULE_SUMMARY.get(rule.split(".")[-1] if rule.startswith("roles.") else rule, example.message)
        d.reasons.append(Reason(rule, f"{count} {students} {outcome}: {what}", example.source, "limit"))


_RULE_SUMMARY = {
    "consent": "no valid family consent for this requester on file under this policy",
    "student_scope": "outside the students this requester may see",
    "directory.honor_opt_outs": "the family opted out of directory disclosure",
}


# -- fields --------------------------------------------------------------------------------

def _fields(d: _Decider, granted_levels: set[str]) -> tuple[list[str], list[dict], list[str]]:
    """Fields granted to every released row, fields withheld (and from whom), fields to redact."""
    asked = list(d.request.fields)
    rules = d.pack.fields
    withheld: list[dict] = []
    withheld_for_all: set[str] = set()

    def withhold(names, rule: str, cited, message: str, applies_to: str) -> None:
        for name in names:
            withheld.append({"field": name, "rule": rule, "message": message,
                             "source": _source(cited.source), "applies_to": applies_to})
            d.note(rule, f"{name}: {message}", cited, "limit")
            if applies_to == "all rows":
                withheld_for_all.add(name)

    aggregate_only = [f for f in asked if f in rules.aggregate_only.fields]
    withhold(aggregate_only, "fields.aggregate_only", rules.aggregate_only,
             "released only in aggregate, never per student", "all rows")
    if "directory" in granted_levels:
        directory = d.pack.directory
        not_directory = [f for f in asked if f not in directory.fields and f not in withheld_for_all]
        withhold(not_directory, "directory", directory, "not directory information", "all rows")
    redact: list[str] = []
    if "deidentified" in granted_levels:
        everyone = granted_levels == {"deidentified"}
        applies = "all rows" if everyone else "de-identified rows"
        identifiers = [f for f in asked if f in rules.direct_identifiers.fields and f not in withheld_for_all]
        withhold(identifiers, "fields.direct_identifiers", rules.direct_identifiers,
                 "a direct identifier, removed from de-identified rows", applies)
        quasi = [f for f in asked if f in rules.quasi_identifiers.fields and f not in withheld_for_all]
        if rules.quasi_identifiers.action == "withhold":
            withhold(quasi, "fields.quasi_identifiers", rules.quasi_identifiers,
                     "a quasi-identifier, not released in de-identified rows", applies)
        elif quasi:
            redact = quasi
            d.note("fields.quasi_identifiers",
                   f"may be redacted in de-identified rows where needed so no student is singled out: {', '.join(quasi)}",
                   rules.quasi_identifiers, "condition")
    granted = [f for f in asked if f not in withheld_for_all]
    return granted, withheld, redact


# -- dates and fees ------------------------------------------------------------------------

def _due_dates(d: _Decider) -> tuple[date | None, date | None]:
    turnaround = d.pack.turnaround
    if turnaround is None:
        return None, None
    calendar = d.policy.business_calendar()
    days = turnaround.by_role.get(d.requester.role, turnaround.default_days)
    received = d.request.received
    due = calendar.add_business_days(received, days) if days else None
    clarify = calendar.add_business_days(received, turnaround.clarify_within_days) if turnaround.clarify_within_days else None
    if due is not None:
        d.note("turnaround", f"due {due.isoformat()}: {days} business days after receipt on {received.isoformat()}", turnaround)
    if clarify is not None:
        d.note("turnaround.clarify_within_days",
               f"clarifying questions by {clarify.isoformat()} ({turnaround.clarify_within_days} business days)", turnaround)
    return due, clarify


def _fee_estimate(d: _Decider, level: str, fields: list[str], years: list[str], students: int) -> dict | None:
    fees = d.pack.fees
    if fees is None:
        return None
    role = d.requester.role
    basis = {"note": fees.note or "district-configurable estimate", "source": _source(fees.source)}
    if role in fees.waived_roles:
        d.note("fees.waived_roles", f"no fee for a {role.replace('_', ' ')}", fees)
        return {"amount": 0.0, "currency": fees.currency, "hours": 0.0, "waived": True, **basis}
    hours = fees.hours_by_level.get(level, 0.0)
    hours += fees.hours_per_measure * len(d.request.measures)
    hours += fees.hours_per_breakdown * len(d.request.breakdowns)
    hours += fees.hours_per_field * len(fields)
    hours += fees.hours_per_extra_year * max(0, len(years) - 1)
    hours += fees.hours_per_100_students * math.ceil(students / 100)
    amount = round(fees.base + fees.hourly_rate * hours, 2)
    d.note("fees", f"estimated fee {amount:.2f} {fees.currency} ({hours:g} hours at {fees.hourly_rate:g}/hour"
           + (f" plus {fees.base:g} base" if fees.base else "") + "); an estimate, not a bill", fees)
    return {"amount": amount, "currency": fees.currency, "hours": round(hours, 2), "waived": False, **basis}


# -- the decision --------------------------------------------------------------------------

def _public_reports(d: _Decider, cohort_kind: str) -> list[dict]:
    public = d.pack.public_data
    if public is None or d.request.level != "aggregate" or cohort_kind not in ("district", "school"):
        return []
    found = []
    for report in public.reports:
        covered = [m for m in d.request.measures if m in report.covers]
        if covered:
            found.append({"name": report.name, "covers": covered, "url": report.url, "source": _source(report.source)})
            d.note("public_data", f"check first: {report.name} already publishes {', '.join(covered)}", report)
    return found


def _conditions(d: _Decider, eff: _Effective, level: str | None) -> None:
    notes: list[tuple[str, Note]] = [(f"roles.{eff.role_name}.conditions", n) for n in eff.role.conditions]
    if eff.exception:
        notes += [(f"exceptions.{eff.exception}.conditions", n) for n in d.pack.exceptions[eff.exception].conditions]
    for path, condition in notes:
        if condition.applies_to(level):
            d.note(path, condition.text, condition, "condition")
            d.conditions.append(condition.text)


def _small_groups_dict(d: _Decider) -> dict:
    groups = d.pack.small_groups
    return {
        "threshold": groups.threshold, "comparison": groups.comparison, "suppress_zeros": groups.suppress_zeros,
        "numerator_threshold": groups.numerator_threshold, "complementary": groups.complementary,
        "rounding_base": groups.rounding_base, "protection_width": groups.protection_width,
        "protect_hidden_sums": groups.protect_hidden_sums,
        "percent_tiers": [t.model_dump() for t in groups.percent_tiers],
    }


@dataclass
class _Rows:
    """What a granted level hands over: per-student levels, fields granted, withheld, to redact."""

    decided: dict[str, StudentDecision] = field(default_factory=dict)
    level: str | None = None
    fields: list[str] = field(default_factory=list)
    withheld: list[dict] = field(default_factory=list)
    redact: list[str] = field(default_factory=list)


def _restrict_years(d: _Decider, role_name: str, role: RoleRule, granted: str | None) -> list[str]:
    """The years asked, cut to the current school year for roles limited to it."""
    years = list(d.request.years)
    if granted not in STUDENT_LEVELS or not role.current_year_only:
        return years
    current = d.current_year
    kept = [y for y in years if y == current]
    if not kept:
        d.note(f"roles.{role_name}.current_year_only",
               f"student-level data only for the current school year, {current}, which the request does not include",
               role, "refuse")
    elif len(kept) < len(years):
        d.note(f"roles.{role_name}.current_year_only",
               f"student-level data only for the current school year, {current}; other years withheld", role, "limit")
    return kept


def _grant_aggregate(d: _Decider, students: _Students) -> _Rows:
    groups = d.pack.small_groups
    complementary = "; suppression is complementary, so no hidden cell can be worked out from totals"
    d.note("small_groups", groups.describe() + (complementary if groups.complementary else ""), groups)
    return _Rows(decided={sid: StudentDecision(sid, "aggregate") for sid in students.ids}, level="aggregate")


def _years_with_students(d: _Decider, students: _Students, population: dict[str, dict[str, str]],
                         years: list[str], level: str | None) -> list[str]:
    """The years that keep a release: a year without granted students has nothing to release,
    and an aggregate year whose whole cohort is a small group cannot be reported at all."""
    groups = d.pack.small_groups
    rule = d.policy.small_group_rule()
    kept = []
    for year in years:
        size = len(population.get(year, {}))
        if size == 0:
            d.reasons.append(Reason("cohort", f"{year}: no student of the cohort can be released in this year; "
                                    "the year is left out", None, "limit"))
        elif (level == "aggregate" and students.kind != "district" and groups.refuse_small_cohorts
              and rule.is_small(size)):
            d.note("small_groups", f"{year}: the cohort has {size} students that year, too small to report in "
                   "aggregate; the year is left out", groups, "limit")
        else:
            kept.append(year)
    if years and not kept:
        d.note("small_groups" if level == "aggregate" else "cohort",
               "no year of the request has students who can be released", groups, "refuse")
    return kept


def _grant_rows(d: _Decider, eff: _Effective, granted: str, students: _Students, years: list[str]) -> _Rows:
    decided = _student_levels(d, eff, granted, students, years)
    _summarize_students(d, decided.values())
    granted_levels = {s.level for s in decided.values()} - {EXCLUDED}
    if not granted_levels:
        d.reasons.append(Reason("cohort", "no student in the cohort can be released at this level", None, "refuse"))
        return _Rows(decided=decided)
    fields, withheld, redact = _fields(d, granted_levels)
    if not fields:
        d.reasons.append(Reason("fields", "none of the fields asked for can be released", None, "refuse"))
    level = max(granted_levels, key=_LEVEL_RANK.__getitem__)
    return _Rows(decided=decided, level=level, fields=fields, withheld=withheld, redact=redact)


def decide(request: DataRequest, policy: Policy, warehouse=None, as_of: date | None = None) -> Decision:
    """What the request may receive under the policy, from the agreements in the warehouse.

    `warehouse` is an Ibis backend, or a location for `workbench.warehouse.connect` (None: the
    configured warehouse). `as_of` is the date agreements and consents are judged on (today).
    """
    as_of = as_of or date.today()
    con = _connect(warehouse)
    d = _Decider(request, policy, con, as_of)
    pack = policy.pack

    if pack.transparency is not None:
        d.note("transparency", pack.transparency.statement.strip(), pack.transparency)
    for index, notice in enumerate(pack.notices):
        d.note(f"notices[{index}]", notice.text, notice)

    def titled(source: dict | None) -> None:
        """Name the document a cited file is, so people read a title, not a file name."""
        if source and source.get("file") and source["file"] in pack.documents:
            source.setdefault("document", pack.documents[source["file"]])

    def finish(outcome: str, level: str | None, **parts) -> Decision:
        for reason in d.reasons + [r for s in parts.get("students", []) for r in s.reasons]:
            titled(reason.source)
        for item in parts.get("withheld_fields", []):
            titled(item.get("source"))
        base = dict(years=[], measures=[], breakdowns=[], fields=[], withheld_fields=[], redact_as_needed=[],
                    students=[], cohort={}, redirect_to=None, due_date=None, clarify_by=None,
                    fee_estimate=None, small_groups=None, public_data=[])
        base.update(parts)
        office = None
        if pack.office is not None:
            office = {"name": pack.office.name, "contact": pack.office.contact, "source": _source(pack.office.source)}
            titled(office["source"])
        return Decision(request_id=request.id, policy=policy.name, policy_hash=policy.content_hash, as_of=as_of,
                        requested_level=request.level, outcome=outcome, level=level, reasons=d.reasons,
                        conditions=d.conditions, office=office, **base)

    role_name = request.requester.role
    role = pack.roles.get(role_name)
    if role is None:
        d.reasons.append(Reason("roles", f"the {policy.name} policy has no rule for a {role_name.replace('_', ' ')}",
                                None, "refuse"))
        due, clarify = _due_dates(d)
        return finish("refuse", None, due_date=due, clarify_by=clarify)
    if role.redirect:
        target = pack.redirects[role.redirect]
        d.note(f"roles.{role_name}.redirect", f"{role.description} Send the requester to {target.to}"
               + (f" ({target.contact})" if target.contact else "") + ".", role, "redirect")
        return finish("redirect", None, redirect_to={"to": target.to, "contact": target.contact,
                                                      "source": _source(target.source)})

    eff = _effective_rule(d, role_name, role)
    granted = _choose_level(d, eff)
    years = _restrict_years(d, role_name, role, granted)
    students = None
    if granted is not None and years and not d.refused():
        students = _resolve_cohort(d, eff, years)

    rows = _Rows()
    if students is not None and not d.refused():
        rows = _grant_aggregate(d, students) if granted == "aggregate" else _grant_rows(d, eff, granted, students, years)
    public = _public_reports(d, students.kind) if students is not None and not d.refused() else []

    refused = d.refused() or granted is None
    level = None if refused else rows.level
    population: dict[str, dict[str, str]] = {}
    if students is not None and not refused:
        population = {
            year: {sid: rows.decided[sid].level for sid in sorted(students.by_year.get(year, ()))
                   if sid in rows.decided and rows.decided[sid].level != EXCLUDED}
            for year in years
        }
        years = _years_with_students(d, students, population, years, level)
        population = {year: population[year] for year in years}
        refused = d.refused()
        level = None if refused else level

    _conditions(d, eff, level)
    due, clarify = _due_dates(d)

    entries = list(rows.decided.values())
    if refused:  # a refusal releases nobody, whatever each student's own check said
        entries = [StudentDecision(e.student_id, EXCLUDED, e.reasons) for e in entries]
        population = {}
    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry.level] = counts.get(entry.level, 0) + 1
    unmatched = _unmatched_entries(students.cohort if students else None)
    cohort_kind = students.kind if students else (request.cohort.kind if request.cohort else "district")
    cohort_summary = {"kind": cohort_kind, "size": len(entries), "by_level": counts, "unmatched": len(unmatched),
                      "by_year": {year: len(members) for year, members in population.items()}}
    if students is not None and students.cohort is not None:
        cohort_summary["source"] = students.cohort.source

    if refused:
        outcome = "refuse"
    else:
        reduced = (
            level != request.level
            or any(e.level != level for e in entries)
            or bool(rows.withheld)
            or years != list(request.years)
            or bool(unmatched)
        )
        outcome = "partial" if reduced else "approve"
    fee = None
    if not refused:
        released = sum(1 for entry in entries if entry.level != EXCLUDED)
        fee = _fee_estimate(d, level, rows.fields, years, released)

    by_ids = students is not None and students.kind == "student_ids" and request.cohort is not None
    return finish(
        outcome, level,
        years=years if not refused else [],
        measures=list(request.measures) if level == "aggregate" else [],
        breakdowns=list(request.breakdowns) if level == "aggregate" else [],
        fields=rows.fields if not refused else [],
        withheld_fields=rows.withheld,
        redact_as_needed=rows.redact,
        students=(entries + unmatched) if by_ids else [],
        cohort=cohort_summary,
        due_date=due, clarify_by=clarify, fee_estimate=fee,
        small_groups=_small_groups_dict(d),
        public_data=public,
        population=population,
    )
