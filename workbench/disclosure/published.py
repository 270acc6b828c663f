"""Audit a published table in the long release format, whatever tool produced it.

The format: one row per cell; each dimension column holds a category or the literal `Total`;
a value column holds the published count, empty where suppressed. Rows may be missing:
  * a missing inner combination is a zero (the same convention as the protect input, and the
    conservative one for an audit: the attacker is assumed to know it);
  * a missing margin is simply not published: the attacker has no equation for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from workbench.disclosure.audit import AuditResult, Objective, build_system, solve_intervals
from workbench.disclosure.table import TOTAL, CellSpace, CountTable, TableInputError


@dataclass
class PublishedAudit:
    intervals: pd.DataFrame  # one row per suppressed cell: dims, interval_low, interval_high, exact
    audit: AuditResult

    @property
    def exactly_disclosed(self) -> int:
        return int(self.intervals["exact"].sum()) if len(self.intervals) else 0


def audit_published_table(
    frame: pd.DataFrame,
    dims: Sequence[str],
    value_col: str = "value",
    *,
    intervals: Literal["exact", "proof"] = "exact",
) -> PublishedAudit:
    """Every suppressed cell's interval as an attacker computes it from the published rows.

    intervals="proof" only settles, for each cell, whether it is exactly disclosed: cells proven
    to move by at least 1 report the proven part of their interval; the others (the exact
    disclosures among them) get exact intervals. `exact` is right in both modes.
    """
    dims = list(dims)
    missing = [c for c in [*dims, value_col] if c not in frame.columns]
    if missing:
        raise TableInputError(f"column(s) not in the table: {', '.join(missing)}")
    labels = frame[dims].astype(str)
    if labels.duplicated().any():
        first = labels[labels.duplicated()].iloc[0].tolist()
        raise TableInputError(f"duplicate rows for the cell {dict(zip(dims, first))}")
    raw = frame[value_col]
    text = raw.astype(str).str.strip()
    empty = raw.isna().to_numpy() | text.isin(["", "*", "nan", "NaN", "<NA>", "None"]).to_numpy()
    numbers = pd.to_numeric(text.where(~empty, "0"), errors="coerce")
    bad = numbers.isna() | (numbers < 0) | (numbers != np.round(numbers))
    if bad.any():
        raise TableInputError(f"column {value_col} holds a value that is not a count: {raw[bad].iloc[0]!r}")
    categories = []
    for dim in dims:
        cats = tuple(v for v in pd.unique(labels[dim]) if v != TOTAL)
        if not cats:
            raise TableInputError(f"dimension {dim} has only Total rows")
        categories.append(cats)
    shape = tuple(len(c) + 1 for c in categories)
    codes = []
    for axis, dim in enumerate(dims):
        lookup = {cat: i for i, cat in enumerate(categories[axis])}
        lookup[TOTAL] = len(categories[axis])
        codes.append(labels[dim].map(lookup).to_numpy(dtype=np.int64))
    flat = np.ravel_multi_index(tuple(codes), shape)
    known = np.zeros(int(np.prod(shape)), dtype=np.int64)
    present = np.zeros(known.size, dtype=bool)
    suppressed = np.zeros(known.size, dtype=bool)
    known[flat] = numbers.to_numpy(dtype=np.int64)
    present[flat] = True
    suppressed[flat[empty]] = True
    table = CountTable(name="published", dims=tuple(dims), categories=tuple(categories), counts=known.reshape(shape))
    is_margin = table.total_mask().any(axis=1)
    # Absent inner cells are zeros; absent margins are unknowns nobody reports on.
    unknown = suppressed | (~present & is_margin)
    space = CellSpace([table])
    system, var_of = build_system(space, unknown, known, None)
    propagation, _ = build_system(space, unknown, known, None, one_per_parent=False)
    targets = np.flatnonzero(suppressed)
    objectives = [Objective(("count", int(c)), np.array([var_of[0, c]]), np.array([1.0])) for c in targets]
    required = np.ones(len(objectives)) if intervals == "proof" else None
    audit = solve_intervals(system, objectives, propagation_system=propagation, required_width=required)
    out = table.labels().iloc[targets].reset_index(drop=True)
    out["interval_low"] = audit.integer_low.astype(np.int64) if len(targets) else []
    out["interval_high"] = [None if not np.isfinite(v) else int(v) for v in audit.integer_high]
    out["exact"] = audit.exact if len(targets) else []
    return PublishedAudit(intervals=out, audit=audit)
