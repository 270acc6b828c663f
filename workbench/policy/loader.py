"""Load a policy pack: read YAML, resolve `extends` by deep merge, validate, hash.

A pack names a parent with ``extends: nces``; the child is merged over the parent key by key
(mappings merge, anything else replaces, ``null`` removes an inherited entry; a `source` is
replaced whole). A child that
changes an inherited rule must cite its own source for it: otherwise the merged rule would carry
a citation that no longer says what the rule does.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from workbench import config, safe_yaml
from workbench.business_days import BusinessCalendar, CalendarError
from workbench.policy.model import PolicyPack, RoleRule
from workbench.policy.validation import describe_validation_error
from workbench.errors import InputError
from workbench.limits import yaml_bytes

_MAX_EXTENDS_DEPTH = 8
# `extends` names a pack in the same folder or the policy folder, never a path elsewhere.
_PACK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]{0,63}")


class PolicyError(InputError):
    """A policy pack that cannot be found, read, or validated. The message names the bad key."""


@dataclass(frozen=True, eq=False)
class Policy:
    """A resolved, validated policy pack. Two packs are equal when their resolved rules are."""

    pack: PolicyPack
    path: Path
    chain: tuple[str, ...]  # this pack's name, then each pack it extends
    resolved: dict[str, Any] = field(repr=False)
    content_hash: str = ""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Policy) and other.content_hash == self.content_hash

    def __hash__(self) -> int:
        return hash(self.content_hash)

    @property
    def name(self) -> str:
        return self.pack.name

    @property
    def title(self) -> str:
        return self.pack.title

    def role(self, role: str) -> RoleRule | None:
        return self.pack.roles.get(role)

    def small_group_rule(self):
        """The pack's small-group rule in the form the disclosure engine takes."""
        from workbench.disclosure.rules import PercentTier, SmallGroupRule

        groups = self.pack.small_groups
        return SmallGroupRule(
            threshold=groups.threshold,
            comparison=groups.comparison,
            suppress_zeros=groups.suppress_zeros,
            numerator_threshold=groups.numerator_threshold,
            percent_tiers=tuple(
                PercentTier(min_size=t.min_size, max_size=t.max_size, bottom=t.bottom, top=t.top)
                for t in groups.percent_tiers
            ),
            rounding_base=groups.rounding_base,
            protection_width=groups.protection_width,
            protect_hidden_sums=groups.protect_hidden_sums,
        )

    def bands(self, dim: str) -> dict[str, tuple[str, ...]] | None:
        """The pack's bands for a breakdown, named as a breakdown or as its table column (level)."""
        from workbench.measures import _BREAKDOWN_COLUMN

        for breakdown, groups in self.pack.bands.items():
            if dim in (breakdown, _BREAKDOWN_COLUMN.get(breakdown)):
                return groups
        return None

    def business_calendar(self) -> BusinessCalendar:
        cal = self.pack.calendar
        return BusinessCalendar(closures=cal.closures, country=cal.country, subdivision=cal.subdivision)

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "chain": list(self.chain), "content_hash": self.content_hash}


def available_policies(directory: str | os.PathLike | None = None) -> list[str]:
    """Names of the packs in the policy folder, sorted."""
    folder = Path(directory) if directory is not None else config.POLICY_DIR
    if not folder.is_dir():
        return []
    return sorted(path.stem for path in folder.glob("*.yaml"))


def _looks_like_path(name_or_path: str | os.PathLike) -> bool:
    if isinstance(name_or_path, os.PathLike):
        return True
    text = str(name_or_path)
    return os.sep in text or "/" in text or text.endswith((".yaml", ".yml"))


@functools.lru_cache(maxsize=32)
def _parsed(text: str) -> Any:
    """A pack's YAML, parsed once per process for the same text: a fill loads its pack several
    times (request check, plan, release check), and parsing the packs is a third of a second."""
    return safe_yaml.load(text)


def _read_yaml(path: Path, label: str) -> dict[str, Any]:
    try:
        text = safe_yaml.read_text(path, yaml_bytes(), f"policy {label}:")
    except safe_yaml.FileReadError as exc:
        raise PolicyError(str(exc).replace(f"policy {label}: {path}", f"policy {label}: {path.name}", 1)) from None
    try:
        data = copy.deepcopy(_parsed(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise PolicyError(f"policy {label}: {path.name}: not valid YAML{where}: "
                          f"{getattr(exc, 'problem', None) or type(exc).__name__}") from None
    if not isinstance(data, dict):
        raise PolicyError(f"policy {label}: the file must be a mapping of keys to rules")
    return data


def _merge(base: Any, overlay: Any, where: str, label: str) -> Any:
    if not (isinstance(base, dict) and isinstance(overlay, dict)):
        return copy.deepcopy(overlay)
    if "source" in base and overlay and "source" not in overlay:
        raise PolicyError(
            f"policy {label}: {where}: changes an inherited rule without citing its own source"
        )
    merged = copy.deepcopy(base)
    for key, value in overlay.items():
        path = f"{where}.{key}" if where else str(key)
        if value is None:
            merged.pop(key, None)
        elif key == "source":
            # A citation is one unit: merging a seed citation into an outside one would mix them.
            merged[key] = copy.deepcopy(value)
        elif key in merged:
            merged[key] = _merge(merged[key], value, path, label)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _resolve(path: Path, label: str, seen: tuple[Path, ...]) -> tuple[dict[str, Any], tuple[str, ...]]:
    if len(seen) > _MAX_EXTENDS_DEPTH:
        raise PolicyError(f"policy {label}: extends is nested more than {_MAX_EXTENDS_DEPTH} deep")
    data = _read_yaml(path, label)
    parent_name = data.get("extends")
    if parent_name is None:
        return data, (str(data.get("name", path.stem)),)
    if not isinstance(parent_name, str) or not _PACK_NAME.fullmatch(parent_name):
        raise PolicyError(f"policy {label}: extends: must be the name of another pack (letters, digits, '-', '_')")
    parent_path = path.parent / f"{parent_name}.yaml"
    if not parent_path.is_file():
        parent_path = config.POLICY_DIR / f"{parent_name}.yaml"
    if not parent_path.is_file():
        raise PolicyError(f"policy {label}: extends: no pack named {parent_name!r}")
    resolved_parent = parent_path.resolve()
    if resolved_parent in seen:
        raise PolicyError(f"policy {label}: extends: {parent_name} extends itself (a cycle)")
    parent, chain = _resolve(parent_path, label, seen + (resolved_parent,))
    own = {key: value for key, value in data.items() if key not in ("name", "title", "description", "extends")}
    merged = _merge(parent, own, "", label)
    for key in ("name", "title", "description"):
        merged.pop(key, None)
        if key in data:
            merged[key] = data[key]
    merged["extends"] = parent_name
    return merged, (str(data.get("name", path.stem)),) + chain


def _json_default(value: Any) -> str:
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot hash a {type(value).__name__} in a policy pack")


def _content_hash(resolved: dict[str, Any]) -> str:
    canonical = json.dumps(resolved, sort_keys=True, separators=(",", ":"), default=_json_default)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def load_policy(name_or_path: str | os.PathLike) -> Policy:
    """Load a pack by name (``data/policies/NAME.yaml``) or by path, resolved and validated."""
    if _looks_like_path(name_or_path):
        path = Path(name_or_path)
        label = path.stem
    else:
        label = str(name_or_path)
        path = config.POLICY_DIR / f"{label}.yaml"
        if not path.is_file():
            known = ", ".join(available_policies()) or "none"
            raise PolicyError(f"policy {label}: no such pack in {config.POLICY_DIR} (available: {known})")
    if not path.is_file():
        raise PolicyError(f"policy {label}: no file at {path}")
    resolved, chain = _resolve(path, label, (path.resolve(),))
    try:
        pack = PolicyPack.model_validate(resolved)
    except ValidationError as exc:
        problems = describe_validation_error(exc)
        raise PolicyError("\n".join(f"policy {label}: {problem}" for problem in problems)) from None
    if not _looks_like_path(name_or_path) and pack.name != label:
        raise PolicyError(f"policy {label}: name: is {pack.name!r} but the file is {label}.yaml")
    policy = Policy(pack=pack, path=path, chain=chain, resolved=resolved, content_hash=_content_hash(resolved))
    try:
        policy.business_calendar()
    except CalendarError as exc:
        raise PolicyError(f"policy {label}: calendar: {exc}") from None
    return policy
