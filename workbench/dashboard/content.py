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
from dataclasses import dataclass, field
from pathlib import Path

from workbench.release.store import ReleaseError, ReleaseStore

STYLE = """<style>
.workbench-release h2 {margin-top: 0.5em}
.workbench-facts {display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em}
.workbench-facts dt {font-weight: bold}
.workbench-table-scroll {overflow-x: auto}
.workbench-table {border-collapse: collapse; margin: 0.5em 0; font-size: 0.85em}
.workbench-table th, .workbench-table td {border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right}
.workbench-footnotes {font-size: 0.85em}
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
class ReleaseTable:
    name: str
    title: str
    columns: list[str]
    rows: list[list[str]]
    footnotes: list[str]
    downloads: list[str]  # paths relative to the release folder


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
    charts: list[tuple[str, bytes]] = field(default_factory=list)


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


def load_table(files: dict[str, bytes], name: str, fallback_title: str = "") -> ReleaseTable:
    """One table from the release's verified files (`read_shown_files`)."""
    csv_name, xlsx_name = f"tables/{name}.csv", f"tables/{name}.xlsx"
    keys, rows = csv_display_rows(files[csv_name].decode("utf-8"), csv_name)
    titles, notes = _xlsx_titles_and_notes(files.get(xlsx_name))
    columns = titles if titles and len(titles) == len(keys) else keys
    title, footnotes = (notes[0], notes[1:]) if notes else (fallback_title or name, [])
    downloads = [n for n in (csv_name, xlsx_name) if n in files]
    return ReleaseTable(name, title, columns, rows, footnotes, downloads)


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
        years=[str(y) for y in request.get("years") or []],
        policy=str((manifest.get("policy") or {}).get("title") or ""),
    )
    protection = manifest.get("protection") or {}
    names = sorted({Path(f).stem for f in files if f.startswith("tables/") and f.endswith(".csv")},
                   key=lambda n: (list(protection).index(n) if n in protection else len(protection), n))
    for name in names:
        content.tables.append(load_table(verified, name, (protection.get(name) or {}).get("title", "")))
    for name in sorted(f for f in files if f.startswith("charts/") and f.endswith(".png")):
        content.charts.append((name, verified[name]))
    return content


def release_label(release_id: str, manifest: dict) -> str:
    """How a release is named in the menu: its id, purpose and date received."""
    request = manifest.get("request") or {}
    return f"{release_id}: {request.get('purpose', '')} (received {request.get('received', '')})"


def download_url(base_url: str, release_id: str, relative: str) -> str:
    return f"{base_url.rstrip('/')}/workbench/download/{release_id}/{relative}"


def render_html(content: ReleaseContent, base_url: str = "/") -> str:
    """The release as one HTML fragment: heading, request facts, tables, footnotes, charts, links."""
    e = html.escape
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
    for table in content.tables:
        head = "".join(f"<th>{e(c)}</th>" for c in table.columns)
        body = "".join("<tr>" + "".join(f"<td>{e(v)}</td>" for v in row) + "</tr>" for row in table.rows)
        notes = "".join(f"<li>{e(n)}</li>" for n in table.footnotes)
        links = " ".join(
            f"<a class='workbench-download' href='{e(download_url(base_url, content.release_id, d))}' download>"
            f"Download {e(Path(d).suffix[1:].upper())}</a>" for d in table.downloads)
        parts.append(
            f"<section class='workbench-table-block' data-table='{e(table.name)}'>"
            f"<h3>{e(table.title)}</h3>"
            f"<div class='workbench-table-scroll'><table class='workbench-table'><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table></div>"
            f"<ul class='workbench-footnotes'>{notes}</ul><p>{links}</p></section>")
    for name, png in content.charts:
        encoded = base64.b64encode(png).decode()
        parts.append(f"<figure class='workbench-chart'><img alt='{e(Path(name).stem)}' "
                     f"src='data:image/png;base64,{encoded}' style='max-width:100%'/></figure>")
    parts.append("</div>")
    return "".join(parts)
