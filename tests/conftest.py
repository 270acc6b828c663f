"""Shared fixtures: a hand-computable tiny district and a small generated one."""

from __future__ import annotations

import pytest

from tests.warehouse_fixtures import build_tiny_warehouse
from workbench.schema import write_warehouse
from workbench.synthetic import generate_district
from workbench.warehouse import connect

pytest_plugins = ["tests.browser_fixtures", "tests.postgres_fixtures", "tests.spark_fixtures"]

SMALL_DISTRICT_STUDENTS = 2_500
SMALL_DISTRICT_SEED = 7


@pytest.fixture(scope="session")
def tiny_warehouse_path(tmp_path_factory):
    return build_tiny_warehouse(tmp_path_factory.mktemp("tiny") / "tiny.duckdb")


@pytest.fixture(scope="session")
def tiny_con(tiny_warehouse_path):
    return connect(tiny_warehouse_path)


@pytest.fixture(scope="session")
def small_district_tables():
    return generate_district(SMALL_DISTRICT_STUDENTS, seed=SMALL_DISTRICT_SEED)


@pytest.fixture(scope="session")
def small_district_path(tmp_path_factory, small_district_tables):
    path = tmp_path_factory.mktemp("district") / "district.duckdb"
    write_warehouse(path, small_district_tables)
    return str(path)


@pytest.fixture(scope="session")
def small_con(small_district_path):
    return connect(small_district_path)


@pytest.fixture(scope="session")
def demo_warehouse(tmp_path_factory):
    """The default demo district (the demo requests name its students and partners)."""
    path = tmp_path_factory.mktemp("demo") / "district.duckdb"
    write_warehouse(path, generate_district())
    return str(path)
