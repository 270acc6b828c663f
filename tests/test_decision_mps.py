"""Decisions under the MPS pack (seed 000, Individual vs Aggregate Student Data).

Each test names the seed lines it checks as 000:LINE.
"""

from __future__ import annotations

from datetime import date, timedelta

from tests.policy_fixtures import (
    ALL_STUDENTS,
    CONSENT_OLD,
    CONSENT_PAPER,
    CONSENT_VIRTUAL_CURRENT,
    NO_CONSENT,
    NO_NDA_APPROVAL,
    NO_NDA_ORG,
    RESEARCH_APPROVAL,
    RESEARCH_ORG,
    cites,
    identified_request,
    levels,
    policy_con,  # noqa: F401  (fixture)
    request_data,
    rules,
    run_decision,
)

MPS = "mps"


def test_a_release_older_than_one_year_is_never_honored(policy_con):
    """000:31: ROIs are valid for up to one year; MPS will not honor any ROI beyond a year."""
    decision = run_decision(policy_con, MPS, identified_request([CONSENT_VIRTUAL_CURRENT, CONSENT_OLD]))
    assert levels(decision) == {CONSENT_VIRTUAL_CURRENT: "identified", CONSENT_OLD: "excluded"}
    old = next(s for s in decision.students if s.student_id == CONSENT_OLD)
    assert "at most 365 days" in old.reasons[0].message
    assert cites(decision, "000", 31)


def test_the_one_year_limit_is_exact(policy_con):
    """000:31: signed 2024-09-01, the two-year form is honored on day 365 and refused on day 366."""
    signed = date(2024, 9, 1)
    on_365 = run_decision(policy_con, MPS, identified_request([CONSENT_OLD]), as_of=signed + timedelta(days=365))
    assert levels(on_365)[CONSENT_OLD] == "identified"
    on_366 = run_decision(policy_con, MPS, identified_request([CONSENT_OLD]), as_of=signed + timedelta(days=366))
    assert levels(on_366)[CONSENT_OLD] == "excluded"
    assert on_366.outcome == "refuse"  # nobody left to release


def test_free_and_reduced_lunch_is_withheld_per_student(policy_con):
    """000:34: MPS cannot share the FRL status of individual students, only in aggregate."""
    decision = run_decision(policy_con, MPS, identified_request(
        [CONSENT_VIRTUAL_CURRENT, CONSENT_PAPER], fields=["name", "low_income", "attendance"]))
    assert decision.fields == ["name", "attendance"]
    withheld = decision.withheld_fields
    assert [(w["field"], w["applies_to"]) for w in withheld] == [("low_income", "all rows")]
    assert {k: withheld[0]["source"][k] for k in ("file", "lines")} == {"file": "000_da7bb744b9a63cc4.txt", "lines": [34]}
    aggregate = run_decision(policy_con, MPS, request_data(measures=["low_income"], breakdowns=["low_income"]))
    assert aggregate.outcome == "approve" and aggregate.measures == ["low_income"]


def test_partners_get_no_deidentified_rows(policy_con):
    """000:14 individual data is any data about a particular student; 000:29 none without a signed ROI."""
    decision = run_decision(policy_con, MPS, identified_request(ALL_STUDENTS, level="deidentified",
                                                                fields=["grade", "attendance"]))
    assert decision.outcome == "refuse"
    assert cites(decision, "000", 29, "refuse")


def test_without_a_release_a_student_is_left_out_not_deidentified(policy_con):
    """000:29: not even enrollment or attendance can be confirmed without a signed ROI."""
    decision = run_decision(policy_con, MPS, identified_request([CONSENT_VIRTUAL_CURRENT, NO_CONSENT]))
    assert levels(decision)[NO_CONSENT] == "excluded"


def test_a_release_for_each_student_plus_the_baseline_agreement(policy_con):
    """000:28-29: an MPS Release of Information for each student; the baseline NDA is kept."""
    decision = run_decision(policy_con, MPS, identified_request([CONSENT_VIRTUAL_CURRENT]))
    assert decision.outcome == "approve"
    assert "levels.identified.requires" in rules(decision, "info")
    assert cites(decision, "000", 28)


def test_identified_releases_carry_the_valid_reason_condition(policy_con):
    """000:35 a partner needs a valid reason even with an ROI; 000:28 the partner collects the forms;
    000:39 contracted partners take part in the Aggregate Report process (aggregates only)."""
    identified = run_decision(policy_con, MPS, identified_request([CONSENT_VIRTUAL_CURRENT]))
    assert cites(identified, "000", 35, "condition") and cites(identified, "000", 28, "condition")
    assert not cites(identified, "000", 39, "condition")
    aggregate = run_decision(policy_con, MPS, request_data())
    assert cites(aggregate, "000", 39, "condition")
    assert not cites(aggregate, "000", 35, "condition")


def test_research_goes_through_outside_research_approval(policy_con):
    """000:10: the Outside Research approval process."""
    refused = run_decision(policy_con, MPS, request_data(requester={
        "role": "researcher", "organization": "Unknown Institute", "partner_id": None, "nda_id": None}))
    assert refused.outcome == "refuse"
    assert cites(refused, "000", 10, "refuse")
    approved = run_decision(policy_con, MPS, request_data(requester={
        "role": "researcher", "organization": RESEARCH_ORG, "partner_id": None, "nda_id": None,
        "research_approval_id": RESEARCH_APPROVAL}))
    assert approved.outcome == "approve"
    no_nda_rows = run_decision(policy_con, MPS, identified_request(ALL_STUDENTS, level="deidentified", fields=["grade"],
                               requester={"role": "researcher", "organization": NO_NDA_ORG, "partner_id": None,
                                          "nda_id": None, "research_approval_id": NO_NDA_APPROVAL}))
    assert no_nda_rows.outcome == "refuse"


def test_check_mps_reports_and_the_mde_report_card_first(policy_con):
    """000:40: please check MPS Reports & Data and the MDE Report Card before requesting data."""
    decision = run_decision(policy_con, MPS, request_data(measures=["attendance_rate", "assessment_benchmark"]))
    names = [report["name"] for report in decision.public_data]
    assert any("MPS Reports" in n for n in names) and any("MDE Report Card" in n for n in names)
    assert cites(decision, "000", 40)


def test_fees_apply_to_external_requests(policy_con):
    """000:33 and 000:41: additional data via the External Data Request Form (fees apply)."""
    decision = run_decision(policy_con, MPS, request_data())
    assert decision.fee_estimate["amount"] > 0
    assert cites(decision, "000", 41)
    assert decision.office["name"] == "MPS External Data Request Form"
    assert decision.due_date is None  # MPS promises no turnaround
