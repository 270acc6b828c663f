"""One way into the warehouse: an Ibis connection to the DuckDB file, a folder of Parquet tables
(read by DuckDB or by Spark), or any Ibis URL."""

from __future__ import annotations

import os
from pathlib import Path

import ibis
from ibis.backends import BaseBackend

from workbench.config import warehouse_location
from workbench.errors import EnvironmentProblem

REQUIRED_TABLES = (
    "schools",
    "students",
    "student_years",
    "enrollments",
    "school_calendar",
    "attendance",
    "staff",
    "staff_assignments",
    "sections",
    "section_students",
    "course_marks",
    "behavior_incidents",
    "assessments",
    "partners",
    "programs",
    "program_students",
    "ndas",
    "research_approvals",
    "consents",
    "directory_opt_outs",
    "warehouse_info",
)


class WarehouseError(EnvironmentProblem):
    """The warehouse is missing, unreachable, or not in the documented schema."""


def _is_url(location: str) -> bool:
    return "://" in location


def connect(location: str | os.PathLike | None = None, *, read_only: bool = True) -> BaseBackend:
    """Connect to the warehouse.

    `location` is an Ibis URL (``postgresql://...``, ``duckdb:///file``), ``spark:///folder`` (a
    folder of Parquet tables read by Spark), or a path to a DuckDB file or to a folder of Parquet
    tables (read by DuckDB). Without it the configured warehouse is used (see docs/warehouse.md).
    """
    where = warehouse_location(location)
    if where.startswith("duckdb://"):
        # Open DuckDB files through the path branch so they get the same read-only handling.
        where = where.removeprefix("duckdb://")
    if where.startswith(SPARK_SCHEME):
        from workbench.spark import connect_spark

        con = connect_spark(where)
    elif not _is_url(where) and Path(where).is_dir():
        con = _duckdb_over_parquet(Path(where))
    elif _is_url(where):
        try:
            con = ibis.connect(where)
        except Exception as exc:  # driver errors vary by backend; the URL itself is not secret-free
            raise WarehouseError(f"cannot connect to the warehouse: {type(exc).__name__}: {exc}") from exc
    else:
        path = Path(where)
        if not path.is_file():
            raise WarehouseError(
                f"no warehouse at {path}; create one with `workbench data generate` "
                "or set WORKBENCH_WAREHOUSE"
            )
        try:
            con = ibis.duckdb.connect(str(path), read_only=read_only)
            con.list_tables()
        except Exception as exc:  # duckdb raises IOException (locked), InvalidInputException (not DuckDB), ...
            raise WarehouseError(f"cannot open the warehouse at {path}: {_duckdb_reason(exc)}") from None
    if getattr(con, "name", "") == "postgres":
        _tune_postgres(con)
    missing = sorted(set(REQUIRED_TABLES) - set(con.list_tables()))
    if missing:
        raise WarehouseError(f"the warehouse at {where} lacks tables: {', '.join(missing)}")
    _remember_schemas(con)
    return con


SPARK_SCHEME = "spark://"


def parquet_reader_sql(folder: Path, table: str) -> str:
    """A DuckDB query reading one table of a Parquet warehouse with the schema's types and order."""
    from workbench.schema import SCHEMA, partitioned

    files = str(folder / table / "**" / "*.parquet").replace("'", "''")
    options = ", hive_partitioning = true, hive_types = {'school_year': VARCHAR}" if partitioned(table) else ""
    columns = ", ".join(f'CAST("{name}" AS {sqltype}) AS "{name}"' for name, sqltype in SCHEMA[table].items())
    return f"SELECT {columns} FROM read_parquet('{files}'{options})"


def _duckdb_over_parquet(folder: Path) -> BaseBackend:
    """An in-memory DuckDB whose warehouse tables are views over the folder's Parquet files: the
    files are read where they lie, one school year's folder at a time when a query asks for one."""
    from workbench.schema import SCHEMA, is_parquet_warehouse

    if not is_parquet_warehouse(folder):
        raise WarehouseError(f"{folder} is a folder but not a Parquet warehouse (no {folder / 'warehouse_info'}); "
                             "write one with `workbench data generate --format parquet --out FOLDER`")
    con = ibis.duckdb.connect()
    present = {path.name for path in folder.iterdir() if path.is_dir()}
    for table in SCHEMA:
        if table in present:
            try:
                con.raw_sql(f'CREATE VIEW "{table}" AS {parquet_reader_sql(folder, table)}')
            except Exception as exc:  # noqa: BLE001 - duckdb's IOException, BinderException, ...
                raise WarehouseError(f"cannot read table {table} in {folder}: {type(exc).__name__}") from None
    return con


def _tune_postgres(con: BaseBackend) -> None:
    """Session settings for the workbench's queries on PostgreSQL.

    PostgreSQL estimates a join of two aggregates on several keys (the school of record joins
    days per school to entry dates per school) at one row, and then nests loops over every
    student year for the joins that follow: 15 seconds instead of 0.3 for 2,500 students, and
    quadratic beyond. Every query the workbench sends is a scan, a hash join or an aggregate,
    so nested loops are turned off for its own session only.

    A cross join still needs a nested loop, and the penalty that discourages it lifts the query's
    cost over PostgreSQL's JIT threshold: half a second of compiling for a query that runs in a
    millisecond. JIT is turned off with it.
    """
    con.raw_sql("SET enable_nestloop = off").close()
    con.raw_sql("SET jit = off").close()


def _remember_schemas(con: BaseBackend) -> None:
    """Look each warehouse table's schema up once per connection (every `con.table()` otherwise
    asks the database again, hundreds of times per report)."""
    lookup = con.table
    known: dict[str, object] = {}

    def table(name: str, *args, **kwargs):
        if args or kwargs or name not in REQUIRED_TABLES:
            return lookup(name, *args, **kwargs)
        if name not in known:
            known[name] = lookup(name)
        return known[name]

    try:
        con.table = table
    except AttributeError:  # a backend class that forbids it keeps its own lookups
        pass


def _duckdb_reason(exc: Exception) -> str:
    """What went wrong opening a DuckDB file, in words, without the driver's full text."""
    text = str(exc).lower()
    if "lock" in text:
        return "another process has it open for writing (it is locked); try again when that process ends"
    if "not a valid duckdb" in text or "invalid" in text or "corrupt" in text or "magic" in text:
        return "it is not a DuckDB database or it is damaged; regenerate it or restore it from a backup"
    if "permission" in text:
        return "permission denied"
    return type(exc).__name__


def warehouse_info(con: BaseBackend) -> dict[str, str]:
    """Generator metadata stored with the warehouse (seed, size, years)."""
    frame = con.table("warehouse_info").to_pandas()
    return dict(zip(frame["key"], frame["value"]))


# Up to this many values are sent as an IN list; longer lists go as a small in-memory table the
# warehouse joins against (an IN list of thousands of literals takes seconds to compile).
_IN_LIST_LIMIT = 200


def rows_with(table: ibis.Table, column: str, values) -> ibis.Table:
    """Rows of `table` whose `column` is one of `values`, in one query whatever their number."""
    values = list(values)
    if len(values) <= _IN_LIST_LIMIT:
        return table.filter(table[column].isin(values))
    import pandas as pd

    wanted = ibis.memtable(pd.DataFrame({column: pd.Series(values, dtype="string")}))
    return table.semi_join(wanted, column)
