"""Filters on a released report: school year, measure and group (breakdown).

A filter only chooses among what was released: whole tables (by their school year and their
breakdowns), whole measure columns of a table (a measure's own column and its district column),
and the charts that go with them. No cell is computed, merged or re-derived, so a filtered page
shows a subset of the released characters and nothing else. Pure: no Jupyter, no web server.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Mapping

if TYPE_CHECKING:  # pragma: no cover
    from workbench.dashboard.content import ReleaseContent, ReleaseTable

DISTRICT_SUFFIX = "_district"
# The query parameters of the static page and the names of the live page's dropdowns.
PARAMETERS = ("year", "measure", "group")
MAX_VALUE_LENGTH = 100


@dataclass(frozen=True)
class Filters:
    """What the viewer chose; an empty value means "all"."""

    year: str = ""
    measure: str = ""
    group: str = ""

    @property
    def active(self) -> bool:
        return bool(self.year or self.measure or self.group)


@dataclass(frozen=True)
class FilterOptions:
    """The choices a release offers, each as (value, label), in the order the release has them."""

    years: tuple[tuple[str, str], ...]
    measures: tuple[tuple[str, str], ...]
    groups: tuple[tuple[str, str], ...]

    def accept(self, chosen: Mapping[str, str]) -> Filters:
        """The filters from the viewer's choice, keeping only values this release offers."""
        picked = {}
        for name, options in (("year", self.years), ("measure", self.measures), ("group", self.groups)):
            value = str(chosen.get(name) or "")[:MAX_VALUE_LENGTH]
            picked[name] = value if value in {v for v, _ in options} else ""
        return Filters(**picked)


def measure_key(column_key: str) -> str:
    """The measure a released column belongs to: its district comparison belongs to it too."""
    return column_key[: -len(DISTRICT_SUFFIX)] if column_key.endswith(DISTRICT_SUFFIX) else column_key


def table_measures(table: "ReleaseTable") -> list[tuple[str, str]]:
    """(measure key, column title) of each measure the table shows, in column order."""
    found = []
    for key, title in zip(table.keys[table.dims + 1:], table.columns[table.dims + 1:]):
        if not key.endswith(DISTRICT_SUFFIX) and key not in {k for k, _ in found}:
            found.append((key, title))
    return found


def table_groups(table: "ReleaseTable") -> list[tuple[str, str]]:
    """(breakdown key, its title) of each breakdown of the table."""
    return list(zip(table.keys[: table.dims], table.columns[: table.dims]))


def options_for(content: "ReleaseContent") -> FilterOptions:
    years, measures, groups = {}, {}, {}
    for table in content.tables:
        if table.year:
            years.setdefault(table.year, table.year)
        for key, title in table_measures(table):
            measures.setdefault(key, title)
        for key, title in table_groups(table):
            groups.setdefault(key, title)
    return FilterOptions(tuple(sorted(years.items())), tuple(measures.items()), tuple(groups.items()))


def table_matches(table: "ReleaseTable", filters: Filters) -> bool:
    if filters.year and table.year != filters.year:
        return False
    if filters.group and filters.group not in {k for k, _ in table_groups(table)}:
        return False
    if filters.measure and filters.measure not in {k for k, _ in table_measures(table)}:
        return False
    return True


def narrow_table(table: "ReleaseTable", filters: Filters) -> "ReleaseTable":
    """The table with only the chosen measure's columns (breakdowns and students kept), and charts."""
    if not filters.measure:
        return table
    kept = list(range(table.dims + 1)) + [
        i for i, key in enumerate(table.keys) if i > table.dims and measure_key(key) == filters.measure]
    return replace(
        table,
        columns=[table.columns[i] for i in kept],
        keys=[table.keys[i] for i in kept],
        rows=[[row[i] for i in kept] for row in table.rows],
        charts=[chart for chart in table.charts if chart.measure == filters.measure],
    )


def apply(content: "ReleaseContent", filters: Filters) -> list["ReleaseTable"]:
    """The tables to show, in release order, each narrowed to the chosen measure."""
    return [narrow_table(t, filters) for t in content.tables if table_matches(t, filters)]
