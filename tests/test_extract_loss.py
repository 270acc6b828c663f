"""The information-loss metric of de-identified extracts, and the hierarchies it is counted over."""

from __future__ import annotations

import pytest

from workbench.disclosure.hierarchy import WITHHELD, Hierarchy, value_loss

RACE = Hierarchy.from_levels([
    {"Other races": ["T", "N", "P"]},
    {"Not Hispanic": ["B", "W", "A", "T", "N", "P"]},
])
DOMAIN = ["H", "B", "W", "A", "T", "N"]  # P is in the pack, not in this extract


def test_levels_show_the_groups_and_the_top_withholds():
    assert [RACE.shown("N", level) for level in range(4)] == ["N", "Other races", "Not Hispanic", WITHHELD]
    assert [RACE.shown("H", level) for level in range(4)] == ["H", "H", "H", WITHHELD]
    assert RACE.covers("Not Hispanic", "T") and RACE.covers(WITHHELD, "H") and not RACE.covers("Not Hispanic", "H")


def test_a_group_costs_its_share_of_the_values_the_extract_has():
    # Other races holds T and N of the extract's six values (P is absent): (2 - 1) / (6 - 1).
    assert value_loss(["T", "H", "B"], RACE, 1, DOMAIN) == pytest.approx([0.2, 0.0, 0.0])
    assert value_loss(["A", "H"], RACE, 2, DOMAIN) == pytest.approx([0.8, 0.0])
    assert value_loss(["A", "H"], RACE, 3, DOMAIN) == [1.0, 1.0]
    assert value_loss(["A"], RACE, 0, DOMAIN) == [0.0]
    # A field with one value loses nothing by grouping it, everything by withholding it.
    assert value_loss(["A"], RACE, 2, ["A"]) == [0.0]
    assert value_loss(["A"], RACE, 3, ["A"]) == [1.0]
