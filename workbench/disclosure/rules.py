"""The small-group rule: which counts are too small to publish, and how percentages are coded.

Policy packs build a `SmallGroupRule`; the disclosure core only reads it. Nothing here knows a
district: every number comes from the rule's fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class PercentTier:
    """Top/bottom coding for groups with min_size <= n <= max_size (max_size None = no upper bound)."""

    min_size: int
    max_size: int | None
    bottom: float  # percent at or below which the value is shown as "<=bottom%"
    top: float  # percent at or above which the value is shown as ">=top%"

    def __post_init__(self) -> None:
        if self.min_size < 0 or (self.max_size is not None and self.max_size < self.min_size):
            raise ValueError(f"percent tier sizes out of order: {self.min_size}..{self.max_size}")
        if not 0 <= self.bottom < self.top <= 100:
            raise ValueError(f"percent tier needs 0 <= bottom < top <= 100, got {self.bottom}, {self.top}")

    def contains(self, n: int) -> bool:
        return n >= self.min_size and (self.max_size is None or n <= self.max_size)


# NCES-like default (SLDS Technical Brief 3 codes extreme percentages more coarsely for smaller
# groups, because one student moves a small group's percentage by a lot).
NCES_PERCENT_TIERS: tuple[PercentTier, ...] = (
    PercentTier(10, 39, 10.0, 90.0),
    PercentTier(40, 99, 5.0, 95.0),
    PercentTier(100, None, 1.0, 99.0),
)


@dataclass(frozen=True)
class SmallGroupRule:
    threshold: int = 10
    comparison: Literal["<", "<="] = "<"  # a group is small when size <comparison> threshold
    suppress_zeros: bool = False  # a zero count is itself primary
    numerator_threshold: int | None = None  # outcome counts (or their complements) under this are small
    percent_tiers: tuple[PercentTier, ...] = ()
    rounding_base: int | None = None
    # Width the attacker's interval for a primary cell must at least have (integer units).
    # 1 means "never exactly determined"; larger values demand more uncertainty.
    protection_width: int = 1
    # Two small cells hidden in one published equation reveal their sum; when that sum is itself
    # small, the group is protected like a primary cell (see docs/disclosure.md).
    protect_hidden_sums: bool = True

    def __post_init__(self) -> None:
        if self.comparison not in ("<", "<="):
            raise ValueError(f"comparison must be '<' or '<=', got {self.comparison!r}")
        if self.threshold < 0:
            raise ValueError("threshold must be non-negative")
        if self.numerator_threshold is not None and self.numerator_threshold < 0:
            raise ValueError("numerator_threshold must be non-negative")
        if self.rounding_base is not None and self.rounding_base < 1:
            raise ValueError("rounding_base must be a positive integer")
        if self.protection_width < 1:
            raise ValueError("protection_width must be at least 1")

    def is_small(self, n: int) -> bool:
        """Whether a group of n students may not be published: the one test every part of the
        workbench uses (protection, percentages, the guard, the release check, decisions).

        A positive n is small by the threshold and its comparison; a zero is small only when the
        pack suppresses zeros (an empty group describes no student).
        """
        if n == 0:
            return self.suppress_zeros
        return n < self.threshold if self.comparison == "<" else n <= self.threshold

    def small_mask(self, values):
        """`is_small` over a numpy array of counts."""
        import numpy as np

        values = np.asarray(values)
        below = values < self.threshold if self.comparison == "<" else values <= self.threshold
        return np.where(values == 0, self.suppress_zeros, below)

    # The name the guard and older code use for the same test.
    is_primary_size = is_small

    def is_few(self, count: int) -> bool:
        """Whether `count` students with (or without) an outcome single them out: the numerator
        rule. Always False for a pack without one."""
        return self.numerator_threshold is not None and count < self.numerator_threshold

    def few_mask(self, counts):
        """`is_few` over a numpy array of counts."""
        import numpy as np

        counts = np.asarray(counts)
        if self.numerator_threshold is None:
            return np.zeros(counts.shape, dtype=bool)
        return counts < self.numerator_threshold

    def is_small_outcome(self, outcome: int, group: int) -> bool:
        """Few students with, or few without, the outcome (the numerator rule)."""
        if group <= 0:
            return False
        return self.is_few(outcome) or self.is_few(group - outcome)

    def small_outcome_mask(self, outcomes, groups):
        """`is_small_outcome` over numpy arrays of outcome counts and their group sizes."""
        import numpy as np

        outcomes, groups = np.asarray(outcomes), np.asarray(groups)
        return (groups > 0) & (self.few_mask(outcomes) | self.few_mask(groups - outcomes))

    def is_small_count(self, n: int) -> bool:
        """Whether a number that may be a group size or an outcome count must not be shown: the
        test for a table whose columns are not known (the notebook guard). A zero is small only
        when the pack suppresses zeros, as in `is_small`."""
        if n == 0:
            return self.suppress_zeros
        return n > 0 and (self.is_small(n) or self.is_few(n))

    def small_count_mask(self, values):
        """`is_small_count` over a numpy array (NaN and negative values are never small)."""
        import numpy as np

        values = np.asarray(values, dtype=float)
        with np.errstate(invalid="ignore"):
            positive = values > 0
            small = positive & (self.small_mask(values) | self.few_mask(values))
            return np.where(values == 0, self.suppress_zeros, small)

    @property
    def largest_small_count(self) -> int:
        """The largest positive number `is_small_count` hides."""
        return max(self.smallest_publishable - 1, (self.numerator_threshold or 1) - 1)

    @property
    def smallest_publishable(self) -> int:
        """The smallest positive size that is not small."""
        return self.threshold if self.comparison == "<" else self.threshold + 1

    def tiers(self) -> tuple[PercentTier, ...]:
        return self.percent_tiers or NCES_PERCENT_TIERS

    def tier_for(self, n: int) -> PercentTier | None:
        for tier in self.tiers():
            if tier.contains(n):
                return tier
        return None

    def describe(self) -> str:
        parts = [f"groups {self.comparison} {self.threshold} are small"]
        parts.append("zeros are primary" if self.suppress_zeros else "zeros are published")
        if self.numerator_threshold is not None:
            parts.append(f"outcome counts or complements < {self.numerator_threshold} are small")
        if self.rounding_base:
            parts.append(f"counts rounded to base {self.rounding_base}")
        return "; ".join(parts)
