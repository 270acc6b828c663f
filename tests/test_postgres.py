"""The same district in DuckDB and in a real PostgreSQL server gives the same answers.

Both warehouses hold the small generated district (`small_district_tables`): DuckDB through
`write_warehouse(path)`, PostgreSQL through `write_warehouse(url)`, the loader behind
`workbench data generate --out postgresql://...`. Every measure by every breakdown and pair of
breakdowns (with and without a cohort), the cohort lookups and the release plans for demo-like
requests are computed on both and compared exactly, dtypes included.
"""

from __future__ import annotations

import itertools
import os
import random
import subprocess
import sys
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from workbench.cohort import cohort_from_ids, cohort_from_program, cohort_from_school, members_by_year
from workbench.measures import BREAKDOWNS, MEASURES, cached_facts, compute, release_facts
from workbench.plan import make_plan
from workbench.policy import load_policy
from workbench.request import parse_request
from workbench.schema import SCHEMA, write_warehouse
from workbench.warehouse import WarehouseError, connect, warehouse_info

WORKBENCH = Path(sys.executable).parent / "workbench"
YEARS = ["2024-2025", "2025-2026"]
COHORT_SIZE = 300  # above the IN-list limit: the cohort travels as a table the warehouse joins


@pytest.fixture(scope="module")
def duck(small_con):
    return small_con


@pytest.fixture(scope="module")
def cohort_ids(duck) -> list[str]:
    enrolled = sorted(set(duck.table("student_years").filter(lambda t: t.school_year.isin(YEARS))
                          .to_pandas()["student_id"]))
    return sorted(random.Random(17).sample(enrolled, COHORT_SIZE))


def _same(duck_frame: pd.DataFrame, pg_frame: pd.DataFrame) -> None:
    assert len(duck_frame), "an empty result proves nothing"
    pd.testing.assert_frame_equal(duck_frame, pg_frame, check_exact=True)


# -- the loaded warehouse --------------------------------------------------------------------------

@pytest.mark.parametrize("table", sorted(SCHEMA))
def test_every_table_has_the_same_schema_and_rows(duck, postgres_con, table):
    assert postgres_con.table(table).schema() == duck.table(table).schema()
    columns = list(SCHEMA[table])
    ours = duck.table(table).to_pandas().sort_values(columns, ignore_index=True)
    theirs = postgres_con.table(table).to_pandas().sort_values(columns, ignore_index=True)
    pd.testing.assert_frame_equal(ours, theirs, check_exact=True)


def test_the_connection_is_a_real_postgresql_server(postgres_con):
    assert postgres_con.name == "postgres"
    assert postgres_con.raw_sql("SELECT version()").fetchone()[0].startswith("PostgreSQL ")


# -- measures ----------------------------------------------------------------------------------------

BREAKDOWN_CHOICES = [()] + [(b,) for b in BREAKDOWNS] + list(itertools.combinations(BREAKDOWNS, 2))


@pytest.mark.parametrize("breakdowns", BREAKDOWN_CHOICES, ids=lambda b: "+".join(b) or "total")
@pytest.mark.parametrize("measure", list(MEASURES))
def test_every_measure_by_every_breakdown_matches(duck, postgres_con, measure, breakdowns):
    _same(compute(duck, measure, YEARS, breakdowns), compute(postgres_con, measure, YEARS, breakdowns))


@pytest.mark.parametrize("breakdowns", BREAKDOWN_CHOICES, ids=lambda b: "+".join(b) or "total")
@pytest.mark.parametrize("measure", list(MEASURES))
def test_every_measure_for_a_cohort_matches(duck, postgres_con, cohort_ids, measure, breakdowns):
    single = len(breakdowns) <= 1  # the comparisons add two more runs; once per breakdown is enough
    options = {"prior_year": single, "district_comparison": single}
    _same(compute(duck, measure, YEARS, breakdowns, cohort_ids, **options),
          compute(postgres_con, measure, YEARS, breakdowns, cohort_ids, **options))


def test_facts_are_cached_as_a_temporary_table_in_postgresql(postgres_district_url):
    con = connect(postgres_district_url)
    try:
        facts = cached_facts(con, YEARS)
        assert cached_facts(con, YEARS) is facts
        name = facts.op().name
        temporary = con.raw_sql(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = %s AND n.nspname LIKE 'pg_temp%%'", params=(name,)).fetchone()[0]
        assert temporary == 1
        # One row per student and year: as many as the enrolled counts of the years add up to.
        assert facts.count().to_pandas() == compute(con, "enrolled", YEARS, ())["students"].sum()
        release_facts(con)
        gone = con.raw_sql("SELECT to_regclass(%s)", params=(name,)).fetchone()[0]
        assert gone is None
    finally:
        con.disconnect()


# -- cohorts -------------------------------------------------------------------------------------------

def _cohort_parts(cohort) -> tuple:
    return (cohort.source, cohort.years, cohort.matched, cohort.unknown, cohort.duplicated, cohort.malformed,
            cohort.not_enrolled)


def _same_cohort(ours, theirs) -> None:
    assert ours.size, "an empty cohort proves nothing"
    for mine, other in zip(_cohort_parts(ours), _cohort_parts(theirs)):
        if isinstance(mine, pd.DataFrame):
            pd.testing.assert_frame_equal(mine, other, check_exact=True)
        else:
            assert mine == other


def test_a_messy_id_list_resolves_the_same(duck, postgres_con, cohort_ids):
    students = duck.table("students").to_pandas().set_index("student_id")
    never_enrolled = sorted(set(students.index) - set(cohort_ids))
    state_ids = [students.loc[sid, "state_id"] for sid in cohort_ids[:5]]
    typed = ([sid.lstrip("0") for sid in cohort_ids[:20]] + [f" {sid}.0" for sid in cohort_ids[20:40]]
             + state_ids + cohort_ids[:3] + ["9999999", "12345678", "abc", ""] + never_enrolled[:4])
    for ids in (typed, typed + cohort_ids):  # an IN list, then a table the warehouse joins against
        _same_cohort(cohort_from_ids(duck, ids, YEARS), cohort_from_ids(postgres_con, ids, YEARS))


@pytest.mark.parametrize("as_of", [None, date(2026, 3, 2)])
def test_a_program_cohort_resolves_the_same(duck, postgres_con, as_of):
    _same_cohort(cohort_from_program(duck, "PRG-010", as_of, YEARS),
                 cohort_from_program(postgres_con, "PRG-010", as_of, YEARS))


@pytest.mark.parametrize("grades", [None, [0, 1, 2, 3]])
def test_a_school_cohort_resolves_the_same(duck, postgres_con, grades):
    _same_cohort(cohort_from_school(duck, "1047", YEARS, grades), cohort_from_school(postgres_con, "1047", YEARS, grades))


@pytest.mark.parametrize("definition", [
    {},
    {"program": "PRG-008"},
    {"school": "8496"},
    {"school": "1047", "grades": [0, 1, 2, 3]},
    {"student_ids": "cohort"},
], ids=["everyone", "program", "school", "school-grades", "ids"])
def test_members_by_year_are_the_same(duck, postgres_con, cohort_ids, definition):
    if definition.get("student_ids") == "cohort":
        definition = {"student_ids": cohort_ids}
    ours = members_by_year(duck, ["2023-2024", *YEARS], **definition)
    theirs = members_by_year(postgres_con, ["2023-2024", *YEARS], **definition)
    assert all(ours.values()), "every year should have members"
    assert ours == theirs


# -- decisions and plans -----------------------------------------------------------------------------

AS_OF = date(2026, 6, 1)
PARTNER = {"name": "Morgan Lee", "organization": "Reading Partners Collaborative", "role": "community_partner",
           "partner_id": "P-04", "nda_id": "NDA-0004"}


def _program_students(con, program: str) -> list[str]:
    tags = con.table("program_students").to_pandas()
    active = tags[(tags["program_id"] == program) & tags["dropped_on"].isna()]
    return sorted(set(active["student_id"]))[:16]


def _demo_like_requests(duck) -> list[tuple[dict, str]]:
    """The demo's six requests, pointed at the small district's programs, schools and staff."""
    roster = _program_students(duck, "PRG-010")
    common = {"received": "2026-05-18", "purpose": "cross-engine check", "audience": "tests"}
    return [
        ({"id": "PG-PARTNER-AGG", "requester": PARTNER, "level": "aggregate", "years": YEARS,
          "cohort": {"program": "PRG-010"}, "breakdowns": ["grade", "gender"],
          "measures": ["attendance_rate", "chronic_absence", "behavior_incident", "course_failure",
                       "assessment_benchmark"]}, "dmps"),
        ({"id": "PG-SCHOOL", "level": "aggregate", "years": YEARS, "cohort": {"school": "8496"},
          "requester": {"name": "Principal", "organization": "Brightwood Middle School", "role": "school_leader",
                        "staff_school_id": "8496", "staff_id": "T00086"},
          "measures": ["chronic_absence", "course_failure"],
          "breakdowns": ["grade", "race_ethnicity", "english_learner", "disability"]}, "bps"),
        ({"id": "PG-RESEARCH", "level": "deidentified", "years": YEARS,
          "requester": {"name": "Dr. Rivera", "organization": "State University School of Education",
                        "role": "researcher", "research_approval_id": "RA-2024-0001", "nda_id": "NDA-0006"},
          "cohort": {"school": "1047", "grades": [0, 1, 2, 3]},
          "fields": ["grade", "gender", "race_ethnicity", "english_learner", "attendance", "chronic_absence",
                     "assessments"]}, "bps"),
        ({"id": "PG-ROSTER", "requester": PARTNER, "level": "identified", "years": ["2025-2026"],
          "cohort": {"student_ids": roster},
          "fields": ["name", "grade", "attendance", "chronic_absence", "low_income"]}, "dmps"),
        ({"id": "PG-DIRECTORY", "requester": PARTNER, "level": "directory", "years": ["2025-2026"],
          "cohort": {"student_ids": roster}, "fields": ["name", "grade"]}, "bps"),
        ({"id": "PG-MEDIA", "level": "aggregate", "years": ["2025-2026"], "measures": ["behavior_incident"],
          "breakdowns": ["school"],
          "requester": {"name": "A. Reporter", "organization": "City Daily News", "role": "media"}}, "bps"),
    ], common


@pytest.mark.parametrize("index", range(6), ids=["partner-aggregate", "school-report", "research-extract",
                                                  "partner-roster", "partner-directory", "media"])
def test_release_plans_are_the_same(duck, postgres_con, index):
    requests, common = _demo_like_requests(duck)
    body, pack = requests[index]
    request = parse_request({**common, **body})
    policy = load_policy(pack)
    ours = make_plan(request, policy, duck, AS_OF)
    theirs = make_plan(request, policy, postgres_con, AS_OF)
    assert ours.to_dict() == theirs.to_dict()
    if ours.releasable:
        assert any(ours.decision.population.values()), "a releasable plan should cover students"


def test_the_demo_like_plans_are_not_all_refusals(duck):
    requests, common = _demo_like_requests(duck)
    outcomes = {body["id"]: make_plan(parse_request({**common, **body}), load_policy(pack), duck, AS_OF).decision.outcome
                for body, pack in requests}
    assert sum(outcome in ("approve", "partial") for outcome in outcomes.values()) >= 4, outcomes


# -- loading with `workbench data generate` -----------------------------------------------------------

def _generate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(WORKBENCH), "data", "generate", "--students", "300", *args],
                          capture_output=True, text=True)


def test_generate_loads_the_same_district_into_postgresql(postgres_database, tmp_path):
    duck_path = tmp_path / "district.duckdb"
    assert _generate("--seed", "3", "--out", str(duck_path), "--quiet").returncode == 0
    loaded = _generate("--seed", "3", "--out", postgres_database)
    assert loaded.returncode == 0, loaded.stderr
    assert "Wrote postgresql://" in loaded.stderr and "Traceback" not in loaded.stderr
    ours, theirs = connect(duck_path), connect(postgres_database)
    try:
        assert warehouse_info(theirs) == warehouse_info(ours)
        for table in SCHEMA:
            columns = list(SCHEMA[table])
            pd.testing.assert_frame_equal(
                ours.table(table).to_pandas().sort_values(columns, ignore_index=True),
                theirs.table(table).to_pandas().sort_values(columns, ignore_index=True), check_exact=True)
        # Loading again replaces the tables rather than adding to them.
        assert _generate("--seed", "4", "--out", postgres_database, "--quiet").returncode == 0
        info = warehouse_info(theirs)
        assert info["seed"] == "4"
        assert theirs.table("warehouse_info").count().to_pandas() == len(info)
    finally:
        theirs.disconnect()


def test_a_failed_load_leaves_the_previous_warehouse_whole(postgres_database, small_district_tables):
    write_warehouse(postgres_database, small_district_tables)
    broken = dict(small_district_tables)
    # PostgreSQL refuses NUL in text; warehouse_info is the last table, so every other one was
    # already replaced inside the transaction when the load fails.
    broken["warehouse_info"] = pd.DataFrame({"key": ["seed"], "value": ["bad\x00value"]})
    broken["students"] = small_district_tables["students"].head(10)
    with pytest.raises(WarehouseError, match="cannot load the warehouse into PostgreSQL"):
        write_warehouse(postgres_database, broken)
    con = connect(postgres_database)
    try:
        assert con.table("students").count().to_pandas() == len(small_district_tables["students"])
        assert warehouse_info(con)["seed"] == "7"
    finally:
        con.disconnect()


def test_an_unreachable_server_is_an_environment_error_before_any_work(postgres_server):
    dead = f"postgresql://workbench@127.0.0.1:{postgres_server.port}/no_such_database"
    result = _generate("--out", dead)
    assert result.returncode == 1
    assert "cannot reach the PostgreSQL warehouse" in result.stderr and "no_such_database" in result.stderr
    assert "Traceback" not in result.stderr and "Generating" not in result.stderr


def test_an_unknown_url_scheme_is_an_input_error(tmp_path):
    result = _generate("--out", "mysql://somewhere/district")
    assert result.returncode == 2 and "--out" in result.stderr


# -- without a server -----------------------------------------------------------------------------------

def test_without_server_binaries_the_tests_fail_with_what_to_install(tmp_path):
    """A machine without PostgreSQL must not pass the suite by skipping the cross-engine tests."""
    root = Path(__file__).resolve().parent.parent
    (tmp_path / "conftest.py").write_text(
        "import tests.postgres_server as server\n"
        "server.SERVER_GLOB = '/nonexistent/postgresql/*/bin'\n"
        "pytest_plugins = ['tests.postgres_fixtures']\n")
    (tmp_path / "test_needs_postgres.py").write_text("def test_it(postgres_server):\n    assert postgres_server\n")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", str(tmp_path)],
                            capture_output=True, text=True, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(root)})
    assert result.returncode == 1, result.stdout
    assert "1 error" in result.stdout and "skipped" not in result.stdout
    assert "apt-get install postgresql" in result.stdout


# -- a district's own tables behind views ---------------------------------------------------------------

def test_a_view_layer_over_a_districts_own_tables_gives_the_same_answers(duck, postgres_database,
                                                                        small_district_tables):
    """The district keeps its tables in schema `sis` under its own names; views in schema
    `workbench` present them in the documented schema (docs/warehouse.md shows the same)."""
    import psycopg

    write_warehouse(f"{postgres_database}/sis", small_district_tables)
    with psycopg.connect(postgres_database, autocommit=True) as connection:
        connection.execute("ALTER TABLE sis.students RENAME COLUMN student_id TO local_id")
        connection.execute("ALTER TABLE sis.students RENAME COLUMN race_ethnicity TO federal_race")
        connection.execute("CREATE SCHEMA workbench")
        connection.execute(
            "CREATE VIEW workbench.students AS SELECT local_id AS student_id, state_id, first_name, last_name, "
            "date_of_birth, gender, federal_race AS race_ethnicity FROM sis.students")
        for table in SCHEMA:
            if table != "students":
                connection.execute(f'CREATE VIEW workbench."{table}" AS SELECT * FROM sis."{table}"')
    con = connect(f"{postgres_database}/workbench")
    try:
        for breakdowns in (["race_ethnicity", "gender"], ["program"]):
            _same(compute(duck, "chronic_absence", YEARS, breakdowns), compute(con, "chronic_absence", YEARS, breakdowns))
        _same_cohort(cohort_from_school(duck, "1047", YEARS), cohort_from_school(con, "1047", YEARS))
    finally:
        release_facts(con)
        con.disconnect()


def test_student_rows_of_a_release_are_the_same(duck, postgres_con, cohort_ids):
    from workbench.report.student_level import FIELD_COLUMNS, student_rows

    fields = sorted(FIELD_COLUMNS)
    ours = student_rows(duck, cohort_ids, fields, "2025-2026")
    theirs = student_rows(postgres_con, cohort_ids, fields, "2025-2026")
    assert len(ours) > COHORT_SIZE // 2
    pd.testing.assert_frame_equal(ours.sort_values("student_id", ignore_index=True),
                                  theirs.sort_values("student_id", ignore_index=True), check_exact=True)
