"""Primary suppression: the cells the rule itself forbids, each with the rule that forbids it."""

from __future__ import annotations

import numpy as np

from workbench.disclosure.rules import SmallGroupRule
from workbench.disclosure.table import CellSpace


def primary_cells(space: CellSpace, rule: SmallGroupRule) -> tuple[np.ndarray, dict[int, str]]:
    """Mask of primary logical cells and, for each, why (the group-size, zero or numerator rule)."""
    values = space.values
    small = rule.small_mask(values) & (values > 0)
    zero = (values == 0) & rule.suppress_zeros
    numerator = np.zeros_like(small)
    if space.outcomes is not None:
        numerator = rule.small_outcome_mask(space.outcomes, values)
    mask = small | zero | numerator
    reasons: dict[int, str] = {}
    for lid in np.flatnonzero(mask):
        n = int(values[lid])
        if small[lid]:
            reasons[lid] = f"primary: group of {n} {rule.comparison} {rule.threshold}"
        elif zero[lid]:
            reasons[lid] = "primary: zero count (zeros rule)"
        else:
            y = int(space.outcomes[lid])
            t = rule.numerator_threshold
            if rule.is_few(y):
                reasons[lid] = f"primary: {y} of {n} with the outcome < {t} (numerator rule)"
            else:
                reasons[lid] = f"primary: {n - y} of {n} without the outcome < {t} (numerator rule)"
    return mask, reasons
