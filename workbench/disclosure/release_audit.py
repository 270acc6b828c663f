"""The release attacker: one integer program over everything a recipient holds for a school year.

Unknowns, all integers: every cell's student count n; for every measure, every cell's
denominator m and numerator y. What the recipient knows, as constraints:

  * published counts exactly; a suppression mark means n >= 1 when the rule publishes zeros
    (one mark for every hidden cell, so nothing more);
  * every additive relation of every table of the year (cells shared by tables are one unknown,
    in counts and in each measure);
  * 0 <= y <= m; m <= n for a measure over the group's own students, m = n where the definition
    says so (students enrolled), m = 0 where it says no student is in the measure (grades
    without course marks); a district figure is over a superset of the cohort;
  * every shown percentage as the interval its rounding leaves (exact integer form), and the
    public method behind it: m is not small, the numerator and its complement are at least the
    numerator threshold, and it lies strictly between the tier's codes; every code as its bound;
  * the students-hidden figure of each table's protection summary.

A protected quantity (a suppressed count; the numerator, complement and, for a hidden group,
the denominator of a hidden or coded rate) is safe when the program admits two integer values
for it. The audit proves it with feasible points: the true release is one, and for each
quantity not yet seen to move, HiGHS is asked for a solution with the quantity at most its true
value minus one, then at least plus one. Every solution found settles every quantity it moves.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import highspy
import numpy as np
import scipy.sparse as sp

from workbench.disclosure.audit import quiet_highs
from workbench.disclosure.rates import BLANK, CODED, HIDDEN, SHOWN, RateDisplay
from workbench.disclosure.rules import SmallGroupRule
from workbench.disclosure.table import CellSpace

_INF = highspy.kHighsInf


@dataclass
class LayerView:
    """One measure's cells for the audit: its own tables, and where each cell's group count is."""

    name: str
    space: CellSpace
    count_lid: np.ndarray  # layer lid -> count lid (-1 when the group has no released count)
    denominators: np.ndarray
    numerators: np.ndarray
    displays: list[RateDisplay]
    over_group: bool  # m <= n of the same cell
    is_group: bool  # m == n
    documented_zero: np.ndarray  # layer lid -> m == 0 by definition
    within: tuple[int, np.ndarray] | None = None  # (cohort layer index, this lid -> its lid or -1)


@dataclass
class Target:
    description: str
    layer: int | None  # None: a count
    lid: int
    what: str  # "count", "numerator", "complement", "denominator"


@dataclass
class ReleaseAuditResult:
    failing: list[Target]
    targets: int
    solves: int
    seconds: float
    unresolved_by_time: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def safe(self) -> bool:
        return not self.failing


def audit_release(
    space: CellSpace,
    suppressed: np.ndarray,
    rule: SmallGroupRule,
    layers: list[LayerView],
    hidden_totals: list[tuple[np.ndarray, int]] = (),
    *,
    time_limit: float = 10.0,
) -> ReleaseAuditResult:
    started = time.perf_counter()
    builder = _Program()
    n_var = builder.variables(space.n_logical)
    values = space.values.astype(float)
    cap = float(max(1, int(space.values.max(initial=0)))) * 4 + 1000
    marks_positive = not rule.suppress_zeros
    builder.lower[n_var] = np.where(suppressed, 1.0 if marks_positive else 0.0, values)
    builder.upper[n_var] = np.where(suppressed, cap, values)
    truth = [space.values.astype(float)]
    _additivity(builder, space, n_var)
    layer_vars = []
    for layer in layers:
        m_var = builder.variables(layer.space.n_logical)
        y_var = builder.variables(layer.space.n_logical)
        builder.upper[m_var] = cap
        builder.upper[y_var] = cap
        truth += [layer.denominators.astype(float), layer.numerators.astype(float)]
        layer_vars.append((m_var, y_var))
        _additivity(builder, layer.space, m_var)
        _additivity(builder, layer.space, y_var)
        ids = np.arange(layer.space.n_logical)
        builder.rows([[(y_var[i], 1.0), (m_var[i], -1.0)] for i in ids], -_INF, 0.0)
        linked = np.flatnonzero(layer.count_lid >= 0)
        pairs = [[(m_var[i], 1.0), (n_var[layer.count_lid[i]], -1.0)] for i in linked]
        if layer.is_group:
            builder.rows(pairs, 0.0, 0.0)
        elif layer.over_group:
            builder.rows(pairs, -_INF, 0.0)
        builder.upper[m_var[layer.documented_zero]] = 0.0
        _displays(builder, rule, layer, m_var, y_var)
    for index, layer in enumerate(layers):
        if layer.within is None:
            continue
        cohort_index, mapping = layer.within
        m_d, y_d = layer_vars[index]
        m_c, y_c = layer_vars[cohort_index]
        for lid in np.flatnonzero(mapping >= 0):
            c = mapping[lid]
            builder.row([(m_d[lid], 1.0), (m_c[c], -1.0)], 0.0, _INF)
            builder.row([(y_d[lid], 1.0), (y_c[c], -1.0)], 0.0, _INF)
            builder.row([(m_d[lid], 1.0), (y_d[lid], -1.0), (m_c[c], -1.0), (y_c[c], 1.0)], 0.0, _INF)
    for members, total in hidden_totals:
        builder.row([(n_var[i], 1.0) for i in members], float(total), float(total))

    targets, expressions = _targets(space, suppressed, rule, layers, n_var, layer_vars)
    point = np.concatenate(truth)
    result = ReleaseAuditResult([], len(targets), 0, 0.0)
    if not targets:
        result.seconds = time.perf_counter() - started
        return result
    model = builder.model()
    expr = sp.csr_matrix(
        (
            np.concatenate([c for _, c in expressions]),
            (np.repeat(np.arange(len(expressions)), [len(i) for i, _ in expressions]), np.concatenate([i for i, _ in expressions])),
        ),
        shape=(len(expressions), builder.n),
    )
    true_values = expr @ point
    moved = np.zeros(len(targets), dtype=bool)
    solver = _Solver(model, expr, time_limit)
    # Two aggregate solves first: pushing every protected quantity down, then up, moves most.
    for sense in (1.0, -1.0):
        sample = solver.optimise(sense * np.asarray(expr.sum(axis=0)).ravel())
        if sample is not None:
            moved |= np.abs(expr @ sample - true_values) > 0.5
    for i in range(len(targets)):
        if moved[i]:
            continue
        for low, high in ((-_INF, true_values[i] - 1), (true_values[i] + 1, _INF)):
            sample = solver.probe(i, low, high)
            if sample is not None:
                moved |= np.abs(expr @ sample - true_values) > 0.5
                break
        if not moved[i]:
            result.failing.append(targets[i])
    result.solves = solver.solves
    result.unresolved_by_time = solver.timeouts
    result.seconds = time.perf_counter() - started
    return result


class _Program:
    """Rows and bounds of the integer program, gathered before one HiGHS model is built."""

    def __init__(self) -> None:
        self.n = 0
        self.lower = np.zeros(0)
        self.upper = np.zeros(0)
        self.entries: list[tuple[int, int, float]] = []
        self.row_lower: list[float] = []
        self.row_upper: list[float] = []

    def variables(self, count: int) -> np.ndarray:
        ids = np.arange(self.n, self.n + count)
        self.n += count
        self.lower = np.concatenate([self.lower, np.zeros(count)])
        self.upper = np.concatenate([self.upper, np.full(count, _INF)])
        return ids

    def row(self, terms, low: float, high: float) -> None:
        r = len(self.row_lower)
        for var, coef in terms:
            self.entries.append((r, int(var), float(coef)))
        self.row_lower.append(low)
        self.row_upper.append(high)

    def rows(self, many, low: float, high: float) -> None:
        for terms in many:
            self.row(terms, low, high)

    def model(self) -> highspy.HighsLp:
        lp = highspy.HighsLp()
        lp.num_col_ = self.n
        lp.num_row_ = len(self.row_lower)
        lp.col_cost_ = np.zeros(self.n)
        lp.col_lower_ = self.lower
        lp.col_upper_ = self.upper
        lp.row_lower_ = np.array(self.row_lower, dtype=float)
        lp.row_upper_ = np.array(self.row_upper, dtype=float)
        if self.entries:
            r, c, v = map(np.array, zip(*self.entries))
        else:
            r = c = np.zeros(0, dtype=int)
            v = np.zeros(0)
        csc = sp.csc_matrix((v.astype(float), (r.astype(int), c.astype(int))), shape=(lp.num_row_, self.n))
        csc.sum_duplicates()
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = csc.indptr
        lp.a_matrix_.index_ = csc.indices
        lp.a_matrix_.value_ = csc.data
        lp.integrality_ = [highspy.HighsVarType.kInteger] * self.n
        return lp


def _additivity(builder: _Program, space: CellSpace, var: np.ndarray) -> None:
    for parents, children, _ in space.equations(one_per_parent=True):
        for parent, row in zip(parents.tolist(), children.tolist()):
            terms = [(var[parent], 1.0)] + [(var[c], -1.0) for c in row]
            builder.row(terms, 0.0, 0.0)


def _displays(builder: _Program, rule: SmallGroupRule, layer: LayerView, m_var, y_var) -> None:
    t = rule.numerator_threshold
    least = float(rule.smallest_publishable)
    for lid, shown in enumerate(layer.displays):
        m, y = m_var[lid], y_var[lid]
        if shown.state == BLANK:
            builder.upper[m] = 0.0
        elif shown.state == SHOWN:
            k = shown.tenths
            builder.row([(y, 2000.0), (m, -(2.0 * k - 1))], 0.0, _INF)
            builder.row([(y, 2000.0), (m, -(2.0 * k + 1))], -_INF, -1.0)
            builder.lower[m] = max(builder.lower[m], least)
            # The public method: a shown rate is not coded, so it lies strictly between the codes
            # of the group's tier (the tier of the true size: a stronger attacker than a real one).
            tier = rule.tier_for(int(layer.denominators[lid]))
            if tier is not None:
                builder.row([(y, 100.0), (m, -float(tier.bottom))], 1e-3, _INF)
                builder.row([(y, 100.0), (m, -float(tier.top))], -_INF, -1e-3)
            if t is not None:
                builder.lower[y] = max(builder.lower[y], float(t))
                builder.row([(m, 1.0), (y, -1.0)], float(t), _INF)
        elif shown.state == CODED:
            builder.lower[m] = max(builder.lower[m], least)
            if shown.at_most is not None:
                builder.row([(y, 100.0), (m, -shown.at_most)], -_INF, 0.0)
            if shown.at_least is not None:
                builder.row([(y, 100.0), (m, -shown.at_least)], 0.0, _INF)


def _targets(space, suppressed, rule, layers, n_var, layer_vars):
    targets: list[Target] = []
    expressions: list[tuple[np.ndarray, np.ndarray]] = []
    for lid in np.flatnonzero(suppressed).tolist():
        targets.append(Target(space.describe(lid), None, lid, "count"))
        expressions.append((np.array([n_var[lid]]), np.array([1.0])))
    for index, layer in enumerate(layers):
        m_var, y_var = layer_vars[index]
        for lid, shown in enumerate(layer.displays):
            m = int(layer.denominators[lid])
            if shown.state not in (HIDDEN, CODED) or m == 0:
                continue
            where = f"{layer.name}, {layer.space.describe(lid)}"
            targets.append(Target(where, index, lid, "numerator"))
            expressions.append((np.array([y_var[lid]]), np.array([1.0])))
            targets.append(Target(where, index, lid, "complement"))
            expressions.append((np.array([m_var[lid], y_var[lid]]), np.array([1.0, -1.0])))
            count = layer.count_lid[lid]
            hidden_group = (count >= 0 and suppressed[count]) or rule.is_small(m)
            if shown.state == HIDDEN and hidden_group and not layer.is_group:
                targets.append(Target(where, index, lid, "denominator"))
                expressions.append((np.array([m_var[lid]]), np.array([1.0])))
    return targets, expressions


class _Solver:
    """One HiGHS integer model; a probe bounds one protected quantity away from its true value."""

    def __init__(self, model: highspy.HighsLp, expr: sp.csr_matrix, time_limit: float) -> None:
        self.h = quiet_highs()
        self.h.setOptionValue("time_limit", float(time_limit))
        self.h.setOptionValue("mip_rel_gap", 1.0)  # any feasible point will do
        self.h.passModel(model)
        self.base_rows = model.num_row_
        self.expr = expr
        self.n = model.num_col_
        self.solves = 0
        self.timeouts = 0
        self.probe_row = None

    def _run(self) -> np.ndarray | None:
        self.h.run()
        self.solves += 1
        status = self.h.getModelStatus()
        info = self.h.getInfo()
        if status == highspy.HighsModelStatus.kTimeLimit:
            self.timeouts += 1
        if info.primal_solution_status == 2:  # a feasible solution exists
            return np.round(np.asarray(self.h.getSolution().col_value))
        return None

    def optimise(self, cost: np.ndarray) -> np.ndarray | None:
        self.h.changeColsCost(self.n, np.arange(self.n, dtype=np.int32), cost.astype(float))
        sample = self._run()
        self.h.changeColsCost(self.n, np.arange(self.n, dtype=np.int32), np.zeros(self.n))
        return sample

    def probe(self, i: int, low: float, high: float) -> np.ndarray | None:
        row = self.expr.getrow(i)
        if self.probe_row is not None:
            self.h.deleteRows(1, np.array([self.probe_row], dtype=np.int32))
        self.h.addRow(low, high, len(row.indices), row.indices.astype(np.int32), row.data.astype(float))
        self.probe_row = self.base_rows
        return self._run()
