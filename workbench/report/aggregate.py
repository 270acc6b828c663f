"""Protected aggregate tables for reports: counts protected as a whole, rates coded.

The method follows NCES SLDS Technical Brief 3 (minimum group size, complementary suppression,
top/bottom coding of percentages):

1. The table of students per group (every breakdown cell and every margin, down to the grand
   total) goes through the disclosure core: primary suppression by the policy's small-group rule,
   complementary suppression so no hidden count can be worked out from the totals, and the
   attacker's audit, which must prove it.
2. Each measure is published as a percentage only where its group's count is published and the
   measure's own group (students tested, students with marks...) is not small; percentages are
   top/bottom coded by group size. Measure numerators are not published as counts.
3. The district-wide comparison is the same percentage over every student in the district,
   under the same small-group rule.

Margins of a breakdown are sums of its cells because every student counts once per year (school
of record); a program breakdown is not additive and is not offered here.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.disclosure import protect_tables
from workbench.disclosure.percentages import code_percentage
from workbench.measures import MEASURES, compute
from workbench.report.files import write_xlsx
from workbench.errors import InputError

TOTAL = "Total"
PRIMARY_MARK = "*"
SECONDARY_MARK = "\u2020"  # dagger
MEASURE_DENOMINATOR = {
    "chronic_absence": "students enrolled 10 days or more",
    "course_failure": "students with course marks",
    "assessment_benchmark": "students tested",
}
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
    """One protected table: counts, coded percentages, marks and footnotes."""

    name: str
    title: str
    year: str
    dims: list[str]
    frame: pd.DataFrame  # dims, students, status, then <key> (text) and <key>_percent per measure
    columns: list[MeasureColumn]
    district: bool
    protection: dict
    footnotes: list[str] = field(default_factory=list)

    # -- what gets written -----------------------------------------------------------------
    def release_frame(self) -> pd.DataFrame:
        """The table as released: published counts, empty where suppressed; no attacker intervals."""
        keep = self.dims + ["students", "status"]
        for column in self.columns:
            keep += [column.key, f"{column.key}_percent"]
            if self.district:
                keep += [f"{column.key}_district", f"{column.key}_district_percent"]
        return self.frame[keep].copy()

    def display_frame(self) -> pd.DataFrame:
        """Readable columns with suppression marks, for notebooks, dashboards and XLSX."""
        out = pd.DataFrame({DIM_TITLES.get(d, d): self.frame[d] for d in self.dims})
        marks = self.frame["status"].map({"primary": PRIMARY_MARK, "secondary": SECONDARY_MARK}).fillna("")
        counts = self.frame["students"].map(lambda v: "" if pd.isna(v) else f"{int(v):,}")
        out["Students"] = np.where(marks != "", marks, counts)
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
        xlsx_path = write_xlsx(folder / f"{self.name}.xlsx", {"table": self.display_frame(), "notes": notes}, when)
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


def _measure_cells(con, column: MeasureColumn, year: str, breakdowns: list[str], dims: list[str],
                   student_ids, school_names) -> pd.DataFrame:
    result = compute(con, column.measure, [year], breakdowns, student_ids)
    if column.subject is not None:
        result = result[result["subject"] == column.subject]
    result = result.rename(columns={v: k for k, v in _COMPUTE_COLUMN.items() if k in breakdowns})
    result = _labels(result, dims, school_names)
    sums = ["students"] + (["days_enrolled", "days_absent"] if column.measure == "attendance_rate" else ["count"])
    result[sums] = result[sums].astype("int64")
    return _with_margins(result[dims + sums], dims, sums)


_COMPUTE_COLUMN = {"school": "school_id", "school_level": "level"}


def _coded(cells: pd.DataFrame, measure: str, rule) -> tuple[list[float | None], list[str]]:
    numbers, texts = [], []
    for row in cells.itertuples(index=False):
        if pd.isna(row.m_students):
            numbers.append(None)
            texts.append("")
            continue
        students = int(row.m_students)
        if measure == "attendance_rate":
            if students == 0 or rule.is_small(students):
                numbers.append(None)
                texts.append(PRIMARY_MARK if students else "")
            else:
                rate = round(100.0 * (row.m_days_enrolled - row.m_days_absent) / row.m_days_enrolled, 1)
                numbers.append(rate)
                texts.append(f"{rate:.1f}%")
            continue
        number, text = code_percentage(int(row.m_count), students, rule)
        numbers.append(number)
        texts.append(text)
    return numbers, texts


def build_table(
    ctx,
    measures: list[str],
    breakdowns: list[str],
    year: str | None = None,
    *,
    district_comparison: bool = False,
    name: str | None = None,
    title: str | None = None,
) -> ReportTable:
    """Compute, protect and code one table for the request's cohort and one school year."""
    year = year or ctx.latest_year
    breakdowns = list(breakdowns)
    if "program" in breakdowns:
        raise ReportTableError("a program breakdown does not add up to its totals; report each program as its own cohort")
    if not breakdowns:
        raise ReportTableError("give at least one breakdown (for example grade)")
    dims = [COLUMN_FOR.get(b, b) for b in breakdowns]
    rule = ctx.rule
    schools = ctx.con.table("schools").select("school_id", "name").to_pandas()
    school_names = dict(zip(schools["school_id"], schools["name"]))
    student_ids = ctx.population(year)

    enrolled = compute(ctx.con, "enrolled", [year], breakdowns, student_ids)
    enrolled = enrolled.rename(columns={v: k for k, v in _COMPUTE_COLUMN.items() if k in breakdowns})
    enrolled = _labels(enrolled, dims, school_names)[dims + ["students"]]
    if enrolled.empty:
        raise ReportTableError(f"no students of this cohort are enrolled in {year}")
    result = protect_tables(enrolled, dims, "students", rule)
    if not result.is_safe:
        raise ReportTableError("the protection could not be proven safe: " + "; ".join(result.problems))
    protected = result.table()
    frame = protected[dims + ["value", "status", "reason"]].rename(columns={"value": "students"})
    frame[dims] = frame[dims].astype(str)

    columns = _measure_columns(measures)
    district_ids_frames = {}
    for column in columns:
        cells = _measure_cells(ctx.con, column, year, breakdowns, dims, student_ids, school_names)
        cells[dims] = cells[dims].astype(str)
        merged = frame[dims + ["status"]].merge(cells.add_prefix("m_").rename(columns={f"m_{d}": d for d in dims}),
                                                on=dims, how="left")
        published = merged["status"] == "published"
        for column_name in [c for c in merged.columns if c.startswith("m_")]:
            merged.loc[~published, column_name] = np.nan
        numbers, texts = _coded(merged, column.measure, rule)
        marks = frame["status"].map({"primary": PRIMARY_MARK, "secondary": SECONDARY_MARK}).fillna("")
        frame[column.key] = [mark if mark else text for mark, text in zip(marks, texts)]
        frame[f"{column.key}_percent"] = pd.array(numbers, dtype="Float64")
        if district_comparison:
            district = _measure_cells(ctx.con, column, year, breakdowns, dims, None, school_names)
            district[dims] = district[dims].astype(str)
            joined = frame[dims].merge(district.add_prefix("m_").rename(columns={f"m_{d}": d for d in dims}), on=dims, how="left")
            d_numbers, d_texts = _coded(joined, column.measure, rule)
            frame[f"{column.key}_district"] = d_texts
            frame[f"{column.key}_district_percent"] = pd.array(d_numbers, dtype="Float64")
            district_ids_frames[column.key] = True

    summary = result.summary()
    protection = {
        "cells": summary["cells"], "primary": summary["primary"], "secondary": summary["secondary"],
        "exactly_disclosed": summary["exactly_disclosed"], "audit_safe": summary["safe"],
        "lp_count": summary["lp_count"],
    }
    comparison = "fewer than" if rule.comparison == "<" else "at most"
    footnotes = [
        f"{PRIMARY_MARK} Suppressed: a group of {comparison} {rule.threshold} students ({ctx.policy.name} small-group rule).",
        f"{SECONDARY_MARK} Suppressed so that a small group cannot be worked out from the totals (complementary suppression).",
        "Percentages are shown only for published groups; extreme values are shown as ranges such as <=5% "
        "or >=95%, by group size.",
        f"Protection checked by an attacker model: {protection['primary']} primary and {protection['secondary']} "
        f"complementary suppressions; no suppressed count can be determined from the published table "
        f"({protection['lp_count']} linear programs).",
    ]
    for column in columns:
        if column.measure in MEASURE_DENOMINATOR:
            footnotes.append(f"{column.title}: percentage of {MEASURE_DENOMINATOR[column.measure]}.")
    table_title = title or f"{year}: " + ", ".join(c.title for c in columns) + " by " + ", ".join(DIM_TITLES.get(d, d) for d in dims)
    table = ReportTable(
        name=name or f"{year}_{'_'.join(dims)}",
        title=table_title,
        year=year,
        dims=dims,
        frame=frame.drop(columns="reason"),
        columns=columns,
        district=district_comparison,
        protection=protection,
        footnotes=footnotes,
    )
    return table


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
    return pd.DataFrame(rows)
