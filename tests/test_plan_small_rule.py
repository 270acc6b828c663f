""""Is this count small" is answered once, by the pack's `SmallGroupRule`.

Protection (primary cells), percentage coding, the notebook guard, the release check and the
decision all ask the rule object; none compares a count with a threshold of its own. The property
tests draw rules with every combination of threshold, comparison, zeros and numerator rule and
check each user against the rule; the last test reads the code for comparisons that bypass it.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.disclosure.rules import SmallGroupRule

ROOT = Path(__file__).resolve().parent.parent

rules = st.builds(
    SmallGroupRule,
    threshold=st.integers(0, 25),
    comparison=st.sampled_from(["<", "<="]),
    suppress_zeros=st.booleans(),
    numerator_threshold=st.one_of(st.none(), st.integers(1, 25)),
)


@settings(max_examples=200, deadline=None)
@given(rule=rules, n=st.integers(-3, 60))
def test_the_rule_s_tests_agree_with_each_other(rule, n):
    assert rule.is_small_count(n) == bool(rule.small_count_mask([n])[0])
    assert rule.is_small(n) == bool(rule.small_mask([n])[0]) or n < 0
    if n >= 0:
        # Zero: small exactly when the pack suppresses zeros, for every test that sees a group size.
        assert rule.is_small(0) == rule.is_small_count(0) == rule.suppress_zeros
    if n > 0:
        assert rule.is_small_count(n) == (rule.is_small(n) or rule.is_few(n))
        assert (n <= rule.largest_small_count) == rule.is_small_count(n)
    for outcome in range(0, max(n, 0) + 1):
        assert rule.is_small_outcome(outcome, n) == bool(rule.small_outcome_mask([outcome], [n])[0])


@settings(max_examples=120, deadline=None)
@given(rule=rules, n=st.integers(0, 60))
def test_the_guard_masks_exactly_what_the_rule_calls_small(rule, n):
    from workbench.guard.masking import MASK, is_small_count, mask_small_counts

    assert is_small_count(n, rule) == rule.is_small_count(n)
    assert is_small_count(float(n), rule) == rule.is_small_count(n)
    shown = mask_small_counts(pd.Series([n]), rule, protect_totals=False).data.iloc[0]
    assert (shown == MASK) == rule.is_small_count(n)


@settings(max_examples=120, deadline=None)
@given(rule=rules, group=st.integers(0, 40), data=st.data())
def test_primary_suppression_and_coding_follow_the_numerator_rule(rule, group, data):
    from workbench.disclosure.percentages import code_percentage
    from workbench.disclosure.rates import HIDDEN_DISPLAY, display_rate

    outcome = data.draw(st.integers(0, group))
    display = display_rate(outcome, group, rule)
    if group and not rule.is_small(group) and rule.tier_for(group) is not None:
        # A rate whose numerator (or complement) is few is never shown exactly.
        if rule.is_small_outcome(outcome, group):
            assert display == HIDDEN_DISPLAY or display.text.startswith(("<=", ">="))
    if group and rule.is_small(group):
        assert display == HIDDEN_DISPLAY and code_percentage(outcome, group, rule)[0] is None


def test_primary_cells_are_the_rule_s_small_groups_and_small_outcomes():
    from workbench.disclosure.primary import primary_cells
    from workbench.disclosure.table import CellSpace, CountTable

    rule = SmallGroupRule(threshold=10, comparison="<=", suppress_zeros=False, numerator_threshold=11)
    frame = pd.DataFrame({"grade": ["3", "4", "5", "6"], "students": [10, 40, 40, 0], "outcome": [2, 5, 30, 0]})
    table = CountTable.from_frame(frame, ["grade"], "students", outcome_col="outcome")
    space = CellSpace([table])
    mask, _reasons = primary_cells(space, rule)
    values, outcomes = space.values, space.outcomes
    expected = (rule.small_count_mask(values) & (values > 0)) | rule.small_outcome_mask(outcomes, values)
    expected |= (values == 0) & rule.suppress_zeros
    assert np.array_equal(mask, expected)


# Files that may compare a count with a threshold: the rule itself.
RULE_FILE = "workbench/disclosure/rules.py"
# The release ledger compares two groups' difference with the smallest publishable size; that
# module is being reworked on its own and keeps its comparison until then.
NOT_YET = {"workbench/ledger.py"}
BYPASS = re.compile(
    r"[<>]=?\s*[A-Za-z_.]*threshold\b"  # n < rule.threshold, values <= threshold
    r"|\bthreshold\s*[<>]=?"  # threshold > n
    r"|[<>]=?\s*t\b(?![.(])"  # y < t (a numerator threshold under a short name)
    r"|threshold\s*\+\s*\(1 if"  # the smallest publishable size worked out again
)


def test_no_code_compares_a_count_with_a_threshold_of_its_own():
    found = []
    for folder in ("workbench", "templates", "notebooks"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix not in (".py", ".ipynb"):
                continue
            name = path.relative_to(ROOT).as_posix()
            if name == RULE_FILE or name in NOT_YET:
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                code = line.split("#", 1)[0]
                if BYPASS.search(code) and not code.lstrip().startswith(('"', "'")):
                    found.append(f"{name}:{number}: {line.strip()}")
    assert found == []
