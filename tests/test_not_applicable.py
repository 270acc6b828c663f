""""n/a" marks a rate with no denominator, and nothing else: never a hidden value.

A blank cell read as missing data; "n/a" says the group has no student in the measure. The release
audit already takes such a cell as m = 0 (docs/disclosure.md), so the words tell a recipient
nothing new, as long as they appear exactly where m = 0 and the group's count is published.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.disclosure.rates import BLANK, HIDDEN, NOT_APPLICABLE, SUPPRESSED_MARK, display_rate, protect_rates
from workbench.disclosure.rules import SmallGroupRule
from workbench.disclosure.table import CellSpace, CountTable, with_margins


@given(y=st.integers(0, 200), extra=st.integers(0, 200), threshold=st.integers(1, 15),
       numerator=st.sampled_from([None, 5, 10, 11]), comparison=st.sampled_from(["<", "<="]))
def test_a_rate_reads_na_exactly_when_it_has_no_denominator(y, extra, threshold, numerator, comparison):
    rule = SmallGroupRule(threshold=threshold, comparison=comparison, numerator_threshold=numerator)
    m = y + extra
    shown = display_rate(y, m, rule)
    assert (shown.text == NOT_APPLICABLE) == (m == 0)
    assert (shown.state == BLANK) == (m == 0)
    if shown.state == HIDDEN:
        assert shown.text == SUPPRESSED_MARK != NOT_APPLICABLE


@settings(max_examples=60, deadline=None)
@given(counts=st.lists(st.integers(0, 40), min_size=2, max_size=6), data=st.data())
def test_a_hidden_group_never_reads_na(counts, data):
    """Across a table with complementary suppression: n/a only on published groups with m = 0."""
    counts = np.array(counts)
    tested = np.array([data.draw(st.integers(0, c)) for c in counts])
    passed = np.array([data.draw(st.integers(0, t)) for t in tested])
    table = CountTable("t", ("grade",), (tuple(f"g{i}" for i in range(len(counts))),), with_margins(counts))
    space = CellSpace([table])
    rule = SmallGroupRule(numerator_threshold=10)
    hidden = np.array([0 < n < 10 for n in with_margins(counts)])
    denominators, numerators = with_margins(tested), with_margins(passed)
    for display, m, count_hidden in zip(
            protect_rates(space, denominators, numerators, rule, count_suppressed=hidden), denominators, hidden):
        if display.text == NOT_APPLICABLE:
            assert m == 0 and not count_hidden
        if count_hidden:
            assert display.text == SUPPRESSED_MARK
        elif m == 0:
            assert display.text == NOT_APPLICABLE
