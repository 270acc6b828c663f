"""Generalization hierarchies of quasi-identifiers, and what showing a coarser value costs.

    race = Hierarchy.from_levels([{"Other races": ["Two or More Races", ...]},
                                  {"Not Hispanic or Latino": [...]}])
    race.shown("Asian", 2) -> "Not Hispanic or Latino";  race.withheld_level -> 3

Level 0 is the value itself; level i (1..len(levels)) shows the group level i puts it in (a
value a level does not name is shown as it is); the level above the last withholds the value.
The levels come from the policy pack (`quasi_identifiers.hierarchies`); nothing here knows a
district's categories.

Information loss is counted per released value, the same way for every method measured
(`value_loss`): a value shown as it is costs 0, a withheld value costs 1, and a value shown as a
group costs (g - 1) / (d - 1), where d is the number of distinct values the field has in the
extract and g how many of them the group holds (the loss metric of Iyengar, 2002). A group that
holds only one of the extract's values costs nothing: it tells the reader exactly that value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

WITHHELD = "Not reported"


@dataclass(frozen=True)
class Hierarchy:
    levels: tuple[Mapping[str, str], ...] = ()  # per level: value -> the group it is shown as

    @classmethod
    def from_levels(cls, levels: Sequence[Mapping[str, Iterable[str]]]) -> "Hierarchy":
        """From the pack's form: per level, group label -> the values it holds."""
        return cls(tuple({value: label for label, values in groups.items() for value in values} for groups in levels))

    @property
    def withheld_level(self) -> int:
        return len(self.levels) + 1

    def shown(self, value: str, level: int) -> str:
        if level <= 0:
            return value
        if level >= self.withheld_level:
            return WITHHELD
        return self.levels[level - 1].get(value, value)

    def members(self, label: str, level: int, domain: Iterable[str]) -> list[str]:
        """The values of `domain` that level `level` shows as `label`."""
        return [value for value in domain if self.shown(value, level) == label]

    def covers(self, label: str, value: str) -> bool:
        """Whether a released `label` can stand for a true `value` (a reader's view of the file)."""
        return label == value or label == WITHHELD or any(level.get(value) == label for level in self.levels)


SUPPRESSION_ONLY = Hierarchy()


def value_loss(values: Sequence[str], hierarchy: Hierarchy, level: int, domain: Sequence[str]) -> list[float]:
    """Loss of each value shown at `level` (see the module's docstring); `domain`: the field's values."""
    distinct = sorted(set(domain))
    if level >= hierarchy.withheld_level:
        return [1.0] * len(values)
    if level == 0 or len(distinct) <= 1:
        return [0.0] * len(values)
    size: dict[str, int] = {}
    for value in distinct:
        label = hierarchy.shown(value, level)
        size[label] = size.get(label, 0) + 1
    return [(size[hierarchy.shown(v, level)] - 1) / (len(distinct) - 1) for v in values]
