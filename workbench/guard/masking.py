"""What the notebook guard does to a table before anyone sees it: pure pandas, no Jupyter.

The guard is the first line of defence, applied to *every* DataFrame or Series a notebook shows,
without knowing what the table means. So it works from what it can see:

* **Student-level frames** are recognised by identifying column names (``student_id``,
  ``first_name``, ``date_of_birth`` ...) and by values shaped like district (7-digit) or state
  (10-digit) student IDs. In an aggregate or de-identified request they are replaced by a schema
  summary: column names, dtypes and a row count, never a value.
* **Counts**: every integer-valued number in a numeric (or number-holding text) column is treated
  as a possible count of students. Those that are small under the policy's rule are masked.
* **Totals**: the guard cannot tell which rows or columns add up, so it assumes any of them might
  have a total somewhere. A row or column left with exactly one masked cell would give that cell
  away by subtraction, so the smallest other positive count in it is masked too, until no row or
  column has a lone masked cell. This stops recovery from a single total; it is not a proof of
  protection against combining several totals (that is the disclosure core's job, with its
  attacker model, on the reviewed path).
* **Aggregate-only fields** (free/reduced lunch) are withheld from any frame shown in a
  student-level request.

Nothing here imports IPython; `workbench.guard.ipython` applies these functions to displays.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterable, Literal, Protocol

import numpy as np
import pandas as pd

MASK = "*"
WITHHELD = "(withheld)"

# Column names that make a frame student-level by themselves (compared after normalising case
# and separators). The list in the brief, plus the usual spellings of the same things.
IDENTIFYING_COLUMN_NAMES: frozenset[str] = frozenset(
    {
        "student_id",
        "state_id",
        "first_name",
        "last_name",
        "middle_name",
        "name",
        "full_name",
        "student_name",
        "date_of_birth",
        "dob",
        "birth_date",
        "birthdate",
        "studentid",
        "stateid",
        "student_number",
        "sasid",
        "lasid",
    }
)

# Dimension columns of the warehouse whose small integers are labels, not counts of students:
# masking grade 3 would make every table by grade unreadable and protect nobody.
LABEL_COLUMN_NAMES: frozenset[str] = frozenset(
    {"grade", "tested_grade", "grade_low", "grade_high", "achievement_level", "school_year", "term"}
)

# Column spellings of the policy's aggregate-only fields. A policy names fields ("low_income");
# frames name columns, which analysts sometimes spell the way their source system did.
FIELD_COLUMN_ALIASES: dict[str, frozenset[str]] = {
    "low_income": frozenset(
        {
            "low_income",
            "frl",
            "frpl",
            "free_reduced_lunch",
            "free_or_reduced_lunch",
            "free_reduced_price_lunch",
            "lunch_status",
            "economically_disadvantaged",
            "econ_disadvantaged",
        }
    ),
}

DISTRICT_ID_PATTERN = r"\d{7}"
STATE_ID_PATTERN = r"[1-9]\d{9}"
_ID_PATTERNS: tuple[tuple[str, str], ...] = (
    ("district student IDs", DISTRICT_ID_PATTERN),
    ("state student IDs", STATE_ID_PATTERN),
)
_STATE_ID_INTEGER_RANGE = (1_000_000_000, 9_999_999_999)

# Levels at which a student-level frame may be shown row by row (rosters, directory lists).
ROW_LEVELS: frozenset[str] = frozenset({"identified", "directory"})
# Levels whose releases are one row per student: aggregate-only fields never appear in them.
STUDENT_LEVELS: frozenset[str] = frozenset({"identified", "directory", "deidentified"})

# A cap on the complementary passes; past it every remaining candidate of a lone-masked line is
# masked, which is always safe (see _protect_totals).
_MAX_TOTAL_PASSES = 50

Table = pd.DataFrame | pd.Series


class SmallGroupRuleLike(Protocol):
    """The parts of `workbench.disclosure.rules.SmallGroupRule` the guard reads: whether a count
    is small is always the rule's answer, never worked out here."""

    threshold: int
    comparison: str
    suppress_zeros: bool

    def is_small_count(self, n: int) -> bool: ...

    def small_count_mask(self, values): ...

    @property
    def largest_small_count(self) -> int: ...


def normalize_label(label: Any) -> str:
    """A column label compared by name: lower case, spaces, dots and hyphens as underscores."""
    return re.sub(r"[\s.\-]+", "_", str(label).strip().lower())


def _label_parts(label: Any) -> tuple[Any, ...]:
    return label if isinstance(label, tuple) else (label,)


def describe_rule(rule: SmallGroupRuleLike) -> str:
    """'groups of fewer than 10 students' / 'groups of 10 or fewer students' (plus zeros)."""
    threshold = effective_threshold(rule)
    if rule.comparison == "<=":
        text = f"groups of {threshold} or fewer students"
    else:
        text = f"groups of fewer than {threshold} students"
    if rule.suppress_zeros:
        text += " (zeros included)"
    return text


def effective_threshold(rule: SmallGroupRuleLike) -> int:
    """The threshold the guard masks at, in the rule's own comparison (for the words it shows).

    The guard cannot tell numerators from group sizes, so it masks what the rule's
    `is_small_count` hides: the larger of the group and the numerator rules.
    """
    largest = rule.largest_small_count
    return largest if rule.comparison == "<=" else largest + 1


def is_small_count(value: float, rule: SmallGroupRuleLike) -> bool:
    """Whether one number is a count the guard masks: integer-valued and small under the rule."""
    if value is None or isinstance(value, (bool, np.bool_)):
        return False
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    if not math.isfinite(number) or number != int(number):
        return False
    return rule.is_small_count(int(number))


# --- reading a column as numbers ------------------------------------------------------------

def _is_label_column(label: Any, label_columns: frozenset[str]) -> bool:
    return any(normalize_label(part) in label_columns for part in _label_parts(label))


_WHOLE_NUMBER_TEXT = r"\s*\+?\d+(?:\.0*)?\s*"
_PERCENT_TEXT = r"\s*\+?\d+(?:\.\d+)?\s*%\s*"  # "5.8%": a percentage turned into text is still one


def _text_cells(column: pd.Series) -> pd.Series | None:
    """The column's text cells as a string Series (None when it holds no text)."""
    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        column = column.astype(object)
    elif pd.api.types.is_string_dtype(dtype) and dtype != object:
        return column
    kind = pd.api.types.infer_dtype(column, skipna=True)
    if kind == "string":
        return column.astype("str")
    if kind in ("empty", "integer", "floating", "mixed-integer-float", "decimal", "boolean"):
        return None
    is_text = column.map(lambda cell: isinstance(cell, str)).astype(bool)
    return column.where(is_text).astype("str") if is_text.any() else None


def _numbers_in(column: pd.Series) -> np.ndarray:
    """The column as float64, NaN where a cell is not a number the guard could mask.

    Booleans are flags, not counts, and dates are not numbers. Text cells that are a plain
    whole number ("7", " 7.0") are read as numbers: a count turned into text is still a count.
    Only whole numbers matter: the guard never masks, nor masks for, a fraction.
    """
    dtype = column.dtype
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_datetime64_any_dtype(dtype):
        return np.full(len(column), np.nan)
    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_timedelta64_dtype(dtype):
        return np.full(len(column), np.nan)
    if pd.api.types.is_numeric_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype):
        return column.to_numpy(dtype="float64", na_value=np.nan)
    result = np.full(len(column), np.nan)
    values = column.astype(object) if isinstance(dtype, pd.CategoricalDtype) else column
    if pd.api.types.infer_dtype(values, skipna=True) != "string":
        is_number = values.map(_is_plain_number).to_numpy(dtype=bool)
        if is_number.any():
            result[is_number] = [float(cell) for cell in values[is_number]]
    text = _text_cells(column)
    if text is not None:
        looks_whole = text.str.fullmatch(_WHOLE_NUMBER_TEXT).to_numpy(dtype=bool, na_value=False)
        if looks_whole.any():
            parsed = pd.to_numeric(text[looks_whole].str.strip(), errors="coerce")
            result[looks_whole] = parsed.to_numpy(dtype="float64", na_value=np.nan)
        if text.str.contains("%", regex=False).any():
            percent = text.str.fullmatch(_PERCENT_TEXT).to_numpy(dtype=bool, na_value=False)
            if percent.any():
                parsed = pd.to_numeric(text[percent].str.replace("%", "").str.strip(), errors="coerce")
                result[percent] = parsed.to_numpy(dtype="float64", na_value=np.nan)
    return result


def _is_plain_number(cell: Any) -> bool:
    # Decimal is what SQL sums and counts come back as (`con.sql(...).to_pandas()`).
    return isinstance(cell, (numbers.Real, Decimal)) and not isinstance(cell, (bool, np.bool_))


# Row labels of a row of counts whatever its columns hold (`describe()`'s "count").
COUNT_ROW_LABELS: frozenset[str] = frozenset({"count", "counts", "n", "size", "nunique", "freq", "unique"})


def _dimension_positions(frame: pd.DataFrame, label_columns: frozenset[str]) -> set[int]:
    """Columns that are labels of the rows (grade 3, 4, 5), not values computed for them.

    A column named ``grade`` is a dimension only in a flat table of records: several columns and a
    default row index, as SQL results and ``reset_index()`` give. Where rows are labelled by an
    index (a groupby or pivot result, `describe()`), the same name holds a value computed per
    group, such as ``groupby("school")["grade"].count()``, and is read as counts. A label under a
    column level (``("grade", "F")`` of a pivot) is a value as well.
    """
    if frame.shape[1] < 2 or not isinstance(frame.index, pd.RangeIndex) or isinstance(frame.columns, pd.MultiIndex):
        return set()
    labels = {p for p in range(frame.shape[1]) if _is_label_column(frame.columns[p], label_columns)}
    return labels if len(labels) < frame.shape[1] else set()


def _count_matrix(frame: pd.DataFrame, label_columns: frozenset[str]) -> np.ndarray:
    """Rows x columns of numbers that could be counts (NaN elsewhere)."""
    matrix = np.full(frame.shape, np.nan)
    dimensions = _dimension_positions(frame, label_columns)
    for position in range(frame.shape[1]):
        if position in dimensions:
            continue
        matrix[:, position] = _numbers_in(frame.iloc[:, position])
    return matrix


def _percent_cells(frame: pd.DataFrame, matrix: np.ndarray, masked: np.ndarray, rule: SmallGroupRuleLike) -> np.ndarray:
    """Percentages and rates that give a small count away next to their denominator in the same row.

    5.8 beside 120 says 7 of 120; so does 0.058, and 94.2 says 113 of 120 (the 7 who are not). A
    fraction (not a whole number) is masked when, read as a percentage or a rate of some whole
    number shown unmasked in its row, it is within rounding of a small count or of its complement.
    """
    found = np.zeros(matrix.shape, dtype=bool)
    with np.errstate(invalid="ignore"):
        fractional = np.isfinite(matrix) & (matrix != np.floor(matrix)) & (matrix > 0) & (matrix <= 100)
        whole = np.isfinite(matrix) & (matrix == np.floor(matrix)) & (matrix >= 1) & ~masked
    if not fractional.any() or not whole.any():
        return found
    largest_small = rule.largest_small_count
    for column in np.flatnonzero(fractional.any(axis=0)):
        values = np.where(fractional[:, column], matrix[:, column], np.nan)
        half_step = 0.5 * 10.0 ** -_decimal_places(values)  # how far the shown value may be from the exact one
        for other in np.flatnonzero(whole.any(axis=0)):
            rows = fractional[:, column] & whole[:, other]
            if not rows.any():
                continue
            totals = matrix[:, other]
            for scale, usable in ((100.0, rows), (1.0, rows & (values <= 1))):
                # Every whole count the shown value could have been rounded from.
                low = (values - half_step) / scale * totals
                high = (values + half_step) / scale * totals
                for first, last in ((np.ceil(low - 1e-9), np.floor(high + 1e-9)),
                                    (np.ceil(totals - high - 1e-9), np.floor(totals - low + 1e-9))):
                    # Masked when one of them is a small count (or the count of the rest is).
                    could_be_small = np.maximum(first, 1) <= np.minimum(last, largest_small)
                    found[:, column] |= usable & could_be_small
    return found


def _decimal_places(values: np.ndarray) -> np.ndarray:
    """How many decimals each value is shown with (at most 6): 5.8 -> 1, 5.833333 -> 6."""
    places = np.full(values.shape, 6)
    for digits in range(5, -1, -1):
        with np.errstate(invalid="ignore"):
            places = np.where(np.isclose(np.round(values, digits), values, rtol=0, atol=1e-9), digits, places)
    return places


def _small_cells(matrix: np.ndarray, rule: SmallGroupRuleLike) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        integral = np.isfinite(matrix) & (matrix == np.floor(matrix))
    return integral & rule.small_count_mask(matrix)


def _protect_totals(matrix: np.ndarray, masked: np.ndarray) -> np.ndarray:
    """Mask more cells until no row or column holds exactly one masked cell it could give away.

    A cell is a candidate when it is a positive whole number not yet masked; the smallest
    candidate of a lone-masked line is the cheapest to lose. Lines without candidates are left as
    they are: there is nothing in them to subtract from.
    """
    masked = masked.copy()
    with np.errstate(invalid="ignore"):
        candidate_base = np.isfinite(matrix) & (matrix > 0) & (matrix == np.floor(matrix))
    for _ in range(_MAX_TOTAL_PASSES):
        changed = False
        for axis in (1, 0):  # rows, then columns
            candidates = candidate_base & ~masked
            lone = (masked.sum(axis=axis) == 1) & candidates.any(axis=axis)
            if not lone.any():
                continue
            costs = np.where(candidates, matrix, np.inf)
            cheapest = costs.argmin(axis=axis)
            lines = np.flatnonzero(lone)
            if axis == 1:
                masked[lines, cheapest[lines]] = True
            else:
                masked[cheapest[lines], lines] = True
            changed = True
        if not changed:
            return masked
    # Did not settle: mask every remaining candidate of each line still holding a lone mask.
    candidates = candidate_base & ~masked
    masked |= candidates & ((masked.sum(axis=1) == 1)[:, None])
    masked |= candidates & ((masked.sum(axis=0) == 1)[None, :])
    return masked


# --- masking counts -------------------------------------------------------------------------

@dataclass(frozen=True)
class MaskReport:
    """How many cells were hidden and why (never which values they held)."""

    small_cells: int = 0  # small counts under the rule
    total_cells: int = 0  # further cells hidden so totals cannot give the small ones away
    withheld_columns: tuple[str, ...] = ()  # aggregate-only columns blanked

    @property
    def masked_cells(self) -> int:
        return self.small_cells + self.total_cells

    @property
    def changed(self) -> bool:
        return bool(self.masked_cells or self.withheld_columns)


@dataclass(frozen=True)
class MaskedTable:
    data: Table
    report: MaskReport


def small_count_mask(
    data: Table,
    rule: SmallGroupRuleLike,
    *,
    protect_totals: bool = True,
    label_columns: Iterable[str] = LABEL_COLUMN_NAMES,
) -> tuple[pd.DataFrame, int]:
    """Boolean frame (same shape as `data` as a frame) of the cells to mask, and how many are small."""
    frame = data.to_frame() if isinstance(data, pd.Series) else data
    labels = frozenset(normalize_label(name) for name in label_columns)
    matrix = _count_matrix(frame, labels)
    count_rows = np.array([normalize_label(label) in COUNT_ROW_LABELS for label in frame.index], dtype=bool)
    if count_rows.any():  # describe(): its count row holds counts under every column
        for position in range(frame.shape[1]):
            matrix[count_rows, position] = _numbers_in(frame.iloc[:, position])[count_rows]
    small = _small_cells(matrix, rule)
    masked = _protect_totals(matrix, small) if protect_totals and small.any() else small
    percents = _percent_cells(frame, matrix, masked, rule)
    if percents.any():
        small = small | percents
        masked = masked | percents
    flags = pd.DataFrame(masked, index=frame.index, columns=frame.columns)
    return flags, int(small.sum())


def _apply_marks(frame: pd.DataFrame, flags: pd.DataFrame, mark: str) -> pd.DataFrame:
    result = frame.copy()
    for position in np.flatnonzero(flags.to_numpy().any(axis=0)):
        column = frame.iloc[:, position].astype(object)
        keep = ~flags.iloc[:, position].to_numpy()
        result.isetitem(int(position), column.where(keep, mark))
    return result


def mask_small_counts(
    data: Table,
    rule: SmallGroupRuleLike,
    *,
    protect_totals: bool = True,
    label_columns: Iterable[str] = LABEL_COLUMN_NAMES,
) -> MaskedTable:
    """`data` with every small count (and what would reveal it from a total) replaced by `*`."""
    flags, small = small_count_mask(data, rule, protect_totals=protect_totals, label_columns=label_columns)
    total = int(flags.to_numpy().sum())
    if total == 0:
        return MaskedTable(data, MaskReport())
    if isinstance(data, pd.Series):
        masked = _apply_marks(data.to_frame(), flags, MASK).iloc[:, 0].rename(data.name)
    else:
        masked = _apply_marks(data, flags, MASK)
    return MaskedTable(masked, MaskReport(small_cells=small, total_cells=total - small))


# --- aggregate-only fields ------------------------------------------------------------------

def aggregate_only_columns(data: Table, fields: Iterable[str]) -> list[Any]:
    """Labels of the columns (or the Series) that hold one of the policy's aggregate-only fields."""
    names: set[str] = set()
    for field_name in fields:
        key = normalize_label(field_name)
        names |= FIELD_COLUMN_ALIASES.get(key, frozenset()) | {key}
    if isinstance(data, pd.Series):
        return [data.name] if data.name is not None and normalize_label(data.name) in names else []
    return [label for label in data.columns if any(normalize_label(p) in names for p in _label_parts(label))]


def withhold_fields(data: Table, fields: Iterable[str]) -> MaskedTable:
    """`data` with the values of aggregate-only columns replaced by `(withheld)`."""
    labels = aggregate_only_columns(data, fields)
    if not labels:
        return MaskedTable(data, MaskReport())
    if isinstance(data, pd.Series):
        blank = pd.Series(WITHHELD, index=data.index, name=data.name, dtype=object)
        return MaskedTable(blank, MaskReport(withheld_columns=(str(data.name),)))
    result = data.copy()
    for position, label in enumerate(data.columns):
        if label in labels:
            result.isetitem(position, pd.Series(WITHHELD, index=data.index, dtype=object))
    return MaskedTable(result, MaskReport(withheld_columns=tuple(str(label) for label in labels)))


# --- student-level frames -------------------------------------------------------------------

def _id_kind(values: Any) -> str | None:
    """Which kind of student ID some of these values look like, if any."""
    series = pd.Series(values)
    if series.empty:
        return None
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return None
    if pd.api.types.is_integer_dtype(dtype):
        low, high = _STATE_ID_INTEGER_RANGE
        numbers = series.dropna()
        return "state student IDs" if ((numbers >= low) & (numbers <= high)).any() else None
    if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_datetime64_any_dtype(dtype):
        return None
    text = _text_cells(series)
    if text is None:
        return None
    text = text.dropna().str.strip()
    for kind, pattern in _ID_PATTERNS:
        if text.str.fullmatch(pattern).any():
            return kind
    return None


def _index_levels(index: pd.Index) -> list[tuple[Any, pd.Index]]:
    if isinstance(index, pd.MultiIndex):
        return [(index.names[i], index.get_level_values(i)) for i in range(index.nlevels)]
    return [(index.name, index)]


def _names_identify(label: Any) -> bool:
    return any(normalize_label(part) in IDENTIFYING_COLUMN_NAMES for part in _label_parts(label) if part is not None)


def _describe_label(label: Any) -> str:
    return " / ".join(str(part) for part in _label_parts(label))


def find_student_identifiers(data: Table) -> tuple[str, ...]:
    """Why `data` is student-level, in words that name columns but never quote a value.

    Empty when nothing identifies a student.
    """
    reasons: list[str] = []
    frame = data.to_frame() if isinstance(data, pd.Series) else data
    if isinstance(data, pd.Series) and data.name is None:
        frame = frame.set_axis(["(values)"], axis=1)
    for label in frame.columns:
        if _names_identify(label):
            reasons.append(f"column '{_describe_label(label)}' identifies students")
    label_texts = [str(part) for label in frame.columns for part in _label_parts(label)]
    if _id_kind(pd.Series(label_texts, dtype=object)):
        reasons.append("column labels look like student IDs")
    for position, label in enumerate(frame.columns):
        if _names_identify(label):
            continue
        kind = _id_kind(frame.iloc[:, position])
        if kind:
            reasons.append(f"values in column '{_describe_label(label)}' look like {kind}")
    for name, level in _index_levels(frame.index):
        where = f"index '{name}'" if name is not None else "the index"
        if name is not None and _names_identify(name):
            reasons.append(f"{where} identifies students")
        else:
            kind = _id_kind(level)
            if kind:
                reasons.append(f"values in {where} look like {kind}")
    return tuple(reasons)


@dataclass(frozen=True)
class SchemaSummary:
    """What a student-level frame holds, without a single value of it."""

    kind: Literal["DataFrame", "Series"]
    columns: tuple[tuple[str, str], ...]  # (label, dtype); ID-like labels replaced
    index: tuple[tuple[str, str], ...]  # (name, dtype) of each index level
    row_count: int
    hidden_labels: int = 0  # column labels not shown because they look like student IDs

    def to_frame(self) -> pd.DataFrame:
        rows = [("column", label, dtype) for label, dtype in self.columns]
        rows += [("index", label, dtype) for label, dtype in self.index]
        if self.hidden_labels:
            rows.append(("column", f"({self.hidden_labels} labels that look like student IDs)", ""))
        return pd.DataFrame(rows, columns=["part", "name", "dtype"])

    def row_count_text(self, rule: SmallGroupRuleLike | None) -> str:
        """The row count, unless the count itself is a small group under the rule."""
        if rule is not None and is_small_count(self.row_count, rule) and self.row_count != 0:
            words = "at most" if rule.comparison == "<=" else "fewer than"
            return f"{words} {effective_threshold(rule)} rows"
        return f"{self.row_count:,} rows"


def summarize_schema(data: Table) -> SchemaSummary:
    frame = data.to_frame() if isinstance(data, pd.Series) else data
    columns: list[tuple[str, str]] = []
    hidden = 0
    for position, label in enumerate(frame.columns):
        if _id_kind(pd.Series([str(part) for part in _label_parts(label)], dtype=object)):
            hidden += 1
            continue
        shown = "(values)" if isinstance(data, pd.Series) and data.name is None else _describe_label(label)
        columns.append((shown, str(frame.dtypes.iloc[position])))
    index = []
    for name, level in _index_levels(frame.index):
        index.append(("(unnamed)" if name is None else str(name), str(level.dtype)))
    return SchemaSummary(
        kind="Series" if isinstance(data, pd.Series) else "DataFrame",
        columns=tuple(columns),
        index=tuple(index),
        row_count=len(frame),
        hidden_labels=hidden,
    )


# --- the whole decision ---------------------------------------------------------------------

@dataclass(frozen=True)
class GuardDecision:
    """What the guard shows for one table.

    action: ``show`` (unchanged), ``mask`` (`data` is the masked table) or ``summarize``
    (`summary` replaces the table).
    """

    action: Literal["show", "mask", "summarize"]
    data: Table | None
    report: MaskReport = field(default_factory=MaskReport)
    summary: SchemaSummary | None = None
    reasons: tuple[str, ...] = ()
    unreadable: bool = False  # the guard failed on this table; it is summarized to fail closed


def guard_table(
    data: Table,
    rule: SmallGroupRuleLike | None,
    level: str,
    *,
    aggregate_only: Iterable[str] = ("low_income",),
    protect_totals: bool = True,
) -> GuardDecision:
    """Decide what a notebook may show of `data` for a request at `level` under `rule`.

    `rule` None means the policy could not be loaded: nothing is shown but schemas (fail closed).
    """
    if rule is None:
        return GuardDecision("summarize", None, summary=summarize_schema(data), reasons=("no policy is active",))
    reasons = find_student_identifiers(data)
    if reasons and level not in ROW_LEVELS:
        return GuardDecision("summarize", None, summary=summarize_schema(data), reasons=reasons)
    withheld = MaskReport()
    if level in STUDENT_LEVELS:
        blanked = withhold_fields(data, aggregate_only)
        data, withheld = blanked.data, blanked.report
    if reasons:
        # A roster in a request granted row-level data: its numbers are facts about one student
        # each, not group counts, so only the aggregate-only fields are taken out.
        return GuardDecision("mask" if withheld.changed else "show", data, report=withheld, reasons=reasons)
    masked = mask_small_counts(data, rule, protect_totals=protect_totals)
    report = MaskReport(
        small_cells=masked.report.small_cells,
        total_cells=masked.report.total_cells,
        withheld_columns=withheld.withheld_columns,
    )
    return GuardDecision("mask" if report.changed else "show", masked.data, report=report)
