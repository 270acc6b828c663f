"""Publish complementary cells the protection turns out not to need.

Complementary cells are chosen greedily, and the fix loop adds more where the attacker pinned a
cell; afterwards some of them are redundant: every protected cell still has its width without
them. This pass offers each complementary cell for publication, the one hiding the most students
first, and publishes it when the attacker (the same LP as audit.py: published cells, additivity,
a mark holds at least one student) still cannot pin any protected cell or hidden group, nor any
complementary cell left hidden (one it pins is published too: it is known anyway).

The proof is by feasible points, as in the audit's proof mode. Every point the solver returns is
kept; publishing cell s keeps the points that leave s at its true value (they stay feasible), so
only the quantities whose proof needed s moved are solved again, with s fixed.
"""

from __future__ import annotations

from collections.abc import Sequence

import highspy
import numpy as np
import scipy.sparse as sp

from workbench.disclosure.audit import build_system, quiet_highs
from workbench.disclosure.secondary import HiddenGroup
from workbench.disclosure.table import CellSpace

_EPS = 1e-6
_INF = highspy.kHighsInf


def drop_redundant(
    space: CellSpace,
    suppressed: np.ndarray,
    protected: np.ndarray,
    required: np.ndarray,
    groups: Sequence[HiddenGroup],
    *,
    positive: bool,
    max_solves: int,
) -> tuple[np.ndarray, dict[tuple, tuple[float, float]]]:
    """The suppression pattern without redundant complementary cells, and every interval's proven part.

    protected: logical mask of cells that must keep their width (primary and required cells);
    required: logical array, the width each of them needs (1 for a complementary cell).
    Counts only (no outcome measure). max_solves bounds the work, so the result does not
    depend on the machine's speed. Returns the input unchanged when the starting pattern
    cannot be proven (the caller's audit reports that).
    """
    lids = np.flatnonzero(suppressed)
    if len(lids) == 0 or space.outcomes is not None:
        return suppressed, {}
    system, var_of = build_system(space, suppressed, space.values, None, positive=suppressed if positive else None)
    n = system.n_vars
    truth = space.values[lids].astype(float)
    lower = system.lower_bounds()
    names: list[tuple] = [("count", int(lid)) for lid in lids]
    rows = [np.array([var_of[0, lid]]) for lid in lids]
    need = [float(required[lid]) if protected[lid] else 1.0 for lid in lids]
    is_target = [bool(protected[lid]) for lid in lids]
    for g, group in enumerate(groups):
        members = np.array(group.members)
        if suppressed[members].all():
            names.append(("group", g))
            rows.append(var_of[0, members])
            need.append(1.0)
            is_target.append(True)
    n_obj = len(names)
    objectives = sp.csr_matrix(
        (np.ones(sum(len(r) for r in rows)), (np.repeat(np.arange(n_obj), [len(r) for r in rows]), np.concatenate(rows))),
        shape=(n_obj, n),
    )
    need = np.array(need)
    is_target = np.array(is_target)
    solver = _Model(system, n, truth)
    first = solver.feasible_point()
    if first is None:
        return suppressed, {}
    points = [truth, first]
    values = np.column_stack([objectives @ truth, objectives @ first])
    moved = [np.zeros(n, dtype=bool), np.abs(first - truth) > _EPS]
    valid = np.ones(2, dtype=bool)
    alive = np.ones(n_obj, dtype=bool)
    published = np.zeros(n, dtype=bool)

    def width(mask: np.ndarray, which: np.ndarray) -> np.ndarray:
        part = values[which][:, mask]
        return np.floor(part.max(axis=1) + _EPS) - np.ceil(part.min(axis=1) - _EPS)

    def prove(open_ids: np.ndarray) -> np.ndarray:
        """Find witnesses for each open quantity until proven; returns the ones still unproven.

        Protected quantities go first, and the first one that fails ends the search: the cell
        on trial then stays hidden, and what else would have failed no longer matters.
        """
        nonlocal values, valid
        failed = []
        for i in sorted(open_ids.tolist(), key=lambda i: not is_target[i]):
            if failed and is_target[failed[-1]]:
                break
            if width(valid, np.array([i]))[0] >= need[i]:
                continue
            row = objectives.getrow(i)
            true = float(values[i, 0])
            w = int(need[i])
            # Moves up by a and down by w - a students together give the width.
            for up in range(w, -1, -1):
                found = True
                for low, high in ((true + up, _INF), (-_INF, true - (w - up))):
                    if (low == true and high == _INF) or (high == true and low == -_INF):
                        continue
                    sample = solver.nearest(row, low, high)
                    if sample is None:
                        found = False
                        break
                    points.append(sample)
                    moved.append(np.abs(sample - truth) > _EPS)
                    values = np.column_stack([values, objectives @ sample])
                    valid = np.append(valid, True)
                if found and width(valid, np.array([i]))[0] >= need[i]:
                    break
            else:
                failed.append(i)
        return np.array(failed, dtype=np.int64)

    if len(prove(np.arange(n_obj))):
        return suppressed, {}
    order = np.flatnonzero(~is_target)
    order = order[np.argsort(-truth[order], kind="stable")]
    for i in order.tolist():
        if solver.solves >= max_solves:
            break
        if not alive[i]:
            continue
        var = int(objectives.indices[objectives.indptr[i]])
        solver.fix(var, truth[var])
        kept_points = valid & ~np.array([m[var] for m in moved])
        before = valid
        valid = kept_points
        alive[i] = False
        open_ids = np.flatnonzero(alive & (width(valid, np.arange(n_obj)) < need))
        failed = prove(open_ids)
        if len(failed) and is_target[failed].any():
            solver.release(var, lower[var])
            alive[i] = True
            # Points found with the cell fixed hold for the larger set too.
            valid = valid | np.append(before, np.ones(len(valid) - len(before), dtype=bool))
            continue
        published[var] = True
        for j in failed.tolist():  # complementary cells the attacker now pins: known anyway
            other = int(objectives.indices[objectives.indptr[j]])
            solver.fix(other, truth[other])
            published[other] = True
            alive[j] = False
            valid &= ~np.array([m[other] for m in moved])
    after = suppressed.copy()
    after[lids[published]] = False
    intervals = {}
    for i in np.flatnonzero(alive).tolist():
        part = values[i, valid]
        intervals[names[i]] = (float(part.min()), float(part.max()))
    return after, intervals


class _Model:
    """The attacker's LP, asked for the feasible point nearest the true table with one quantity moved.

    Variables x (the hidden cells) and, per cell, u and v with x - u + v = truth; the objective
    sum(u + v) makes every witness a short move (a few cells by one student each), so publishing
    one cell invalidates few witnesses. Cells are published by fixing their bounds.
    """

    def __init__(self, system, n: int, truth: np.ndarray) -> None:
        matrix = sp.csc_matrix((system.vals, (system.rows, system.cols)), shape=(len(system.lower), n))
        eye = sp.identity(n, format="csc")
        full = sp.bmat([[matrix, None, None], [eye, -eye, eye]], format="csc")
        lp = highspy.HighsLp()
        lp.num_col_ = 3 * n
        lp.num_row_ = full.shape[0]
        lp.col_cost_ = np.concatenate([np.zeros(n), np.ones(2 * n)])
        lp.col_lower_ = np.concatenate([system.lower_bounds().astype(float), np.zeros(2 * n)])
        lp.col_upper_ = np.full(3 * n, _INF)
        lp.row_lower_ = np.concatenate([np.where(np.isinf(system.lower), -_INF, system.lower), truth])
        lp.row_upper_ = np.concatenate([np.where(np.isinf(system.upper), _INF, system.upper), truth])
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = full.indptr
        lp.a_matrix_.index_ = full.indices
        lp.a_matrix_.value_ = full.data.astype(float)
        self.h = quiet_highs()
        self.h.setOptionValue("presolve", "off")
        self.h.passModel(lp)
        self.n = n
        self.base_rows = full.shape[0]
        self.probing = False
        self.solves = 0

    def _run(self) -> np.ndarray | None:
        self.h.run()
        self.solves += 1
        if self.h.getModelStatus() == highspy.HighsModelStatus.kOptimal:
            return np.asarray(self.h.getSolution().col_value)[: self.n]
        return None

    def feasible_point(self) -> np.ndarray | None:
        return self._run()

    def nearest(self, row: sp.csr_matrix, low: float, high: float) -> np.ndarray | None:
        """The feasible point nearest the truth with low <= row . x <= high, or None."""
        if self.probing:
            self.h.deleteRows(1, np.array([self.base_rows], dtype=np.int32))
        self.h.addRow(low, high, len(row.indices), row.indices.astype(np.int32), row.data.astype(float))
        self.probing = True
        return self._run()

    def fix(self, var: int, value: float) -> None:
        self.h.changeColBounds(var, value, value)

    def release(self, var: int, lower: float) -> None:
        self.h.changeColBounds(var, lower, _INF)
