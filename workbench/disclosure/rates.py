"""Rates as protected cells: how each percentage of a release is shown, coded or hidden.

A percentage y/m is a window on two counts: y, the students with the outcome, and m, the
measure's own denominator (students tested, students with course marks...), which may differ
from the group's size n. Shown to one decimal it tells a recipient that 2000*y lies in
[(2*tenths - 1)*m, (2*tenths + 1)*m); a code such as "<=10%" that 100*y <= 10*m. Both are
linear in (y, m), so the release audit treats them as constraints (release_audit.py).

The decision for one cell of one measure:

  * HIDDEN (the suppression mark) when the group's count is suppressed, when m is small under
    the group-size rule, or when complementary suppression picks it;
  * BLANK when m is 0 (no student of the group is in the measure: grade 3 has no course marks),
    shown as "n/a" so that it cannot be read as missing data; the release audit already takes a
    blank as m = 0, so the words add nothing a recipient did not know;
  * CODED when the percentage is extreme for the group's tier, or when the numerator or its
    complement is small under the pack's numerator threshold t: the code then widens (<=B%,
    B = ceil(100 * (t - 1) / m)) so that every small numerator 0..t-1 reads the same; a code
    that would have to cover half the range is not useful and the cell is HIDDEN instead;
  * SHOWN otherwise, rounded half up to one decimal from the exact fraction.

HIDDEN and CODED cells are the measure's protected cells: complementary suppression runs over
the measure's own cells (the same additive tables, with m as the cell values) so that none of
them is determined by the shown percentages around it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from workbench.disclosure.rules import SmallGroupRule
from workbench.disclosure.secondary import choose_secondary
from workbench.disclosure.table import CellSpace

SUPPRESSED_MARK = "*"
# A rate with no denominator (m = 0). Never used for a hidden value: that is the mark.
NOT_APPLICABLE = "n/a"
SHOWN, CODED, HIDDEN, BLANK = "shown", "coded", "hidden", "blank"


@dataclass(frozen=True)
class RateDisplay:
    """What a recipient sees for one cell of one measure, and what it tells them."""

    state: str  # SHOWN, CODED, HIDDEN or BLANK
    text: str
    number: float | None = None  # the shown percentage (None unless SHOWN)
    tenths: int | None = None  # SHOWN: the percentage in tenths of a percent, rounded half up
    at_most: float | None = None  # CODED "<=B%": 100*y <= B*m
    at_least: float | None = None  # CODED ">=T%": 100*y >= T*m


HIDDEN_DISPLAY = RateDisplay(HIDDEN, SUPPRESSED_MARK)
BLANK_DISPLAY = RateDisplay(BLANK, NOT_APPLICABLE)


def tenths_half_up(numerator: int, denominator: int) -> int:
    """round(1000 * y / m) with halves up, in exact integer arithmetic."""
    return (2000 * numerator + denominator) // (2 * denominator)


def display_rate(numerator: int, denominator: int, rule: SmallGroupRule) -> RateDisplay:
    """The display of one rate before complementary suppression (the rule's own verdict)."""
    y, m = int(numerator), int(denominator)
    if m == 0:
        return BLANK_DISPLAY
    if rule.is_small(m):
        return HIDDEN_DISPLAY
    tier = rule.tier_for(m)
    if tier is None:
        return HIDDEN_DISPLAY
    t = rule.numerator_threshold
    if rule.is_few(y):
        bound = max(float(tier.bottom), float(-(-100 * (t - 1) // m)))
        return HIDDEN_DISPLAY if bound >= 50 else RateDisplay(CODED, f"<={bound:g}%", at_most=bound)
    if rule.is_few(m - y):
        bound = min(float(tier.top), float((100 * (m - t + 1)) // m))
        return HIDDEN_DISPLAY if bound <= 50 else RateDisplay(CODED, f">={bound:g}%", at_least=bound)
    if 100 * y <= tier.bottom * m:
        return RateDisplay(CODED, f"<={tier.bottom:g}%", at_most=float(tier.bottom))
    if 100 * y >= tier.top * m:
        return RateDisplay(CODED, f">={tier.top:g}%", at_least=float(tier.top))
    tenths = tenths_half_up(y, m)
    return RateDisplay(SHOWN, f"{tenths / 10:.1f}%", number=tenths / 10, tenths=tenths)


def protect_rates(
    space: CellSpace,
    denominators: np.ndarray,
    numerators: np.ndarray,
    rule: SmallGroupRule,
    *,
    count_suppressed: np.ndarray | None,
    fixed: dict[int, RateDisplay] | None = None,
) -> list[RateDisplay]:
    """One display per logical cell of `space` for one measure.

    count_suppressed: cells whose group count is hidden (None for a measure over a population
    whose counts are not released, such as the district comparison). fixed: decisions an
    earlier table of the release already published. `space` holds only the tables that carry
    this measure.
    """
    n = space.n_logical
    fixed = fixed or {}
    displays: list[RateDisplay] = []
    for lid in range(n):
        if lid in fixed:
            displays.append(fixed[lid])
        elif count_suppressed is not None and count_suppressed[lid]:
            displays.append(HIDDEN_DISPLAY)
        else:
            displays.append(display_rate(int(numerators[lid]), int(denominators[lid]), rule))
    states = np.array([d.state for d in displays])
    protected = ((states == HIDDEN) | (states == CODED)) & (denominators > 0)
    if not protected.any():
        return displays
    layer = copy.copy(space)
    layer.values = np.asarray(denominators, dtype=np.int64)
    already = np.zeros(n, dtype=bool)
    for lid in fixed:
        already[lid] = fixed[lid].state == SHOWN
    costs = (layer.values.astype(float) + 1.0) * 3.0 ** space.n_totals.astype(float)
    choice = choose_secondary(layer, protected, costs=costs, published_first=already)
    for lid in np.flatnonzero(choice.secondary & (states == SHOWN)).tolist():
        if lid not in fixed:
            displays[lid] = HIDDEN_DISPLAY
    return displays
