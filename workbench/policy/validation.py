"""Turn pydantic's validation errors into one plain line per problem, for people, not programs.

Both request files and policy packs are written by hand; a mistake must come back as
``requester.role: must be one of ...`` rather than a traceback or pydantic's own wording.
"""

from __future__ import annotations

from pydantic import ValidationError

from workbench.limits import ECHO_CHARS, excerpt


def _location(loc: tuple) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            # A key is echoed as written, so an unknown key pages long is cut like any value.
            text = str(item) if len(str(item)) <= ECHO_CHARS else excerpt(str(item))
            parts.append(f".{text}" if parts else text)
    return "".join(parts)


def _message(error: dict) -> str:
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known key (check the spelling)"
    if kind in ("literal_error", "enum"):
        got = error.get("input")
        return f"must be {ctx.get('expected', 'one of the allowed values')} (got {excerpt(got)})"
    if kind in ("date_from_datetime_parsing", "date_parsing", "date_type"):
        return f"must be a date written YYYY-MM-DD (got {excerpt(error.get('input'))})"
    if kind == "value_error":
        # Our own validators raise ValueError("..."); pydantic prefixes "Value error, ".
        return str(ctx.get("error", error.get("msg", "")))
    message = str(error.get("msg", "invalid"))
    return message[:1].lower() + message[1:]


def describe_validation_error(exc: ValidationError) -> list[str]:
    """One ``where: what`` line per error, in the order pydantic found them."""
    lines = []
    for error in exc.errors(include_url=False):
        # Tagged and union errors repeat the location with the type's name; drop those parts.
        loc = tuple(part for part in error.get("loc", ()) if not str(part).startswith("function-"))
        where = _location(loc)
        lines.append(f"{where}: {_message(error)}" if where else _message(error))
    return lines
