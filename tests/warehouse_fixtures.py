"""A five-student district small enough to compute every measure by hand.

2025-2026 (and 2024-2025 for the prior-year tests). School 1001 serves K-5, school 2002 serves
5-8. Student 0000003 moves from 1001 to 2002 in January and has more days at 2002, so 2002 is
their school of record. The expected values in tests/test_measures.py are worked out from the
rows below.
"""

from __future__ import annotations

from datetime import date

import pandas as pd

from workbench.schema import empty_frames, write_warehouse

Y1, Y2 = "2024-2025", "2025-2026"
A, B = "1001", "2002"
S1_ID, S2_ID, S3_ID, S4_ID, S5_ID = "0000001", "0000002", "0000003", "0000004", "0100005"


def tiny_frames() -> dict[str, pd.DataFrame]:
    frames = empty_frames()
    frames["schools"] = pd.DataFrame([
        (A, "Adams Elementary School", "elementary", 0, 5),
        (B, "Banneker Middle School", "middle", 5, 8),
    ], columns=["school_id", "name", "level", "grade_low", "grade_high"])
    frames["students"] = pd.DataFrame([
        (S1_ID, "2000000001", "Ana", "Lopez", date(2014, 3, 1), "F", "Hispanic or Latino"),
        (S2_ID, "2000000002", "Ben", "Smith", date(2015, 5, 2), "M", "White"),
        (S3_ID, "2000000003", "Cara", "Jones", date(2015, 1, 3), "F", "Black or African American"),
        (S4_ID, "2000000004", "Dee", "Nguyen", date(2014, 7, 4), "X", "Asian"),
        (S5_ID, "2000000005", "Eli", "Diaz", date(2013, 9, 5), "M", "Hispanic or Latino"),
    ], columns=["student_id", "state_id", "first_name", "last_name", "date_of_birth", "gender", "race_ethnicity"])
    frames["student_years"] = pd.DataFrame([
        (S1_ID, Y1, 5, False, False, True),
        (S2_ID, Y1, 4, False, False, False),
        (S1_ID, Y2, 6, False, False, True),
        (S2_ID, Y2, 5, False, True, False),
        (S3_ID, Y2, 5, True, False, True),
        (S4_ID, Y2, 6, False, False, True),
        (S5_ID, Y2, 7, True, True, False),
    ], columns=["student_id", "school_year", "grade", "english_learner", "disability", "low_income"])
    frames["enrollments"] = pd.DataFrame([
        (S1_ID, Y1, A, date(2024, 8, 27), date(2025, 6, 13), "year_end"),
        (S2_ID, Y1, A, date(2024, 8, 27), date(2025, 6, 13), "year_end"),
        (S1_ID, Y2, B, date(2025, 8, 26), date(2026, 6, 12), "year_end"),
        (S2_ID, Y2, A, date(2025, 8, 26), date(2026, 6, 12), "year_end"),
        (S3_ID, Y2, A, date(2025, 8, 26), date(2026, 1, 23), "transfer"),
        (S3_ID, Y2, B, date(2026, 1, 26), date(2026, 6, 12), "year_end"),
        (S4_ID, Y2, B, date(2025, 8, 26), date(2026, 1, 16), "left_district"),
        (S5_ID, Y2, B, date(2026, 6, 5), date(2026, 6, 12), "year_end"),
    ], columns=["student_id", "school_year", "school_id", "entry_date", "exit_date", "exit_reason"])
    frames["school_calendar"] = pd.DataFrame([
        (Y1, "S1", date(2024, 8, 27), date(2025, 1, 24), 80),
        (Y1, "S2", date(2025, 1, 27), date(2025, 6, 13), 90),
        (Y2, "S1", date(2025, 8, 26), date(2026, 1, 23), 80),
        (Y2, "S2", date(2026, 1, 26), date(2026, 6, 12), 90),
    ], columns=["school_year", "term", "first_day", "last_day", "instructional_days"])
    frames["attendance"] = pd.DataFrame([
        (S1_ID, Y1, "S1", A, 80, 20),
        (S1_ID, Y1, "S2", A, 90, 0),
        (S2_ID, Y1, "S1", A, 80, 2),
        (S2_ID, Y1, "S2", A, 90, 3),
        (S1_ID, Y2, "S1", B, 80, 10),
        (S1_ID, Y2, "S2", B, 90, 5),
        (S2_ID, Y2, "S1", A, 80, 2),
        (S2_ID, Y2, "S2", A, 90, 20),
        (S3_ID, Y2, "S1", A, 80, 0),
        (S3_ID, Y2, "S2", B, 90, 30),
        (S4_ID, Y2, "S1", B, 80, 8),
        (S5_ID, Y2, "S2", B, 5, 3),
    ], columns=["student_id", "school_year", "term", "school_id", "days_enrolled", "days_absent"])
    frames["behavior_incidents"] = pd.DataFrame([
        (1, S2_ID, Y1, A, date(2024, 10, 1), "disruption", "conference", 0),
        (2, S1_ID, Y2, B, date(2025, 10, 1), "defiance", "detention", 0),
        (3, S1_ID, Y2, B, date(2025, 11, 5), "fighting", "out_of_school_suspension", 2),
        (4, S4_ID, Y2, B, date(2025, 12, 1), "other", "conference", 0),
    ], columns=["incident_id", "student_id", "school_year", "school_id", "incident_date", "category", "action", "days_removed"])
    frames["sections"] = pd.DataFrame([
        ("2025-2002-0001", Y2, B, "T00002", "ELA-06", "English Language Arts 6", "ela", 6),
        ("2025-2002-0002", Y2, B, "T00003", "MATH-06", "Mathematics 6", "math", 6),
        ("2025-2002-0003", Y2, B, "T00003", "MATH-07", "Mathematics 7", "math", 7),
        ("2025-1001-0001", Y2, A, "T00001", "HR-05", "Homeroom 5", "homeroom", 5),
    ], columns=["section_id", "school_year", "school_id", "staff_id", "course_code", "course_name", "subject", "grade"])
    frames["section_students"] = pd.DataFrame([
        ("2025-2002-0001", S1_ID), ("2025-2002-0002", S1_ID),
        ("2025-2002-0001", S4_ID), ("2025-2002-0002", S4_ID),
        ("2025-2002-0003", S5_ID),
        ("2025-1001-0001", S2_ID), ("2025-1001-0001", S3_ID),
    ], columns=["section_id", "student_id"])
    frames["course_marks"] = pd.DataFrame([
        (S1_ID, "2025-2002-0001", Y2, "S1", "A"),
        (S1_ID, "2025-2002-0002", Y2, "S1", "F"),
        (S4_ID, "2025-2002-0001", Y2, "S1", "B"),
        (S4_ID, "2025-2002-0002", Y2, "S1", "C"),
        (S5_ID, "2025-2002-0003", Y2, "S2", "F"),
    ], columns=["student_id", "section_id", "school_year", "term", "mark"])
    frames["assessments"] = pd.DataFrame([
        (S1_ID, Y2, "ELA", 6, 520, 3, True),
        (S1_ID, Y2, "Math", 6, 490, 2, False),
        (S2_ID, Y2, "ELA", 5, 470, 1, False),
        (S2_ID, Y2, "Math", 5, 540, 4, True),
        (S3_ID, Y2, "ELA", 5, 505, 3, True),
    ], columns=["student_id", "school_year", "subject", "tested_grade", "scaled_score", "achievement_level", "meets_benchmark"])
    frames["partners"] = pd.DataFrame([
        ("P-01", "Northside Youth Club", "registered", date(2023, 1, 5), date(2028, 1, 5)),
    ], columns=["partner_id", "name", "registration_status", "registered_on", "registration_expires"])
    frames["programs"] = pd.DataFrame([
        ("PRG-001", "P-01", "After-School Tutoring at Adams Elementary School", A),
    ], columns=["program_id", "partner_id", "name", "school_id"])
    frames["program_students"] = pd.DataFrame([
        ("PRG-001", S1_ID, date(2024, 9, 9), date(2025, 6, 20)),
        ("PRG-001", S2_ID, date(2025, 9, 8), None),
        ("PRG-001", S3_ID, date(2025, 10, 6), date(2025, 11, 3)),
    ], columns=["program_id", "student_id", "added_on", "dropped_on"])
    frames["warehouse_info"] = pd.DataFrame({"key": ["synthetic"], "value": ["true"]})
    return frames


def build_tiny_warehouse(path) -> str:
    write_warehouse(path, tiny_frames())
    return str(path)
