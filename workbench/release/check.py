"""The release check: the second line of defence after the notebook guard.

Every artifact of a release is read back the way a recipient would read it: notebook outputs in
every MIME type (and cell sources and metadata), CSV, XLSX (cells and document properties), PNG
text chunks, JSON, Markdown and HTML. The check refuses a release that contains

- a student identifier (district or state ID), a student's full name or date of birth, where the
  release's level forbids it;
- an aggregate-only field (such as free/reduced lunch status) in a student-level artifact;
- an unsuppressed small count in a table: a published value under the policy's small-group rule
  in a column that holds counts of students;
- analyst-only information in a table: the columns `workbench protect --analyst` adds (status,
  reason, attacker intervals), or a second suppression mark. The release's audit assumed a
  recipient sees one mark for every suppressed cell and nothing about why;
- anything outside the release plan (the contract of `workbench.plan`): a student-level file with
  more rows in a year than the plan grants, an identified row or a listed name of a student the
  plan does not grant at that level, a column of a field not granted, a school year not granted,
  a table whose published total differs from the plan's population for its year, or a measure or
  breakdown not granted. What was released (rows per file and year, each table's total) is
  returned in `CheckReport.released` for the manifest.

Findings never quote the identifying value itself, only where it was found and what kind it is.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from workbench.disclosure.rules import SmallGroupRule

# Levels at which each kind of identifier may appear in a release.
ALLOWED_IDENTIFIERS = {
    "aggregate": frozenset(),
    "deidentified": frozenset(),
    "directory": frozenset({"name"}),
    "identified": frozenset({"student_id", "name", "date_of_birth"}),
}
COUNT_HEADERS = re.compile(
    r"^(students?|count|n|number|enrolled|headcount|numerator|denominator|total|"
    r"chronically absent|students meeting|students failing|students with)\b",
    re.IGNORECASE,
)
_DISTRICT_ID = re.compile(r"(?<![\d.])\d{7}(?![\d.])")
_STATE_ID = re.compile(r"(?<![\d.])[1-9]\d{9}(?![\d.])")
_ISO_DATE = re.compile(r"(?<!\d)(\d{4}-\d{2}-\d{2})(?!\d)")
_US_DATE = re.compile(r"(?<!\d)(\d{1,2})/(\d{1,2})/(\d{4})(?!\d)")
_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*")
# Columns that tell a reader why a cell is hidden or how well it is hidden: for analysts only.
ANALYST_COLUMNS = frozenset({"status", "reason", "interval_low", "interval_high", "outcome_low", "outcome_high"})
# Marks that distinguish kinds of suppression (a dagger for complementary cells, say).
OTHER_MARKS = ("\u2020", "\u2021")


@dataclass(frozen=True)
class Identifiers:
    """What identifies the students a release is about; loaded from the warehouse."""

    student_ids: frozenset[str] = frozenset()  # district and state IDs
    full_names: frozenset[tuple[str, str]] = frozenset()  # (first, last), lower case
    birth_dates: frozenset[str] = frozenset()  # ISO dates

    @classmethod
    def from_warehouse(cls, con, student_ids: Iterable[str] | None = None) -> "Identifiers":
        students = con.table("students")
        if student_ids is not None:
            students = students.filter(students.student_id.isin(list(student_ids)))
        frame = students.select("student_id", "state_id", "first_name", "last_name", "date_of_birth").to_pandas()
        return cls(
            student_ids=frozenset(frame["student_id"]) | frozenset(frame["state_id"]),
            full_names=frozenset(zip(frame["first_name"].str.lower(), frame["last_name"].str.lower())),
            birth_dates=frozenset(str(d)[:10] for d in frame["date_of_birth"]),
        )


@dataclass(frozen=True)
class Finding:
    artifact: str
    location: str
    kind: str  # student_id, name, date_of_birth, aggregate_only_field, small_count, link
    detail: str

    def __str__(self) -> str:
        return f"{self.artifact} [{self.location}]: {self.kind}: {self.detail}"


@dataclass
class CheckReport:
    level: str
    artifacts: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    released: dict[str, dict] = field(default_factory=dict)  # file or table -> what it holds (counts)

    @property
    def passed(self) -> bool:
        return not self.findings

    def summary(self) -> str:
        head = f"release check ({self.level}): {len(self.artifacts)} artifacts, "
        if self.passed:
            return head + "no findings"
        lines = [head + f"{len(self.findings)} finding(s); release refused"]
        lines += [f"  - {finding}" for finding in self.findings]
        return "\n".join(lines)


@dataclass
class _Text:
    location: str
    text: str


@dataclass
class _Table:
    location: str
    header: list[str]
    rows: list[list[str]]


class _HtmlTables(HTMLParser):
    """Tables (header row and body rows) and the visible text of an HTML fragment."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.text: list[str] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None and self.tables:
            self.tables[-1].append(self._row)
            self._row = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def _html_parts(location: str, html: str) -> Iterator[_Text | _Table]:
    parser = _HtmlTables()
    parser.feed(html)
    yield _Text(location, " ".join(parser.text))
    for index, table in enumerate(parser.tables):
        if len(table) >= 2:
            # pandas writes a second header row for the index name; fold header rows together.
            header_rows = [row for row in table if row and all(not _is_number(c) for c in row)]
            header = header_rows[0] if header_rows else table[0]
            body = [row for row in table if row not in header_rows]
            yield _Table(f"{location} table {index + 1}", header, body)


def _is_number(text: str) -> bool:
    return bool(re.fullmatch(r"-?\d+(\.\d+)?", text.strip().replace(",", "")))


def _notebook_parts(path: Path, name: str) -> Iterator[_Text | _Table]:
    notebook = json.loads(path.read_text())
    yield _Text(f"{name} metadata", json.dumps(notebook.get("metadata", {})))
    for number, cell in enumerate(notebook.get("cells", []), start=1):
        source = cell.get("source", "")
        yield _Text(f"{name} cell {number} source", "".join(source) if isinstance(source, list) else source)
        for output in cell.get("outputs", []):
            if "text" in output:
                text = output["text"]
                yield _Text(f"{name} cell {number} stream", "".join(text) if isinstance(text, list) else text)
            for mime, payload in (output.get("data") or {}).items():
                where = f"{name} cell {number} {mime}"
                content = "".join(payload) if isinstance(payload, list) else payload
                if mime == "text/html":
                    yield from _html_parts(where, content)
                elif mime.startswith("image/") and mime != "image/svg+xml":
                    yield from _image_parts(where, base64.b64decode(content))
                elif isinstance(content, str):
                    yield _Text(where, content)
                else:
                    yield _Text(where, json.dumps(content))
            if output.get("metadata"):
                yield _Text(f"{name} cell {number} output metadata", json.dumps(output["metadata"]))


def _image_parts(location: str, data: bytes) -> Iterator[_Text]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        chunks = {**getattr(image, "text", {}), **{k: v for k, v in image.info.items() if isinstance(v, str)}}
    if chunks:
        yield _Text(f"{location} metadata", json.dumps(chunks))


def _csv_parts(path: Path, name: str) -> Iterator[_Text | _Table]:
    text = path.read_text(encoding="utf-8-sig")
    yield _Text(name, text)
    rows = list(csv.reader(io.StringIO(text)))
    if rows:
        yield _Table(name, rows[0], rows[1:])


def _xlsx_parts(path: Path, name: str) -> Iterator[_Text | _Table]:
    from openpyxl import load_workbook

    workbook = load_workbook(path, read_only=True, data_only=True)
    properties = workbook.properties
    yield _Text(f"{name} properties", " ".join(str(getattr(properties, a) or "") for a in ("creator", "title", "subject", "description", "keywords", "lastModifiedBy")))
    for sheet in workbook.worksheets:
        rows = [["" if v is None else str(v) for v in row] for row in sheet.iter_rows(values_only=True)]
        yield _Text(f"{name} sheet {sheet.title}", "\n".join(" ".join(r) for r in rows))
        if rows:
            yield _Table(f"{name} sheet {sheet.title}", rows[0], rows[1:])
    workbook.close()


def _artifact_parts(path: Path, name: str) -> Iterator[_Text | _Table]:
    suffix = path.suffix.lower()
    if suffix == ".ipynb":
        yield from _notebook_parts(path, name)
    elif suffix == ".csv":
        yield from _csv_parts(path, name)
    elif suffix == ".xlsx":
        yield from _xlsx_parts(path, name)
    elif suffix == ".png":
        yield from _image_parts(name, path.read_bytes())
    elif suffix in (".html", ".htm"):
        yield from _html_parts(name, path.read_text())
    else:
        yield _Text(name, path.read_text(errors="replace"))


def _identifier_findings(part: _Text, artifact: str, allowed: frozenset[str], known: Identifiers | None) -> Iterator[Finding]:
    text = part.text
    if "student_id" not in allowed:
        for pattern, label in ((_DISTRICT_ID, "district"), (_STATE_ID, "state")):
            for match in pattern.finditer(text):
                if known is None or match.group(0) in known.student_ids:
                    yield Finding(artifact, part.location, "student_id", f"a {label} student ID")
    if known is None:
        return
    if "name" not in allowed and known.full_names:
        words = [w.lower() for w in _WORD.findall(text)]
        if any(pair in known.full_names for pair in zip(words, words[1:])):
            yield Finding(artifact, part.location, "name", "a student's full name")
    if "date_of_birth" not in allowed and known.birth_dates:
        dates = set(_ISO_DATE.findall(text))
        dates |= {f"{y}-{int(m):02d}-{int(d):02d}" for m, d, y in _US_DATE.findall(text)}
        if dates & known.birth_dates:
            yield Finding(artifact, part.location, "date_of_birth", "a student's date of birth")


def _analyst_findings(table: _Table, artifact: str) -> Iterator[Finding]:
    header = [h.strip() for h in table.header]
    found = sorted({h.lower() for h in header} & ANALYST_COLUMNS)
    if found:
        yield Finding(artifact, table.location, "analyst_only",
                      f"column(s) {', '.join(found)} are for analysts; a release shows one mark for every suppressed cell")
    for row_number, row in enumerate(table.rows, start=1):
        if any(cell.strip() in OTHER_MARKS for cell in row):
            yield Finding(artifact, f"{table.location} row {row_number}", "analyst_only",
                          "a second suppression mark tells which hidden cells are small")
            break


def _small_count_findings(table: _Table, artifact: str, rule: SmallGroupRule) -> Iterator[Finding]:
    header = [h.strip() for h in table.header]
    status_col = header.index("status") if "status" in header else None
    for column, title in enumerate(header):
        # In the protect format (value + status) `value` is a count; elsewhere it may be a rate.
        is_count = bool(COUNT_HEADERS.match(title.replace("_", " "))) or (title == "value" and status_col is not None)
        if not is_count:
            continue
        for row_number, row in enumerate(table.rows, start=1):
            if column >= len(row):
                continue
            cell = row[column].strip().replace(",", "")
            if not re.fullmatch(r"\d+(\.0+)?", cell):
                continue
            if status_col is not None and status_col < len(row) and row[status_col] not in ("", "published"):
                continue
            value = int(float(cell))
            if rule.is_small(value):
                yield Finding(artifact, f"{table.location} row {row_number}", "small_count",
                              f"column '{title}' shows a group under the small-group rule")


STUDENT_LEVEL_PREFIXES = ("extract", "roster", "directory")


def _is_student_level_file(name: str) -> bool:
    """Files of one row per student, by the names the report layer gives them."""
    return Path(name).name.startswith(STUDENT_LEVEL_PREFIXES)


def check_release(
    folder: str | Path,
    level: str,
    rule: SmallGroupRule,
    identifiers: Identifiers | None = None,
    aggregate_only_fields: Iterable[str] = (),
    student_level_artifacts: Callable[[str], bool] | None = None,
    *,
    plan=None,
    tables: dict[str, dict] | None = None,
    con=None,
) -> CheckReport:
    """Scan every artifact under `folder`; the report lists every finding.

    Without `identifiers` (no warehouse at hand), any 7-digit or 10-digit number counts as a
    possible student ID, and names and dates of birth cannot be checked. With a `plan`
    (workbench.plan.ReleasePlan) the files are held to it as well: `tables` are the protection
    summaries the template recorded (name -> year, dims, measures), `con` the warehouse, to look
    up the names of the students the plan grants.
    """
    student_level_artifacts = student_level_artifacts or _is_student_level_file
    if level not in ALLOWED_IDENTIFIERS:
        raise ValueError(f"unknown level {level!r}")
    folder = Path(folder)
    allowed = ALLOWED_IDENTIFIERS[level]
    report = CheckReport(level)
    aggregate_only = {f.lower() for f in aggregate_only_fields}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() or p.is_symlink()):
        name = path.relative_to(folder).as_posix()
        if path.is_symlink():  # a release never holds links; one could point at any file on the machine
            report.findings.append(Finding(name, "file", "link", "a link, not a file; not read"))
            continue
        report.artifacts.append(name)
        student_level = student_level_artifacts(name)
        for part in _artifact_parts(path, name):
            if isinstance(part, _Text):
                report.findings.extend(_identifier_findings(part, name, allowed, identifiers))
            elif student_level:
                bad = sorted(aggregate_only & {h.strip().lower() for h in part.header})
                if bad:
                    report.findings.append(Finding(name, part.location, "aggregate_only_field",
                                                   f"per-student column(s) {', '.join(bad)} may only be released in aggregate"))
            else:
                report.findings.extend(_small_count_findings(part, name, rule))
                report.findings.extend(_analyst_findings(part, name))
    if plan is not None:
        from workbench.release.contract import contract_findings

        findings, released = contract_findings(folder, plan, tables or {}, con, student_level_artifacts)
        report.findings.extend(findings)
        report.released = released
    # The same value can be found by several parsers of one artifact; report it once.
    unique = list(dict.fromkeys(report.findings))
    report.findings = unique
    return report
