"""The guard's pure masking core: small counts, totals, student-level frames, aggregate-only fields."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.disclosure.rules import SmallGroupRule
from workbench.guard.masking import (
    MASK,
    WITHHELD,
    find_student_identifiers,
    guard_table,
    is_small_count,
    mask_small_counts,
    summarize_schema,
    withhold_fields,
)
from workbench.policy import load_policy

BELOW_10 = SmallGroupRule(threshold=10, comparison="<")
AT_MOST_10 = SmallGroupRule(threshold=10, comparison="<=")


def by_school(enrolled, chronic):
    names = ["Adams", "Baker", "Carver", "Dewey", "Emerson"][: len(enrolled)]
    return pd.DataFrame({"enrolled": enrolled, "chronic": chronic}, index=pd.Index(names, name="school"))


# --- small counts ---------------------------------------------------------------------------

def test_small_counts_are_masked_and_large_ones_kept():
    table = by_school([120, 45, 230, 88], [7, 15, 3, 22])
    result = mask_small_counts(table, BELOW_10)
    assert result.data.loc["Baker"].tolist() == [45, 15]
    assert result.data.loc["Dewey"].tolist() == [88, 22]
    assert result.data.loc["Adams", "chronic"] == MASK and result.data.loc["Carver", "chronic"] == MASK
    assert result.report.small_cells == 2


def test_a_lone_masked_cell_in_a_row_takes_the_smallest_other_count_with_it():
    # Adams: 120 enrolled, 7 chronic. Were 120 shown with a published not-chronic count or a rate,
    # 7 would follow; the guard cannot know, so it hides the cheapest partner cell.
    table = by_school([120, 45, 230, 88], [7, 15, 3, 22])
    result = mask_small_counts(table, BELOW_10)
    assert result.data.loc["Adams", "enrolled"] == MASK
    assert result.data.loc["Carver", "enrolled"] == MASK
    assert result.report.total_cells == 2


def test_a_lone_masked_cell_in_a_column_takes_the_smallest_other_count():
    counts = pd.Series([40, 25, 7, 12], index=["north", "south", "east", "west"], name="count")
    result = mask_small_counts(counts, BELOW_10)
    assert result.data.tolist() == [40, 25, MASK, MASK]  # 12 is the cheapest partner for the total
    assert (result.report.small_cells, result.report.total_cells) == (1, 1)


def test_without_total_protection_only_small_counts_go():
    table = by_school([120, 45], [7, 15])
    result = mask_small_counts(table, BELOW_10, protect_totals=False)
    assert result.data.loc["Adams"].tolist() == [120, MASK]
    assert result.report.total_cells == 0


def test_comparison_decides_whether_the_threshold_itself_is_small():
    counts = pd.Series([10, 40, 50])
    assert mask_small_counts(counts, BELOW_10).data.tolist() == [10, 40, 50]
    assert mask_small_counts(counts, AT_MOST_10).data.tolist() == [MASK, MASK, 50]


def test_zeros_are_masked_only_when_the_rule_says_so():
    counts = pd.Series([0, 40, 50])
    assert mask_small_counts(counts, BELOW_10).data.tolist() == [0, 40, 50]
    with_zeros = SmallGroupRule(threshold=10, comparison="<", suppress_zeros=True)
    assert mask_small_counts(counts, with_zeros).data.tolist()[0] == MASK


def test_whole_floats_are_counts_fractions_are_not():
    rates = pd.DataFrame({"n": [5.0, 50.0, 60.0], "rate": [2.5, 7.25, 0.5]})
    result = mask_small_counts(rates, BELOW_10)
    assert result.data["n"].tolist()[0] == MASK
    assert result.data["rate"].tolist() == [2.5, 7.25, 0.5]


def test_nullable_integers_text_numbers_and_flags():
    frame = pd.DataFrame(
        {
            "nullable": pd.array([4, None, 40, 50], dtype="Int64"),
            "as_text": ["6", "x", "40", "50"],
            "flag": [True, False, True, True],
        }
    )
    result = mask_small_counts(frame, BELOW_10).data
    assert result["nullable"].iloc[0] == MASK and pd.isna(result["nullable"].iloc[1])
    assert result["as_text"].iloc[0] == MASK and result["as_text"].iloc[1] == "x"
    assert result["flag"].tolist() == [True, False, True, True]


def test_grade_labels_are_not_counts():
    table = pd.DataFrame({"grade": [3, 4, 5], "students": [40, 52, 61]})
    result = mask_small_counts(table, BELOW_10)
    assert result.data.equals(table) and not result.report.changed


def test_a_separate_larger_numerator_threshold_wins():
    rule = SmallGroupRule(threshold=5, comparison="<", numerator_threshold=11)
    assert mask_small_counts(pd.Series([10, 40, 50]), rule).data.tolist()[0] == MASK
    assert is_small_count(10, rule) and not is_small_count(11, rule)


def test_an_untouched_table_is_returned_as_is():
    table = by_school([120, 45], [17, 15])
    result = mask_small_counts(table, BELOW_10)
    assert result.data is table and not result.report.changed


def test_policy_packs_drive_the_rule():
    dmps, bps = load_policy("dmps").small_group_rule(), load_policy("bps").small_group_rule()
    assert is_small_count(10, dmps) and not is_small_count(10, bps)


# --- student-level frames -------------------------------------------------------------------

def roster():
    return pd.DataFrame(
        {
            "student_id": ["0041275", "1209934", "0003318"],
            "first_name": ["Zephyrine", "Quillon", "Maelis"],
            "date_of_birth": pd.to_datetime(["2012-03-04", "2011-11-30", "2012-07-19"]),
            "low_income": [True, False, True],
            "days_absent": [3, 12, 7],
        }
    )


@pytest.mark.parametrize(
    "column",
    ["student_id", "State ID", "FIRST_NAME", "last-name", "Name", "date of birth", "DOB", "birth_date"],
)
def test_identifying_column_names_in_any_spelling(column):
    frame = pd.DataFrame({column: ["a", "b"], "n": [40, 50]})
    assert find_student_identifiers(frame)


def test_values_shaped_like_student_ids_identify_a_frame():
    district = pd.DataFrame({"ref": ["0041275", "x"], "n": [40, 50]})
    state = pd.DataFrame({"ref": ["3100458812", "y"], "n": [40, 50]})
    state_as_number = pd.DataFrame({"ref": [3100458812, 4100000000], "n": [40, 50]})
    assert "district student IDs" in find_student_identifiers(district)[0]
    assert "state student IDs" in find_student_identifiers(state)[0]
    assert find_student_identifiers(state_as_number)
    assert not find_student_identifiers(pd.DataFrame({"school_id": ["1040", "2210"], "n": [40, 50]}))


def test_an_index_of_student_ids_identifies_a_series():
    absences = roster().set_index("student_id")["days_absent"]
    assert find_student_identifiers(absences) == ("index 'student_id' identifies students",)
    unnamed = pd.Series([3, 12], index=["0041275", "1209934"])
    assert find_student_identifiers(unnamed)


def test_student_ids_as_column_labels_are_left_out_of_the_summary():
    wide = pd.DataFrame([[3, 12]], columns=["0041275", "1209934"])
    assert find_student_identifiers(wide) == ("column labels look like student IDs",)
    summary = summarize_schema(wide)
    assert summary.hidden_labels == 2 and "0041275" not in summary.to_frame().to_string()


@pytest.mark.parametrize("level", ["aggregate", "deidentified"])
def test_a_roster_becomes_a_schema_summary_in_aggregate_and_deidentified_requests(level):
    decision = guard_table(roster(), BELOW_10, level)
    assert decision.action == "summarize" and decision.data is None
    frame = decision.summary.to_frame()
    assert frame["name"].tolist()[:5] == ["student_id", "first_name", "date_of_birth", "low_income", "days_absent"]
    assert decision.summary.row_count == 3
    assert decision.summary.row_count_text(BELOW_10) == "fewer than 10 rows"
    assert summarize_schema(pd.DataFrame({"student_id": ["0041275"] * 25})).row_count_text(BELOW_10) == "25 rows"


def test_an_identified_request_sees_the_roster_without_aggregate_only_fields():
    decision = guard_table(roster(), BELOW_10, "identified", aggregate_only=("low_income",))
    assert decision.action == "mask"
    assert decision.data["low_income"].tolist() == [WITHHELD] * 3
    assert decision.data["days_absent"].tolist() == [3, 12, 7]  # per-student facts, not group counts
    assert decision.data["student_id"].tolist() == roster()["student_id"].tolist()
    assert decision.report.withheld_columns == ("low_income",)


def test_aggregate_only_fields_by_their_usual_column_spellings():
    frame = pd.DataFrame({"FRL": [True, False], "Lunch Status": ["F", "R"], "n": [40, 50]})
    result = withhold_fields(frame, ("low_income",))
    assert result.data["FRL"].tolist() == [WITHHELD] * 2 and result.data["Lunch Status"].tolist() == [WITHHELD] * 2
    assert result.data["n"].tolist() == [40, 50]


def test_aggregate_only_columns_stay_as_breakdown_labels_in_aggregate_requests():
    table = pd.DataFrame({"low_income": [True, False], "students": [140, 260]})
    assert guard_table(table, BELOW_10, "aggregate").action == "show"
    assert guard_table(table, BELOW_10, "deidentified").data["low_income"].tolist() == [WITHHELD] * 2


def test_without_a_rule_every_table_is_reduced_to_its_schema():
    decision = guard_table(by_school([120], [40]), None, "aggregate")
    assert decision.action == "summarize"


# --- properties -----------------------------------------------------------------------------

rules = st.builds(
    SmallGroupRule,
    threshold=st.integers(1, 25),
    comparison=st.sampled_from(["<", "<="]),
    suppress_zeros=st.booleans(),
)
integer_frames = st.tuples(st.integers(1, 7), st.integers(1, 6), st.integers(0, 2**31 - 1)).map(
    lambda shape: pd.DataFrame(
        np.random.default_rng(shape[2]).integers(0, 60, size=shape[:2]),
        columns=[f"c{i}" for i in range(shape[1])],
    )
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=integer_frames, rule=rules)
def test_no_small_count_survives_masking(frame, rule):
    masked = mask_small_counts(frame, rule).data
    for original, shown in zip(frame.to_numpy().ravel(), masked.to_numpy().ravel()):
        assert shown == MASK or shown == original
        if shown != MASK:
            assert not rule.is_primary_size(int(shown))


@settings(max_examples=300, deadline=None)
@given(frame=integer_frames, rule=rules)
def test_no_row_or_column_keeps_a_lone_masked_cell_it_could_give_away(frame, rule):
    masked = mask_small_counts(frame, rule).data.to_numpy()
    hidden = masked == MASK
    for axis in (0, 1):
        lines = hidden.sum(axis=axis)
        for line in np.flatnonzero(lines == 1):
            others = masked[:, line] if axis == 0 else masked[line, :]
            assert not any(cell != MASK and cell > 0 for cell in others)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 200), rule=rules)
def test_the_vectorised_test_agrees_with_the_rule(n, rule):
    assert is_small_count(n, rule) == rule.is_primary_size(n)
    masked = mask_small_counts(pd.Series([n]), rule, protect_totals=False).data.iloc[0] == MASK
    assert masked == rule.is_primary_size(n)


student_ids = st.one_of(
    st.from_regex(r"\A\d{7}\Z", fullmatch=True),
    st.from_regex(r"\A[1-9]\d{9}\Z", fullmatch=True),
)


@settings(max_examples=100, deadline=None)
@given(
    ids=st.lists(student_ids, min_size=1, max_size=30, unique=True),
    id_column=st.sampled_from(["student_id", "ref", "State_ID", "x"]),
    level=st.sampled_from(["aggregate", "deidentified"]),
    as_index=st.booleans(),
)
def test_student_level_frames_never_render_a_value(ids, id_column, level, as_index):
    frame = pd.DataFrame({id_column: ids, "days_absent": range(len(ids))})
    if as_index:
        frame = frame.set_index(id_column)
    decision = guard_table(frame, BELOW_10, level)
    assert decision.action == "summarize" and decision.data is None
    shown = decision.summary.to_frame().to_string() + decision.summary.row_count_text(BELOW_10)
    assert not any(student_id in shown for student_id in ids)


# --- counts the table's shape hides -------------------------------------------------------------

@pytest.mark.parametrize(
    "shown, masked",
    [
        (5.8, True),  # 7 of 120
        (0.058, True),  # the same as a rate
        (94.2, True),  # 113 of 120: the 7 who are not
        (5.83333, True),
        (50.4, False),  # 60 of 120
        (12.5, False),  # 15 of 120
    ],
)
def test_a_percentage_beside_its_denominator_is_masked_when_it_gives_a_small_count(shown, masked):
    table = pd.DataFrame({"students": [120, 240], "chronic_pct": [shown, 50.4]}, index=["Adams", "Baker"])
    result = mask_small_counts(table, BELOW_10)
    assert bool(result.data.loc["Adams", "chronic_pct"] == MASK) is masked
    assert result.data.loc["Baker", "chronic_pct"] == 50.4 and result.data.loc["Adams", "students"] == 120


@pytest.mark.parametrize("shown", ["5.8%", " 5.8 %", "94.2%"])
def test_a_percentage_written_as_text_is_read_as_one(shown):
    table = pd.DataFrame({"students": [120, 240], "chronic_pct": [shown, "50.4%"]}, index=["Adams", "Baker"])
    result = mask_small_counts(table, BELOW_10)
    assert result.data.loc["Adams", "chronic_pct"] == MASK
    assert result.data.loc["Baker", "chronic_pct"] == "50.4%"


@settings(max_examples=150, deadline=None)
@given(small=st.integers(1, 9), total=st.integers(10, 5000), places=st.integers(1, 3))
def test_no_rounded_percentage_of_a_small_group_survives_beside_its_total(small, total, places):
    percent = round(100 * small / total, places)
    if percent == int(percent):  # a whole number is masked as a count already
        percent += 0.0
    table = pd.DataFrame({"students": [total], "pct": [percent]})
    result = mask_small_counts(table, BELOW_10)
    shown = result.data.loc[0, "pct"]
    assert shown == MASK or (percent == int(percent) and not is_small_count(percent, BELOW_10)), (small, total, percent)


@pytest.mark.parametrize(
    "build",
    [
        lambda d: d.groupby("school")["grade"].count(),
        lambda d: d.groupby("school")[["grade"]].count(),
        lambda d: d.pivot_table(values="grade", index="school", aggfunc="count"),
        lambda d: d.pivot_table(values=["grade"], index="school", columns="gender", aggfunc="count"),
        lambda d: d[d.school == "Adams"].describe(),
    ],
)
def test_counts_through_a_label_column_are_masked(build):
    students = pd.DataFrame({"school": ["Adams"] * 6 + ["Baker"] * 40, "grade": [3] * 46, "gender": ["F", "M"] * 23})
    result = guard_table(build(students), BELOW_10, "aggregate")
    text = result.data.to_string()
    assert result.report.small_cells >= 1 and " 6" not in text and "6.0" not in text


def test_a_grade_column_of_a_flat_table_stays_a_label():
    table = pd.DataFrame({"school": ["Adams"] * 3, "grade": [3, 4, 5], "students": [40, 52, 61]})
    assert guard_table(table, BELOW_10, "aggregate").action == "show"


def test_decimal_counts_are_counts():
    from decimal import Decimal

    table = pd.DataFrame({"n": [Decimal(120), Decimal(7), Decimal(45)]}, index=["a", "b", "c"])
    assert mask_small_counts(table, BELOW_10).report.small_cells == 1
