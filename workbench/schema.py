"""The warehouse schema as data: table -> column -> SQL type, and a validating writer.

docs/warehouse.md explains each column. The generator and test fixtures both write through
`write_warehouse`, so a fixture can never drift from what the generator produces.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
from workbench.errors import EnvironmentProblem

SCHEMA: dict[str, dict[str, str]] = {
    "schools": {
        "school_id": "VARCHAR", "name": "VARCHAR", "level": "VARCHAR",
        "grade_low": "SMALLINT", "grade_high": "SMALLINT",
    },
    "students": {
        "student_id": "VARCHAR", "state_id": "VARCHAR", "first_name": "VARCHAR",
        "last_name": "VARCHAR", "date_of_birth": "DATE", "gender": "VARCHAR",
        "race_ethnicity": "VARCHAR",
    },
    "student_years": {
        "student_id": "VARCHAR", "school_year": "VARCHAR", "grade": "SMALLINT",
        "english_learner": "BOOLEAN", "disability": "BOOLEAN", "low_income": "BOOLEAN",
    },
    "enrollments": {
        "student_id": "VARCHAR", "school_year": "VARCHAR", "school_id": "VARCHAR",
        "entry_date": "DATE", "exit_date": "DATE", "exit_reason": "VARCHAR",
    },
    "school_calendar": {
        "school_year": "VARCHAR", "term": "VARCHAR", "first_day": "DATE", "last_day": "DATE",
        "instructional_days": "SMALLINT",
    },
    "attendance": {
        "student_id": "VARCHAR", "school_year": "VARCHAR", "term": "VARCHAR",
        "school_id": "VARCHAR", "days_enrolled": "SMALLINT", "days_absent": "SMALLINT",
    },
    "staff": {"staff_id": "VARCHAR", "first_name": "VARCHAR", "last_name": "VARCHAR"},
    "staff_assignments": {
        "staff_id": "VARCHAR", "school_year": "VARCHAR", "school_id": "VARCHAR", "role": "VARCHAR",
    },
    "sections": {
        "section_id": "VARCHAR", "school_year": "VARCHAR", "school_id": "VARCHAR",
        "staff_id": "VARCHAR", "course_code": "VARCHAR", "course_name": "VARCHAR",
        "subject": "VARCHAR", "grade": "SMALLINT",
    },
    "section_students": {"section_id": "VARCHAR", "student_id": "VARCHAR"},
    "course_marks": {
        "student_id": "VARCHAR", "section_id": "VARCHAR", "school_year": "VARCHAR",
        "term": "VARCHAR", "mark": "VARCHAR",
    },
    "behavior_incidents": {
        "incident_id": "INTEGER", "student_id": "VARCHAR", "school_year": "VARCHAR",
        "school_id": "VARCHAR", "incident_date": "DATE", "category": "VARCHAR",
        "action": "VARCHAR", "days_removed": "SMALLINT",
    },
    "assessments": {
        "student_id": "VARCHAR", "school_year": "VARCHAR", "subject": "VARCHAR",
        "tested_grade": "SMALLINT", "scaled_score": "SMALLINT", "achievement_level": "SMALLINT",
        "meets_benchmark": "BOOLEAN",
    },
    "partners": {
        "partner_id": "VARCHAR", "name": "VARCHAR", "registration_status": "VARCHAR",
        "registered_on": "DATE", "registration_expires": "DATE",
    },
    "programs": {
        "program_id": "VARCHAR", "partner_id": "VARCHAR", "name": "VARCHAR", "school_id": "VARCHAR",
    },
    "program_students": {
        "program_id": "VARCHAR", "student_id": "VARCHAR", "added_on": "DATE", "dropped_on": "DATE",
    },
    "ndas": {
        "nda_id": "VARCHAR", "organization": "VARCHAR", "partner_id": "VARCHAR",
        "signed_on": "DATE", "expires_on": "DATE",
    },
    "research_approvals": {
        "approval_id": "VARCHAR", "organization": "VARCHAR", "lead_researcher": "VARCHAR",
        "title": "VARCHAR", "status": "VARCHAR", "approved_on": "DATE", "expires_on": "DATE",
    },
    "consents": {
        "consent_id": "INTEGER", "student_id": "VARCHAR", "partner_id": "VARCHAR",
        "signed_on": "DATE", "expires_on": "DATE", "channel": "VARCHAR", "revoked_on": "DATE",
    },
    "directory_opt_outs": {
        "student_id": "VARCHAR", "school_year": "VARCHAR", "opted_out_on": "DATE",
    },
    "warehouse_info": {"key": "VARCHAR", "value": "VARCHAR"},
}


class SchemaError(EnvironmentProblem, ValueError):
    """A frame does not have the columns its table needs."""


def empty_frames() -> dict[str, pd.DataFrame]:
    """One empty frame per table with the right columns; fixtures fill in what they need."""
    return {name: pd.DataFrame(columns=list(columns)) for name, columns in SCHEMA.items()}


POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(target: object) -> bool:
    return str(target).startswith(POSTGRES_SCHEMES)


def _conninfo(url: str) -> tuple[str, str | None]:
    """The libpq URL and the schema of a warehouse URL. Like Ibis, a second path part names the
    schema: ``postgresql://user@host/district/workbench`` is schema ``workbench`` of ``district``."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    database, _, schema = parts.path.lstrip("/").partition("/")
    return urlunsplit(parts._replace(path="/" + database)), schema or None


def require_postgres(url: str) -> None:
    """The driver is installed and the server answers: checked before any work is done."""
    from workbench.warehouse import WarehouseError

    try:
        import psycopg
    except ImportError:
        raise WarehouseError("PostgreSQL needs the psycopg driver: pip install -e '.[postgres]'") from None
    try:
        psycopg.connect(_conninfo(url)[0], connect_timeout=10).close()
    except psycopg.Error as exc:
        raise WarehouseError(f"cannot reach the PostgreSQL warehouse: {str(exc).strip()}") from None


# Tables with a school year are written as Parquet partitioned by it (hive-style folders such as
# `attendance/school_year=2025-2026/`), so an engine reading one year reads only that folder.
PARTITION_COLUMN = "school_year"


def partitioned(table: str) -> bool:
    return PARTITION_COLUMN in SCHEMA[table]


def _checked(frames: dict[str, pd.DataFrame]) -> None:
    unknown = sorted(set(frames) - set(SCHEMA))
    if unknown:
        raise SchemaError(f"not warehouse tables: {', '.join(unknown)}")
    for table, columns in SCHEMA.items():
        frame = frames.get(table)
        if frame is None or frame.empty:
            continue
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise SchemaError(f"table {table} lacks columns: {', '.join(missing)}")


def _column_sql(columns: dict[str, str]) -> str:
    return ", ".join(f'"{name}" {sqltype}' for name, sqltype in columns.items())


def write_warehouse(target: str | os.PathLike, frames: dict[str, pd.DataFrame]) -> Path | str:
    """Write every table of SCHEMA to a new DuckDB file, or to PostgreSQL when `target` is a
    ``postgresql://`` URL; tables not given are created empty.

    A DuckDB file is written under a temporary name and renamed into place, and PostgreSQL gets
    all its tables in one transaction, so a failure never leaves a half-written warehouse where
    a good one was expected.
    """
    _checked(frames)
    if is_postgres_url(target):
        return write_postgres_warehouse(str(target), frames)
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    con = duckdb.connect(str(partial))
    try:
        for table, columns in SCHEMA.items():
            frame = frames.get(table)
            if frame is None or frame.empty:
                con.execute(f'CREATE TABLE "{table}" ({_column_sql(columns)})')
                continue
            # Arrow hands columns to DuckDB without a per-row conversion: about twice as fast.
            con.register("incoming", pa.Table.from_pandas(frame[list(columns)], preserve_index=False))
            con.execute(f'CREATE TABLE "{table}" AS SELECT {_casts(columns)} FROM incoming')
            con.unregister("incoming")
        con.execute("CHECKPOINT")
    except BaseException:
        con.close()
        partial.unlink(missing_ok=True)
        raise
    con.close()
    os.replace(partial, target)
    return target


def _casts(columns: dict[str, str]) -> str:
    return ", ".join(f'CAST("{name}" AS {sqltype}) AS "{name}"' for name, sqltype in columns.items())


# Rows per CSV chunk streamed into COPY: bounded memory whatever the table's size.
_COPY_BATCH_ROWS = 200_000


def _batches(result, rows: int):
    # DuckDB 1.4 renamed fetch_record_batch to to_arrow_reader; both stream Arrow batches.
    reader = getattr(result, "to_arrow_reader", None) or result.fetch_record_batch
    return reader(rows)


def write_postgres_warehouse(url: str, frames: dict[str, pd.DataFrame]) -> str:
    """Load the tables into PostgreSQL with COPY, replacing the ones already there.

    Values are cast to the schema's types by DuckDB first (the same casts as the DuckDB
    warehouse, so both hold the same values) and streamed as CSV. Every table is dropped,
    created and filled in one transaction: readers see the old warehouse until it commits.
    A URL naming a schema (``.../district/workbench``) loads into that schema, created if needed.
    """
    require_postgres(url)
    import psycopg
    import pyarrow.csv as pacsv

    from workbench.warehouse import WarehouseError

    _checked(frames)
    conninfo, schema = _conninfo(url)
    caster = duckdb.connect()
    try:
        with psycopg.connect(conninfo) as connection, connection.cursor() as cursor:
            if schema:
                cursor.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                cursor.execute("SELECT set_config('search_path', %s, true)", (schema,))
            for table, columns in SCHEMA.items():
                cursor.execute(f'DROP TABLE IF EXISTS "{table}"')
                cursor.execute(f'CREATE TABLE "{table}" ({_column_sql(columns)})')
                frame = frames.get(table)
                if frame is None or frame.empty:
                    continue
                caster.register("incoming", pa.Table.from_pandas(frame[list(columns)], preserve_index=False))
                typed = _batches(caster.execute(f"SELECT {_casts(columns)} FROM incoming"), _COPY_BATCH_ROWS)
                names = ", ".join(f'"{name}"' for name in columns)
                with cursor.copy(f'COPY "{table}" ({names}) FROM STDIN WITH (FORMAT csv)') as copy:
                    for batch in typed:
                        # Arrow quotes every string and leaves nulls bare: COPY reads "" as an
                        # empty string and a bare empty field as NULL, so both survive.
                        chunk = pa.BufferOutputStream()
                        pacsv.write_csv(batch, chunk, pacsv.WriteOptions(include_header=False))
                        copy.write(chunk.getvalue().to_pybytes())
                caster.unregister("incoming")
            for table in SCHEMA:
                cursor.execute(f'ANALYZE "{table}"')
    except psycopg.Error as exc:
        raise WarehouseError(f"cannot load the warehouse into PostgreSQL: {type(exc).__name__}: "
                             f"{str(exc).strip()}") from None
    finally:
        caster.close()
    return url


PARQUET_MARKER = "warehouse_info"  # every Parquet warehouse has this table's folder


def is_parquet_warehouse(folder: str | os.PathLike) -> bool:
    """A folder `write_parquet_warehouse` wrote (or one laid out the same way)."""
    return (Path(folder) / PARQUET_MARKER).is_dir()


def write_parquet_warehouse(folder: str | os.PathLike, frames: dict[str, pd.DataFrame]) -> Path:
    """Write every table of SCHEMA as Parquet into `folder`, one sub-folder per table.

    Tables with a school year are partitioned by it (`attendance/school_year=2025-2026/data_0.parquet`);
    the others are one file (`schools/data_0.parquet`). Values are cast by DuckDB to the schema's
    types first, the same casts as the DuckDB warehouse, so Spark, DuckDB and anything else that
    reads Parquet see the same values and types. The folder is written under a temporary name and
    swapped into place: a failure leaves the previous warehouse as it was. A folder that holds
    something other than a Parquet warehouse is never replaced.
    """
    with ParquetWarehouseWriter(folder) as writer:
        writer.write(frames)
    return Path(folder)


class ParquetWarehouseWriter:
    """A Parquet warehouse written in parts, for districts too large to hold in memory at once.

    Part 0 writes every table of SCHEMA (an absent one as an empty file that still carries the
    columns); each later part adds its rows as more files (`data_<part>_0.parquet`) in the same
    table and school-year folders, and writes only the tables it is given. The parts must not share
    keys: the writer does not read back what earlier parts wrote. Nothing reaches `folder` until the
    `with` block ends without an error; then the new warehouse replaces the old one in one rename.
    """

    def __init__(self, folder: str | os.PathLike):
        self.target = Path(folder)
        if self.target.exists() and (not self.target.is_dir() or (
                any(self.target.iterdir()) and not is_parquet_warehouse(self.target))):
            raise SchemaError(f"{self.target} exists and is not a Parquet warehouse; give a new or empty folder")
        self.partial = self.target.with_name(self.target.name + ".partial")
        self.parts = 0

    def __enter__(self) -> ParquetWarehouseWriter:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.partial, ignore_errors=True)
        self.partial.mkdir()
        return self

    def __exit__(self, kind, error, trace) -> None:
        if kind is not None or self.parts == 0:
            shutil.rmtree(self.partial, ignore_errors=True)
            return
        previous = self.target.with_name(self.target.name + ".previous")
        shutil.rmtree(previous, ignore_errors=True)
        if self.target.exists():
            os.replace(self.target, previous)
        os.replace(self.partial, self.target)
        shutil.rmtree(previous, ignore_errors=True)

    def write(self, frames: dict[str, pd.DataFrame]) -> None:
        _checked(frames)
        part = self.parts
        con = duckdb.connect()
        try:
            for table, columns in SCHEMA.items():
                frame = frames.get(table)
                if part and (frame is None or frame.empty):
                    continue
                if frame is None or frame.empty:
                    frame = pd.DataFrame({name: pd.Series([], dtype="object") for name in columns})
                con.register("incoming", pa.Table.from_pandas(frame[list(columns)], preserve_index=False))
                select = f"SELECT {_casts(columns)} FROM incoming ORDER BY {_sort_key(table)}"
                where = self.partial / table
                if partitioned(table) and len(frame):
                    # Part 0 keeps DuckDB's own file names, so a district written in one part is
                    # written as it always was.
                    naming = f", FILENAME_PATTERN 'data_{part}_{{i}}', OVERWRITE_OR_IGNORE true" if part else ""
                    con.execute(f"COPY ({select}) TO '{_quoted(where)}' "
                                f"(FORMAT parquet, PARTITION_BY ({PARTITION_COLUMN}){naming})")
                else:
                    # An empty table is one file with every column, so readers still learn its schema.
                    where.mkdir(exist_ok=bool(part))
                    name = f"data_{part}_0.parquet" if part else "data_0.parquet"
                    con.execute(f"COPY ({select}) TO '{_quoted(where / name)}' (FORMAT parquet)")
                con.unregister("incoming")
        finally:
            con.close()
        self.parts += 1


def _sort_key(table: str) -> str:
    """Rows in key order: the same district gives the same files, byte for byte."""
    return ", ".join(f'"{name}"' for name in SCHEMA[table])


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")
