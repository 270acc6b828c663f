"""Percentages and rates derived from published counts, coded by group-size tiers; count rounding.

A percentage is shown only when both its numerator and denominator are published: a percentage
of a suppressed count would give the count back (times the denominator). Extreme percentages are
top/bottom coded ("<=5%", ">=95%") with the tier of the group's size, because "0% of the 12
students" or "100% of them" discloses every one of them. A group too small for every tier shows
no percentage.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from workbench.disclosure.rules import SmallGroupRule

SUPPRESSED_MARK = "*"


def code_percentage(numerator: int | None, denominator: int | None, rule: SmallGroupRule, *, decimals: int = 1) -> tuple[float | None, str]:
    """(percent shown as a number or None, text shown) for one published pair of counts."""
    if numerator is None or denominator is None or _missing(numerator) or _missing(denominator):
        return None, SUPPRESSED_MARK
    numerator, denominator = int(numerator), int(denominator)
    if denominator == 0:
        return None, ""
    if rule.is_small(denominator):
        return None, SUPPRESSED_MARK
    tier = rule.tier_for(denominator)
    if tier is None:
        return None, SUPPRESSED_MARK
    percent = 100.0 * numerator / denominator
    if percent <= tier.bottom:
        return None, f"<={tier.bottom:g}%"
    if percent >= tier.top:
        return None, f">={tier.top:g}%"
    shown = round(percent, decimals)
    return shown, f"{shown:.{decimals}f}%"


def code_percentages(
    frame: pd.DataFrame,
    rule: SmallGroupRule,
    *,
    numerator: str = "outcome",
    denominator: str = "value",
    decimals: int = 1,
) -> pd.DataFrame:
    """Add `percent` (number, empty when coded or suppressed) and `percent_display` (text).

    The frame holds published counts (empty where suppressed), e.g. ProtectionResult.table().
    """
    for column in (numerator, denominator):
        if column not in frame.columns:
            raise KeyError(f"column {column!r} not in the frame")
    shown_numbers = []
    shown_text = []
    for num, den in zip(frame[numerator].tolist(), frame[denominator].tolist()):
        number, text = code_percentage(num, den, rule, decimals=decimals)
        shown_numbers.append(np.nan if number is None else number)
        shown_text.append(text)
    out = frame.copy()
    out["percent"] = shown_numbers
    out["percent_display"] = shown_text
    return out


def round_to_base(value: int, base: int) -> int:
    """Nearest multiple of base, halves rounded up (deterministic, unlike banker's rounding)."""
    return int(math.floor(value / base + 0.5) * base)


def round_counts(frame: pd.DataFrame, base: int, columns: tuple[str, ...] = ("value", "outcome")) -> pd.DataFrame:
    """Round every published count to the base; suppressed cells stay empty.

    Each cell, totals included, is rounded from its own true value, so a cell shared by several
    tables (a school total) shows the same rounded number everywhere, and a rounded total never
    reveals anything about the suppressed cells under it. The price: a rounded total can differ
    from the sum of its rounded parts (by at most base/2 per part). Rounding published counts
    only removes information, so a table the audit found safe stays safe.
    """
    if base < 1:
        raise ValueError("rounding base must be a positive integer")
    out = frame.copy()
    for column in columns:
        if column not in out.columns:
            continue
        out[column] = pd.array(
            [pd.NA if _missing(v) else round_to_base(int(v), base) for v in out[column].tolist()], dtype="Int64"
        )
    return out


def _missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))
