"""Invariants of the synthetic district generator."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from tests.conftest import SMALL_DISTRICT_SEED, SMALL_DISTRICT_STUDENTS
from workbench.schema import SCHEMA
from workbench.synthetic import generate_district, parse_years
from workbench.synthetic.generator import RACES


def frame_digest(frame: pd.DataFrame) -> str:
    return hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()).hexdigest()


def test_every_schema_table_is_generated_with_its_columns(small_district_tables):
    assert set(small_district_tables) == set(SCHEMA)
    for name, columns in SCHEMA.items():
        assert list(small_district_tables[name].columns) == list(columns), name


def test_same_seed_same_district_other_seed_other_district(small_district_tables):
    again = generate_district(SMALL_DISTRICT_STUDENTS, seed=SMALL_DISTRICT_SEED)
    for name, frame in small_district_tables.items():
        assert frame_digest(frame) == frame_digest(again[name]), name
    other = generate_district(SMALL_DISTRICT_STUDENTS, seed=SMALL_DISTRICT_SEED + 1)
    assert frame_digest(other["students"]) != frame_digest(small_district_tables["students"])


def test_student_ids_are_unique_fixed_width_and_often_start_with_zero(small_district_tables):
    students = small_district_tables["students"]
    assert students["student_id"].is_unique and students["state_id"].is_unique
    assert students["student_id"].str.fullmatch(r"\d{7}").all()
    assert students["state_id"].str.fullmatch(r"[1-9]\d{9}").all()
    assert students["student_id"].str.startswith("0").mean() > 0.2


def test_about_the_requested_size_each_year(small_district_tables):
    per_year = small_district_tables["student_years"].groupby("school_year")["student_id"].nunique()
    assert list(per_year.index) == ["2023-2024", "2024-2025", "2025-2026"]
    assert ((per_year - SMALL_DISTRICT_STUDENTS).abs() <= SMALL_DISTRICT_STUDENTS * 0.03).all()
    assert small_district_tables["student_years"].duplicated(["student_id", "school_year"]).sum() == 0


def test_demographics_are_uneven_with_small_groups(small_district_tables):
    students = small_district_tables["students"]
    shares = students["race_ethnicity"].value_counts(normalize=True)
    assert set(shares.index) <= set(RACES)
    assert shares.iloc[0] > 0.3  # a large majority group
    assert shares.min() < 0.02  # and small groups that suppression has to handle
    assert set(students["gender"]) == {"F", "M", "X"}
    assert (students["gender"] == "X").mean() < 0.02


def test_enrollments_are_consistent(small_district_tables):
    t = small_district_tables
    enrollments = t["enrollments"]
    assert (enrollments["entry_date"] <= enrollments["exit_date"]).all()
    # Every enrolled student-year has at least one stay, and every stay belongs to one.
    years = t["student_years"][["student_id", "school_year"]]
    stays = enrollments[["student_id", "school_year"]].drop_duplicates()
    assert len(years.merge(stays)) == len(years) == len(stays)
    # Stays of one student in one year do not overlap and are in date order.
    ordered = enrollments.sort_values(["student_id", "school_year", "entry_date"])
    previous_exit = ordered.groupby(["student_id", "school_year"])["exit_date"].shift()
    assert (previous_exit.isna() | (previous_exit < ordered["entry_date"])).all()
    # Mid-year moves exist and go to another school.
    movers = enrollments[enrollments["exit_reason"] == "transfer"]
    assert len(movers) > SMALL_DISTRICT_STUDENTS * 0.01
    # Each stay is within its school year's calendar.
    calendar = t["school_calendar"].groupby("school_year").agg(first=("first_day", "min"), last=("last_day", "max"))
    bounds = enrollments.join(calendar, on="school_year")
    assert (bounds["entry_date"] >= bounds["first"]).all() and (bounds["exit_date"] <= bounds["last"]).all()


def test_schools_serve_the_grades_of_their_students(small_district_tables):
    t = small_district_tables
    placed = t["enrollments"].merge(t["student_years"], on=["student_id", "school_year"]).merge(t["schools"], on="school_id")
    assert ((placed["grade"] >= placed["grade_low"]) & (placed["grade"] <= placed["grade_high"])).all()


def test_a_few_very_small_schools(small_district_tables):
    t = small_district_tables
    sizes = t["enrollments"].groupby(["school_year", "school_id"])["student_id"].nunique()
    assert (sizes < 50).groupby(level="school_year").sum().min() >= 2


def test_attendance_matches_enrollments(small_district_tables):
    t = small_district_tables
    attendance = t["attendance"]
    assert (attendance["days_absent"] <= attendance["days_enrolled"]).all()
    assert (attendance["days_enrolled"] > 0).all()
    per_stay = attendance.groupby(["student_id", "school_year", "school_id"])["days_enrolled"].sum()
    calendar_days = t["school_calendar"].groupby("school_year")["instructional_days"].sum()
    per_year = per_stay.groupby(level=["student_id", "school_year"]).sum()
    assert (per_year.to_numpy() <= calendar_days.loc[per_year.index.get_level_values("school_year")].to_numpy()).all()
    enrolled_pairs = set(map(tuple, t["enrollments"][["student_id", "school_year", "school_id"]].to_numpy()))
    assert set(per_stay.index) <= enrolled_pairs


def test_sections_hold_students_of_their_school_and_year(small_district_tables):
    t = small_district_tables
    members = t["section_students"].merge(t["sections"], on="section_id")
    enrolled = t["enrollments"][["student_id", "school_year", "school_id"]].drop_duplicates()
    joined = members.merge(enrolled, on=["student_id", "school_year", "school_id"], how="left", indicator=True)
    assert (joined["_merge"] == "both").all()
    teachers = t["staff_assignments"]
    teaching = teachers[teachers["role"] == "teacher"][["staff_id", "school_year", "school_id"]]
    assert len(t["sections"].merge(teaching)) == len(t["sections"])
    assert set(t["sections"]["staff_id"]) <= set(t["staff"]["staff_id"])


def test_outcomes_look_like_a_district(small_district_tables):
    t = small_district_tables
    marks = t["course_marks"]
    assert set(marks["mark"]) == set("ABCDF")
    failing = marks[marks["mark"] == "F"].groupby("school_year")["student_id"].nunique()
    marked = marks.groupby("school_year")["student_id"].nunique()
    assert ((failing / marked) > 0.05).all() and ((failing / marked) < 0.4).all()
    tests = t["assessments"]
    assert set(tests["tested_grade"]) <= {3, 4, 5, 6, 7, 8, 10}
    assert set(tests["subject"]) == {"ELA", "Math"}
    assert tests["scaled_score"].between(440, 560).all()
    assert (tests["meets_benchmark"] == (tests["achievement_level"] >= 3)).all()
    assert 0.2 < tests["meets_benchmark"].mean() < 0.7
    incidents = t["behavior_incidents"]
    assert incidents["incident_id"].is_unique


def test_programs_tags_and_agreements(small_district_tables):
    t = small_district_tables
    tags = t["program_students"]
    assert set(tags["program_id"]) <= set(t["programs"]["program_id"])
    dropped = tags.dropna(subset=["dropped_on"])
    assert (pd.to_datetime(dropped["added_on"]) < pd.to_datetime(dropped["dropped_on"])).all()
    assert (pd.to_datetime(tags["added_on"]).dt.day_of_week == 0).all()  # weekly add/drop on Mondays
    consents = t["consents"]
    assert set(consents["channel"]) == {"virtual", "paper"}
    assert (consents["signed_on"] < consents["expires_on"]).all()
    assert consents["revoked_on"].notna().any()
    age = (pd.to_datetime(consents["expires_on"]) - pd.to_datetime(consents["signed_on"])).dt.days
    assert (age > 366).any() and (age <= 366).any()  # some forms run longer than a year
    assert set(consents["partner_id"]) <= set(t["partners"]["partner_id"])
    assert set(t["partners"]["registration_status"]) == {"registered", "pending", "lapsed"}
    assert set(t["research_approvals"]["status"]) == {"approved", "pending", "rejected"}
    assert t["ndas"]["nda_id"].is_unique
    assert len(t["directory_opt_outs"]) > 0


def test_parse_years():
    assert parse_years("2024-2025, 2023-2024") == ("2023-2024", "2024-2025")
    for bad in ("2024", "2024-2026", "2023-2024,2025-2026", "2024-2025,2024-2025", ""):
        with pytest.raises(ValueError):
            parse_years(bad)


def test_too_small_a_district_is_refused():
    with pytest.raises(ValueError, match="at least"):
        generate_district(50)
