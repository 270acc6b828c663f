"""Route every way pandas turns a table into text or HTML through the guard.

`install()` replaces, on the classes themselves, the methods that draw a DataFrame, Series or
Styler: ``__repr__`` (and so ``str()`` and ``print``), ``to_string``, ``to_html``,
``_repr_html_``, ``to_markdown``, ``to_latex``, ``_repr_data_resource_`` and *every* ``to_*``
method of the Styler (``to_html``, ``to_string``, ``to_latex``, ``to_typst`` and any a newer
pandas adds; its ``_repr_html_`` and ``_repr_latex_`` call them), except those reviewed in
`REVIEWED_STYLER_METHODS`. A Styler with tables concatenated to it (``Styler.concat``) is guarded
as one table with them, since they are usually its totals.
`uninstall()` puts the originals back exactly (an inherited method is removed again, not
copied down).

Each replacement asks the guard what may be shown and draws it with the original method. While
the guard draws (see `rendering.rendering`), the replacements pass straight through, which is
what stops the masked table from being masked again.

No IPython here: installed from a plain script, `print(df)` is guarded as well.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable

import pandas as pd

try:  # DataFrame.style needs jinja2; without it there is no Styler to guard
    from pandas.io.formats.style import Styler
except ImportError:  # pragma: no cover - jinja2 ships with Jupyter
    Styler = None

from workbench.guard import registry
from workbench.guard.rendering import Format, guarded_output, is_rendering, rendering

_MARK = "__workbench_guard__"
_FORMAT_OPTIONS = ("formatters", "float_format", "formatter")
_STYLING_NOTE = "Styling is not applied to a masked table: colours and formats could reveal the masked values."


@dataclass(frozen=True)
class _Patch:
    cls: type
    name: str
    own: bool  # the class defined the attribute itself (else it was inherited)
    previous: Any


_applied: list[_Patch] = []
_reviewed_done: set[type] = set()


# --- writing where the caller asked -------------------------------------------------------------

def _emit(text: Any, buf: Any, *, mode: str = "w", encoding: str | None = None) -> Any:
    """Return `text`, or write it to `buf` (a path or a writable object) as pandas would."""
    if buf is None or text is None:
        return text
    if hasattr(buf, "write"):
        buf.write(text)
        return None
    with open(buf, mode, encoding=encoding or "utf-8") as handle:
        handle.write(text)
    return None


def _render_tolerantly(draw: Callable[[dict], Any], options: dict, notes: list[str]) -> Any:
    """Draw with the caller's options; if a custom formatter chokes on a mask mark, draw without it."""
    try:
        return draw(options)
    except (TypeError, ValueError):
        dropped = [key for key in _FORMAT_OPTIONS if options.get(key) is not None]
        if not dropped:
            raise
        notes.append(f"Custom formatting ({', '.join(dropped)}) was not applied: it cannot format masked cells.")
        return draw({key: value for key, value in options.items() if key not in _FORMAT_OPTIONS})


# --- replacements for DataFrame and Series ------------------------------------------------------

def _guard_repr(original: Callable, name: str) -> Callable:
    @functools.wraps(original)
    def __repr__(self):
        if is_rendering():
            return original(self)
        return guarded_output(self, "plain", repr)

    return __repr__


Factory = Callable[[Callable, str], Callable]


def _guard_repr_method(fmt: Format) -> Factory:
    """For the no-argument display hooks (`_repr_html_`, `_repr_data_resource_`)."""

    def factory(original: Callable, name: str) -> Callable:
        @functools.wraps(original)
        def method(self):
            if is_rendering():
                return original(self)
            return guarded_output(self, fmt, lambda table: getattr(table, name)())

        return method

    return factory


def _guard_writer(fmt: Format) -> Factory:
    """For `to_string`, `to_html`, `to_markdown`, `to_latex`: return or write, guarded."""

    def factory(original: Callable, name: str) -> Callable:
        @functools.wraps(original)
        def method(self, buf=None, **options):
            if is_rendering():
                return original(self, buf, **options)
            notes: list[str] = []

            def render(table):
                if table is self:  # nothing to hide: exactly what pandas would draw, errors included
                    return original(self, None, **options)
                return _render_tolerantly(lambda opts: getattr(table, name)(None, **opts), options, notes)

            text = guarded_output(self, fmt, render, notes=notes)
            return _emit(text, buf, mode=options.get("mode", "w"), encoding=options.get("encoding"))

        return method

    return factory


# --- replacements for Styler --------------------------------------------------------------------

# Styler output methods left as pandas has them, each with the reason it was reviewed safe.
REVIEWED_STYLER_METHODS: dict[str, str] = {
    "to_excel": "writes a workbook on purpose, as DataFrame.to_excel does; the release check reads the file",
}
_STYLER_FORMATS: dict[str, Format] = {"to_html": "html", "to_latex": "latex", "to_string": "plain"}


def _styled_table(styler: Any) -> pd.DataFrame:
    """The Styler's data with every Styler concatenated to it, as one table."""
    parts = [styler.data]
    pending = list(getattr(styler, "concatenated", None) or [])
    while pending:
        extra = pending.pop(0)
        parts.append(extra.data)
        pending.extend(getattr(extra, "concatenated", None) or [])
    return styler.data if len(parts) == 1 else pd.concat(parts)


def _guard_styler_writer(fmt: Format) -> Factory:
    def factory(original: Callable, name: str) -> Callable:
        @functools.wraps(original)
        def method(self, buf=None, **options):
            if is_rendering():
                return original(self, buf, **options)
            notes: list[str] = []
            table_shown = _styled_table(self)

            def render(table):
                if table is table_shown:
                    return getattr(self, name)(None, **options)
                # A fresh Styler: the caller's styles were computed from the unmasked values.
                notes.append(_STYLING_NOTE)
                plain = Styler(table, caption=self.caption)
                return getattr(plain, name)(None, **options)

            text = guarded_output(table_shown, fmt, render, notes=notes)
            return _emit(text, buf, encoding=options.get("encoding"))

        return method

    return factory


def styler_output_methods() -> list[str]:
    """Every Styler method that writes the table out, new ones included (all but the reviewed)."""
    if Styler is None:
        return []
    return sorted(
        name for name in dir(Styler)
        if name.startswith("to_") and callable(getattr(Styler, name)) and name not in REVIEWED_STYLER_METHODS
    )


def _pandas_targets() -> list[tuple[type, str, Factory]]:
    targets: list[tuple[type, str, Factory]] = []
    for cls in (pd.DataFrame, pd.Series):
        targets += [
            (cls, "__repr__", _guard_repr),
            (cls, "to_string", _guard_writer("plain")),
            (cls, "to_markdown", _guard_writer("markdown")),
            (cls, "to_latex", _guard_writer("latex")),
            (cls, "_repr_data_resource_", _guard_repr_method("json")),
        ]
    targets += [
        (pd.DataFrame, "to_html", _guard_writer("html")),
        (pd.DataFrame, "_repr_html_", _guard_repr_method("html")),
    ]
    targets += [(Styler, name, _guard_styler_writer(_STYLER_FORMATS.get(name, "plain")))
                for name in styler_output_methods()]
    return targets


# --- reviewed types ---------------------------------------------------------------------------

_REVIEWED_DISPLAY_METHODS = (
    "__repr__",
    "__str__",
    "_repr_html_",
    "_repr_markdown_",
    "_repr_latex_",
    "_repr_mimebundle_",
    "to_html",
    "to_string",
    "to_markdown",
)


def _trusted(original: Callable) -> Callable:
    @functools.wraps(original)
    def method(*args, **kwargs):
        with rendering():
            return original(*args, **kwargs)

    return method


def _bundle_methods(render: registry.Renderer) -> dict[str, Callable]:
    def bundle(obj) -> dict:
        with rendering():
            result = dict(render(obj))
        if "text/plain" not in result:
            raise ValueError(f"the renderer registered for {type(obj).__name__} gave no text/plain")
        return result

    def __repr__(self):
        return str(bundle(self)["text/plain"])

    def _repr_html_(self):
        return bundle(self).get("text/html")

    def _repr_mimebundle_(self, include=None, exclude=None):
        return bundle(self)

    return {"__repr__": __repr__, "_repr_html_": _repr_html_, "_repr_mimebundle_": _repr_mimebundle_}


def _patch_reviewed(cls: type, render: registry.Renderer | None) -> None:
    if render is not None:
        for name, method in _bundle_methods(render).items():
            _patch(cls, name, method)
        return
    for name in _REVIEWED_DISPLAY_METHODS:
        current = getattr(cls, name, None)
        if current is None or current is getattr(object, name, None) or not callable(current):
            continue
        _patch(cls, name, _trusted(current))


def refresh_reviewed_types() -> None:
    """Apply registrations made since `install()` (no-op while the guard is not installed)."""
    if not _applied:
        return
    for cls, render in registry.registered_renderers().items():
        if cls not in _reviewed_done:
            _patch_reviewed(cls, render)
            _reviewed_done.add(cls)


registry.on_register(refresh_reviewed_types)


# --- install / uninstall --------------------------------------------------------------------

def _patch(cls: type, name: str, replacement: Callable) -> None:
    own = name in cls.__dict__
    _applied.append(_Patch(cls, name, own, cls.__dict__.get(name)))
    setattr(replacement, _MARK, True)
    setattr(cls, name, replacement)


def is_installed() -> bool:
    return bool(_applied)


def install() -> None:
    """Guard pandas display in this process (idempotent)."""
    if not _applied:
        for cls, name, factory in _pandas_targets():
            _patch(cls, name, factory(getattr(cls, name), name))
    refresh_reviewed_types()


def uninstall() -> None:
    """Put every replaced method back as it was."""
    while _applied:
        patch = _applied.pop()
        if patch.own:
            setattr(patch.cls, patch.name, patch.previous)
        else:
            delattr(patch.cls, patch.name)
    _reviewed_done.clear()
