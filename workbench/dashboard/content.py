"""What a dashboard shows of one release, read from the released artifacts only.

Tables come from the released CSV (the numbers) and the XLSX next to it (the column titles, the
table title and the footnotes); suppressed cells keep the marks the release uses. Charts are the
released PNGs. Nothing here touches the warehouse, and nothing is computed: the page shows what was
released, character for character.

Every file is read once, into memory, and its SHA-256 compared with the manifest before anything of
it is shown: what reaches the page is the bytes that were checked, so a file altered after a page
was opened (or between the check and the read) is refused, never displayed.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from urllib.parse import urlencode

from workbench.dashboard import filters as filters_module
from workbench.dashboard.filters import Filters
from workbench.disclosure.rates import NOT_APPLICABLE
from workbench.release.store import ReleaseError, ReleaseStore

STYLE = """<style>
.workbench-release {min-width: 0; max-width: 100%}
.widget-html:has(.workbench-release), .widget-html-content:has(.workbench-release) {min-width: 0; max-width: 100%;
  overflow-x: hidden}
.workbench-release h2 {margin-top: 0.5em; overflow-wrap: anywhere}
.workbench-facts {display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 0.2em 1em}
.workbench-facts dt {font-weight: bold; grid-column: 1}
.workbench-facts dd {margin: 0; overflow-wrap: anywhere; grid-column: 2}
.workbench-filters {display: flex; flex-wrap: wrap; gap: 0.5em 1em; align-items: flex-end; margin: 1em 0;
  padding: 0.6em 0.8em; border: 1px solid #bbb; border-radius: 4px; background: #f6f8fa}
.workbench-filter {display: flex; flex-direction: column; min-width: 0; max-width: 100%}
.workbench-filter label {font-weight: bold; font-size: 0.9em}
.workbench-filters select, .workbench-filters button {font-size: 1em; padding: 0.25em; max-width: 100%}
.workbench-legend {font-size: 0.85em; border-left: 4px solid #2f6f9f; padding: 0.2em 0.8em; margin: 1em 0}
.workbench-legend p {margin: 0.2em 0}
.workbench-legend dl {display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 0.2em 0.8em; margin: 0}
.workbench-legend dt {font-weight: bold; grid-column: 1}
.workbench-legend dd {margin: 0; grid-column: 2}
.workbench-table-block {margin: 1.5em 0}
.workbench-table-scroll {overflow-x: auto; max-width: 100%}
.workbench-table-scroll:focus {outline: 2px solid #2f6f9f}
.workbench-table {border-collapse: collapse; margin: 0.5em 0; font-size: 0.85em}
.workbench-table th, .workbench-table td {border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right}
.workbench-table th:first-child, .workbench-table td:first-child {position: sticky; left: 0; background: #fff;
  text-align: left}
.workbench-footnotes {font-size: 0.85em}
.workbench-chart {margin: 1em 0}
.workbench-chart img {max-width: 100%; height: auto}
.workbench-hidden {position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0);
  white-space: nowrap}
</style>"""

# The one mark every released table uses for a suppressed cell (workbench.disclosure.rates; a
# unit test keeps them in step). Marks say nothing about why a cell is hidden.
SUPPRESSED_MARK = "*"


SHOWN_FILES = ("tables/", "charts/")


class ReleaseAltered(ReleaseError):
    """A release file no longer matches the checksum its manifest recorded."""


def read_verified(store: ReleaseStore, release_id: str, manifest: dict, name: str) -> bytes:
    """The bytes of one released file, after checking them against the manifest's checksum."""
    expected = (manifest.get("files") or {}).get(name)
    if not expected:
        raise ReleaseAltered(f"{release_id}: {name} is not in the manifest")
    data = (store.path_for(release_id) / name).read_bytes()
    if hashlib.sha256(data).hexdigest() != expected:
        raise ReleaseAltered(f"{release_id}: {name} does not match its checksum")
    return data


def read_shown_files(store: ReleaseStore, release_id: str, manifest: dict) -> dict[str, bytes]:
    """Every table and chart of the release, verified (ReleaseAltered when any one was changed)."""
    names = sorted(n for n in (manifest.get("files") or {}) if n.startswith(SHOWN_FILES))
    return {name: read_verified(store, release_id, manifest, name) for name in names}


@dataclass
class ReleaseChart:
    name: str  # path in the release folder
    measure: str  # the measure key it charts ("" when it belongs to no table)
    png: bytes
    alt: str

    @property
    def data_url(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode()


@dataclass
class ReleaseTable:
    name: str
    title: str
    columns: list[str]
    rows: list[list[str]]
    footnotes: list[str]
    downloads: list[str]  # paths relative to the release folder
    keys: list[str] = field(default_factory=list)  # the CSV column of each shown column
    dims: int = 1  # how many of the first columns are breakdowns
    year: str = ""
    charts: list[ReleaseChart] = field(default_factory=list)


@dataclass
class ReleaseContent:
    release_id: str
    organization: str
    purpose: str
    audience: str
    received: str
    as_of: str
    years: list[str]
    policy: str
    tables: list[ReleaseTable] = field(default_factory=list)
    charts: list[ReleaseChart] = field(default_factory=list)  # charts of no table


def csv_display_rows(text: str, name: str = "table") -> tuple[list[str], list[list[str]]]:
    """The displayed columns of a released CSV's text and its rows, with suppression marks.

    Displayed: the breakdown columns, students, and each measure's text column (the ``_percent``
    columns are the same values as numbers). A suppressed cell holds the mark in the file itself.
    """
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = list(reader.fieldnames or [])
    records = list(reader)
    if "students" not in header:
        raise ValueError(f"{name} is not a released aggregate table")
    dims = header[: header.index("students")]
    measures = [c for c in header[header.index("students") + 1:] if not c.endswith("_percent")]
    keys = [*dims, "students", *measures]
    rows = []
    for record in records:
        students = record["students"]
        if students and students != SUPPRESSED_MARK:
            students = f"{int(float(students)):,}"
        rows.append([*(record[d] for d in dims), students, *(record[m] for m in measures)])
    return keys, rows


def _xlsx_titles_and_notes(data: bytes | None) -> tuple[list[str] | None, list[str]]:
    """Column titles from the XLSX 'table' sheet and the lines of its 'notes' sheet."""
    if data is None:
        return None, []
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(data), read_only=True)
    try:
        titles = None
        if "table" in book.sheetnames:
            first = next(book["table"].iter_rows(values_only=True), None)
            titles = [str(v) for v in first] if first else None
        notes = []
        if "notes" in book.sheetnames:
            notes = [str(row[0]) for row in book["notes"].iter_rows(min_row=2, values_only=True) if row and row[0]]
        return titles, notes
    finally:
        book.close()


def load_table(files: dict[str, bytes], name: str, fallback_title: str = "", year: str = "") -> ReleaseTable:
    """One table from the release's verified files (`read_shown_files`)."""
    csv_name, xlsx_name = f"tables/{name}.csv", f"tables/{name}.xlsx"
    keys, rows = csv_display_rows(files[csv_name].decode("utf-8"), csv_name)
    titles, notes = _xlsx_titles_and_notes(files.get(xlsx_name))
    columns = titles if titles and len(titles) == len(keys) else keys
    title, footnotes = (notes[0], notes[1:]) if notes else (fallback_title or name, [])
    downloads = [n for n in (csv_name, xlsx_name) if n in files]
    year = year or (YEAR_IN_TITLE.match(title).group(1) if YEAR_IN_TITLE.match(title) else "")
    return ReleaseTable(name, title, columns, rows, footnotes, downloads, keys=keys, dims=keys.index("students"),
                        year=year)


YEAR_IN_TITLE = re.compile(r"^(\d{4}-\d{4})\b")


def chart_alt(png: bytes, fallback: str) -> str:
    """The chart's description written into the PNG when it was released (its alt text)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(png)) as image:
            text = (getattr(image, "text", None) or {}).get("Description")
    except (OSError, ValueError):
        text = None
    return str(text) if text else fallback


def _chart_owner(chart_stem: str, tables: list[ReleaseTable]) -> tuple[ReleaseTable | None, str]:
    """The table a chart belongs to (charts are written as <table>_<measure>.png) and its measure."""
    for table in sorted(tables, key=lambda t: -len(t.name)):
        if chart_stem.startswith(table.name + "_"):
            return table, chart_stem[len(table.name) + 1:]
    return None, ""


def load_release(store: ReleaseStore, release_id: str) -> ReleaseContent:
    """Everything the dashboard shows of one release (the caller has checked access).

    Raises ReleaseAltered when any shown file differs from its checksum.
    """
    manifest = store.manifest(release_id)
    verified = read_shown_files(store, release_id, manifest)
    request = manifest.get("request") or {}
    requester = request.get("requester") or {}
    decision = manifest.get("decision") or {}
    files = manifest.get("files") or {}
    content = ReleaseContent(
        release_id=release_id,
        organization=str(requester.get("organization") or ""),
        purpose=str(request.get("purpose") or ""),
        audience=str(request.get("audience") or ""),
        received=str(request.get("received") or ""),
        as_of=str(decision.get("as_of") or ""),
        years=[str(y) for y in _released_years(manifest)],
        policy=str((manifest.get("policy") or {}).get("title") or ""),
    )
    protection = manifest.get("protection") or {}
    names = sorted({Path(f).stem for f in files if f.startswith("tables/") and f.endswith(".csv")},
                   key=lambda n: (list(protection).index(n) if n in protection else len(protection), n))
    for name in names:
        summary = protection.get(name) or {}
        content.tables.append(load_table(verified, name, summary.get("title", ""), str(summary.get("year") or "")))
    for name in sorted(f for f in files if f.startswith("charts/") and f.endswith(".png")):
        table, measure = _chart_owner(Path(name).stem, content.tables)
        title = next((c for k, c in zip(table.keys, table.columns) if k == measure), measure) if table else ""
        alt = chart_alt(verified[name], f"Chart: {title}, {table.title}" if table else f"Chart {Path(name).stem}")
        chart = ReleaseChart(name, measure, verified[name], alt)
        (table.charts if table else content.charts).append(chart)
    return content


def _released_years(manifest: dict) -> list:
    """The school years the release covers: its plan's (a year asked may have been left out),
    else the decision's, for a release made before manifests carried the plan."""
    for part in ("plan", "decision"):
        years = (manifest.get(part) or {}).get("years")
        if years is not None:
            return list(years)
    return list((manifest.get("request") or {}).get("years") or [])


def release_label(release_id: str, manifest: dict) -> str:
    """How a release is named in the menu: its id, purpose and date received."""
    request = manifest.get("request") or {}
    return f"{release_id}: {request.get('purpose', '')} (received {request.get('received', '')})"


def download_url(base_url: str, release_id: str, relative: str) -> str:
    return f"{base_url.rstrip('/')}/workbench/download/{release_id}/{relative}"


LEGEND = (
    "<div class='workbench-legend' role='note' aria-label='How to read the tables'><p><strong>How to read the "
    f"tables</strong></p><dl><dt>{SUPPRESSED_MARK}</dt><dd>Suppressed: a small group, or a figure withheld so that "
    "a small group cannot be worked out from the other figures.</dd>"
    f"<dt>{NOT_APPLICABLE}</dt><dd>Not applicable: no student of the group is counted in the measure (a grade "
    "without state tests or without course marks, or a group with no students). Nothing is hidden there.</dd>"
    "<dt>&lt;= or &gt;=</dt><dd>A range: the exact percentage is withheld because the group is small or the value "
    "is extreme.</dd></dl></div>")


def _select(name: str, label: str, all_label: str, options, chosen: str) -> str:
    e = html.escape
    items = [f"<option value=''{' selected' if not chosen else ''}>{e(all_label)}</option>"]
    items += [f"<option value='{e(value)}'{' selected' if value == chosen else ''}>{e(text)}</option>"
              for value, text in options]
    return (f"<div class='workbench-filter'><label for='workbench-filter-{name}'>{e(label)}</label>"
            f"<select id='workbench-filter-{name}' name='{name}'>{''.join(items)}</select></div>")


def filter_form(content: ReleaseContent, filters: Filters, base_url: str = "/") -> str:
    """A plain GET form: the server picks the released tables and columns, no script needed."""
    e = html.escape
    options = filters_module.options_for(content)
    clear = f"{base_url}?{urlencode({'release': content.release_id})}"
    return (f"<form class='workbench-filters' method='get' action='{e(base_url)}' role='search' "
            f"aria-label='Filter the tables'><input type='hidden' name='release' value='{e(content.release_id)}'>"
            + _select("year", "School year", "All school years", options.years, filters.year)
            + _select("measure", "Measure", "All measures", options.measures, filters.measure)
            + _select("group", "Group", "All groups", options.groups, filters.group)
            + "<div class='workbench-filter-actions'><button type='submit'>Show</button>"
            + (f" <a class='workbench-clear' href='{e(clear)}'>Clear filters</a>" if filters.active else "")
            + "</div></form>")


def describe_filters(content: ReleaseContent, filters: Filters) -> str:
    """What the page shows, in words (read out to screen readers after a change)."""
    options = filters_module.options_for(content)
    chosen = [dict(options.years).get(filters.year), dict(options.measures).get(filters.measure),
              dict(options.groups).get(filters.group)]
    words = [w for w in chosen if w]
    return "Showing all tables." if not words else "Showing tables for: " + "; ".join(words) + "."


def _chart_html(chart: ReleaseChart) -> str:
    e = html.escape
    return (f"<figure class='workbench-chart' data-chart='{e(chart.name)}' data-measure='{e(chart.measure)}'>"
            f"<img alt='{e(chart.alt)}' src='{chart.data_url}'></figure>")


def render_html(content: ReleaseContent, base_url: str = "/", filters: Filters | None = None,
                with_form: bool = True) -> str:
    """The release as one HTML fragment: heading, request facts, filters, tables with their charts.

    `filters` choose among the released tables and measure columns (workbench.dashboard.filters);
    `with_form` adds the static page's filter form (the live page has widgets instead).
    """
    e = html.escape
    filters = filters or Filters()
    parts = [
        f"<div class='workbench-release' data-release='{e(content.release_id)}'>",
        f"<h2>{e(content.release_id)}</h2>",
        "<dl class='workbench-facts'>",
        f"<dt>Requested by</dt><dd>{e(content.organization)}</dd>",
        f"<dt>Purpose</dt><dd class='workbench-purpose'>{e(content.purpose)}</dd>",
        f"<dt>Audience</dt><dd>{e(content.audience)}</dd>",
        f"<dt>Received</dt><dd class='workbench-received'>{e(content.received)}</dd>",
        f"<dt>Released as of</dt><dd class='workbench-as-of'>{e(content.as_of)}</dd>",
        f"<dt>School years</dt><dd>{e(', '.join(content.years))}</dd>",
        f"<dt>Rules</dt><dd>{e(content.policy)}</dd>",
        "</dl>",
    ]
    if with_form and content.tables:
        parts.append(filter_form(content, filters, base_url))
    parts.append(f"<p class='workbench-showing' role='status'>{e(describe_filters(content, filters))}</p>")
    parts.append(LEGEND)
    shown = filters_module.apply(content, filters)
    if content.tables and not shown:
        parts.append("<p class='workbench-no-match'>No released table matches these filters.</p>")
    for table in shown:
        heading = f"workbench-title-{table.name}"
        head = "".join(f"<th scope='col'>{e(c)}</th>" for c in table.columns)
        body = "".join("<tr>" + "".join(f"<td>{e(v)}</td>" for v in row) + "</tr>" for row in table.rows)
        notes = "".join(f"<li>{e(n)}</li>" for n in table.footnotes)
        links = " ".join(
            f"<a class='workbench-download' href='{e(download_url(base_url, content.release_id, d))}' download>"
            f"Download {e(Path(d).suffix[1:].upper())}<span class='workbench-hidden'> of {e(table.title)}</span></a>"
            for d in table.downloads)
        charts = "".join(_chart_html(chart) for chart in table.charts)
        parts.append(
            f"<section class='workbench-table-block' data-table='{e(table.name)}' data-year='{e(table.year)}'>"
            f"<h3 id='{e(heading)}'>{e(table.title)}</h3>"
            f"<p class='workbench-downloads'>{links}</p>"
            f"<div class='workbench-table-scroll' role='region' tabindex='0' aria-labelledby='{e(heading)}'>"
            f"<table class='workbench-table'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
            f"<ul class='workbench-footnotes'>{notes}</ul>{charts}</section>")
    if not filters.active:
        parts.extend(_chart_html(chart) for chart in content.charts)
    parts.append("</div>")
    return "".join(parts)
