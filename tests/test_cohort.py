"""Cohort building: ID normalization and validation, program and school cohorts."""

from __future__ import annotations

import pytest

from tests.warehouse_fixtures import A, B, S1_ID, S2_ID, S3_ID, S4_ID, S5_ID, Y1, Y2
from workbench.cohort import (
    CohortError,
    cohort_from_ids,
    cohort_from_program,
    cohort_from_school,
    normalize_student_id,
    split_id_text,
)


@pytest.mark.parametrize(
    ("raw", "expected", "kind"),
    [
        ("0000001", "0000001", "district"),
        ("  0000001\t", "0000001", "district"),
        ("1", "0000001", "district"),  # spreadsheet dropped the leading zeros
        (100005, "0100005", "district"),  # an integer cell
        ("100005.0", "0100005", "district"),  # a float cell written back as text
        ("2000000005", "2000000005", "state"),
        ("20 0000 0005", "2000000005", "state"),
    ],
)
def test_normalize_accepts_spreadsheet_forms(raw, expected, kind):
    normalized = normalize_student_id(raw)
    assert (normalized.value, normalized.kind) == (expected, kind)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("12A4567", "not all digits"),
        ("1.2E+05", "not all digits"),
        ("0000000", "all zeros"),
        ("12345678", "neither"),  # 8 digits: neither a district nor a state ID; not guessed
        ("0123456789", "neither"),  # 10 digits starting with 0 cannot be a state ID
        ("-123", "not all digits"),
    ],
)
def test_normalize_rejects_without_guessing(raw, problem):
    normalized = normalize_student_id(raw)
    assert normalized.value is None
    assert problem in normalized.problem


def test_kind_can_be_forced():
    assert normalize_student_id("2000000005", kind="district").value is None
    assert normalize_student_id("123", kind="state").value is None


def test_split_pasted_text_on_any_separator():
    assert split_id_text("0000001, 0000002;0000003\n0000004\t0000005 | 6") == [
        "0000001", "0000002", "0000003", "0000004", "0000005", "6",
    ]


def test_ids_are_matched_and_every_problem_reported(tiny_con):
    cohort = cohort_from_ids(
        tiny_con,
        ["1", " 0000002 ", "0000002", "2000000003", "9999999", "12A", "0100005", "0000004"],
        [Y1],
    )
    assert cohort.student_ids == [S1_ID, S2_ID]
    assert cohort.duplicated == ["0000002"]
    assert cohort.unknown == ["9999999"]
    assert [raw for raw, _ in cohort.malformed] == ["12A"]
    # Known students who were not enrolled in 2024-2025.
    assert sorted(cohort.not_enrolled) == sorted(["2000000003", "0100005", "0000004"])
    assert not cohort.is_clean


def test_the_same_student_by_district_and_state_id_is_a_duplicate(tiny_con):
    cohort = cohort_from_ids(tiny_con, ["0000003", "2000000003"], [Y2])
    assert cohort.student_ids == [S3_ID]
    assert cohort.duplicated == ["2000000003"]


def test_pasted_text_works_like_a_list(tiny_con):
    cohort = cohort_from_ids(tiny_con, "1\n2, 3; 4 100005", [Y2])
    assert sorted(cohort.student_ids) == sorted([S1_ID, S2_ID, S3_ID, S4_ID, S5_ID])
    assert cohort.is_clean


def test_repr_and_summary_hold_no_ids(tiny_con):
    cohort = cohort_from_ids(tiny_con, ["0000001", "9999999", "0000001"], [Y2])
    text = repr(cohort) + cohort.summary()
    assert "0000001" not in text and "9999999" not in text
    assert "1 matched" in text and "1 unknown" in text and "1 duplicated" in text


def test_program_cohort_respects_add_and_drop_dates(tiny_con):
    october = cohort_from_program(tiny_con, "PRG-001", "2025-10-20", [Y2])
    assert sorted(october.student_ids) == [S2_ID, S3_ID]
    # dropped_on is the first day a student is no longer in the program
    on_drop_day = cohort_from_program(tiny_con, "PRG-001", "2025-11-03", [Y2])
    assert on_drop_day.student_ids == [S2_ID]
    last_year = cohort_from_program(tiny_con, "PRG-001", "2024-10-01", [Y2])
    assert last_year.student_ids == [S1_ID]  # s1 was tagged in 2024 and is enrolled in 2025-2026


def test_program_cohort_reports_tagged_students_not_enrolled_in_the_years(tiny_con):
    cohort = cohort_from_program(tiny_con, "PRG-001", "2024-10-01", [Y1])
    assert cohort.student_ids == [S1_ID]
    cohort = cohort_from_program(tiny_con, "PRG-001", "2025-10-20", [Y1])
    assert cohort.student_ids == [S2_ID]
    assert cohort.not_enrolled == [S3_ID]


def test_school_cohort_by_school_of_record_and_grade(tiny_con):
    whole = cohort_from_school(tiny_con, B, [Y2])
    assert sorted(whole.student_ids) == sorted([S1_ID, S3_ID, S4_ID, S5_ID])
    sixth = cohort_from_school(tiny_con, B, [Y2], grades=[6])
    assert sorted(sixth.student_ids) == sorted([S1_ID, S4_ID])
    assert cohort_from_school(tiny_con, A, [Y2]).student_ids == [S2_ID]


def test_bad_cohort_definitions_are_clear_errors(tiny_con):
    with pytest.raises(CohortError, match="no program"):
        cohort_from_program(tiny_con, "PRG-999", "2025-10-01", [Y2])
    with pytest.raises(CohortError, match="no school"):
        cohort_from_school(tiny_con, "9999", [Y2])
    with pytest.raises(CohortError, match="grades"):
        cohort_from_school(tiny_con, A, [Y2], grades=[13])
    with pytest.raises(CohortError, match="school year"):
        cohort_from_ids(tiny_con, ["1"], [])


def test_program_cohort_over_the_whole_years(tiny_con):
    # s2 (active) and s3 (tagged October to November) were both served in 2025-2026.
    cohort = cohort_from_program(tiny_con, "PRG-001", None, [Y2])
    assert sorted(cohort.student_ids) == [S2_ID, S3_ID]
    assert "during 2025-2026" in cohort.source
