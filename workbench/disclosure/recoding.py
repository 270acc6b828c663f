"""Local recoding to k: each student's joined record is shown at one level per field, chosen so
that every record shows exactly what at least k-1 others show, for the least information lost.

    choose_levels(options, combinations, presence, k, tie_break) -> (combination per student, removed)

`options[j][level]` holds, for joined-record column j at that hierarchy level, each student's
shown code and the (importance-weighted) loss of showing it. A *combination* gives one level per
column (the columns of one field share a level, so a field is shown at one granularity in every
year of a student). A *group* is a combination together with the codes it shows: the students of
a group show the same record. Every student starts in its presence pattern's fully withheld group
(always at least k, or the student is removed: its set of years is too rare); then groups are
opened greedily, the one whose members lose the most less first, a student moving only where it
loses less, a group it leaves keeping k members or none, and a group opened only with k. A last
pass moves single students to cheaper open groups under the same rule. Every group of the result
holds k students or more, so every record shares what it shows with k-1 others.

Ties between equally good students go to the release's keyed order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_EPSILON = 1e-9
# Groups examined per round before the search settles for what it has: the best few by gain.
_CANDIDATES_PER_ROUND = 64


def group_ids(options: Sequence[Sequence[tuple[np.ndarray, np.ndarray]]], combinations: Sequence[tuple[int, ...]],
              presence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(group of each student under each combination, cost of each student under each combination)."""
    n = len(presence)
    groups = np.zeros((len(combinations), n), dtype=np.int64)
    costs = np.zeros((len(combinations), n))
    offset = 0
    for c, combination in enumerate(combinations):
        shown = np.column_stack([presence] + [options[j][level][0] for j, level in enumerate(combination)])
        _, inverse = np.unique(shown, axis=0, return_inverse=True)
        inverse = inverse.ravel()
        groups[c] = inverse + offset
        offset += int(inverse.max()) + 1 if n else 0
        costs[c] = sum(options[j][level][1] for j, level in enumerate(combination))
    return groups, costs


def choose_levels(groups: np.ndarray, costs: np.ndarray, k: int, withheld: int,
                  tie_break: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The combination each student is shown in, and which students are removed.

    `withheld` is the index of the combination that withholds every field (one group per
    presence pattern)."""
    n_combinations, n = groups.shape
    everyone = np.arange(n)
    size = np.bincount(groups.ravel(), minlength=int(groups.max()) + 1 if n else 0)
    removed = size[groups[withheld]] < k if n else np.zeros(0, dtype=bool)
    chosen = np.full(n, withheld)
    members = np.bincount(groups[withheld][~removed], minlength=len(size))
    combination_of_group = np.zeros(len(size), dtype=np.int64)
    combination_of_group[groups.ravel()] = np.repeat(np.arange(n_combinations), n)
    while True:
        current = costs[chosen, everyone]
        gain = current[None, :] - costs
        better = (gain > _EPSILON) & ~removed[None, :]
        total = np.bincount(groups[better], weights=gain[better], minlength=len(size))
        movers_wanted = np.bincount(groups[better], minlength=len(size))
        viable = (movers_wanted + members >= k) & (total > _EPSILON)
        if not viable.any():
            break
        moved = False
        for group in np.argsort(-np.where(viable, total, 0.0), kind="stable")[:_CANDIDATES_PER_ROUND]:
            if not viable[group]:
                break
            movers = _movers(group, combination_of_group[group], groups, costs, current, chosen, members, removed, k, tie_break)
            if len(movers) and len(movers) + members[group] >= k:
                np.subtract.at(members, groups[chosen[movers], movers], 1)
                members[group] += len(movers)
                chosen[movers] = combination_of_group[group]
                moved = True
                break
        if not moved:
            break
    _settle(groups, costs, chosen, members, removed, k, tie_break)
    return chosen, removed


def _movers(group, combination, groups, costs, current, chosen, members, removed, k, tie_break) -> np.ndarray:
    """Students who lose less in `group` and may leave their own: a group keeps k members, or
    gives all of them when all of them gain."""
    candidates = np.flatnonzero((groups[combination] == group) & ~removed)
    gain = current[candidates] - costs[combination, candidates]
    candidates, gain = candidates[gain > _EPSILON], gain[gain > _EPSILON]
    own = groups[chosen[candidates], candidates]
    out = []
    for source in np.unique(own):
        leaving = candidates[own == source]
        if len(leaving) == members[source]:
            out.extend(leaving)
            continue
        spare = int(members[source]) - k
        if spare > 0:
            by_gain = np.lexsort((tie_break[leaving], -gain[own == source]))
            out.extend(leaving[by_gain[:spare]])
    return np.array(out, dtype=np.int64)


def _settle(groups, costs, chosen, members, removed, k, tie_break) -> None:
    """Move single students to a cheaper open group while the group they leave keeps k or empties."""
    everyone = np.arange(groups.shape[1])
    improved = True
    while improved:
        improved = False
        current = costs[chosen, everyone]
        for student in np.lexsort((tie_break, -current)):
            if removed[student]:
                continue
            own = groups[chosen[student], student]
            left = members[own] - 1
            if 0 < left < k:
                continue
            theirs = groups[:, student]
            open_elsewhere = (members[theirs] >= k) & (theirs != own)
            cost = np.where(open_elsewhere, costs[:, student], np.inf)
            best = int(np.argmin(cost))
            if cost[best] < current[student] - _EPSILON:
                members[own] -= 1
                members[theirs[best]] += 1
                chosen[student] = best
                current[student] = cost[best]
                improved = True
