"""Protected aggregate tables for reports: every table of a school year protected as one release.

The method follows NCES SLDS Technical Brief 3 (minimum group size, complementary suppression,
top/bottom coding of percentages), extended to what a recipient actually holds:

1. The table of students per group (every breakdown cell and every margin) joins the request's
   release model for that school year (workbench.disclosure.release): tables of one year share
   groups, so a group gets one fate in all of them, and earlier tables' cells keep theirs.
2. Each measure's percentage is a protected cell too: its numerator and denominator (students
   tested, with course marks...) follow the pack's group-size and numerator rules, extreme or
   small-numerator values are coded, and complementary suppression covers the percentages.
3. The district-wide comparison is the same percentage over every student in the district,
   protected the same way (a recipient knows the cohort is part of the district).
4. An integer-program attacker sees every table, mark, percentage and protection summary of the
   year at once; a table is returned only when it proves no suppressed count, numerator or
   hidden group's outcome can be pinned.

Every suppressed cell shows the same mark, whatever the reason. Margins of a breakdown are sums
of its cells because every student counts once per year (school of record); a program
breakdown is not additive and is not offered here.
"""

from __future__ import annotations

import itertools
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.disclosure.rates import NOT_APPLICABLE, SUPPRESSED_MARK, RateDisplay
from workbench.disclosure.release import RateInput
from workbench.disclosure.table import CountTable, TableInputError, with_margins
from workbench.errors import InputError
from workbench.measures import MEASURES, compute, prepare_facts
from workbench.report.files import write_xlsx
from workbench.report.release_year import release_model

TOTAL = "Total"
MEASURE_DENOMINATOR = {
    "chronic_absence": "students enrolled 10 days or more",
    "course_failure": "students with course marks",
    "assessment_benchmark": "students tested",
    "behavior_incident": "students enrolled",
    "low_income": "students enrolled",
}
# What the measures' published definitions (docs/measures.md) tell any reader about a
# denominator: it is the whole group, or it is empty in some grades. The attacker uses these.
DENOMINATOR_IS_GROUP = {"behavior_incident", "low_income"}
GRADES_WITH = {"course_failure": set(range(6, 13)), "assessment_benchmark": {3, 4, 5, 6, 7, 8, 10}}
COLUMN_FOR = {"school": "school", "school_level": "level"}
DIM_TITLES = {
    "school": "School", "level": "School level", "grade": "Grade", "race_ethnicity": "Race/ethnicity",
    "gender": "Gender", "english_learner": "English learner", "disability": "Students with disabilities",
    "low_income": "Low income",
}


class ReportTableError(InputError):
    """A table that cannot be built as asked."""


def _labels(frame: pd.DataFrame, dims: list[str], school_names: dict[str, str]) -> pd.DataFrame:
    """Readable category labels: school names, K for kindergarten, Yes/No for flags."""
    out = frame.copy()
    for dim in dims:
        column = out[dim]
        if dim == "school":
            out[dim] = column.map(lambda s: school_names.get(s, s))
        elif dim == "grade":
            out[dim] = column.map(lambda g: "K" if int(g) == 0 else str(int(g)))
        elif column.dtype == bool or set(column.dropna().unique()) <= {True, False}:
            out[dim] = column.map({True: "Yes", False: "No"})
        else:
            out[dim] = column.astype(str)
    return out


def _with_margins(inner: pd.DataFrame, dims: list[str], sums: list[str]) -> pd.DataFrame:
    """Inner cells plus every margin (each subset of dims summed, the rest labelled Total)."""
    parts = []
    for size in range(len(dims), -1, -1):
        for kept in itertools.combinations(dims, size):
            if kept:
                part = inner.groupby(list(kept), as_index=False, observed=True)[sums].sum()
            else:
                part = inner[sums].sum().to_frame().T
            for dim in dims:
                if dim not in kept:
                    part[dim] = TOTAL
            parts.append(part[dims + sums])
    return pd.concat(parts, ignore_index=True)


@dataclass
class MeasureColumn:
    measure: str
    subject: str | None
    title: str

    @property
    def key(self) -> str:
        return self.measure if self.subject is None else f"{self.measure}_{self.subject.lower()}"


@dataclass
class ReportTable:
    """One protected table: counts, coded percentages, one mark for every suppressed cell, footnotes."""

    name: str
    title: str
    year: str
    dims: list[str]
    frame: pd.DataFrame  # dims, students (<NA> when suppressed), then <key> (text) and <key>_percent per measure
    columns: list[MeasureColumn]
    district: bool
    protection: dict
    footnotes: list[str] = field(default_factory=list)

    # -- what gets written -----------------------------------------------------------------
    def release_frame(self) -> pd.DataFrame:
        """The table as released: published counts, the mark where suppressed; nothing else."""
        out = self.frame[self.dims].copy()
        out["students"] = [SUPPRESSED_MARK if pd.isna(v) else str(int(v)) for v in self.frame["students"]]
        for column in self.columns:
            keep = [column.key, f"{column.key}_percent"]
            if self.district:
                keep += [f"{column.key}_district", f"{column.key}_district_percent"]
            for name in keep:
                out[name] = self.frame[name]
        return out

    def display_frame(self) -> pd.DataFrame:
        """Readable columns with the suppression mark, for notebooks, dashboards and XLSX."""
        out = pd.DataFrame({DIM_TITLES.get(d, d): self.frame[d] for d in self.dims})
        out["Students"] = [SUPPRESSED_MARK if pd.isna(v) else f"{int(v):,}" for v in self.frame["students"]]
        for column in self.columns:
            out[column.title] = self.frame[column.key]
            if self.district:
                out[f"{column.title} (district)"] = self.frame[f"{column.key}_district"]
        return out

    def save(self, folder: str | Path, when=None) -> list[Path]:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        csv_path = folder / f"{self.name}.csv"
        self.release_frame().to_csv(csv_path, index=False)
        notes = pd.DataFrame({"notes": [self.title, *self.footnotes]})
        # Counts and percentages as numbers with their formats; the mark and coded ranges as in
        # the CSV; what the marks mean under the table as well as on the notes sheet.
        xlsx_path = write_xlsx(folder / f"{self.name}.xlsx", {"table": self.display_frame(), "notes": notes}, when,
                               numeric=("table",), legends={"table": [self.title, *self.footnotes]})
        return [csv_path, xlsx_path]

    # -- how it shows ----------------------------------------------------------------------
    def to_html(self) -> str:
        body = self.display_frame().to_html(index=False, escape=True, border=0, classes="workbench-table")
        notes = "".join(f"<li>{note}</li>" for note in self.footnotes)
        return (f"<div class='workbench-report-table'><p><strong>{self.title}</strong></p>{body}"
                f"<ul class='workbench-footnotes' style='font-size:0.85em'>{notes}</ul></div>")

    def to_text(self) -> str:
        return "\n".join([self.title, self.display_frame().to_string(index=False), *self.footnotes])

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        return self.to_text()

    def chart_data(self, key: str, dim: str | None = None) -> pd.DataFrame:
        """One row per category of `dim` (the table's only dim by default), margins left out."""
        dim = dim or (self.dims[0] if len(self.dims) == 1 else None)
        if dim is None:
            raise ReportTableError("name the breakdown to chart: the table has several")
        others = [d for d in self.dims if d != dim]
        rows = self.frame[(self.frame[dim] != TOTAL)]
        for other in others:
            rows = rows[rows[other] == TOTAL]
        district = rows[f"{key}_district_percent"] if self.district else pd.Series(np.nan, index=rows.index)
        return pd.DataFrame({
            "label": rows[dim].to_numpy(),
            "percent": rows[f"{key}_percent"].to_numpy(),
            "display": rows[key].to_numpy(),
            "district_percent": district.to_numpy(),
        })


def _measure_columns(measures: list[str]) -> list[MeasureColumn]:
    columns = []
    for measure in measures:
        if measure == "enrolled":
            continue
        if measure not in MEASURES:
            raise ReportTableError(f"unknown measure {measure!r}")
        if measure == "assessment_benchmark":
            columns += [MeasureColumn(measure, s, f"Meeting benchmark, {s}") for s in ("ELA", "Math")]
        else:
            columns.append(MeasureColumn(measure, None, MEASURES[measure].title))
    return columns


_COMPUTE_COLUMN = {"school": "school_id", "school_level": "level"}


def _inner_cells(con, measure: str, subject: str | None, year: str, breakdowns: list[str], dims: list[str],
                 student_ids, school_names, bands: dict | None = None) -> pd.DataFrame:
    """One row per group: the dims (readable labels) and the measure's sums."""
    result = compute(con, measure, [year], breakdowns, student_ids)
    if subject is not None:
        result = result[result["subject"] == subject]
    result = result.rename(columns={v: k for k, v in _COMPUTE_COLUMN.items() if k in breakdowns})
    result = _labels(result, dims, school_names)
    for dim in dims:
        result[dim] = result[dim].astype(str)
    return _in_bands(result, dims, bands or {})


def _in_bands(cells: pd.DataFrame, dims: list[str], bands: dict[str, dict[str, tuple[str, ...]]]) -> pd.DataFrame:
    """Groups merged into the bands of the banded dims (sums of every count column), bands in pack order."""
    if not bands or cells.empty:
        return cells
    cells = cells.copy()
    order = {}
    for dim, groups in bands.items():
        band_of = {member: label for label, members in groups.items() for member in members}
        cells[dim] = cells[dim].map(lambda label: band_of.get(label, label))
        order[dim] = list(groups)
    sums = [c for c in cells.columns if c not in dims and pd.api.types.is_numeric_dtype(cells[c])
            and not pd.api.types.is_bool_dtype(cells[c])]
    merged = cells.groupby(dims, as_index=False, sort=False)[sums].sum()
    keys = [merged[d].map(lambda label, d=d: order[d].index(label) if d in order and label in order[d] else len(order.get(d, ())))
            for d in dims]
    position = pd.DataFrame({f"_k{i}": k for i, k in enumerate(keys)})
    return merged.loc[position.sort_values(list(position.columns), kind="stable").index].reset_index(drop=True)


def _array(table: CountTable, cells: pd.DataFrame, column: str, what: str) -> np.ndarray:
    """A measure's column laid out like the table's inner cells (absent groups are zeros)."""
    inner = np.zeros(table.inner_shape, dtype=np.int64)
    lookups = [{str(c): i for i, c in enumerate(cats)} for cats in table.categories]
    for row in cells.itertuples(index=False):
        record = row._asdict()
        index = []
        for axis, dim in enumerate(table.dims):
            label = str(record[dim])
            if label not in lookups[axis]:
                raise ReportTableError(f"{what}: group {dim}={label} has no students in the table it belongs to")
            index.append(lookups[axis][label])
        value = record[column]
        if pd.isna(value):
            raise ReportTableError(f"{what}: a group has no {column}")
        inner[tuple(index)] += int(value)
    return with_margins(inner)


def _comparison_layout(table: CountTable, cells: pd.DataFrame) -> CountTable:
    """The table's categories plus any the comparison population adds (a group the cohort lacks)."""
    categories = []
    for axis, dim in enumerate(table.dims):
        own = [str(c) for c in table.categories[axis]]
        extra = [c for c in pd.unique(cells[dim].astype(str)) if c not in own]
        categories.append(tuple(own + extra))
    shape = tuple(len(c) + 1 for c in categories)
    return CountTable(table.name, table.dims, tuple(categories), np.zeros(shape, dtype=np.int64))


def _documented_zero(table: CountTable, measure: str, bands: dict | None = None) -> np.ndarray | None:
    """Cells whose grade (or every grade of its band) has no student in the measure by its definition."""
    grades = GRADES_WITH.get(measure)
    if grades is None or "grade" not in table.dims:
        return None
    axis = table.dims.index("grade")
    members = (bands or {}).get("grade", {})
    without = np.array([
        all((0 if str(g) == "K" else int(g)) not in grades for g in members.get(str(label), (label,)))
        for label in table.categories[axis]
    ] + [False])
    shape = [1] * len(table.dims)
    shape[axis] = len(without)
    return np.broadcast_to(without.reshape(shape), table.shape).copy()


def _attendance(cells: pd.DataFrame, table: CountTable, shown: np.ndarray, rule) -> tuple[list, list]:
    """Attendance rate (days present over days enrolled) for published groups of enough students."""
    students = _array(table, cells, "students", "attendance rate").reshape(-1)
    enrolled = _array(table, cells, "days_enrolled", "attendance rate").reshape(-1)
    absent = _array(table, cells, "days_absent", "attendance rate").reshape(-1)
    numbers, texts = [], []
    for i in range(table.size):
        if not shown[i] or students[i] == 0 or rule.is_small(int(students[i])) or enrolled[i] == 0:
            numbers.append(None)
            # A published group of no students has no rate; anything else unshown is hidden.
            texts.append(NOT_APPLICABLE if shown[i] and students[i] == 0 else SUPPRESSED_MARK)
            continue
        rate = round(100.0 * (enrolled[i] - absent[i]) / enrolled[i], 1)
        numbers.append(rate)
        texts.append(f"{rate:.1f}%")
    return numbers, texts


_SCHOOL_NAMES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _school_names(con) -> dict[str, str]:
    """School ID -> name, read once per connection (every table of a report labels its schools)."""
    try:
        return _SCHOOL_NAMES[con]
    except KeyError:
        pass
    except TypeError:  # a connection that cannot be weakly referenced
        return _read_school_names(con)
    names = _SCHOOL_NAMES[con] = _read_school_names(con)
    return names


def _read_school_names(con) -> dict[str, str]:
    schools = con.table("schools").select("school_id", "name").to_pandas()
    return dict(zip(schools["school_id"], schools["name"]))


def build_table(
    ctx,
    measures: list[str],
    breakdowns: list[str],
    year: str | None = None,
    *,
    district_comparison: bool = False,
    name: str | None = None,
    title: str | None = None,
    bands: list[str] | None = None,
) -> ReportTable:
    """Compute, protect and code one table for the request's cohort and one school year.

    The table joins the release model of its year: it is protected so that it and every table
    of that year published before it are safe together (see the module docstring).

    bands: breakdowns published in the policy's bands (grade: K-5, 6-8, 9-12); by default the
    ones the request opts into with `bands:`. For a breakdown the pack has bands for and the
    table does not use, the banded table is protected alone beside the table, and the
    protection summary records both versions' loss (`bands_offer`).
    """
    year = year or ctx.latest_year
    breakdowns = list(breakdowns)
    if "program" in breakdowns:
        raise ReportTableError("a program breakdown does not add up to its totals; report each program as its own cohort")
    if not breakdowns:
        raise ReportTableError("give at least one breakdown (for example grade)")
    dims = [COLUMN_FOR.get(b, b) for b in breakdowns]
    rule = ctx.rule
    banded = _table_bands(ctx, breakdowns, bands)
    school_names = _school_names(ctx.con)
    student_ids = ctx.population(year)
    table_name = name or f"{year}_{'_'.join(dims)}"

    prepare_facts(ctx.con, [year], student_ids, district=district_comparison)
    enrolled = compute(ctx.con, "enrolled", [year], breakdowns, student_ids)
    enrolled = enrolled.rename(columns={v: k for k, v in _COMPUTE_COLUMN.items() if k in breakdowns})
    enrolled = _in_bands(_labels(enrolled, dims, school_names)[dims + ["students"]].astype({d: str for d in dims}),
                         dims, banded)
    if enrolled.empty:
        raise ReportTableError(f"no students of this cohort are enrolled in {year}")
    for dim in dims:
        enrolled[dim] = enrolled[dim].astype(str)
    counts = CountTable.from_frame(enrolled, dims, "students", name=table_name)

    columns = _measure_columns(measures)
    rates: list[RateInput] = []
    attendance_cells = {}
    for column in columns:
        cells = _inner_cells(ctx.con, column.measure, column.subject, year, breakdowns, dims, student_ids, school_names, banded)
        if column.measure == "attendance_rate":
            attendance_cells[column.key] = (cells, None)
            if district_comparison:
                district = _inner_cells(ctx.con, column.measure, None, year, breakdowns, dims, None, school_names, banded)
                attendance_cells[column.key] = (cells, district)
            continue
        what = f"{column.title} ({year})"
        rates.append(RateInput(
            column.key,
            _array(counts, cells, "students", what),
            _array(counts, cells, "count", what),
            denominator_is_group=column.measure in DENOMINATOR_IS_GROUP,
            documented_zero=_documented_zero(counts, column.measure, banded),
        ))
        if district_comparison:
            district = _inner_cells(ctx.con, column.measure, column.subject, year, breakdowns, dims, None, school_names, banded)
            district_table = _comparison_layout(counts, district)
            rates.append(RateInput(
                f"{column.key}@district",
                _array(district_table, district, "students", what + ", district"),
                _array(district_table, district, "count", what + ", district"),
                over_group=False,
                denominator_is_group=False,
                documented_zero=_documented_zero(district_table, column.measure, banded),
                within=column.key,
                categories=district_table.categories,
            ))
    model = release_model(ctx, year)
    try:
        released = model.add(counts, rates)
    except TableInputError as exc:
        raise ReportTableError(str(exc)) from exc

    frame = counts.labels()
    frame[dims] = frame[dims].astype(str)
    frame["students"] = pd.array(np.where(released.count_shown, counts.counts.reshape(-1), 0), dtype="Int64")
    frame.loc[~released.count_shown, "students"] = pd.NA
    for column in columns:
        if column.measure == "attendance_rate":
            cells, district = attendance_cells[column.key]
            numbers, texts = _attendance(cells, counts, released.count_shown, rule)
            frame[column.key] = texts
            frame[f"{column.key}_percent"] = pd.array(numbers, dtype="Float64")
            if district_comparison:
                d_numbers, d_texts = _district_attendance(district, counts, rule)
                frame[f"{column.key}_district"] = d_texts
                frame[f"{column.key}_district_percent"] = pd.array(d_numbers, dtype="Float64")
            continue
        _put(frame, column.key, released.rates[column.key])
        if district_comparison:
            _put(frame, f"{column.key}_district", released.rates[f"{column.key}@district"])

    protection = dict(released.summary)
    protection["information_loss"] = {
        "cells": int(counts.size), "cells_hidden": int(released.summary["suppressed"]),
        "students_hidden": released.summary["students_hidden"],
    }
    if banded:
        protection["bands"] = {COLUMN_FOR.get(b, b): {k: list(v) for k, v in banded[COLUMN_FOR.get(b, b)].items()}
                               for b in breakdowns if COLUMN_FOR.get(b, b) in banded}
    offers = _band_offers(ctx, counts, breakdowns, banded, rule, protection["information_loss"])
    if offers:
        protection["bands_offer"] = offers
    texts = frame[[c for c in frame.columns if c not in dims and c != "students" and not str(c).endswith("_percent")]]
    footnotes = _footnotes(ctx, rule, columns, not_applicable=bool((texts == NOT_APPLICABLE).any().any()))
    table_title = title or f"{year}: " + ", ".join(c.title for c in columns) + " by " + ", ".join(DIM_TITLES.get(d, d) for d in dims)
    return ReportTable(
        name=table_name,
        title=table_title,
        year=year,
        dims=dims,
        frame=frame,
        columns=columns,
        district=district_comparison,
        protection=protection,
        footnotes=footnotes,
    )


def _table_bands(ctx, breakdowns: list[str], chosen: list[str] | None) -> dict[str, dict[str, tuple[str, ...]]]:
    """The policy's bands for the breakdowns this table publishes banded (table column -> bands)."""
    if chosen is None:
        chosen = list(getattr(ctx.request, "bands", ()) or ())
    out = {}
    for breakdown in chosen:
        if breakdown not in breakdowns:
            continue  # the request's bands apply to the tables that have that breakdown
        groups = ctx.policy.bands(breakdown)
        if not groups:
            raise ReportTableError(f"bands: policy {ctx.policy.name} has no bands for {breakdown}")
        out[COLUMN_FOR.get(breakdown, breakdown)] = groups
    return out


def _band_offers(ctx, counts: CountTable, breakdowns: list[str], banded: dict, rule, released: dict) -> list[dict]:
    """For each breakdown the pack could band and this table does not: the table's loss as released
    and the banded version's, protected alone, when the bands hide strictly fewer students."""
    from workbench.disclosure.bands import compare_bands

    offers = []
    for breakdown in breakdowns:
        dim = COLUMN_FOR.get(breakdown, breakdown)
        groups = ctx.policy.bands(breakdown)
        if not groups or dim in banded:
            continue
        comparison = compare_bands(counts, dim, groups, rule, intervals="proof")
        offer = comparison.as_dict()
        if released["students_hidden"] is not None:
            offer["as_asked"] = dict(released)
            offer["offered"] = comparison.banded.is_safe and (
                comparison.banded_loss.students_hidden < released["students_hidden"])
        if offer["offered"]:
            offers.append(offer)
    return offers


def _put(frame: pd.DataFrame, key: str, displays: list[RateDisplay]) -> None:
    frame[key] = [d.text for d in displays]
    frame[f"{key}_percent"] = pd.array([d.number for d in displays], dtype="Float64")


def _district_attendance(district: pd.DataFrame, counts: CountTable, rule) -> tuple[list, list]:
    """The district's attendance rate for the table's groups (every group of the district is large or marked)."""
    totals = _with_margins(district[list(counts.dims) + ["students", "days_enrolled", "days_absent"]].astype(
        {"students": "int64", "days_enrolled": "int64", "days_absent": "int64"}), list(counts.dims),
        ["students", "days_enrolled", "days_absent"])
    totals[list(counts.dims)] = totals[list(counts.dims)].astype(str)
    lookup = {tuple(r[:len(counts.dims)]): r[len(counts.dims):] for r in totals.itertuples(index=False)}
    numbers, texts = [], []
    for labels in counts.labels().astype(str).itertuples(index=False):
        students, enrolled, absent = lookup.get(tuple(labels), (0, 0, 0))
        if students == 0 or enrolled == 0:
            numbers.append(None)
            texts.append(NOT_APPLICABLE)
        elif rule.is_small(int(students)):
            numbers.append(None)
            texts.append(SUPPRESSED_MARK)
        else:
            rate = round(100.0 * (enrolled - absent) / enrolled, 1)
            numbers.append(rate)
            texts.append(f"{rate:.1f}%")
    return numbers, texts


def _footnotes(ctx, rule, columns: list[MeasureColumn], not_applicable: bool = False) -> list[str]:
    comparison = "fewer than" if rule.comparison == "<" else "at most"
    notes = [
        f"{SUPPRESSED_MARK} Suppressed: a group of {comparison} {rule.threshold} students ({ctx.policy.name} "
        "small-group rule), or a figure withheld so that such a group cannot be worked out from the totals "
        "and the other tables of this release. Zero counts are shown.",
        "Percentages are shown to one decimal for groups large enough under the same rule; extreme values "
        "are shown as ranges such as <=5% or >=95%, by group size.",
    ]
    if rule.numerator_threshold is not None:
        notes.append(
            f"Where fewer than {rule.numerator_threshold} students of a group have (or do not have) the outcome, "
            "the percentage is shown as a range wide enough that their number cannot be told, or not at all."
        )
    notes.append(
        "Every table of this school year was checked together by an attacker model: no suppressed count, and no "
        "number of students with an outcome in a hidden or coded group, can be worked out from what is released."
    )
    if not_applicable:
        notes.append(
            f"{NOT_APPLICABLE} Not applicable: no student of the group is counted in the measure (for example a "
            "grade the state does not test, a grade without course marks, or a group with no students). It is "
            f"not a suppressed value: those show {SUPPRESSED_MARK}."
        )
    for column in columns:
        if column.measure in MEASURE_DENOMINATOR:
            notes.append(f"{column.title}: percentage of {MEASURE_DENOMINATOR[column.measure]}.")
    return notes


def year_over_year(tables: list[ReportTable]) -> pd.DataFrame:
    """Each measure's overall percentage by year and the change, from published Total rows only.

    Uses nothing but what the tables already publish, so it adds no disclosure: a year whose
    total is suppressed or coded shows its mark, and then no change is computed.
    """
    if not tables:
        return pd.DataFrame()
    ordered = sorted(tables, key=lambda t: t.year)
    rows = []
    for column in ordered[-1].columns:
        row = {"Measure": column.title}
        numbers = []
        for table in ordered:
            total = table.frame[(table.frame[table.dims] == TOTAL).all(axis=1)]
            text = total[column.key].iloc[0] if len(total) else ""
            number = total[f"{column.key}_percent"].iloc[0] if len(total) else pd.NA
            row[table.year] = text
            numbers.append(number)
        if len(numbers) >= 2 and not pd.isna(numbers[-1]) and not pd.isna(numbers[-2]):
            row["Change (points)"] = f"{numbers[-1] - numbers[-2]:+.1f}"
        else:
            row["Change (points)"] = ""
        rows.append(row)
    # Indexed by the measure, so the table shows names, not row numbers; a count of students
    # alone (enrolled) has no percentage and leaves the table empty.
    columns = ["Measure", *(table.year for table in ordered), "Change (points)"]
    return pd.DataFrame(rows, columns=columns).set_index("Measure")
