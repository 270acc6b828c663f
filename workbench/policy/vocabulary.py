"""The words requests and policy packs share: requester roles, data levels, fields, agreements.

These are the *kinds* of things a pack can say something about. What a district decides about
each one (which roles get which level, which agreements a level needs) lives in the packs.
"""

from __future__ import annotations

from typing import Literal, get_args

Role = Literal[
    "community_partner",
    "researcher",
    "school_leader",
    "teacher",
    "district_staff",
    "state_agency",
    "external_agency",
    "media",
    "public_records",
    "parent",
    "public",
    "service_provider",
]
ROLES: tuple[str, ...] = get_args(Role)

Level = Literal["directory", "aggregate", "deidentified", "identified"]
LEVELS: tuple[str, ...] = get_args(Level)

# Levels that hand over one row per student.
STUDENT_LEVELS: frozenset[str] = frozenset({"directory", "deidentified", "identified"})

# "More" means more about an individual student can be learned from the release.
# aggregate < deidentified < identified: each adds per-student detail to the one before.
# directory < identified: directory rows are identified rows restricted to a few fields.
# directory and aggregate/deidentified are not comparable (names versus detail), so a decision
# never turns one into the other.
_LEVEL_COVERS: dict[str, frozenset[str]] = {
    "aggregate": frozenset({"aggregate"}),
    "directory": frozenset({"directory"}),
    "deidentified": frozenset({"deidentified", "aggregate"}),
    "identified": frozenset({"identified", "deidentified", "aggregate", "directory"}),
}

# The only path a decision may take downwards when a level cannot be granted: identified rows
# become de-identified rows of the same fields. A student-level request is never turned into an
# aggregate one (those are different products: measures and breakdowns, not fields).
DOWNGRADE: dict[str, str] = {"identified": "deidentified"}


def level_at_most(granted: str, requested: str) -> bool:
    """True when `granted` reveals no more about any student than `requested`."""
    return granted in _LEVEL_COVERS[requested]


Requirement = Literal[
    "partner_registration",  # the partner is registered and the registration is current
    "nda",  # a current signed non-disclosure agreement held by the requester
    "research_approval",  # an approved, current research proposal held by the requester
    "staff_assignment",  # the staff member works, this school year, at the school named
    "consent",  # per student: a current family consent for this partner the pack accepts
]
REQUIREMENTS: tuple[str, ...] = get_args(Requirement)
PER_STUDENT_REQUIREMENTS: frozenset[str] = frozenset({"consent"})

StudentScope = Literal[
    "all",  # any student (other requirements, such as consent, still apply per student)
    "own_school",  # enrolled this school year at the requester's school
    "own_sections",  # in a section the requester teaches this school year
    "own_children",  # listed by the parent as their own children
    "partner_programs",  # tagged to one of the requesting partner's programs in the years asked
]
STUDENT_SCOPES: tuple[str, ...] = get_args(StudentScope)

ExceptionKind = Literal["studies", "audit", "school_official"]
EXCEPTIONS: tuple[str, ...] = get_args(ExceptionKind)

# Per-student fields a student-level request may ask for. `student_id` and `state_id` are the
# identifiers themselves; `age` and `enrollment_dates` are what directory information allows.
Field = Literal[
    "name",
    "date_of_birth",
    "age",
    "student_id",
    "state_id",
    "grade",
    "school",
    "enrollment_dates",
    "gender",
    "race_ethnicity",
    "english_learner",
    "disability",
    "low_income",
    "attendance",
    "chronic_absence",
    "behavior",
    "marks",
    "course_failure",
    "assessments",
    "programs",
]
FIELDS: tuple[str, ...] = get_args(Field)

CohortKind = Literal["student_ids", "program", "school", "district"]
COHORT_KINDS: tuple[str, ...] = get_args(CohortKind)

ConsentChannel = Literal["virtual", "paper"]
CONSENT_CHANNELS: tuple[str, ...] = get_args(ConsentChannel)

StaffRole = Literal["principal", "teacher"]
