"""Students recognised by who they are: an index of every identifier in the warehouse, and a scanner.

The table-shape checks in `workbench.guard.masking` see a column called ``student_id``; they do
not see the same ID printed by a subprocess, quoted in a ``KeyError`` or read back as an integer
from a partner's CSV. This module looks at *text*, whatever produced it, and finds the students
in it by value:

* **IDs**: district and state IDs, as written (``0041275``) and as integers that lost their
  leading zeros (``41275``, ``41275.0``). A number with fewer than `MIN_INTEGER_DIGITS` digits is
  only recognised when written with its zeros: ``17`` could be any count.
* **Names**: a student's first and last name close together (same line or table row, or within
  a few words), in either order and any case (``Ana Lopez``, ``LOPEZ, Ana``).
* **Dates of birth**: ISO (``2014-03-01``), ``2014/03/01``, ``03/01/2014`` read either way round,
  ``1 March 2014``, ``March 1, 2014``, ``20140301`` and ``datetime.date(2014, 3, 1)``.

The index is compact (sorted NumPy arrays of integers, plus the two numbered name vocabularies)
so a district of a million students fits in a few tens of megabytes. Pure Python and NumPy: no
Jupyter here.
"""

from __future__ import annotations

import calendar
import datetime as dt
import html
import re
from decimal import Decimal, InvalidOperation
from itertools import compress
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

# Kinds of identifier, as the release check names them.
STUDENT_ID = "student_id"
NAME = "name"
DATE_OF_BIRTH = "date_of_birth"
KINDS = (STUDENT_ID, NAME, DATE_OF_BIRTH)

REPLACEMENTS = {STUDENT_ID: "[student ID]", NAME: "[student name]", DATE_OF_BIRTH: "[birth date]"}

# Levels at which each kind may be shown (the release check applies the same table).
ALLOWED_IDENTIFIERS: dict[str, frozenset[str]] = {
    "aggregate": frozenset(),
    "deidentified": frozenset(),
    "directory": frozenset({NAME}),
    "identified": frozenset({STUDENT_ID, NAME, DATE_OF_BIRTH}),
}

MIN_INTEGER_DIGITS = 5
NAME_WINDOW = 4  # words between a first and a last name on different lines
_MAX_NAMES_PER_RECORD = 64  # past this, a record is read by the window only (no quadratic pairs)

_DIGITS = re.compile(r"(?<![\d.])(\d{%d,10})(?:\.0+)?(?![\d.]?\d)" % MIN_INTEGER_DIGITS)
_PLAIN_NAME = re.compile(r"^[a-z]+(?:['\-][a-z]+)*$")  # one word the scanner reads whole
_YEAR = re.compile(r"(?<!\d)\d{4}(?!\d)")
_ISO_AFTER = re.compile(r"[-/.](\d{1,2})[-/.](\d{1,2})(?!\d)")
_NUMBERS_BEFORE = re.compile(r"(?<!\d)(\d{1,2})[/.\-](\d{1,2})[/.\-]$")
_CALL_BEFORE = re.compile(r"date(?:time)?\($")
_CALL_AFTER = re.compile(r",\s*(\d{1,2}),\s*(\d{1,2})(?!\d)")
_HAS_DIGITS = re.compile(r"\d{%d}" % MIN_INTEGER_DIGITS)
# An object's memory address (`<Styler at 0x7f1234567890>`) is not a number anyone wrote; its
# digits are not read as an ID.
_HEX_LITERAL = re.compile(r"(?<![0-9A-Za-z])0[xX][0-9a-fA-F]+")
# A word of a name, also where the output escaped it: json.dumps writes "Jos\u00e9", HTML
# "O&#x27;Brien". A word never starts right after a backslash ("\nAna" is a line break, then Ana).
_LETTERS = (
    r"(?:[^\W\d_]+"
    # escapes of letters only (from U+00C0 on, not punctuation), so &quot; or &#x27; never joins words
    r"|\\u(?!20[0-6])(?:00[c-fC-F][0-9a-fA-F]|0[1-9a-fA-F][0-9a-fA-F]{2}|[1-9a-fA-F][0-9a-fA-F]{3})"
    r"|&#[xX]0*(?:[c-fC-F][0-9a-fA-F]|[1-9a-fA-F][0-9a-fA-F]{2,4});|&#0*(?:19[2-9]|2\d\d|[3-9]\d\d|\d{4,6});"
    r"|&[a-zA-Z]{1,2}(?:acute|grave|circ|tilde|uml|ring|cedil|slash|lig|caron);)+"
)
_APOSTROPHE = r"(?:['\u2019\-]|&#[xX]27;|&#39;|&apos;|&#8217;|&rsquo;|\\u2019)"
_WORD = re.compile(r"(?<!\\)" + _LETTERS + "(?:" + _APOSTROPHE + _LETTERS + ")*")
_PLAIN_WORD = re.compile(r"[^\W\d_]+(?:['\-][^\W\d_]+)*")  # the same, for text with no escape in it (faster)
_TAG = re.compile(r"</?[A-Za-z][^<>]*>")
_MAY_BE_ESCAPED = re.compile(r"[\\&\u2019]")
_UNICODE_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")
# Numbers as people format them: 1,209,934 and 1.209934e+06 (a float column pandas draws in
# scientific notation).
_GROUPED = re.compile(r"(?<![\d.])(?<!\d,)\d{1,3}(?:,\d{3})+(?:\.0+)?(?!\d|[.,]\d)")
_SCIENTIFIC = re.compile(r"(?<![\d.])\d\.\d+[eE]\+\d{1,2}(?!\d|\.\d)")
# A date as a time stamp (to_json, Arrow): seconds, milliseconds, microseconds or nanoseconds since 1970.
# (A whole day in seconds ends in 00, so only numbers that do are read.)
_STAMP = re.compile(r"(?<![\d.])\d{7,17}00(?![\d.]?\d)")
_HAS_STAMP = re.compile(r"\d{9}")
_SECONDS_A_DAY = 86_400
_STAMP_UNITS = (1, 1_000, 1_000_000, 1_000_000_000)
_EPOCH = dt.date(1970, 1, 1)
_MONTHS = {name.lower(): number for number, name in enumerate(calendar.month_name) if name}
_MONTHS |= {name.lower(): number for number, name in enumerate(calendar.month_abbr) if name}
_MONTH = "(?:" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_DATES = re.compile(
    r"(?<!\d)(?:"
    r"(?P<iy>\d{4})[-/.](?P<im>\d{1,2})[-/.](?P<id>\d{1,2})"
    r"|(?P<a>\d{1,2})[/.\-](?P<b>\d{1,2})[/.\-](?P<y>\d{4})"
    r"|(?P<nd>\d{1,2})(?:st|nd|rd|th)?(?:\s+of)?[\s\-/.]*(?P<nm>" + _MONTH + r")[\s\-/.,]*(?P<ny>\d{4})"
    r"|(?P<mm>" + _MONTH + r")[\s\-/.]*(?P<md>\d{1,2})(?:st|nd|rd|th)?,?[\s\-/.]+(?P<my>\d{4})"
    r"|date(?:time)?\((?P<py>\d{4}),\s*(?P<pm>\d{1,2}),\s*(?P<pd>\d{1,2})"
    r")(?!\d)",
    re.IGNORECASE,
)


# 4 March 2012, 04-Mar-2012, 04MAR2012 (SAS); March 4, 2012, Mar-04-2012.
_DAY_MONTH_BEFORE = re.compile(
    r"(?<!\d)(\d{1,2})(?:st|nd|rd|th)?(?:\s+of)?[\s\-/.]*(" + _MONTH + r")[\s\-/.,]*$", re.IGNORECASE
)
_MONTH_DAY_BEFORE = re.compile(
    r"(?<![A-Za-z])(" + _MONTH + r")[\s\-/.]*(\d{1,2})(?:st|nd|rd|th)?,?[\s\-/.]+$", re.IGNORECASE
)


def _encoded_names(names: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Each name as a number into the distinct names, as the scanner spells them (trimmed, lower
    case, one kind of apostrophe); -1 where there is none. The spelling is worked out on the
    distinct names Arrow's encoding gives, not once per student."""
    encoded = pc.dictionary_encode(names)
    spelled = pc.replace_substring(pc.utf8_lower(pc.utf8_trim_whitespace(encoded.dictionary)), "\u2019", "'")
    distinct = pc.dictionary_encode(spelled)  # two spellings of one name become one number
    vocabulary = distinct.dictionary
    renumber = distinct.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    empty = pc.index(vocabulary, "").as_py()
    if empty >= 0:
        renumber[renumber == empty] = -1
    renumber = np.append(renumber, -1)  # for a missing name
    indices = pc.fill_null(encoded.indices, len(encoded.dictionary)).to_numpy(zero_copy_only=False).astype(np.int64)
    return vocabulary, renumber[indices]


def _name_pairs(firsts: pa.Array, lasts: pa.Array) -> tuple[dict[str, int], dict[str, int], np.ndarray]:
    """Numbered vocabularies of first and last names (by word) and each student's pair of numbers.

    Names are dictionary-encoded in Arrow, so a pair is two small integers; a name of several
    words ("mary jo", "de la cruz") is also paired word by word, so any word of each half finds it.
    """
    first_list, first_numbers = _encoded_names(firsts)
    last_list, last_numbers = _encoded_names(lasts)
    named = (first_numbers >= 0) & (last_numbers >= 0)
    first_numbers, last_numbers = first_numbers[named], last_numbers[named]
    first_vocabulary = {name: number for number, name in enumerate(first_list.to_pylist())}
    last_vocabulary = {name: number for number, name in enumerate(last_list.to_pylist())}
    several_first, several_last = (
        names.filter(pc.invert(pc.match_substring_regex(names, _PLAIN_NAME.pattern))).to_pylist()
        for names in (first_list, last_list)
    )
    for vocabulary, names in ((first_vocabulary, several_first), (last_vocabulary, several_last)):
        for word in _words(names):
            vocabulary.setdefault(word, len(vocabulary))
    span = len(last_vocabulary)
    keys = [first_numbers * span + last_numbers]
    if several_first or several_last:
        odd_first = np.isin(first_numbers, [first_vocabulary[n] for n in several_first])
        odd_last = np.isin(last_numbers, [last_vocabulary[n] for n in several_last])
        first_names, last_names = list(first_vocabulary), list(last_vocabulary)
        extra = {
            first_vocabulary[a] * span + last_vocabulary[b]
            for f, l in set(zip(first_numbers[odd_first | odd_last].tolist(), last_numbers[odd_first | odd_last].tolist()))
            for a in _words([first_names[f]]) for b in _words([last_names[l]])
        }
        keys.append(np.fromiter(extra, dtype=np.int64, count=len(extra)))
    return first_vocabulary, last_vocabulary, _sorted_unique(np.concatenate(keys))


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    ordered = np.sort(np.asarray(values))
    if len(ordered) < 2:
        return ordered
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]


def _strings(values: Any) -> pa.Array:
    """A column of IDs or names (list, NumPy, pandas or Arrow) as an Arrow string array."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        return values if pa.types.is_string(values.type) else pc.cast(values, pa.string())
    if isinstance(values, pd.Series):
        values = values.to_numpy(dtype=object)
    values = values if isinstance(values, (list, np.ndarray)) else list(values)
    array = pa.array(values, from_pandas=True)
    return array if pa.types.is_string(array.type) else pc.cast(array, pa.string())


def _day_numbers(dates: Any) -> np.ndarray:
    """Dates as yyyymmdd integers (unreadable ones left out)."""
    if isinstance(dates, pa.ChunkedArray):
        dates = dates.combine_chunks()
    if not isinstance(dates, pa.Array):
        if not isinstance(dates, (np.ndarray, pd.Series, pd.Index)):
            dates = pd.Index(list(dates), dtype=object)
        converted = pd.to_datetime(dates, errors="coerce")
        dates = pa.array(np.asarray(converted, dtype="datetime64[ns]"), from_pandas=True)
    if pa.types.is_string(dates.type):
        return _day_numbers(dates.to_pandas())
    dates = dates.drop_null()
    if len(dates) == 0:
        return np.empty(0, dtype=np.int64)
    days = pc.add(pc.add(pc.multiply(pc.year(dates), 10_000), pc.multiply(pc.month(dates), 100)), pc.day(dates))
    return days.to_numpy(zero_copy_only=False).astype(np.int64)


def _contains(sorted_values: np.ndarray, values: np.ndarray) -> np.ndarray:
    if len(sorted_values) == 0 or len(values) == 0:
        return np.zeros(len(values), dtype=bool)
    where = np.searchsorted(sorted_values, values)
    where[where == len(sorted_values)] = 0
    return sorted_values[where] == values


def _day_number(year: int, month: int, day: int) -> int | None:
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    return year * 10_000 + month * 100 + day


class Found(NamedTuple):
    """One identifier in a text: where it is and what kind it is (never kept beyond redaction)."""

    start: int
    end: int
    kind: str


@dataclass
class Redaction:
    text: str
    counts: Counter = field(default_factory=Counter)  # kind -> how many were replaced

    @property
    def changed(self) -> bool:
        return bool(self.counts)


class StudentIndex:
    """Every student identifier of a warehouse, and the scan of a text for them."""

    def __init__(
        self,
        numeric_ids: np.ndarray,
        text_ids: frozenset[str],
        first_names: dict[str, int],
        last_names: dict[str, int],
        pairs: np.ndarray,
        birth_days: np.ndarray,
        students: int,
        source: str = "",
    ) -> None:
        self.numeric_ids = numeric_ids
        self.text_ids = text_ids
        self.first_names = first_names  # word -> number
        self.last_names = last_names
        self.pairs = pairs  # sorted first * len(last_names) + last, one per student's name
        self.birth_days = birth_days
        self.students = students
        self.source = source
        self._birth_years = frozenset(int(year) for year in np.unique(birth_days // 10_000))
        self._text_id_pattern = (
            re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, sorted(text_ids, key=len, reverse=True))) + r")(?![\w-])")
            if text_ids
            else None
        )

    # --- building ---------------------------------------------------------------------------

    @classmethod
    def from_columns(
        cls,
        student_ids: Iterable[Any],
        state_ids: Iterable[Any] = (),
        first_names: Iterable[Any] = (),
        last_names: Iterable[Any] = (),
        birth_dates: Iterable[Any] = (),
        source: str = "",
    ) -> "StudentIndex":
        ids = pc.utf8_trim_whitespace(pa.concat_arrays([_strings(student_ids), _strings(state_ids)]).drop_null())
        students = len(_strings(student_ids))
        is_number = pc.and_(pc.utf8_is_digit(ids), pc.less_equal(pc.utf8_length(ids), 18))
        numeric = _sorted_unique(pc.cast(ids.filter(is_number), pa.int64()).to_numpy())
        others = ids.filter(pc.and_(pc.invert(is_number), pc.not_equal(ids, "")))
        text_ids = frozenset(others.to_pylist())
        firsts, lasts = _strings(first_names), _strings(last_names)
        if len(firsts) != len(lasts):
            raise ValueError("first_names and last_names must be the same length")
        first_vocabulary, last_vocabulary, pairs = _name_pairs(firsts, lasts)
        return cls(
            numeric_ids=numeric,
            text_ids=text_ids,
            first_names=first_vocabulary,
            last_names=last_vocabulary,
            pairs=pairs,
            birth_days=_sorted_unique(_day_numbers(birth_dates)),
            students=students,
            source=source,
        )

    @classmethod
    def from_warehouse(cls, con: Any, source: str = "") -> "StudentIndex":
        """The index of every student in the warehouse (an Ibis connection)."""
        table = con.table("students").select("student_id", "state_id", "first_name", "last_name", "date_of_birth")
        frame = table.to_pyarrow()
        return cls.from_columns(*(frame.column(name) for name in frame.column_names), source=source)

    @property
    def nbytes(self) -> int:
        """Memory held by the index (arrays plus the strings of the name vocabularies)."""
        import sys

        strings = sum(sys.getsizeof(word) for word in [*self.first_names, *self.last_names, *self.text_ids])
        sets = sum(sys.getsizeof(s) for s in (self.first_names, self.last_names, self.text_ids))
        return int(self.numeric_ids.nbytes + self.pairs.nbytes + self.birth_days.nbytes + strings + sets)

    def describe(self) -> str:
        return f"{self.students:,} students" + (f" from {self.source}" if self.source else "")

    # --- scanning ---------------------------------------------------------------------------

    def find(self, text: str, kinds: Iterable[str] = KINDS) -> list[Found]:
        """Every identifier of `kinds` in `text`."""
        kinds = frozenset(kinds)
        found: list[Found] = []
        if STUDENT_ID in kinds:
            found += self._find_ids(text)
        if DATE_OF_BIRTH in kinds:
            found += self._find_dates(text)
        if NAME in kinds:
            found += self._find_names(text)
        return found

    def _find_ids(self, text: str) -> list[Found]:
        found: list[Found] = []
        if _HAS_DIGITS.search(text):
            matches = list(_DIGITS.finditer(text))
            if matches:
                values = np.fromiter((int(m.group(1)) for m in matches), dtype=np.int64, count=len(matches))
                hits = _contains(self.numeric_ids, values)
                found += [Found(*m.span(), STUDENT_ID) for m in compress(matches, hits)]
                if len(self.birth_days):
                    # 20140301: a date of birth written without separators.
                    eight = np.array([len(m.group(1)) == 8 for m in matches])
                    if eight.any():
                        born = _contains(self.birth_days, values) & eight & ~hits
                        found += [Found(m.start(), m.end(), DATE_OF_BIRTH) for m, hit in zip(matches, born) if hit]
        found += [Found(start, end, STUDENT_ID) for start, end, number in _formatted_numbers(text)
                  if number is not None and _contains(self.numeric_ids, np.array([number], dtype=np.int64))[0]]
        if len(self.birth_days) and _HAS_STAMP.search(text):
            found += [Found(start, end, DATE_OF_BIRTH) for start, end, day in _stamped_days(text)
                      if _contains(self.birth_days, np.array([day], dtype=np.int64))[0]]
        if self._text_id_pattern is not None:
            found += [Found(m.start(), m.end(), STUDENT_ID) for m in self._text_id_pattern.finditer(text)]
        return _outside_addresses(text, found)

    def _find_dates(self, text: str) -> list[Found]:
        """Dates of birth: each year someone was born in, read with what stands around it."""
        if not len(self.birth_days):
            return []
        spans: list[tuple[int, int]] = []
        readings: list[int] = []
        owners: list[int] = []
        for year_match in _YEAR.finditer(text):
            year = int(year_match.group(0))
            if year not in self._birth_years:
                continue
            start, end = year_match.span()
            here: list[tuple[int, int, list[int | None]]] = []
            after = _ISO_AFTER.match(text, end)
            if after:  # 2012-03-04, 2012/03/04
                here.append((start, after.end(), [_day_number(year, int(after.group(1)), int(after.group(2)))]))
            before = _NUMBERS_BEFORE.search(text, max(0, start - 6), start)
            if before:  # 03/04/2012, either way round
                a, b = int(before.group(1)), int(before.group(2))
                here.append((before.start(), end, [_day_number(year, a, b), _day_number(year, b, a)]))
            window = max(0, start - 24)
            named = _DAY_MONTH_BEFORE.search(text, window, start)
            if named:  # 4 March 2012
                here.append((named.start(), end, [_day_number(year, _MONTHS[named.group(2).rstrip(".").lower()], int(named.group(1)))]))
            named = _MONTH_DAY_BEFORE.search(text, window, start)
            if named:  # March 4, 2012
                here.append((named.start(), end, [_day_number(year, _MONTHS[named.group(1).rstrip(".").lower()], int(named.group(2)))]))
            if _CALL_BEFORE.search(text, max(0, start - 10), start):  # datetime.date(2012, 3, 4)
                call = _CALL_AFTER.match(text, end)
                if call:
                    here.append((start, call.end(), [_day_number(year, int(call.group(1)), int(call.group(2)))]))
            for begin, finish, days in here:
                for day in days:
                    if day is not None:
                        readings.append(day)
                        owners.append(len(spans))
                spans.append((begin, finish))
        if not readings:
            return []
        hits = _contains(self.birth_days, np.array(readings, dtype=np.int64))
        born = sorted({owners[i] for i in np.flatnonzero(hits)})
        return [Found(spans[i][0], spans[i][1], DATE_OF_BIRTH) for i in born]

    def _find_names(self, text: str) -> list[Found]:
        if not len(self.pairs):
            return []
        firsts, lasts = self.first_names, self.last_names
        escaped = _MAY_BE_ESCAPED.search(text) is not None
        key, word_pattern = (_word_key, _WORD) if escaped else (str.lower, _PLAIN_WORD)
        words = set(map(key, word_pattern.findall(text)))
        if not any(word in firsts for word in words) or not any(word in lasts for word in words):
            return []
        candidates: list[tuple[int, int, int, str, bool, bool]] = []  # (ordinal, start, end, word, first?, last?)
        # Markup's tag names are not words a reader sees between two names (<first_name>Ana</first_name>
        # <last_name>Lopez</last_name> of to_xml); blanked, with every position kept. (An HTML table
        # pairs names by its rows instead.)
        words_of = _TAG.sub(_blank, text) if "<" in text and "<tr" not in text else text
        for ordinal, match in enumerate(word_pattern.finditer(words_of)):
            word = key(match.group(0))
            is_first, is_last = word in firsts, word in lasts
            if is_first or is_last:
                candidates.append((ordinal, match.start(), match.end(), word, is_first, is_last))
        if len(candidates) < 2:
            return []
        records = _record_numbers(text, [c[1] for c in candidates])
        pairs: list[tuple[int, int]] = []  # (candidate index of first name, of last name)
        by_record: dict[int, list[int]] = {}
        for index, record in enumerate(records):
            by_record.setdefault(record, []).append(index)
        for members in by_record.values():
            if 1 < len(members) <= _MAX_NAMES_PER_RECORD:
                pairs += [(i, j) for i in members if candidates[i][4] for j in members if j != i and candidates[j][5]]
        for i in range(len(candidates)):  # neighbours across lines (a Series of one student's fields)
            for j in range(i + 1, len(candidates)):
                if candidates[j][0] - candidates[i][0] > NAME_WINDOW:
                    break
                if records[i] == records[j] and len(by_record[records[i]]) <= _MAX_NAMES_PER_RECORD:
                    continue
                if candidates[i][4] and candidates[j][5]:
                    pairs.append((i, j))
                if candidates[j][4] and candidates[i][5]:
                    pairs.append((j, i))
        if not pairs:
            return []
        span = len(lasts)
        keys = np.fromiter((firsts[candidates[i][3]] * span + lasts[candidates[j][3]] for i, j in pairs),
                           dtype=np.int64, count=len(pairs))
        hits = _contains(self.pairs, keys)
        named = {index for (i, j), hit in zip(pairs, hits) if hit for index in (i, j)}
        return [Found(candidates[i][1], candidates[i][2], NAME) for i in sorted(named)]

    def redact(self, text: str, allowed: Iterable[str] = ()) -> Redaction:
        """`text` with every identifier not `allowed` replaced by a label such as ``[student ID]``."""
        kinds = [kind for kind in KINDS if kind not in set(allowed)]
        if not kinds or not text:
            return Redaction(text)
        found = self.find(text, kinds)
        if not found:
            return Redaction(text)
        return _apply(text, found)


def _formatted_numbers(text: str) -> list[tuple[int, int, int | None]]:
    """Whole numbers of `MIN_INTEGER_DIGITS` digits or more written with separators or an exponent."""
    found: list[tuple[int, int, int | None]] = []
    if "," in text:
        found += [(m.start(), m.end(), int(float(m.group(0).replace(",", "")))) for m in _GROUPED.finditer(text)]
    if "e+" in text or "E+" in text:
        for m in _SCIENTIFIC.finditer(text):
            try:
                value = Decimal(m.group(0))
            except InvalidOperation:  # pragma: no cover - the pattern only matches numbers
                continue
            found.append((m.start(), m.end(), int(value) if value == value.to_integral_value() else None))
    return [(start, end, number) for start, end, number in found
            if number is None or number >= 10 ** (MIN_INTEGER_DIGITS - 1)]


def _stamped_days(text: str) -> list[tuple[int, int, int]]:
    """Time stamps that fall on midnight of a day, as yyyymmdd."""
    matches = list(_STAMP.finditer(text))
    if not matches:
        return []
    values = np.fromiter((int(m.group(0)) for m in matches), dtype=np.uint64, count=len(matches))
    found: list[tuple[int, int, int]] = []
    # Every unit's day is a multiple of a day in seconds: most numbers (state IDs) stop here.
    for position in np.flatnonzero(values % _SECONDS_A_DAY == 0):
        value, m = int(values[position]), matches[position]
        for unit in _STAMP_UNITS:
            step = _SECONDS_A_DAY * unit
            if value % step == 0 and value // step < 2_932_000:  # within the calendar's years
                day = _EPOCH + dt.timedelta(days=value // step)
                found.append((m.start(), m.end(), day.year * 10_000 + day.month * 100 + day.day))
    return found


def _outside_addresses(text: str, found: list[Found]) -> list[Found]:
    """`found` without the numbers that are the tail of a hexadecimal literal such as 0x7f1234567890."""
    if not found or "0x" not in text and "0X" not in text:
        return found
    addresses = [m.span() for m in _HEX_LITERAL.finditer(text)]
    return [f for f in found if not any(start < f.start and f.end <= end for start, end in addresses)]


def _apply(text: str, found: list[Found]) -> Redaction:
    counts: Counter = Counter()
    pieces: list[str] = []
    position = 0
    for item in sorted(found, key=lambda f: (f.start, -f.end)):
        if item.start < position:  # overlaps one already replaced
            continue
        pieces.append(text[position:item.start])
        pieces.append(REPLACEMENTS[item.kind])
        counts[item.kind] += 1
        position = item.end
    pieces.append(text[position:])
    return Redaction("".join(pieces), counts)


def _words(names: pa.Array | list[str]) -> set[str]:
    """The words of each name as the scanner reads them ("mary-jo" stays one word, "de la cruz" is three)."""
    names = names if isinstance(names, pa.Array) else pa.array(names, type=pa.string())
    plain = pc.match_substring_regex(names, _PLAIN_NAME.pattern)
    words: set[str] = set(names.filter(plain).to_pylist())
    for name in names.filter(pc.invert(plain)).to_pylist():
        words.update(_word_key(match.group(0)) for match in _WORD.finditer(name))
    return words


def _blank(match: re.Match) -> str:
    return " " * (match.end() - match.start())


def _word_key(word: str) -> str:
    """A word as the vocabulary holds it: escapes decoded, one kind of apostrophe, lower case."""
    if "\\" in word:
        word = _UNICODE_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), word)
    if "&" in word:
        word = html.unescape(word)
    return word.replace("\u2019", "'").lower()


def _record_numbers(text: str, positions: list[int]) -> list[int]:
    """Which record (table row) each position is in: HTML rows when the text has them, else lines."""
    if "<tr" in text:
        breaks = [m.start() for m in re.finditer(r"<tr[\s>]|</tr>", text)]
    else:
        breaks = [m.start() for m in re.finditer(r"\n", text)]
    return np.searchsorted(np.array(breaks, dtype=np.int64), np.array(positions, dtype=np.int64)).tolist()


def _date_readings(match: re.Match) -> list[int | None]:
    groups = match.groupdict()
    if groups["iy"]:
        return [_day_number(int(groups["iy"]), int(groups["im"]), int(groups["id"]))]
    if groups["y"]:
        year, a, b = int(groups["y"]), int(groups["a"]), int(groups["b"])
        return [_day_number(year, a, b), _day_number(year, b, a)]  # month first, or day first
    if groups["ny"]:
        month = _MONTHS.get(groups["nm"].rstrip(".").lower())
        return [_day_number(int(groups["ny"]), month, int(groups["nd"]))] if month else []
    if groups["my"]:
        month = _MONTHS.get(groups["mm"].rstrip(".").lower())
        return [_day_number(int(groups["my"]), month, int(groups["md"]))] if month else []
    if groups["py"]:
        return [_day_number(int(groups["py"]), int(groups["pm"]), int(groups["pd"]))]
    return []


# --- when there is no warehouse to read ------------------------------------------------------

class ShapeIndex:
    """What stands in for the index when the warehouse cannot be read: fail closed by shape.

    Every 7-digit number and every 10-digit number starting 1-9 is treated as a student ID, and
    every date as a possible birth date. Names cannot be recognised without the warehouse; the
    guard's status line says so.
    """

    students = 0
    source = ""

    def __init__(self, problem: str) -> None:
        self.problem = problem

    _SHAPES = re.compile(r"(?<![\d.])(?:\d{7}|[1-9]\d{9})(?:\.0+)?(?![\d.]?\d)")

    def find(self, text: str, kinds: Iterable[str] = KINDS) -> list[Found]:
        kinds = frozenset(kinds)
        found: list[Found] = []
        if STUDENT_ID in kinds:
            found += _outside_addresses(text, [Found(m.start(), m.end(), STUDENT_ID) for m in self._SHAPES.finditer(text)])
            found += [Found(start, end, STUDENT_ID) for start, end, number in _formatted_numbers(text)
                      if number is not None and self._SHAPES.fullmatch(str(number))]
        if DATE_OF_BIRTH in kinds:
            found += [Found(m.start(), m.end(), DATE_OF_BIRTH) for m in _DATES.finditer(text)]
            found += [Found(start, end, DATE_OF_BIRTH) for start, end, _ in _stamped_days(text)]
        return found

    def redact(self, text: str, allowed: Iterable[str] = ()) -> Redaction:
        kinds = [kind for kind in KINDS if kind not in set(allowed)]
        found = self.find(text, kinds) if kinds and text else []
        return _apply(text, found) if found else Redaction(text)

    @property
    def nbytes(self) -> int:
        return 0

    def describe(self) -> str:
        return f"UNAVAILABLE ({self.problem})"


def redact_together(index: Any, texts: list[str], allowed: Iterable[str] = (), counts: Counter | None = None) -> list[str]:
    """`texts` (the fields of one record: a JSON object, a widget's state) scanned as one text.

    A first name in one field and the last name in the next are a full name, as they are to a
    reader. Each text is read on its own line, so fields stand as close as words on
    neighbouring lines. Only names are looked for: an ID or a date is whole within one field, and
    the caller has scanned each field on its own already.
    """
    if NAME in set(allowed) or len(texts) < 2:
        return list(texts)
    joined = "\n".join(texts)
    found = index.find(joined, (NAME,)) if joined else []
    if not found:
        return list(texts)
    result, start = [], 0
    for text in texts:
        end = start + len(text)
        inside = [Found(f.start - start, f.end - start, f.kind) for f in found if start <= f.start and f.end <= end]
        redaction = _apply(text, inside) if inside else Redaction(text)
        if counts is not None:
            counts.update(redaction.counts)
        result.append(redaction.text)
        start = end + 1
    return result


def redact_value(index: Any, value: Any, allowed: Iterable[str] = (), counts: Counter | None = None) -> Any:
    """`value` (a string, or lists and dicts of them, as in a message) with identifiers replaced."""
    if isinstance(value, str):
        result = index.redact(value, allowed)
        if counts is not None:
            counts.update(result.counts)
        return result.text
    if isinstance(value, dict):
        return {key: redact_value(index, item, allowed, counts) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(index, item, allowed, counts) for item in value)
    return value
