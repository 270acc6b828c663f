"""The notebook guard: every table a notebook shows is safe for the active request's policy.

    %load_ext workbench                                   # or the "Python 3 (workbench)" kernel
    import workbench.guard
    workbench.guard.activate(policy="bps", level="aggregate")

Small counts in any DataFrame or Series that is displayed or printed are masked, with a banner;
student-level frames become a schema summary unless the request is identified; aggregate-only
fields are withheld from student-level requests. In a kernel, every message is also scanned for
the warehouse's students by value (IDs, names, birth dates). See docs/guard.md for what it covers
and what it cannot.

Layout: `masking` is the pure pandas core (no Jupyter); `identifiers` the pure index and scanner
of students by value, `student_index` loads it; `settings` holds the active policy and level;
`rendering` and `patches` apply the core to pandas' display methods; `structured` reads other
table objects as pandas; `registry` lets reviewed table types show themselves; `channels` scans
the kernel's messages; `ipython` is the IPython extension and magic; `savecheck` and
`papermill_engine` check notebooks as they are stored.
"""

from __future__ import annotations

import sys

from workbench.guard import patches
from workbench.guard.masking import (
    MASK,
    GuardDecision,
    MaskedTable,
    MaskReport,
    SchemaSummary,
    find_student_identifiers,
    guard_table,
    mask_small_counts,
    summarize_schema,
    withhold_fields,
)
from workbench.guard.registry import register_renderer
from workbench.guard.settings import (
    LEVEL_ENV,
    POLICY_ENV,
    GuardSettings,
    current_settings,
)
from workbench.guard import settings as _settings

EXTENSION = "workbench"


def _running_ipython():
    if "IPython" not in sys.modules:  # never import IPython just to find out
        return None
    from IPython import get_ipython

    return get_ipython()


def activate(policy=None, level: str | None = None) -> GuardSettings:
    """Enforce `policy` (a pack name, path or loaded Policy) at `level`, and switch the guard on.

    None keeps the value in force (at first: `WORKBENCH_POLICY` / `WORKBENCH_LEVEL`, else
    ``nces`` / ``aggregate``). Inside IPython this also loads the extension; in a plain script
    it guards `print(df)` and friends. Raises on an unknown policy or level, leaving the
    previous settings in force.
    """
    chosen = _settings.activate(policy, level)
    shell = _running_ipython()
    if shell is not None and EXTENSION not in shell.extension_manager.loaded:
        shell.extension_manager.load_extension(EXTENSION)
    patches.install()
    return chosen


def deactivate() -> None:
    """Switch the guard off in this process (what ``%unload_ext workbench`` does)."""
    shell = _running_ipython()
    if shell is not None and EXTENSION in shell.extension_manager.loaded:
        shell.extension_manager.unload_extension(EXTENSION)
    patches.uninstall()


def status() -> GuardSettings:
    """The policy and level in force."""
    return current_settings()


def is_active() -> bool:
    """Whether pandas display is guarded in this process."""
    return patches.is_installed()


__all__ = [
    "LEVEL_ENV",
    "MASK",
    "POLICY_ENV",
    "GuardDecision",
    "GuardSettings",
    "MaskReport",
    "MaskedTable",
    "SchemaSummary",
    "activate",
    "current_settings",
    "deactivate",
    "find_student_identifiers",
    "guard_table",
    "is_active",
    "mask_small_counts",
    "register_renderer",
    "status",
    "summarize_schema",
    "withhold_fields",
]
