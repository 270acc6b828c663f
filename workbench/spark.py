"""Spark as the warehouse: the tables of a Parquet warehouse folder as views in a Spark session,
queried through Ibis's PySpark backend like any other engine.

    spark:///srv/district/parquet                      local mode, on this machine's cores
    spark://spark-master.state.local:7077/srv/district  a standalone cluster; the folder must be
                                                        readable at the same path by every executor
    spark:///srv/district?views=/srv/district/views.sql&spark.driver.memory=8g

Query parameters: ``views`` names a file of ``CREATE TEMPORARY VIEW`` statements run after the
folder's tables are registered (a district's own tables mapped to the workbench schema, see
docs/warehouse.md); any ``spark.*`` parameter is passed to the session's configuration.

Every connection gets its own session (`SparkSession.newSession`) on the process's one Spark
context, so its views and cached fact tables are its own; `disconnect()` drops them and leaves the
context running for other connections (a Spark context cannot be restarted in a process).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from workbench.errors import EnvironmentProblem, InputError

SPARK_TYPES = {"VARCHAR": "string", "SMALLINT": "smallint", "INTEGER": "int", "BOOLEAN": "boolean", "DATE": "date"}
LOG_CONFIG = Path(__file__).resolve().parent / "spark-log4j2.properties"
INSTALL_HINT = "pip install -e '.[spark]' and a Java runtime (Debian: apt-get install default-jre-headless)"


class SparkProblem(EnvironmentProblem):
    """Spark is not installed, would not start, or cannot read the warehouse folder."""


def parse_location(location: str) -> tuple[str | None, str, str | None, dict[str, str]]:
    """(cluster master or None for local mode, Parquet folder, views file or None, spark settings)."""
    parts = urlsplit(location)
    master = f"spark://{parts.netloc}" if parts.netloc else None
    settings = {}
    views = None
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "views":
            views = value
        elif key.startswith("spark."):
            settings[key] = value
        else:
            raise InputError(f"warehouse: unknown parameter {key!r} in the Spark warehouse URL; use views=FILE or spark.* settings")
    return master, parts.path, views, settings


def _session_defaults(master: str | None) -> dict[str, str]:
    cores = os.cpu_count() or 2
    defaults = {
        "spark.app.name": "workbench",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile=file:{LOG_CONFIG}",
        # Ibis sets it on every session too; set here so the first session starts with it.
        "spark.sql.session.timeZone": "UTC",
    }
    if master is None:
        defaults |= {
            "spark.master": f"local[{cores}]",
            # Spark's default of 200 shuffle partitions is for clusters; one machine's tables of a
            # few million rows run fastest with one partition per core.
            "spark.sql.shuffle.partitions": str(cores),
            "spark.ui.enabled": "false",
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
        }
    else:
        defaults["spark.master"] = master
    return defaults


def spark_session(master: str | None = None, settings: dict[str, str] | None = None):
    """The process's Spark session (started on first use) with the workbench's settings."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise SparkProblem(f"a Spark warehouse needs pyspark: {INSTALL_HINT}") from None
    builder = SparkSession.builder
    for key, value in (_session_defaults(master) | (settings or {})).items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # noqa: BLE001 - no Java (PySparkRuntimeError), a master that does not answer, ...
        raise SparkProblem(f"Spark did not start: {type(exc).__name__}: {_first_line(exc)}; {INSTALL_HINT}") from None
    session.sparkContext.setLogLevel("ERROR")
    return session


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _ddl(columns: dict[str, str]) -> str:
    return ", ".join(f"`{name}` {SPARK_TYPES[sqltype]}" for name, sqltype in columns.items())


def register_parquet_tables(session, folder: str) -> list[str]:
    """Every warehouse table found in `folder` as a temporary view, with the schema's types and
    column order. Returns the tables registered."""
    from workbench.schema import SCHEMA

    found = []
    root = Path(folder)
    for table, columns in SCHEMA.items():
        if not (root / table).is_dir():
            continue
        try:
            frame = session.read.schema(_ddl(columns)).parquet(str(root / table))
            frame.select(*columns).createOrReplaceTempView(table)
        except Exception as exc:  # noqa: BLE001 - AnalysisException and friends
            raise SparkProblem(f"Spark cannot read table {table} in {folder}: {type(exc).__name__}: "
                               f"{_first_line(exc)}") from None
        found.append(table)
    return found


def run_view_file(session, path: str) -> None:
    """The statements of a views file (a district's own tables mapped to the schema), in order."""
    import sqlglot

    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise SparkProblem(f"cannot read the views file {path}: {exc.strerror or exc}") from None
    try:
        statements = [s for s in sqlglot.parse(text, read="spark") if s is not None]
    except sqlglot.errors.ParseError as exc:
        raise SparkProblem(f"the views file {path} is not Spark SQL: {_first_line(exc)}") from None
    for number, statement in enumerate(statements, start=1):
        try:
            session.sql(statement.sql(dialect="spark"))
        except Exception as exc:  # noqa: BLE001
            raise SparkProblem(f"statement {number} of the views file {path} failed: {type(exc).__name__}: "
                               f"{_first_line(exc)}") from None


def connect_spark(location: str):
    """An Ibis PySpark connection whose warehouse tables are views over a Parquet folder."""
    from workbench.schema import is_parquet_warehouse

    master, folder, views, settings = parse_location(location)
    if master is None and folder and not is_parquet_warehouse(folder) and views is None:
        raise SparkProblem(f"no Parquet warehouse at {folder}; write one with "
                           f"`workbench data generate --format parquet --out {folder}`")
    session = spark_session(master, settings).newSession()
    for key, value in (_session_defaults(master) | settings).items():
        if key.startswith("spark.sql."):  # runtime settings: each session keeps its own
            session.conf.set(key, value)
    if folder:
        register_parquet_tables(session, folder)
    if views:
        run_view_file(session, views)
    import ibis

    con = ibis.pyspark.connect(session)

    def disconnect() -> None:
        from workbench.measures import release_facts

        release_facts(con)
        for view in session.catalog.listTables():
            if view.isTemporary:
                session.catalog.dropTempView(view.name)

    con.disconnect = disconnect
    return con
