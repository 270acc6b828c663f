"""Table protection: primary rule, complementary suppression, and the attacker's audit, looped.

    protect_tables(frame, dims, count_col, rule) -> ProtectionResult

1. Primary cells from the rule (group size, zeros, numerator).
2. Complementary cells by greedy elimination (secondary.py): no primary, and no small group of
   primaries hidden together in one equation, is left linearly determined by what is published.
3. The LP audit (audit.py) bounds every suppressed cell. Linear algebra ignores non-negativity,
   so the audit can still find a cell pinned (say, its siblings are all published zeros) or an
   interval narrower than the rule's protection width. For each such cell we suppress one more
   cell of one of its equations, the cheapest, and go back to step 2 with it required too and
   every cell hidden so far kept hidden; the audit then only revisits what is still open.
   A secondary the audit finds exactly determined is published at the end: the attacker knows
   it already, so publishing it changes nothing.
4. Complementary cells the protection turns out not to need are published (prune.py).
5. The result carries every cell with its status, reason and interval; `is_safe` is true only
   when the final audit proves every requirement.
"""

from __future__ import annotations

import time
from functools import partial
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from workbench.disclosure.audit import AuditResult, Objective, build_system, solve_intervals
from workbench.disclosure.primary import primary_cells
from workbench.disclosure.prune import drop_redundant
from workbench.disclosure.rules import SmallGroupRule
from workbench.disclosure.secondary import (
    HiddenGroup,
    choose_secondary,
    default_costs,
    hidden_groups,
    students_hidden_costs,
)
from workbench.disclosure.table import CellSpace, CountTable, TableInputError

PUBLISHED, PRIMARY, SECONDARY = "published", "primary", "secondary"
# Dropping redundant complementary cells solves a few LPs per hidden cell over the whole
# pattern: well under a second for the tables a request releases, tens of seconds for a 3-way
# district table, so by default it runs only on small patterns (pass prune=True to force it).
PRUNE_AUTO_LIMIT = 300
PRUNE_MAX_SOLVES = 5000


@dataclass
class ProtectionResult:
    space: CellSpace
    rule: SmallGroupRule
    status: np.ndarray  # logical id -> "published" | "primary" | "secondary"
    reasons: dict[int, str]
    audit: AuditResult
    groups: list[HiddenGroup]
    interval_low: np.ndarray  # logical id -> attacker's integer minimum (NaN when published)
    interval_high: np.ndarray
    outcome_low: np.ndarray | None
    outcome_high: np.ndarray | None
    problems: list[str]
    rounds: int
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def is_safe(self) -> bool:
        return not self.problems

    @property
    def suppressed(self) -> np.ndarray:
        return self.status != PUBLISHED

    def table(self, which: int | str = 0) -> pd.DataFrame:
        """One table in long format: dimension columns (category or Total), value, status, reason, interval."""
        index = which if isinstance(which, int) else [t.name for t in self.space.tables].index(which)
        table = self.space.tables[index]
        lids = self.space.logical[self.space.offsets[index] : self.space.offsets[index] + table.size]
        frame = table.labels()
        suppressed = self.suppressed[lids]
        frame["value"] = pd.array(np.where(suppressed, 0, self.space.values[lids]), dtype="Int64")
        frame.loc[suppressed, "value"] = pd.NA
        if self.space.outcomes is not None:
            frame["outcome"] = pd.array(self.space.outcomes[lids], dtype="Int64")
            frame.loc[suppressed, "outcome"] = pd.NA
        frame["status"] = self.status[lids]
        frame["reason"] = [self.reasons.get(int(lid), "") for lid in lids]
        frame["interval_low"] = pd.array(self.interval_low[lids], dtype="Int64")
        frame["interval_high"] = pd.array(_finite_or_na(self.interval_high[lids]), dtype="Int64")
        if self.outcome_low is not None:
            frame["outcome_low"] = pd.array(self.outcome_low[lids], dtype="Int64")
            frame["outcome_high"] = pd.array(_finite_or_na(self.outcome_high[lids]), dtype="Int64")
        return frame

    @property
    def cells(self) -> pd.DataFrame:
        """Every cell of every table (a `table` column first when several were protected jointly)."""
        if len(self.space.tables) == 1:
            return self.table(0)
        frames = []
        for i, table in enumerate(self.space.tables):
            frame = self.table(i)
            frame.insert(0, "table", table.name)
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)

    @property
    def explanations(self) -> pd.DataFrame:
        """One row per suppressed cell: which rule made it primary, or which cells it protects."""
        rows = []
        for lid in np.flatnonzero(self.suppressed):
            rows.append(
                {"cell": self.space.describe(int(lid)), "status": self.status[lid], "reason": self.reasons[int(lid)]}
            )
        return pd.DataFrame(rows, columns=["cell", "status", "reason"])

    def summary(self) -> dict:
        status = self.status
        return {
            "cells": int(len(status)),
            "primary": int((status == PRIMARY).sum()),
            "secondary": int((status == SECONDARY).sum()),
            "published": int((status == PUBLISHED).sum()),
            "students_hidden_in_inner_cells": int(
                self.space.values[(status != PUBLISHED) & self.space.is_inner_somewhere].sum()
            ),
            "suppressed": int((status != PUBLISHED).sum()),
            "exactly_disclosed": int(
                np.sum((status != PUBLISHED) & (self.interval_low == self.interval_high))
            ),
            "hidden_sum_groups": len(self.groups),
            "safe": self.is_safe,
            "problems": list(self.problems),
            "rounds": self.rounds,
            "lp_count": self.audit.lp_count,
            "seconds": dict(self.timings),
        }


def _finite_or_na(values: np.ndarray) -> list:
    return [None if not np.isfinite(v) else int(v) for v in values]


def protect_tables(
    tables: pd.DataFrame | CountTable | Sequence[CountTable],
    dims: Sequence[str] | None = None,
    count_col: str | None = None,
    rule: SmallGroupRule | None = None,
    *,
    outcome_col: str | None = None,
    margin_cost_factor: float = 3.0,
    costs: np.ndarray | Literal["students", "margins"] = "students",
    max_rounds: int = 25,
    intervals: Literal["exact", "proof"] = "exact",
    fixed_status: dict[tuple, bool] | None = None,
    prune: bool | None = None,
) -> ProtectionResult:
    """Protect one table (a long frame, one row per inner cell) or several released together.

    intervals="exact" computes every suppressed cell's attacker interval exactly; "proof" stops
    per cell once the audit has proven the required width, and then reports the proven part of
    the interval (the attacker's true interval contains it). Safety is proven either way.

    prune: afterwards, publish the complementary cells the protection turns out not to need
    (prune.py); None does so when at most PRUNE_AUTO_LIMIT cells are hidden.
    """
    rule = rule or SmallGroupRule()
    if isinstance(tables, pd.DataFrame):
        if dims is None or count_col is None:
            raise ValueError("a frame needs dims and count_col")
        tables = [CountTable.from_frame(tables, dims, count_col, outcome_col=outcome_col)]
    elif isinstance(tables, CountTable):
        tables = [tables]
    started = time.perf_counter()
    space = CellSpace(list(tables))
    timings: dict[str, float] = {}
    primary, reasons = primary_cells(space, rule)
    groups = hidden_groups(space, primary, rule.is_small) if rule.protect_hidden_sums else []
    if not rule.suppress_zeros:
        # A mark holds at least one student, so small cells of one student each, hidden alone
        # together in a published equation, are pinned at 1: their sum must stay unknown too.
        known = {g.members for g in groups}
        groups += [g for g in hidden_groups(space, primary, None) if g.members not in known]
    if isinstance(costs, str) or costs is None:
        # "students": hide as few students as possible, then as few cells (margins are cheap);
        # "margins": the earlier model, which kept margins and hid larger inner cells instead.
        costs = default_costs(space, margin_cost_factor) if costs == "margins" else students_hidden_costs(space)
    timings["setup"] = time.perf_counter() - started
    must_protect = primary.copy()
    fixed_published = np.zeros(space.n_logical, dtype=bool)
    extra_reasons: dict[int, str] = {}
    for lid, key in enumerate(space.keys):
        shown = (fixed_status or {}).get(key)
        if shown is None:
            continue
        if shown and not primary[lid]:
            fixed_published[lid] = True
        elif not shown:
            must_protect[lid] = True
            if not primary[lid]:
                extra_reasons[lid] = "secondary: suppressed in an earlier table of this release"
        else:
            raise TableInputError(f"{space.describe(lid)} was published earlier but is small under this rule")
    published_anyway = np.zeros(space.n_logical, dtype=bool)
    timings["secondary"] = timings["audit"] = 0.0
    required = partial(_required_width, rule, primary)
    marks_positive = not rule.suppress_zeros
    # Every round keeps the cells hidden so far and hides more (a hidden published cell is never
    # zero, so the mark's "at least one" holds at its true value): the attacker's feasible set
    # only grows, what a round proved stays proven, and the next round audits only what is still
    # open (see docs/disclosure.md, "Fix loop").
    results: dict[tuple, tuple[float, float, bool]] = {}
    settled: set[tuple] = set()
    kept: np.ndarray | None = None
    protects: dict[int, list[str]] = {}
    lp_count = 0
    rounds = 0
    while True:
        rounds += 1
        t0 = time.perf_counter()
        choice = choose_secondary(
            space, must_protect, costs=costs, groups=groups,
            published_first=fixed_published, kept_hidden=kept,
        )
        suppressed = choice.suppressed
        t1 = time.perf_counter()
        only = None if kept is None else settled
        audit, objectives = _audit(space, suppressed, groups, required, positive=marks_positive, skip=only)
        lp_count += audit.lp_count
        timings["secondary"] += t1 - t0
        timings["audit"] += time.perf_counter() - t1
        check = _check(space, rule, audit, objectives, primary, must_protect, groups)
        for i, obj in enumerate(objectives):
            results[obj.name] = (audit.low[i], audit.high[i], bool(audit.exact_interval[i]))
        failing_groups = {g.members for g in check.failing_groups}
        unsettled = set(check.failing) | set(check.exact_cells)
        for obj in objectives:
            kind, ref = obj.name
            if groups[ref].members not in failing_groups if kind == "group" else ref not in unsettled:
                settled.add(obj.name)
        for lid, protected in choice.protects.items():
            protects.setdefault(lid, protected)
        fixes = _fixes(space, check.failing, suppressed, primary | fixed_published, costs)
        if not check.failing or rounds >= max_rounds or not fixes:
            # Secondaries the attacker pins exactly protect nothing: publish them. They are fixed
            # in every feasible table, so publishing them changes no other cell's interval.
            published_anyway[[lid for lid in check.exact_cells if not must_protect[lid]]] = True
            suppressed &= ~published_anyway
            problems = [f"{space.describe(lid)}: {what}" for lid, what in check.failing.items()]
            problems += [f"{g.describe(space)}: sum determined" for g in check.failing_groups]
            if check.failing and (not fixes or rounds >= max_rounds):
                problems.append("no further complementary cell could be found" if not fixes else "round limit reached")
            break
        for lid, protected in fixes.items():
            must_protect[lid] = True
            extra_reasons[lid] = f"secondary: protects [{protected}] (LP audit)"
        kept = suppressed.copy()
    if prune is None:
        prune = int(suppressed.sum()) <= PRUNE_AUTO_LIMIT
    if prune and not problems and space.outcomes is None:
        t1 = time.perf_counter()
        widths = np.where(primary, rule.protection_width, 1)
        pruned, proven = drop_redundant(
            space, suppressed, must_protect, widths, groups, positive=marks_positive, max_solves=PRUNE_MAX_SOLVES
        )
        if proven:
            suppressed = pruned
            results.update({name: (lo, hi, False) for name, (lo, hi) in proven.items()})
        timings["prune"] = time.perf_counter() - t1
    audit, objectives = _merged_audit(space, suppressed, groups, results, lp_count)
    if intervals == "exact":
        t1 = time.perf_counter()
        audit, objectives = _audit(space, suppressed, groups, None, positive=marks_positive)
        audit.lp_count += lp_count
        timings["audit"] += time.perf_counter() - t1
    status = np.full(space.n_logical, PUBLISHED, dtype=object)
    status[suppressed] = SECONDARY
    status[primary] = PRIMARY
    all_reasons: dict[int, str] = {}
    for lid in np.flatnonzero(suppressed):
        lid = int(lid)
        if primary[lid]:
            all_reasons[lid] = reasons[lid]
        elif lid in extra_reasons:
            all_reasons[lid] = extra_reasons[lid]
        else:
            all_reasons[lid] = "secondary: protects " + "; ".join(f"[{p}]" for p in protects.get(lid, []))
    low = np.full(space.n_logical, np.nan)
    high = np.full(space.n_logical, np.nan)
    outcome_low = outcome_high = None
    if space.outcomes is not None:
        outcome_low = np.full(space.n_logical, np.nan)
        outcome_high = np.full(space.n_logical, np.nan)
    ilow, ihigh = audit.integer_low, audit.integer_high
    for i, obj in enumerate(objectives):
        kind, lid = obj.name
        if kind == "count":
            low[lid], high[lid] = ilow[i], ihigh[i]
        elif kind == "outcome":
            outcome_low[lid], outcome_high[lid] = ilow[i], ihigh[i]
    timings["total"] = time.perf_counter() - started
    return ProtectionResult(
        space=space,
        rule=rule,
        status=status,
        reasons=all_reasons,
        audit=audit,
        groups=groups,
        interval_low=low,
        interval_high=high,
        outcome_low=outcome_low,
        outcome_high=outcome_high,
        problems=problems,
        rounds=rounds,
        timings=timings,
    )


def _audit(
    space: CellSpace,
    suppressed: np.ndarray,
    groups: Sequence[HiddenGroup],
    required_width: Callable[[tuple], int] | None = None,
    *,
    positive: bool = False,
    skip: set[tuple] | None = None,
) -> tuple[AuditResult, list[Objective]]:
    """The attacker's intervals for every suppressed cell and hidden group, except those in skip."""
    # With zeros published and never complementary, every mark stands for at least one student.
    marked = suppressed if positive else None
    system, var_of = build_system(space, suppressed, space.values, space.outcomes, positive=marked)
    # Redundant equations change no feasible set but tighten interval propagation for free.
    all_equations, _ = build_system(
        space, suppressed, space.values, space.outcomes, one_per_parent=False, positive=marked
    )
    objectives = []
    for lid in np.flatnonzero(suppressed).tolist():
        objectives.append(Objective(("count", lid), np.array([var_of[0, lid]]), np.array([1.0])))
        if space.outcomes is not None:
            objectives.append(Objective(("outcome", lid), np.array([var_of[1, lid]]), np.array([1.0])))
            objectives.append(
                Objective(("complement", lid), np.array([var_of[0, lid], var_of[1, lid]]), np.array([1.0, -1.0]))
            )
    for g, group in enumerate(groups):
        members = np.array(group.members)
        if suppressed[members].all():
            objectives.append(Objective(("group", g), var_of[0, members], np.ones(len(members))))
    if skip:
        objectives = [obj for obj in objectives if obj.name not in skip]
    truth = np.zeros(system.n_vars)
    for m, values in enumerate([space.values] + ([space.outcomes] if space.outcomes is not None else [])):
        ids = np.flatnonzero(var_of[m] >= 0)
        truth[var_of[m, ids]] = values[ids]
    required = None
    if required_width is not None:
        required = np.array([required_width(obj.name) for obj in objectives], dtype=float)
    audit = solve_intervals(
        system, objectives, feasible_point=truth, propagation_system=all_equations, required_width=required
    )
    return audit, objectives


def _merged_audit(space, suppressed, groups, results, lp_count) -> tuple[AuditResult, list[Objective]]:
    """The final pattern's intervals, each from the round that last audited it."""
    names = []
    for lid in np.flatnonzero(suppressed).tolist():
        names.append(("count", lid))
        if space.outcomes is not None:
            names += [("outcome", lid), ("complement", lid)]
    names += [("group", g) for g, group in enumerate(groups) if suppressed[np.array(group.members)].all()]
    objectives = [Objective(name, np.zeros(0, dtype=np.int64), np.zeros(0)) for name in names]
    low = np.array([results[name][0] for name in names], dtype=float)
    high = np.array([results[name][1] for name in names], dtype=float)
    audit = AuditResult(objectives, low, high, lp_count=lp_count)
    audit.exact_interval = np.array([results[name][2] for name in names], dtype=bool)
    return audit, objectives


def _required_width(rule: SmallGroupRule, primary: np.ndarray, name: tuple) -> int:
    kind, ref = name
    if kind == "count" and primary[ref]:
        return rule.protection_width
    return 1


@dataclass
class _Check:
    failing: dict[int, str]
    failing_groups: list[HiddenGroup]
    exact_cells: list[int]


def _check(space, rule, audit, objectives, primary, must_protect, groups) -> _Check:
    """Which requirements the audit disproves, and which plain secondaries it pins exactly."""
    width = audit.width
    failing: dict[int, str] = {}
    failing_groups = []
    per_cell: dict[int, dict[str, tuple[float, float, float]]] = {}
    for i, obj in enumerate(objectives):
        kind, ref = obj.name
        lo, hi = audit.integer_low[i], audit.integer_high[i]
        if kind == "group":
            if width[i] < 1:
                failing_groups.append(groups[ref])
                failing.setdefault(groups[ref].members[0], f"hidden group sum determined ({lo:.0f})")
            continue
        per_cell.setdefault(ref, {})[kind] = (lo, hi, width[i])
    exact_cells = []
    for lid, kinds in per_cell.items():
        lo, hi, count_width = kinds["count"]
        if must_protect[lid]:
            needed = rule.protection_width if primary[lid] else 1
            if count_width < needed:
                failing[lid] = f"interval [{lo:.0f}, {hi:.0f}] narrower than {needed}"
            for kind in ("outcome", "complement"):
                if kind in kinds and kinds[kind][2] < 1:
                    failing[lid] = f"{kind} determined ({kinds[kind][0]:.0f})"
        elif all(w < 1 for _, _, w in kinds.values()):
            exact_cells.append(lid)
        elif count_width < 1:
            failing[lid] = f"count determined ({lo:.0f})"
    return _Check(failing, failing_groups, sorted(exact_cells))


def _fixes(space, failing: dict[int, str], suppressed, primary, costs, max_hops: int = 6) -> dict[int, str]:
    """For each failing cell, the cheapest published non-zero cell in an equation with it.

    When every such equation is already fully hidden (or holds only zeros), look one equation
    further through the suppressed cells, and so on: the new cell then opens a path along which
    the failing cell can move.
    """
    if not failing:
        return {}
    terms_of = [np.concatenate([parents[:, None], children], axis=1) for parents, children, _ in space.equations()]
    open_cell = ~suppressed & (space.values > 0) & ~primary
    picks: dict[int, str] = {}
    for target in failing:
        frontier = {target}
        reached = set(frontier)
        for _ in range(max_hops):
            best = None
            next_frontier = set()
            for terms in terms_of:
                hit = np.isin(terms, list(frontier)).any(axis=1)
                for row in terms[hit]:
                    for cell in row.tolist():
                        if open_cell[cell] and cell not in picks and (best is None or costs[cell] < costs[best]):
                            best = cell
                        if suppressed[cell] and cell not in reached:
                            next_frontier.add(cell)
            if best is not None:
                picks[best] = space.describe(target)
                break
            if not next_frontier:
                break
            reached |= next_frontier
            frontier = next_frontier
    return picks
