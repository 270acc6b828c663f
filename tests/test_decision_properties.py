"""Properties every decision keeps, whatever is asked: it never releases more than was asked.

"More" is vocabulary.level_at_most: aggregate < deidentified < identified, directory < identified.
Granted fields, measures, breakdowns, years and students are subsets of what was asked; no
student's level is above the level asked; aggregate-only fields never appear per student;
a refusal or redirect grants nothing; every decision serializes to JSON.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.policy_fixtures import (
    ALL_STUDENTS,
    CURRENT_YEAR,
    LAPSED_PARTNER,
    PARTNER,
    PARTNER_WITHOUT_NDA,
    PRINCIPAL,
    PRIOR_YEAR,
    RESEARCH_APPROVAL,
    RESEARCH_ORG,
    SCHOOL_A,
    STATE_AGENCY,
    TEACHER,
    policy_con,  # noqa: F401  (fixture)
    request_data,
    run_decision,
)
from workbench.policy import load_policy
from workbench.policy.vocabulary import EXCEPTIONS, FIELDS, STUDENT_LEVELS, level_at_most

PACKS = ("nces", "bps", "dmps", "mps", "mmsd")
MEASURES = ["enrolled", "attendance_rate", "chronic_absence", "behavior_incident", "course_failure",
            "assessment_benchmark", "low_income"]
BREAKDOWNS = ["grade", "gender", "race_ethnicity", "low_income", "school"]

REQUESTERS = {
    "community_partner": {"partner_id": PARTNER},
    "partner_without_nda": {"partner_id": PARTNER_WITHOUT_NDA, "nda_id": None},
    "lapsed_partner": {"partner_id": LAPSED_PARTNER, "nda_id": None},
    "researcher": {"role": "researcher", "organization": RESEARCH_ORG, "partner_id": None, "nda_id": None,
                   "research_approval_id": RESEARCH_APPROVAL},
    "teacher": {"role": "teacher", "partner_id": None, "nda_id": None, "staff_id": TEACHER},
    "school_leader": {"role": "school_leader", "partner_id": None, "nda_id": None, "staff_id": PRINCIPAL,
                      "staff_school_id": SCHOOL_A},
    "parent": {"role": "parent", "partner_id": None, "nda_id": None, "student_ids": ALL_STUDENTS[:2]},
    "state_agency": {"role": "state_agency", "partner_id": None, "nda_id": None, "organization": STATE_AGENCY},
    "district_staff": {"role": "district_staff", "partner_id": None, "nda_id": None},
    "service_provider": {"role": "service_provider", "partner_id": None, "nda_id": None, "organization": RESEARCH_ORG},
    "media": {"role": "media", "partner_id": None, "nda_id": None},
    "public": {"role": "public", "partner_id": None, "nda_id": None},
}


@st.composite
def requests(draw):
    level = draw(st.sampled_from(["aggregate", "deidentified", "identified", "directory"]))
    who = draw(st.sampled_from(sorted(REQUESTERS)))
    data = request_data(
        requester=REQUESTERS[who],
        level=level,
        years=draw(st.sampled_from([[CURRENT_YEAR], [PRIOR_YEAR, CURRENT_YEAR]])),
        exception=draw(st.one_of(st.none(), st.sampled_from(EXCEPTIONS))),
    )
    ids = draw(st.lists(st.sampled_from(ALL_STUDENTS + ["0099999"]), min_size=1, max_size=len(ALL_STUDENTS),
                        unique=True))
    data["cohort"] = {"student_ids": ids}
    if level == "aggregate":
        data["measures"] = draw(st.lists(st.sampled_from(MEASURES), min_size=1, max_size=4, unique=True))
        data["breakdowns"] = draw(st.lists(st.sampled_from(BREAKDOWNS), max_size=2, unique=True))
    else:
        data.pop("measures"), data.pop("breakdowns")
        data["fields"] = draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=6, unique=True))
    return data


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=requests(), pack=st.sampled_from(PACKS))
def test_a_decision_never_releases_more_than_was_asked(policy_con, data, pack):
    decision = run_decision(policy_con, pack, data)
    asked_level = data["level"]
    if decision.outcome in ("refuse", "redirect"):
        assert decision.level is None and decision.fields == [] and decision.measures == []
        assert decision.fee_estimate is None
        assert all(student.level == "excluded" for student in decision.students)
    else:
        assert decision.level is not None and level_at_most(decision.level, asked_level)
    assert set(decision.fields) <= set(data.get("fields", []))
    assert set(decision.measures) <= set(data.get("measures", []))
    assert set(decision.breakdowns) <= set(data.get("breakdowns", []))
    assert set(decision.years) <= set(data["years"])
    asked_ids = set(data["cohort"]["student_ids"])
    for student in decision.students:
        assert student.student_id in asked_ids
        if student.level != "excluded":
            assert level_at_most(student.level, asked_level)
    aggregate_only = set(load_policy(pack).pack.fields.aggregate_only.fields)
    if asked_level in STUDENT_LEVELS:
        assert not aggregate_only & set(decision.fields)
    withheld_everywhere = {w["field"] for w in decision.withheld_fields if w["applies_to"] == "all rows"}
    assert not withheld_everywhere & set(decision.fields)
    if decision.outcome == "approve":
        assert decision.level == asked_level and not decision.withheld_fields
        assert all(s.level == asked_level for s in decision.students)
    json.loads(decision.to_json())
    assert all(r.effect in ("refuse", "redirect", "limit", "condition", "info") for r in decision.reasons)


@settings(max_examples=30, deadline=None)
@given(data=requests())
def test_redirected_roles_are_redirected_whatever_they_ask(policy_con, data):
    """003:78 and 003:98 under bps: nothing is granted to media or public records requesters."""
    data["requester"] = {**data["requester"], "role": "media"}
    decision = run_decision(policy_con, "bps", data)
    assert decision.outcome == "redirect" and decision.students == []
