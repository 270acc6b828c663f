"""Property tests: random tables of 1-4 dimensions always come out audit-clean.

The check uses an attacker written here, independent of workbench.disclosure's LP code: it takes
the released table in the long format, treats the suppressed inner cells as unknowns, states
every published margin as "margin = sum of its inner cells" (a missing inner row is a zero), and
minimises / maximises every suppressed cell with scipy's linprog.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from workbench.disclosure import SmallGroupRule, audit_published_table, protect_tables

TOTAL = "Total"


def attack(release: pd.DataFrame, dims: list[str], marks_positive: bool = False) -> dict[tuple, tuple[float, float]]:
    """Interval (min, max) for every suppressed cell, keyed by its tuple of dimension labels.

    marks_positive: the method publishes zeros and never hides one, so a mark means >= 1.
    """
    labels = release[dims].astype(str)
    values = release["value"]
    cats = [sorted({v for v in labels[d] if v != TOTAL}) for d in dims]
    inner_keys = list(itertools.product(*cats))
    known: dict[tuple, float] = {}
    suppressed: list[tuple] = []
    for key, value in zip(map(tuple, labels.to_numpy()), values.tolist()):
        if value is None or pd.isna(value) or str(value).strip() == "":
            suppressed.append(key)
        else:
            known[key] = float(value)
    unknown_inner = [k for k in inner_keys if k in set(suppressed)]
    position = {k: i for i, k in enumerate(unknown_inner)}

    def members(key: tuple) -> list[tuple]:
        return [k for k in inner_keys if all(a == TOTAL or a == b for a, b in zip(key, k))]

    rows, rhs = [], []
    for key, value in known.items():
        if TOTAL not in key:
            continue
        coefficients = np.zeros(len(unknown_inner))
        constant = 0.0
        for inner in members(key):
            if inner in position:
                coefficients[position[inner]] += 1
            else:
                constant += known.get(inner, 0.0)
        if coefficients.any():
            rows.append(coefficients)
            rhs.append(value - constant)
    a_eq = np.array(rows) if rows else None
    b_eq = np.array(rhs) if rhs else None
    out = {}
    for key in suppressed:
        objective = np.zeros(len(unknown_inner))
        for inner in members(key):
            if inner in position:
                objective[position[inner]] += 1
        constant = sum(known.get(inner, 0.0) for inner in members(key) if inner not in position)
        if not objective.any():
            out[key] = (constant, constant)
            continue
        bounds = [(1 if marks_positive else 0, None)] * len(unknown_inner)
        low = linprog(objective, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")
        high = linprog(-objective, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")
        assert low.status == 0, f"attacker LP failed: {low.message}"
        high_value = np.inf if high.status == 3 else -high.fun
        out[key] = (low.fun + constant, high_value + constant)
    return out


@st.composite
def tables(draw):
    n_dims = draw(st.integers(1, 4))
    max_cats = {1: 6, 2: 5, 3: 3, 4: 2}[n_dims]
    sizes = [draw(st.integers(1, max_cats)) for _ in range(n_dims)]
    dims = [f"d{i}" for i in range(n_dims)]
    cells = list(itertools.product(*[[f"c{j}" for j in range(s)] for s in sizes]))
    kind = st.sampled_from(["zero", "small", "large"])
    counts = []
    for _ in cells:
        k = draw(kind)
        counts.append(0 if k == "zero" else draw(st.integers(1, 9)) if k == "small" else draw(st.integers(10, 60)))
    frame = pd.DataFrame(cells, columns=dims)
    frame["n"] = counts
    # A missing combination is a zero: drop some zero rows to exercise that convention.
    drop_zeros = draw(st.booleans())
    if drop_zeros:
        frame = frame[frame["n"] > 0]
    rule = SmallGroupRule(
        threshold=draw(st.sampled_from([3, 5, 10])),
        comparison=draw(st.sampled_from(["<", "<="])),
        suppress_zeros=draw(st.booleans()),
        protection_width=draw(st.sampled_from([1, 1, 2])),
    )
    return frame, dims, rule


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_protected_tables_pass_an_independent_audit(case):
    frame, dims, rule = case
    if frame.empty:
        return
    result = protect_tables(frame, dims, "n", rule)
    assert result.is_safe, result.problems
    release = result.cells
    intervals = attack(release[dims + ["value"]], dims, marks_positive=not rule.suppress_zeros)
    status = dict(zip(map(tuple, release[dims].astype(str).to_numpy()), release["status"]))
    for key, (low, high) in intervals.items():
        width = np.floor(high + 1e-6) - np.ceil(low - 1e-6)
        needed = rule.protection_width if status[key] == "primary" else 1
        assert width >= needed, f"{key} ({status[key]}): attacker interval [{low}, {high}]"
    # The package's own intervals agree with the independent attacker.
    for row in release[release["status"] != "published"].itertuples(index=False):
        record = row._asdict()
        key = tuple(str(record[d]) for d in dims)
        low, high = intervals[key]
        assert record["interval_low"] == np.ceil(low - 1e-6)
        if np.isfinite(high):
            assert record["interval_high"] == np.floor(high + 1e-6)
        else:
            assert pd.isna(record["interval_high"])


@settings(max_examples=60, deadline=None)
@given(tables())
def test_every_primary_cell_is_suppressed_and_every_published_value_is_true(case):
    frame, dims, rule = case
    if frame.empty:
        return
    release = protect_tables(frame, dims, "n", rule, intervals="proof").cells
    truth = frame.groupby(dims)["n"].sum()
    for row in release.itertuples(index=False):
        record = row._asdict()
        key = tuple(record[d] for d in dims)
        true = int(sum(v for k, v in truth.items() if all(a == "Total" or a == b for a, b in zip(key, k if isinstance(k, tuple) else (k,)))))
        if record["status"] == "published":
            assert record["value"] == true
            assert not (rule.is_small(true) if true else rule.suppress_zeros)
        else:
            assert pd.isna(record["value"])


def test_the_attacker_finds_a_lone_suppressed_cell():
    # 2x2 with all margins published and one cell hidden: total minus the others gives it back.
    release = pd.DataFrame(
        {
            "a": ["x", "x", "x", "y", "y", "y", "Total", "Total", "Total"],
            "b": ["p", "q", "Total", "p", "q", "Total", "p", "q", "Total"],
            "value": [None, 20, 23, 15, 25, 40, 18, 45, 63],
        }
    )
    assert attack(release, ["a", "b"])[("x", "p")] == pytest.approx((3, 3))
    checked = audit_published_table(release, ["a", "b"])
    assert checked.exactly_disclosed == 1
    assert checked.intervals.iloc[0][["interval_low", "interval_high"]].tolist() == [3, 3]


def test_the_attacker_finds_a_cell_pinned_by_non_negativity():
    # Two hidden cells in a row whose published siblings leave them a sum of 0: both are 0.
    release = pd.DataFrame(
        {
            "a": ["x", "x", "x", "y", "y", "y", "Total", "Total", "Total"],
            "b": ["p", "q", "Total", "p", "q", "Total", "p", "q", "Total"],
            "value": [None, None, 0, 15, 25, 40, None, None, 40],
        }
    )
    checked = audit_published_table(release, ["a", "b"])
    assert checked.exactly_disclosed == 4
