"""The save-time check: a notebook is never stored with outputs the guard would have hidden.

The guard works while a notebook runs; a notebook can still reach the disk with outputs it never
saw (a kernel without the guard, an output pasted from elsewhere, widget state the browser
saves). Whenever a notebook is stored, every output is read again, the way the release check
reads one:

* every text payload (all MIME types but binary images, stream text, tracebacks, output
  metadata, and the widget state in the notebook's metadata) for student identifiers by value;
* every table (HTML tables, the JSON table schema, and text that parses as a table) for small
  counts and student-level rows, with the same rules as the guard (`masking.guard_table`).

An output with a finding is removed, and the cell gets a visible note saying what kind of thing
was removed and why, never the value. Three places run it:

* JupyterLab: `pre_save_hook` (``ContentsManager.pre_save_hook``, set by the Jupyter config
  ``workbench kernel install`` writes);
* papermill: the ``workbench`` engine (`workbench.guard.papermill_engine`), which checks each
  save of the output notebook;
* the command line: ``workbench scan NOTEBOOK...``.

No Jupyter imports at module level: the check is plain nbformat JSON.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from workbench.guard.identifiers import ALLOWED_IDENTIFIERS, KINDS
from workbench.guard.masking import WITHHELD, guard_table

NOTE_PREFIX = "workbench guard: "
BANNER = "workbench guard:"
_BINARY_PREFIXES = ("image/", "audio/", "video/", "application/pdf")
_WIDGET_STATE = "application/vnd.jupyter.widget-state+json"

KIND_WORDS = {
    "student_id": "a student ID",
    "name": "a student's name",
    "date_of_birth": "a student's date of birth",
    "small_count": "a small count",
    "student_rows": "student-level rows",
    "unreadable": "content the check could not read",
}


@dataclass(frozen=True)
class Finding:
    cell: int  # 1-based; 0 for the notebook's metadata
    output: int  # 1-based within the cell; 0 for the metadata
    kind: str
    where: str  # MIME type or part

    def __str__(self) -> str:
        place = "notebook metadata" if self.cell == 0 else f"cell {self.cell} output {self.output}"
        return f"{place} ({self.where}): {KIND_WORDS.get(self.kind, self.kind)}"


@dataclass
class ScanResult:
    findings: list[Finding] = field(default_factory=list)
    outputs: int = 0

    @property
    def clean(self) -> bool:
        return not self.findings

    def kinds(self) -> Counter:
        return Counter(finding.kind for finding in self.findings)


# --- reading outputs ----------------------------------------------------------------------------

def _text(payload: Any) -> str:
    if isinstance(payload, list):
        return "".join(str(part) for part in payload)
    if isinstance(payload, str):
        return payload
    return json.dumps(payload)


def _is_binary(mime: str) -> bool:
    return mime.startswith(_BINARY_PREFIXES) and mime != "image/svg+xml"


def _payloads(output: dict) -> Iterator[tuple[str, Any]]:
    """(where, payload) for every part of one output that a reader could see."""
    if "text" in output:
        yield output.get("name", "stream"), _text(output["text"])
    for mime, payload in (output.get("data") or {}).items():
        if not _is_binary(mime):
            yield mime, payload
    if output.get("output_type") == "error":
        yield "traceback", "\n".join([str(output.get("ename", "")), str(output.get("evalue", ""))] + list(output.get("traceback", [])))
    if output.get("metadata"):
        yield "metadata", output["metadata"]


class _Tables(HTMLParser):
    """Each HTML table as (header labels, body rows of (index cells, value cells))."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[tuple[list[str], list[tuple[list[str], list[str]]]]] = []
        self._row: list[tuple[str, str]] | None = None
        self._cell: list[str] | None = None
        self._tag = ""
        self._header: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append(([], []))
        elif tag == "tr" and self.tables:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell, self._tag = [], tag

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append((self._tag, " ".join("".join(self._cell).split())))
            self._cell = None
        elif tag == "tr" and self._row is not None and self.tables:
            header, body = self.tables[-1]
            if all(kind == "th" for kind, _ in self._row) and not body:
                header[:] = [text for _, text in self._row] if not header or any(t for _, t in self._row[1:]) else header
            else:
                index = [text for kind, text in self._row if kind == "th"]
                values = [text for kind, text in self._row if kind == "td"]
                body.append((index, values))
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _html_frames(html: str) -> Iterator[pd.DataFrame]:
    parser = _Tables()
    parser.feed(html)
    for header, body in parser.tables:
        if not body:
            continue
        width = max(len(values) for _, values in body)
        rows = [values + [""] * (width - len(values)) for _, values in body]
        labels = header[-width:] if len(header) >= width else [f"column {i}" for i in range(width)]
        index = [" ".join(idx) for idx, _ in body]
        frame = pd.DataFrame(rows, columns=_unique(labels))
        if any(index):
            frame.index = pd.Index(index)
        yield frame


def _unique(labels: list[str]) -> list[str]:
    seen: Counter = Counter()
    result = []
    for label in labels:
        seen[label] += 1
        result.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return result


def _text_frame(text: str) -> pd.DataFrame | None:
    """Text laid out as a table (pandas' plain repr, a printed frame), or None."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2 or BANNER in text:
        return None
    try:
        frame = pd.read_fwf(io.StringIO("\n".join(lines)), dtype=str)
    except Exception:  # noqa: BLE001 - text that is not a table has no table to check
        return None
    if frame.shape[0] < 1 or frame.shape[1] < 2:
        return None
    return frame


def _frames(where: str, payload: Any) -> Iterator[pd.DataFrame]:
    if where == "text/html":
        text = _text(payload)
        if BANNER not in text:
            yield from _html_frames(text)
    elif where == "application/vnd.dataresource+json" and isinstance(payload, dict):
        rows = payload.get("data") or []
        if rows:
            frame = pd.DataFrame(rows)
            yield frame.drop(columns=[c for c in ("index", "level_0") if c in frame.columns])
    elif where in ("text/plain", "stdout", "stderr", "stream"):
        frame = _text_frame(_text(payload))
        if frame is not None:
            yield frame


# --- the check ------------------------------------------------------------------------------

def scan_notebook(notebook: dict, index: Any, rule: Any, level: str, memo: dict | None = None) -> ScanResult:
    """Every output of `notebook` (nbformat 4 as a dict) that shows what the guard would hide.

    `memo` (a dict kept by the caller) remembers each output's findings by its content, index,
    rule and level: a notebook saved after every cell is then read once per output, not once per
    save.
    """
    allowed = ALLOWED_IDENTIFIERS.get(level, frozenset())
    kinds = [kind for kind in KINDS if kind not in allowed]
    result = ScanResult()
    for number, cell in enumerate(notebook.get("cells", []), start=1):
        for position, output in enumerate(cell.get("outputs", []) or [], start=1):
            result.outputs += 1
            if memo is None:
                result.findings += _output_findings(output, number, position, index, rule, level, kinds)
            else:
                result.findings += _remembered_findings(memo, output, number, position, index, rule, level, kinds)
    widgets = (notebook.get("metadata") or {}).get("widgets")
    if widgets and kinds:
        for found in sorted({f.kind for f in index.find(json.dumps(widgets), kinds)}):
            result.findings.append(Finding(0, 0, found, "widget state"))
    return result


def _output_findings(output: dict, cell: int, position: int, index: Any, rule: Any, level: str, kinds: list[str]) -> list[Finding]:
    findings: list[Finding] = []
    has_table_format = bool({"text/html", "application/vnd.dataresource+json"} & set(output.get("data") or {}))
    try:
        for where, payload in _payloads(output):
            if kinds:
                text = _text(payload)
                for kind in sorted({f.kind for f in index.find(text, kinds)}):
                    findings.append(Finding(cell, position, kind, where))
            if where == "text/plain" and has_table_format:
                continue  # the same table, read from its HTML or JSON form
            for frame in _frames(where, payload):
                decision = guard_table(frame, rule, level)
                if decision.action == "summarize":
                    findings.append(Finding(cell, position, "student_rows", where))
                elif decision.report.masked_cells or _newly_withheld(frame, decision.report.withheld_columns):
                    findings.append(Finding(cell, position, "small_count", where))
    except Exception:  # noqa: BLE001 - an output the check cannot read is not stored
        findings.append(Finding(cell, position, "unreadable", "output"))
    return list(dict.fromkeys(findings))


def _remembered_findings(memo: dict, output: dict, cell: int, position: int, index: Any, rule: Any, level: str,
                         kinds: list[str]) -> list[Finding]:
    content = hashlib.sha256(json.dumps(output, sort_keys=True, default=str).encode()).hexdigest()
    try:
        # The index and rule objects themselves are in the key: kept alive, never mistaken for others.
        key = (content, index, rule, level)
        known = memo.get(key)
    except TypeError:  # an unhashable rule: read the output again
        return _output_findings(output, cell, position, index, rule, level, kinds)
    if known is None:
        known = [(f.kind, f.where) for f in _output_findings(output, cell, position, index, rule, level, kinds)]
        memo[key] = known
    return [Finding(cell, position, kind, where) for kind, where in known]


def _newly_withheld(frame: pd.DataFrame, columns: tuple[str, ...]) -> bool:
    """Whether an aggregate-only column shows values (a guarded output shows only the mark)."""
    for label in frame.columns:
        if str(label) in columns and not frame[label].astype(str).str.strip().isin([WITHHELD, ""]).all():
            return True
    return False


def note_for(findings: list[Finding]) -> str:
    kinds = sorted({KIND_WORDS.get(f.kind, f.kind) for f in findings})
    outputs = len({f.output for f in findings})
    noun = "output was" if outputs == 1 else "outputs were"
    return (
        f"{NOTE_PREFIX}{outputs} {noun} cleared when this notebook was saved: "
        f"{', '.join(kinds)} that the guard would have masked. Re-run the cell in the "
        "Python 3 (workbench) kernel to see the guarded output.\n"
    )


def clean_notebook(notebook: dict, result: ScanResult) -> dict:
    """`notebook` with the outputs that have findings removed, and a note in each cell concerned."""
    if result.clean:
        return notebook
    cleaned = copy.deepcopy(notebook)
    by_cell: dict[int, list[Finding]] = {}
    for finding in result.findings:
        by_cell.setdefault(finding.cell, []).append(finding)
    for number, findings in by_cell.items():
        if number == 0:
            cleaned.get("metadata", {}).pop("widgets", None)
            continue
        cell = cleaned["cells"][number - 1]
        dropped = {finding.output for finding in findings}
        kept = [o for i, o in enumerate(cell.get("outputs", []), start=1) if i not in dropped]
        note = {"output_type": "stream", "name": "stderr", "text": note_for(findings)}
        cell["outputs"] = [note] + kept
    metadata = cleaned.setdefault("metadata", {})
    metadata["workbench_guard"] = {"cleared_outputs": len({(f.cell, f.output) for f in result.findings}),
                                   "kinds": sorted(result.kinds())}
    return cleaned


def check_notebook(notebook: dict, *, level: str | None = None, rule: Any = None, index: Any = None,
                   memo: dict | None = None) -> tuple[dict, ScanResult]:
    """Scan `notebook` with the guard's settings (or those given) and return it cleaned (`memo`: see
    `scan_notebook`)."""
    from workbench.guard import settings as guard_settings
    from workbench.guard.student_index import current_index

    chosen = guard_settings.current_settings()
    level = level or chosen.level
    if rule is None:
        rule = chosen.rule
    index = index if index is not None else current_index()
    if rule is None:  # no policy could be loaded: no table is stored
        rule = _BLOCK_EVERY_TABLE
    result = scan_notebook(notebook, index, rule, level, memo)
    return clean_notebook(notebook, result), result


class _BlockAll:
    """A rule under which every whole number is small: used when no policy is in force."""

    threshold = 10**18
    comparison = "<"
    suppress_zeros = True


_BLOCK_EVERY_TABLE = _BlockAll()


def check_notebook_file(path: str | Path, *, level: str | None = None, rule: Any = None, index: Any = None,
                        write: bool = True) -> ScanResult:
    """Check the notebook file at `path`; rewrite it cleaned when it has findings and `write`."""
    path = Path(path)
    notebook = json.loads(path.read_text(encoding="utf-8"))
    cleaned, result = check_notebook(notebook, level=level, rule=rule, index=index)
    if write and not result.clean:
        text = json.dumps(cleaned, indent=1, ensure_ascii=False) + "\n"
        temporary = path.with_name(f".{path.name}.workbench-scan")
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(path)
    return result


# --- JupyterLab -------------------------------------------------------------------------------

def pre_save_hook(model: dict, path: str = "", contents_manager: Any = None, **kwargs: Any) -> None:
    """``ContentsManager.pre_save_hook``: clean a notebook model in place before it is written.

    Jupyter logs and ignores a hook that raises, then saves anyway; so nothing escapes here: if
    the check itself fails, every output is cleared.
    """
    if model.get("type") != "notebook" or not isinstance(model.get("content"), dict):
        return
    content = model["content"]
    try:
        cleaned, result = check_notebook(content)
    except Exception as exc:  # noqa: BLE001 - fail closed
        cleaned = _cleared_entirely(content, type(exc).__name__)
        result = None
    if result is None or not result.clean:
        content.clear()
        content.update(cleaned)
        if contents_manager is not None and result is not None:
            contents_manager.log.warning("workbench guard: cleared %d output(s) of %s before saving",
                                         len({(f.cell, f.output) for f in result.findings}), path)


def _cleared_entirely(notebook: dict, reason: str) -> dict:
    cleaned = copy.deepcopy(notebook)
    note = {"output_type": "stream", "name": "stderr",
            "text": f"{NOTE_PREFIX}outputs cleared when saving: the save-time check failed ({reason}).\n"}
    for cell in cleaned.get("cells", []):
        if cell.get("outputs"):
            cell["outputs"] = [note]
    cleaned.get("metadata", {}).pop("widgets", None)
    return cleaned


__all__ = [
    "Finding",
    "ScanResult",
    "check_notebook",
    "check_notebook_file",
    "clean_notebook",
    "pre_save_hook",
    "scan_notebook",
]
