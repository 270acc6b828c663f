"""Kernel websocket messages from the browser, read with every length checked before it is trusted.

Jupyter's websocket carries kernel messages in three shapes: JSON text, the legacy binary frame
(a 4-byte part count, 4-byte offsets, then the parts) and the ``v1.kernel.websocket.jupyter.org``
frame (an 8-byte offset count, 8-byte offsets, the channel, then the message parts). The library
readers trust the count at the front of a binary frame, so 8 bytes claiming 2^32 parts make them
build a list of billions of offsets. Here a frame is refused unless its count fits in the frame it
came in, under a fixed ceiling, and its offsets rise within the frame; only then is the header read.

The dashboard page sends widget traffic only; `check_incoming` refuses anything else, and
`sanitize_outgoing` keeps tracebacks and the kernel's stderr away from the browser.

Pure functions: nothing here imports Jupyter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

V1_PROTOCOL = "v1.kernel.websocket.jupyter.org"
# header, parent header, metadata, content, and a few binary buffers at most (widgets send none here).
MESSAGE_PARTS = 4
MAX_BUFFERS = 4
WIDGET_MESSAGE_TYPES = frozenset({"comm_open", "comm_close", "comm_msg", "comm_info_request", "kernel_info_request"})
# The comm targets ipywidgets' front end opens; every other target (a kernel extension's, a
# debugger's) is refused.
WIDGET_COMM_TARGETS = frozenset({"jupyter.widget", "jupyter.widget.control"})
BROWSER_CHANNELS = frozenset({"shell"})


class RefusedMessage(ValueError):
    """A websocket frame that is malformed, too large or not widget traffic."""


@dataclass(frozen=True)
class KernelMessage:
    channel: str
    msg_type: str
    content: dict = field(default_factory=dict)

    @property
    def comm_target(self) -> str | None:
        return self.content.get("target_name") if self.msg_type == "comm_open" else None


def _json_object(raw: bytes | str, what: str) -> dict:
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise RefusedMessage(f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise RefusedMessage(f"{what} is not a JSON object")
    return value


def _offsets(frame: bytes, width: int, byteorder: str, count: int) -> list[int]:
    """`count` offsets of `width` bytes after the count field, each within the frame, never falling."""
    table_end = width * (count + 1)
    if table_end > len(frame):
        raise RefusedMessage(f"frame claims {count} parts but is {len(frame)} bytes long")
    offsets = [int.from_bytes(frame[width * (i + 1): width * (i + 2)], byteorder) for i in range(count)]
    if offsets[0] != table_end:
        raise RefusedMessage("frame offsets do not start right after the offset table")
    previous = table_end
    for offset in offsets:
        if offset < previous or offset > len(frame):
            raise RefusedMessage("frame offsets fall or point past the end of the frame")
        previous = offset
    return offsets


def _read_v1(frame: bytes, max_buffers: int = MAX_BUFFERS) -> tuple[str, list[bytes]]:
    if len(frame) < 8:
        raise RefusedMessage("frame is shorter than its offset count")
    count = int.from_bytes(frame[:8], "little")
    # offsets: channel start, each part's start, and the end of the frame
    if not MESSAGE_PARTS + 2 <= count <= MESSAGE_PARTS + max_buffers + 2:
        raise RefusedMessage(f"frame claims {count} offsets")
    offsets = _offsets(frame, 8, "little", count)
    if offsets[-1] != len(frame):
        raise RefusedMessage("frame offsets do not end at the end of the frame")
    channel = frame[offsets[0]:offsets[1]].decode("utf-8", errors="replace")
    parts = [frame[offsets[i]:offsets[i + 1]] for i in range(1, count - 1)]
    return channel, parts


def _read_legacy_binary(frame: bytes) -> dict:
    if len(frame) < 4:
        raise RefusedMessage("frame is shorter than its part count")
    count = int.from_bytes(frame[:4], "big", signed=True)
    if not 1 <= count <= 1 + MAX_BUFFERS:
        raise RefusedMessage(f"frame claims {count} parts")
    offsets = _offsets(frame, 4, "big", count)
    return _json_object(frame[offsets[0]:offsets[1] if count > 1 else len(frame)], "message")


def read_incoming(frame: bytes | str, protocol: str | None, max_bytes: int) -> KernelMessage:
    """The channel, type and content of one frame from the browser, or RefusedMessage."""
    if len(frame) > max_bytes:
        raise RefusedMessage(f"frame of {len(frame)} bytes is over the {max_bytes}-byte limit")
    if protocol == V1_PROTOCOL:
        if not isinstance(frame, bytes):
            raise RefusedMessage("the v1 protocol sends binary frames only")
        channel, parts = _read_v1(frame)
        header = _json_object(parts[0], "header")
        content = _json_object(parts[3], "content") if parts[3] else {}
    else:
        message = _read_legacy_binary(frame) if isinstance(frame, bytes) else _json_object(frame, "message")
        header = message.get("header")
        content = message.get("content") or {}
        channel = message.get("channel") or "shell"
        if not isinstance(header, dict) or not isinstance(content, dict):
            raise RefusedMessage("message header or content is not an object")
    msg_type = header.get("msg_type")
    if not isinstance(msg_type, str) or not isinstance(channel, str):
        raise RefusedMessage("message has no type")
    return KernelMessage(channel=channel, msg_type=msg_type, content=content)


def check_incoming(message: KernelMessage) -> None:
    """Widget traffic on the shell channel, opening widget comms only; RefusedMessage otherwise."""
    if message.channel not in BROWSER_CHANNELS:
        raise RefusedMessage(f"channel {message.channel[:40]!r} is not open to the page")
    if message.msg_type not in WIDGET_MESSAGE_TYPES:
        raise RefusedMessage(f"message type {message.msg_type[:40]!r} is not widget traffic")
    if message.msg_type == "comm_open" and message.comm_target not in WIDGET_COMM_TARGETS:
        raise RefusedMessage(f"comm target {str(message.comm_target)[:40]!r} is not a widget target")


# Kernel output the browser never sees: error reports and anything written to stderr.
_HIDDEN_TYPES = frozenset({"error"})
_DETAIL_KEYS = ("traceback", "ename", "evalue")


def hidden_output(msg_type: str | None, content: dict | None) -> bool:
    """Is this kernel message an error report or stderr text (dropped on its way to the page)?"""
    content = content or {}
    if msg_type in _HIDDEN_TYPES:
        return True
    if msg_type == "stream" and content.get("name") == "stderr":
        return True
    return False


def without_error_detail(content: dict) -> dict:
    """A reply's content with its traceback, exception name and value removed."""
    return {key: value for key, value in content.items() if key not in _DETAIL_KEYS}


# Kernel replies may carry more binary buffers than the page may send.
KERNEL_MAX_BUFFERS = 256


def read_outgoing_v1(frame: bytes) -> tuple[str, list[bytes]]:
    """The channel and parts of a v1 frame on its way to the page (RefusedMessage when malformed)."""
    return _read_v1(frame, KERNEL_MAX_BUFFERS)


def write_v1(channel: str, parts: list[bytes]) -> bytes:
    """A v1 frame of the channel and parts."""
    encoded = channel.encode("utf-8")
    offsets = [8 * (len(parts) + 3)]
    for chunk in (encoded, *parts):
        offsets.append(offsets[-1] + len(chunk))
    head = len(offsets).to_bytes(8, "little") + b"".join(o.to_bytes(8, "little") for o in offsets)
    return head + encoded + b"".join(parts)
