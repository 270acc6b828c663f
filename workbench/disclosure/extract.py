"""De-identified student-level extracts: pseudonyms, dropped fields, k-anonymity by local suppression.

    protect_extract(frame, id_col="student_id", quasi=(...), k=10) -> (extract, ExtractReport)

* The ID column's values become "Student 1", "Student 2", ... assigned in a random order (a
  seeded generator when reproducibility is wanted), so the numbering carries nothing of the IDs
  or of the input order.
* With a linkage key (held by the district; only where the agreement allows re-linking), a
  `linkage_token` column holds HMAC-SHA256(key, ID) in hex: the district can recompute it from
  its IDs, a recipient without the key cannot invert it.
* Fields that may be released only in aggregate (e.g. low_income) are removed.
* k-anonymity over the quasi-identifiers by local suppression: a value is blanked in the records
  that need it, giving up the least important quasi-identifier first. A blank matches any value,
  so a record's matches are the records that agree with it on every quasi-identifier where both
  are non-blank. Every record ends with at least k matches (itself included), or, when the whole
  extract has fewer than k records, with every quasi-identifier blank (reported). No record is
  dropped.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import product

import numpy as np
import pandas as pd
from workbench.errors import InputError

BLANK = ""
DEFAULT_QUASI = ("school", "grade", "gender", "race_ethnicity")
# Given up first to last: race/ethnicity is the rarest combination driver; grade is the most
# useful field for most research questions and is kept longest.
DEFAULT_SUPPRESSION_ORDER = ("race_ethnicity", "gender", "school", "grade")


class ExtractError(InputError):
    """The extract cannot be produced as asked (missing columns, bad k, duplicate IDs)."""


@dataclass
class ExtractReport:
    records: int
    k: int
    dropped_columns: list[str]
    blanked: dict[str, int] = field(default_factory=dict)  # quasi-identifier -> values blanked
    records_changed: int = 0
    records_below_k: int = 0  # only when the extract itself has fewer than k records
    ids_found_elsewhere: int = 0  # values equal to an input ID found (and blanked) in other columns
    linkage: bool = False

    def lines(self) -> list[str]:
        out = [f"{self.records} records kept (none dropped); pseudonyms replace the IDs"]
        if self.linkage:
            out.append("linkage_token: HMAC-SHA256 of the ID with the district's key")
        if self.dropped_columns:
            out.append("removed columns: " + ", ".join(self.dropped_columns))
        blanked = ", ".join(f"{col}: {n}" for col, n in self.blanked.items() if n)
        out.append(f"k={self.k}: {self.records_changed} records had values blanked" + (f" ({blanked})" if blanked else ""))
        if self.records_below_k:
            out.append(f"{self.records_below_k} records cannot reach k={self.k}: the extract has fewer records")
        if self.ids_found_elsewhere:
            out.append(f"{self.ids_found_elsewhere} values equal to a student ID blanked in other columns")
        return out


def protect_extract(
    frame: pd.DataFrame,
    *,
    id_col: str = "student_id",
    quasi: Sequence[str] = DEFAULT_QUASI,
    k: int = 10,
    drop: Sequence[str] = (),
    suppression_order: Sequence[str] | None = None,
    seed: int | None = None,
    linkage_key: bytes | None = None,
) -> tuple[pd.DataFrame, ExtractReport]:
    """Pseudonymise, drop aggregate-only fields, and blank quasi-identifiers to k-anonymity."""
    quasi = list(quasi)
    if k < 1:
        raise ExtractError("k must be at least 1")
    missing = [c for c in [id_col, *quasi, *drop] if c not in frame.columns]
    if missing:
        raise ExtractError(f"column(s) not in the input: {', '.join(missing)}")
    if id_col in quasi or id_col in drop:
        raise ExtractError(f"the ID column {id_col} cannot be a quasi-identifier or a dropped column")
    order = _suppression_order(quasi, suppression_order)
    ids = frame[id_col].astype(str)
    if ids.duplicated().any():
        raise ExtractError(f"{int(ids.duplicated().sum())} duplicate IDs in {id_col}")
    out = frame.drop(columns=list(drop)).copy()
    for column in quasi:
        out[column] = out[column].astype(object).where(out[column].notna(), BLANK).astype(str)
    report = ExtractReport(records=len(out), k=k, dropped_columns=list(drop), linkage=linkage_key is not None)

    blanked_before = {c: int((out[c] == BLANK).sum()) for c in quasi}
    changed = np.zeros(len(out), dtype=bool)
    for column in order:
        short = match_counts(out, quasi) < k
        if not short.any():
            break
        newly = short & (out[column] != BLANK).to_numpy()
        out.loc[newly, column] = BLANK
        changed |= newly
    report.records_below_k = int((match_counts(out, quasi) < k).sum())
    report.blanked = {c: int((out[c] == BLANK).sum()) - blanked_before[c] for c in quasi}
    report.records_changed = int(changed.sum())

    rng = np.random.default_rng(seed)
    numbers = rng.permutation(len(out)) + 1
    pseudonyms = pd.Series([f"Student {n}" for n in numbers], index=out.index)
    id_values = set(ids)
    if id_values & set(pseudonyms):
        raise ExtractError("an input ID looks like a pseudonym ('Student N'); rename the IDs first")
    position = out.columns.get_loc(id_col)
    out[id_col] = pseudonyms
    if linkage_key is not None:
        tokens = [hmac.new(linkage_key, value.encode("utf-8"), hashlib.sha256).hexdigest() for value in ids]
        out.insert(position + 1, "linkage_token", tokens)
    # An ID can hide in another column (a sibling's ID, a free-text note): blank any exact match.
    for column in out.columns:
        if column in (id_col, "linkage_token"):
            continue
        as_text = out[column].astype(str)
        hits = as_text.isin(id_values).to_numpy()
        if hits.any():
            report.ids_found_elsewhere += int(hits.sum())
            out[column] = out[column].astype(object)
            out.loc[hits, column] = BLANK
    return out, report


def _suppression_order(quasi: list[str], order: Sequence[str] | None) -> list[str]:
    if order is None:
        preferred = [c for c in DEFAULT_SUPPRESSION_ORDER if c in quasi]
        rest = [c for c in reversed(quasi) if c not in preferred]
        return preferred + rest
    order = list(order)
    unknown = [c for c in order if c not in quasi]
    if unknown:
        raise ExtractError(f"suppression order names columns that are not quasi-identifiers: {', '.join(unknown)}")
    # Anything the order leaves out is given up last, least important first by its quasi position.
    return order + [c for c in reversed(quasi) if c not in order]


def match_counts(frame: pd.DataFrame, quasi: Sequence[str]) -> np.ndarray:
    """For every record, how many records (itself included) match it, a blank matching anything.

    Records are grouped by which quasi-identifiers they leave blank (at most 2^q patterns); two
    records match when they agree on the columns neither leaves blank, so for each pair of
    patterns one group-by on those shared columns counts the matches.
    """
    quasi = list(quasi)
    n = len(frame)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    values = frame[quasi].astype(str)
    blank = (values == BLANK).to_numpy()
    pattern = (blank * (1 << np.arange(len(quasi)))).sum(axis=1)
    counts = np.zeros(n, dtype=np.int64)
    patterns = np.unique(pattern)
    for mine, theirs in product(patterns, patterns):
        rows = np.flatnonzero(pattern == mine)
        others = np.flatnonzero(pattern == theirs)
        shared = [q for i, q in enumerate(quasi) if not (mine >> i & 1) and not (theirs >> i & 1)]
        if not shared:
            counts[rows] += len(others)
            continue
        sizes = values.iloc[others].groupby(shared, sort=False).size()
        keys = pd.MultiIndex.from_frame(values.iloc[rows][shared]) if len(shared) > 1 else pd.Index(values.iloc[rows][shared[0]])
        counts[rows] += sizes.reindex(keys).fillna(0).to_numpy(dtype=np.int64)
    return counts
