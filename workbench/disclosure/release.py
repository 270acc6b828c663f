"""One model of a release year: every table a recipient gets, protected and audited together.

    model = ReleaseModel(rule)
    released = model.add(count_table, [RateInput("course_failure", m, y, ...), ...])

Tables of one school year share groups (the grade 9 row of a by-grade table is the grade 9 margin
of a grade x race table) and students. `add` protects the new table so that the union of
everything released so far stays safe: cells an earlier table published stay published, cells it
hid stay hidden, a group in two tables gets one fate, and the audit (release_audit.py) sees every
table, every rate and every protection summary of the year at once. When the audit finds a
protected quantity pinned, one more rate near it is hidden (or the table's students-hidden
figure is withheld) and the audit runs again; what cannot be made safe raises ReleaseError and
nothing of the table is released.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from workbench.disclosure.protect import protect_tables
from workbench.disclosure.rates import HIDDEN, HIDDEN_DISPLAY, SHOWN, RateDisplay, protect_rates
from workbench.disclosure.release_audit import LayerView, audit_release, definitional_zeros
from workbench.disclosure.rules import SmallGroupRule
from workbench.disclosure.table import CellSpace, CountTable, TableInputError, with_margins
from workbench.errors import InputError


_WITNESSES_KEPT = 400


class ReleaseError(InputError):
    """A table that cannot be released safely beside what the release already holds."""


@dataclass
class RateInput:
    """One measure's counts for the cells of one table (arrays of the table's full shape).

    denominators: the measure's own denominator m per cell (students tested, with marks...);
    numerators: students with the outcome. over_group: m counts students of the table's own
    group (m <= n); False for a comparison over another population (the whole district).
    denominator_is_group: m = n by definition. documented_zero: cells where the definition
    says m = 0 (no course marks before grade 6). within: for a comparison population that
    contains the table's students, the measure over them (its name), so m and y are at least
    theirs.
    """

    measure: str
    denominators: np.ndarray | None
    numerators: np.ndarray | None
    over_group: bool = True
    denominator_is_group: bool = False
    documented_zero: np.ndarray | None = None
    within: str | None = None
    # A comparison population can have groups the table has not (a race absent from the school):
    # its own categories per dimension, arrays shaped by them. None: the table's categories.
    categories: tuple[tuple, ...] | None = None

    def layout(self, table: CountTable) -> CountTable:
        """The measure's cells as a table: m as the counts, y as the outcomes."""
        return CountTable(table.name, table.dims, self.categories or table.categories, self.denominators, self.numerators)


@dataclass
class TableRelease:
    """What one table shows: per cell (the table's flat order) the count and each measure's rate."""

    table: CountTable
    count_shown: np.ndarray  # bool per flat cell
    rates: dict[str, list[RateDisplay]]
    summary: dict


@dataclass
class _Layer:
    tables: dict[str, RateInput] = field(default_factory=dict)  # table name -> its input
    decided: dict[tuple, RateDisplay] = field(default_factory=dict)  # cell key -> display


class ReleaseModel:
    """Everything released for one school year so far, and the protection that covers it."""

    def __init__(self, rule: SmallGroupRule, *, time_limit: float = 10.0, max_rounds: int = 30) -> None:
        self.rule = rule
        self.tables: list[CountTable] = []
        self.count_status: dict[tuple, bool] = {}
        self.layers: dict[str, _Layer] = {}
        self.hidden_totals: dict[str, int | None] = {}
        self.time_limit = time_limit
        self.max_rounds = max_rounds
        # Feasible points of the recipient's program found by earlier audits of this year: each
        # later audit checks them against its larger program before solving anything (None:
        # keep none, every audit starts afresh).
        self.witnesses: list | None = []

    def add(self, table: CountTable, rates: Sequence[RateInput] = ()) -> TableRelease:
        started = time.perf_counter()
        if any(t.name == table.name for t in self.tables):
            raise ReleaseError(f"the release already holds a table named {table.name!r}")
        names = [r.measure for r in rates]
        if len(set(names)) != len(names):
            raise ReleaseError(f"a measure is given twice for table {table.name}")
        for rate in rates:
            _validate(table, rate)
        tables = [*self.tables, table]
        protection = protect_tables(tables, rule=self.rule, intervals="proof", fixed_status=self.count_status)
        if not protection.is_safe:
            raise ReleaseError("the counts could not be proven safe: " + "; ".join(protection.problems[:5]))
        space = protection.space
        suppressed = protection.suppressed.copy()
        count_lid = {key: lid for lid, key in enumerate(space.keys)}
        layers = {name: _Layer(dict(layer.tables), dict(layer.decided)) for name, layer in self.layers.items()}
        for rate in rates:
            layers.setdefault(rate.measure, _Layer()).tables[table.name] = rate
        views, order = self._views(layers, tables, suppressed, count_lid)
        new_inner = _inner_lids(space, len(tables) - 1)
        hidden_total: int | None = int(space.values[new_inner[suppressed[new_inner]]].sum())
        withheld = False
        rounds = 0
        while True:
            rounds += 1
            totals = self._hidden_totals(space, tables, suppressed, table.name, hidden_total)
            audit = audit_release(space, suppressed, self.rule, views, totals, time_limit=self.time_limit,
                                  witnesses=self.witnesses)
            if self.witnesses is not None:
                del self.witnesses[:-_WITNESSES_KEPT]
            if audit.safe:
                break
            if rounds >= self.max_rounds or not self._fix(audit.failing, views, order, layers, space, suppressed):
                if hidden_total is not None and any(t.layer is None for t in audit.failing):
                    hidden_total, withheld = None, True
                    continue
                where = "; ".join(f"{t.description} ({t.what})" for t in audit.failing[:5])
                raise ReleaseError(f"table {table.name} cannot be released safely with this release's other tables: {where} pinned")
        # Commit: every decision of this table becomes part of the release.
        self.tables = tables
        for lid, key in enumerate(space.keys):
            self.count_status[key] = not suppressed[lid]
        for view, name in zip(views, order):
            for lid, key in enumerate(view.space.keys):
                layers[name].decided[key] = view.displays[lid]
        self.layers = layers
        self.hidden_totals[table.name] = hidden_total
        offset = int(space.offsets[-1])
        flat_lids = space.logical[offset : offset + table.size]
        shown_rates = {}
        for rate in rates:
            view = views[order.index(rate.measure)]
            lookup = {key: view.displays[lid] for lid, key in enumerate(view.space.keys)}
            shown_rates[rate.measure] = [lookup.get(space.keys[lid], HIDDEN_DISPLAY) for lid in flat_lids]
        hidden_here = suppressed[flat_lids]
        inner_here = ~table.total_mask().any(axis=1)
        rate_cells = sum(len(v) for v in shown_rates.values())
        rates_hidden = sum(
            1 for lid_pos, lid in enumerate(flat_lids) for v in shown_rates.values()
            if v[lid_pos].state == HIDDEN and not hidden_here[lid_pos]
        )
        summary = {
            "cells": int(table.size),
            "suppressed": int(hidden_here.sum()),
            "suppressed_inner_cells": int((hidden_here & inner_here).sum()),
            "students_hidden": hidden_total,
            "rates": int(rate_cells),
            "rates_hidden_beside_published_counts": int(rates_hidden),
            "audit_safe": True,
            "audit": {
                "tables_in_release_year": len(tables),
                "protected_quantities": audit.targets,
                "integer_programs": audit.solves,
                "rounds": rounds,
                "seconds": round(time.perf_counter() - started, 3),
            },
        }
        if withheld:
            summary["students_hidden_withheld"] = True
        return TableRelease(table, ~hidden_here, shown_rates, summary)

    # -- building blocks ---------------------------------------------------------------------
    def _views(self, layers, tables, suppressed, count_lid):
        views: list[LayerView] = []
        order: list[str] = []
        by_name = {t.name: t for t in tables}
        for name, layer in layers.items():
            members = [by_name[t] for t in layer.tables]
            layer_tables = []
            for t in members:
                layer_tables.append(layer.tables[t.name].layout(t))
            try:
                layer_space = CellSpace(layer_tables)
            except TableInputError as exc:
                raise ReleaseError(f"measure {name}: {exc}") from exc
            first = next(iter(layer.tables.values()))
            zero = np.zeros(layer_space.n_logical, dtype=bool)
            for t, offset in zip(layer_tables, layer_space.offsets):
                rate = layer.tables[t.name]
                if rate.documented_zero is not None:
                    zero[layer_space.logical[offset : offset + t.size][rate.documented_zero.reshape(-1)]] = True
            zero = definitional_zeros(layer_space, zero)
            links = np.array([count_lid.get(key, -1) for key in layer_space.keys], dtype=np.int64)
            group_hidden = suppressed[links] if first.over_group else None
            if group_hidden is not None:
                group_hidden = np.where(links >= 0, group_hidden, True)
            fixed = {lid: layer.decided[key] for lid, key in enumerate(layer_space.keys) if key in layer.decided}
            for lid, key in enumerate(layer_space.keys):
                if key not in count_lid and lid not in fixed:
                    fixed[lid] = HIDDEN_DISPLAY  # a group no table of the release shows
            displays = protect_rates(
                layer_space, layer_space.values, layer_space.outcomes, self.rule,
                count_suppressed=group_hidden, fixed=fixed,
            )
            views.append(LayerView(
                name=name, space=layer_space, count_lid=links if first.over_group else np.full(len(links), -1),
                denominators=layer_space.values, numerators=layer_space.outcomes, displays=displays,
                over_group=first.over_group, is_group=first.denominator_is_group, documented_zero=zero,
            ))
            order.append(name)
        for index, name in enumerate(order):
            within = next(iter(layers[name].tables.values())).within
            if within is not None and within in order:
                other = views[order.index(within)]
                lookup = {key: lid for lid, key in enumerate(other.space.keys)}
                mapping = np.array([lookup.get(key, -1) for key in views[index].space.keys], dtype=np.int64)
                views[index].within = (order.index(within), mapping)
        return views, order

    def _hidden_totals(self, space, tables, suppressed, new_name, new_total):
        totals = []
        for index, t in enumerate(tables):
            total = new_total if t.name == new_name else self.hidden_totals.get(t.name)
            if total is None:
                continue
            lids = _inner_lids(space, index)
            totals.append((lids[suppressed[lids]], total))
        return totals

    def _fix(self, failing, views, order, layers, space, suppressed) -> bool:
        """Hide one more shown rate of this table next to each pinned quantity; False if none is left."""
        changed = False
        for target in failing:
            candidates = range(len(views)) if target.layer is None else [target.layer]
            for index in candidates:
                view = views[index]
                if target.layer is None:
                    key = space.keys[target.lid]
                    lookup = {k: lid for lid, k in enumerate(view.space.keys)}
                    if key not in lookup:
                        continue
                    anchor = lookup[key]
                else:
                    anchor = target.lid
                decided = layers[order[index]].decided
                pick = _cheapest_neighbour(view, anchor, lambda lid: view.space.keys[lid] not in decided)
                if pick is not None:
                    view.displays[pick] = HIDDEN_DISPLAY
                    changed = True
        return changed


def _cheapest_neighbour(view: LayerView, anchor: int, free) -> int | None:
    """The shown rate with the smallest denominator in an equation with `anchor`, looking further out if needed."""
    frontier = {anchor}
    reached = set(frontier)
    blocks = [np.concatenate([p[:, None], c], axis=1) for p, c, _ in view.space.equations()]
    for _ in range(4):
        best = None
        nxt = set()
        for terms in blocks:
            hit = np.isin(terms, list(frontier)).any(axis=1)
            for row in terms[hit].tolist():
                for cell in row:
                    if view.displays[cell].state == SHOWN and free(cell):
                        if best is None or view.denominators[cell] < view.denominators[best]:
                            best = cell
                    elif cell not in reached:
                        nxt.add(cell)
        if best is not None:
            return best
        if not nxt:
            return None
        reached |= nxt
        frontier = nxt
    return None


def _inner_lids(space: CellSpace, index: int) -> np.ndarray:
    table = space.tables[index]
    offset = int(space.offsets[index])
    return space.logical[offset + table.inner_flat_ids()]


def _validate(table: CountTable, rate: RateInput) -> None:
    """The counts behind a rate must be whole, additive and consistent with the table's counts."""
    where = f"table {table.name}, measure {rate.measure}"
    layout_shape = tuple(len(c) + 1 for c in rate.categories) if rate.categories else table.shape
    if rate.categories is not None and rate.over_group:
        raise ReleaseError(f"{where}: a rate over the table's own groups uses the table's categories")
    if rate.denominators is None:
        raise ReleaseError(f"{where}: a rate needs its denominator (the students the measure is over)")
    if rate.numerators is None:
        raise ReleaseError(f"{where}: a rate needs its numerator (the students with the outcome)")
    for label, array in (("denominator", rate.denominators), ("numerator", rate.numerators)):
        if array.shape != layout_shape:
            raise ReleaseError(f"{where}: {label}s have shape {array.shape}, expected {layout_shape}")
        if (array < 0).any():
            raise ReleaseError(f"{where}: a negative {label}")
        inner = array[tuple(slice(0, n - 1) for n in layout_shape)]
        if not np.array_equal(with_margins(inner), array):
            raise ReleaseError(f"{where}: the {label}s of the totals are not the sums of their groups")
    y, m, n = rate.numerators, rate.denominators, table.counts
    shaped = rate.layout(table)
    if (y > m).any():
        raise ReleaseError(f"{where}: more students with the outcome than in the measure at {_first(shaped, y > m)}")
    if rate.over_group and (m > n).any():
        raise ReleaseError(f"{where}: more students in the measure than in the group at {_first(table, m > n)}")
    if rate.denominator_is_group and not np.array_equal(m, n):
        raise ReleaseError(f"{where}: the measure is over every student of the group, but its denominator differs at {_first(table, m != n)}")
    if rate.documented_zero is not None:
        if rate.documented_zero.shape != layout_shape:
            raise ReleaseError(f"{where}: documented_zero has the wrong shape")
        if (m[rate.documented_zero] != 0).any():
            raise ReleaseError(f"{where}: students counted where the measure's definition has none, at {_first(shaped, rate.documented_zero & (m != 0))}")


def _first(table: CountTable, mask: np.ndarray) -> str:
    return table.describe_cell(int(np.flatnonzero(mask.reshape(-1))[0]))
