"""PostgreSQL for the cross-engine tests: one throwaway server per test session.

The server comes from Debian's `postgresql` package (.ci/run and `make test` install it). When its
binaries or the psycopg driver are missing the tests that need it fail with what to install; they
are never skipped, so a machine without PostgreSQL cannot pass the suite by not running them.
"""

from __future__ import annotations

import contextlib
import itertools

import pytest

from tests.postgres_server import ServerUnavailable, throwaway_server

_database_names = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_server():
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.fail("the PostgreSQL tests need psycopg: pip install -e '.[postgres]'", pytrace=False)
    stack = contextlib.ExitStack()
    try:
        server = stack.enter_context(throwaway_server())
    except ServerUnavailable as exc:
        pytest.fail(f"the PostgreSQL tests need a server: {exc}", pytrace=False)
    with stack:
        yield server


@pytest.fixture
def postgres_database(postgres_server) -> str:
    """URL of a new empty database on the session's server."""
    return postgres_server.create_database(f"test_{next(_database_names)}")


@pytest.fixture(scope="session")
def postgres_district_url(postgres_server, small_district_tables) -> str:
    """The small generated district (the same tables as `small_district_path`) in PostgreSQL."""
    from workbench.schema import write_warehouse

    url = postgres_server.create_database("small_district")
    write_warehouse(url, small_district_tables)
    return url


@pytest.fixture(scope="session")
def postgres_con(postgres_district_url):
    from workbench.measures import release_facts
    from workbench.warehouse import connect

    con = connect(postgres_district_url)
    yield con
    release_facts(con)  # while the server still runs
    con.disconnect()
