"""De-identified student-level extracts: keyed pseudonyms, one record per student over all years,
k-anonymity that holds whatever a withheld value hides.

    protect_extract(frame, id_col="student_id", year_col="school_year", quasi=(...), k=10, key=b"...")
        -> (extract, ExtractReport)

The unit of protection is the student, not the row. A multi-year extract is one release: each
student's rows (one per school year) share one pseudonym, and the attacker is assumed to join
them. So the check runs on the *joined record*: for every quasi-identifier, its value in each
year (a field that never changes for a student, such as gender, is one value), and which years
the student is in at all.

Withheld values ("Not reported") are judged as what they are: a blank pattern is part of what a
record shows. Every record must show exactly what at least k-1 other records show (the same
values, the same blanks). Then a recipient who knows everything about a student's
quasi-identifiers, and even who else is in the extract, finds at least k records the student could
be, and every record could be any of at least k students; a blank that would only ever hide a rare
value (gender X) is never left standing alone, because k records must show the same blank, and
the rare value is generalized together with others into "Not reported". (Counting a blank as
matching any value, as sdcMicro does, lets two blanks among hundreds pass, and lets a few fully
blank records "cover" a record whose shown values are unique among the students.)

Values may also be shown as a group of the policy pack's hierarchy ("Not Hispanic or Latino"):
a group is a value like any other when records are compared. Each student's joined record is
shown at one level per field (as it is, a group, or withheld), chosen for the least information
lost, weighted by the fields' importance (local recoding, `workbench.disclosure.recoding`). A
record is removed only when fewer than k students share the years it is in (those cannot be
withheld). Where the joined record is too wide for that search (`RECODING_BUDGET`), one choice of
levels is made for the whole extract and values are withheld cell by cell by a greedy
(`suppress_to_k`): classes below k are taken biggest first; for each, every field it still shows
is tried (and none), withheld in the class and in the fewest other records that then show the
same; the cheapest option is applied; a last pass shows again every withheld value not needed.

Order carries nothing: pseudonyms are "Student 1..N" numbered by HMAC-SHA256(key, ID), the key
being the release's own, and rows are written in pseudonym order; which of several equally cheap
records is recoded is decided by the same keyed order, so a recipient cannot tell a record
withheld for its own sake from one withheld to hide another.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from workbench.disclosure import recoding
from workbench.disclosure.hierarchy import SUPPRESSION_ONLY, WITHHELD, Hierarchy, value_loss
from workbench.errors import InputError
DEFAULT_QUASI = ("school", "grade", "gender", "race_ethnicity")
# Given up first to last when neither the pack nor the request orders them.
DEFAULT_SUPPRESSION_ORDER = ("race_ethnicity", "gender", "school", "grade")
_SUPPRESSED = -1  # code of a withheld cell
_ABSENT = -2  # code of a year the student is not in: shown, never withheld
# Above this many (level combinations x students) the search falls back to one choice of levels
# for the whole extract, then withholding cell by cell (`_least_loss`); memory grows with it.
RECODING_BUDGET = 3_000_000
# A value of the field ranked r-th from the least important costs 1 + IMPORTANCE_STEP * r.
IMPORTANCE_STEP = 0.5
# The greedy search is run with the importance weights scaled by each of these (0: every value
# alike); the result that loses least by the real weights is kept.
GUIDES = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)


class ExtractError(InputError):
    """The extract cannot be produced as asked (missing columns, bad k, duplicate IDs)."""


@dataclass
class FieldLoss:
    """What protection did to one quasi-identifier, in counts only."""

    values: int = 0  # values released before protection (rows where the field is present)
    withheld: int = 0  # of those, written as "Not reported"
    generalized: int = 0  # values coarsened before the check (set by the caller that coarsened them)
    grouped: int = 0  # of the values released, shown as a group of the field's hierarchy
    loss: float = 0.0  # information lost, summed over the values (hierarchy.value_loss)


@dataclass
class ExtractReport:
    students: int
    rows: int
    k: int
    dropped_columns: list[str]
    fields: dict[str, FieldLoss] = field(default_factory=dict)
    students_removed: int = 0
    rows_removed: int = 0
    smallest_class: int = 0
    years: list[str] = field(default_factory=list)
    ids_found_elsewhere: int = 0
    linkage: bool = False

    @property
    def withheld(self) -> int:
        return sum(f.withheld for f in self.fields.values())

    @property
    def values(self) -> int:
        return sum(f.values for f in self.fields.values())

    @property
    def information_loss(self) -> float:
        """Share of the quasi-identifier values lost: withheld count 1, grouped ones their share, and
        every value of a removed row 1."""
        removed = self.rows_removed * len(self.fields)
        total = self.values + removed
        return (sum(f.loss for f in self.fields.values()) + removed) / total if total else 0.0

    def as_dict(self) -> dict:
        """Counts only: what the manifest records about the extract."""
        return {
            "k": self.k,
            "students": self.students,
            "rows": self.rows,
            "years": list(self.years),
            "students_removed": self.students_removed,
            "rows_removed": self.rows_removed,
            "smallest_class": self.smallest_class,
            "quasi_identifier_values": self.values,
            "values_withheld": self.withheld,
            "information_loss": round(self.information_loss, 4),
            "fields": {name: {"values": f.values, "withheld": f.withheld, "generalized": f.generalized,
                              "grouped": f.grouped,
                              "information_loss": round(f.loss / f.values, 4) if f.values else 0.0}
                       for name, f in self.fields.items()},
            "dropped_columns": list(self.dropped_columns),
            "ids_found_elsewhere": self.ids_found_elsewhere,
            "linkage_token": self.linkage,
        }

    def lines(self) -> list[str]:
        kept = self.students - self.students_removed
        out = [f"{kept} students in {self.rows - self.rows_removed} rows; pseudonyms replace the IDs, one per student across years"]
        if self.students_removed:
            out.append(f"{self.students_removed} students removed ({self.rows_removed} rows): fewer than {self.k} students share the years they are in")
        if self.linkage:
            out.append("linkage_token: HMAC-SHA256 of the ID with the district's key")
        if self.dropped_columns:
            out.append("removed columns: " + ", ".join(self.dropped_columns))
        share = f" ({100 * self.withheld / self.values:.1f}% of {self.values})" if self.values else ""
        out.append(f"k={self.k}: {self.withheld} values withheld as '{WITHHELD}'{share}; smallest group {self.smallest_class}; "
                   f"information lost {100 * self.information_loss:.1f}%")
        for name, loss in self.fields.items():
            parts = []
            if loss.generalized:
                parts.append(f"{loss.generalized} generalized")
            if loss.grouped:
                parts.append(f"{loss.grouped} shown as a group")
            if loss.withheld:
                parts.append(f"{loss.withheld} withheld")
            if parts:
                out.append(f"  {name}: {', '.join(parts)} of {loss.values}")
        if self.ids_found_elsewhere:
            out.append(f"{self.ids_found_elsewhere} values equal to a student ID blanked in other columns")
        return out


def pseudonym_order(ids: Sequence[str], key: bytes) -> np.ndarray:
    """1-based pseudonym numbers: the rank of each ID's HMAC under the release key."""
    digests = [hmac.new(key, str(i).encode("utf-8"), hashlib.sha256).digest() for i in ids]
    ranks = np.empty(len(digests), dtype=np.int64)
    ranks[np.argsort(np.array(digests, dtype=object), kind="stable")] = np.arange(1, len(digests) + 1)
    return ranks


def protect_extract(
    frame: pd.DataFrame,
    *,
    id_col: str = "student_id",
    year_col: str | None = None,
    quasi: Sequence[str] = DEFAULT_QUASI,
    k: int = 10,
    drop: Sequence[str] = (),
    suppression_order: Sequence[str] | None = None,
    key: bytes | None = None,
    linkage_key: bytes | None = None,
    hierarchies: Mapping[str, Hierarchy] | None = None,
) -> tuple[pd.DataFrame, ExtractReport]:
    """Pseudonymise, drop aggregate-only fields, withhold quasi-identifier values to k-anonymity.

    `frame` has one row per student, or with `year_col` one row per student and year.
    `suppression_order` lists quasi-identifiers in the order they are given up (least important
    first); `key` is the release's pseudonym key (fresh randomness when None). `hierarchies` gives
    the coarser codings a quasi-identifier may be shown in (from the policy pack): each student's
    record is shown at the levels that lose the least, a withheld value being the top level.
    """
    quasi = list(quasi)
    if k < 1:
        raise ExtractError("k must be at least 1")
    missing = [c for c in [id_col, *([year_col] if year_col else []), *quasi, *drop] if c not in frame.columns]
    if missing:
        raise ExtractError(f"column(s) not in the input: {', '.join(missing)}")
    if id_col in quasi or id_col in drop or (year_col and (year_col in quasi or year_col in drop)):
        raise ExtractError(f"the ID column {id_col} (and the year column) cannot be a quasi-identifier or a dropped column")
    order = _suppression_order(quasi, suppression_order)
    hierarchies = dict(hierarchies or {})
    unknown = [c for c in hierarchies if c not in quasi]
    if unknown:
        raise ExtractError(f"hierarchies name columns that are not quasi-identifiers: {', '.join(unknown)}")
    data = frame.drop(columns=list(drop)).reset_index(drop=True).copy()
    data[id_col] = data[id_col].astype(str)
    years_of = data[year_col].astype(str) if year_col else pd.Series("", index=data.index)
    duplicated = pd.DataFrame({"id": data[id_col], "year": years_of}).duplicated()
    if duplicated.any():
        raise ExtractError(f"{int(duplicated.sum())} duplicate IDs in {id_col}" + (f" within one {year_col}" if year_col else ""))
    for column in quasi:
        data[column] = data[column].astype(object).where(data[column].notna(), "").astype(str)
    key = key if key is not None else secrets.token_bytes(32)

    students = pd.Index(pd.unique(data[id_col]))
    row_student = students.get_indexer(data[id_col])
    years = sorted(pd.unique(years_of))
    row_year = pd.Index(years).get_indexer(years_of)
    weight_of = {q: 1.0 + IMPORTANCE_STEP * rank for rank, q in enumerate(order)}
    ranks = pseudonym_order(list(students), key)
    layout = _Layout(row_student, row_year, len(students), len(years))
    combinations = 1
    for q in quasi:
        combinations *= hierarchies.get(q, SUPPRESSION_ONLY).withheld_level + 1
    if combinations * max(len(students), 1) <= RECODING_BUDGET:
        best = _local_recoding(data, quasi, hierarchies, weight_of, k, ranks, layout)
    else:
        best = _least_loss(data, quasi, hierarchies, weight_of, k, ranks, layout)

    report = ExtractReport(students=len(students), rows=len(data), k=k, dropped_columns=list(drop),
                           linkage=linkage_key is not None, years=[y for y in years if y])
    removed = best.removed
    report.students_removed = int(removed.sum())
    kept = ~removed

    out = data.copy()
    for q in quasi:
        out[q] = best.shown[q]
    hidden = best.hidden_cells
    keep_rows = kept[row_student]
    for q in quasi:
        out.loc[hidden[q], q] = WITHHELD
        rows = keep_rows
        shown = out.loc[rows, q]
        grouped = (shown != data.loc[rows, q]) & (shown != WITHHELD)
        report.fields[q] = FieldLoss(values=int(rows.sum()), withheld=int((shown == WITHHELD).sum()),
                                     grouped=int(grouped.sum()), loss=float(best.cell_loss[q][rows].sum()))
    report.rows_removed = int((~keep_rows).sum())
    shown_codes, _, _, _ = _joined_record(out.loc[keep_rows].reset_index(drop=True), quasi, row_student[keep_rows],
                                          row_year[keep_rows], len(students), len(years))
    sizes = class_sizes(shown_codes[kept])
    report.smallest_class = int(sizes.min()) if len(sizes) else 0
    if report.smallest_class and report.smallest_class < k:
        raise RuntimeError("extract protection left a record in a class below k")  # a bug, never a user's mistake

    # Numbered over the students kept, so the numbers show no gap where a student was removed.
    removed_last = np.where(kept, ranks, len(ranks) + ranks)
    ranks = np.argsort(np.argsort(removed_last, kind="stable"), kind="stable") + 1
    ids = out[id_col].copy()
    pseudonyms = pd.Series([f"Student {n}" for n in ranks[row_student]], index=out.index)
    if set(ids) & set(pseudonyms):
        raise ExtractError("an input ID looks like a pseudonym ('Student N'); rename the IDs first")
    position = out.columns.get_loc(id_col)
    out[id_col] = pseudonyms
    if linkage_key is not None:
        tokens = [hmac.new(linkage_key, value.encode("utf-8"), hashlib.sha256).hexdigest() for value in ids]
        out.insert(position + 1, "linkage_token", tokens)
    # An ID can hide in another column (a sibling's ID, a free-text note): blank any exact match.
    id_values = set(ids)
    for column in out.columns:
        if column in (id_col, "linkage_token", year_col):
            continue
        hits = out[column].astype(str).isin(id_values).to_numpy()
        if hits.any():
            report.ids_found_elsewhere += int(hits.sum())
            out[column] = out[column].astype(object)
            out.loc[hits, column] = ""
    out["_order"] = ranks[row_student]
    out["_year"] = row_year
    out = out[keep_rows].sort_values(["_order", "_year"], kind="stable").drop(columns=["_order", "_year"])
    return out.reset_index(drop=True), report


@dataclass
class _Layout:
    """Where each row sits in the joined record: its student and its year."""

    row_student: np.ndarray
    row_year: np.ndarray
    students: int
    years: int


@dataclass
class _Attempt:
    """The extract protected one way: what each row shows and what it cost."""

    shown: dict[str, np.ndarray]  # per field, each row's value at its level (before withholding)
    removed: np.ndarray  # per student
    hidden_cells: dict[str, np.ndarray]  # per field, rows withheld
    cell_loss: dict[str, np.ndarray]  # per field, each row's loss
    cost: float  # loss weighted by importance


def _local_recoding(data, quasi, hierarchies, weight_of, k, ranks, layout) -> _Attempt:
    """Each student's record at one level per field (see workbench.disclosure.recoding); the
    search is run under a few weightings and the result that loses least by the real weights kept."""
    codes, _, columns, categories = _joined_record(data, quasi, layout.row_student, layout.row_year,
                                                   layout.students, layout.years)
    presence = codes[:, -1]
    rows_of = np.bincount(layout.row_student, minlength=layout.students)
    fields = list(quasi)
    loss_options, plain_options = [], []
    for j, (q, year_index) in enumerate(columns):
        hierarchy = hierarchies.get(q, SUPPRESSION_ONLY)
        labels = categories[j]
        domain = sorted(set(data[q]))
        present = codes[:, j] >= 0
        index = np.maximum(codes[:, j], 0)
        cells = np.where(present, rows_of if year_index is None else 1, 0)
        weighted, plain = [], []
        for level in range(hierarchy.withheld_level + 1):
            shown = [hierarchy.shown(v, level) for v in labels]
            shown_code = np.where(present, pd.Index(pd.unique(np.array(shown, dtype=object))).get_indexer(shown)[index], _ABSENT)
            loss = np.array(value_loss(labels, hierarchy, level, domain))[index] * cells
            weighted.append((shown_code, loss * weight_of[q]))
            plain.append((shown_code, loss))
        loss_options.append(weighted)
        plain_options.append(plain)
    field_levels = [range(hierarchies.get(q, SUPPRESSION_ONLY).withheld_level + 1) for q in fields]
    combinations = []
    for choice in itertools.product(*field_levels):
        level_of = dict(zip(fields, choice))
        combinations.append(tuple(level_of[q] for q, _ in columns))
    withheld = len(combinations) - 1  # every field at its top level
    groups, weighted_costs = recoding.group_ids(loss_options, combinations, presence)
    _, plain_costs = recoding.group_ids(plain_options, combinations, presence)
    everyone = np.arange(layout.students)
    best = None
    # The greedy is guided by the weights it is given; the importance-weighted loss decides.
    for strength in GUIDES:
        guide = plain_costs + strength * (weighted_costs - plain_costs)
        chosen, removed = recoding.choose_levels(groups, guide, k, withheld, ranks)
        cost = float(weighted_costs[chosen, everyone][~removed].sum())
        if best is None or cost < best[0] - 1e-9:
            best = (cost, chosen, removed)
    _, chosen, removed = best

    shown, hidden_cells, cell_loss = {}, {}, {}
    row_choice = chosen[layout.row_student]
    removed_rows = removed[layout.row_student]
    cost = 0.0
    for q in quasi:
        hierarchy = hierarchies.get(q, SUPPRESSION_ONLY)
        j = next(index for index, (name, _) in enumerate(columns) if name == q)
        level = np.array([combinations[c][j] for c in row_choice], dtype=np.int64)
        values = data[q].to_numpy(dtype=object)
        domain = sorted(set(values))
        shown[q] = np.array([hierarchy.shown(v, lv) for v, lv in zip(values, level)], dtype=object)
        hidden_cells[q] = (level >= hierarchy.withheld_level) & ~removed_rows
        per_level = {lv: np.array(value_loss(list(values), hierarchy, lv, domain)) for lv in np.unique(level)}
        cell_loss[q] = np.array([per_level[lv][i] for i, lv in enumerate(level)]) if len(level) else np.zeros(0)
        cost += weight_of[q] * float(np.where(removed_rows, 1.0, cell_loss[q]).sum())
    return _Attempt(shown, removed, hidden_cells, cell_loss, cost)


def _least_loss(data, quasi, hierarchies, weight_of, k, ranks, layout) -> _Attempt:
    """Protect at every combination of hierarchy levels (a small lattice) and keep the one that
    loses the least, weighted by importance; ties go to the finer levels.

    A combination's loss is at least what its coarsening costs before anything is withheld, so
    combinations are tried cheapest coarsening first and the search stops once that floor reaches
    the best loss found.
    """
    domains = {q: sorted(set(data[q])) for q in quasi}
    values = {q: data[q].to_numpy(dtype=object) for q in quasi}
    fields = [q for q in quasi if q in hierarchies]
    level_loss = {(q, level): np.array(value_loss(list(values[q]), hierarchies[q], level, domains[q]))
                  for q in fields for level in range(hierarchies[q].withheld_level + 1)}
    candidates = []
    for combination in itertools.product(*(range(hierarchies[q].withheld_level + 1) for q in fields)):
        levels = dict(zip(fields, combination))
        floor = sum(weight_of[q] * level_loss[(q, level)].sum() for q, level in levels.items())
        candidates.append((floor, combination, levels))
    candidates.sort(key=lambda c: (c[0], c[1]))
    best: _Attempt | None = None
    for floor, _, levels in candidates:
        if best is not None and floor >= best.cost - 1e-9:
            break
        attempt = _protect_at(data, quasi, hierarchies, levels, level_loss, values, weight_of, k, ranks, layout)
        if best is None or attempt.cost < best.cost - 1e-9:
            best = attempt
    return best


def _protect_at(data, quasi, hierarchies, levels, level_loss, values, weight_of, k, ranks, layout) -> _Attempt:
    recoded = pd.DataFrame(index=data.index)
    shown = {}
    for q in quasi:
        level = levels.get(q, 0)
        hierarchy = hierarchies.get(q, SUPPRESSION_ONLY)
        shown[q] = np.array([hierarchy.shown(v, level) for v in values[q]], dtype=object) if level else values[q]
        recoded[q] = shown[q].astype(str)
    codes, blankable, columns, _ = _joined_record(recoded, quasi, layout.row_student, layout.row_year,
                                                  layout.students, layout.years)
    for j, (q, _year) in enumerate(columns):
        if q in hierarchies and levels[q] >= hierarchies[q].withheld_level:
            blankable[:, j] = False  # withheld in every row already
    weights = np.array([weight_of[q] for q, _ in columns])
    protected, removed = suppress_to_k(codes, blankable, weights, k, tie_break=ranks)
    hidden_cells: dict[str, np.ndarray] = {q: np.zeros(len(data), dtype=bool) for q in quasi}
    for j, (q, year_index) in enumerate(columns):
        rows = np.flatnonzero(layout.row_year == year_index) if year_index is not None else np.arange(len(data))
        hidden_cells[q][rows[protected[layout.row_student[rows], j] == _SUPPRESSED]] = True
    removed_rows = removed[layout.row_student]
    cell_loss = {}
    cost = 0.0
    for q in quasi:
        level = levels.get(q, 0)
        base = level_loss[(q, level)] if (q, level) in level_loss else np.zeros(len(data))
        cell_loss[q] = np.where(hidden_cells[q], 1.0, base)
        cost += weight_of[q] * float(np.where(removed_rows, 1.0, cell_loss[q]).sum())
    return _Attempt(shown, removed, hidden_cells, cell_loss, cost)


def _suppression_order(quasi: list[str], order: Sequence[str] | None) -> list[str]:
    if order is None:
        preferred = [c for c in DEFAULT_SUPPRESSION_ORDER if c in quasi]
        rest = [c for c in reversed(quasi) if c not in preferred]
        return rest + preferred
    order = list(order)
    unknown = [c for c in order if c not in quasi]
    if unknown:
        raise ExtractError(f"suppression order names columns that are not quasi-identifiers: {', '.join(unknown)}")
    # Anything the order leaves out is given up first, least important first by its quasi position.
    return [c for c in reversed(quasi) if c not in order] + order


def _joined_record(data, quasi, row_student, row_year, n_students, n_years):
    """Integer codes of each student's joined record; a column per field, or per field and year.

    A field whose value never changes between a student's years is one column, so it is shown or
    withheld in every year at once. The years a student is in form a column that is never withheld.
    """
    columns: list[tuple[str, int | None]] = []
    blocks: list[np.ndarray] = []
    blank_blocks: list[np.ndarray] = []
    categories: list[list[str]] = []
    for q in quasi:
        values = data[q].to_numpy(dtype=str)
        cats, code = np.unique(values, return_inverse=True)
        per_student = pd.Series(code).groupby(row_student).nunique()
        if n_years == 1 or (per_student <= 1).all():
            column = np.full(n_students, _ABSENT, dtype=np.int64)
            column[row_student] = code
            columns.append((q, None))
            blocks.append(column)
            blank_blocks.append(column != _ABSENT)
            categories.append(list(cats))
            continue
        for y in range(n_years):
            column = np.full(n_students, _ABSENT, dtype=np.int64)
            rows = row_year == y
            column[row_student[rows]] = code[rows]
            columns.append((q, y))
            blocks.append(column)
            blank_blocks.append(column != _ABSENT)
            categories.append(list(cats))
    presence = np.zeros(n_students, dtype=np.int64)
    for y in range(n_years):
        presence[row_student[row_year == y]] |= 1 << y
    codes = np.column_stack(blocks + [presence]) if blocks else presence[:, None]
    blankable = np.column_stack(blank_blocks + [np.zeros(n_students, dtype=bool)]) if blocks else np.zeros((n_students, 1), bool)
    columns.append(("_years", None))
    return codes, blankable, columns[:-1], categories


def class_sizes(codes: np.ndarray) -> np.ndarray:
    """For each record, how many records show exactly what it shows (the same values, the same blanks)."""
    if len(codes) == 0:
        return np.zeros(0, dtype=np.int64)
    _, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    return counts[inverse.ravel()]


def suppress_to_k(codes: np.ndarray, blankable: np.ndarray, weights: np.ndarray, k: int,
                  tie_break: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Withhold cells until every record shows what at least k-1 others show; returns (codes, removed)."""
    original = codes
    codes = codes.copy()
    n, m = codes.shape
    weights = np.concatenate([weights, np.zeros(m - len(weights))])
    tie_break = np.arange(n) if tie_break is None else np.asarray(tie_break)
    removed = np.zeros(n, dtype=bool)
    give_up = [j for j in np.argsort(weights, kind="stable") if blankable[:, j].any()]
    # Every round withholds at least one more cell or removes a class, so the loop ends.
    while True:
        active = np.flatnonzero(~removed)
        sizes = np.full(n, k, dtype=np.int64)
        sizes[active] = class_sizes(codes[active])
        small = np.flatnonzero(~removed & (sizes < k))
        if not len(small):
            break
        groups, group_of = np.unique(codes[small], axis=0, return_inverse=True)
        group_of = group_of.ravel()
        # Biggest small classes first: they need the fewest extra records and others can join them.
        for g in np.argsort([-(group_of == g).sum() for g in range(len(groups))], kind="stable"):
            vector = groups[g]
            members = np.flatnonzero(~removed & (codes == vector).all(axis=1))
            if len(members) == 0 or len(members) >= k:
                continue  # emptied or filled by an earlier class this round
            move = _cheapest_move(codes, blankable, removed, weights, k, members, vector, tie_break)
            if move is not None:
                column, donors, donor_columns = move
                if column is not None:
                    codes[members, column] = _SUPPRESSED
                for donor, cols in zip(donors, donor_columns):
                    codes[donor, cols] = _SUPPRESSED
                continue
            candidates = [j for j in give_up if vector[j] >= 0 and blankable[members, j].all()]
            if candidates:
                codes[members, candidates[0]] = _SUPPRESSED
            elif not _merge_whole_classes(codes, blankable, removed, k, members, vector):
                removed[members] = True
    return _restore(original, codes, removed, weights, k, tie_break), removed


def _merge_whole_classes(codes, blankable, removed, k, members, vector) -> bool:
    """A class with nothing left to withhold takes in whole other classes (smallest first) of the
    records that can be made to show the same; False when there are not enough of them."""
    hidden = vector == _SUPPRESSED
    fits = ~removed & (codes[:, ~hidden] == vector[~hidden]).all(axis=1)
    fits &= ~((hidden[None, :] & (codes != _SUPPRESSED)) & ~blankable).any(axis=1)
    fits[members] = False
    if fits.sum() + len(members) < k:
        return False
    classes, class_of, sizes = np.unique(codes[fits], axis=0, return_inverse=True, return_counts=True)
    pool = np.flatnonzero(fits)
    taken = len(members)
    for c in np.argsort(sizes, kind="stable"):
        rows = pool[class_of.ravel() == c]
        codes[np.ix_(rows, np.flatnonzero(hidden))] = _SUPPRESSED
        taken += len(rows)
        if taken >= k:
            return True
    return True


def _cheapest_move(codes, blankable, removed, weights, k, members, vector, tie_break):
    """The cheapest way to bring a small class to k: withhold one more field in it (or none), and
    withhold in the fewest other records what makes them show the same; each value withheld costs
    its field's weight. Records are taken from classes only as far as those stay at k (or empty)."""
    active = ~removed
    sizes = np.zeros(len(codes), dtype=np.int64)
    keys, inverse, counts = np.unique(codes[active], axis=0, return_inverse=True, return_counts=True)
    class_of = np.full(len(codes), -1)
    class_of[active] = inverse.ravel()
    sizes[active] = counts[inverse.ravel()]
    is_member = np.zeros(len(codes), dtype=bool)
    is_member[members] = True
    best = None
    options = [None, *np.flatnonzero((vector >= 0) & blankable[members].all(axis=0))]
    for column in options:
        target = vector.copy()
        if column is not None:
            target[column] = _SUPPRESSED
        hidden = target == _SUPPRESSED
        same = active & (codes == target).all(axis=1)
        need = k - int(same.sum()) - (len(members) if column is not None else 0)
        cost = len(members) * weights[column] if column is not None else 0.0
        donors: list[int] = []
        donor_columns: list[np.ndarray] = []
        if need > 0:
            # Records that become `target` by withholding only: they show target's values where it
            # shows them, and nothing is shown by target that they withhold.
            fits = active & ~same & ~is_member & (codes[:, ~hidden] == target[~hidden]).all(axis=1)
            to_hide = hidden[None, :] & (codes != _SUPPRESSED)
            fits &= ~(to_hide & ~blankable).any(axis=1)
            pool = np.flatnonzero(fits)
            if len(pool) < need:
                continue
            pool_cost = (to_hide[pool] * weights).sum(axis=1)
            spare = {c: (sizes_c - k if sizes_c >= k else sizes_c) for c, sizes_c in
                     zip(np.unique(class_of[pool]), [counts[c] for c in np.unique(class_of[pool])])}
            chosen = []
            for index in np.lexsort((tie_break[pool], pool_cost)):
                record_class = class_of[pool[index]]
                if spare[record_class] > 0:
                    spare[record_class] -= 1
                    chosen.append(index)
                    if len(chosen) == need:
                        break
            if len(chosen) < need:
                continue
            # A small class left with fewer members than before is no worse off: it was small already.
            chosen = np.array(chosen)
            cost += float(pool_cost[chosen].sum())
            donors = list(pool[chosen])
            donor_columns = [np.flatnonzero(to_hide[pool[c]]) for c in chosen]
        if best is None or cost < best[0]:
            best = (cost, column, donors, donor_columns)
    return None if best is None else best[1:]


def _restore(original: np.ndarray, codes: np.ndarray, removed: np.ndarray, weights: np.ndarray, k: int,
             tie_break: np.ndarray) -> np.ndarray:
    """Show again every withheld value whose return leaves every class at k or more (or empty).

    The greedy withholds whole classes and pulls in extra records; some of those values turn out
    not to be needed once the other classes have settled. Returning a value moves one record from
    its class to another, so only those two class sizes change. Most important fields are tried
    first; ties in the release's keyed order.
    """
    codes = codes.copy()
    active = ~removed
    counts: dict[bytes, int] = {}
    for row in codes[active]:
        counts[row.tobytes()] = counts.get(row.tobytes(), 0) + 1
    cells = np.argwhere((codes == _SUPPRESSED) & active[:, None])
    order = np.lexsort((tie_break[cells[:, 0]], -weights[cells[:, 1]]))
    for i, j in cells[order]:
        before = codes[i].tobytes()
        after_row = codes[i].copy()
        after_row[j] = original[i, j]
        after = after_row.tobytes()
        left = counts[before] - 1
        joined = counts.get(after, 0) + 1
        if (left == 0 or left >= k) and joined >= k:
            codes[i] = after_row
            counts[before] = left
            counts[after] = joined
    return codes
