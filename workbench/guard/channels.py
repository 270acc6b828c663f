"""Every message the kernel sends is scanned for students before it leaves the process.

The pandas patches see tables; this sees *text*, whoever wrote it. ipykernel sends everything a
notebook shows through one `Session.send`: display data and results in every MIME type, stdout
and stderr (which carry `print`, logging, warnings, ``!`` commands and subprocesses writing to
the kernel's file descriptors), tracebacks, widget state (``comm_open`` / ``comm_msg``) and the
``?`` help. `install` wraps that method on the kernel's session object; each output message's
content has every student identifier (see `workbench.guard.identifiers`) replaced unless the
request's level grants it. If scanning a message fails, its content is replaced by a notice:
nothing unchecked goes out.

Binary payloads (PNG, JPEG, widget buffers) are not text and are passed as they are; charts are
the release check's.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections import Counter
from typing import Any, Callable

from workbench.guard import settings
from workbench.guard.identifiers import ALLOWED_IDENTIFIERS, MIN_INTEGER_DIGITS, redact_together, redact_value
from workbench.guard.student_index import current_index

OUTPUT_MESSAGES = frozenset(
    {
        "stream",
        "display_data",
        "execute_result",
        "update_display_data",
        "error",
        "execute_reply",
        "inspect_reply",
        "comm_open",
        "comm_msg",
        "input_request",  # the prompt of input() or getpass()
        "complete_reply",  # tab completion lists a dict's keys
        "debug_reply",  # the debugger's variables panel
        "debug_event",
    }
)
# Keys whose values are references, not content (rewriting them would break the frontend).
_REFERENCE_KEYS = frozenset({"comm_id", "model_id", "display_id", "target_name", "target_module", "buffer_paths"})
_REFERENCE = re.compile(r"(?:IPY_MODEL_)?[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_WITHHELD = "workbench guard: this output was withheld because the guard could not check it."
_MARK = "__workbench_channel_guard__"

# What was replaced in this process, by kind (for the status line and tests; never the values).
replaced: Counter = Counter()


def _is_binary(mime: str) -> bool:
    return mime.startswith(("image/", "audio/", "video/", "application/pdf")) and mime != "image/svg+xml"


def allowed_kinds() -> frozenset[str]:
    chosen = settings.current_settings()
    if chosen.problem:
        return frozenset()
    return ALLOWED_IDENTIFIERS.get(chosen.level, frozenset())


def scrub(value: Any, index: Any, allowed: frozenset[str], counts: Counter, key: str | None = None) -> Any:
    """`value` (message content) with identifiers replaced; references and binary data untouched."""
    if key in _REFERENCE_KEYS:
        return value
    if isinstance(value, str):
        if _REFERENCE.fullmatch(value) or (key is not None and _is_binary(key)):
            return value
        return redact_value(index, value, allowed, counts)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) >= _SMALLEST_ID:
        # A number in a widget's state or a JSON field (an ID, a birth date's time stamp) is sent as
        # a number; replaced, it becomes the label text (the widget shows it, the value is gone).
        written = repr(value)
        replaced_text = redact_value(index, written, allowed, counts)
        return value if replaced_text == written else replaced_text
    if isinstance(value, dict):
        result = {k: scrub(v, index, allowed, counts, k if isinstance(k, str) else None) for k, v in value.items()}
        fields = [k for k, v in result.items() if isinstance(v, str) and _is_field(k, v)]
        return _scrub_fields(result, fields, index, allowed, counts)
    if isinstance(value, (list, tuple)):
        items = [scrub(item, index, allowed, counts, key) for item in value]
        fields = [i for i, item in enumerate(items) if isinstance(item, str) and _is_field(key, item)]
        return type(value)(_scrub_fields(dict(enumerate(items)), fields, index, allowed, counts).values())
    return value


_SMALLEST_ID = 10 ** (MIN_INTEGER_DIGITS - 1)
# Fields of a record (a JSON object, a widget's state) are short; whole outputs are not read again.
_FIELD_LENGTH = 200


def _is_field(key: Any, text: str) -> bool:
    if len(text) > _FIELD_LENGTH or key in _REFERENCE_KEYS or (isinstance(key, str) and _is_binary(key)):
        return False
    return not _REFERENCE.fullmatch(text)


def _scrub_fields(container: dict, fields: list, index: Any, allowed: frozenset[str], counts: Counter) -> dict:
    """The string fields of one object read together, so a name split across two of them is found."""
    if len(fields) < 2:
        return container
    texts = redact_together(index, [container[k] for k in fields], allowed, counts)
    return {**container, **dict(zip(fields, texts))}


def scrub_content(msg_type: str, content: Any) -> Any:
    """The content of one outgoing message, as it may leave the kernel."""
    if msg_type not in OUTPUT_MESSAGES or not content:
        return content
    counts: Counter = Counter()
    try:
        allowed = allowed_kinds()
        if len(allowed) == 3:
            return content
        result = scrub(content, current_index(), allowed, counts)
    except Exception:  # noqa: BLE001 - fail closed: the message goes out without its content
        return _withheld(msg_type, content)
    replaced.update(counts)
    return result


def _withheld(msg_type: str, content: Any) -> Any:
    if msg_type == "stream":
        return {"name": content.get("name", "stderr"), "text": _WITHHELD + "\n"}
    if msg_type in ("display_data", "execute_result", "update_display_data"):
        kept = {k: v for k, v in content.items() if k not in ("data", "metadata")}
        return {**kept, "data": {"text/plain": _WITHHELD}, "metadata": {}}
    if msg_type in ("error", "execute_reply") and "traceback" in content:
        return {**content, "evalue": "(withheld)", "traceback": [_WITHHELD]}
    if msg_type in ("comm_open", "comm_msg"):
        return {**content, "data": {}}
    return {**content, "data": {"text/plain": _WITHHELD}} if "data" in content else content


def _guarded_send(original: Callable) -> Callable:
    @functools.wraps(original)
    def send(stream, msg_or_type, content=None, *args, **kwargs):
        if isinstance(msg_or_type, dict):
            msg_type = msg_or_type.get("msg_type") or msg_or_type.get("header", {}).get("msg_type", "")
            if msg_type in OUTPUT_MESSAGES and msg_or_type.get("content"):
                msg_or_type = {**msg_or_type, "content": scrub_content(msg_type, msg_or_type["content"])}
        elif msg_or_type in OUTPUT_MESSAGES and content is not None:
            content = scrub_content(msg_or_type, content)
        return original(stream, msg_or_type, content, *args, **kwargs)

    setattr(send, _MARK, original)
    return send


def _sessions(shell: Any) -> list[Any]:
    """Every Session object the kernel sends output through (usually one, shared)."""
    import sys

    found: list[Any] = []
    kernel = getattr(shell, "kernel", None)
    holders = [kernel, getattr(shell, "display_pub", None), sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__]
    for holder in holders:
        session = getattr(holder, "session", None)
        if session is not None and hasattr(session, "send") and all(session is not s for s in found):
            found.append(session)
    return found


def _silence_terminal_copies() -> None:
    """ipykernel copies what subprocesses and `!` commands write to the kernel's file descriptors
    to the terminal the kernel was started from (a Jupyter server's log), unscanned. The copy goes
    to the null device; what the notebook shows still passes the scan."""
    for stream in (sys.stdout, sys.stderr):
        copy = getattr(stream, "_original_stdstream_copy", None)
        if isinstance(copy, int):
            null = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(null, copy)
            finally:
                os.close(null)


def install(shell: Any) -> int:
    """Scan every output message of this kernel; returns how many sessions were wrapped."""
    _silence_terminal_copies()
    wrapped = 0
    for session in _sessions(shell):
        if getattr(session.send, _MARK, None) is None:
            session.send = _guarded_send(session.send)
        wrapped += 1
    return wrapped


def uninstall(shell: Any) -> None:
    for session in _sessions(shell):
        if getattr(session.send, _MARK, None) is not None and "send" in vars(session):
            del session.send


def is_installed(shell: Any) -> bool:
    sessions = _sessions(shell)
    return bool(sessions) and all(getattr(s.send, _MARK, None) is not None for s in sessions)
