"""De-identified student-level extracts: keyed pseudonyms, dropped fields, blank-safe k-anonymity."""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.disclosure import WITHHELD, ExtractError, class_sizes, protect_extract
from workbench.disclosure.extract import pseudonym_order

QUASI = ["school", "grade", "gender", "race_ethnicity"]


def roster(n: int = 300, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "student_id": [f"{i:07d}" for i in rng.choice(10_000_000, n, replace=False)],
            "school": rng.choice(["0101", "0102", "0230"], n, p=[0.5, 0.4, 0.1]),
            "grade": rng.choice(["K", "01", "02", "03"], n),
            "gender": rng.choice(["F", "M", "X"], n, p=[0.49, 0.49, 0.02]),
            "race_ethnicity": rng.choice(["H", "B", "W", "A", "P"], n, p=[0.4, 0.3, 0.15, 0.12, 0.03]),
            "low_income": rng.choice(["Y", "N"], n),
            "attendance_rate": rng.uniform(0.6, 1.0, n).round(3).astype(str),
        }
    )


def blank_safe_sizes(frame: pd.DataFrame, quasi: list[str]) -> np.ndarray:
    """Pairwise, the slow obvious way: how many records show exactly what a record shows, blanks included."""
    values = frame[quasi].to_numpy(dtype=str)
    return np.array([int((values == row).all(axis=1).sum()) for row in values])


def test_every_record_is_in_a_blank_safe_class_of_k_and_none_is_dropped():
    data = roster()
    out, report = protect_extract(data, quasi=QUASI, k=10, drop=["low_income"], key=b"r1")
    assert len(out) == len(data) and report.students_removed == 0
    assert blank_safe_sizes(out, QUASI).min() >= 10
    assert report.smallest_class >= 10
    assert "low_income" not in out.columns
    assert report.withheld == sum((out[q] == WITHHELD).sum() for q in QUASI) > 0


def test_a_rare_value_is_withheld_together_with_enough_other_records():
    # Two X students among forty: withholding only their gender would mean "Not reported" = X.
    data = pd.DataFrame({
        "student_id": [f"{i:03d}" for i in range(40)],
        "grade": ["K"] * 40,
        "gender": ["X", "X"] + ["F", "M"] * 19,
    })
    out, report = protect_extract(data, quasi=["grade", "gender"], k=5, key=b"r")
    assert (out["gender"] == WITHHELD).sum() >= 5
    assert report.fields["gender"].withheld >= 5 and report.fields["grade"].withheld == 0


def test_a_withheld_value_is_a_value_of_its_own_when_classes_are_counted():
    codes = np.array([[0, 0], [0, -1], [0, -1], [1, -1], [-1, -1]])
    # A blank matches only a blank: a few fully withheld records cannot cover a unique record.
    assert class_sizes(codes).tolist() == [1, 2, 2, 1, 1]


def test_the_importance_order_decides_what_is_given_up():
    data = roster(600)
    _, default = protect_extract(data, quasi=QUASI, k=10, key=b"r")
    assert default.fields["race_ethnicity"].withheld > default.fields["grade"].withheld
    _, grade_first = protect_extract(data, quasi=QUASI, k=10, key=b"r", suppression_order=["grade", "school", "gender", "race_ethnicity"])
    assert grade_first.fields["grade"].withheld > default.fields["grade"].withheld
    assert grade_first.fields["race_ethnicity"].withheld < default.fields["race_ethnicity"].withheld


def test_years_of_one_student_share_a_pseudonym_and_never_disagree_on_fixed_fields():
    data = roster(200)
    years = pd.concat([data.assign(school_year="2024-2025"), data.sample(150, random_state=1).assign(school_year="2025-2026")])
    out, report = protect_extract(years, year_col="school_year", quasi=QUASI, k=10, key=b"r")
    assert len(out) == len(years) - report.rows_removed
    per_student = out.groupby("student_id")
    assert per_student["school_year"].nunique().max() == 2
    for column in ("gender", "race_ethnicity"):
        assert per_student[column].nunique().max() == 1
    # Rows come in pseudonym order, a student's years together.
    numbers = out["student_id"].str.removeprefix("Student ").astype(int)
    assert numbers.is_monotonic_increasing


def test_pseudonyms_follow_the_release_key_and_nothing_else():
    data = roster()
    out, _ = protect_extract(data, k=5, key=b"release one")
    expected = pseudonym_order(list(data["student_id"]), b"release one")
    assert sorted(out["student_id"], key=lambda s: int(s.split()[1])) == [f"Student {i}" for i in range(1, len(data) + 1)]
    by_id = dict(zip(data["student_id"], expected))
    digest = {sid: hmac.new(b"release one", sid.encode(), hashlib.sha256).digest() for sid in data["student_id"]}
    assert sorted(data["student_id"], key=digest.get) == sorted(data["student_id"], key=by_id.get)
    again, _ = protect_extract(data, k=5, key=b"release one")
    assert again.equals(out)
    other, _ = protect_extract(data, k=5, key=b"release two")
    assert other["attendance_rate"].tolist() != out["attendance_rate"].tolist()  # another student is Student 1
    assert not set(data["student_id"]) & set(out.astype(str).to_numpy().ravel())


def test_linkage_token_is_the_keyed_hmac_of_the_id():
    data = roster(40)
    out, report = protect_extract(data, k=3, key=b"r", linkage_key=b"district-secret")
    expected = {hmac.new(b"district-secret", v.encode(), hashlib.sha256).hexdigest() for v in data["student_id"]}
    assert set(out["linkage_token"]) == expected
    assert report.linkage
    plain, _ = protect_extract(data, k=3, key=b"r")
    assert "linkage_token" not in plain.columns


def test_fewer_records_than_k_are_removed_and_counted():
    data = roster(6)
    out, report = protect_extract(data, k=10, key=b"r")
    assert len(out) == 0
    assert report.students_removed == 6 and report.as_dict()["students_removed"] == 6


def test_a_student_in_a_rare_set_of_years_is_removed_not_exposed():
    data = roster(60)
    two_years = pd.concat([data.assign(school_year="2024-2025"), data.assign(school_year="2025-2026")], ignore_index=True)
    leaver = two_years[(two_years["student_id"] == data["student_id"].iloc[0]) & (two_years["school_year"] == "2025-2026")]
    two_years = two_years.drop(index=leaver.index).reset_index(drop=True)
    out, report = protect_extract(two_years, year_col="school_year", quasi=QUASI, k=5, key=b"r")
    assert report.students_removed == 1 and report.rows_removed == 1
    assert out.groupby("student_id")["school_year"].nunique().min() == 2


def test_the_report_holds_counts_only():
    data = roster()
    _, report = protect_extract(data, quasi=QUASI, k=10, key=b"r")
    summary = report.as_dict()
    flat = str(summary)
    assert not any(sid in flat for sid in data["student_id"])
    assert set(summary["fields"]) == set(QUASI)
    assert summary["values_withheld"] == sum(f["withheld"] for f in summary["fields"].values())


def test_bad_requests_are_rejected():
    data = roster(20)
    with pytest.raises(ExtractError, match="not in the input"):
        protect_extract(data, quasi=["school", "zip"], k=3)
    dup = pd.concat([data, data.iloc[:1]])
    with pytest.raises(ExtractError, match="duplicate IDs"):
        protect_extract(dup, k=3)
    with pytest.raises(ExtractError, match="not quasi-identifiers"):
        protect_extract(data, k=3, suppression_order=["zip"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 80), k=st.integers(1, 8), seed=st.integers(0, 1000), columns=st.integers(1, 4))
def test_random_extracts_always_reach_k_in_blank_safe_classes(n, k, seed, columns):
    data = roster(n, seed)
    quasi = QUASI[:columns]
    out, report = protect_extract(data, quasi=quasi, k=k, key=b"p")
    assert len(out) + report.students_removed == n
    if len(out):
        assert blank_safe_sizes(out, quasi).min() >= k
    # Removal happens only when the extract itself is too small.
    assert report.students_removed == (n if n < k else 0)


# -- the strict rule over random multi-year districts, with and without hierarchies ---------------

LEVELS = {
    "race_ethnicity": [{"Small groups": ["W", "P"]}, {"Not H": ["B", "W", "A", "P"]}],
    "grade": [{"Early": ["K", "01", "02"]}],
}


def district(n: int, years: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    people = roster(n, seed).drop(columns=["low_income"])
    frames = []
    for y in range(years):
        year = people[rng.random(n) < 0.85].copy()
        year["school_year"] = f"{2022 + y}-{2023 + y}"
        year["english_learner"] = np.where(rng.random(len(year)) < 0.2, "Y", "N")
        frames.append(year)
    out = pd.concat(frames, ignore_index=True)
    # What the district (not the recipient) uses to find each released row's student.
    return out.assign(row_tag=[f"row {i}" for i in range(len(out))])


def joined_record(frame: pd.DataFrame, quasi: list[str]) -> pd.DataFrame:
    """One row per student: every quasi-identifier of every year, and which years it is in."""
    wide = frame.pivot(index="student_id", columns="school_year", values=quasi)
    return wide.fillna("<not in this year>").astype(str)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 160), years=st.integers(1, 3), k=st.integers(2, 10), seed=st.integers(0, 10_000),
       grouped=st.booleans(), whole_extract_levels=st.booleans(), order=st.permutations(QUASI + ["english_learner"]))
def test_every_extract_released_keeps_the_strict_rule(n, years, k, seed, grouped, whole_extract_levels, order):
    from unittest import mock

    from workbench.disclosure import extract
    from workbench.disclosure.hierarchy import Hierarchy

    data = district(n, years, seed)
    quasi = QUASI + ["english_learner"]
    hierarchies = {f: Hierarchy.from_levels(levels) for f, levels in LEVELS.items()} if grouped else None
    # The search falls back to one choice of levels for the whole extract when the record is wide.
    budget = 0 if whole_extract_levels else extract.RECODING_BUDGET
    with mock.patch.object(extract, "RECODING_BUDGET", budget):
        out, report = protect_extract(data, year_col="school_year", quasi=quasi, k=k,
                                      key=b"p", hierarchies=hierarchies, suppression_order=list(order))
    # Every value shown is the student's own, withheld, or a group of the pack's that holds it.
    truth = data.set_index("row_tag")
    shown = out.assign(true_id=truth.loc[out["row_tag"], "student_id"].to_numpy())
    groups = {label: set(values) for levels in LEVELS.values() for level in levels for label, values in level.items()}
    for q in quasi:
        true = truth.loc[shown["row_tag"], q].to_numpy()
        fine = [s == t or s == WITHHELD or (grouped and t in groups.get(s, ())) for s, t in zip(shown[q], true)]
        assert all(fine), f"{q} shows a value that is not the student's"
    # One student, one pseudonym; and every joined record is shown exactly as by k-1 others.
    assert (shown.groupby("student_id")["true_id"].nunique() <= 1).all()
    if len(out):
        record = joined_record(out, quasi)
        assert record.value_counts().min() >= k
    # A student is removed only when fewer than k students share the years it is in.
    patterns = data.groupby("student_id")["school_year"].agg(lambda s: tuple(sorted(s)))
    rare = patterns.map(patterns.value_counts()) < k
    assert report.students_removed == int(rare.sum())
    assert 0.0 <= report.information_loss <= 1.0
