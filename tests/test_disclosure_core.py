"""Unit tests of the disclosure core: margins, rules, secondary suppression, joint tables, audit."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from workbench.disclosure import (
    CountTable,
    SmallGroupRule,
    TableInputError,
    audit_published_table,
    protect_tables,
    with_margins,
)


def frame_2x3():
    return pd.DataFrame(
        {
            "school": ["A", "A", "A", "B", "B", "B"],
            "grade": ["1", "2", "3", "1", "2", "3"],
            "n": [4, 30, 25, 22, 18, 40],
        }
    )


def cell(release: pd.DataFrame, **labels) -> pd.Series:
    mask = np.ones(len(release), dtype=bool)
    for dim, label in labels.items():
        mask &= release[dim].astype(str).to_numpy() == label
    assert mask.sum() == 1, labels
    return release[mask].iloc[0]


# --- margins -----------------------------------------------------------------------------


def test_with_margins_appends_every_subset_sum():
    inner = np.arange(6).reshape(2, 3)
    full = with_margins(inner)
    assert full.shape == (3, 4)
    assert full[:2, 3].tolist() == [3, 12]  # row totals
    assert full[2, :3].tolist() == [3, 5, 7]  # column totals
    assert full[2, 3] == 15


def test_long_frame_lists_every_cell_and_margin_with_total_labels():
    table = CountTable.from_frame(frame_2x3(), ["school", "grade"], "n")
    labels = table.labels()
    assert len(labels) == 3 * 4
    assert set(labels["school"]) == {"A", "B", "Total"}
    assert table.counts[2, 3] == 139
    release = protect_tables(frame_2x3(), ["school", "grade"], "n", costs="margins").cells
    assert cell(release, school="Total", grade="Total")["value"] == 139
    assert cell(release, school="B", grade="Total")["value"] == 80


def test_complementary_cells_hide_the_fewest_students():
    # A small cell in a big table: the earlier cost model kept every margin and hid a second
    # row's large inner cells; hiding margins, which hide no group, costs nothing.
    frame = pd.DataFrame({
        "school": ["A", "A", "B", "B", "C", "C"],
        "grade": ["1", "2", "1", "2", "1", "2"],
        "n": [3, 400, 350, 420, 380, 390],
    })
    students = protect_tables(frame, ["school", "grade"], "n").summary()
    margins = protect_tables(frame, ["school", "grade"], "n", costs="margins").summary()
    assert students["safe"] and margins["safe"]
    assert students["students_hidden_in_inner_cells"] < margins["students_hidden_in_inner_cells"]


def test_missing_combination_counts_as_zero():
    frame = frame_2x3().iloc[1:]  # A/1 absent
    table = CountTable.from_frame(frame, ["school", "grade"], "n")
    assert table.counts[table.categories[0].index("A"), table.categories[1].index("1")] == 0


@pytest.mark.parametrize(
    ("column", "bad", "message"),
    [("n", -1, "negative"), ("n", 2.5, "non-integer"), ("n", "ten", "non-integer")],
)
def test_bad_counts_are_rejected(column, bad, message):
    frame = frame_2x3().astype({"n": object})
    frame.loc[0, column] = bad
    with pytest.raises(TableInputError, match=message):
        CountTable.from_frame(frame, ["school", "grade"], "n")


def test_duplicate_rows_and_missing_columns_are_rejected():
    frame = pd.concat([frame_2x3(), frame_2x3().iloc[:1]])
    with pytest.raises(TableInputError, match="duplicate"):
        CountTable.from_frame(frame, ["school", "grade"], "n")
    with pytest.raises(TableInputError, match="not in the input: race"):
        CountTable.from_frame(frame_2x3(), ["school", "race"], "n")


# --- primary rules -----------------------------------------------------------------------


def test_strict_and_inclusive_comparison():
    frame = pd.DataFrame({"g": ["a", "b", "c"], "n": [10, 9, 40]})
    strict = protect_tables(frame, ["g"], "n", SmallGroupRule(threshold=10, comparison="<")).cells
    inclusive = protect_tables(frame, ["g"], "n", SmallGroupRule(threshold=10, comparison="<=")).cells
    assert cell(strict, g="a")["status"] != "primary"
    assert cell(strict, g="b")["status"] == "primary"
    assert cell(inclusive, g="a")["status"] == "primary"
    assert "<= 10" in cell(inclusive, g="a")["reason"]


def test_zeros_rule():
    frame = pd.DataFrame({"g": ["a", "b", "c", "d"], "n": [0, 25, 30, 40]})
    published = protect_tables(frame, ["g"], "n", SmallGroupRule(suppress_zeros=False)).cells
    assert cell(published, g="a")["status"] == "published"
    assert cell(published, g="a")["value"] == 0
    hidden = protect_tables(frame, ["g"], "n", SmallGroupRule(suppress_zeros=True))
    row = cell(hidden.cells, g="a")
    assert row["status"] == "primary" and "zero" in row["reason"]
    assert hidden.is_safe
    assert row["interval_high"] >= 1  # the attacker cannot tell the zero from a small group


def test_numerator_rule_marks_few_with_or_without_the_outcome():
    frame = pd.DataFrame(
        {
            "school": ["A", "A", "B", "B", "C", "C"],
            "grade": ["1", "2", "1", "2", "1", "2"],
            "n": [40, 50, 45, 60, 30, 35],
            "absent": [2, 20, 20, 58, 12, 15],
        }
    )
    rule = SmallGroupRule(threshold=10, numerator_threshold=5)
    result = protect_tables(frame, ["school", "grade"], "n", rule, outcome_col="absent")
    release = result.cells
    assert "numerator" in cell(release, school="A", grade="1")["reason"]  # 2 with the outcome
    assert "without the outcome" in cell(release, school="B", grade="2")["reason"]  # 2 without
    assert cell(release, school="C", grade="1")["status"] != "primary"
    assert result.is_safe
    hidden = release[release["status"] != "published"]
    assert hidden["outcome"].isna().all()
    assert (hidden["outcome_high"] > hidden["outcome_low"]).all()


# --- secondary suppression and its explanations ---------------------------------------------


def test_lone_small_cell_gets_complements_and_the_table_is_safe():
    result = protect_tables(frame_2x3(), ["school", "grade"], "n")
    release = result.cells
    assert result.is_safe
    assert cell(release, school="A", grade="1")["status"] == "primary"
    assert (release["status"] == "secondary").sum() >= 3  # a rectangle at least
    checked = audit_published_table(release[["school", "grade", "value"]], ["school", "grade"])
    assert checked.exactly_disclosed == 0
    # With only the primary hidden, the attacker recovers it from the row total.
    naive = release[["school", "grade", "value"]].copy()
    truth = CountTable.from_frame(frame_2x3(), ["school", "grade"], "n").counts.reshape(-1)
    naive["value"] = pd.array(truth, dtype="Int64")
    naive.loc[(naive["school"] == "A") & (naive["grade"] == "1"), "value"] = pd.NA
    assert audit_published_table(naive, ["school", "grade"]).exactly_disclosed == 1


def test_every_secondary_names_a_primary_it_protects():
    frame = pd.DataFrame(
        {
            "school": list("AAAABBBBCCCC"),
            "race": ["H", "B", "W", "P"] * 3,
            "n": [40, 30, 3, 1, 35, 25, 20, 12, 50, 2, 33, 15],
        }
    )
    result = protect_tables(frame, ["school", "race"], "n")
    primaries = {r.cell for r in result.explanations.itertuples() if r.status == "primary"}
    secondaries = result.explanations[result.explanations["status"] == "secondary"]
    assert len(secondaries) > 0
    for reason in secondaries["reason"]:
        assert reason.startswith("secondary: protects [")
        named = reason.split("[", 1)[1].split("]", 1)[0]
        assert named in primaries or reason.startswith("secondary: protects [hidden sum")


def test_two_small_cells_in_a_row_are_not_left_as_a_small_hidden_sum():
    # Row A hides 3 and 4: their sum 7 would be a small group published in effect.
    frame = pd.DataFrame(
        {
            "school": ["A", "A", "A", "B", "B", "B", "C", "C", "C"],
            "grade": ["1", "2", "3"] * 3,
            "n": [3, 4, 50, 30, 40, 35, 25, 45, 60],
        }
    )
    release = protect_tables(frame, ["school", "grade"], "n").cells
    row_a = release[(release["school"] == "A") & (release["grade"] != "Total")]
    assert (row_a["status"] != "published").sum() == 3 or cell(release, school="A", grade="Total")["status"] != "published"
    off = protect_tables(frame, ["school", "grade"], "n", SmallGroupRule(protect_hidden_sums=False)).cells
    assert (off["status"] == "secondary").sum() < (release["status"] == "secondary").sum()


def test_protection_width_is_met_for_primaries():
    rule = SmallGroupRule(protection_width=5)
    result = protect_tables(frame_2x3(), ["school", "grade"], "n", rule)
    assert result.is_safe
    primary = result.cells[result.cells["status"] == "primary"]
    assert ((primary["interval_high"] - primary["interval_low"]) >= 5).all()


def test_proof_intervals_lie_inside_exact_intervals():
    frame = pd.DataFrame(
        {
            "s": np.repeat(list("ABCDE"), 4),
            "g": list("1234") * 5,
            "n": [3, 20, 30, 12, 8, 40, 2, 33, 15, 16, 17, 5, 60, 1, 22, 28, 14, 13, 9, 30],
        }
    )
    exact = protect_tables(frame, ["s", "g"], "n").cells
    proof = protect_tables(frame, ["s", "g"], "n", intervals="proof").cells
    assert exact["status"].tolist() == proof["status"].tolist()
    hidden = exact["status"] != "published"
    assert (proof.loc[hidden, "interval_low"] >= exact.loc[hidden, "interval_low"]).all()
    assert (proof.loc[hidden, "interval_high"] <= exact.loc[hidden, "interval_high"]).all()
    assert ((proof.loc[hidden, "interval_high"] - proof.loc[hidden, "interval_low"]) >= 1).all()


# --- several tables released together -------------------------------------------------------


def test_tables_sharing_school_totals_are_protected_jointly():
    by_race = pd.DataFrame(
        {"school": list("AAABBBCCC"), "race": ["H", "B", "W"] * 3, "n": [30, 25, 5, 40, 35, 30, 20, 22, 26]}
    )
    by_gender = pd.DataFrame(
        {"school": list("AABBCC"), "gender": ["F", "M"] * 3, "n": [31, 29, 50, 55, 33, 35]}
    )
    race_table = CountTable.from_frame(by_race, ["school", "race"], "n", name="race")
    gender_table = CountTable.from_frame(by_gender, ["school", "gender"], "n", name="gender")
    result = protect_tables([race_table, gender_table])
    assert result.is_safe
    cells = result.cells
    race = cells[cells["table"] == "race"]
    gender = cells[cells["table"] == "gender"]
    for school in ["A", "B", "C", "Total"]:
        in_race = race[(race["school"] == school) & (race["race"] == "Total")]["status"].item()
        in_gender = gender[(gender["school"] == school) & (gender["gender"] == "Total")]["status"].item()
        assert in_race == in_gender  # a total published in one table is published in the other
    # Each table audited alone, with the other's published totals filled in, leaks nothing.
    for name, dims in (("race", ["school", "race"]), ("gender", ["school", "gender"])):
        table = cells[cells["table"] == name]
        assert audit_published_table(table[[*dims, "value"]], dims).exactly_disclosed == 0


def test_tables_that_disagree_on_a_shared_total_are_rejected():
    a = CountTable.from_frame(pd.DataFrame({"s": ["A", "B"], "n": [10, 20]}), ["s"], "n", name="one")
    b = CountTable.from_frame(
        pd.DataFrame({"s": ["A", "B"], "g": ["F", "F"], "n": [10, 21]}), ["s", "g"], "n", name="two"
    )
    with pytest.raises(TableInputError, match="disagree"):
        protect_tables([a, b])


# --- audit of a published table ---------------------------------------------------------------


def test_audit_uses_only_the_margins_present():
    release = pd.DataFrame(
        {"a": ["x", "x", "y", "y", "x"], "b": ["p", "q", "p", "q", "Total"], "value": [None, 20, 15, 25, 23]}
    )
    # Row x's total is present: x/p = 23 - 20 exactly.
    checked = audit_published_table(release, ["a", "b"])
    assert checked.intervals[["interval_low", "interval_high"]].values.tolist() == [[3, 3]]
    # Without it nothing bounds the cell from above.
    unbounded = audit_published_table(release.iloc[:4], ["a", "b"])
    assert unbounded.exactly_disclosed == 0
    assert pd.isna(unbounded.intervals["interval_high"].iloc[0])


def test_core_imports_nothing_from_jupyter():
    code = (
        "import sys, workbench.disclosure, workbench.disclosure.protect;"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('IPython', 'ipywidgets', 'voila', 'papermill', 'ipykernel')];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_solver_prints_nothing_to_stdout_so_notebook_outputs_are_stable():
    import subprocess
    import sys

    code = ("from workbench.disclosure.audit import quiet_highs\n"
            "quiet_highs().run(); quiet_highs().run(); print('done')")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout == "done\n"
