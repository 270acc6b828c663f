"""The shape of a policy pack, validated strictly: an unknown or misspelled key is an error.

Every rule carries a `source`: the seed document and line numbers it comes from, or a named
outside source (a federal regulation, the NCES brief). docs/policies.md describes every key.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from workbench.policy.vocabulary import (
    CONSENT_CHANNELS,
    LEVELS,
    PER_STUDENT_REQUIREMENTS,
    CohortKind,
    ConsentChannel,
    ExceptionKind,
    Field as StudentField,
    Level,
    Requirement,
    Role,
    StaffRole,
    StudentScope,
)



def _label_of_each_value(groups: dict, duplicate) -> dict[str, str]:
    """value -> the label of the one group holding it; a value in two groups raises ValueError
    with `duplicate(value, first label, second label)`."""
    label_of: dict[str, str] = {}
    for label, values in groups.items():
        for value in values:
            if value in label_of:
                raise ValueError(duplicate(value, label_of[value], label))
            label_of[value] = label
    return label_of

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def format_lines(lines) -> str:
    """'line 66', 'lines 91-93', 'lines 33, 41': runs of consecutive lines are joined."""
    ordered = sorted(set(lines))
    runs: list[list[int]] = []
    for line in ordered:
        if runs and line == runs[-1][-1] + 1:
            runs[-1].append(line)
        else:
            runs.append([line])
    parts = [str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}" for run in runs]
    return ("line " if len(ordered) == 1 else "lines ") + ", ".join(parts)


class Source(_Strict):
    """Where a rule comes from: a seed file and its lines, or a named outside source."""

    file: str | None = None
    lines: tuple[int, ...] = ()
    external: str | None = None
    # A few words from the cited lines; the test suite checks they are really there.
    quote: str | None = None

    @model_validator(mode="after")
    def _one_origin(self) -> "Source":
        if (self.file is None) == (self.external is None):
            raise ValueError("give either file (a seed document, with lines) or external (an outside source)")
        if self.file is not None and not self.lines:
            raise ValueError(f"the citation of {self.file} needs the line numbers it comes from")
        if any(line < 1 for line in self.lines):
            raise ValueError("line numbers start at 1")
        return self

    def as_dict(self) -> dict:
        if self.file is not None:
            out = {"file": self.file, "lines": list(self.lines)}
            if self.quote:
                out["quote"] = self.quote
            return out
        return {"external": self.external}

    def label(self) -> str:
        if self.file is None:
            return str(self.external)
        return f"{self.file} {format_lines(self.lines)}"


class _Cited(_Strict):
    source: Source
    see_also: tuple[Source, ...] = ()
    note: str | None = None


class Note(_Cited):
    """A sentence the analyst must read or confirm, with where it comes from."""

    text: str
    levels: tuple[Level, ...] = ()  # only when one of these levels is granted; empty: always

    def applies_to(self, level: str | None) -> bool:
        return not self.levels or level in self.levels


class Office(_Cited):
    name: str
    contact: str | None = None


class LevelRule(_Cited):
    description: str
    requires: tuple[Requirement, ...] = ()


class FieldClass(_Cited):
    fields: tuple[StudentField, ...] = ()


Generalization = Literal["part_year", "month", "withhold"]
# Which coarsening each field admits: attendance's days enrolled become full year / part year;
# enrolment dates keep their month; any field can be withheld from de-identified rows.
GENERALIZATIONS: dict[str, tuple[str, ...]] = {"attendance": ("part_year", "withhold"), "enrollment_dates": ("month", "withhold")}


class QuasiIdentifiers(FieldClass):
    # redact_as_needed: kept, but the disclosure step may blank them where rows become unique;
    # withhold: never released in de-identified rows.
    action: Literal["redact_as_needed", "withhold"] = "redact_as_needed"
    # How a field is coarsened before the k check in de-identified rows (see GENERALIZATIONS).
    generalize: dict[StudentField, Generalization] = {}
    # Most important first: the disclosure step gives up the others first. A request may reorder.
    priority: tuple[StudentField, ...] = ()
    # Coarser codings a field may be released in, finest first: each level maps a value to the
    # group it is shown as (values a level does not name stay as they are), and each level merges
    # groups of the one before. Above the last level the value is withheld.
    hierarchies: dict[StudentField, tuple[dict[str, tuple[str, ...]], ...]] = {}

    @model_validator(mode="after")
    def _known_generalizations(self) -> "QuasiIdentifiers":
        for name, how in self.generalize.items():
            if how != "withhold" and how not in GENERALIZATIONS.get(name, ()):
                allowed = ", ".join(GENERALIZATIONS.get(name, ("withhold",)))
                raise ValueError(f"generalize.{name}: {how!r} does not apply to this field (use {allowed})")
        for name, levels in self.hierarchies.items():
            shown_as: list[dict[str, str]] = []
            for number, groups in enumerate(levels, start=1):
                level = _label_of_each_value(
                    groups, lambda value, _first, _second: f"hierarchies.{name}, level {number}: {value!r} is in two groups")
                shown_as.append(level)
            leaves = {value for level in shown_as for value in level}
            labels = {label for level in shown_as for label in level.values()}
            if labels & leaves:
                raise ValueError(f"hierarchies.{name}: a group cannot be named like a value ({', '.join(sorted(labels & leaves))})")
            # Each level merges whole groups of the level before it; it never splits one.
            for number in range(1, len(shown_as)):
                finer, coarser = shown_as[number - 1], shown_as[number]
                for a in leaves:
                    for b in leaves:
                        if finer.get(a, a) == finer.get(b, b) and coarser.get(a, a) != coarser.get(b, b):
                            raise ValueError(f"hierarchies.{name}, level {number + 1}: splits the group "
                                             f"{finer.get(a, a)!r} of the level before")
        return self


class FieldRules(_Strict):
    direct_identifiers: FieldClass  # removed from de-identified rows
    aggregate_only: FieldClass  # never released per student at any level
    quasi_identifiers: QuasiIdentifiers


class DirectoryRule(_Cited):
    fields: tuple[StudentField, ...] = ()  # empty: the district designates no directory information
    non_directory: tuple[StudentField, ...] = ()  # named by the district as never directory
    honor_opt_outs: bool = True

    @model_validator(mode="after")
    def _disjoint(self) -> "DirectoryRule":
        both = sorted(set(self.fields) & set(self.non_directory))
        if both:
            raise ValueError(f"fields cannot be both directory and non-directory: {', '.join(both)}")
        return self


class ConsentRule(_Cited):
    max_age_days: int | None = Field(default=None, ge=1)  # None: the form's own expiry decides
    channels: tuple[ConsentChannel, ...] = CONSENT_CHANNELS

    @field_validator("channels")
    @classmethod
    def _some_channel(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one consent channel must be accepted")
        return value


class RoleRule(_Cited):
    description: str
    redirect: str | None = None  # a key of `redirects`: the request goes elsewhere
    levels: tuple[Level, ...] = ()
    requires: tuple[Requirement, ...] = ()  # for any data, at any level
    waives: tuple[Requirement, ...] = ()  # level requirements that do not apply to this role
    student_scope: StudentScope = "all"
    current_year_only: bool = False  # student-level rows only for the current school year
    staff_role: StaffRole | None = None  # what staff_assignment checks
    not_covered: Literal["exclude", "deidentify"] = "exclude"  # a student without consent
    conditions: tuple[Note, ...] = ()

    @model_validator(mode="after")
    def _coherent(self) -> "RoleRule":
        if self.redirect and self.levels:
            raise ValueError("a redirected role grants no levels; remove levels or redirect")
        if not self.redirect and not self.levels:
            raise ValueError("give the levels this role may receive, or a redirect")
        per_student = sorted(set(self.requires) & PER_STUDENT_REQUIREMENTS)
        if per_student:
            raise ValueError(f"{', '.join(per_student)} is checked per student: list it under levels.<level>.requires")
        if "staff_assignment" in self.requires and self.staff_role is None:
            raise ValueError("staff_assignment needs staff_role (principal or teacher)")
        return self


class ExceptionRule(_Cited):
    description: str
    roles: tuple[Role, ...]
    levels: tuple[Level, ...]
    requires: tuple[Requirement, ...] = ()
    waives: tuple[Requirement, ...] = ()
    student_scope: StudentScope | None = None  # None: the role's own scope
    conditions: tuple[Note, ...] = ()

    @model_validator(mode="after")
    def _coherent(self) -> "ExceptionRule":
        per_student = sorted(set(self.requires) & PER_STUDENT_REQUIREMENTS)
        if per_student:
            raise ValueError(f"{', '.join(per_student)} is checked per student: an exception can only waive it")
        return self


class Redirect(_Cited):
    to: str
    contact: str | None = None


class PercentTier(_Strict):
    min_size: int = Field(ge=1)
    max_size: int | None = None
    bottom: float = Field(ge=0, le=100)
    top: float = Field(ge=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> "PercentTier":
        if self.max_size is not None and self.max_size < self.min_size:
            raise ValueError("max_size must not be below min_size")
        if self.bottom >= self.top:
            raise ValueError("bottom must be below top")
        return self


class SmallGroups(_Cited):
    # strict: YAML's `true` would otherwise pass as a threshold of 1.
    threshold: int = Field(ge=1, strict=True)
    comparison: Literal["<", "<="]
    suppress_zeros: bool = False
    numerator_threshold: int | None = Field(default=None, ge=1, strict=True)
    percent_tiers: tuple[PercentTier, ...] = ()
    rounding_base: int | None = Field(default=None, ge=2, strict=True)
    # How uncertain an attacker must stay about a suppressed cell (integer units), and whether
    # two small cells hidden in one equation are protected as a group (see docs/disclosure.md).
    protection_width: int = Field(default=1, ge=1, strict=True)
    protect_hidden_sums: bool = True
    # The disclosure step protects whole tables (with totals), not cells one by one.
    complementary: bool = True
    # A cohort that is itself a small group cannot be reported in aggregate at all.
    refuse_small_cohorts: bool = True
    # What to do when a new aggregate release would differ from one its recipient already holds by
    # fewer students than a publishable group (workbench.ledger): leave the school year out, or
    # refuse the request.
    differences: Literal["leave_out_year", "refuse"] = "leave_out_year"

    @field_validator("comparison", mode="before")
    @classmethod
    def _comparison_text(cls, value: object) -> object:
        if value not in ("<", "<="):
            raise ValueError(f"must be '<' or '<=' (got {value!r})")
        return value

    @field_validator("percent_tiers")
    @classmethod
    def _tiers_do_not_overlap(cls, tiers: tuple[PercentTier, ...]) -> tuple[PercentTier, ...]:
        ordered = sorted(tiers, key=lambda t: t.min_size)
        for lower, upper in zip(ordered, ordered[1:]):
            if lower.max_size is None or lower.max_size >= upper.min_size:
                raise ValueError(f"percent tiers overlap at group size {upper.min_size}")
        return tuple(ordered)

    def describe(self) -> str:
        words = "fewer than" if self.comparison == "<" else "at most"
        return f"groups of {words} {self.threshold} students are suppressed"


class CohortKindRule(_Cited):
    accepted: bool = True
    message: str  # what the requester is told (why refused, or advice)


class CohortRules(_Strict):
    # Kinds not listed are accepted without comment.
    kinds: dict[CohortKind, CohortKindRule] = {}


class Turnaround(_Cited):
    clarify_within_days: int | None = Field(default=None, ge=1)
    default_days: int | None = Field(default=None, ge=1)
    by_role: dict[Role, int] = {}

    @field_validator("by_role")
    @classmethod
    def _positive(cls, value: dict[str, int]) -> dict[str, int]:
        bad = sorted(role for role, days in value.items() if days < 1)
        if bad:
            raise ValueError(f"turnaround days must be at least 1 for: {', '.join(bad)}")
        return value


class FeeSchedule(_Cited):
    """A district-configurable estimate: base + hourly rate x estimated hours."""

    currency: str = "USD"
    base: float = Field(default=0, ge=0)
    hourly_rate: float = Field(ge=0)
    hours_by_level: dict[Level, float]
    hours_per_measure: float = Field(default=0, ge=0)
    hours_per_breakdown: float = Field(default=0, ge=0)
    hours_per_field: float = Field(default=0, ge=0)
    hours_per_extra_year: float = Field(default=0, ge=0)
    hours_per_100_students: float = Field(default=0, ge=0)
    waived_roles: tuple[Role, ...] = ()


class PublicReport(_Strict):
    name: str
    covers: tuple[str, ...]  # measure names the report already publishes
    source: Source
    url: str | None = None

    @field_validator("covers")
    @classmethod
    def _known_measures(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from workbench.measures import MEASURES

        unknown = sorted(set(value) - set(MEASURES))
        if unknown:
            raise ValueError(f"unknown measure(s) {', '.join(unknown)}; choose from {', '.join(MEASURES)}")
        return value


class PublicData(_Cited):
    reports: tuple[PublicReport, ...]


class CalendarRules(_Strict):
    country: str = "US"
    subdivision: str | None = None
    closures: tuple[date, ...] = ()
    note: str | None = None


class Transparency(_Cited):
    statement: str


def _band_label(value: object) -> str:
    """Categories are matched by their label as a table shows it (kindergarten is K)."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"a category is a label or a whole number, not {value!r}")
    return str(value).strip()


class PolicyPack(_Strict):
    name: str
    title: str
    extends: str | None = None
    description: str | None = None
    documents: dict[str, str] = {}  # seed file -> what it is
    office: Office | None = None
    levels: dict[Level, LevelRule]
    fields: FieldRules
    directory: DirectoryRule
    consent: ConsentRule
    roles: dict[Role, RoleRule]
    exceptions: dict[ExceptionKind, ExceptionRule] = {}
    redirects: dict[str, Redirect] = {}
    small_groups: SmallGroups
    cohort: CohortRules = CohortRules()
    turnaround: Turnaround | None = None
    fees: FeeSchedule | None = None
    public_data: PublicData | None = None
    calendar: CalendarRules = CalendarRules()
    transparency: Transparency | None = None
    notices: tuple[Note, ...] = ()
    # Coarser categories a table may be published with (breakdown -> band label -> the
    # categories it merges), offered when they hide fewer students; docs/disclosure.md.
    bands: dict[str, dict[str, tuple[str, ...]]] = {}

    @field_validator("bands", mode="before")
    @classmethod
    def _band_labels(cls, value: object) -> object:
        if not isinstance(value, dict):
            return value
        out = {}
        for breakdown, groups in value.items():
            if not isinstance(groups, dict):
                raise ValueError(f"{breakdown}: give band label -> list of categories")
            out[breakdown] = {}
            for label, members in groups.items():
                if not isinstance(members, (list, tuple)) or not members:
                    raise ValueError(f"{breakdown}.{label}: a band lists at least one category")
                out[breakdown][_band_label(label)] = tuple(_band_label(m) for m in members)
        return out

    @field_validator("bands")
    @classmethod
    def _disjoint_bands(cls, value: dict[str, dict[str, tuple[str, ...]]]) -> dict[str, dict[str, tuple[str, ...]]]:
        from workbench.measures import BREAKDOWNS

        for breakdown, groups in value.items():
            if breakdown not in BREAKDOWNS:
                raise ValueError(f"{breakdown}: not a breakdown; choose from {', '.join(BREAKDOWNS)}")
            seen = _label_of_each_value(
                groups, lambda member, first, second: f"{breakdown}: category {member} is in bands {first} and {second}")
            for label in groups:
                if seen.get(label, label) != label:
                    raise ValueError(f"{breakdown}: band {label} has the name of a category of band {seen[label]}")
        return value

    @model_validator(mode="after")
    def _cross_references(self) -> "PolicyPack":
        missing_levels = [level for level in LEVELS if level not in self.levels]
        if missing_levels:
            raise ValueError(f"levels: every level needs a rule; missing {', '.join(missing_levels)}")
        for role, rule in self.roles.items():
            if rule.redirect and rule.redirect not in self.redirects:
                raise ValueError(f"roles.{role}.redirect: no redirect named {rule.redirect!r} under redirects")
        for kind, rule in self.exceptions.items():
            redirected = sorted(r for r in rule.roles if r in self.roles and self.roles[r].redirect)
            if redirected:
                raise ValueError(f"exceptions.{kind}.roles: redirected roles cannot claim it: {', '.join(redirected)}")
        aggregate_only = set(self.fields.aggregate_only.fields)
        leaked = sorted(aggregate_only & set(self.directory.fields))
        if leaked:
            raise ValueError(f"directory.fields: aggregate-only fields cannot be directory information: {', '.join(leaked)}")
        for level, rule in self.levels.items():
            if "consent" in rule.requires and level not in ("identified", "deidentified", "directory"):
                raise ValueError(f"levels.{level}.requires: consent is per student; an aggregate has no students to consent")
        return self
