"""Every measure against values worked out by hand from tests/warehouse_fixtures.py."""

from __future__ import annotations

import pytest

from tests.warehouse_fixtures import A, B, S1_ID, S2_ID, S3_ID, Y1, Y2
from workbench.measures import MEASURES, MeasureError, compute, school_of_record


def row(frame, **keys):
    selected = frame
    for column, value in keys.items():
        selected = selected[selected[column] == value]
    assert len(selected) == 1, f"expected one row for {keys}, got {len(selected)}"
    return selected.iloc[0]


def test_school_of_record_puts_a_mover_where_they_spent_most_days(tiny_con):
    records = school_of_record(tiny_con, [Y2]).to_pandas()
    assert records["student_id"].is_unique
    assert row(records, student_id=S3_ID)["school_id"] == B


def test_enrolled_counts_distinct_students_not_enrollment_rows(tiny_con):
    # Student 3 has two enrollment rows in 2025-2026 but is one student, at school of record B.
    total = compute(tiny_con, "enrolled", [Y2])
    assert row(total, school_year=Y2)["students"] == 5
    by_school = compute(tiny_con, "enrolled", [Y2], ["school"])
    assert row(by_school, school_id=A)["count"] == 1
    assert row(by_school, school_id=B)["count"] == 4
    assert by_school["count"].sum() == 5


def test_attendance_rate_is_days_present_over_days_enrolled(tiny_con):
    result = compute(tiny_con, "attendance_rate", [Y2])
    enrolled = 170 + 170 + 170 + 80 + 5
    absent = 15 + 22 + 30 + 8 + 3
    assert row(result, school_year=Y2)["value"] == pytest.approx((enrolled - absent) / enrolled)
    assert row(result, school_year=Y2)["students"] == 5


def test_chronic_absence_uses_ten_percent_of_enrolled_days_and_a_ten_day_minimum(tiny_con):
    # s2 22/170 and s3 30/170 are chronic; s4 8/80 is exactly 10% (chronic); s1 15/170 is not;
    # s5 has 5 days enrolled and is not counted at all.
    result = compute(tiny_con, "chronic_absence", [Y2], ["school"])
    assert (row(result, school_id=A)["students"], row(result, school_id=A)["count"]) == (1, 1)
    assert (row(result, school_id=B)["students"], row(result, school_id=B)["count"]) == (3, 2)
    assert row(result, school_id=B)["value"] == pytest.approx(2 / 3)


def test_behavior_incident_counts_students_not_incidents(tiny_con):
    result = compute(tiny_con, "behavior_incident", [Y2])
    assert (row(result, school_year=Y2)["students"], row(result, school_year=Y2)["count"]) == (5, 2)


def test_course_failure_is_over_students_with_marks(tiny_con):
    result = compute(tiny_con, "course_failure", [Y2])
    assert (row(result, school_year=Y2)["students"], row(result, school_year=Y2)["count"]) == (3, 2)


def test_assessment_benchmark_is_per_subject_over_tested_students(tiny_con):
    result = compute(tiny_con, "assessment_benchmark", [Y2])
    ela = row(result, subject="ELA")
    math = row(result, subject="Math")
    assert (ela["students"], ela["count"]) == (3, 2)
    assert (math["students"], math["count"]) == (2, 1)


def test_low_income_share(tiny_con):
    result = compute(tiny_con, "low_income", [Y2], ["gender"])
    assert (row(result, gender="F")["students"], row(result, gender="F")["count"]) == (2, 2)
    assert (row(result, gender="M")["students"], row(result, gender="M")["count"]) == (2, 0)
    assert (row(result, gender="X")["students"], row(result, gender="X")["count"]) == (1, 1)


def test_breakdowns_on_year_attributes(tiny_con):
    by_grade = compute(tiny_con, "enrolled", [Y2], ["grade", "english_learner"])
    assert row(by_grade, grade=5, english_learner=True)["students"] == 1  # s3
    assert row(by_grade, grade=7, english_learner=True)["students"] == 1  # s5
    assert by_grade["students"].sum() == 5
    by_level = compute(tiny_con, "enrolled", [Y2], ["school_level", "disability"])
    assert row(by_level, level="middle", disability=True)["students"] == 1  # s5


def test_program_breakdown_counts_students_tagged_during_the_year(tiny_con):
    # In 2025-2026 PRG-001 had s2 (active) and s3 (tagged in October, dropped in November).
    result = compute(tiny_con, "enrolled", [Y2], ["program"])
    assert row(result, program="PRG-001")["students"] == 2
    earlier = compute(tiny_con, "enrolled", [Y1], ["program"])
    assert row(earlier, program="PRG-001")["students"] == 1


def test_cohort_with_prior_year_change_and_district_comparison(tiny_con):
    result = compute(
        tiny_con, "chronic_absence", [Y2], student_ids=[S1_ID, S2_ID],
        prior_year=True, district_comparison=True,
    )
    current = row(result, school_year=Y2)
    assert (current["students"], current["count"]) == (2, 1)
    assert current["value"] == pytest.approx(0.5)
    # 2024-2025: s1 20/170 chronic, s2 5/170 not: 1 of 2.
    assert current["prior_value"] == pytest.approx(0.5)
    assert current["change"] == pytest.approx(0.0)
    # District: s2, s3, s4 chronic out of s1-s4 eligible.
    assert current["district_value"] == pytest.approx(3 / 4)


def test_change_from_prior_year_by_group(tiny_con):
    result = compute(tiny_con, "enrolled", [Y2], ["school"], prior_year=True)
    assert row(result, school_id=A)["prior_value"] == pytest.approx(1.0)
    assert row(result, school_id=B)["prior_value"] != row(result, school_id=B)["prior_value"]  # NaN: B had nobody


def test_every_documented_measure_runs(tiny_con):
    for name in MEASURES:
        result = compute(tiny_con, name, [Y2], ["school"])
        assert {"school_year", "school_id", "students", "count", "value"} <= set(result.columns)


def test_unknown_measure_breakdown_or_year_is_a_clear_error(tiny_con):
    with pytest.raises(MeasureError, match="unknown measure"):
        compute(tiny_con, "graduation", [Y2])
    with pytest.raises(MeasureError, match="unknown breakdown"):
        compute(tiny_con, "enrolled", [Y2], ["shoe_size"])
    with pytest.raises(MeasureError, match="not in the warehouse"):
        compute(tiny_con, "enrolled", ["2030-2031"])
