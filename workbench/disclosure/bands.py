"""Coarser categories for one dimension of a table, and what each version of the table hides.

    banded = band_table(table, "grade", {"K-5": ["K", "1", ...], "6-8": [...], "9-12": [...]})
    offer = compare_bands(table, "grade", bands, rule)   # both versions protected and audited

A table by grade can have to hide thousands of students in complementary cells to protect a few
small grades of one school, while the same table by grade band has no small group at all. The
banded version is protected exactly like the original (protect_tables: primary rule,
complementary suppression, the attacker's audit), and it is offered when it hides strictly fewer
students. Categories no band names stay as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from workbench.disclosure.protect import ProtectionResult, protect_tables
from workbench.disclosure.rules import SmallGroupRule
from workbench.disclosure.table import CountTable, TableInputError, with_margins


@dataclass(frozen=True)
class InformationLoss:
    """What protection hid in one table: cells (margins included) and students in hidden inner cells."""

    cells: int
    cells_hidden: int
    students_hidden: int

    def as_dict(self) -> dict:
        return {"cells": self.cells, "cells_hidden": self.cells_hidden, "students_hidden": self.students_hidden}


def information_loss(result: ProtectionResult, which: int = 0) -> InformationLoss:
    space = result.space
    table = space.tables[which]
    offset = int(space.offsets[which])
    lids = space.logical[offset : offset + table.size]
    hidden = result.suppressed[lids]
    inner = ~table.total_mask().any(axis=1)
    return InformationLoss(
        cells=int(table.size),
        cells_hidden=int(hidden.sum()),
        students_hidden=int(space.values[lids][hidden & inner].sum()),
    )


def band_table(table: CountTable, dim: str, bands: Mapping[str, Sequence[object]]) -> CountTable:
    """The table with `dim`'s categories merged into bands (in the order their first member appears)."""
    if dim not in table.dims:
        raise TableInputError(f"bands: the table has no dimension {dim} (it has {', '.join(table.dims)})")
    axis = table.dims.index(dim)
    band_of = {str(member): str(label) for label, members in bands.items() for member in members}
    categories = table.categories[axis]
    clashing = sorted({str(c) for c in categories if str(c) in bands and band_of.get(str(c)) != str(c)})
    if clashing:
        raise TableInputError(f"bands: {dim} has a category named like a band ({', '.join(clashing)})")
    labels: list[str] = []
    members: dict[str, list[int]] = {}
    for index, category in enumerate(categories):
        label = band_of.get(str(category), category)
        if label not in members:
            labels.append(label)
            members[label] = []
        members[label].append(index)

    def merge(array: np.ndarray | None) -> np.ndarray | None:
        if array is None:
            return None
        inner = array[tuple(slice(0, n - 1) for n in array.shape)]
        merged = np.stack([inner.take(members[label], axis=axis).sum(axis=axis) for label in labels], axis=axis)
        return with_margins(merged)

    new_categories = list(table.categories)
    new_categories[axis] = tuple(labels)
    return CountTable(
        name=f"{table.name}_{dim}_bands",
        dims=table.dims,
        categories=tuple(new_categories),
        counts=merge(table.counts),
        outcomes=merge(table.outcomes),
    )


@dataclass
class BandComparison:
    """One table protected as it is and with one dimension banded."""

    dim: str
    bands: dict[str, tuple[str, ...]]
    original: ProtectionResult
    banded: ProtectionResult

    @property
    def original_loss(self) -> InformationLoss:
        return information_loss(self.original)

    @property
    def banded_loss(self) -> InformationLoss:
        return information_loss(self.banded)

    @property
    def offered(self) -> bool:
        """The banded table is safe and hides strictly fewer students."""
        return self.banded.is_safe and self.banded_loss.students_hidden < self.original_loss.students_hidden

    def as_dict(self) -> dict:
        return {
            "breakdown": self.dim,
            "bands": {label: list(members) for label, members in self.bands.items()},
            "as_asked": self.original_loss.as_dict(),
            "banded": self.banded_loss.as_dict(),
            "offered": self.offered,
        }

    def describe(self) -> str:
        a, b = self.original_loss, self.banded_loss
        text = (f"by {self.dim}: {a.cells_hidden} of {a.cells} cells hidden, {a.students_hidden} students hidden; "
                f"by {self.dim} band ({', '.join(self.bands)}): {b.cells_hidden} of {b.cells} cells hidden, "
                f"{b.students_hidden} students hidden")
        return text + (" - the bands publish more" if self.offered else "")


def compare_bands(
    table: CountTable,
    dim: str,
    bands: Mapping[str, Sequence[object]],
    rule: SmallGroupRule,
    *,
    original: ProtectionResult | None = None,
    **protect_options,
) -> BandComparison:
    """Protect the table and its banded version the same way; `original` reuses a protection already run."""
    banded_table = band_table(table, dim, bands)
    if original is None:
        original = protect_tables(table, rule=rule, **protect_options)
    banded = protect_tables(banded_table, rule=rule, **protect_options)
    return BandComparison(
        dim=dim,
        bands={str(label): tuple(str(m) for m in members) for label, members in bands.items()},
        original=original,
        banded=banded,
    )
