"""The guard as an IPython extension: ``%load_ext workbench`` and the ``%workbench`` magic.

Loading it (the "Python 3 (workbench)" kernel does at start):

1. resolves the policy and level (`WORKBENCH_POLICY` / `WORKBENCH_LEVEL`, default ``nces`` and
   ``aggregate``) unless `workbench.guard.activate` already chose them in this process;
2. installs the pandas patches (`workbench.guard.patches`);
3. registers text/plain and text/html printers for DataFrame, Series and Styler with IPython's
   display formatters, so a printer another library registered earlier cannot bypass the guard;
4. registers display printers for objects that hold numbers without being pandas tables (NumPy
   arrays, lists and dicts of numbers, pyarrow, DuckDB, Ibis, Polars; `workbench.guard.structured`);
5. loads the index of the warehouse's students and scans every message the kernel sends for them
   (`workbench.guard.channels`);
6. adds the ``%workbench`` line magic: ``%workbench status``, ``%workbench policy bps``,
   ``%workbench level aggregate``.

``%unload_ext workbench`` undoes all of it.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from IPython.core.error import UsageError
from IPython.display import JSON

from workbench.guard import channels, patches, settings, structured
from workbench.guard.rendering import decide
from workbench.guard.student_index import current_index, status_line

MAGIC_NAME = "workbench"
USAGE = "usage: %workbench status | %workbench policy NAME | %workbench level LEVEL"

# (mime type, class) -> the printer that was registered before ours (None: there was none).
_replaced_printers: dict[tuple[str, type], Any] = {}


def _plain_printer(obj: Any, printer: Any, cycle: bool) -> None:
    printer.text(repr(obj))  # the patched __repr__: guarded


def _html_printer(obj: Any) -> str | None:
    return obj._repr_html_()  # the patched _repr_html_ (Styler's calls the patched to_html)


def _printers() -> list[tuple[str, type, Any]]:
    printers = [
        ("text/plain", pd.DataFrame, _plain_printer),
        ("text/plain", pd.Series, _plain_printer),
        ("text/html", pd.DataFrame, _html_printer),
    ]
    if patches.Styler is not None:
        printers.append(("text/html", patches.Styler, _html_printer))
    return printers


BUNDLE = "mimebundle"
# Python's own collections, drawn by IPython's pretty printer (which recurses into them).
SEQUENCES = (list, tuple, dict, set, frozenset, *structured.DICT_VIEWS)


WITHHELD = "workbench guard: this object is not shown because the guard could not check it ({})."


def _guarded_table(obj: Any) -> Any:
    """`obj` as a pandas table if the guard changes what it shows; None if it may show itself."""
    if isinstance(obj, JSON):  # IPython.display.JSON(counts.to_dict())
        obj = obj.data
    table = structured.as_table(obj)
    if table is None or decide(table).action == "show":
        return None
    return table


def _structured_bundle(obj: Any) -> dict | None:
    """The guarded display of a non-pandas object that holds a table; None: let it show itself."""
    try:
        table = _guarded_table(obj)
    except Exception as exc:  # noqa: BLE001 - fail closed: show that it was withheld, not the object
        bundle = {"text/plain": WITHHELD.format(type(exc).__name__)}
    else:
        if table is None:
            return None
        frame = table if isinstance(table, pd.DataFrame) else table.to_frame()
        bundle = {"text/plain": repr(table), "text/html": frame._repr_html_()}  # patched: banner and masked table
    _guarded_bundles[id(obj)] = dict(bundle)  # IPython adds the other formats to the dict it is given
    return bundle


# Bundles the printer above made during the current `format` call, by the id of the object.
_guarded_bundles: dict[int, dict] = {}
_FORMAT_MARK = "__workbench_guard_format__"


def _guard_format(original: Any) -> Any:
    """`DisplayFormatter.format`, where a guarded object shows its guarded bundle and nothing else.

    IPython asks every per-format printer after the bundle printer, and a printer the object
    finds first wins: a named tuple's own ``__repr__`` before the guard's tuple printer, a JSON
    object's ``_repr_json_``. So once the guard has masked an object, its bundle replaces
    everything the formatters made of it.
    """

    def format(obj: Any, include: Any = None, exclude: Any = None) -> tuple[dict, dict]:
        _guarded_bundles.clear()
        data, metadata = original(obj, include=include, exclude=exclude)
        bundle = _guarded_bundles.pop(id(obj), None)
        if bundle is None and structured.is_record_object(obj):
            bundle = _structured_bundle(obj)  # a dataclass has no class to register a printer for
        _guarded_bundles.clear()
        return (dict(bundle), {}) if bundle is not None else (data, metadata)

    setattr(format, _FORMAT_MARK, original)
    return format


def _structured_types() -> list[type]:
    """Classes whose display goes through `_structured_bundle` (those of libraries that are installed)."""
    import importlib

    import numpy as np

    types: list[type] = [*SEQUENCES, np.ndarray, pd.Index, pd.api.extensions.ExtensionArray, JSON]
    for module, names in (
        ("pyarrow", ("Table", "RecordBatch", "Array", "ChunkedArray", "Scalar")),
        ("duckdb", ("DuckDBPyRelation",)),
        ("ibis.expr.types", ("Table", "Column", "Scalar")),
        ("polars", ("DataFrame", "Series", "LazyFrame")),
        ("rich.table", ("Table",)),  # Ibis's preview()
    ):
        try:
            loaded = importlib.import_module(module)
        except Exception:  # noqa: BLE001 - a library that is not installed has nothing to guard
            continue
        types += [getattr(loaded, name) for name in names if isinstance(getattr(loaded, name, None), type)]
    return types


def _sequence_printer(previous: Any) -> Any:
    """text/plain for list, tuple, dict and set: IPython draws these with its own printer, after any
    bundle, so the guard takes that printer's place and hands back what it does not change."""

    def printer(obj: Any, p: Any, cycle: bool) -> None:
        try:
            table = None if cycle else _guarded_table(obj)
        except Exception as exc:  # noqa: BLE001
            p.text(WITHHELD.format(type(exc).__name__))
            return
        if table is not None:
            p.text(repr(table))
        elif previous is not None:
            previous(obj, p, cycle)
        else:
            p.text(repr(obj))

    return printer


def _formatter(ip: Any, mime: str) -> Any:
    return ip.display_formatter.mimebundle_formatter if mime == BUNDLE else ip.display_formatter.formatters[mime]


def _register_printers(ip: Any) -> None:
    printers = _printers() + [(BUNDLE, cls, _structured_bundle) for cls in _structured_types()]
    plain = ip.display_formatter.formatters["text/plain"]
    for cls in SEQUENCES:
        if ("text/plain", cls) not in _replaced_printers:
            printers.append(("text/plain", cls, _sequence_printer(plain.type_printers.get(cls))))
    for mime, cls, printer in printers:
        if (mime, cls) in _replaced_printers:
            continue
        _replaced_printers[(mime, cls)] = _formatter(ip, mime).for_type(cls, printer)


def _unregister_printers(ip: Any) -> None:
    for (mime, cls), previous in list(_replaced_printers.items()):
        formatter = _formatter(ip, mime)
        formatter.pop(cls, None)
        if previous is not None:
            formatter.for_type(cls, previous)
        del _replaced_printers[(mime, cls)]


def _project_settings_text() -> str:
    """Every project setting, its value and where it came from (workbench.settings; passwords
    hidden). The guard's own policy and level are the first line of the status."""
    from workbench.settings import describe

    try:
        described = describe()
    except Exception as exc:  # noqa: BLE001 - a status must show, even with a broken settings file
        return f"project settings: cannot be read ({type(exc).__name__}: {exc})"
    lines = [f"  {name} = {entry['value']} (from {entry['source']})" for name, entry in described.items()]
    return "project settings:\n" + "\n".join(lines)


def workbench_magic(line: str) -> None:
    """%workbench status | policy NAME | level LEVEL: show or change what the guard enforces."""
    words = line.split()
    if not words or words == ["status"]:
        print(settings.current_settings().status_line())
        print(status_line())
        print(_project_settings_text())
        return
    if len(words) != 2 or words[0] not in ("policy", "level"):
        raise UsageError(USAGE)
    from workbench.guard import activate

    try:
        chosen = activate(**{words[0]: words[1]})
    except Exception as exc:  # noqa: BLE001 - any refusal keeps the settings in force; say why
        raise UsageError(f"{exc}\n(the guard keeps enforcing: {settings.current_settings().status_line()})") from None
    print(chosen.status_line())


def load_ipython_extension(ip: Any) -> None:
    settings.current_settings()  # reads the environment unless activate() already chose
    patches.install()
    _register_printers(ip)
    if getattr(ip.display_formatter.format, _FORMAT_MARK, None) is None:
        ip.display_formatter.format = _guard_format(ip.display_formatter.format)
    current_index()  # built now, not at the first output
    channels.install(ip)
    ip.register_magic_function(workbench_magic, magic_kind="line", magic_name=MAGIC_NAME)


def unload_ipython_extension(ip: Any) -> None:
    channels.uninstall(ip)
    if getattr(ip.display_formatter.format, _FORMAT_MARK, None) is not None:
        del ip.display_formatter.format
    _unregister_printers(ip)
    patches.uninstall()
    ip.magics_manager.magics["line"].pop(MAGIC_NAME, None)
