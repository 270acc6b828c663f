"""The index of the configured warehouse's students, loaded once per process.

The guard (in a kernel), the save-time check (in the Jupyter server) and `workbench scan` all
ask here. The warehouse is the one `workbench.config.warehouse_location()` names. If it cannot be
read, the guard fails closed: `ShapeIndex` masks every ID-shaped number and every date, and the
status line says that names cannot be recognised.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path
from typing import Any

from workbench.guard.identifiers import ShapeIndex, StudentIndex

_lock = threading.Lock()
_GIVEN = "(given)"
_cached: tuple[str, float | None, Any] | None = None  # (location, file mtime, index)


def _modified(location: str) -> float | None:
    try:
        return Path(location).stat().st_mtime
    except OSError:
        return None


def load_index(location: str | os.PathLike | None = None) -> StudentIndex | ShapeIndex:
    """The index of the warehouse at `location` (default: the configured one); never raises."""
    from workbench.config import warehouse_location

    try:
        where = warehouse_location(location)
    except Exception as exc:  # noqa: BLE001 - a broken configuration must not open the guard
        return ShapeIndex(f"the warehouse setting cannot be read: {type(exc).__name__}")
    try:
        from workbench.warehouse import connect

        con = connect(where)
        try:
            return StudentIndex.from_warehouse(con, source=where)
        finally:
            disconnect = getattr(con, "disconnect", None)
            if disconnect is not None:
                disconnect()
    except Exception as exc:  # noqa: BLE001 - whatever failed, fail closed and say so
        return ShapeIndex(f"cannot read students from {where}: {type(exc).__name__}")


RECHECK_SECONDS = 5.0  # how often the setting and the file are looked at again
_checked_at = 0.0


def current_index(refresh: bool = False) -> StudentIndex | ShapeIndex:
    """The configured warehouse's index, reloaded when the setting or the file changes.

    Asked for every output a kernel sends, so the setting and the file's time stamp are looked at
    again at most every `RECHECK_SECONDS`.
    """
    global _cached, _checked_at
    with _lock:
        if _cached is not None and not refresh:
            if _cached[0] == _GIVEN or time.monotonic() - _checked_at < RECHECK_SECONDS:
                return _cached[2]
        from workbench.config import warehouse_location

        try:
            where = warehouse_location()
        except Exception:  # noqa: BLE001
            where = "?"
        stamp = _modified(where)
        _checked_at = time.monotonic()
        if refresh or _cached is None or _cached[0] != where or _cached[1] != stamp:
            _cached = (where, stamp, load_index(None if where == "?" else where))
        return _cached[2]


def set_index(index: StudentIndex | ShapeIndex | None) -> None:
    """Use `index` in this process (tests, or a caller that built one); None forgets it."""
    global _cached
    with _lock:
        _cached = None if index is None else (_GIVEN, None, index)


@contextlib.contextmanager
def using_warehouse(location: str | os.PathLike):
    """Scan with the students of the warehouse at `location` inside the block (a fill checks the
    notebook it saves against the warehouse it filled from, not this process's default)."""
    global _cached
    with _lock:
        previous = _cached
    set_index(load_index(location))
    try:
        yield
    finally:
        with _lock:
            _cached = previous


def cached_index() -> StudentIndex | ShapeIndex | None:
    return None if _cached is None else _cached[2]


def status_line(index: StudentIndex | ShapeIndex | None = None) -> str:
    index = index if index is not None else current_index()
    if isinstance(index, ShapeIndex):
        return (
            f"workbench guard: student index {index.describe()}; failing closed: every 7- or 10-digit "
            "number and every date is masked, names cannot be recognised"
        )
    return f"workbench guard: student index of {index.describe()} (IDs, names, birth dates masked in every output)"
