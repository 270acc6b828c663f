"""The attacker: linear programs that bound every suppressed cell given what is published.

The attacker knows every published cell exactly, every additivity equation between a cell and
its margins, and that counts are non-negative (and, with an outcome, 0 <= outcome <= count). The
unknowns are the suppressed cells and any cell the release leaves out. For each suppressed cell
we compute the smallest and largest value it can take: two linear programs, minimise and maximise.

This module uses no linear algebra of the suppression step: it builds its own LP from the
published table and asks HiGHS. To keep thousands of LPs fast it
  * splits the unknowns into independent components (cells that share no equation);
  * starts from bounds that single equations imply (interval propagation, an outer bound) and
    from feasible points it has seen (the true table when known, every LP optimum), an inner
    bound: where the two meet the interval is proven and no LP is run;
  * re-solves one HiGHS model per component, changing only the objective, so each solve starts
    from the previous optimal basis.
The LP relaxation is the attacker: integer reasoning could in rare cases narrow an interval
further, which docs/disclosure.md states as the limit of the guarantee.
"""

from __future__ import annotations

import ctypes
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import highspy
import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from workbench.disclosure.table import CellSpace
from workbench.errors import InputError


_banner_silenced = False


def quiet_highs() -> highspy.Highs:
    """A HiGHS solver that writes nothing to stdout.

    The first solver a process creates prints a licence banner from C++ straight to file
    descriptor 1, before any option can turn output off. In a notebook that banner lands in
    whichever cell happens to solve first, so stored outputs (nbval) and released notebooks would
    differ run to run; the descriptor is pointed at /dev/null while that first solver is built.
    """
    global _banner_silenced
    if _banner_silenced:
        solver = highspy.Highs()
    else:
        libc = ctypes.CDLL(None)
        libc.fflush(None)
        saved = os.dup(1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 1)
            solver = highspy.Highs()
            libc.fflush(None)
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            os.close(devnull)
        _banner_silenced = True
    solver.setOptionValue("output_flag", False)
    return solver

_EPS = 1e-6
_INF = highspy.kHighsInf
# Group LPs per direction (each drops the cells its optimum moves, then tests the rest again).
_GROUP_TESTS = 8
# Aggregate LPs continue while each settles at least this share (1/n) of the open quantities.
_AGGREGATE_SHARE = 10
# Fewer open quantities than this go to their own LPs directly.
_AGGREGATE_MIN_OPEN = 8


class AuditError(InputError):
    """The published table cannot be audited (for example, its published cells contradict each other)."""


@dataclass
class Objective:
    """A quantity the attacker bounds: sum(coef * variable)."""

    name: str
    index: np.ndarray
    coef: np.ndarray


@dataclass
class AuditResult:
    """Per objective (usually one per suppressed cell and measure): the attacker's interval."""

    objectives: list[Objective]
    low: np.ndarray  # LP minimum
    high: np.ndarray  # LP maximum (inf when unbounded)
    lp_count: int = 0
    seconds: float = 0.0
    # Per objective: True when [low, high] is the attacker's exact interval, False when it is
    # only the part proven feasible (the attacker's interval contains it).
    exact_interval: np.ndarray | None = None

    @property
    def integer_low(self) -> np.ndarray:
        return np.ceil(self.low - _EPS)

    @property
    def integer_high(self) -> np.ndarray:
        return np.floor(self.high + _EPS)

    @property
    def width(self) -> np.ndarray:
        """Integer width: how many values beyond one the attacker cannot exclude."""
        return self.integer_high - self.integer_low

    @property
    def exact(self) -> np.ndarray:
        return self.width <= 0


@dataclass
class _System:
    """Unknowns and constraints of the attacker, over measures (count, and outcome if any)."""

    n_vars: int
    rows: np.ndarray
    cols: np.ndarray
    vals: np.ndarray
    lower: np.ndarray  # row bounds
    upper: np.ndarray
    is_equation: np.ndarray  # row is an equality (otherwise an inequality coupling)
    var_lower: np.ndarray | None = None  # per variable; None = every variable >= 0

    def lower_bounds(self) -> np.ndarray:
        return np.zeros(self.n_vars) if self.var_lower is None else self.var_lower


def build_system(
    space: CellSpace,
    unknown: np.ndarray,
    known_counts: np.ndarray,
    known_outcomes: np.ndarray | None,
    *,
    one_per_parent: bool = True,
    positive: np.ndarray | None = None,
) -> tuple[_System, np.ndarray]:
    """The attacker's constraints. Returns the system and var_of: (measure, logical id) -> variable.

    unknown: logical mask of cells the attacker does not know (suppressed, or left out of the
    release); known_counts / known_outcomes hold the published values (ignored where unknown).
    positive: logical mask of unknown cells the attacker knows hold at least one student. When
    a rule publishes zeros and never hides a zero, the suppression mark itself says so.
    """
    n_measures = 1 if known_outcomes is None else 2
    unknown_ids = np.flatnonzero(unknown)
    var_of = -np.ones((n_measures, space.n_logical), dtype=np.int64)
    for m in range(n_measures):
        var_of[m, unknown_ids] = np.arange(len(unknown_ids)) + m * len(unknown_ids)
    rows, cols, vals, lower, upper, is_eq = [], [], [], [], [], []
    n_rows = 0
    knowns = [known_counts] + ([known_outcomes] if known_outcomes is not None else [])
    for parents, children, _ in space.equations(one_per_parent=one_per_parent):
        terms = np.concatenate([parents[:, None], children], axis=1)
        coef = np.concatenate([np.ones((len(parents), 1)), -np.ones(children.shape)], axis=1)
        term_unknown = unknown[terms]
        touched = term_unknown.any(axis=1)
        if not touched.all():
            # Equations of published cells only must hold; a contradiction means a broken release.
            for m, known in enumerate(knowns):
                constant = (coef[~touched] * known[terms[~touched]]).sum(axis=1)
                if np.any(constant != 0):
                    bad = int(parents[~touched][np.flatnonzero(constant != 0)[0]])
                    raise AuditError(
                        f"published cells do not add up at {space.describe(bad)} "
                        f"(off by {int(constant[constant != 0][0])})"
                    )
        terms, coef, term_unknown = terms[touched], coef[touched], term_unknown[touched]
        for m, known in enumerate(knowns):
            constant = (coef * np.where(term_unknown, 0, known[terms])).sum(axis=1)
            r, c = np.nonzero(term_unknown)
            rows.append(r + n_rows)
            cols.append(var_of[m, terms[r, c]])
            vals.append(coef[r, c])
            lower.append(-constant)
            upper.append(-constant)
            is_eq.append(np.ones(len(terms), dtype=bool))
            n_rows += len(terms)
    if n_measures == 2 and len(unknown_ids):
        # outcome - count <= 0 for every unknown cell
        r = np.arange(len(unknown_ids)) + n_rows
        rows += [r, r]
        cols += [var_of[1, unknown_ids], var_of[0, unknown_ids]]
        vals += [np.ones(len(r)), -np.ones(len(r))]
        lower.append(np.full(len(r), -np.inf))
        upper.append(np.zeros(len(r)))
        is_eq.append(np.zeros(len(r), dtype=bool))
        n_rows += len(r)
    system = _System(
        n_vars=n_measures * len(unknown_ids),
        rows=np.concatenate(rows) if rows else np.zeros(0, np.int64),
        cols=np.concatenate(cols) if cols else np.zeros(0, np.int64),
        vals=np.concatenate(vals).astype(float) if vals else np.zeros(0),
        lower=np.concatenate(lower).astype(float) if lower else np.zeros(0),
        upper=np.concatenate(upper).astype(float) if upper else np.zeros(0),
        is_equation=np.concatenate(is_eq) if is_eq else np.zeros(0, bool),
    )
    if positive is not None:
        lower = np.zeros(system.n_vars)
        marked = np.flatnonzero(positive & unknown)
        lower[var_of[0, marked]] = 1.0
        system.var_lower = lower
    return system, var_of


def propagate_bounds(system: _System, rounds: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Outer bounds from single equations, repeated until nothing tightens (variables are >= 0)."""
    n = system.n_vars
    lo = system.lower_bounds().copy()
    hi = np.full(n, np.inf)
    eq = system.is_equation[system.rows]
    r, c, a = system.rows[eq], system.cols[eq], system.vals[eq]
    if len(r) == 0:
        return lo, hi
    b = system.lower[r]
    n_rows = len(system.lower)
    for _ in range(rounds):
        term_min = np.where(a > 0, a * lo[c], a * hi[c])
        term_max = np.where(a > 0, a * hi[c], a * lo[c])
        min_inf = np.isinf(term_min)
        max_inf = np.isinf(term_max)
        sum_min = np.bincount(r, np.where(min_inf, 0, term_min), minlength=n_rows)
        sum_max = np.bincount(r, np.where(max_inf, 0, term_max), minlength=n_rows)
        n_min_inf = np.bincount(r, min_inf, minlength=n_rows)
        n_max_inf = np.bincount(r, max_inf, minlength=n_rows)
        others_max_inf = (n_max_inf[r] - max_inf) > 0
        others_min_inf = (n_min_inf[r] - min_inf) > 0
        others_max = sum_max[r] - np.where(max_inf, 0, term_max)
        others_min = sum_min[r] - np.where(min_inf, 0, term_min)
        with np.errstate(invalid="ignore"):
            low_ax = np.where(others_max_inf, -np.inf, b - others_max)
            up_ax = np.where(others_min_inf, np.inf, b - others_min)
            new_lo = np.where(a > 0, low_ax / a, up_ax / a)
            new_hi = np.where(a > 0, up_ax / a, low_ax / a)
        cand_lo = np.full(n, -np.inf)
        np.maximum.at(cand_lo, c, new_lo)
        cand_hi = np.full(n, np.inf)
        np.minimum.at(cand_hi, c, new_hi)
        next_lo = np.maximum(lo, cand_lo)
        next_hi = np.minimum(hi, cand_hi)
        changed = np.any(next_lo > lo + _EPS) or np.any(next_hi < hi - _EPS)
        lo, hi = next_lo, next_hi
        if not changed:
            break
    return lo, hi


def solve_intervals(
    system: _System,
    objectives: Sequence[Objective],
    *,
    feasible_point: np.ndarray | None = None,
    propagation_system: _System | None = None,
    required_width: np.ndarray | None = None,
) -> AuditResult:
    """Minimum and maximum of every objective over {x >= 0 : the system holds}.

    With required_width (one integer per objective), stop working on an objective as soon as two
    feasible points prove its integer interval at least that wide: the reported interval is then
    the proven part (the attacker's interval contains it) and `exact_interval` is False for it.
    Without it, every interval is computed exactly.
    """
    started = time.perf_counter()
    n_obj = len(objectives)
    result = AuditResult(list(objectives), np.zeros(n_obj), np.zeros(n_obj))
    result.exact_interval = np.ones(n_obj, dtype=bool)
    if n_obj == 0:
        return result
    n = system.n_vars
    obj_matrix = sp.csr_matrix(
        (
            np.concatenate([o.coef for o in objectives]).astype(float),
            (
                np.repeat(np.arange(n_obj), [len(o.index) for o in objectives]),
                np.concatenate([o.index for o in objectives]),
            ),
        ),
        shape=(n_obj, n),
    )
    var_lo, var_hi = propagate_bounds(propagation_system or system)
    outer_lo, outer_hi = _objective_bounds(obj_matrix, var_lo, var_hi)
    matrix = sp.csc_matrix((system.vals, (system.rows, system.cols)), shape=(len(system.lower), n))
    adjacency = sp.csr_matrix(matrix.T @ matrix) if n else sp.csr_matrix((0, 0))
    adjacency = adjacency + obj_matrix.T @ obj_matrix  # an objective's variables are bounded together
    n_comp, label = connected_components(adjacency, directed=False)
    obj_comp = label[obj_matrix.indices[obj_matrix.indptr[:-1]]]
    row_comp = np.full(len(system.lower), -1)
    coo = matrix.tocoo()
    row_comp[coo.row] = label[coo.col]
    for comp in np.unique(obj_comp):
        objs = np.flatnonzero(obj_comp == comp)
        variables = np.flatnonzero(label == comp)
        rows = np.flatnonzero(row_comp == comp)
        solver = _ComponentSolver(
            system.lower_bounds()[variables],
            matrix[rows][:, variables],
            system.lower[rows],
            system.upper[rows],
            obj_matrix[objs][:, variables],
            outer_lo[objs],
            outer_hi[objs],
            None if feasible_point is None else feasible_point[variables],
        )
        solver.solve(None if required_width is None else required_width[objs])
        result.low[objs], result.high[objs] = solver.low, solver.high
        result.exact_interval[objs] = solver.exact
        result.lp_count += solver.lp_count
    result.seconds = time.perf_counter() - started
    return result


def _objective_bounds(obj_matrix: sp.csr_matrix, var_lo: np.ndarray, var_hi: np.ndarray):
    pos = obj_matrix.multiply(obj_matrix > 0).tocsr()
    neg = obj_matrix.multiply(obj_matrix < 0).tocsr()
    finite_hi = np.where(np.isinf(var_hi), 0, var_hi)
    outer_lo = pos @ var_lo + neg @ finite_hi
    outer_hi = pos @ finite_hi + neg @ var_lo
    hi_inf = np.isinf(var_hi).astype(float)
    outer_hi[(pos @ hi_inf) > 0] = np.inf
    outer_lo[(-(neg @ hi_inf)) > 0] = -np.inf
    return outer_lo, outer_hi


class _ComponentSolver:
    """One HiGHS model per connected component; only the objective changes between solves."""

    def __init__(self, col_lower, matrix, row_lower, row_upper, objectives, outer_lo, outer_hi, point):
        self.objectives = sp.csr_matrix(objectives)
        n_obj = self.objectives.shape[0]
        self.low = outer_lo.copy()  # exact where done_lo, else the outer bound
        self.high = outer_hi.copy()
        self.done_lo = np.zeros(n_obj, dtype=bool)
        self.done_hi = np.zeros(n_obj, dtype=bool)
        self.lp_count = 0
        self.n_rows, self.n = matrix.shape
        self.h = None
        self.col_lower = np.asarray(col_lower, dtype=float)
        self.current = np.zeros(0, dtype=np.int32)
        if self.n_rows == 0:
            # No constraint reaches these unknowns: non-negativity alone bounds them.
            self.done_lo[:] = self.done_hi[:] = True
            self.seen_lo, self.seen_hi = self.low.copy(), self.high.copy()
            return
        h = quiet_highs()
        # The first solve starts from nothing and gains from presolve (the table's equations hold
        # many two-cell rows, a hidden margin over one hidden cell); the re-solves after it start
        # from its basis and only change the objective, so they run without.
        h.setOptionValue("presolve", "on")
        lp = highspy.HighsLp()
        lp.num_col_ = self.n
        lp.num_row_ = self.n_rows
        # The first solve already minimises every quantity at once (the first aggregate LP of
        # solve()), so its optimum is a useful witness, not just some feasible point.
        lp.col_cost_ = np.asarray(self.objectives.sum(axis=0), dtype=float).ravel()
        lp.col_lower_ = np.asarray(col_lower, dtype=float)
        lp.col_upper_ = np.full(self.n, _INF)
        lp.row_lower_ = np.where(np.isinf(row_lower), -_INF, row_lower)
        lp.row_upper_ = np.where(np.isinf(row_upper), _INF, row_upper)
        csc = sp.csc_matrix(matrix)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = csc.indptr
        lp.a_matrix_.index_ = csc.indices
        lp.a_matrix_.value_ = csc.data.astype(float)
        h.passModel(lp)
        self.h = h
        self.current = np.flatnonzero(lp.col_cost_).astype(np.int32)
        # Dual certificates of solved LPs bound other cells too (below); they need equalities only.
        self.matrix = sp.csr_matrix(matrix)
        self.rows_csr = self.matrix if np.all(row_lower == row_upper) else None
        self.rhs = row_lower
        self.row_lower, self.row_upper = np.asarray(row_lower, float), np.asarray(row_upper, float)
        h.run()
        self.lp_count += 1
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            raise AuditError("the published cells admit no non-negative table: the release is inconsistent")
        # Warm re-solves after an objective change keep a primal feasible basis: primal simplex.
        h.setOptionValue("presolve", "off")
        h.setOptionValue("simplex_strategy", 4)
        first = np.asarray(h.getSolution().col_value)
        self.seen_lo = self.objectives @ (first if point is None else point)
        self.seen_hi = self.seen_lo.copy()
        self._absorb(first)

    def _absorb(self, sample: np.ndarray) -> np.ndarray:
        values = self.objectives @ sample
        np.minimum(self.seen_lo, values, out=self.seen_lo)
        np.maximum(self.seen_hi, values, out=self.seen_hi)
        # A feasible point reaching an outer bound proves that bound exact.
        newly_lo = ~self.done_lo & (self.seen_lo <= self.low + _EPS)
        newly_hi = ~self.done_hi & (self.seen_hi >= self.high - _EPS)
        self.low[newly_lo] = self.seen_lo[newly_lo]
        self.high[newly_hi] = self.seen_hi[newly_hi]
        self.done_lo |= newly_lo
        self.done_hi |= newly_hi
        return values

    def _apply_certificate(self, value: float) -> None:
        """Turn the dual of a maximisation into bounds on every cell it touches.

        With row multipliers y, every feasible x satisfies w.x = b.y where w = A^T y. When w is
        non-negative (checked here, so a sign slip cannot produce a wrong bound), each cell obeys
        w_k x_k <= b.y - sum_{i != k} w_i lo_i, with lo the lower bounds already known (a mark's
        one student, or what propagation and earlier LPs proved), and
        x_k >= (b.y - sum_{i != k} w_i hi_i) / w_k.
        """
        if self.rows_csr is None:
            return
        y = np.asarray(self.h.getSolution().row_dual)
        for sign in (1.0, -1.0):
            w = self.rows_csr.T @ (sign * y)
            total = float(self.rhs @ (sign * y))
            if w.min() >= -1e-9 and abs(total - value) <= 1e-6 * max(1.0, abs(value)):
                break
        else:
            return
        # Every positive entry, however small: leaving one out would drop a term the lower
        # bounds below need (its cell can be large).
        support = np.flatnonzero(w > 0)
        if len(support) == 0:
            return
        obj_of_var = self._obj_of_var
        slack = total
        # Entries of w within rounding noise below zero: their cells can only add to the slack.
        noise = np.flatnonzero(w < 0)
        if len(noise):
            noise_hi = self._var_bound(noise, self.high, np.inf)
            if not np.all(np.isfinite(noise_hi)):
                return
            slack += float(-w[noise] @ noise_hi)
        ws = w[support]
        los = self._var_bound(support, self.low, 0.0, floor=self.col_lower[support])
        slack -= float(ws @ los)
        upper = los + max(slack, 0.0) / ws + _EPS
        hits = obj_of_var[support]
        ok = hits >= 0
        targets = hits[ok]
        np.minimum.at(self.high, targets, upper[ok])
        his = self._var_bound(support, self.high, np.inf)
        if np.all(np.isfinite(his)):
            rest = float(ws @ his)
            lower = (total - (rest - ws * his)) / ws - _EPS
            np.maximum.at(self.low, targets, lower[ok])
        self._settle_reached()

    def _var_bound(self, variables, bounds, missing, floor=None):
        """Each variable's bound from its own objective (valid outer or exact), else `missing`."""
        hits = self._obj_of_var[variables]
        values = np.where(hits >= 0, bounds[np.maximum(hits, 0)], missing)
        return values if floor is None else np.maximum(values, floor)

    def _settle_pinned_together(self, maximize: bool, required: np.ndarray | None) -> np.ndarray | None:
        """One LP for many cells that are probably pinned, instead of one LP each.

        Take the open cells S whose other end is already exact (for maximisation: their minimum
        lo). Every feasible x has sum_S x <= V, the LP maximum, and x_k >= lo_k, so each
        x_i <= lo_i + (V - sum_S lo). When no cell of S can rise, V = sum_S lo and the one LP pins
        all of them. Cells the optimum raises leave S (the LP point is kept as a witness) and the
        rest are tested again. Minimisation mirrors this with the exact maxima. Returns the
        objectives' values at the last optimum, or None when no LP was run.
        """
        done = self.done_hi if maximize else self.done_lo
        known_done = self.done_lo if maximize else self.done_hi
        known = self.low if maximize else self.high
        values = None
        tests = 0
        candidates = np.flatnonzero(
            ~done & known_done & ~self._proven(required) & (self._unit_var >= 0) & np.isfinite(known)
        )
        while len(candidates) >= 2:
            variables = self._unit_var[candidates]
            value, sample = self._run(variables, np.ones(len(variables)), maximize)
            if sample is None:
                break
            values = self._absorb(sample)
            if maximize:
                self._apply_certificate(value)
            anchor = known[candidates]
            if maximize:
                slack = max(value - float(anchor.sum()), 0.0)
                self.high[candidates] = np.minimum(self.high[candidates], anchor + slack + _EPS)
            else:
                slack = max(float(anchor.sum()) - value, 0.0)
                self.low[candidates] = np.maximum(self.low[candidates], anchor - slack - _EPS)
            self._settle_reached()
            moved = np.abs(sample[variables] - anchor) > 1e-7
            tests += 1
            if not moved.any() or tests >= _GROUP_TESTS:
                break
            candidates = candidates[~moved]
            candidates = candidates[~done[candidates] & ~self._proven(required)[candidates]]
        return values

    def _settle_reached(self) -> None:
        """Bounds a feasible point already reaches are exact."""
        newly_hi = ~self.done_hi & (self.seen_hi >= self.high - _EPS)
        newly_lo = ~self.done_lo & (self.seen_lo <= self.low + _EPS)
        self.high[newly_hi] = self.seen_hi[newly_hi]
        self.low[newly_lo] = self.seen_lo[newly_lo]
        self.done_hi |= newly_hi
        self.done_lo |= newly_lo

    def _run(self, index: np.ndarray, coef: np.ndarray, maximize: bool, witness_only: bool = False):
        """Optimise coef . x[index]. witness_only: an LP with extra bounds, run for its point alone:
        no point unless it is optimal and the point meets the attacker's own constraints."""
        h = self.h
        if len(self.current):
            h.changeColsCost(len(self.current), self.current, np.zeros(len(self.current)))
        self.current = index.astype(np.int32)
        h.changeColsCost(len(self.current), self.current, coef.astype(float))
        h.changeObjectiveSense(highspy.ObjSense.kMaximize if maximize else highspy.ObjSense.kMinimize)
        h.run()
        self.lp_count += 1
        status = h.getModelStatus()
        if witness_only:
            if status != highspy.HighsModelStatus.kOptimal:
                return None, None
            point = np.asarray(h.getSolution().col_value)
            return (h.getInfo().objective_function_value, point) if self._satisfies(point) else (None, None)
        if status == highspy.HighsModelStatus.kOptimal:
            return h.getInfo().objective_function_value, np.asarray(h.getSolution().col_value)
        if status in (highspy.HighsModelStatus.kUnbounded, highspy.HighsModelStatus.kUnboundedOrInfeasible):
            return None, None
        raise AuditError(f"the attacker's LP failed: {h.modelStatusToString(status)}")

    def _satisfies(self, point: np.ndarray) -> bool:
        """The point meets every constraint of the attacker's LP (within the audit's tolerance)."""
        activity = self.matrix @ point
        return bool(
            np.all(point >= self.col_lower - _EPS)
            and np.all(activity >= self.row_lower - _EPS)
            and np.all(activity <= self.row_upper + _EPS)
        )

    def _proven(self, required: np.ndarray | None) -> np.ndarray:
        if required is None:
            return np.zeros(len(self.done_lo), dtype=bool)
        width = np.floor(self.seen_hi + _EPS) - np.ceil(self.seen_lo - _EPS)
        return width >= required

    def solve(self, required: np.ndarray | None) -> None:
        if self.h is None:
            self.exact = np.ones(len(self.low), dtype=bool)
            return
        objectives = self.objectives
        all_vars = np.arange(self.n)
        # Which objective is "this cell alone" (coefficient 1), for certificate bounds.
        self._obj_of_var = np.full(self.n, -1)
        single = (np.diff(objectives.indptr) == 1)
        firsts = objectives.indices[objectives.indptr[:-1][single]]
        unit = objectives.data[objectives.indptr[:-1][single]] == 1.0
        self._obj_of_var[firsts[unit]] = np.flatnonzero(single)[unit]
        self._unit_var = np.full(objectives.shape[0], -1)
        self._unit_var[np.flatnonzero(single)[unit]] = firsts[unit]
        # Aggregate LPs first: one optimum pushes many unknowns to their extremes at once.
        # Repeat while they settle a useful share of what is still open.
        for maximize in (False, True):
            runs = 0
            while True:
                done = (self.done_hi if maximize else self.done_lo) | self._proven(required)
                open_ = ~done & (np.isfinite(self.high) if maximize else True)
                n_open = int(open_.sum())
                if n_open < _AGGREGATE_MIN_OPEN:
                    break
                # After a first weighted maximisation (whose dual certificate bounds many cells),
                # a proof needs each open cell to rise by its required width only: capping every
                # open cell there stops a few cells from taking the whole objective, so one LP
                # lifts many. The caps only shrink the feasible set, so its optimum is a witness.
                capped = maximize and required is not None and runs > 0
                if capped:
                    ids = np.flatnonzero(open_ & (self._unit_var >= 0))
                    cap_vars = self._unit_var[ids].astype(np.int32)
                    caps = np.floor(self.seen_lo[ids] + _EPS) + required[ids]
                    self.h.changeColsBounds(len(cap_vars), cap_vars, self.col_lower[cap_vars], caps)
                    cost = np.asarray(objectives[open_].sum(axis=0)).ravel()
                    try:
                        value, sample = self._run(all_vars, cost, maximize, witness_only=True)
                    finally:
                        self.h.changeColsBounds(
                            len(cap_vars), cap_vars, self.col_lower[cap_vars], np.full(len(cap_vars), _INF)
                        )
                else:
                    if maximize:
                        cost = np.asarray(objectives[open_].T @ (1.0 / np.maximum(self.high[open_], 1.0))).ravel()
                    else:
                        cost = np.asarray(objectives[open_].sum(axis=0)).ravel()
                    value, sample = self._run(all_vars, cost, maximize)
                runs += 1
                if sample is None:
                    break
                self._absorb(sample)
                if maximize and not capped:
                    self._apply_certificate(value)
                still = ~((self.done_hi if maximize else self.done_lo) | self._proven(required)) & open_
                if n_open - int(still.sum()) < max(3, n_open // _AGGREGATE_SHARE):
                    break
        indptr, indices, data = objectives.indptr, objectives.indices, objectives.data
        current_values = self.seen_hi.copy()
        for maximize in (True, False):
            done = self.done_hi if maximize else self.done_lo
            bound = self.high if maximize else self.low
            values = self._settle_pinned_together(maximize, required)
            if values is not None:
                current_values = values
            while True:
                open_ids = np.flatnonzero(~done & ~self._proven(required))
                if len(open_ids) == 0:
                    break
                # Next: the open objective whose value at the current optimum is nearest its
                # bound, so the warm start needs few pivots.
                target = np.where(np.isfinite(bound[open_ids]), bound[open_ids], 1e12)
                i = int(open_ids[np.argmin(np.abs(target - current_values[open_ids]))])
                index = indices[indptr[i] : indptr[i + 1]]
                value, sample = self._run(index, data[indptr[i] : indptr[i + 1]], maximize)
                if maximize and value is not None:
                    self._apply_certificate(value)
                if value is None:
                    bound[i] = np.inf if maximize else -np.inf
                else:
                    bound[i] = value
                done[i] = True
                if sample is not None:
                    current_values = self._absorb(sample)
        self.exact = self.done_lo & self.done_hi
        # Where only a proof was asked for, report the proven (inner) part of the interval.
        self.low = np.where(self.done_lo, self.low, self.seen_lo)
        self.high = np.where(self.done_hi, self.high, self.seen_hi)
