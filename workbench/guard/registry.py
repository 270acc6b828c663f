"""Reviewed table types: objects the guard shows as they render themselves.

A table that has been through the disclosure core (suppression marks, complementary
suppression, footnote of what was suppressed and why) must not be masked a second time: the
guard would mask its percentages and repeat its banner over a table that is already safe. Such a
type is registered once:

    from workbench.guard import register_renderer
    register_renderer(ProtectedTable)                       # use its own _repr_html_ / __repr__
    register_renderer(ProtectedTable, lambda t: {"text/plain": t.to_text(), "text/html": t.to_html()})

While the guard is installed, instances of a registered type (and of its subclasses) render with
the pandas patches passed through: whatever DataFrame methods the type calls to draw itself
produce the original output. With a `render` function, the type's `__repr__`, `_repr_html_` and
`_repr_mimebundle_` show that function's bundle (`text/plain` is required).

Registering a type is a statement that its output is safe to show: register only types whose
content comes out of the disclosure core.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

Renderer = Callable[[Any], Mapping[str, Any]]

_renderers: dict[type, Renderer | None] = {}
# Called after each registration; `patches` subscribes so a type registered while the guard is
# installed is applied at once. (A callback, so this module need not import `patches`.)
_listeners: list[Callable[[], None]] = []


def on_register(callback: Callable[[], None]) -> None:
    if callback not in _listeners:
        _listeners.append(callback)


def register_renderer(cls: type, render: Renderer | None = None) -> None:
    """Show instances of `cls` as reviewed tables (see the module docstring)."""
    if not isinstance(cls, type):
        raise TypeError(f"register_renderer takes a class, not {type(cls).__name__}")
    if render is not None and not callable(render):
        raise TypeError("render must be a function of the object returning a MIME bundle")
    _renderers[cls] = render
    for callback in _listeners:
        callback()


def registered_renderers() -> dict[type, Renderer | None]:
    return dict(_renderers)


def renderer_for(obj: Any) -> tuple[type, Renderer | None] | None:
    """The registration that covers `obj`'s type (the nearest registered class in its MRO)."""
    for klass in type(obj).__mro__:
        if klass in _renderers:
            return klass, _renderers[klass]
    return None
