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


def write_xlsx(path: str | Path, sheets: dict[str, pd.DataFrame], when: date | None = None) -> Path:
    path = Path(path)
    stamp = datetime.combine(when or date(2000, 1, 1), datetime.min.time())
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        for name, frame in sheets.items():
            frame.to_excel(writer, sheet_name=name, index=False)
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
