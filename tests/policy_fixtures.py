"""A tiny hand-built district for policy and decision tests.

Every student, consent, section and agreement here exists for a test that needs it; the comments
say which. Dates are set around the decision date AS_OF (Monday 3 November 2025, in school year
2025-2026), so consent ages and expiries are exact.

Students 0000101-0000115 attend school 1040 and 0000116-0000125 attend 2050, in both years.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from workbench import safe_yaml
from workbench.decision import Decision, decide
from workbench.policy import load_policy
from workbench.request import parse_request
from workbench.schema import write_warehouse
from workbench.warehouse import connect

AS_OF = date(2025, 11, 3)
RECEIVED = date(2025, 11, 3)
CURRENT_YEAR = "2025-2026"
PRIOR_YEAR = "2024-2025"
YEARS = (PRIOR_YEAR, CURRENT_YEAR)

SCHOOL_A = "1040"
SCHOOL_B = "2050"
SCHOOL_A_STUDENTS = [f"{n:07d}" for n in range(101, 116)]
SCHOOL_B_STUDENTS = [f"{n:07d}" for n in range(116, 126)]
ALL_STUDENTS = SCHOOL_A_STUDENTS + SCHOOL_B_STUDENTS

TEACHER = "T00001"  # teaches SECTION_NOW this year and SECTION_LAST last year
PRINCIPAL = "T00002"  # principal of SCHOOL_A this year
LAST_YEAR_TEACHER = "T00003"  # taught only last year
SECTION_NOW_STUDENTS = ["0000101", "0000102", "0000103", "0000104", "0000105"]
SECTION_LAST_STUDENTS = ["0000106", "0000107", "0000108"]

PARTNER = "P-01"  # registered, current NDA-0001, program PRG-001
PENDING_PARTNER = "P-02"  # registration pending
LAPSED_PARTNER = "P-03"  # registration lapsed, NDA expired
PARTNER_WITHOUT_NDA = "P-04"  # registered, but no NDA on file
PARTNER_NDA = "NDA-0001"
LAPSED_NDA = "NDA-0002"
RESEARCH_NDA = "NDA-0003"
RESEARCH_ORG = "Urban Education Lab"
RESEARCH_APPROVAL = "RA-2025-0001"  # approved, current, held by RESEARCH_ORG
PENDING_APPROVAL = "RA-2025-0002"
EXPIRED_APPROVAL = "RA-2022-0003"
NO_NDA_APPROVAL = "RA-2025-0004"  # approved and current, but its organization has no NDA
NO_NDA_ORG = "Solo Researchers"
STATE_AGENCY = "State Department of Education"  # holds NDA-0004
STATE_NDA = "NDA-0004"
PROGRAM = "PRG-001"
PROGRAM_STUDENTS = [f"{n:07d}" for n in range(101, 113)]  # tagged to PRG-001 this year

# Consents to PARTNER, each built to fail (or pass) one policy rule on AS_OF.
CONSENT_VIRTUAL_CURRENT = "0000101"  # virtual, signed 2 months ago: valid under every pack
CONSENT_PAPER = "0000102"  # paper form: DMPS accepts only virtual forms
CONSENT_OLD = "0000103"  # virtual two-year form signed 428 days ago: MPS honors at most a year
CONSENT_REVOKED = "0000104"  # revoked last month
CONSENT_EXPIRED = "0000105"  # expired in January
NO_CONSENT = "0000106"
CONSENT_VIRTUAL_CURRENT_2 = "0000107"  # a second valid one, outside SECTION_NOW
DIRECTORY_OPT_OUT = "0000108"


def _calendar() -> pd.DataFrame:
    rows = []
    for year in YEARS:
        start = int(year[:4])
        rows.append({"school_year": year, "term": "S1", "first_day": date(start, 8, 27),
                     "last_day": date(start + 1, 1, 23), "instructional_days": 85})
        rows.append({"school_year": year, "term": "S2", "first_day": date(start + 1, 1, 26),
                     "last_day": date(start + 1, 6, 12), "instructional_days": 95})
    return pd.DataFrame(rows)


def district_frames() -> dict[str, pd.DataFrame]:
    students = pd.DataFrame({
        "student_id": ALL_STUDENTS,
        "state_id": [f"31000{int(s):05d}" for s in ALL_STUDENTS],
        "first_name": [f"First{i}" for i in range(len(ALL_STUDENTS))],
        "last_name": [f"Last{i}" for i in range(len(ALL_STUDENTS))],
        "date_of_birth": [date(2010, 1, 1)] * len(ALL_STUDENTS),
        "gender": ["F", "M"] * (len(ALL_STUDENTS) // 2) + ["F"] * (len(ALL_STUDENTS) % 2),
        "race_ethnicity": ["White"] * len(ALL_STUDENTS),
    })
    school_of = {s: SCHOOL_A for s in SCHOOL_A_STUDENTS} | {s: SCHOOL_B for s in SCHOOL_B_STUDENTS}
    student_years = pd.DataFrame([
        {"student_id": s, "school_year": y, "grade": 9 if y == PRIOR_YEAR else 10,
         "english_learner": False, "disability": False, "low_income": i % 2 == 0}
        for y in YEARS for i, s in enumerate(ALL_STUDENTS)
    ])
    enrollments = pd.DataFrame([
        {"student_id": s, "school_year": y, "school_id": school_of[s],
         "entry_date": date(int(y[:4]), 8, 27), "exit_date": date(int(y[:4]) + 1, 6, 12), "exit_reason": "year_end"}
        for y in YEARS for s in ALL_STUDENTS
    ])
    attendance = pd.DataFrame([
        {"student_id": s, "school_year": y, "term": t, "school_id": school_of[s], "days_enrolled": 85, "days_absent": 3}
        for y in YEARS for t in ("S1", "S2") for s in ALL_STUDENTS
    ])
    schools = pd.DataFrame({"school_id": [SCHOOL_A, SCHOOL_B], "name": ["North High", "South High"],
                            "level": ["high", "high"], "grade_low": [9, 9], "grade_high": [12, 12]})
    staff = pd.DataFrame({"staff_id": [TEACHER, PRINCIPAL, LAST_YEAR_TEACHER],
                          "first_name": ["Ana", "Ben", "Cy"], "last_name": ["A", "B", "C"]})
    staff_assignments = pd.DataFrame([
        {"staff_id": TEACHER, "school_year": CURRENT_YEAR, "school_id": SCHOOL_A, "role": "teacher"},
        {"staff_id": TEACHER, "school_year": PRIOR_YEAR, "school_id": SCHOOL_A, "role": "teacher"},
        {"staff_id": PRINCIPAL, "school_year": CURRENT_YEAR, "school_id": SCHOOL_A, "role": "principal"},
        {"staff_id": LAST_YEAR_TEACHER, "school_year": PRIOR_YEAR, "school_id": SCHOOL_A, "role": "teacher"},
    ])
    sections = pd.DataFrame([
        {"section_id": "2025-1040-0001", "school_year": CURRENT_YEAR, "school_id": SCHOOL_A, "staff_id": TEACHER,
         "course_code": "MAT10", "course_name": "Geometry", "subject": "math", "grade": 10},
        {"section_id": "2024-1040-0001", "school_year": PRIOR_YEAR, "school_id": SCHOOL_A, "staff_id": TEACHER,
         "course_code": "MAT09", "course_name": "Algebra", "subject": "math", "grade": 9},
    ])
    section_students = pd.DataFrame(
        [{"section_id": "2025-1040-0001", "student_id": s} for s in SECTION_NOW_STUDENTS]
        + [{"section_id": "2024-1040-0001", "student_id": s} for s in SECTION_LAST_STUDENTS]
    )
    partners = pd.DataFrame([
        {"partner_id": PARTNER, "name": "Northside Youth Club", "registration_status": "registered",
         "registered_on": date(2024, 6, 1), "registration_expires": date(2029, 6, 1)},
        {"partner_id": PENDING_PARTNER, "name": "New Horizons", "registration_status": "pending",
         "registered_on": date(2025, 9, 1), "registration_expires": date(2030, 9, 1)},
        {"partner_id": LAPSED_PARTNER, "name": "Old Friends", "registration_status": "lapsed",
         "registered_on": date(2019, 6, 1), "registration_expires": date(2025, 1, 31)},
        {"partner_id": PARTNER_WITHOUT_NDA, "name": "Fresh Start", "registration_status": "registered",
         "registered_on": date(2025, 8, 1), "registration_expires": date(2030, 8, 1)},
    ])
    programs = pd.DataFrame([{"program_id": PROGRAM, "partner_id": PARTNER, "name": "Tutoring at North High",
                              "school_id": SCHOOL_A}])
    program_students = pd.DataFrame([
        {"program_id": PROGRAM, "student_id": s, "added_on": date(2025, 9, 8), "dropped_on": None}
        for s in PROGRAM_STUDENTS
    ])
    ndas = pd.DataFrame([
        {"nda_id": PARTNER_NDA, "organization": "Northside Youth Club", "partner_id": PARTNER,
         "signed_on": date(2025, 7, 1), "expires_on": date(2028, 6, 30)},
        {"nda_id": LAPSED_NDA, "organization": "Old Friends", "partner_id": LAPSED_PARTNER,
         "signed_on": date(2021, 9, 1), "expires_on": date(2024, 8, 31)},
        {"nda_id": RESEARCH_NDA, "organization": RESEARCH_ORG, "partner_id": None,
         "signed_on": date(2025, 3, 1), "expires_on": date(2028, 3, 1)},
        {"nda_id": STATE_NDA, "organization": STATE_AGENCY, "partner_id": None,
         "signed_on": date(2025, 1, 15), "expires_on": date(2027, 1, 15)},
    ])
    research_approvals = pd.DataFrame([
        {"approval_id": RESEARCH_APPROVAL, "organization": RESEARCH_ORG, "lead_researcher": "R. Lead",
         "title": "Tutoring study", "status": "approved", "approved_on": date(2025, 3, 1), "expires_on": date(2028, 3, 1)},
        {"approval_id": PENDING_APPROVAL, "organization": "Pending Institute", "lead_researcher": "P. Lead",
         "title": "Pending study", "status": "pending", "approved_on": None, "expires_on": None},
        {"approval_id": EXPIRED_APPROVAL, "organization": "Old Lab", "lead_researcher": "O. Lead",
         "title": "Old study", "status": "approved", "approved_on": date(2022, 3, 1), "expires_on": date(2025, 2, 28)},
        {"approval_id": NO_NDA_APPROVAL, "organization": NO_NDA_ORG, "lead_researcher": "S. Lead",
         "title": "Solo study", "status": "approved", "approved_on": date(2025, 6, 1), "expires_on": date(2027, 6, 1)},
    ])
    consents = pd.DataFrame([
        {"student_id": CONSENT_VIRTUAL_CURRENT, "signed_on": date(2025, 9, 2), "expires_on": date(2026, 9, 2), "channel": "virtual", "revoked_on": None},
        {"student_id": CONSENT_PAPER, "signed_on": date(2025, 9, 3), "expires_on": date(2026, 9, 3), "channel": "paper", "revoked_on": None},
        {"student_id": CONSENT_OLD, "signed_on": date(2024, 9, 1), "expires_on": date(2026, 9, 1), "channel": "virtual", "revoked_on": None},
        {"student_id": CONSENT_REVOKED, "signed_on": date(2025, 9, 1), "expires_on": date(2026, 9, 1), "channel": "virtual", "revoked_on": date(2025, 10, 1)},
        {"student_id": CONSENT_EXPIRED, "signed_on": date(2024, 1, 1), "expires_on": date(2025, 1, 1), "channel": "virtual", "revoked_on": None},
        {"student_id": CONSENT_VIRTUAL_CURRENT_2, "signed_on": date(2025, 9, 15), "expires_on": date(2026, 9, 15), "channel": "virtual", "revoked_on": None},
    ])
    consents.insert(0, "consent_id", range(1, len(consents) + 1))
    consents.insert(2, "partner_id", PARTNER)
    opt_outs = pd.DataFrame([{"student_id": DIRECTORY_OPT_OUT, "school_year": CURRENT_YEAR, "opted_out_on": date(2025, 9, 5)}])
    return {
        "schools": schools, "students": students, "student_years": student_years, "enrollments": enrollments,
        "school_calendar": _calendar(), "attendance": attendance, "staff": staff,
        "staff_assignments": staff_assignments, "sections": sections, "section_students": section_students,
        "partners": partners, "programs": programs, "program_students": program_students, "ndas": ndas,
        "research_approvals": research_approvals, "consents": consents, "directory_opt_outs": opt_outs,
    }


def build_warehouse(path: Path) -> Path:
    return write_warehouse(path, district_frames())


@pytest.fixture(scope="session")
def policy_con(tmp_path_factory):
    """The tiny district above, built once per test session (import this fixture by name)."""
    return connect(build_warehouse(tmp_path_factory.mktemp("policy") / "district.duckdb"))


def run_decision(con, policy: str, data: dict[str, Any], as_of: date = AS_OF) -> Decision:
    """Validate request data and decide it under a named pack (or a pack path)."""
    return decide(parse_request(data), load_policy(policy), con, as_of)


def request_data(**overrides: Any) -> dict[str, Any]:
    """A valid aggregate request from PARTNER; keyword arguments replace top-level keys.

    `requester=` is merged into the default requester rather than replacing it.
    """
    data: dict[str, Any] = {
        "id": "REQ-TEST-0001",
        "received": RECEIVED.isoformat(),
        "requester": {"name": "Jane Doe", "organization": "Northside Youth Club", "role": "community_partner",
                      "partner_id": PARTNER, "nda_id": PARTNER_NDA},
        "purpose": "Evaluate our tutoring program",
        "audience": "Program staff",
        "level": "aggregate",
        "years": [CURRENT_YEAR],
        "measures": ["attendance_rate", "chronic_absence"],
        "breakdowns": ["grade"],
    }
    requester = overrides.pop("requester", None)
    if requester is not None:
        data["requester"] = {**data["requester"], **requester}
        data["requester"] = {k: v for k, v in data["requester"].items() if v is not None}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def identified_request(ids: list[str], fields: list[str] | None = None, **overrides: Any) -> dict[str, Any]:
    """A student-level request for `ids` (identified unless `level=` says otherwise)."""
    settings: dict[str, Any] = {"level": "identified", "measures": None, "breakdowns": None,
                                "fields": fields or ["name", "grade", "attendance"], "cohort": {"student_ids": ids}}
    settings.update(overrides)
    return request_data(**settings)


def write_request(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(safe_yaml.dump(data, sort_keys=False), encoding="utf-8")  # no anchors: they are refused
    return path


def rules(decision: Decision, effect: str | None = None) -> set[str]:
    """The rule paths of a decision's reasons (optionally only those with one effect)."""
    return {r.rule for r in decision.reasons if effect is None or r.effect == effect}


def cites(decision: Decision, seed: str, line: int, effect: str | None = None) -> bool:
    """Whether some reason cites line `line` of the seed file starting with `seed` (e.g. "003")."""
    for reason in decision.reasons:
        source = reason.source or {}
        if effect is not None and reason.effect != effect:
            continue
        if source.get("file", "").startswith(seed) and line in source.get("lines", []):
            return True
    return False


def levels(decision: Decision) -> dict[str, str]:
    return decision.student_levels()
