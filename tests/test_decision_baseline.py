"""The baseline (nces) pack, the roles every district inherits from it, and MMSD.

The baseline's roles come from the Data Quality Campaign's "Who uses student data?" (seed 004,
cited as 004:LINE); MMSD's page (seed 002) adds transparency and Board Policy 4151.
"""

from __future__ import annotations

import pytest
import yaml

from tests.policy_fixtures import (
    ALL_STUDENTS,
    CONSENT_VIRTUAL_CURRENT,
    PARTNER_NDA,
    RESEARCH_APPROVAL,
    RESEARCH_NDA,
    RESEARCH_ORG,
    SCHOOL_B_STUDENTS,
    SECTION_LAST_STUDENTS,
    SECTION_NOW_STUDENTS,
    STATE_AGENCY,
    TEACHER,
    cites,
    identified_request,
    levels,
    policy_con,  # noqa: F401  (fixture)
    request_data,
    rules,
    run_decision,
)

ALL_PACKS = ("nces", "bps", "dmps", "mps", "mmsd")
INHERITING = ("nces", "dmps", "mps", "mmsd")  # packs whose role comes from the baseline

PUBLIC = {"role": "public", "partner_id": None, "nda_id": None, "organization": None}


@pytest.mark.parametrize("pack", ALL_PACKS)
def test_the_public_sees_aggregate_reports_only(policy_con, pack):
    """004:44: members of the public only see aggregate reports, never individual students."""
    rows = run_decision(policy_con, pack, identified_request(ALL_STUDENTS, level="deidentified", fields=["grade"],
                                                             requester=PUBLIC))
    assert rows.outcome == "refuse" and rows.level is None
    assert cites(rows, "004", 44, "refuse")
    aggregate = run_decision(policy_con, pack, request_data(requester=PUBLIC))
    assert aggregate.outcome == "approve" and aggregate.level == "aggregate"


@pytest.mark.parametrize("pack", INHERITING)
@pytest.mark.parametrize("role", ["media", "public_records"])
def test_without_a_redirect_media_and_records_requests_get_public_aggregates(policy_con, pack, role):
    """004:44: where a district names no office to redirect to, the press sees what the public sees."""
    requester = {**PUBLIC, "role": role}
    rows = run_decision(policy_con, pack, identified_request(ALL_STUDENTS, fields=["name"], requester=requester))
    assert rows.outcome == "refuse"
    assert run_decision(policy_con, pack, request_data(requester=requester)).outcome == "approve"


@pytest.mark.parametrize("pack", INHERITING)
def test_parents_see_only_their_own_children(policy_con, pack):
    """004:18: parents have access to information about their own children."""
    child, other = ALL_STUDENTS[0], ALL_STUDENTS[1]
    parent = {"role": "parent", "partner_id": None, "nda_id": None, "student_ids": [child]}
    decision = run_decision(policy_con, pack, identified_request([child, other], requester=parent))
    assert levels(decision) == {child: "identified", other: "excluded"}
    assert any("parent or guardian" in c for c in decision.conditions)
    no_cohort = run_decision(policy_con, pack, identified_request([child], requester=parent, cohort=None))
    assert no_cohort.outcome == "approve" and no_cohort.cohort["size"] == 1
    assert cites(decision, "004", 18)


@pytest.mark.parametrize("pack", INHERITING)
def test_teachers_see_the_students_in_their_classroom(policy_con, pack):
    """004:24: teachers have access to information about the individual students in their classroom."""
    teacher = {"role": "teacher", "partner_id": None, "nda_id": None, "staff_id": TEACHER}
    decision = run_decision(policy_con, pack, identified_request(SECTION_NOW_STUDENTS + SECTION_LAST_STUDENTS,
                                                                 requester=teacher))
    assert {s for s, lvl in levels(decision).items() if lvl == "identified"} == set(SECTION_NOW_STUDENTS)
    assert cites(decision, "004", 24)


@pytest.mark.parametrize("pack", ALL_PACKS)
def test_service_providers_get_only_what_their_work_needs(policy_con, pack):
    """004:28: third parties sometimes need PII but only get the data directly relevant to their work."""
    provider = {"role": "service_provider", "partner_id": None, "nda_id": None, "organization": RESEARCH_ORG}
    rows = run_decision(policy_con, pack, identified_request(ALL_STUDENTS, fields=["name", "grade"], requester=provider))
    assert rows.level == "deidentified"  # identified rows need the school-official exception
    assert any("directly relevant" in c for c in rows.conditions)
    official = run_decision(policy_con, pack, identified_request(ALL_STUDENTS, fields=["name", "grade"],
                                                                 requester=provider, exception="school_official"))
    assert official.level == "identified"
    assert cites(rows, "004", 28, "condition")


@pytest.mark.parametrize("pack", ("nces", "dmps", "mmsd"))
def test_researchers_with_a_plan_get_deidentified_and_aggregate_data(policy_con, pack):
    """004:32: with a clear plan, researchers get de-identified and aggregate data."""
    researcher = {"role": "researcher", "organization": RESEARCH_ORG, "partner_id": None,
                  "nda_id": RESEARCH_NDA, "research_approval_id": RESEARCH_APPROVAL}
    decision = run_decision(policy_con, pack, identified_request(ALL_STUDENTS, fields=["name", "grade"],
                                                                 requester=researcher))
    assert decision.level == "deidentified" and decision.fields == ["grade"]
    without_plan = run_decision(policy_con, pack, request_data(requester={**researcher, "organization": "Nobody",
                                                                          "research_approval_id": None}))
    assert without_plan.outcome == "refuse"
    assert cites(without_plan, "004", 32, "refuse")


@pytest.mark.parametrize("pack", INHERITING)
def test_state_agencies_get_aggregates_unless_auditing(policy_con, pack):
    """004:12 and 004:14: the state department of education gets data through its own channels;
    a request gets aggregates, student rows only under the audit exception."""
    state = {"role": "state_agency", "partner_id": None, "nda_id": None, "organization": STATE_AGENCY}
    plain = run_decision(policy_con, pack, identified_request(ALL_STUDENTS, fields=["grade"], requester=state))
    assert plain.outcome == "refuse"
    assert cites(plain, "004", 12, "refuse")
    audit = run_decision(policy_con, pack, identified_request(ALL_STUDENTS, fields=["grade"], requester=state,
                                                              exception="audit"))
    assert audit.level == "identified"


@pytest.mark.parametrize("pack", ALL_PACKS)
def test_low_income_is_never_released_per_student_under_any_pack(policy_con, pack):
    """Every pack keeps free/reduced lunch aggregate-only (000:34 for MPS; the school lunch statute elsewhere)."""
    decision = run_decision(policy_con, pack, identified_request(
        [CONSENT_VIRTUAL_CURRENT], fields=["grade", "low_income"], exception="studies"))
    assert "low_income" not in decision.fields
    assert "fields.aggregate_only" in rules(decision)


def test_the_baseline_designates_no_directory_information(policy_con, tmp_path):
    """nces: FERPA directory information exists only where the district designates it."""
    request = identified_request(ALL_STUDENTS[:12], level="directory", fields=["name", "grade"])
    assert run_decision(policy_con, "nces", request).outcome == "refuse"
    # Even a pack that lets partners ask for directory data releases nothing until it designates fields.
    child = tmp_path / "open.yaml"
    child.write_text(yaml.safe_dump({
        "name": "open", "title": "Open", "extends": "nces",
        "roles": {"community_partner": {"levels": ["aggregate", "directory"], "source": {"external": "test"}}},
    }))
    decision = run_decision(policy_con, str(child), request)
    assert decision.outcome == "refuse"
    assert {w["field"] for w in decision.withheld_fields} == {"name", "grade"}
    assert "fields" in rules(decision, "refuse")


def test_the_baseline_promises_no_turnaround_and_charges_no_fee(policy_con):
    decision = run_decision(policy_con, "nces", request_data(requester={"nda_id": PARTNER_NDA}))
    assert decision.due_date is None and decision.clarify_by is None and decision.fee_estimate is None


def test_nces_small_groups_are_fewer_than_10(policy_con):
    """NCES SLDS Technical Brief 3: minimum n of 10."""
    nine = run_decision(policy_con, "nces", request_data(cohort={"student_ids": SCHOOL_B_STUDENTS[:9]}))
    assert nine.outcome == "refuse"
    ten = run_decision(policy_con, "nces", request_data(cohort={"student_ids": SCHOOL_B_STUDENTS}))
    assert ten.outcome == "approve"
    assert ten.small_groups["percent_tiers"][0]["min_size"] == 10


def test_mmsd_answers_under_board_policy_4151_with_transparency(policy_con):
    """002:3-9 transparency to families; 002:37-39 Board Policy 4151; 002:25-35 the DQC roles; 002:23 contact."""
    decision = run_decision(policy_con, "mmsd", request_data())
    assert any("Board Policy 4151" in r.message for r in decision.reasons)
    assert cites(decision, "002", 39) and cites(decision, "002", 25) and cites(decision, "002", 3)
    assert decision.office["name"] == "Director of Assessment"
    assert 23 in decision.office["source"]["lines"]
    assert decision.outcome == "approve"
