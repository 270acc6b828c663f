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

Tables are added to a release one at a time and each addition is audited with everything before
it, so the solutions found for earlier audits are kept (as the values they give each count,
denominator and numerator, by name) and tried first: one that still satisfies every constraint
of the larger program, checked exactly, settles what it moves there too without a new solve.
"""

from __future__ import annotations

import functools
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
# Fewer open quantities than this are probed one by one, without an aggregate probe first.
_AGGREGATE_FROM = 3
# A search near a point widens this many times (each step: every variable sharing a row with
# those already free) before the whole program is solved, each with this time limit.
_NEAR_STEPS = 5
_NEAR_TIME_LIMIT = 1.0


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
    witnesses: list | None = None,
) -> ReleaseAuditResult:
    """Every protected quantity of the release that the recipient's integer program pins.

    Measures are tied to each other only through the group counts. So a measure's quantities
    are first probed with every count held at its true value: an alternative found there,
    with every other measure left at its true values, is a solution of the whole program. What
    that cannot settle, and every suppressed count, is probed in the whole program.

    witnesses: feasible points of earlier audits of this release, each as (the names of its
    program's variables, their values); they are tried first, and every point this audit finds
    is appended.
    """
    started = time.perf_counter()
    result = ReleaseAuditResult([], 0, 0, 0.0)
    program = _build(space, suppressed, rule, layers, hidden_totals, range(len(layers)), fix_counts=False)
    every_target, every_expression = _targets(space, suppressed, rule, layers, program, counts=True)
    result.targets = len(every_target)
    settled: set[tuple] = set()
    if witnesses:
        replayed = _replay(program, _names(space, layers, program), witnesses, every_expression, time_limit, result)
        settled = {_identity(t) for t, ok in zip(every_target, replayed) if ok}
    unresolved: list[tuple[int, int, str]] = []  # (layer, lid, what)
    for group in _measure_groups(layers):
        part = _build(space, suppressed, rule, layers, (), group, fix_counts=True)
        targets, expressions = _targets(space, suppressed, rule, layers, part, counts=False, skip=settled)
        sink = _Sink(witnesses, _names(space, layers, part))
        moved = _settle(part, expressions, time_limit, result, sink=sink)
        unresolved += [(t.layer, t.lid, t.what) for t, ok in zip(targets, moved) if not ok]
    targets, expressions = _targets(space, suppressed, rule, layers, program, counts=True, only=set(unresolved),
                                    skip=settled)
    sink = _Sink(witnesses, _names(space, layers, program))
    moved = np.zeros(len(targets), dtype=bool)
    if targets:
        moved = _lifted_counts(space, suppressed, rule, layers, hidden_totals, program, expressions, time_limit, result,
                               sink)
    if not moved.all():
        rest = [i for i in range(len(targets)) if not moved[i]]
        again = _settle(program, [expressions[i] for i in rest], time_limit, result,
                        _count_steps(space, suppressed, layers, program), sink=sink)
        moved[np.array(rest)[again]] = True
    result.failing = [t for t, ok in zip(targets, moved) if not ok]
    result.seconds = time.perf_counter() - started
    return result


def definitional_zeros(space: CellSpace, documented: np.ndarray) -> np.ndarray:
    """Cells of a measure with no student in it by the definition alone: the documented ones
    (grades without course marks), every sum of those, and every part of such a sum (a part of an
    empty group is empty). An elementary school has no course marks in any grade, so every group
    of it, by race or by gender, has none: a value no release can give away."""
    zero = np.asarray(documented, dtype=bool).copy()
    equations = [(parents, children) for parents, children, _ in space.equations()]
    changed = True
    while changed:
        changed = False
        for parents, children in equations:
            empty_sums = zero[children].all(axis=1) & ~zero[parents]
            if empty_sums.any():
                zero[parents[empty_sums]] = True
                changed = True
            parts = children[zero[parents]]
            if parts.size and not zero[parts].all():
                zero[parts.ravel()] = True
                changed = True
    return zero


def _identity(target: "Target") -> tuple:
    return (target.layer, target.lid, target.what)


def _names(space: CellSpace, layers: list[LayerView], built: "_Built") -> list:
    """Each variable of a program by what it is, so points carry over between programs."""
    names: list = [None] * built.builder.n
    for lid, var in enumerate(built.n_var.tolist()):
        names[var] = ("n", space.keys[lid])
    for index, (m_var, y_var) in built.layer_vars.items():
        layer = layers[index]
        for lid, key in enumerate(layer.space.keys):
            names[m_var[lid]] = ("m", layer.name, key)
            names[y_var[lid]] = ("y", layer.name, key)
    return names


class _Sink:
    """Where the feasible points a program gives are kept: the names of its variables and their values."""

    def __init__(self, witnesses: list | None, names: list) -> None:
        self.witnesses, self.names = witnesses, names

    def keep(self, point: np.ndarray) -> None:
        if self.witnesses is not None:
            self.witnesses.append((self.names, np.asarray(point[: len(self.names)], dtype=float).copy()))


def _replay(program: "_Built", names: list, witnesses: list, expressions, time_limit: float,
            result: ReleaseAuditResult) -> np.ndarray:
    """Which quantities earlier points settle in this program.

    An earlier point gives values to the variables its program had; the variables this program
    adds start at their true values. A point that then satisfies every constraint settles what it
    moves; one that does not is completed by solving for the added variables alone (the earlier
    ones held), tried only when it would settle something not yet settled.
    """
    where = {name: i for i, name in enumerate(names) if name is not None}
    expr = _expression_matrix(expressions, program.builder.n)
    true_values = expr @ program.point
    moved = np.zeros(len(expressions), dtype=bool)
    check = program.builder.checker()
    model = None
    positions: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for old_names, values in witnesses:
        if id(old_names) not in positions:
            index = np.array([where.get(name, -1) for name in old_names], dtype=np.int64)
            positions[id(old_names)] = (index, index >= 0)
        index, present = positions[id(old_names)]
        point = program.point.copy()
        point[index[present]] = values[present]
        known = np.zeros(program.builder.n, dtype=bool)
        known[index[present]] = True
        determined = np.asarray((abs(expr) @ (~known).astype(float)) == 0).ravel()
        gain = determined & ~moved & (np.abs(expr @ point - true_values) > 0.5)
        if not gain.any():
            continue
        if not check(point):
            if model is None:
                model = program.builder.model()
            held = _Solver(model, time_limit, hold=(np.flatnonzero(known), point[known]))
            point = held.search_near(_unmet(program.builder, point), point)
            result.solves += held.solves
            result.unresolved_by_time += held.timeouts
            if point is None:
                continue
        moved |= np.abs(expr @ point - true_values) > 0.5
    return moved


def _expression_matrix(expressions, n: int) -> sp.csr_matrix:
    if not expressions:
        return sp.csr_matrix((0, n))
    return sp.csr_matrix(
        (
            np.concatenate([c for _, c in expressions]),
            (np.repeat(np.arange(len(expressions)), [len(i) for i, _ in expressions]), np.concatenate([i for i, _ in expressions])),
        ),
        shape=(len(expressions), n),
    )


def _lifted_counts(space, suppressed, rule, layers, hidden_totals, program, expressions, time_limit, result,
                   sink: _Sink) -> np.ndarray:
    """Count alternatives found on the counts alone, then completed measure by measure.

    For a suppressed count, the smallest change of the counts that moves it (an integer program
    over the counts only, which is easy) is completed, for each measure, by a solution with the
    counts held at the changed values. When every measure completes, the pieces form one
    solution of the whole program.
    """
    expr = _expression_matrix(expressions, program.builder.n)
    true_values = expr @ program.point
    moved = np.zeros(len(expressions), dtype=bool)
    counts_only = _build(space, suppressed, rule, layers, hidden_totals, [], fix_counts=False)
    hidden = np.flatnonzero(suppressed)
    truth = space.values.astype(float)
    builder = counts_only.builder
    # |n - truth| through two non-negative parts per hidden count, so the objective is the change.
    up = builder.variables(len(hidden))
    down = builder.variables(len(hidden))
    builder.upper[up] = builder.upper[down] = _INF
    for k, lid in enumerate(hidden.tolist()):
        builder.row([(counts_only.n_var[lid], 1.0), (up[k], -1.0), (down[k], 1.0)], truth[lid], truth[lid])
    solver = _Solver(builder.model(), time_limit)
    cost = np.zeros(builder.n)
    cost[up] = cost[down] = 1.0
    solver.h.changeColsCost(builder.n, np.arange(builder.n, dtype=np.int32), cost)
    solver.h.setOptionValue("mip_rel_gap", 0.0)
    groups = _measure_groups(layers)
    for i in range(len(expressions)):
        if moved[i] or expr[i, program.n_var].nnz == 0:
            continue
        row = sp.csr_matrix(expr[i][:, program.n_var])
        padded = sp.hstack([row, sp.csr_matrix((1, builder.n - row.shape[1]))]).tocsr()
        for low, high in ((-_INF, true_values[i] - 1), (true_values[i] + 1, _INF)):
            changed = solver.probe(padded, low, high)
            if changed is None:
                continue
            counts = changed[counts_only.n_var]
            point = _complete(space, suppressed, rule, layers, groups, counts, program, time_limit, result)
            if point is not None:
                sink.keep(point)
                moved |= np.abs(expr @ point - true_values) > 0.5
                break
    result.solves += solver.solves
    result.unresolved_by_time += solver.timeouts
    return moved


def _complete(space, suppressed, rule, layers, groups, counts, program, time_limit, result):
    """A whole-program solution with these counts, or None if some measure cannot follow."""
    point = program.point.copy()
    point[program.n_var] = counts
    for group in groups:
        part = _build(space, suppressed, rule, layers, (), group, fix_counts=True, counts=counts)
        if np.any(part.point[: len(counts)] != counts):
            return None
        # The true measure values may still fit; if not, ask the solver.
        unmet = _unmet(part.builder, part.point)
        if len(unmet):
            solver = _Solver(part.builder.model(), time_limit)
            sample = solver.search_near(unmet, part.point)
            result.solves += solver.solves
            result.unresolved_by_time += solver.timeouts
            if sample is None:
                return None
            part.point = sample
        for index in group:
            m_part, y_part = part.layer_vars[index]
            m_all, y_all = program.layer_vars[index]
            point[m_all] = part.point[m_part]
            point[y_all] = part.point[y_part]
    return point


def _unmet(builder: "_Program", point: np.ndarray) -> np.ndarray:
    """The variables of every row and bound the point does not satisfy (none: the point fits)."""
    outside = (point < builder.lower - 1e-9) | (point > builder.upper + 1e-9)
    matrix = builder.matrix()
    activity = matrix @ point
    broken = (activity < np.array(builder.row_lower) - 1e-9) | (activity > np.array(builder.row_upper) + 1e-9)
    outside |= np.asarray(abs(matrix[np.flatnonzero(broken)]).sum(axis=0)).ravel() > 0
    return np.flatnonzero(outside)


def _measure_groups(layers: list[LayerView]) -> list[list[int]]:
    """Each measure over the cohort with the comparisons that contain it."""
    groups: dict[int, list[int]] = {}
    for index, layer in enumerate(layers):
        root = layer.within[0] if layer.within is not None else index
        groups.setdefault(root, []).append(index)
    return list(groups.values())


@dataclass
class _Built:
    builder: "_Program"
    n_var: np.ndarray
    layer_vars: dict[int, tuple[np.ndarray, np.ndarray]]
    point: np.ndarray


def _build(space, suppressed, rule, layers, hidden_totals, include, *, fix_counts: bool, counts=None) -> _Built:
    builder = _Program()
    n_var = builder.variables(space.n_logical)
    values = space.values.astype(float) if counts is None else np.asarray(counts, dtype=float)
    # Bounds the integer program needs; every true value lies within them (district comparisons
    # count far more students than the cohort's cells).
    largest = max([int(space.values.max(initial=0))] + [int(layers[i].denominators.max(initial=0)) for i in include])
    cap = float(max(1, largest)) * 4 + 1000
    truth_counts = space.values.astype(float)
    if fix_counts:
        builder.lower[n_var] = builder.upper[n_var] = values
    else:
        marks_positive = not rule.suppress_zeros
        builder.lower[n_var] = np.where(suppressed, 1.0 if marks_positive else 0.0, truth_counts)
        builder.upper[n_var] = np.where(suppressed, cap, truth_counts)
        _additivity(builder, space, n_var)
    truth = [values]
    layer_vars = {}
    for index in include:
        layer = layers[index]
        m_var = builder.variables(layer.space.n_logical)
        y_var = builder.variables(layer.space.n_logical)
        builder.upper[m_var] = cap
        builder.upper[y_var] = cap
        truth += [layer.denominators.astype(float), layer.numerators.astype(float)]
        layer_vars[index] = (m_var, y_var)
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
    for index in layer_vars:
        layer = layers[index]
        if layer.within is None or layer.within[0] not in layer_vars:
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
    return _Built(builder, n_var, layer_vars, np.concatenate(truth))


def _count_steps(space, suppressed, layers, program: _Built) -> list[list[tuple[int, float]]]:
    """One student moved between two hidden groups, carried through every measure.

    The student takes their place in each measure's denominator and, in a second variant,
    their outcome too; the feasibility check keeps only steps every constraint allows.
    """
    where = []
    for index, (m_var, y_var) in program.layer_vars.items():
        lookup = {int(c): lid for lid, c in enumerate(layers[index].count_lid) if c >= 0}
        where.append((lookup, m_var, y_var))
    steps = []
    for parents, children, _ in space.equations():
        for parent, row in zip(parents.tolist(), children.tolist()):
            hidden = [c for c in row if suppressed[c]]
            pairs = [(a, b, 1.0, -1.0) for i, a in enumerate(hidden) for b in hidden[i + 1:]]
            if suppressed[parent]:
                pairs += [(parent, c, 1.0, 1.0) for c in hidden]
            for a, b, da, db in pairs:
                for sign in (1.0, -1.0):
                    for with_outcome in (False, True):
                        step = [(program.n_var[a], sign * da), (program.n_var[b], sign * db)]
                        for lookup, m_var, y_var in where:
                            for cell, d in ((a, da), (b, db)):
                                if cell in lookup:
                                    step.append((m_var[lookup[cell]], sign * d))
                                    if with_outcome:
                                        step.append((y_var[lookup[cell]], sign * d))
                        steps.append(step)
    return steps


def _settle(program: _Built, expressions, time_limit: float, result: ReleaseAuditResult,
            extra_steps: list[list[tuple[int, float]]] = (), *, sink: _Sink | None = None) -> np.ndarray:
    """Which of the quantities two feasible integer points show taking different values."""
    moved = np.zeros(len(expressions), dtype=bool)
    if not expressions:
        return moved
    builder = program.builder
    expr = _expression_matrix(expressions, builder.n)
    true_values = expr @ program.point
    moved |= _local_moves(builder, program.point, expr, true_values, extra_steps)
    if moved.all():
        return moved
    solver = _Solver(builder.model(), time_limit)
    # With several quantities still open, two aggregate probes first: any solution with their
    # sum below (then above) its true value moves many of them at once. The open ones only: a
    # sum over quantities already settled would ask the solver for nothing new, at a price; and
    # near the truth only, as a shortcut (in the whole program they could take many seconds).
    still_open = np.flatnonzero(~moved)
    if len(still_open) >= _AGGREGATE_FROM:
        total = sp.csr_matrix(expr[still_open].sum(axis=0))
        true_sum = float(true_values[still_open].sum())
        for low, high in ((-_INF, true_sum - 1), (true_sum + 1, _INF)):
            if moved.all():
                break
            sample = solver.probe(total, low, high, near=program.point, whole=False)
            if sample is not None:
                if sink is not None:
                    sink.keep(sample)
                moved |= np.abs(expr @ sample - true_values) > 0.5
    for i in range(len(expressions)):
        # Both directions near the truth first; the whole program (where proving a direction
        # impossible can take seconds) only when neither is found there.
        for whole in (False, True):
            if moved[i]:
                break
            for low, high in ((-_INF, true_values[i] - 1), (true_values[i] + 1, _INF)):
                sample = solver.probe(expr.getrow(i), low, high, near=program.point, whole=whole)
                if sample is not None:
                    if sink is not None:
                        sink.keep(sample)
                    moved |= np.abs(expr @ sample - true_values) > 0.5
                    break
    result.solves += solver.solves
    result.unresolved_by_time += solver.timeouts
    return moved


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

    def matrix(self) -> sp.csr_matrix:
        """The rows' coefficients as a sparse matrix (rows x variables)."""
        if self.entries:
            r, c, v = (np.array(x) for x in zip(*self.entries))
        else:
            r = c = np.zeros(0, dtype=int)
            v = np.zeros(0)
        return sp.csr_matrix((v.astype(float), (r.astype(int), c.astype(int))), shape=(len(self.row_lower), self.n))

    def checker(self):
        """An exact test of a point against every bound and row (integrality is the caller's)."""
        lower, upper = self.lower.copy(), self.upper.copy()
        row_lower, row_upper = np.array(self.row_lower, dtype=float), np.array(self.row_upper, dtype=float)
        matrix = self.matrix()

        def fits(point: np.ndarray) -> bool:
            if np.any(point < lower - 1e-9) or np.any(point > upper + 1e-9):
                return False
            activity = matrix @ point
            return bool(np.all(activity >= row_lower - 1e-9) and np.all(activity <= row_upper + 1e-9))

        return fits

    def model(self) -> highspy.HighsLp:
        lp = highspy.HighsLp()
        lp.num_col_ = self.n
        lp.num_row_ = len(self.row_lower)
        lp.col_cost_ = np.zeros(self.n)
        lp.col_lower_ = self.lower
        lp.col_upper_ = self.upper
        lp.row_lower_ = np.array(self.row_lower, dtype=float)
        lp.row_upper_ = np.array(self.row_upper, dtype=float)
        csc = self.matrix().tocsc()
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


def _local_moves(builder: "_Program", point: np.ndarray, expr: sp.csr_matrix, true_values: np.ndarray,
                 extra_steps=()) -> np.ndarray:
    """Quantities moved by one-student steps from the true release that keep every constraint.

    A step trades one unit between two children of an equation, or adds one to a parent and one
    of its children. Most hidden rates of a one-way table move this way, without a solver.
    """
    n_rows = len(builder.row_lower)
    matrix = builder.matrix()
    row_lo = np.array(builder.row_lower)
    row_hi = np.array(builder.row_upper)
    activity = matrix @ point
    columns: list[tuple[int, int, float, float]] = []
    for row in np.flatnonzero(row_lo == row_hi):
        start, end = matrix.indptr[row], matrix.indptr[row + 1]
        vars_, coefs = matrix.indices[start:end], matrix.data[start:end]
        parents = vars_[coefs > 0]
        children = vars_[coefs < 0]
        free = lambda x: builder.upper[x] > builder.lower[x]
        kids = [k for k in children.tolist() if free(k)]
        for i, a in enumerate(kids):
            for b in kids[i + 1 :]:
                columns += [(a, b, 1.0, -1.0), (a, b, -1.0, 1.0)]
        for p in parents.tolist():
            if free(p):
                for k in kids:
                    columns += [(p, k, 1.0, 1.0), (p, k, -1.0, -1.0)]
    moved = np.zeros(len(true_values), dtype=bool)
    all_steps = [[(a, da), (b, db)] for a, b, da, db in dict.fromkeys(columns)] + [list(s) for s in extra_steps]
    if not all_steps:
        return moved
    entries = [(var, k, d) for k, step in enumerate(all_steps) for var, d in step]
    rr, kk, dd = (np.array(x) for x in zip(*entries))
    steps = sp.csc_matrix((dd.astype(float), (rr.astype(int), kk.astype(int))), shape=(builder.n, len(all_steps)))
    delta = (matrix @ steps).toarray() if n_rows else np.zeros((0, len(all_steps)))
    new_activity = activity[:, None] + delta
    rows_ok = np.all((new_activity >= row_lo[:, None] - 1e-9) & (new_activity <= row_hi[:, None] + 1e-9), axis=0)
    moved_to = point[:, None] + steps.toarray()
    bounds_ok = np.all((moved_to >= builder.lower[:, None] - 1e-9) & (moved_to <= builder.upper[:, None] + 1e-9), axis=0)
    good = np.flatnonzero(rows_ok & bounds_ok)
    if len(good):
        change = expr @ steps[:, good]
        moved = np.asarray(np.abs(change).max(axis=1).todense()).ravel() > 0.5
    return moved


def _targets(space, suppressed, rule, layers, program: _Built, *, counts: bool, only: set | None = None,
             skip: set = frozenset()):
    """Protected quantities of the counts (if asked) and of the layers in the program.

    only: restrict layer quantities to these (layer, lid, what) triples; skip: leave these out
    (counts as (None, lid, "count")).
    """
    targets: list[Target] = []
    expressions: list[tuple[np.ndarray, np.ndarray]] = []
    n_var = program.n_var
    if counts:
        for lid in np.flatnonzero(suppressed).tolist():
            if (None, lid, "count") in skip:
                continue
            targets.append(Target(space.describe(lid), None, lid, "count"))
            expressions.append((np.array([n_var[lid]]), np.array([1.0])))
    for index, (m_var, y_var) in program.layer_vars.items():
        layer = layers[index]
        for lid, shown in enumerate(layer.displays):
            m = int(layer.denominators[lid])
            if shown.state not in (HIDDEN, CODED) or layer.documented_zero[lid]:
                continue
            where = f"{layer.name}, {layer.space.describe(lid)}"
            count = layer.count_lid[lid]
            hidden_group = (count >= 0 and suppressed[count]) or rule.is_small(m)
            quantities = []
            if m > 0:
                quantities += [("numerator", [y_var[lid]], [1.0]), ("complement", [m_var[lid], y_var[lid]], [1.0, -1.0])]
            if shown.state == HIDDEN and hidden_group and not layer.is_group:
                quantities.append(("denominator", [m_var[lid]], [1.0]))
            for what, index_vars, coef in quantities:
                if (only is not None and (index, lid, what) not in only) or (index, lid, what) in skip:
                    continue
                targets.append(Target(where, index, lid, what))
                expressions.append((np.array(index_vars), np.array(coef)))
    return targets, expressions


class _Solver:
    """One HiGHS integer model; a probe bounds one protected quantity away from its true value.

    Integer points of these programs can take the whole program seconds to find (rates shown to a
    tenth of a percent are narrow ratio constraints). So a search first lets only the variables
    near the quantity move, the others held at a point known to satisfy their constraints (the
    truth): a small program that solves at once. Whatever it finds satisfies the whole program;
    only when nothing is found near does the whole program decide.
    """

    def __init__(self, model: highspy.HighsLp, time_limit: float, hold: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        self.h = quiet_highs()
        self.time_limit = float(time_limit)
        self.h.setOptionValue("time_limit", self.time_limit)
        self.h.setOptionValue("mip_rel_gap", 1.0)  # any feasible point will do
        self.h.passModel(model)
        self.lower = np.asarray(model.col_lower_, dtype=float).copy()
        self.upper = np.asarray(model.col_upper_, dtype=float).copy()
        if hold is not None:  # these variables at these values
            columns, values = hold
            self.h.changeColsBounds(len(columns), columns.astype(np.int32), values, values)
            self.lower[columns] = self.upper[columns] = values
        self.base_rows = model.num_row_
        self.n = model.num_col_
        self.model = model
        self.solves = 0
        self.timeouts = 0
        self.probe_row = None

    @functools.cached_property
    def links(self) -> sp.csr_matrix:
        """Which variables share a row (absolute coefficients), built when a search near a point
        first needs it."""
        a = self.model.a_matrix_
        return abs(sp.csc_matrix((np.asarray(a.value_, dtype=float), np.asarray(a.index_), np.asarray(a.start_)),
                                 shape=(self.model.num_row_, self.model.num_col_))).tocsr()

    def _run(self, count_timeout: bool = True) -> np.ndarray | None:
        self.h.run()
        self.solves += 1
        status = self.h.getModelStatus()
        info = self.h.getInfo()
        if status == highspy.HighsModelStatus.kTimeLimit and count_timeout:
            self.timeouts += 1
        if info.primal_solution_status == 2:  # a feasible solution exists
            return np.round(np.asarray(self.h.getSolution().col_value))
        return None

    def probe(self, row: sp.csr_matrix, low: float, high: float, near: np.ndarray | None = None,
              whole: bool = True) -> np.ndarray | None:
        """A feasible point with low <= row . x <= high, or None.

        near: a point satisfying every constraint but this one; the search starts around it, and
        goes on to the whole program only if `whole`."""
        if self.probe_row is not None:
            self.h.deleteRows(1, np.array([self.probe_row], dtype=np.int32))
        self.h.addRow(low, high, len(row.indices), row.indices.astype(np.int32), row.data.astype(float))
        self.probe_row = self.base_rows
        if near is None:
            return self._run()
        return self.search_near(row.indices, near, whole)

    def search_near(self, anchor: np.ndarray, point: np.ndarray, whole: bool = True) -> np.ndarray | None:
        """A feasible point, found first among those that change only variables near `anchor`
        (others at `point`'s values), then (if `whole`) in the whole program."""
        reach = np.zeros(self.n, dtype=bool)
        reach[np.asarray(anchor, dtype=np.int64)] = True
        for _ in range(_NEAR_STEPS):
            rows = self.links @ reach.astype(float) > 0
            wider = reach | (self.links.T @ rows.astype(float) > 0)
            if wider.all() or np.array_equal(wider, reach):
                break
            reach = wider
            held = np.flatnonzero(~reach).astype(np.int32)
            values = np.clip(point[held], self.lower[held], self.upper[held])
            self.h.changeColsBounds(len(held), held, values, values)
            self.h.setOptionValue("time_limit", min(self.time_limit, _NEAR_TIME_LIMIT))
            try:
                sample = self._run(count_timeout=False)
            finally:
                self.h.changeColsBounds(len(held), held, self.lower[held], self.upper[held])
                self.h.setOptionValue("time_limit", self.time_limit)
            if sample is not None:
                return sample
        return self._run() if whole else None
