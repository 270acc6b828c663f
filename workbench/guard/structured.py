"""Objects that hold numbers but are not pandas tables, read as one so the guard can mask them.

A cell's last expression may be a NumPy array, a list or dict of counts, a pyarrow table, a DuckDB
relation, an Ibis expression or a Polars frame. Each is turned into a pandas DataFrame or Series
(the first `max_rows` rows of a query result, as its own display would fetch) and shown through
the guarded pandas display, so the same masks, totals rule and student-level check apply.

No Jupyter here; `workbench.guard.ipython` registers these conversions as display printers.
"""

from __future__ import annotations

import dataclasses
import itertools
import numbers
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

MAX_ROWS = 60  # what pandas shows of a long frame; query results are fetched this far only
MAX_ITEMS = 1000  # what IPython shows of a long list, set or dict (its max_seq_length)


def _is_number(value: Any) -> bool:
    return isinstance(value, (numbers.Real, Decimal)) and not isinstance(value, (bool, np.bool_))


def _is_scalar(value: Any) -> bool:
    """One value of a record: text, a number, a date, a missing value (not a container)."""
    return pd.api.types.is_scalar(value)


def _is_column(value: Any) -> bool:
    """A 1-D run of values: what np.unique(..., return_counts=True) and fetchnumpy() hold."""
    if isinstance(value, np.ndarray):
        return value.ndim == 1 and not value.dtype.names
    if isinstance(value, list):
        return all(_is_scalar(v) for v in value)
    return isinstance(value, (pd.Series, pd.Index, pd.api.extensions.ExtensionArray))


def _is_row(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(_is_scalar(v) for v in value)


def _chart_labels(values: list) -> pd.Series | None:
    """Texts of a chart (`ax.bar_label(...)`, `ax.get_xticklabels()`): matplotlib Text objects."""
    if all(type(v).__module__.startswith("matplotlib") and hasattr(v, "get_text") for v in values):
        return pd.Series([v.get_text() for v in values], dtype=object)
    return None


def _columns_as_frame(columns: dict) -> pd.DataFrame | None:
    """Columns side by side; a shorter one is padded (np.histogram gives counts and one more edge)."""
    if not any(len(column) for column in columns.values()):
        return None
    return pd.DataFrame({key: pd.Series(column if isinstance(column, np.ndarray) else list(column))
                         for key, column in columns.items()})


def numbers_as_table(obj: Any) -> pd.Series | pd.DataFrame | None:
    """A list, tuple, set or dict that holds numbers, as a Series / DataFrame; else None.

    Covers what analysts turn tables into: ``to_dict()`` in every orient, ``values.tolist()`` of
    mixed rows, ``list(s.items())``, ``list(df.itertuples())``, DB-API ``fetchall()`` rows and
    ``fetchone()``, ``fetchnumpy()`` and ``np.unique(..., return_counts=True)`` columns, and the
    texts of a chart's labels. A collection with no number in it is left to show itself (the
    kernel's scan still reads it for students).
    """
    if isinstance(obj, (set, frozenset)):
        obj = list(itertools.islice(obj, MAX_ITEMS))
    if isinstance(obj, dict):
        if not obj:
            return None
        shown = list(itertools.islice(obj.items(), MAX_ITEMS))
        keys, values = [str(k) for k, _ in shown], [v for _, v in shown]
        if all(_is_scalar(v) for v in values):
            return pd.Series(values, index=keys, dtype=object) if any(_is_number(v) for v in values) else None
        if all(_is_column(v) for v in values):
            frame = _columns_as_frame(dict(zip(keys, values)))
            if frame is not None:
                return frame
        if all(isinstance(v, (list, tuple, dict)) for v in values):
            try:
                frame = pd.DataFrame(dict(shown))
            except (ValueError, TypeError):
                return None
            # to_dict(): a column of records; read as a table when every cell is a single value
            return frame if frame.size and all(_is_scalar(v) for v in frame.to_numpy().ravel()) else None
        return None
    if isinstance(obj, (list, tuple)) and obj:
        items = list(obj[:MAX_ITEMS])
        if all(_is_number(v) for v in items):
            return pd.Series(items, dtype=object)
        if all(_is_scalar(v) for v in items):
            return pd.Series(items, dtype=object) if any(_is_number(v) for v in items) else None
        if all(_is_row(v) and v for v in items):
            try:
                return pd.DataFrame(items)  # named tuples (itertuples) keep their field names
            except (ValueError, TypeError):
                return None
        if all(isinstance(v, dict) for v in items):
            return pd.DataFrame(items)  # to_dict("records"): rows of fields
        if all(_is_column(v) for v in items):
            return _columns_as_frame(dict(enumerate(items)))
        batches = _batches_as_table(items)
        return batches if batches is not None else _chart_labels(items)
    return None


def array_as_table(obj: np.ndarray) -> pd.Series | pd.DataFrame | None:
    if obj.dtype.names:  # a structured array (to_records()): one column per field
        return pd.DataFrame.from_records(obj.reshape(-1))
    if obj.ndim == 1:
        return pd.Series(obj)
    if obj.ndim == 2:
        return pd.DataFrame(obj)
    if obj.ndim > 2:  # rows of the last axis, as NumPy prints them
        return pd.DataFrame(obj.reshape(-1, obj.shape[-1]))
    return pd.Series([obj.item()])  # a 0-d array: array(6)


def is_record_object(obj: Any) -> bool:
    """A dataclass instance: fields with values, shown by its own repr."""
    return dataclasses.is_dataclass(obj) and not isinstance(obj, type)


def _module(obj: Any) -> str:
    return type(obj).__module__ or ""


def query_as_table(obj: Any, max_rows: int = MAX_ROWS) -> pd.DataFrame | pd.Series | None:
    """pyarrow, DuckDB, Ibis and Polars objects as pandas (None for anything else)."""
    module = _module(obj)
    if module.startswith("pyarrow"):
        import pyarrow as pa

        if isinstance(obj, (pa.Table, pa.RecordBatch)):
            return obj.slice(0, max_rows).to_pandas()
        if isinstance(obj, pa.StructArray):  # pyarrow.compute.value_counts: one field per column
            return pa.Table.from_struct_array(obj.slice(0, max_rows)).to_pandas()
        if isinstance(obj, (pa.Array, pa.ChunkedArray)):
            return obj.slice(0, max_rows).to_pandas()
        if isinstance(obj, pa.Scalar):
            return as_table(obj.as_py())  # a struct scalar is a record
        return None
    if module.lstrip("_").startswith("duckdb") and hasattr(obj, "limit") and hasattr(obj, "df"):
        return obj.limit(max_rows).df()
    if module.startswith("ibis"):
        import ibis.expr.types as ir

        if isinstance(obj, ir.Table):
            return obj.limit(max_rows).to_pandas()
        if isinstance(obj, ir.Column):
            return obj.as_table().limit(max_rows).to_pandas().iloc[:, 0]
        if isinstance(obj, ir.Scalar):
            return pd.Series([obj.to_pandas()], name=obj.get_name() if hasattr(obj, "get_name") else None)
        return None
    if module.startswith("rich.table") and all(hasattr(column, "cells") for column in getattr(obj, "columns", ())):
        # What Ibis's preview() draws: a rich table of the first rows, cells as text.
        return pd.DataFrame({position: [_rich_text(cell) for cell in column.cells]
                             for position, column in enumerate(obj.columns)}).set_axis(
            [_rich_text(column.header) or str(position) for position, column in enumerate(obj.columns)], axis=1)
    if module.startswith("polars"):
        head = obj.head(max_rows)
        return head.to_pandas()
    return None


def _rich_text(cell: Any) -> str:
    while hasattr(cell, "renderable"):  # Align(...) and other wrappers
        cell = cell.renderable
    return str(getattr(cell, "plain", cell))


def _batches_as_table(items: list) -> pd.DataFrame | None:
    """A list of pyarrow record batches or tables (to_pyarrow_batches()), as one table."""
    if items and all(type(item).__module__.startswith("pyarrow") and hasattr(item, "to_pandas")
                     and hasattr(item, "num_rows") for item in items):
        return pd.concat([item.slice(0, MAX_ROWS).to_pandas() for item in items[:MAX_ROWS]], ignore_index=True)
    return None


def as_table(obj: Any) -> pd.DataFrame | pd.Series | None:
    """Any of the above as pandas, or None when `obj` is not one of them."""
    if isinstance(obj, (pd.DataFrame, pd.Series)):
        return obj
    if isinstance(obj, pd.Index):
        return obj.to_series(index=range(len(obj)), name=obj.name)
    if isinstance(obj, np.ndarray):
        return array_as_table(obj)
    if isinstance(obj, pd.api.extensions.ExtensionArray):
        return pd.Series(obj)
    if isinstance(obj, (list, tuple, dict, set, frozenset)):
        return numbers_as_table(obj)
    if isinstance(obj, DICT_VIEWS):
        return numbers_as_table(list(obj))
    if is_record_object(obj):
        return numbers_as_table({f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)})
    return query_as_table(obj)


# dict.keys(), .values() and .items() of a dict of counts show their contents.
DICT_VIEWS = (type({}.keys()), type({}.values()), type({}.items()))
