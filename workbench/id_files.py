"""Student IDs from a file someone exported: CSV, Excel or plain text.

Rosters arrive in every shape: with or without a header row, the header spelled ``Student Number``
or ``SASID``, a row number or a count beside the ID, a name column beside it. The ID column is
found by what it holds, not by its position or its title:

* a cell "looks like an ID" when it is digits only (spreadsheets may add ``.0`` or drop leading
  zeros; `workbench.cohort` repairs both later);
* the first row is a header when none of its cells looks like an ID;
* a column is a candidate when every filled cell below the header looks like an ID;
* one candidate whose cells are mostly written at full width (7-digit district or 10-digit state
  IDs) wins over candidates of short numbers (row numbers, counts, grades); a header that names
  an ID column (``student_id``, ``state_id``, ``sasid``, ...) settles a tie (a district ID column
  wins over a state ID column);
* anything else is ambiguous and refused with the columns named, never guessed.

Only the chosen column is returned, so a name or a birth date beside the IDs never reaches a
request, a decision, the register or a log. Errors name rows and columns, never cell contents.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from workbench.cohort import DISTRICT_ID_WIDTH, STATE_ID_WIDTH, split_id_text
from workbench.errors import InputError
from workbench.limits import excerpt_list, id_file_bytes

ID_FILE_SUFFIXES = (".csv", ".xlsx", ".xls", ".txt")
DISTRICT_HEADERS = ("student_id", "district_id", "student id", "studentid", "district id", "id")
STATE_HEADERS = ("state_id", "state id", "sasid")

_ID_LIKE = re.compile(r"\d+(\.0+)?")
_FULL_WIDTH = re.compile(rf"(\d{{{DISTRICT_ID_WIDTH}}}|[1-9]\d{{{STATE_ID_WIDTH - 1}}})(\.0+)?")
_CSV_DELIMITERS = ",;\t|"


class IdFileError(InputError):
    """An ID file that cannot be read, or whose ID column cannot be told apart."""


def _clean(cell: object) -> str:
    return "" if cell is None else str(cell).replace("\u00a0", " ").strip()


def _looks_like_id(cell: str) -> bool:
    return bool(_ID_LIKE.fullmatch(cell.replace(" ", "")))


def _column_label(index: int, header: list[str] | None) -> str:
    title = header[index] if header and index < len(header) and header[index] else None
    return f"column {index + 1}" + (f" ({title!r})" if title and len(title) <= 40 else "")


def _rows_label(numbers: list[int]) -> str:
    return "row" + ("s " if len(numbers) > 1 else " ") + excerpt_list([str(n) for n in numbers], 5)


def ids_from_rows(rows: list[list[object]], name: str) -> tuple[list[str], str]:
    """(IDs, id kind) from the rows of a sheet; see the module docstring for how the column is found."""
    table = [[_clean(cell) for cell in row] for row in rows]
    numbered = [(number, row) for number, row in enumerate(table, start=1) if any(row)]
    if not numbered:
        return [], "auto"
    first_number, first = numbered[0]
    header = first if not any(_looks_like_id(cell) for cell in first if cell) else None
    body = numbered[1:] if header is not None else numbered
    if not body:
        return [], "auto"
    width = max(len(row) for _, row in numbered)

    candidates: list[int] = []
    mostly_ids: dict[int, list[int]] = {}  # column -> row numbers of its cells that are not IDs
    for column in range(width):
        filled = [(number, row[column]) for number, row in body if column < len(row) and row[column]]
        if not filled:
            continue
        text_rows = [number for number, cell in filled if not _looks_like_id(cell)]
        if not text_rows:
            candidates.append(column)
        elif len(text_rows) * 2 < len(filled):
            mostly_ids[column] = text_rows

    if not candidates:
        if mostly_ids:
            column, text_rows = next(iter(mostly_ids.items()))
            verb = "holds" if len(text_rows) == 1 else "hold"
            raise IdFileError(f"{name}: {_column_label(column, header)} holds student IDs but {_rows_label(text_rows)} "
                              f"{verb} something else (not shown); correct or remove those rows")
        raise IdFileError(f"{name}: no column holds student IDs (digits only, one per row)")

    titles = [cell.lower() for cell in header] if header is not None else []
    named = [c for c in candidates if c < len(titles) and titles[c] in DISTRICT_HEADERS + STATE_HEADERS]

    def full_width(column: int) -> bool:
        cells = [row[column] for _, row in body if column < len(row) and row[column]]
        return sum(bool(_FULL_WIDTH.fullmatch(cell.replace(" ", ""))) for cell in cells) * 2 > len(cells)

    district_named = [c for c in named if titles[c] in DISTRICT_HEADERS]
    if len(named) == 1 or len(district_named) == 1:
        chosen = named[0] if len(named) == 1 else district_named[0]
    else:
        pool = named or candidates
        wide = [c for c in pool if full_width(c)]
        if len(wide) == 1:
            chosen = wide[0]
        elif len(pool) == 1 and not wide:
            chosen = pool[0]
        else:
            columns = " and ".join(_column_label(c, header) for c in (wide or pool))
            raise IdFileError(f"{name}: cannot tell which column holds the student IDs ({columns} both look like IDs); "
                              "keep only the ID column, or title it student_id (or state_id)")
    kind = "state" if titles and chosen < len(titles) and titles[chosen] in STATE_HEADERS else "auto"
    ids = [row[chosen] for _, row in body if chosen < len(row) and row[chosen]]
    return ids, kind


def _ids_from_text(text: str, name: str) -> list[str]:
    ids: list[str] = []
    bad: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        tokens = split_id_text(line)
        if number == 1 and len(tokens) == 1 and tokens[0].lower() in DISTRICT_HEADERS + STATE_HEADERS:
            continue
        for token in tokens:
            if _looks_like_id(token):
                ids.append(token)
            elif number not in bad:
                bad.append(number)
    if bad:
        lines = "line" + ("s " if len(bad) > 1 else " ") + excerpt_list([str(n) for n in bad], 5)
        verb = "hold" if len(bad) > 1 else "holds"
        raise IdFileError(f"{name}: {lines} {verb} something other than student IDs (not shown); "
                          "a text file lists IDs only")
    return ids


def _read_bytes(path: Path, name: str) -> bytes:
    limit = id_file_bytes()
    try:
        size = path.stat().st_size
        if size > limit:
            raise IdFileError(f"{name} is {size:,} bytes; ID files are read up to {limit:,} bytes")
        return path.read_bytes()
    except OSError as exc:
        raise IdFileError(f"{name}: cannot read the file: {exc.strerror or type(exc).__name__}") from None


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise IdFileError(f"{name}: line {line} is not UTF-8 text; export the file as UTF-8 CSV") from None


def _csv_rows(text: str, name: str) -> list[list[str]]:
    sample = text[:8192]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=_CSV_DELIMITERS)
    except csv.Error:  # one column, or nothing to go on: plain commas
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    try:
        return list(reader)
    except csv.Error:
        # A cell over the csv module's field limit (128 KB), or a NUL byte: no roster has either.
        raise IdFileError(f"{name}: row {reader.line_num} cannot be read as CSV (a cell is far too long or holds "
                          "a NUL byte; not shown)") from None


def _excel_rows(path: Path, name: str) -> list[list[object]]:
    import pandas as pd

    try:
        frame = pd.read_excel(path, header=None, dtype=str, keep_default_na=False)
    except Exception:  # openpyxl and xlrd raise many kinds of errors for a damaged workbook
        raise IdFileError(f"{name}: cannot be read as an Excel workbook") from None
    return frame.values.tolist()


def read_id_file(path: str | Path, name: str | None = None) -> tuple[list[str], str]:
    """Student IDs from a CSV, Excel or text file, always as text. Returns (ids, id kind)."""
    path = Path(path)
    name = name or str(path)
    suffix = path.suffix.lower()
    if suffix not in ID_FILE_SUFFIXES:
        raise IdFileError(f"{name}: IDs are read from {', '.join(ID_FILE_SUFFIXES)} files, "
                          f"not {suffix or 'a file without extension'}")
    data = _read_bytes(path, name)
    if suffix == ".txt":
        return _ids_from_text(_decode(data, name), name), "auto"
    if suffix == ".csv":
        return ids_from_rows(_csv_rows(_decode(data, name), name), name)
    return ids_from_rows(_excel_rows(path, name), name)
