"""The one way hand-written YAML is read: request files and policy packs.

PyYAML's safe loader still accepts things no request or policy needs and an attacker can use:

* anchors and aliases (``&a`` / ``*a``): a one-kilobyte "billion laughs" file expands to gigabytes
  when it is built into Python objects;
* tags other than the core ones (``!!python/name``, ``!custom``, ``!!binary``): a request is plain
  text, numbers, lists and mappings;
* duplicate keys: the last one silently wins, so a reviewer reading the first sees another request;
* deep nesting: ``[[[[...]]]]`` ends in a RecursionError instead of a message;
* control characters (a NUL byte) and numbers thousands of digits long, which PyYAML and Python
  refuse with errors of their own instead of a marked YAML error.

`load` refuses all of these with a `yaml.MarkedYAMLError` that points at the line, before any object
is built, so callers report them like any other YAML mistake. `read_text` reads a file only if it
is under a size limit and is UTF-8, with an error naming the file otherwise. `dump` writes YAML
without anchors, so what the workbench writes it can read back.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError

from workbench.errors import InputError
from workbench.limits import YAML_MAX_DEPTH

_TIMESTAMP = "tag:yaml.org,2002:timestamp"
# Tags a person may write to say what a plain value is (``!!str 0012``); every other tag is refused.
_CORE_TAGS = frozenset(f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "seq", "map"))


class FileReadError(InputError):
    """A file that cannot be read as text: missing, too large, not UTF-8."""


def read_text(path: Path, limit: int, what: str) -> str:
    """The text of `path`, refused at once (without reading) when it is larger than `limit` bytes."""
    try:
        status = path.stat()
        if not stat.S_ISREG(status.st_mode):
            # A named pipe or a device would block or never end; a request is a file on disk.
            raise FileReadError(f"{what} {path}: not a regular file (a pipe, device or folder)")
        size = status.st_size
        if size > limit:
            raise FileReadError(f"{what} {path} is {size:,} bytes; the limit is {limit:,} "
                                "(see docs/releases.md, Limits)")
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise FileReadError(f"{what} {path}: cannot read the file: {exc.strerror or type(exc).__name__}") from None
    if len(data) > limit:  # grew while it was read, or a device with no size
        raise FileReadError(f"{what} {path} is over the limit of {limit:,} bytes")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise FileReadError(f"{what} {path}: line {line} is not UTF-8 text; save the file as UTF-8") from None


class _Loader(yaml.SafeLoader):
    """Safe loader that refuses aliases, anchors, non-core tags, duplicate keys and deep nesting."""

    def __init__(self, stream) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise ComposerError(None, None, "aliases (*name) are not allowed", event.start_mark)
        if getattr(event, "anchor", None) is not None:
            raise ComposerError(None, None, "anchors (&name) are not allowed", event.start_mark)
        tag = getattr(event, "tag", None)
        if tag is not None and not _implicit(event) and tag not in _CORE_TAGS:
            raise ComposerError(None, None, f"tags ({_short(tag)}) are not allowed", event.start_mark)
        self._depth += 1
        try:
            if self._depth > YAML_MAX_DEPTH:
                raise ComposerError(None, None, f"nested more than {YAML_MAX_DEPTH} levels deep", event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep=deep)
        except ValueError:
            # int() of more than 4,300 digits: Python's guard against slow conversions.
            raise ConstructorError(None, None, "a number too long to read", node.start_mark) from None

    def construct_mapping(self, node, deep=False):
        seen: set = set()
        if isinstance(node, yaml.MappingNode):
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise ConstructorError(None, None, "merge keys (<<) are not allowed", key_node.start_mark)
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:  # an unhashable key is reported by PyYAML itself
                    continue
                if duplicate:
                    raise ConstructorError(None, None, f"duplicate key {_short(str(key))!s}", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def _implicit(event) -> bool:
    # Scalars carry the tag the resolver would give them, with `implicit` set; only a tag written
    # in the text is refused. Collections have a tag only when one was written.
    implicit = getattr(event, "implicit", None)
    if isinstance(implicit, tuple):
        return any(implicit)
    return bool(implicit)


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:40] + "..."


class _TextDateLoader(_Loader):
    """Leaves dates as text, so a bad date is a validation error of its field, not a parser crash."""


_TextDateLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def loader(text: str, *, dates_as_text: bool = False) -> _Loader:
    """A loader over `text` (to inspect nodes before building objects); call `.dispose()` after.

    Text YAML cannot hold (a NUL byte, other control characters) raises a `yaml.MarkedYAMLError`
    naming the line, like every other YAML mistake.
    """
    try:
        return (_TextDateLoader if dates_as_text else _Loader)(text)
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position)
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1)
        mark = yaml.Mark("<text>", exc.position, line, column, None, None)
        code = f"{exc.character:#04x}" if isinstance(exc.character, int) else repr(exc.character)
        problem = f"a control character ({code}) is not allowed"
        raise yaml.MarkedYAMLError(problem=problem, problem_mark=mark) from None


class _Dumper(yaml.SafeDumper):
    """Writes an object met twice in full each time: `load` refuses the anchors PyYAML would use."""

    def ignore_aliases(self, data) -> bool:
        return True


def dump(data: Any, **options: Any) -> str:
    """YAML text `load` reads back: no anchors or aliases, even for shared objects."""
    return yaml.dump(data, Dumper=_Dumper, **options)


def load(text: str, *, dates_as_text: bool = False) -> Any:
    """One YAML document as Python objects, with the refusals described in the module docstring."""
    instance = loader(text, dates_as_text=dates_as_text)
    try:
        return instance.get_single_data()
    finally:
        instance.dispose()
