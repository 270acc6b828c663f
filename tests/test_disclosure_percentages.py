"""Percentages from published counts, coded by group-size tiers, and count rounding."""

from __future__ import annotations

import pandas as pd
import pytest

from workbench.disclosure import (
    CountTable,
    PercentTier,
    SmallGroupRule,
    code_percentage,
    code_percentages,
    protect_tables,
    round_counts,
    round_to_base,
)

NCES = SmallGroupRule()


@pytest.mark.parametrize(
    ("numerator", "denominator", "shown"),
    [
        (1, 20, "<=10%"),  # 5% of a group of 10-39: bottom coded at 10%
        (3, 20, "15.0%"),
        (19, 20, ">=90%"),
        (2, 50, "<=5%"),  # 4% of a group of 40-99
        (3, 50, "6.0%"),
        (48, 50, ">=95%"),
        (1, 200, "<=1%"),  # 0.5% of a 100+ group
        (4, 200, "2.0%"),
        (199, 200, ">=99%"),
        (0, 30, "<=10%"),
        (30, 30, ">=90%"),
    ],
)
def test_default_tiers_code_extremes_by_group_size(numerator, denominator, shown):
    assert code_percentage(numerator, denominator, NCES)[1] == shown


def test_suppressed_or_small_denominators_show_no_percentage():
    assert code_percentage(None, 50, NCES) == (None, "*")
    assert code_percentage(5, None, NCES) == (None, "*")
    assert code_percentage(3, 8, NCES) == (None, "*")  # a small group
    assert code_percentage(0, 0, NCES) == (None, "")


def test_tiers_are_parameters():
    rule = SmallGroupRule(threshold=5, percent_tiers=(PercentTier(5, None, 20.0, 80.0),))
    assert code_percentage(1, 6, rule)[1] == "<=20%"
    assert code_percentage(3, 6, rule)[1] == "50.0%"
    # No tier covers groups under its minimum: no percentage rather than an uncoded one.
    narrow = SmallGroupRule(threshold=5, percent_tiers=(PercentTier(20, None, 5.0, 95.0),))
    assert code_percentage(3, 10, narrow) == (None, "*")


def test_percentages_follow_the_suppression_of_their_counts():
    frame = pd.DataFrame(
        {
            "school": ["A", "A", "B", "B", "C", "C"],
            "grade": ["1", "2", "1", "2", "1", "2"],
            "n": [40, 50, 45, 60, 30, 5],
            "absent": [12, 20, 20, 30, 12, 1],
        }
    )
    release = protect_tables(frame, ["school", "grade"], "n", NCES, outcome_col="absent").cells
    coded = code_percentages(release, NCES)
    hidden = coded["status"] != "published"
    assert hidden.any()
    assert (coded.loc[hidden, "percent_display"] == "*").all()
    assert coded.loc[hidden, "percent"].isna().all()
    row = coded[(coded["school"] == "A") & (coded["grade"] == "2")].iloc[0]
    if row["status"] == "published":
        assert row["percent_display"] == "40.0%"


def test_rounding_is_to_the_base_and_consistent_across_tables():
    assert [round_to_base(v, 5) for v in (0, 2, 3, 7, 8, 12, 13)] == [0, 0, 5, 5, 10, 10, 15]
    by_race = pd.DataFrame({"school": list("AABB"), "race": ["H", "W"] * 2, "n": [23, 31, 44, 52]})
    by_gender = pd.DataFrame({"school": list("AABB"), "gender": ["F", "M"] * 2, "n": [26, 28, 47, 49]})
    result = protect_tables(
        [
            CountTable.from_frame(by_race, ["school", "race"], "n", name="race"),
            CountTable.from_frame(by_gender, ["school", "gender"], "n", name="gender"),
        ]
    )
    rounded = round_counts(result.cells, 5)
    published = rounded["value"].dropna()
    assert (published % 5 == 0).all()
    truth = result.cells["value"].dropna()
    assert ((published - truth.loc[published.index]).abs() <= 2).all()
    totals = rounded[rounded["race"].eq("Total") | rounded["gender"].eq("Total")]
    a_race = totals[(totals["table"] == "race") & (totals["school"] == "A")]["value"].item()
    a_gender = totals[(totals["table"] == "gender") & (totals["school"] == "A")]["value"].item()
    assert a_race == a_gender == 55  # the shared total (54) rounds once, the same in both tables
    # Percentages come from the rounded counts, so what is shown agrees with what is published.
    frame = pd.DataFrame({"value": [55, 40], "outcome": [12, 9]})
    coded = code_percentages(round_counts(frame, 5), NCES)
    assert coded["percent_display"].tolist() == ["18.2%", "25.0%"]
