"""Which policy and data level the guard enforces, and where that choice comes from.

Resolution, for each of policy and level: the value passed to `activate` (or ``%workbench``),
else the value already active in this process, else the project's settings resolver
(`workbench.settings`: the environment, `WORKBENCH_POLICY` / `WORKBENCH_LEVEL`, which is how a
fill passes a request's settings to its kernel; then `workbench.toml` in the notebook's folder or
a folder above; then the strict default, the baseline ``nces`` pack at the ``aggregate`` level).

No IPython here: the pandas patches and plain Python scripts use the same settings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from workbench.guard.masking import describe_rule
from workbench.policy.vocabulary import LEVELS
from workbench.settings import resolve

POLICY_ENV = "WORKBENCH_POLICY"
LEVEL_ENV = "WORKBENCH_LEVEL"
DEFAULT_POLICY = "nces"
DEFAULT_LEVEL = "aggregate"


@dataclass(frozen=True)
class GuardSettings:
    """The rule set in force. `problem` is set when the policy could not be loaded: the guard then
    shows nothing but schemas until a good policy is activated (it fails closed, not open)."""

    policy_name: str
    level: str
    rule: Any | None  # workbench.disclosure.rules.SmallGroupRule
    aggregate_only: tuple[str, ...] = ()
    policy_hash: str | None = None
    policy_title: str | None = None
    problem: str | None = None
    policy: Any = field(default=None, repr=False, compare=False)  # the loaded Policy
    # Where the policy and the level came from ("activate", "environment WORKBENCH_POLICY",
    # "workbench.toml (path)", "default").
    sources: dict = field(default_factory=dict, compare=False)

    @property
    def rule_text(self) -> str:
        return describe_rule(self.rule) if self.rule is not None else "no rule (policy not loaded)"

    def status_line(self) -> str:
        if self.problem:
            return f"workbench guard: BLOCKING all tables ({self.problem}); level {self.level}"
        digest = f" [{self.policy_hash[:12]}]" if self.policy_hash else ""
        fields = ", ".join(self.aggregate_only) or "none"
        where = ""
        if self.sources:
            where = " (" + "; ".join(f"{name} from {source}" for name, source in self.sources.items()) + ")"
        return (
            f"workbench guard: policy {self.policy_name}{digest}, level {self.level}{where}; "
            f"masks {self.rule_text}; aggregate-only fields: {fields}"
        )


def check_level(level: str) -> str:
    text = str(level).strip().lower()
    if text not in LEVELS:
        raise ValueError(f"unknown data level {level!r}; choose one of {', '.join(LEVELS)}")
    return text


def aggregate_only_fields(policy: Any) -> tuple[str, ...]:
    """The fields the policy never releases per student (`fields.aggregate_only` of the pack)."""
    return tuple(policy.pack.fields.aggregate_only.fields)


def settings_for(policy: Any, level: str, sources: dict | None = None) -> GuardSettings:
    """Settings for a policy (a name, a path, or a loaded `workbench.policy.Policy`) and a level.

    Raises `workbench.policy.PolicyError` or ValueError when either is not valid.
    """
    from workbench.policy import load_policy

    level = check_level(level)
    loaded = load_policy(policy) if isinstance(policy, (str, os.PathLike)) else policy
    return GuardSettings(
        policy_name=loaded.name,
        level=level,
        rule=loaded.small_group_rule(),
        aggregate_only=aggregate_only_fields(loaded),
        policy_hash=getattr(loaded, "content_hash", None) or None,
        policy_title=getattr(loaded, "title", None),
        policy=loaded,
        sources=dict(sources or {}),
    )


def settings_from_configuration() -> GuardSettings:
    """Settings from the project's resolver (environment, workbench.toml, default), or blocking
    settings if they are bad.

    A kernel started for a request must not fall back to showing tables unguarded because a
    variable was misspelled, so a bad value yields settings that block every table, and says why.
    """
    policy, level = DEFAULT_POLICY, DEFAULT_LEVEL
    try:
        policy_setting, level_setting = resolve("policy"), resolve("level")
        policy, level = policy_setting.value, level_setting.value
        sources = {"policy": policy_setting.where(), "level": level_setting.where()}
        return settings_for(policy, level, sources)
    except Exception as exc:  # noqa: BLE001 - any failure must block, whatever its type
        return blocking_settings(policy, level, f"{type(exc).__name__}: {exc}")


# The name earlier versions used; the environment is one of the sources now.
settings_from_environment = settings_from_configuration


def blocking_settings(policy: str, level: str, problem: str) -> GuardSettings:
    shown_level = level if str(level).strip().lower() in LEVELS else DEFAULT_LEVEL
    return GuardSettings(policy_name=str(policy), level=shown_level, rule=None, problem=problem)


_active: GuardSettings | None = None


def current_settings() -> GuardSettings:
    """The settings in force, resolved from the environment on first use."""
    global _active
    if _active is None:
        _active = settings_from_configuration()
    return _active


def activate(policy: Any = None, level: str | None = None) -> GuardSettings:
    """Make `policy` and `level` the ones the guard enforces; None keeps the current value.

    Raises (and leaves the previous settings in force) when the policy or level is not valid.
    """
    global _active
    now = current_settings()
    sources = dict(now.sources)
    if policy is None:
        policy = now.policy if now.problem is None else resolve("policy").value
    else:
        sources["policy"] = "activate"
    if level is not None:
        sources["level"] = "activate"
    _active = settings_for(policy, level if level is not None else now.level, sources)
    return _active


def reset() -> None:
    """Forget the active settings; the next use reads the environment again."""
    global _active
    _active = None
