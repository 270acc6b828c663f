"""Decisions under the BPS pack (seed 003, Superintendent's Circular ODA-03).

Each test names the seed lines it checks as 003:LINE.
"""

from __future__ import annotations

import json
from datetime import date

from tests.policy_fixtures import (
    ALL_STUDENTS,
    CONSENT_EXPIRED,
    CONSENT_OLD,
    CONSENT_PAPER,
    CONSENT_REVOKED,
    CONSENT_VIRTUAL_CURRENT,
    CURRENT_YEAR,
    DIRECTORY_OPT_OUT,
    EXPIRED_APPROVAL,
    LAPSED_PARTNER,
    LAST_YEAR_TEACHER,
    NO_CONSENT,
    NO_NDA_APPROVAL,
    NO_NDA_ORG,
    PARTNER_WITHOUT_NDA,
    PENDING_APPROVAL,
    PENDING_PARTNER,
    PRINCIPAL,
    PRIOR_YEAR,
    PROGRAM,
    RESEARCH_APPROVAL,
    RESEARCH_NDA,
    RESEARCH_ORG,
    SCHOOL_A,
    SCHOOL_A_STUDENTS,
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

BPS = "bps"


def researcher(**overrides):
    requester = {"role": "researcher", "organization": RESEARCH_ORG, "partner_id": None, "nda_id": None,
                 "research_approval_id": RESEARCH_APPROVAL}
    requester.update(overrides)
    return requester


def test_media_request_is_redirected_to_the_communications_office(policy_con):
    """003:78 and 003:97: all media requests go through the BPS Communications Office."""
    decision = run_decision(policy_con, BPS, request_data(requester={"role": "media", "partner_id": None}))
    assert decision.outcome == "redirect"
    assert decision.level is None
    assert "Communications Office" in decision.redirect_to["to"]
    assert "617-635-9265" in decision.redirect_to["contact"]
    assert {k: decision.redirect_to["source"][k] for k in ("file", "lines")} == {"file": "003_a1c0b4a5b6af9e75.txt", "lines": [97]}
    assert cites(decision, "003", 78, "redirect")
    assert decision.fee_estimate is None and decision.due_date is None


def test_public_records_request_goes_to_the_city_portal(policy_con):
    """003:98: public records requests go to the City of Boston's Public Records Center."""
    decision = run_decision(policy_con, BPS, request_data(requester={"role": "public_records", "partner_id": None}))
    assert decision.outcome == "redirect"
    assert "Public Records Center" in decision.redirect_to["to"]
    assert cites(decision, "003", 98, "redirect")


def test_researcher_without_an_approved_proposal_is_refused(policy_con):
    """003:47 and 003:74: all research requests go through the research proposal process."""
    for requester in (
        researcher(research_approval_id=None, organization="Unknown Institute"),
        researcher(research_approval_id=PENDING_APPROVAL, organization="Pending Institute"),
        researcher(research_approval_id=EXPIRED_APPROVAL, organization="Old Lab"),
        researcher(research_approval_id=RESEARCH_APPROVAL, organization="Another Org"),  # not theirs
    ):
        decision = run_decision(policy_con, BPS, request_data(requester=requester))
        assert decision.outcome == "refuse", requester
        assert "roles.researcher.requires" in rules(decision, "refuse")
        assert cites(decision, "003", 74, "refuse")
    approved = run_decision(policy_con, BPS, request_data(requester=researcher()))
    assert approved.outcome == "approve" and approved.level == "aggregate"


def test_research_approval_is_looked_up_not_trusted(policy_con):
    """003:74: the approval ID in the file is a claim; the warehouse finds the organization's own."""
    decision = run_decision(policy_con, BPS, request_data(requester=researcher(research_approval_id=None)))
    assert decision.outcome == "approve"
    assert any(RESEARCH_APPROVAL in r.message for r in decision.reasons)


def test_researcher_student_level_rows_need_a_current_nda(policy_con):
    """003:67: de-identified student-level data requires a current signed NDA."""
    fields = ["grade", "attendance", "marks"]
    with_nda = run_decision(policy_con, BPS, identified_request(
        ALL_STUDENTS, fields=fields, level="deidentified", requester=researcher(nda_id=RESEARCH_NDA)))
    assert with_nda.outcome == "approve" and with_nda.level == "deidentified"
    without = run_decision(policy_con, BPS, identified_request(
        ALL_STUDENTS, fields=fields, level="deidentified",
        requester=researcher(organization=NO_NDA_ORG, research_approval_id=NO_NDA_APPROVAL)))
    assert without.outcome == "refuse"
    assert cites(without, "003", 67, "refuse")


def test_researcher_identified_request_is_cut_to_deidentified(policy_con):
    """003:74 with 004:32: researchers get de-identified and aggregate data, not rosters."""
    decision = run_decision(policy_con, BPS, identified_request(
        SCHOOL_A_STUDENTS, fields=["name", "grade", "attendance"], requester=researcher()))
    assert decision.outcome == "partial"
    assert decision.level == "deidentified"
    assert set(levels(decision).values()) == {"deidentified"}
    assert decision.fields == ["grade", "attendance"]
    withheld = {w["field"]: w for w in decision.withheld_fields}
    assert withheld["name"]["rule"] == "fields.direct_identifiers"


def test_partner_identified_data_needs_current_consent_per_student(policy_con):
    """003:68 and 003:75: identifiable roster data needs current family consent and an NDA."""
    ids = [CONSENT_VIRTUAL_CURRENT, CONSENT_PAPER, CONSENT_OLD, CONSENT_REVOKED, CONSENT_EXPIRED, NO_CONSENT]
    decision = run_decision(policy_con, BPS, identified_request(ids))
    assert decision.outcome == "partial" and decision.level == "identified"
    assert levels(decision) == {
        CONSENT_VIRTUAL_CURRENT: "identified",
        CONSENT_PAPER: "identified",  # BPS names no channel
        CONSENT_OLD: "identified",  # BPS sets no age limit beyond the form's own expiry
        CONSENT_REVOKED: "excluded",
        CONSENT_EXPIRED: "excluded",
        NO_CONSENT: "excluded",  # BPS: left out, never de-identified for a partner
    }
    by_id = {s.student_id: s for s in decision.students}
    assert "revoked" in by_id[CONSENT_REVOKED].reasons[0].message
    assert "expired" in by_id[CONSENT_EXPIRED].reasons[0].message
    assert cites(decision, "003", 68)


def test_partner_must_be_fully_registered(policy_con):
    """003:75: partners must be fully registered on PartnerBPS."""
    for partner in (PENDING_PARTNER, LAPSED_PARTNER, "P-99"):
        decision = run_decision(policy_con, BPS, request_data(requester={"partner_id": partner, "nda_id": None}))
        assert decision.outcome == "refuse", partner
        assert cites(decision, "003", 75, "refuse")


def test_partner_needs_an_nda_before_any_data_and_the_file_is_not_trusted(policy_con):
    """003:75: partners sign an NDA before receiving any data, even aggregates."""
    no_nda = run_decision(policy_con, BPS, request_data(requester={"partner_id": PARTNER_WITHOUT_NDA, "nda_id": None}))
    assert no_nda.outcome == "refuse"
    claimed = run_decision(policy_con, BPS, request_data(requester={"partner_id": PARTNER_WITHOUT_NDA,
                                                                    "nda_id": RESEARCH_NDA}))
    assert claimed.outcome == "refuse"
    assert any("held by another party" in r.message for r in claimed.reasons)


def test_partner_deidentified_rows_drop_direct_identifiers(policy_con):
    """003:67: de-identified student-level data with a current NDA; names and IDs removed."""
    decision = run_decision(policy_con, BPS, identified_request(
        SCHOOL_A_STUDENTS, fields=["name", "student_id", "attendance"], level="deidentified"))
    assert decision.level == "deidentified"
    assert decision.fields == ["attendance"]
    assert {w["field"] for w in decision.withheld_fields} == {"name", "student_id"}


def test_partner_is_asked_for_school_agreements(policy_con):
    """003:75 and 003:77: any MOU or partnership agreement must be provided with the request."""
    decision = run_decision(policy_con, BPS, request_data())
    assert any("MOU" in c for c in decision.conditions)
    assert cites(decision, "003", 77, "condition")


def test_aggregate_groups_of_fewer_than_10_are_suppressed(policy_con):
    """003:66: aggregate groups with fewer than 10 students are suppressed; a cohort of 9 cannot be reported."""
    nine = run_decision(policy_con, BPS, request_data(cohort={"student_ids": ALL_STUDENTS[:9]}))
    assert nine.outcome == "refuse"
    assert "small_groups" in rules(nine, "refuse")
    ten = run_decision(policy_con, BPS, request_data(cohort={"student_ids": ALL_STUDENTS[:10]}))
    assert ten.outcome == "approve"
    assert cites(ten, "003", 66)
    assert ten.small_groups["threshold"] == 10 and ten.small_groups["comparison"] == "<"
    assert [s.level for s in ten.students] == ["aggregate"] * 10


def test_outside_agencies_get_aggregates_only(policy_con):
    """003:79: agencies outside BPS may receive aggregate de-identified data."""
    agency = {"role": "external_agency", "partner_id": None, "nda_id": None, "organization": "City Housing Agency"}
    rows = run_decision(policy_con, BPS, identified_request(ALL_STUDENTS, level="deidentified",
                                                            fields=["grade"], requester=agency))
    assert rows.outcome == "refuse"
    assert cites(rows, "003", 79, "refuse")
    assert run_decision(policy_con, BPS, request_data(requester=agency)).outcome == "approve"


def test_state_agency_student_rows_only_under_the_audit_exception(policy_con):
    """003:79 (agencies: aggregates), 003:54 (audit exception) and 003:57 (a signed agreement)."""
    state = {"role": "state_agency", "partner_id": None, "nda_id": None, "organization": STATE_AGENCY}
    plain = run_decision(policy_con, BPS, identified_request(ALL_STUDENTS, level="deidentified",
                                                             fields=["grade"], requester=state))
    assert plain.outcome == "refuse"
    audit = run_decision(policy_con, BPS, identified_request(ALL_STUDENTS, level="identified", fields=["grade"],
                                                             requester=state, exception="audit"))
    assert audit.outcome == "approve" and audit.level == "identified"
    assert cites(audit, "003", 54) and cites(audit, "003", 54, "condition")
    no_agreement = run_decision(policy_con, BPS, identified_request(
        ALL_STUDENTS, fields=["grade"], exception="audit",
        requester={**state, "organization": "Unknown Auditors"}))
    assert no_agreement.outcome == "refuse"
    assert "exceptions.audit.requires" in rules(no_agreement, "refuse")


def test_school_leader_sees_only_their_school_this_year(policy_con):
    """003:73: school leaders see identifiable data only for their school's students in that year."""
    leader = {"role": "school_leader", "partner_id": None, "nda_id": None, "staff_id": PRINCIPAL,
              "staff_school_id": SCHOOL_A}
    ids = [SCHOOL_A_STUDENTS[0], SCHOOL_B_STUDENTS[0]]
    decision = run_decision(policy_con, BPS, identified_request(ids, requester=leader,
                                                                years=[PRIOR_YEAR, CURRENT_YEAR]))
    assert levels(decision) == {SCHOOL_A_STUDENTS[0]: "identified", SCHOOL_B_STUDENTS[0]: "excluded"}
    assert decision.years == [CURRENT_YEAR]  # last year withheld
    assert "roles.school_leader.current_year_only" in rules(decision, "limit")
    assert cites(decision, "003", 73)
    last_year_only = run_decision(policy_con, BPS, identified_request(ids, requester=leader, years=[PRIOR_YEAR]))
    assert last_year_only.outcome == "refuse"
    wrong_school = run_decision(policy_con, BPS, identified_request(
        ids, requester={**leader, "staff_school_id": "2050"}))
    assert wrong_school.outcome == "refuse"


def test_teacher_sees_only_students_in_their_sections_this_year(policy_con):
    """003:73: teachers see identifiable data only for the students they teach in that year."""
    teacher = {"role": "teacher", "partner_id": None, "nda_id": None, "staff_id": TEACHER}
    ids = SECTION_NOW_STUDENTS + SECTION_LAST_STUDENTS
    decision = run_decision(policy_con, BPS, identified_request(ids, requester=teacher))
    assert decision.outcome == "partial"
    assert {s for s, lvl in levels(decision).items() if lvl == "identified"} == set(SECTION_NOW_STUDENTS)
    assert {s for s, lvl in levels(decision).items() if lvl == "excluded"} == set(SECTION_LAST_STUDENTS)
    assert decision.fee_estimate["waived"] is True
    former = run_decision(policy_con, BPS, identified_request(ids, requester={**teacher, "staff_id": LAST_YEAR_TEACHER}))
    assert former.outcome == "refuse"
    assert "roles.teacher.requires" in rules(former, "refuse")


def test_a_cohort_of_specific_students_without_ids_is_refused(policy_con):
    """003:91 and 003:93: requests for a specific group without student ID numbers are not fulfilled."""
    decision = run_decision(policy_con, BPS, request_data(cohort={"program": PROGRAM}))
    assert decision.outcome == "refuse"
    assert "cohort.kinds.program" in rules(decision, "refuse")
    assert cites(decision, "003", 93, "refuse")


def test_directory_requests_release_directory_fields_and_honor_opt_outs(policy_con):
    """003:19 and 003:23-28 directory information (name, age, grade, dates of enrollment);
    003:21 date of birth, BPSID and school name are not directory information."""
    ids = SCHOOL_A_STUDENTS[:8]
    decision = run_decision(policy_con, BPS, identified_request(
        ids, level="directory", fields=["name", "grade", "date_of_birth", "school", "student_id"]))
    assert decision.level == "directory"
    assert decision.fields == ["name", "grade"]
    assert {w["field"] for w in decision.withheld_fields} == {"date_of_birth", "school", "student_id"}
    assert levels(decision)[DIRECTORY_OPT_OUT] == "excluded"
    assert sum(1 for lvl in levels(decision).values() if lvl == "directory") == 7
    assert cites(decision, "003", 19) or cites(decision, "003", 23)


def test_district_staff_get_student_rows_only_as_school_officials(policy_con):
    """003:55: provision of data to appropriate school and central office staff (School Official)."""
    staff = {"role": "district_staff", "partner_id": None, "nda_id": None, "organization": "Office of Data"}
    plain = run_decision(policy_con, BPS, identified_request(ALL_STUDENTS, requester=staff))
    assert plain.outcome == "refuse"
    official = run_decision(policy_con, BPS, identified_request(ALL_STUDENTS, requester=staff,
                                                                exception="school_official"))
    assert official.outcome == "approve" and official.level == "identified"
    assert cites(official, "003", 55, "condition")


def test_studies_exception_waives_consent_but_not_the_agreement(policy_con):
    """003:53 (district-sponsored studies) and 003:57 (a written and signed agreement)."""
    decision = run_decision(policy_con, BPS, identified_request(
        [CONSENT_VIRTUAL_CURRENT, NO_CONSENT, CONSENT_REVOKED], exception="studies"))
    assert decision.outcome == "approve"
    assert set(levels(decision).values()) == {"identified"}
    assert cites(decision, "003", 53, "condition")
    without_nda = run_decision(policy_con, BPS, identified_request(
        [NO_CONSENT], exception="studies", requester={"partner_id": PARTNER_WITHOUT_NDA, "nda_id": None}))
    assert without_nda.outcome == "refuse"


def test_an_exception_the_role_cannot_claim_is_ignored(policy_con):
    """003:51-55: exceptions apply to the requesters they are written for; a teacher cannot claim audit."""
    teacher = {"role": "teacher", "partner_id": None, "nda_id": None, "staff_id": TEACHER}
    decision = run_decision(policy_con, BPS, identified_request(SECTION_LAST_STUDENTS, requester=teacher,
                                                                exception="audit"))
    assert "exceptions.audit.roles" in rules(decision, "limit")
    assert decision.outcome == "refuse"  # still only their current sections
    assert cites(decision, "003", 54)


def test_parents_see_their_own_children_under_lgl7(policy_con):
    """004:18 (parents see their own children) and 003:59 (student records under Circular LGL-7)."""
    parent = {"role": "parent", "partner_id": None, "nda_id": None, "student_ids": [ALL_STUDENTS[0]]}
    decision = run_decision(policy_con, BPS, identified_request(ALL_STUDENTS[:2], requester=parent))
    assert levels(decision) == {ALL_STUDENTS[0]: "identified", ALL_STUDENTS[1]: "excluded"}
    assert any("LGL-7" in c for c in decision.conditions)
    assert cites(decision, "003", 59, "condition")


def test_turnaround_is_counted_in_business_days(policy_con):
    """003:95: clarifying questions within 3-5 business days; partners 15, research 25 business days."""
    partner = run_decision(policy_con, BPS, request_data(received="2025-11-03"))
    # Veterans Day (Tuesday 11 November 2025) is skipped.
    assert partner.due_date == date(2025, 11, 25)
    assert partner.clarify_by == date(2025, 11, 10)
    research = run_decision(policy_con, BPS, request_data(received="2025-11-03", requester=researcher()))
    # Veterans Day and Thanksgiving (27 November) are skipped.
    assert research.due_date == date(2025, 12, 10)
    assert cites(partner, "003", 95)


def test_fees_are_estimated_from_the_pack(policy_con):
    """003:102: a fee estimate, if applicable, dependent on size, time and scope."""
    small = run_decision(policy_con, BPS, request_data(measures=["attendance_rate"], breakdowns=[]))
    large = run_decision(policy_con, BPS, request_data(
        measures=["attendance_rate", "chronic_absence", "behavior_incident"],
        breakdowns=["grade", "gender"], years=[PRIOR_YEAR, CURRENT_YEAR]))
    assert 0 < small.fee_estimate["amount"] < large.fee_estimate["amount"]
    assert small.fee_estimate["currency"] == "USD" and not small.fee_estimate["waived"]
    assert cites(small, "003", 102)


def test_public_reports_are_suggested_first_for_district_aggregates(policy_con):
    """003:34 review Appendix I first: 003:131 MCAS, 003:139 enrollment by grade,
    003:142 selected populations, 003:146 attendance report, 003:148 discipline."""
    measures = ["enrolled", "attendance_rate", "chronic_absence", "behavior_incident",
                "assessment_benchmark", "low_income"]
    decision = run_decision(policy_con, BPS, request_data(measures=measures))
    names = " | ".join(report["name"] for report in decision.public_data)
    for expected in ("Attendance", "Discipline", "MCAS", "Enrollment by Grade", "Selected Population"):
        assert expected in names
    assert cites(decision, "003", 146)
    for_ids = run_decision(policy_con, BPS, request_data(measures=measures, cohort={"student_ids": ALL_STUDENTS}))
    assert for_ids.public_data == []


def test_every_decision_carries_the_bps_notices_and_office(policy_con):
    """003:88 (audience), 003:95 (the office may deny requests), 003:111 (Office of Data and Accountability)."""
    decision = run_decision(policy_con, BPS, request_data())
    assert cites(decision, "003", 88) and cites(decision, "003", 95)
    assert decision.office["name"] == "Office of Data and Accountability"
    assert 111 in decision.office["source"]["lines"]


def test_consent_is_current_family_consent_of_any_channel(policy_con):
    """003:68 and 003:75: current (active) family consent; the circular names no channel or age."""
    decision = run_decision(policy_con, BPS, identified_request([CONSENT_PAPER, CONSENT_OLD]))
    assert set(levels(decision).values()) == {"identified"}


def test_decision_json_has_the_contract_keys(policy_con):
    """003:68: an identified decision serializes to JSON with every student's level and reasons."""
    decision = run_decision(policy_con, BPS, identified_request([CONSENT_VIRTUAL_CURRENT, NO_CONSENT, "0099999"]))
    data = json.loads(decision.to_json())
    for key in ("outcome", "level", "students", "withheld_fields", "reasons", "redirect_to", "due_date",
                "clarify_by", "fee_estimate"):
        assert key in data
    students = {s["student_id"]: s for s in data["students"]}
    assert students["0099999"]["level"] == "excluded"
    assert students[NO_CONSENT]["reasons"][0]["rule"] == "consent"
    assert all({"rule", "message", "source"} <= set(r) for r in data["reasons"])


def test_a_teachers_current_year_ends_with_the_school_year(policy_con):
    """003:73 "in that academic year": in June the year is still 2025-2026; from July it is the next one."""
    teacher = {"role": "teacher", "partner_id": None, "nda_id": None, "staff_id": TEACHER}
    request = identified_request(SECTION_NOW_STUDENTS, requester=teacher)
    in_june = run_decision(policy_con, BPS, request, as_of=date(2026, 6, 30))
    assert in_june.outcome == "approve"
    in_august = run_decision(policy_con, BPS, request, as_of=date(2026, 8, 3))
    assert in_august.outcome == "refuse"
    assert any("2026-2027" in r.message for r in in_august.reasons if r.effect == "refuse")
