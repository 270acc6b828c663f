"""Grade bands: the banded table is protected like the table, offered when it hides fewer students.

The district table below is the issue's case: an alternative school with a few students in some
grades. By grade, protecting them hides hundreds of students of the large schools; by grade band
(K-5, 6-8, 9-12) no group is small and nothing is hidden.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.cli import main
from workbench.disclosure import CountTable, SmallGroupRule, TableInputError, protect_tables
from workbench.disclosure.bands import band_table, compare_bands, information_loss
from workbench.policy import load_policy
from workbench.policy.loader import PolicyError
from tests.release_attacker import Method, Table, pinned

GRADES = ["K", *map(str, range(1, 13))]
BANDS = {"K-5": GRADES[:6], "6-8": GRADES[6:9], "9-12": GRADES[9:]}


def district_frame(alt: dict[str, int]) -> pd.DataFrame:
    rows = [("North", g, 60 + i) for i, g in enumerate(GRADES)]
    rows += [("South", g, 45 + 2 * i) for i, g in enumerate(GRADES)]
    rows += [("Alt", g, n) for g, n in alt.items()]
    return pd.DataFrame(rows, columns=["school", "grade", "students"])


# Small grades 9 and 11 at the alternative school; every band of every school is large.
ALT = {"9": 4, "10": 14, "11": 3, "12": 12, "6": 11, "7": 12, "8": 10}


@pytest.fixture
def district_csv(tmp_path):
    path = tmp_path / "district.csv"
    district_frame(ALT).to_csv(path, index=False)
    return path


def recipient(frame: pd.DataFrame, dims: list[str]) -> pd.DataFrame:
    out = frame[dims].astype(str)
    out["students"] = ["*" if pd.isna(v) or v == "" else str(v) for v in frame["value"]]
    return out


def test_bands_hide_no_one_where_the_grade_table_hides_many():
    table = CountTable.from_frame(district_frame(ALT), ["school", "grade"], "students")
    comparison = compare_bands(table, "grade", BANDS, SmallGroupRule(), intervals="proof")
    assert comparison.original.is_safe and comparison.banded.is_safe
    assert comparison.banded_loss.students_hidden == 0 and comparison.banded_loss.cells_hidden == 0
    # The two small grades, and complementary cells with students of their own.
    assert comparison.original_loss.students_hidden > ALT["9"] + ALT["11"]
    assert comparison.offered
    record = comparison.as_dict()
    assert record["as_asked"]["students_hidden"] == comparison.original_loss.students_hidden
    assert record["banded"] == {"cells": 16, "cells_hidden": 0, "students_hidden": 0}


def test_protect_offers_the_bands_and_publishes_them_on_request(district_csv, tmp_path):
    runner = CliRunner()
    base = ["protect", str(district_csv), "--dims", "school,grade", "--count", "students", "--policy", "bps"]
    asked = runner.invoke(main, base)
    assert asked.exit_code == 0, asked.output
    assert "by grade band (K-5, 6-8, 9-12): 0 of 16 cells hidden, 0 students hidden" in asked.stderr
    assert "publish them with --bands grade" in asked.stderr
    by_grade = pd.read_csv(io.StringIO(asked.stdout), dtype=str, keep_default_na=False)
    assert set(by_grade["grade"]) == {*GRADES, "Total"}

    out = tmp_path / "banded.csv"
    banded = runner.invoke(main, [*base, "--bands", "grade", "--out", str(out)])
    assert banded.exit_code == 0, banded.output
    published = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(published.columns) == ["school", "grade", "value"]
    assert set(published["grade"]) == {"K-5", "6-8", "9-12", "Total"}
    assert (published["value"] != "").all()
    alt = published[(published["school"] == "Alt")].set_index("grade")["value"]
    assert alt["9-12"] == str(4 + 14 + 3 + 12) and alt["K-5"] == "0"


def test_a_small_band_is_still_protected_and_the_attacker_finds_nothing():
    alt = {**ALT, "6": 2, "7": 3, "8": 1}  # the alternative school's 6-8 band is small
    table = CountTable.from_frame(district_frame(alt), ["school", "grade"], "students")
    banded = band_table(table, "grade", BANDS)
    result = protect_tables(banded, rule=SmallGroupRule())
    assert result.is_safe
    assert information_loss(result).cells_hidden >= 4
    dims = ["school", "grade"]
    assert pinned([Table(recipient(result.cells, dims), dims, [])], Method(), {}) == []
    # The attacker is not blind: a banded table with only the small band marked gives it away.
    naive = result.cells.copy()
    naive["value"] = naive["value"].astype("object")
    marked = (naive["school"] == "Alt") & (naive["grade"] == "6-8")
    naive.loc[~marked, "value"] = [int(v) for v in banded.counts.reshape(-1)[~marked.to_numpy()]]
    naive.loc[marked, "value"] = ""
    assert pinned([Table(recipient(naive, dims), dims, [])], Method(), {}) != []


def test_an_unknown_band_name_is_refused_with_exit_2_naming_the_option(district_csv):
    runner = CliRunner()
    base = ["protect", str(district_csv), "--dims", "school,grade", "--count", "students", "--policy", "bps"]
    for name, words in (("race", "is not one of --dims"), ("school", "has no bands for school")):
        result = runner.invoke(main, [*base, "--bands", name])
        assert result.exit_code == 2, result.output
        assert "--bands" in result.stderr and words in result.stderr
        assert "Traceback" not in result.output


def test_a_band_named_like_another_category_is_refused():
    table = CountTable.from_frame(district_frame(ALT), ["school", "grade"], "students")
    with pytest.raises(TableInputError, match="bands"):
        band_table(table, "grade", {"9": ["10", "11"]})


def test_pack_bands_are_checked(tmp_path):
    base = (tmp_path / "base.yaml")
    pack = load_policy("nces")
    assert pack.bands("grade") == {"K-5": tuple(GRADES[:6]), "6-8": ("6", "7", "8"), "9-12": ("9", "10", "11", "12")}
    for bands, words in (("{colour: {a: [x]}}", "bands: colour: not a breakdown"), ("{grade: {low: [K, 1], also: [1, 2]}}", "is in bands")):
        base.write_text(f"extends: nces\nname: t\ntitle: t\nbands: {bands}\n")
        with pytest.raises(PolicyError, match="bands") as caught:
            load_policy(base)
        assert words in str(caught.value)


@st.composite
def school_grade_tables(draw):
    schools = draw(st.integers(1, 4))
    sizes = st.one_of(st.integers(0, 9), st.integers(10, 80))
    rows = [(f"S{s}", g, draw(sizes)) for s in range(schools) for g in GRADES]
    return pd.DataFrame(rows, columns=["school", "grade", "students"])


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(school_grade_tables())
def test_published_band_totals_are_the_sums_of_their_published_grades(frame):
    table = CountTable.from_frame(frame, ["school", "grade"], "students")
    comparison = compare_bands(table, "grade", BANDS, SmallGroupRule(), intervals="proof")
    assert comparison.original.is_safe and comparison.banded.is_safe
    by_grade = comparison.original.cells.set_index(["school", "grade"])["value"]
    by_band = comparison.banded.cells.set_index(["school", "grade"])["value"]
    for school in [*frame["school"].unique(), "Total"]:
        for band, members in BANDS.items():
            shown = [by_grade[(school, g)] for g in members]
            if any(pd.isna(v) for v in shown) or pd.isna(by_band[(school, band)]):
                continue
            assert by_band[(school, band)] == sum(int(v) for v in shown)
        if not pd.isna(by_band[(school, "Total")]) and not pd.isna(by_grade[(school, "Total")]):
            assert by_band[(school, "Total")] == by_grade[(school, "Total")]
    # Loss figures are what the tables show.
    for result in (comparison.original, comparison.banded):
        loss = information_loss(result)
        assert loss.cells_hidden == int(result.cells["value"].isna().sum())
