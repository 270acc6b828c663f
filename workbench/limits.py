"""How much the workbench reads from a file people hand it, and how much of it an error repeats.

A request or policy file is a few kilobytes and an ID file a few hundred; anything far larger is
a mistake (the wrong file) or an attack, and is refused before it is read. An administrator can
raise these limits, per machine, in the environment or in ``workbench.toml``:

    [limits]
    yaml_bytes = 1000000        # request files and policy packs (WORKBENCH_MAX_YAML_BYTES)
    id_file_bytes = 10000000    # cohort ID files: CSV, XLSX, TXT (WORKBENCH_MAX_ID_FILE_BYTES)
    table_bytes = 100000000     # count tables given to `workbench protect` / `audit` (WORKBENCH_MAX_TABLE_BYTES)
    table_cells = 50000         # their cells with every margin (WORKBENCH_MAX_TABLE_CELLS)

The nesting depth of a YAML document, the length of each request field, the length of text an
error message repeats and the number of problems it lists are fixed: no hand-written request
needs more, and raising them only helps an attacker.
"""

from __future__ import annotations

import os

DEFAULT_YAML_BYTES = 1_000_000
DEFAULT_ID_FILE_BYTES = 10_000_000
DEFAULT_TABLE_BYTES = 100_000_000
# The suppression search and its audit grow faster than the table: a 4-way table of 18,816 cells
# takes seconds (benchmarks/results/disclosure-speed.md); a sparse 6-way one of 96,768 cells had not
# finished after 5 minutes on a shared 2-core machine (1.1 GB).
DEFAULT_TABLE_CELLS = 50_000
YAML_MAX_DEPTH = 40
ECHO_CHARS = 60
ECHO_ITEMS = 10
# At most this many problems are listed for one file; the rest are counted.
PROBLEMS_LISTED = 20
# Longest text a request field may hold: a purpose or audience is a few sentences, a name or an
# email one line, an ID or code a word. Longer text is a paste gone wrong (or an attempt to fill
# the register and every message that repeats the field).
TEXT_CHARS = 2_000
NOTE_CHARS = 10_000
NAME_CHARS = 200
CODE_CHARS = 100

_SETTINGS = {
    "yaml_bytes": ("WORKBENCH_MAX_YAML_BYTES", DEFAULT_YAML_BYTES),
    "id_file_bytes": ("WORKBENCH_MAX_ID_FILE_BYTES", DEFAULT_ID_FILE_BYTES),
    "table_bytes": ("WORKBENCH_MAX_TABLE_BYTES", DEFAULT_TABLE_BYTES),
    "table_cells": ("WORKBENCH_MAX_TABLE_CELLS", DEFAULT_TABLE_CELLS),
}


def _configured(name: str) -> int:
    from workbench.config import read_config
    from workbench.errors import InputError

    variable, default = _SETTINGS[name]
    raw = os.environ.get(variable)
    where = variable
    if raw is None:
        try:
            raw = (read_config().get("limits") or {}).get(name)
        except (OSError, ValueError) as exc:  # a missing or unreadable workbench.toml
            raise InputError(f"workbench configuration: cannot read the [limits] table ({exc})") from None
        where = f"[limits] {name} in workbench.toml"
    if raw is None:
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        value = 0
    if value <= 0:
        raise InputError(f"{where} must be a whole number of bytes above 0")
    return value


def yaml_bytes() -> int:
    """Largest request file or policy pack read, in bytes."""
    return _configured("yaml_bytes")


def id_file_bytes() -> int:
    """Largest cohort ID file read, in bytes."""
    return _configured("id_file_bytes")


def table_bytes() -> int:
    """Largest count table read by `workbench protect` and `workbench audit`, in bytes."""
    return _configured("table_bytes")


def table_cells() -> int:
    """Most cells (with every margin) a table given to `workbench protect` or `audit` may have."""
    return _configured("table_cells")


def excerpt(value: object, limit: int = ECHO_CHARS) -> str:
    """`repr` of a value a person gave, cut to `limit` characters so an error stays one readable line."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= limit:
        return repr(text) if isinstance(value, str) else text
    cut = text[:limit]
    shown = repr(cut)[:-1] if isinstance(value, str) else cut
    return f"{shown}...{shown[0] if isinstance(value, str) else ''} ({len(text):,} characters)"


def excerpt_list(values: list[str], limit: int = ECHO_ITEMS, separator: str = ", ") -> str:
    """The first `limit` entries joined by `separator`, and how many more there are."""
    shown = separator.join(values[:limit])
    more = len(values) - limit
    return shown + (f" and {more:,} more" if more > 0 else "")
