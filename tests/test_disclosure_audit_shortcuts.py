"""The audit's shortcuts reach the verdicts of solving every LP.

The audit settles most cells without an LP of their own: dual certificates bound the cells a
solved LP touches, one LP tests a whole set of probably pinned cells (group test), and capped
aggregate LPs lift many cells to their required width at once. Here random tables get random
suppression patterns (not protected ones, so that many cells are pinned, which is where the
shortcuts act), and for every suppressed cell the audit's verdict, in both modes, is compared
with two LPs per cell solved directly with scipy's linprog: the exhaustive attacker.
"""

from __future__ import annotations

import itertools
from unittest import mock

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from workbench.disclosure import audit as audit_module
from workbench.disclosure.audit import Objective, build_system, solve_intervals
from workbench.disclosure.table import CellSpace, CountTable


def exhaustive_intervals(system, objectives):
    """Minimum and maximum of every objective, two LPs each, over {x >= lower : system holds}."""
    a = np.zeros((len(system.lower), system.n_vars))
    np.add.at(a, (system.rows, system.cols), system.vals)
    eq = system.is_equation
    bounds = [(lo, None) for lo in system.lower_bounds()]
    out = []
    for obj in objectives:
        c = np.zeros(system.n_vars)
        np.add.at(c, obj.index, obj.coef)
        ends = []
        for sign in (1.0, -1.0):
            res = linprog(
                sign * c,
                A_eq=a[eq] if eq.any() else None,
                b_eq=system.lower[eq] if eq.any() else None,
                A_ub=a[~eq] if (~eq).any() else None,
                b_ub=system.upper[~eq] if (~eq).any() else None,
                bounds=bounds,
                method="highs",
            )
            assert res.status in (0, 3), res.message
            ends.append(sign * res.fun if res.status == 0 else -sign * np.inf)
        out.append(tuple(ends))
    return np.array(out)


@st.composite
def patterns(draw):
    """A table of 2-3 dimensions, big enough for the aggregate and group LPs to act, with a random
    share of its cells (margins included) hidden; counts lean small so that many cells are pinned."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_dims = draw(st.integers(2, 3))
    sizes = [draw(st.integers(2, {2: 7, 3: 4}[n_dims])) for _ in range(n_dims)]
    dims = [f"d{i}" for i in range(n_dims)]
    cells = list(itertools.product(*[[f"c{j}" for j in range(s)] for s in sizes]))
    frame = pd.DataFrame(cells, columns=dims)
    frame["n"] = rng.choice([0, 1, 1, 1, 2, 3, 5, 8, 12, 30], size=len(cells))
    space = CellSpace([CountTable.from_frame(frame, dims, "n")])
    hide = rng.random(space.n_logical) < draw(st.sampled_from([0.3, 0.5, 0.8]))
    positive = draw(st.booleans())
    if positive:
        hide &= space.values > 0  # a mark then stands for at least one student
    width = rng.choice([1, 1, 2], size=space.n_logical)
    return space, hide, positive, width


def audit(space, hide, positive, width, mode):
    marked = hide if positive else None
    system, var_of = build_system(space, hide, space.values, None, positive=marked)
    propagation, _ = build_system(space, hide, space.values, None, one_per_parent=False, positive=marked)
    lids = np.flatnonzero(hide)
    objectives = [Objective(("count", int(lid)), np.array([var_of[0, lid]]), np.array([1.0])) for lid in lids]
    # Sums of two hidden cells of one equation too (the hidden-sum groups), where there are any.
    for parents, children, _ in space.equations():
        for row in children:
            hidden = [int(c) for c in row if hide[c]]
            if len(hidden) >= 2:
                objectives.append(Objective(("group", tuple(hidden[:2])), var_of[0, hidden[:2]], np.ones(2)))
    truth = np.zeros(system.n_vars)
    truth[var_of[0, lids]] = space.values[lids]
    required = np.array([width[o.name[1]] if o.name[0] == "count" else 1 for o in objectives], dtype=float)
    result = solve_intervals(
        system,
        objectives,
        feasible_point=truth if mode != "published" else None,
        propagation_system=propagation,
        required_width=None if mode == "exact" else required,
    )
    return system, objectives, required, result


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(patterns(), st.sampled_from(["exact", "proof", "published"]), st.sampled_from([2, 8, 10**9]))
def test_the_audit_reaches_the_verdicts_of_solving_every_lp(case, mode, min_open):
    """min_open: fewest open quantities for an aggregate LP; 2 lets small tables take the
    aggregate paths, 10**9 skips them so that the group tests meet every pinned cell."""
    space, hide, positive, width = case
    if not hide.any():
        return
    with mock.patch.object(audit_module, "_AGGREGATE_MIN_OPEN", min_open):
        system, objectives, required, result = audit(space, hide, positive, width, mode)
    if not objectives:
        return
    truth_ends = exhaustive_intervals(system, objectives)
    true_width = np.floor(truth_ends[:, 1] + 1e-6) - np.ceil(truth_ends[:, 0] - 1e-6)
    got_width = result.width
    if mode == "exact":
        assert np.allclose(result.low, truth_ends[:, 0], atol=1e-5)
        assert np.allclose(result.high, truth_ends[:, 1], atol=1e-5) or np.array_equal(
            np.isinf(result.high), np.isinf(truth_ends[:, 1])
        )
        np.testing.assert_array_equal(got_width, true_width)
    else:
        # Same verdict: proven wide enough exactly when the attacker's true interval is.
        np.testing.assert_array_equal(got_width >= required, true_width >= required)
        # What is reported lies inside the attacker's interval, and is the interval itself where
        # the verdict is "too narrow".
        assert np.all(result.low >= truth_ends[:, 0] - 1e-5)
        assert np.all(result.high <= truth_ends[:, 1] + 1e-5)
        narrow = true_width < required
        np.testing.assert_array_equal(got_width[narrow], true_width[narrow])
