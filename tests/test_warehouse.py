"""Finding and opening the warehouse."""

from __future__ import annotations

import duckdb
import pytest

from workbench.errors import InputError
from workbench.warehouse import WarehouseError, connect, warehouse_info


def test_connect_by_path_and_by_url(tiny_warehouse_path):
    assert connect(tiny_warehouse_path).table("students").count().to_pandas() == 5
    assert connect(f"duckdb://{tiny_warehouse_path}").table("students").count().to_pandas() == 5


def test_environment_variable_then_config_file(tiny_warehouse_path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WORKBENCH_CONFIG", raising=False)
    monkeypatch.setenv("WORKBENCH_WAREHOUSE", tiny_warehouse_path)
    assert warehouse_info(connect())["synthetic"] == "true"
    monkeypatch.delenv("WORKBENCH_WAREHOUSE")
    (tmp_path / "workbench.toml").write_text(f'warehouse = "{tiny_warehouse_path}"\n')
    assert connect().table("schools").count().to_pandas() == 2


def test_missing_file_says_how_to_make_one(tmp_path):
    with pytest.raises(WarehouseError, match="workbench data generate"):
        connect(tmp_path / "nothing.duckdb")


def test_a_database_without_the_schema_is_refused(tmp_path):
    path = tmp_path / "other.duckdb"
    duckdb.connect(str(path)).execute("CREATE TABLE students (student_id VARCHAR)").close()
    with pytest.raises(WarehouseError, match="lacks tables"):
        connect(path)


def test_default_connection_is_read_only(tiny_warehouse_path):
    con = connect(tiny_warehouse_path)
    with pytest.raises(Exception):
        con.raw_sql("DELETE FROM students")


def test_a_folder_that_is_not_a_parquet_warehouse_is_refused(tmp_path):
    (tmp_path / "students").mkdir()
    with pytest.raises(WarehouseError, match="not a Parquet warehouse"):
        connect(tmp_path)


def test_a_spark_url_is_checked_before_spark_starts(tmp_path):
    from workbench.spark import SparkProblem

    with pytest.raises(SparkProblem, match="no Parquet warehouse at"):
        connect(f"spark://{tmp_path}/missing")
    # A mistake in the URL is the analyst's (exit 2), not the machine's.
    with pytest.raises(InputError, match="warehouse: unknown parameter 'memory'"):
        connect(f"spark://{tmp_path}?memory=8g")
