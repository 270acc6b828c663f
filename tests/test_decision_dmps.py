"""Decisions under the DMPS pack (seed 001, Obtaining Data on Students Served).

Each test names the seed lines it checks as 001:LINE.
"""

from __future__ import annotations

from datetime import date

from tests.policy_fixtures import (
    ALL_STUDENTS,
    CONSENT_EXPIRED,
    CONSENT_OLD,
    CONSENT_PAPER,
    CONSENT_REVOKED,
    CONSENT_VIRTUAL_CURRENT,
    NO_CONSENT,
    PARTNER_WITHOUT_NDA,
    PENDING_PARTNER,
    PROGRAM,
    PROGRAM_STUDENTS,
    SCHOOL_A_STUDENTS,
    cites,
    identified_request,
    levels,
    policy_con,  # noqa: F401  (fixture)
    request_data,
    rules,
    run_decision,
)

DMPS = "dmps"


def test_a_group_of_exactly_10_is_not_larger_than_10(policy_con):
    """001:2 and 001:20: aggregates only for groups larger than 10; the safer reading suppresses 10."""
    ten = run_decision(policy_con, DMPS, request_data(cohort={"student_ids": PROGRAM_STUDENTS[:10]}))
    assert ten.outcome == "refuse"
    assert cites(ten, "001", 20, "refuse")
    eleven = run_decision(policy_con, DMPS, request_data(cohort={"student_ids": PROGRAM_STUDENTS[:11]}))
    assert eleven.outcome == "approve"
    assert eleven.small_groups["comparison"] == "<="
    bps_ten = run_decision(policy_con, "bps", request_data(cohort={"student_ids": PROGRAM_STUDENTS[:10]}))
    assert bps_ten.outcome == "approve"  # BPS suppresses only fewer than 10


def test_identified_rows_only_with_a_current_virtual_release(policy_con):
    """001:4 only virtual release forms; 001:16-17 identified data with parental consent;
    001:19 and 001:22-23 without consent the rows are de-identified instead."""
    ids = [CONSENT_VIRTUAL_CURRENT, CONSENT_PAPER, CONSENT_OLD, CONSENT_REVOKED, CONSENT_EXPIRED, NO_CONSENT]
    decision = run_decision(policy_con, DMPS, identified_request(ids))
    assert levels(decision) == {
        CONSENT_VIRTUAL_CURRENT: "identified",
        CONSENT_PAPER: "deidentified",  # a paper form is never accepted
        CONSENT_OLD: "identified",  # DMPS sets no age limit; the form is still current
        CONSENT_REVOKED: "deidentified",
        CONSENT_EXPIRED: "deidentified",
        NO_CONSENT: "deidentified",
    }
    paper = next(s for s in decision.students if s.student_id == CONSENT_PAPER)
    assert "only virtual forms are accepted" in paper.reasons[0].message
    assert {k: paper.reasons[0].source[k] for k in ("file", "lines")} == {"file": "001_2d8a61f13c85a88f.txt", "lines": [4]}
    assert paper.reasons[0].source["document"].startswith("DMPS")
    assert decision.outcome == "partial" and decision.level == "identified"
    withheld = {w["field"]: w["applies_to"] for w in decision.withheld_fields}
    assert withheld == {"name": "de-identified rows"}  # names stay for the consented students
    assert cites(decision, "001", 2)


def test_partners_get_rows_only_for_students_tagged_to_their_program(policy_con):
    """001:2 official community partners, 001:5-6 students tagged to the program."""
    untagged = [s for s in SCHOOL_A_STUDENTS if s not in PROGRAM_STUDENTS]
    decision = run_decision(policy_con, DMPS, identified_request([CONSENT_VIRTUAL_CURRENT] + untagged))
    assert levels(decision)[CONSENT_VIRTUAL_CURRENT] == "identified"
    assert all(levels(decision)[s] == "excluded" for s in untagged)
    assert "roles.community_partner.student_scope" in rules(decision, "limit")
    assert cites(decision, "001", 5, "condition")


def test_program_cohorts_are_how_dmps_works(policy_con):
    """001:5-8 tag students to your program; 001:7 the add/drop form updates weekly."""
    decision = run_decision(policy_con, DMPS, request_data(cohort={"program": PROGRAM}))
    assert decision.outcome == "approve"
    assert decision.cohort["size"] == len(PROGRAM_STUDENTS)
    assert decision.students == []  # per-student levels are listed only for ID cohorts
    assert any("once a week" in c for c in decision.conditions)
    assert cites(decision, "001", 7, "condition")


def test_id_lists_are_accepted_with_advice(policy_con):
    """001:6: DMPS cannot look students up line by line efficiently."""
    decision = run_decision(policy_con, DMPS, request_data(cohort={"student_ids": PROGRAM_STUDENTS}))
    assert decision.outcome == "approve"
    assert cites(decision, "001", 6, "info")


def test_deidentified_rows_may_have_quasi_identifiers_redacted(policy_con):
    """001:22-23 de-identified rows ("Student 1, 2, 3"); 001:24 school, gender, grade, race may be redacted."""
    decision = run_decision(policy_con, DMPS, identified_request(
        PROGRAM_STUDENTS, level="deidentified", fields=["name", "school", "gender", "grade", "race_ethnicity",
                                                        "attendance"]))
    assert decision.level == "deidentified"
    assert decision.fields == ["school", "gender", "grade", "race_ethnicity", "attendance"]
    assert decision.redact_as_needed == ["school", "gender", "grade", "race_ethnicity"]
    assert cites(decision, "001", 24, "condition")
    assert cites(decision, "001", 22)


def test_only_official_partners_get_data(policy_con):
    """001:2: the data is a benefit of being an official community partner."""
    decision = run_decision(policy_con, DMPS, request_data(requester={"partner_id": PENDING_PARTNER, "nda_id": None}))
    assert decision.outcome == "refuse"
    assert cites(decision, "001", 2, "refuse")


def test_without_an_agreement_unconsented_students_are_left_out(policy_con):
    """001:19-23 with the baseline NDA kept for de-identified rows (safer reading): no NDA, no fallback."""
    decision = run_decision(policy_con, DMPS, identified_request(
        [NO_CONSENT], requester={"partner_id": PARTNER_WITHOUT_NDA, "nda_id": None}))
    assert decision.outcome == "refuse"


def test_data_comes_within_two_weeks(policy_con):
    """001:10: the data team will be in touch within 2 weeks (10 business days)."""
    decision = run_decision(policy_con, DMPS, request_data(received="2025-11-03"))
    assert decision.due_date == date(2025, 11, 18)  # Veterans Day skipped
    assert decision.clarify_by is None
    assert cites(decision, "001", 10)


def test_the_decision_names_the_dmps_contact(policy_con):
    """001:13: community partner procedures are answered at communityschools@dmschools.org."""
    decision = run_decision(policy_con, DMPS, request_data(cohort={"student_ids": ALL_STUDENTS}))
    assert decision.office["contact"] == "communityschools@dmschools.org"
    assert 13 in decision.office["source"]["lines"]
