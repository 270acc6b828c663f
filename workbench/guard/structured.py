"""Objects that hold numbers but are not pandas tables, read as one so the guard can mask them.

A cell's last expression may be a NumPy array, a list or dict of counts, a pyarrow table, a DuckDB
relation, an Ibis expression or a Polars frame. Each is turned into a pandas DataFrame or Series
(the first `max_rows` rows of a query result, as its own display would fetch) and shown through
the guarded pandas display, so the same masks, totals rule and student-level check apply.

No Jupyter here; `workbench.guard.ipython` registers these conversions as display printers.
"""

from __future__ import annotations

import numbers
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

MAX_ROWS = 60  # what pandas shows of a long frame; query results are fetched this far only


def _is_number(value: Any) -> bool:
    return isinstance(value, (numbers.Real, Decimal)) and not isinstance(value, (bool, np.bool_))


def numbers_as_table(obj: Any) -> pd.Series | pd.DataFrame | None:
    """A list, tuple or dict of numbers (or a dict of such lists) as a Series / DataFrame; else None."""
    if isinstance(obj, dict):
        if not obj:
            return None
        values = list(obj.values())
        if all(_is_number(v) for v in values):
            return pd.Series(values, index=[str(k) for k in obj], dtype=object)
        if all(isinstance(v, (list, tuple, dict)) for v in values):
            try:
                frame = pd.DataFrame(obj)
            except (ValueError, TypeError):
                return None
            return frame if frame.size and all(_is_number(v) or v is None for v in frame.to_numpy().ravel()) else None
        return None
    if isinstance(obj, (list, tuple)) and obj:
        if all(_is_number(v) for v in obj):
            return pd.Series(list(obj), dtype=object)
        if all(isinstance(v, (list, tuple)) and v and all(_is_number(x) for x in v) for v in obj):
            try:
                return pd.DataFrame([list(v) for v in obj])
            except (ValueError, TypeError):
                return None
        if all(isinstance(v, dict) for v in obj):
            return pd.DataFrame(list(obj))  # to_dict("records"): rows of fields
    return None


def array_as_table(obj: np.ndarray) -> pd.Series | pd.DataFrame | None:
    if obj.ndim == 1:
        return pd.Series(obj)
    if obj.ndim == 2:
        return pd.DataFrame(obj)
    return None


def _module(obj: Any) -> str:
    return type(obj).__module__ or ""


def query_as_table(obj: Any, max_rows: int = MAX_ROWS) -> pd.DataFrame | pd.Series | None:
    """pyarrow, DuckDB, Ibis and Polars objects as pandas (None for anything else)."""
    module = _module(obj)
    if module.startswith("pyarrow"):
        import pyarrow as pa

        if isinstance(obj, (pa.Table, pa.RecordBatch)):
            return obj.slice(0, max_rows).to_pandas()
        if isinstance(obj, (pa.Array, pa.ChunkedArray)):
            return obj.slice(0, max_rows).to_pandas()
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
    if module.startswith("polars"):
        head = obj.head(max_rows)
        return head.to_pandas()
    return None


def as_table(obj: Any) -> pd.DataFrame | pd.Series | None:
    """Any of the above as pandas, or None when `obj` is not one of them."""
    if isinstance(obj, (pd.DataFrame, pd.Series)):
        return obj
    if isinstance(obj, pd.Index):
        return obj.to_series(index=range(len(obj)), name=obj.name)
    if isinstance(obj, np.ndarray):
        return array_as_table(obj)
    if isinstance(obj, (list, tuple, dict)):
        return numbers_as_table(obj)
    return query_as_table(obj)
