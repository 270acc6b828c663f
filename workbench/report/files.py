"""Writing release files so that the same content always gives the same bytes.

XLSX files are zip archives that carry the time they were written (in each zip entry and in the
document properties); re-running a request must reproduce the release exactly, so both are set
to the release's as-of date.
"""

from __future__ import annotations

import re
import zipfile
from datetime import date, datetime
from pathlib import Path

import pandas as pd

CREATOR = "workbench"


_WHOLE = re.compile(r"^-?\d{1,3}(,\d{3})*$|^-?\d+$")
_PERCENT = re.compile(r"^-?\d+(\.\d+)?%$")
MAX_WIDTH = 60


def _as_number(text):
    """A shown count ("1,234") or percentage ("45.3%") as the number it is, with its format;
    anything else (marks, coded ranges such as "<=5%", words) stays text."""
    if not isinstance(text, str):
        return text, None
    value = text.strip()
    if _WHOLE.match(value) and not (len(value) > 1 and value.startswith("0")):
        return int(value.replace(",", "")), "#,##0"
    if _PERCENT.match(value):
        return float(value[:-1]) / 100, "0.0%"
    return text, None


def _lay_out(sheet, frame: pd.DataFrame, numeric: bool, legend: list[str]) -> None:
    from openpyxl.styles import Alignment, Font

    for cell in sheet[1]:
        cell.font = Font(bold=True)
        cell.alignment = Alignment(wrap_text=True, vertical="top")
    sheet.freeze_panes = "A2"
    if numeric:
        for row in sheet.iter_rows(min_row=2, max_row=len(frame) + 1):
            for cell in row:
                value, number_format = _as_number(cell.value)
                if number_format:
                    cell.value, cell.number_format = value, number_format
                    cell.alignment = Alignment(horizontal="right")
    for index, column in enumerate(frame.columns, start=1):
        longest = max([len(str(column))] + [len(str(v)) for v in frame.iloc[:, index - 1].tolist()])
        sheet.column_dimensions[sheet.cell(row=1, column=index).column_letter].width = min(MAX_WIDTH, longest + 2)
    start = len(frame) + 3
    for offset, line in enumerate(legend):
        sheet.cell(row=start + offset, column=1, value=line).font = Font(italic=True)


def write_xlsx(path: str | Path, sheets: dict[str, pd.DataFrame], when: date | None = None, *,
               numeric: tuple[str, ...] = (), legends: dict[str, list[str]] | None = None) -> Path:
    """Write `sheets` with a bold, frozen header and fitted columns.

    Sheets named in `numeric` hold a report table: shown counts and percentages become numbers
    with their formats (suppression marks and coded ranges stay text, as in the CSV). Never name
    a sheet of student rows there: an ID such as 0041275 must stay text. `legends` adds lines
    (what the marks mean, footnotes) below a sheet's table.
    """
    path = Path(path)
    legends = legends or {}
    stamp = datetime.combine(when or date(2000, 1, 1), datetime.min.time())
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        for name, frame in sheets.items():
            frame.to_excel(writer, sheet_name=name, index=False)
            _lay_out(writer.sheets[name], frame, name in numeric, legends.get(name, []))
        properties = writer.book.properties
        properties.creator = CREATOR
        properties.lastModifiedBy = CREATOR
        properties.created = stamp
        properties.modified = stamp
    _fix_zip_times(path, stamp)
    return path


def _fix_zip_times(path: Path, stamp: datetime) -> None:
    with zipfile.ZipFile(path) as source:
        entries = [(info.filename, source.read(info.filename)) for info in source.infolist()]
    # openpyxl sets the modified time to "now" as it saves, whatever the properties said.
    iso = stamp.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    entries = [
        (name, re.sub(rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)", rb"\g<1>" + iso + rb"\g<2>", data))
        if name == "docProps/core.xml" else (name, data)
        for name, data in entries
    ]
    partial = path.with_name(path.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as target:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=stamp.timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(info, data)
    partial.replace(path)
