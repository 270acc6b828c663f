"""Secondary (complementary) suppression by greedy elimination over the table's free directions.

The idea (after Statistics Norway's Gaussian-elimination suppression, written from scratch here):
an attacker who knows the published cells and the additivity equations can move the true table
only along directions v that change no published cell. A target (a primary cell, or the hidden
sum of a group of small cells) is exactly determined by linear algebra iff every such direction
leaves it unchanged.

We keep a basis of those directions. At the start nothing is published, so the directions are
"change one unknown inner cell": one basis vector per inner cell, touching that cell and every
margin above it. Candidates are then offered for publication in order of decreasing cost (big
margins first, then big cells, small cells last). Publishing a cell c means restricting the
directions to those that leave c unchanged: one Gaussian elimination step on the basis. Before
the step we check whether it would leave some target with no direction at all; a target's row
(its change under each basis vector) vanishes after the step exactly when it is proportional to
c's row. If so, c is not published: it becomes a secondary suppression, explained by the targets
it protects.

Arithmetic is exact, modulo a large prime (the table's coefficients are small integers; a false
"proportional" verdict needs the prime to divide a minor, and would only cost an extra
suppression, while the LP audit checks everything anyway).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from workbench.disclosure.table import CellSpace

_PRIME = 2_147_483_647  # 2^31 - 1


@dataclass
class HiddenGroup:
    """Small cells hidden together in one published equation: their sum must stay unknown."""

    members: tuple[int, ...]  # logical ids
    parent: int  # logical id of the equation's parent
    table: int

    def describe(self, space: CellSpace) -> str:
        return "hidden sum of " + " + ".join(f"[{space.describe(m)}]" for m in self.members)


@dataclass
class SecondaryChoice:
    suppressed: np.ndarray  # logical mask: every suppressed cell (primary, forced or secondary)
    secondary: np.ndarray  # logical mask: the complementary suppressions
    protects: dict[int, list[str]] = field(default_factory=dict)  # secondary lid -> what it protects


class _Directions:
    """Sparse basis of the directions that change no published cell; rows are cells, columns are basis vectors."""

    def __init__(self) -> None:
        self.col: dict[int, dict[int, int]] = {}
        self.row: dict[int, dict[int, int]] = {}

    def add_vector(self, key: int, entries: Iterable[int]) -> None:
        column = {}
        for rid in entries:
            column[rid] = (column.get(rid, 0) + 1) % _PRIME
        column = {rid: c for rid, c in column.items() if c}
        self.col[key] = column
        for rid, c in column.items():
            self.row.setdefault(rid, {})[key] = c

    def add_combination(self, rid: int, parts: Sequence[tuple[int, int]]) -> None:
        """Define row rid as sum(sign * row(part)); used for group sums and shared-cell relations."""
        combined: dict[int, int] = {}
        for part, sign in parts:
            for key, c in self.row.get(part, {}).items():
                combined[key] = (combined.get(key, 0) + sign * c) % _PRIME
        combined = {key: c for key, c in combined.items() if c}
        self.row[rid] = combined
        for key, c in combined.items():
            self.col[key][rid] = c

    def forget(self, rid: int) -> None:
        """Stop tracking row rid. Later steps never read it; a step's verdicts depend only on the
        rows it reads (a candidate's and the targets'), so they stay the same, and eliminations
        then touch fewer entries."""
        for key in self.row.pop(rid, {}):
            del self.col[key][rid]

    def is_free(self, rid: int) -> bool:
        return not self.row.get(rid)

    def determined_by(self, rid: int, targets: set[int]) -> list[int]:
        """Targets whose row would vanish if row rid were restricted to zero."""
        rc = self.row.get(rid)
        if not rc:
            return []
        pivot = min(rc, key=lambda key: len(self.col[key]))
        inverse = pow(rc[pivot], _PRIME - 2, _PRIME)
        length = len(rc)
        hits = []
        for target in self.col[pivot]:
            if target == rid or target not in targets:
                continue
            rt = self.row[target]
            if len(rt) != length:
                continue
            factor = rt[pivot] * inverse % _PRIME
            if all(rt.get(key, 0) == factor * c % _PRIME for key, c in rc.items()):
                hits.append(target)
        return hits

    def restrict(self, rid: int) -> None:
        """Keep only directions that leave row rid unchanged (one elimination step)."""
        rc = self.row.get(rid)
        if not rc:
            return
        cols = self.col
        pivot = min(rc, key=lambda key: len(cols[key]))
        pivot_col = cols.pop(pivot)
        inverse = pow(rc[pivot], _PRIME - 2, _PRIME)
        items = list(pivot_col.items())
        row = self.row
        prime = _PRIME
        for key, c in list(rc.items()):
            if key == pivot:
                continue
            factor = c * inverse % prime
            target_col = cols[key]
            current = target_col.get
            for r, x in items:
                y = (current(r, 0) - factor * x) % prime
                if y:
                    target_col[r] = y
                    row[r][key] = y
                elif r in target_col:
                    del target_col[r]
                    del row[r][key]
        for r in pivot_col:
            del row[r][pivot]


def hidden_groups(space: CellSpace, primary: np.ndarray, is_small) -> list[HiddenGroup]:
    """Equations whose suppressed children would all be primary and add up to a small positive sum.

    Any other hidden child is a non-primary non-zero cell, itself at least the threshold, so a
    group with one can never sum to a small number; only all-primary groups need protecting.
    is_small None: the groups of cells of one student each (a sum equal to the member count).
    """
    groups = []
    seen = set()
    values = space.values
    for parents, children, t in space.equations():
        if children.shape[1] < 2:
            continue
        child_primary = primary[children]
        candidates = (child_primary.sum(axis=1) >= 2) & ~primary[parents]
        for i in np.flatnonzero(candidates):
            members = children[i][child_primary[i]]
            total = int(values[members].sum())
            if total > 0 and (total == len(members) if is_small is None else is_small(total)):
                key = tuple(sorted(int(m) for m in members))
                if key not in seen:
                    seen.add(key)
                    groups.append(HiddenGroup(key, int(parents[i]), t))
    return groups


def choose_secondary(
    space: CellSpace,
    must_protect: np.ndarray,
    *,
    costs: np.ndarray,
    groups: Sequence[HiddenGroup] = (),
    published_first: np.ndarray | None = None,
    kept_hidden: np.ndarray | None = None,
) -> SecondaryChoice:
    """Greedy publication in cost order; whatever would expose a target becomes a secondary.

    published_first: cells already released (an earlier table of the same release); they are
    published before any choice is made and are never complementary.
    kept_hidden: cells an earlier pass hid; they stay hidden (they are never offered for
    publication) without being targets, so the new pattern contains the earlier one.
    """
    n_logical = space.n_logical
    values = space.values
    directions = _Directions()
    # Unknown inner cells: every non-zero inner cell, and zero cells that are themselves targets.
    for t, (table, offset) in enumerate(zip(space.tables, space.offsets)):
        inner = table.inner_flat_ids()
        lids = space.logical[inner + offset]
        unknown = inner[(values[lids] > 0) | must_protect[lids]]
        if len(unknown) == 0:
            continue
        above = table.ancestors(unknown) + offset
        base = len(directions.col)
        for i, cells in enumerate(above.tolist()):
            directions.add_vector(base + i, cells)
    next_row = space.n_global
    # A cell two tables share must change the same way in both.
    members_of: dict[int, list[int]] = {}
    for gid, lid in enumerate(space.logical.tolist()):
        members_of.setdefault(lid, []).append(gid)
    for lid, members in members_of.items():
        for other in members[1:]:
            relation = next_row
            next_row += 1
            directions.add_combination(relation, [(other, 1), (members[0], -1)])
            directions.restrict(relation)
            directions.row.pop(relation, None)
    # Row -> what it protects, described only when a secondary names it.
    target_rows: dict[int, Callable[[], str]] = {}
    for lid in np.flatnonzero(must_protect).tolist():
        target_rows[int(space.representative[lid])] = partial(space.describe, lid)
    members_of_group = _global_members(space, groups)
    for group, members in zip(groups, members_of_group):
        rid = next_row
        next_row += 1
        directions.add_combination(rid, [(gid, 1) for gid in members])
        target_rows[rid] = partial(group.describe, space)
    targets = set(target_rows)

    candidates = ~must_protect & (values > 0)
    if published_first is not None:
        for lid in np.flatnonzero(published_first & ~must_protect).tolist():
            directions.restrict(int(space.representative[lid]))
        candidates &= ~published_first
    secondary = np.zeros(n_logical, dtype=bool)
    if kept_hidden is not None:
        secondary |= kept_hidden & ~must_protect
        candidates &= ~kept_hidden
    candidates = np.flatnonzero(candidates)
    order = candidates[np.lexsort((candidates, -costs[candidates]))]
    # Only the rows of cells still to be offered and of targets are read from here on.
    needed = targets | set(space.representative[candidates].tolist())
    for rid in [rid for rid in directions.row if rid not in needed]:
        directions.forget(rid)
    protects: dict[int, list[str]] = {}
    for lid in order.tolist():
        rid = int(space.representative[lid])
        if directions.is_free(rid):
            continue  # already determined by what is published: publishing it reveals nothing new
        exposed = directions.determined_by(rid, targets)
        if exposed:
            secondary[lid] = True
            protects[lid] = [target_rows[r]() for r in exposed]
            directions.forget(rid)
            continue
        directions.restrict(rid)
    return SecondaryChoice(suppressed=must_protect | secondary, secondary=secondary, protects=protects)


def _global_members(space: CellSpace, groups: Sequence[HiddenGroup]) -> list[list[int]]:
    """For each group, the global ids of its logical members in the group's own table."""
    where: dict[tuple[int, int], list[int]] = {}
    for t in {group.table for group in groups}:
        offset = int(space.offsets[t])
        ids = space.logical[offset : offset + space.tables[t].size]
        wanted = [m for group in groups if group.table == t for m in group.members]
        for i in np.flatnonzero(np.isin(ids, wanted)).tolist():
            where.setdefault((t, int(ids[i])), []).append(offset + i)
    return [sorted(gid for m in group.members for gid in where.get((group.table, m), [])) for group in groups]


def default_costs(space: CellSpace, margin_factor: float = 3.0) -> np.ndarray:
    """The earlier cost model: students plus one, times margin_factor per Total coordinate (margins kept)."""
    return (space.values.astype(float) + 1.0) * margin_factor ** space.n_totals.astype(float)


def students_hidden_costs(space: CellSpace) -> np.ndarray:
    """Cost of hiding a cell: the students it takes from the reader, then the cell itself.

    A cell that is a group of some table (inner somewhere) hides its students: cost n + 1. A
    cell that is only ever a margin hides no group a reader could not still see below it: cost
    1, a little more for larger margins so that, of two margins, the smaller goes. The grand
    total (the headline every table of a release shares) is kept unless nothing else works.
    """
    values = space.values.astype(float)
    margin_only = ~space.is_inner_somewhere
    scale = values.max(initial=0.0) + 1.0
    costs = np.where(margin_only, 1.0 + 0.5 * values / scale, values + 1.0)
    grand = np.array([len(key) == 0 for key in space.keys])
    costs[grand] = 10.0 * (values.sum() + 1.0)
    return costs
