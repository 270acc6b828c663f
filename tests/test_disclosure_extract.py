"""De-identified student-level extracts: pseudonyms, dropped fields, k-anonymity by blanking."""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
import pandas as pd
import pytest

from workbench.disclosure import ExtractError, match_counts, protect_extract

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


def test_every_record_matches_at_least_k_and_none_is_dropped():
    data = roster()
    out, report = protect_extract(data, quasi=QUASI, k=10, drop=["low_income"], seed=1)
    assert len(out) == len(data)
    assert (match_counts(out, QUASI) >= 10).all()
    assert "low_income" not in out.columns
    assert report.records_changed > 0 and report.records_below_k == 0


def test_no_input_id_survives_and_pseudonyms_are_numbered():
    data = roster()
    out, _ = protect_extract(data, k=5, seed=7)
    ids = set(data["student_id"])
    assert not ids & set(out.astype(str).to_numpy().ravel())
    assert sorted(out["student_id"], key=lambda s: int(s.split()[1])) == [f"Student {i}" for i in range(1, len(data) + 1)]
    again, _ = protect_extract(data, k=5, seed=7)
    assert again["student_id"].tolist() == out["student_id"].tolist()
    other, _ = protect_extract(data, k=5, seed=8)
    assert other["student_id"].tolist() != out["student_id"].tolist()


def test_race_is_given_up_before_grade():
    data = roster()
    out, report = protect_extract(data, k=10, seed=1)
    assert report.blanked["race_ethnicity"] > 0
    assert report.blanked["race_ethnicity"] >= report.blanked["grade"]
    # A record only loses its grade when blanking race (and the rest) was not enough.
    lost_grade = out["grade"] == ""
    assert (out.loc[lost_grade, "race_ethnicity"] == "").all()
    custom, custom_report = protect_extract(data, k=10, seed=1, suppression_order=["grade", "race_ethnicity"])
    assert custom_report.blanked["grade"] > 0


def test_a_blank_matches_anything():
    frame = pd.DataFrame({"a": ["x", "x", "", "y"], "b": ["p", "q", "p", ""]})
    # x,p matches itself and _,p; _,p matches x,p, itself and y,_ (both blank where they differ).
    assert match_counts(frame, ["a", "b"]).tolist() == [2, 1, 3, 2]


def test_linkage_token_is_the_keyed_hmac_of_the_id():
    data = roster(40)
    out, report = protect_extract(data, k=3, seed=2, linkage_key=b"district-secret")
    expected = [hmac.new(b"district-secret", v.encode(), hashlib.sha256).hexdigest() for v in data["student_id"]]
    assert out["linkage_token"].tolist() == expected
    assert report.linkage
    plain, _ = protect_extract(data, k=3, seed=2)
    assert "linkage_token" not in plain.columns


def test_fewer_records_than_k_are_kept_and_reported():
    data = roster(6)
    out, report = protect_extract(data, k=10, seed=1)
    assert len(out) == 6
    assert report.records_below_k == 6
    assert (out[QUASI] == "").all().all()


def test_bad_requests_are_rejected():
    data = roster(20)
    with pytest.raises(ExtractError, match="not in the input"):
        protect_extract(data, quasi=["school", "zip"], k=3)
    dup = pd.concat([data, data.iloc[:1]])
    with pytest.raises(ExtractError, match="duplicate IDs"):
        protect_extract(dup, k=3)
