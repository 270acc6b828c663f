"""The guard as an IPython extension: ``%load_ext workbench`` and the ``%workbench`` magic.

Loading it (the "Python 3 (workbench)" kernel does at start):

1. resolves the policy and level (`WORKBENCH_POLICY` / `WORKBENCH_LEVEL`, default ``nces`` and
   ``aggregate``) unless `workbench.guard.activate` already chose them in this process;
2. installs the pandas patches (`workbench.guard.patches`);
3. registers text/plain and text/html printers for DataFrame, Series and Styler with IPython's
   display formatters, so a printer another library registered earlier cannot bypass the guard;
4. adds the ``%workbench`` line magic: ``%workbench status``, ``%workbench policy bps``,
   ``%workbench level aggregate``.

``%unload_ext workbench`` undoes all of it.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from IPython.core.error import UsageError

from workbench.guard import patches, settings

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


def _register_printers(ip: Any) -> None:
    formatters = ip.display_formatter.formatters
    for mime, cls, printer in _printers():
        if (mime, cls) in _replaced_printers:
            continue
        _replaced_printers[(mime, cls)] = formatters[mime].for_type(cls, printer)


def _unregister_printers(ip: Any) -> None:
    formatters = ip.display_formatter.formatters
    for (mime, cls), previous in list(_replaced_printers.items()):
        formatters[mime].pop(cls, None)
        if previous is not None:
            formatters[mime].for_type(cls, previous)
        del _replaced_printers[(mime, cls)]


def workbench_magic(line: str) -> None:
    """%workbench status | policy NAME | level LEVEL: show or change what the guard enforces."""
    words = line.split()
    if not words or words == ["status"]:
        print(settings.current_settings().status_line())
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
    ip.register_magic_function(workbench_magic, magic_kind="line", magic_name=MAGIC_NAME)


def unload_ipython_extension(ip: Any) -> None:
    _unregister_printers(ip)
    patches.uninstall()
    ip.magics_manager.magics["line"].pop(MAGIC_NAME, None)
