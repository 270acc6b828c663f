"""The release audit reuses feasible points of earlier audits, and never one the program rejects.

Each table added to a release is audited with everything before it; the points earlier audits
found are tried first. A point is only evidence once checked against the whole new program: a
point that breaks a constraint must not settle anything (else a pinned cell would pass).
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.disclosure import SmallGroupRule
from workbench.disclosure.release import RateInput, ReleaseError, ReleaseModel
from workbench.disclosure.release_audit import audit_release
from workbench.disclosure.table import CellSpace, CountTable, with_margins


def one_way(name: str, dim: str, counts: list[int]) -> CountTable:
    return CountTable(name, (dim,), (tuple(f"{dim}{i}" for i in range(len(counts))),), with_margins(np.array(counts)))


def test_a_point_that_breaks_a_constraint_settles_nothing():
    # One hidden cell beside a published total is pinned; a "point" moving it alone breaks the total.
    space = CellSpace([one_way("by_race", "race", [3, 50, 60])])
    suppressed = np.zeros(space.n_logical, dtype=bool)
    hidden = space.keys.index((("race", "race0"),))
    suppressed[hidden] = True
    names = [("n", space.keys[hidden])]
    forged = [(names, np.array([4.0]))]
    result = audit_release(space, suppressed, SmallGroupRule(), [], witnesses=forged)
    assert [t.what for t in result.failing] == ["count"]
    assert result.failing[0].lid == hidden


def test_a_point_the_program_admits_settles_without_solving():
    space = CellSpace([one_way("by_race", "race", [3, 12, 60])])
    suppressed = np.zeros(space.n_logical, dtype=bool)
    first, second = space.keys.index((("race", "race0"),)), space.keys.index((("race", "race1"),))
    suppressed[[first, second]] = True
    alone = audit_release(space, suppressed, SmallGroupRule(), [])
    assert alone.safe and alone.solves > 0
    names = [("n", space.keys[first]), ("n", space.keys[second])]
    replayed = audit_release(space, suppressed, SmallGroupRule(), [], witnesses=[(names, np.array([4.0, 11.0]))])
    assert replayed.safe and replayed.solves == 0


@st.composite
def two_way_releases(draw):
    rows, columns = draw(st.integers(2, 3)), draw(st.integers(2, 3))
    inner = np.array([[draw(st.one_of(st.integers(0, 9), st.integers(10, 40))) for _ in range(columns)]
                      for _ in range(rows)])
    inner[0, 0] += 20
    seed = draw(st.integers(0, 10_000))
    outcomes = np.random.default_rng(seed).binomial(inner, draw(st.floats(0.1, 0.6)))
    return inner, outcomes, draw(st.sampled_from([None, 5]))


def _release(inner, outcomes, rule, keep_points: bool):
    model = ReleaseModel(rule, time_limit=20.0)
    if not keep_points:
        model.witnesses = None  # every audit starts from nothing
    shown = []
    by_row = CountTable("by_row", ("row",), (tuple(f"r{i}" for i in range(inner.shape[0])),), with_margins(inner.sum(1)))
    by_column = CountTable("by_column", ("column",), (tuple(f"c{j}" for j in range(inner.shape[1])),),
                           with_margins(inner.sum(0)))
    both = CountTable("both", ("row", "column"), (by_row.categories[0], by_column.categories[0]), with_margins(inner))
    for table, y in ((by_row, with_margins(outcomes.sum(1))), (by_column, with_margins(outcomes.sum(0))),
                     (both, with_margins(outcomes))):
        try:
            released = model.add(table, [RateInput("outcome", table.counts, y, denominator_is_group=True)])
        except ReleaseError as exc:
            shown.append(("refused", str(exc)))
            break
        shown.append((released.count_shown.tolist(), [d.text for d in released.rates["outcome"]],
                      released.summary["students_hidden"]))
    return shown


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(two_way_releases())
def test_kept_points_publish_exactly_what_a_fresh_audit_publishes(case):
    inner, outcomes, numerator = case
    rule = SmallGroupRule(numerator_threshold=numerator)
    assert _release(inner, outcomes, rule, keep_points=True) == _release(inner, outcomes, rule, keep_points=False)


def test_a_search_near_the_truth_finds_only_whole_program_points_and_falls_back_to_the_whole():
    import scipy.sparse as sp

    from workbench.disclosure.release_audit import _NEAR_STEPS, _Program, _Solver

    # x0 = x1 = ... = xL, all 5 in truth: moving x0 down moves the whole chain, which reaches
    # further than the near search widens; only the whole program finds it.
    length = 2 * _NEAR_STEPS + 4
    program = _Program()
    x = program.variables(length + 1)
    program.upper[x] = 20.0
    for a, b in zip(x[:-1], x[1:]):
        program.row([(a, 1.0), (b, -1.0)], 0.0, 0.0)
    truth = np.full(length + 1, 5.0)
    solver = _Solver(program.model(), 10.0)
    down = sp.csr_matrix(([1.0], ([0], [int(x[0])])), shape=(1, program.n))
    assert solver.probe(down, -np.inf, 4.0, near=truth, whole=False) is None
    found = solver.probe(down, -np.inf, 4.0, near=truth, whole=True)
    assert found is not None and found[0] <= 4 and program.checker()(found)
    # A move the neighbourhood holds: x0 free of the chain beyond a breakable link.
    loose = _Program()
    y = loose.variables(length + 1)
    loose.upper[y] = 20.0
    loose.row([(y[0], 1.0), (y[1], -1.0)], -3.0, 3.0)
    for a, b in zip(y[1:-1], y[2:]):
        loose.row([(a, 1.0), (b, -1.0)], 0.0, 0.0)
    near = _Solver(loose.model(), 10.0).probe(down, -np.inf, 4.0, near=truth, whole=False)
    assert near is not None and near[0] <= 4 and loose.checker()(near)
    assert np.all(near[2:] == 5)  # the chain beyond the neighbourhood kept its values
