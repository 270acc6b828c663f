"""The fix loop's shortcuts against full audits and the independent attackers.

* The loop audits only what is still open after each round (the attacker's feasible set only
  grows as cells are hidden): a full audit of the final pattern must agree that every protected
  cell and hidden group keeps its width and that no hidden complementary cell is pinned.
* Redundant complementary cells are published afterwards (prune.py): the pruned pattern is a
  subset of the unpruned one and the integer-program attacker of tests/release_attacker.py
  still pins nothing in it.
* Cells of one student hidden alone together in a published equation are pinned by the mark
  ("at least one"): they are protected as a group even with the hidden-sum rule off.
"""

from __future__ import annotations

import itertools
from functools import partial

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.release_attacker import Method, Table, pinned
from workbench.disclosure import SmallGroupRule, protect_tables
from workbench.disclosure.protect import _audit, _check, _required_width


@st.composite
def tables(draw, max_dims: int = 3):
    n_dims = draw(st.integers(2, max_dims))
    sizes = [draw(st.integers(2, {2: 5, 3: 3}[n_dims])) for _ in range(n_dims)]
    dims = [f"d{i}" for i in range(n_dims)]
    cells = list(itertools.product(*[[f"c{j}" for j in range(s)] for s in sizes]))
    kind = st.sampled_from(["zero", "one", "small", "large", "large"])
    counts = []
    for _ in cells:
        k = draw(kind)
        counts.append({"zero": 0, "one": 1}.get(k) if k in ("zero", "one") else
                      draw(st.integers(2, 9)) if k == "small" else draw(st.integers(10, 60)))
    frame = pd.DataFrame(cells, columns=dims)
    frame["n"] = counts
    rule = SmallGroupRule(protect_hidden_sums=draw(st.booleans()), protection_width=draw(st.sampled_from([1, 1, 2])))
    return frame, dims, rule


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_the_incremental_fix_loop_agrees_with_a_full_audit_of_its_result(case):
    frame, dims, rule = case
    result = protect_tables(frame, dims, "n", rule, intervals="proof", prune=False)
    if not result.is_safe:
        return
    space = result.space
    primary = result.status == "primary"
    must_protect = result.suppressed & np.array([
        primary[lid] or "(LP audit)" in result.reasons.get(lid, "") or "earlier table" in result.reasons.get(lid, "")
        for lid in range(space.n_logical)
    ])
    audit, objectives = _audit(
        space, result.suppressed, result.groups, partial(_required_width, rule, primary), positive=not rule.suppress_zeros
    )
    check = _check(space, rule, audit, objectives, primary, must_protect, result.groups)
    assert not check.failing, check.failing
    assert not check.failing_groups
    assert check.exact_cells == [], [space.describe(lid) for lid in check.exact_cells]
    # The intervals the loop reports are proven parts of the attacker's: never wider.
    for i, obj in enumerate(objectives):
        kind, lid = obj.name
        if kind == "count":
            assert result.interval_high[lid] - result.interval_low[lid] >= (rule.protection_width if primary[lid] else 1)


def recipient(result, dims) -> pd.DataFrame:
    frame = result.cells[dims].astype(str)
    frame["students"] = ["*" if pd.isna(v) else str(int(v)) for v in result.cells["value"]]
    return frame


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_publishing_redundant_complementary_cells_leaves_the_integer_attacker_nothing(case):
    frame, dims, rule = case
    full = protect_tables(frame, dims, "n", rule, intervals="proof", prune=False)
    pruned = protect_tables(frame, dims, "n", rule, intervals="proof", prune=True)
    assert pruned.is_safe == full.is_safe
    if not pruned.is_safe:
        return
    # Pruning only publishes: nothing hidden that the unpruned pattern showed.
    assert not (pruned.suppressed & ~full.suppressed).any()
    assert (pruned.status == "primary").sum() == (full.status == "primary").sum()
    if rule.protection_width > 1:
        return  # the integer attacker checks two values, the rule's width 1
    assert pinned([Table(recipient(pruned, dims), dims, [])], Method(), {}) == []


def test_pruning_publishes_complementary_cells_the_protection_does_not_need():
    inner = [[36, 29, 3, 23, 8], [26, 1, 11, 29, 12], [11, 42, 16, 25, 54], [1, 55, 73, 11, 66]]
    frame = pd.DataFrame(
        [(f"S{i}", f"g{j}", n) for i, row in enumerate(inner) for j, n in enumerate(row)], columns=["school", "grade", "n"]
    )
    rule = SmallGroupRule(protect_hidden_sums=False)
    full = protect_tables(frame, ["school", "grade"], "n", rule, prune=False)
    pruned = protect_tables(frame, ["school", "grade"], "n", rule, prune=True)
    assert full.is_safe and pruned.is_safe
    assert pruned.suppressed.sum() < full.suppressed.sum()
    assert pruned.summary()["students_hidden_in_inner_cells"] <= full.summary()["students_hidden_in_inner_cells"]
    assert pinned([Table(recipient(pruned, ["school", "grade"]), ["school", "grade"], [])], Method(), {}) == []


def test_cells_of_one_student_hidden_together_are_a_group_even_without_the_hidden_sum_rule():
    frame = pd.DataFrame({"race": ["a", "b", "c", "d"], "n": [1, 1, 50, 60]})
    result = protect_tables(frame, ["race"], "n", SmallGroupRule(protect_hidden_sums=False))
    assert result.is_safe, result.problems
    assert any(len(g.members) == 2 for g in result.groups)
    assert result.suppressed.sum() >= 3  # a third cell, so the two ones can move
    assert pinned([Table(recipient(result, ["race"]), ["race"], [])], Method(), {}) == []
