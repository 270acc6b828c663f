"""A recipient's attack on one school year of a release, written apart from workbench's own audit.

It reads the tables as a recipient holds them (long format: dimension columns with `Total`,
`students` holding a count or a mark, one text column per measure such as "12.5%", "<=10%",
"*" or "") and states, for scipy's integer solver (HiGHS through scipy.optimize.milp), what
they say:

  * counts: published values exactly; every additive relation of every table (a group in two
    tables is one unknown); a mark is at least 1 student when the method publishes zeros; with
    two marks ("*" small, a dagger complementary) the first is below the threshold and the
    second at least the threshold;
  * each measure: numerator y and denominator m per group, additive like the counts,
    0 <= y <= m <= n (m = n where the definition says the measure is over every student of the
    group, m = 0 where it says the group has no one in it); a shown "p%" is the rounding
    interval of y/m; "<=B%" and ">=T%" are bounds; "" is m = 0; a shown rate also tells that m
    is not small, that it is not coded, and, under a numerator threshold, that y and m - y are
    not small; "*" tells nothing;
  * the release's students-hidden figures, where given.

`pinned` returns every protected quantity whose integer minimum equals its maximum.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import Bounds, LinearConstraint, milp

TOTAL = "Total"
DAGGER = "\u2020"
_PERCENT = re.compile(r"^(<=|>=)?(\d+(?:\.\d+)?)%$")


@dataclass
class Method:
    """What the publisher's public method tells a reader."""

    threshold: int = 10
    comparison: str = "<"
    zeros_published: bool = True
    numerator_threshold: int | None = None
    tiers: tuple[tuple[int, int | None, float, float], ...] = ((10, 39, 10, 90), (40, 99, 5, 95), (100, None, 1, 99))
    rounding_half_up: bool = True  # a shown p is round-half-up of 100*y/m to one decimal

    @property
    def smallest(self) -> int:
        return self.threshold if self.comparison == "<" else self.threshold + 1


@dataclass
class Facts:
    """A measure's documented definition."""

    denominator_is_group: bool = False
    zero_where: dict[str, set[str]] = field(default_factory=dict)  # dim -> labels where m = 0


@dataclass
class Table:
    frame: pd.DataFrame
    dims: list[str]
    measures: list[str]  # text columns of measures over the table's own groups
    students_hidden: int | None = None


def tables_by_year(folder, manifest: dict, facts: dict[str, Facts]) -> dict[str, list[Table]]:
    """A release's tables as its recipient reads them from its CSV files, by school year."""
    years: dict[str, list[Table]] = {}
    for name, summary in manifest["protection"].items():
        frame = pd.read_csv(folder / "tables" / f"{name}.csv", dtype=str, keep_default_na=False)
        dims = list(frame.columns[: list(frame.columns).index("students")])
        measures = [c for c in frame.columns if c in facts or c == "chronic_absence"]
        years.setdefault(summary["year"], []).append(Table(frame, dims, measures, summary.get("students_hidden")))
    return years


def _key(row: dict, dims: list[str]) -> tuple:
    return tuple(sorted((d, str(row[d])) for d in dims if str(row[d]) != TOTAL))


class _Program:
    def __init__(self) -> None:
        self.names: dict[tuple, int] = {}
        self.low: list[float] = []
        self.high: list[float] = []
        self.rows: list[tuple[dict[int, float], float, float]] = []

    def var(self, name: tuple) -> int:
        if name not in self.names:
            self.names[name] = len(self.low)
            self.low.append(0.0)
            self.high.append(np.inf)
        return self.names[name]

    def bound(self, v: int, low: float | None = None, high: float | None = None) -> None:
        if low is not None:
            self.low[v] = max(self.low[v], low)
        if high is not None:
            self.high[v] = min(self.high[v], high)

    def row(self, terms: dict[int, float], low: float, high: float) -> None:
        self.rows.append((terms, low, high))

    def interval(self, terms: dict[int, float]) -> tuple[float, float]:
        n = len(self.low)
        matrix = np.zeros((len(self.rows), n))
        lows, highs = [], []
        for r, (t, lo, hi) in enumerate(self.rows):
            for v, c in t.items():
                matrix[r, v] += c
            lows.append(lo)
            highs.append(hi)
        constraints = [LinearConstraint(matrix, lows, highs)] if self.rows else []
        cap = 10 * (max([h for h in self.high if np.isfinite(h)], default=0) + 100)
        bounds = Bounds(self.low, [min(h, cap) for h in self.high])
        cost = np.zeros(n)
        for v, c in terms.items():
            cost[v] += c
        ends = []
        for sign in (1.0, -1.0):
            result = milp(sign * cost, constraints=constraints, bounds=bounds, integrality=np.ones(n))
            assert result.status == 0, f"the attacker's program failed: {result.message}"
            ends.append(sign * result.fun)
        return ends[0], ends[1]


def pinned(tables: list[Table], method: Method, facts: dict[str, Facts], protected: set | None = None) -> list[str]:
    """Every quantity a recipient can pin: 'count <cell>', '<measure> numerator <cell>', ...

    protected: restrict the report to these quantity names (the test's ground truth of what the
    rule protects); None reports every hidden count and every hidden or coded rate.
    """
    program = _Program()
    targets: dict[str, dict[int, float]] = {}
    for table in tables:
        frame = table.frame.astype(str)
        records = frame.to_dict("records")
        cats = {d: [c for c in pd.unique(frame[d]) if c != TOTAL] for d in table.dims}
        for record in records:
            key = _key(record, table.dims)
            n = program.var(("n", key))
            text = record["students"].strip()
            if text == "*":
                program.bound(n, low=1.0 if method.zeros_published else 0.0)
                if DAGGER in set(frame["students"]):  # two marks: "*" is a small group
                    program.bound(n, high=method.smallest - 1)
                targets[f"count {key}"] = {n: 1.0}
            elif text == DAGGER:
                program.bound(n, low=float(method.smallest))
                targets[f"count {key}"] = {n: 1.0}
            else:
                program.bound(n, float(text.replace(",", "")), float(text.replace(",", "")))
            for measure in table.measures:
                m = program.var(("m", measure, key))
                y = program.var(("y", measure, key))
                program.row({y: 1.0, m: -1.0}, -np.inf, 0.0)
                fact = facts.get(measure, Facts())
                if fact.denominator_is_group:
                    program.row({m: 1.0, n: -1.0}, 0.0, 0.0)
                else:
                    program.row({m: 1.0, n: -1.0}, -np.inf, 0.0)
                documented = any(record.get(d) in labels for d, labels in fact.zero_where.items() if d in table.dims)
                if documented:
                    program.bound(m, high=0.0)
                _read_rate(program, method, record[measure].strip(), m, y)
                shown = record[measure].strip()
                hidden_or_coded = shown == "*" or shown.startswith(("<=", ">="))
                if shown != "" and not documented and (hidden_or_coded or protected is not None):
                    targets[f"{measure} numerator {key}"] = {y: 1.0}
                    targets[f"{measure} complement {key}"] = {m: 1.0, y: -1.0}
                    if text in ("*", DAGGER) and not fact.denominator_is_group:
                        targets[f"{measure} denominator {key}"] = {m: 1.0}
        # Additivity: along each dimension, a Total equals the sum of its categories.
        by_key = {_key(r, table.dims): r for r in records}
        for record in records:
            for axis, dim in enumerate(table.dims):
                if str(record[dim]) != TOTAL:
                    continue
                parent = _key(record, table.dims)
                children = []
                for cat in cats[dim]:
                    child = dict(record)
                    child[dim] = cat
                    children.append(_key(child, table.dims))
                for prefix in [("n",)] + [(q, meas) for meas in table.measures for q in ("m", "y")]:
                    terms = {program.var((*prefix, parent)): 1.0}
                    for child in children:
                        if child not in by_key:  # an absent combination holds no student
                            continue
                        v = program.var((*prefix, child))
                        terms[v] = terms.get(v, 0.0) - 1.0
                    program.row(terms, 0.0, 0.0)
        if table.students_hidden is not None:
            hidden = [program.var(("n", _key(r, table.dims))) for r in records
                      if r["students"].strip() in ("*", DAGGER) and all(str(r[d]) != TOTAL for d in table.dims)]
            program.row({v: 1.0 for v in hidden}, float(table.students_hidden), float(table.students_hidden))
    found = []
    for name, terms in targets.items():
        if protected is not None and name not in protected:
            continue
        low, high = program.interval(terms)
        if round(high) - round(low) < 1:
            found.append(f"{name} = {round(low)}")
    return found


def _read_rate(program: _Program, method: Method, text: str, m: int, y: int) -> None:
    if text in ("*", DAGGER):
        return
    if text in ("", "n/a"):  # no denominator (written "n/a" since blanks read as missing data)
        program.bound(m, high=0.0)
        return
    match = _PERCENT.match(text)
    assert match, f"unreadable rate {text!r}"
    code, number = match.group(1), float(match.group(2))
    program.bound(m, low=float(method.smallest))
    if code == "<=":
        program.row({y: 100.0, m: -number}, -np.inf, 0.0)
    elif code == ">=":
        program.row({y: 100.0, m: -number}, 0.0, np.inf)
    else:
        tenths = round(number * 10)
        # round half up: (2k - 1) m <= 2000 y < (2k + 1) m
        program.row({y: 2000.0, m: -(2.0 * tenths - 1)}, 0.0, np.inf)
        program.row({y: 2000.0, m: -(2.0 * tenths + 1)}, -np.inf, -1.0)
        if method.numerator_threshold is not None:
            program.bound(y, low=float(method.numerator_threshold))
            program.row({m: 1.0, y: -1.0}, float(method.numerator_threshold), np.inf)
