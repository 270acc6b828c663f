"""Count tables in long format, with every margin derived, and the cells several tables share.

A table over dimensions d1..dk with n_i categories is held as a dense integer array of shape
(n_1 + 1, ..., n_k + 1): index n_i on axis i is the margin ("Total") over that dimension. Every
subset of dimensions therefore has its margins, and the grand total sits at the last corner.

Several tables released together share cells: the school totals of a school x race table and of
a school x gender table are the same number. `CellSpace` gives each distinct quantity one
*logical* id, so the protection and the attacker treat a shared cell as one unknown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from workbench.errors import InputError

TOTAL = "Total"


class TableInputError(InputError):
    """The input table cannot be protected as given (bad columns, counts or duplicates)."""


@dataclass
class CountTable:
    """One table: its dimensions, categories, and the full array of counts including margins."""

    name: str
    dims: tuple[str, ...]
    categories: tuple[tuple, ...]
    counts: np.ndarray  # shape (n_1 + 1, ..., n_k + 1), int64, margins included
    outcomes: np.ndarray | None = None  # same shape: students with the outcome, or None

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        dims: Sequence[str],
        count_col: str,
        *,
        outcome_col: str | None = None,
        name: str | None = None,
    ) -> CountTable:
        """Build from one row per inner cell; a combination that is absent counts as zero."""
        dims = tuple(dims)
        if not dims:
            raise TableInputError("at least one dimension is needed")
        if len(set(dims)) != len(dims):
            raise TableInputError(f"dimensions repeat: {', '.join(dims)}")
        wanted = [*dims, count_col] + ([outcome_col] if outcome_col else [])
        missing = [col for col in wanted if col not in frame.columns]
        if missing:
            raise TableInputError(
                f"column(s) not in the input: {', '.join(missing)} (have: {', '.join(map(str, frame.columns))})"
            )
        if len(frame) == 0:
            raise TableInputError("the input has no rows")
        counts = _integer_column(frame[count_col], count_col)
        outcomes = _integer_column(frame[outcome_col], outcome_col) if outcome_col else None
        if outcomes is not None and (outcomes > counts).any():
            raise TableInputError(f"{outcome_col} exceeds {count_col} in some rows")
        keys = frame[list(dims)]
        if keys.isna().any().any():
            raise TableInputError("a dimension value is empty")
        duplicated = keys.duplicated(keep=False)
        if duplicated.any():
            first = keys[duplicated].iloc[0].tolist()
            raise TableInputError(
                f"{int(duplicated.sum())} duplicate rows for the same cell, e.g. {dict(zip(dims, first))}"
            )
        categories = []
        codes = []
        for dim in dims:
            values = frame[dim]
            cats = tuple(pd.unique(values))
            if any(str(cat) == TOTAL for cat in cats):
                raise TableInputError(f"dimension {dim} uses the reserved category {TOTAL!r}")
            categories.append(cats)
            codes.append(pd.Categorical(values, categories=list(cats)).codes.astype(np.int64))
        shape = tuple(len(cats) for cats in categories)
        inner = np.zeros(shape, dtype=np.int64)
        np.add.at(inner, tuple(codes), counts)
        inner_outcomes = None
        if outcomes is not None:
            inner_outcomes = np.zeros(shape, dtype=np.int64)
            np.add.at(inner_outcomes, tuple(codes), outcomes)
        return cls(
            name=name or "table",
            dims=dims,
            categories=tuple(categories),
            counts=with_margins(inner),
            outcomes=None if inner_outcomes is None else with_margins(inner_outcomes),
        )

    @property
    def inner_shape(self) -> tuple[int, ...]:
        return tuple(len(cats) for cats in self.categories)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.counts.shape

    @property
    def size(self) -> int:
        return int(self.counts.size)

    def coordinates(self) -> np.ndarray:
        """Index of every cell (flat order) on each axis: shape (size, k)."""
        return np.stack(np.unravel_index(np.arange(self.size), self.shape), axis=1)

    def total_mask(self) -> np.ndarray:
        """For every cell (flat order) and axis: is that coordinate the Total?"""
        return self.coordinates() == np.array(self.inner_shape)

    def cell_keys(self) -> list[tuple[tuple[str, object], ...]]:
        """A key per cell naming only its non-Total coordinates; equal keys are the same quantity."""
        coords = self.coordinates()
        keys = []
        for row in coords:
            keys.append(
                tuple(
                    (dim, self.categories[axis][code])
                    for axis, (dim, code) in enumerate(zip(self.dims, row))
                    if code < len(self.categories[axis])
                )
            )
        return keys

    def labels(self) -> pd.DataFrame:
        """One row per cell, each dimension holding its category or the literal Total."""
        coords = self.coordinates()
        columns = {}
        for axis, dim in enumerate(self.dims):
            lookup = np.array([*map(_as_label, self.categories[axis]), TOTAL], dtype=object)
            columns[dim] = lookup[coords[:, axis]]
        return pd.DataFrame(columns)

    def describe_cell(self, flat: int) -> str:
        coords = np.unravel_index(flat, self.shape)
        parts = []
        for axis, dim in enumerate(self.dims):
            code = coords[axis]
            label = TOTAL if code == len(self.categories[axis]) else _as_label(self.categories[axis][code])
            parts.append(f"{dim}={label}")
        return ", ".join(parts)

    def equations(self, *, one_per_parent: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
        """Additivity equations as (parents, children) blocks: parent = sum of its children row.

        Each block covers one axis: parents are the cells whose coordinate on that axis is the
        Total, children their cells along the axis. With one_per_parent, a parent appears only in
        the block of its first Total axis; that subset implies all the others (every margin is
        then the sum of its inner cells), which keeps the attacker's LP free of redundant rows.
        """
        flat = np.arange(self.size).reshape(self.shape)
        first_total = None
        if one_per_parent:
            totals = self.total_mask()
            first_total = np.where(totals.any(axis=1), totals.argmax(axis=1), -1)
        blocks = []
        for axis, n_cats in enumerate(self.inner_shape):
            parents = np.take(flat, n_cats, axis=axis).reshape(-1)
            children = np.moveaxis(np.take(flat, np.arange(n_cats), axis=axis), axis, -1).reshape(-1, n_cats)
            if first_total is not None:
                keep = first_total[parents] == axis
                parents, children = parents[keep], children[keep]
            blocks.append((parents, children))
        return blocks

    def ancestors(self, inner_flat: np.ndarray) -> np.ndarray:
        """For inner cells (flat ids of the full array), the 2^k cells that contain each: (n, 2^k)."""
        coords = np.stack(np.unravel_index(inner_flat, self.shape), axis=1)
        k = len(self.dims)
        out = np.empty((len(inner_flat), 2**k), dtype=np.int64)
        totals = np.array(self.inner_shape)
        for mask in range(2**k):
            c = coords.copy()
            for axis in range(k):
                if mask >> axis & 1:
                    c[:, axis] = totals[axis]
            out[:, mask] = np.ravel_multi_index(c.T, self.shape)
        return out

    def inner_flat_ids(self) -> np.ndarray:
        """Flat ids (in the full array) of the inner cells."""
        return np.flatnonzero(~self.total_mask().any(axis=1))


def with_margins(inner: np.ndarray) -> np.ndarray:
    """Append, on every axis, the sum over that axis: all margins of all subsets of dimensions."""
    full = inner
    for axis in range(inner.ndim):
        full = np.concatenate([full, full.sum(axis=axis, keepdims=True)], axis=axis)
    return full


def _as_label(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    return value


def _integer_column(series: pd.Series, name: str) -> np.ndarray:
    if series.isna().any():
        raise TableInputError(f"column {name} has empty values")
    if series.dtype == object or pd.api.types.is_string_dtype(series):
        numeric = pd.to_numeric(series.astype(str).str.strip(), errors="coerce")
        if numeric.isna().any():
            bad = series[numeric.isna()].iloc[0]
            raise TableInputError(f"column {name} holds a non-integer count: {bad!r}")
        series = numeric
    if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
        raise TableInputError(f"column {name} must hold integer counts")
    values = series.to_numpy(dtype=float)
    if not np.all(np.isfinite(values)) or not np.all(values == np.round(values)):
        bad = series[~(np.isfinite(values) & (values == np.round(values)))].iloc[0]
        raise TableInputError(f"column {name} holds a non-integer count: {bad!r}")
    if (values < 0).any():
        bad = series[values < 0].iloc[0]
        raise TableInputError(f"column {name} holds a negative count: {bad!r}")
    return values.astype(np.int64)


@dataclass
class CellSpace:
    """The cells of one or more tables released together, shared cells merged into one logical id."""

    tables: list[CountTable]
    offsets: np.ndarray = field(init=False)  # first global id of each table
    logical: np.ndarray = field(init=False)  # global id -> logical id
    representative: np.ndarray = field(init=False)  # logical id -> first global id
    values: np.ndarray = field(init=False)  # logical id -> count
    outcomes: np.ndarray | None = field(init=False)
    n_totals: np.ndarray = field(init=False)  # logical id -> fewest Total coordinates among its members
    is_inner_somewhere: np.ndarray = field(init=False)
    keys: list[tuple] = field(init=False)  # logical id -> its non-Total coordinates, ((dim, category), ...)

    def __post_init__(self) -> None:
        if not self.tables:
            raise TableInputError("no table to protect")
        names = [t.name for t in self.tables]
        if len(set(names)) != len(names):
            raise TableInputError(f"table names must differ: {', '.join(names)}")
        has_outcomes = {t.outcomes is not None for t in self.tables}
        if len(has_outcomes) > 1:
            raise TableInputError("either every table carries an outcome count or none does")
        sizes = np.array([t.size for t in self.tables])
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        n_global = int(sizes.sum())
        key_ids: dict[tuple, int] = {}
        logical = np.empty(n_global, dtype=np.int64)
        for table, offset in zip(self.tables, self.offsets):
            for i, key in enumerate(table.cell_keys()):
                logical[offset + i] = key_ids.setdefault(key, len(key_ids))
        self.logical = logical
        self.keys = list(key_ids)
        n_logical = len(key_ids)
        representative = np.full(n_logical, -1, dtype=np.int64)
        order = np.arange(n_global)[::-1]
        representative[logical[order]] = order  # the last write wins: the first occurrence
        self.representative = representative
        global_values = np.concatenate([t.counts.reshape(-1) for t in self.tables])
        values = np.zeros(n_logical, dtype=np.int64)
        values[logical] = global_values
        if np.any(values[logical] != global_values):
            bad = int(np.flatnonzero(values[logical] != global_values)[0])
            raise TableInputError(f"tables disagree on a shared cell: {self.describe_global(bad)}")
        self.values = values
        self.outcomes = None
        if True in has_outcomes:
            global_outcomes = np.concatenate([t.outcomes.reshape(-1) for t in self.tables])
            outcomes = np.zeros(n_logical, dtype=np.int64)
            outcomes[logical] = global_outcomes
            if np.any(outcomes[logical] != global_outcomes):
                bad = int(np.flatnonzero(outcomes[logical] != global_outcomes)[0])
                raise TableInputError(f"tables disagree on a shared outcome: {self.describe_global(bad)}")
            self.outcomes = outcomes
        n_totals = np.full(n_logical, 10**6, dtype=np.int64)
        inner = np.zeros(n_logical, dtype=bool)
        for table, offset in zip(self.tables, self.offsets):
            totals = table.total_mask().sum(axis=1)
            ids = logical[offset : offset + table.size]
            np.minimum.at(n_totals, ids, totals)
            inner[ids[totals == 0]] = True
        self.n_totals = n_totals
        self.is_inner_somewhere = inner

    @property
    def n_logical(self) -> int:
        return len(self.representative)

    @property
    def n_global(self) -> int:
        return len(self.logical)

    def table_of_global(self, gid: int) -> tuple[int, int]:
        t = int(np.searchsorted(self.offsets, gid, side="right") - 1)
        return t, int(gid - self.offsets[t])

    def describe_global(self, gid: int) -> str:
        t, flat = self.table_of_global(gid)
        table = self.tables[t]
        prefix = f"{table.name}: " if len(self.tables) > 1 else ""
        return prefix + table.describe_cell(flat)

    def describe(self, lid: int) -> str:
        return self.describe_global(int(self.representative[lid]))

    def equations(self, *, one_per_parent: bool = False) -> list[tuple[np.ndarray, np.ndarray, int]]:
        """Equation blocks over logical ids: (parents, children, table index)."""
        blocks = []
        for t, (table, offset) in enumerate(zip(self.tables, self.offsets)):
            for parents, children in table.equations(one_per_parent=one_per_parent):
                blocks.append((self.logical[parents + offset], self.logical[children + offset], t))
        return blocks
