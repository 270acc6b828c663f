"""Spark for the cross-engine tests: the small generated district as a Parquet warehouse, and one
Spark connection (local mode) for the whole test session.

Spark comes from pyspark (`pip install -e '.[spark]'`) and needs a Java runtime (.ci/run and
`make test` install Debian's default-jre-headless). When either is missing the tests that need it
fail with what to install; they are never skipped.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def parquet_district(tmp_path_factory, small_district_tables) -> str:
    """The small generated district (the same tables as `small_district_path`) as Parquet."""
    from workbench.schema import write_parquet_warehouse

    folder = tmp_path_factory.mktemp("parquet") / "district"
    write_parquet_warehouse(folder, small_district_tables)
    return str(folder)


@pytest.fixture(scope="session")
def spark_con(parquet_district):
    try:
        import pyspark  # noqa: F401
    except ImportError:
        pytest.fail("the Spark tests need pyspark: pip install -e '.[spark]'", pytrace=False)
    from workbench.spark import SparkProblem
    from workbench.warehouse import connect

    try:
        con = connect(f"spark://{parquet_district}")
    except SparkProblem as exc:
        pytest.fail(f"the Spark tests need Spark to start: {exc}", pytrace=False)
    yield con
    con.disconnect()
