"""What a request ID may look like.

A request ID names the request's register entry and its release folder (and, in a per-school
batch, the request files written for each school), so an ID that is not a safe folder name could
never be filled. Such IDs are refused when the request is read and again when it is registered:
``../../X``, ``a/b``, spaces, letters outside ASCII, a leading dot, ``..`` anywhere.
"""

from __future__ import annotations

import re

MAX_LENGTH = 100  # the register's request_id column
RULE = (f"a request ID is 1 to {MAX_LENGTH} characters: ASCII letters, digits, '-', '_' and '.', "
        "starting with a letter or digit, without '..'")
_PATTERN = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.\-]{{0,{MAX_LENGTH - 1}}}")


def request_id_problem(value: object) -> str | None:
    """Why `value` cannot be a request ID, or None when it can."""
    if not isinstance(value, str):
        return f"must be text, not {type(value).__name__}"
    if not _PATTERN.fullmatch(value) or ".." in value:
        return RULE
    return None
