"""The same district in DuckDB, in PostgreSQL and in Spark (Parquet, local mode) gives the same answers.

The three warehouses hold the small generated district (`small_district_tables`): DuckDB through
`write_warehouse(path)`, PostgreSQL through `write_warehouse(url)`, Spark through
`write_parquet_warehouse(folder)`, the writer behind `workbench data generate --format parquet`.
The released tables of a school report and a partner report are filled on each and compared byte
for byte; every measure by every breakdown, the cohort lookups and the release plans are compared
exactly, dtypes included. DuckDB reading the same Parquet folder is checked along the way.

One Spark session serves the whole test session (`spark_con`); each query on it costs a second or
two, so pairs of breakdowns are sampled here (tests/test_postgres.py runs all of them on PostgreSQL).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.test_postgres import AS_OF, COHORT_SIZE, YEARS, _demo_like_requests, _same, _same_cohort
from workbench.cohort import cohort_from_ids, cohort_from_program, cohort_from_school, members_by_year
from workbench.measures import BREAKDOWNS, MEASURES, cached_facts, compute, release_facts
from workbench.plan import make_plan
from workbench.policy import load_policy
from workbench.request import parse_request
from workbench.schema import SCHEMA
from workbench.warehouse import WarehouseError, connect, warehouse_info

WORKBENCH = Path(sys.executable).parent / "workbench"


@pytest.fixture(scope="module")
def duck(small_con):
    return small_con


@pytest.fixture(scope="module")
def duck_parquet(parquet_district):
    """DuckDB reading the Parquet folder in place (no DuckDB file)."""
    return connect(parquet_district)


@pytest.fixture(scope="module")
def cohort_ids(duck) -> list[str]:
    import random

    enrolled = sorted(set(duck.table("student_years").filter(lambda t: t.school_year.isin(YEARS))
                          .to_pandas()["student_id"]))
    return sorted(random.Random(17).sample(enrolled, COHORT_SIZE))


# -- the Parquet warehouse ---------------------------------------------------------------------------

def test_the_parquet_folder_is_partitioned_by_school_year(parquet_district):
    folder = Path(parquet_district)
    years = sorted(p.name for p in (folder / "attendance").iterdir())
    assert years == ["school_year=2023-2024", "school_year=2024-2025", "school_year=2025-2026"]
    assert list((folder / "schools").glob("*.parquet")) and not list((folder / "schools").glob("school_year=*"))


@pytest.mark.parametrize("table", sorted(SCHEMA))
def test_every_table_has_the_same_schema_and_rows(duck, duck_parquet, spark_con, table):
    columns = list(SCHEMA[table])
    ours = duck.table(table).to_pandas().sort_values(columns, ignore_index=True)
    for other in (duck_parquet, spark_con):
        assert other.table(table).schema() == duck.table(table).schema(), other.name
        theirs = other.table(table).to_pandas().sort_values(columns, ignore_index=True)
        pd.testing.assert_frame_equal(ours, theirs, check_exact=True)


def test_the_connection_is_spark_in_local_mode(spark_con):
    assert spark_con.name == "pyspark"
    assert spark_con.version.startswith("4.")
    session = spark_con._session
    assert session.sparkContext.master.startswith("local[")
    assert session.conf.get("spark.ui.enabled") == "false"


# -- measures ------------------------------------------------------------------------------------------

SINGLE = [()] + [(b,) for b in BREAKDOWNS]
PAIRS = [("school", "grade"), ("race_ethnicity", "gender"), ("english_learner", "program")]


@pytest.mark.parametrize("measure", list(MEASURES))
def test_every_measure_by_every_breakdown_matches(duck, duck_parquet, spark_con, measure):
    for breakdowns in SINGLE:
        ours = compute(duck, measure, YEARS, breakdowns)
        _same(ours, compute(spark_con, measure, YEARS, breakdowns))
        _same(ours, compute(duck_parquet, measure, YEARS, breakdowns))


@pytest.mark.parametrize("breakdowns", PAIRS, ids="+".join)
def test_pairs_of_breakdowns_match(duck, spark_con, breakdowns):
    for measure in ("attendance_rate", "assessment_benchmark"):
        _same(compute(duck, measure, YEARS, breakdowns), compute(spark_con, measure, YEARS, breakdowns))


@pytest.mark.parametrize("measure", list(MEASURES))
def test_every_measure_for_a_cohort_with_comparisons_matches(duck, spark_con, cohort_ids, measure):
    options = {"prior_year": True, "district_comparison": True}
    _same(compute(duck, measure, YEARS, ["grade"], cohort_ids, **options),
          compute(spark_con, measure, YEARS, ["grade"], cohort_ids, **options))


def test_facts_stay_in_spark_as_a_cached_view(spark_con):
    facts = cached_facts(spark_con, YEARS)
    assert cached_facts(spark_con, YEARS) is facts
    name = facts.op().name
    session = spark_con._session
    assert session.catalog.isCached(name)
    assert facts.count().to_pandas() == compute(spark_con, "enrolled", YEARS, ())["students"].sum()
    release_facts(spark_con)
    assert name not in {t.name for t in session.catalog.listTables()}


# -- cohorts ---------------------------------------------------------------------------------------------

def test_a_messy_id_list_resolves_the_same(duck, spark_con, cohort_ids):
    students = duck.table("students").to_pandas().set_index("student_id")
    never_enrolled = sorted(set(students.index) - set(cohort_ids))
    state_ids = [students.loc[sid, "state_id"] for sid in cohort_ids[:5]]
    typed = ([sid.lstrip("0") for sid in cohort_ids[:20]] + [f" {sid}.0" for sid in cohort_ids[20:40]]
             + state_ids + cohort_ids[:3] + ["9999999", "12345678", "abc", ""] + never_enrolled[:4])
    for ids in (typed, typed + cohort_ids):  # an IN list, then a table Spark joins against
        _same_cohort(cohort_from_ids(duck, ids, YEARS), cohort_from_ids(spark_con, ids, YEARS))


@pytest.mark.parametrize("as_of", [None, date(2026, 3, 2)])
def test_a_program_cohort_resolves_the_same(duck, spark_con, as_of):
    _same_cohort(cohort_from_program(duck, "PRG-010", as_of, YEARS),
                 cohort_from_program(spark_con, "PRG-010", as_of, YEARS))


@pytest.mark.parametrize("grades", [None, [0, 1, 2, 3]])
def test_a_school_cohort_resolves_the_same(duck, spark_con, grades):
    _same_cohort(cohort_from_school(duck, "1047", YEARS, grades), cohort_from_school(spark_con, "1047", YEARS, grades))


def test_members_by_year_are_the_same(duck, spark_con, cohort_ids):
    for definition in ({}, {"program": "PRG-008"}, {"school": "1047", "grades": [0, 1, 2, 3]},
                       {"student_ids": cohort_ids}):
        ours = members_by_year(duck, ["2023-2024", *YEARS], **definition)
        assert all(ours.values()), definition
        assert ours == members_by_year(spark_con, ["2023-2024", *YEARS], **definition)


# -- plans and student rows --------------------------------------------------------------------------------

@pytest.mark.parametrize("index", range(6), ids=["partner-aggregate", "school-report", "research-extract",
                                                  "partner-roster", "partner-directory", "media"])
def test_release_plans_are_the_same(duck, spark_con, index):
    requests, common = _demo_like_requests(duck)
    body, pack = requests[index]
    request = parse_request({**common, **body})
    policy = load_policy(pack)
    assert make_plan(request, policy, duck, AS_OF).to_dict() == make_plan(request, policy, spark_con, AS_OF).to_dict()


def test_student_rows_of_a_release_are_the_same(duck, spark_con, cohort_ids):
    from workbench.report.student_level import FIELD_COLUMNS, student_rows

    fields = sorted(FIELD_COLUMNS)
    ours = student_rows(duck, cohort_ids, fields, "2025-2026")
    theirs = student_rows(spark_con, cohort_ids, fields, "2025-2026")
    assert len(ours) > COHORT_SIZE // 2
    pd.testing.assert_frame_equal(ours.sort_values("student_id", ignore_index=True),
                                  theirs.sort_values("student_id", ignore_index=True), check_exact=True)


# -- released tables, byte for byte, on all three engines ----------------------------------------------------

# Requests of _demo_like_requests (by index), with changes: the small district's program has too
# few students for the partner report by gender too (the release would be refused on any engine).
REPORTS = {"school-report": (1, {}), "partner-report": (0, {"breakdowns": ["grade"]})}


@pytest.fixture(scope="module")
def releases(duck, small_district_path, postgres_district_url, parquet_district, tmp_path_factory):
    """Each report filled (`workbench.fill.fill`, the template run in a kernel) on each engine.

    One warm kernel (as `workbench batch` keeps) runs all six fills, so Spark starts once in it."""
    from workbench.config import TEMPLATES_DIR
    from workbench.fill import fill
    from workbench.kernels import WarmKernel
    from workbench.release.store import ReleaseStore

    requests, common = _demo_like_requests(duck)
    folder = tmp_path_factory.mktemp("requests")
    engines = {"duckdb": small_district_path, "postgresql": postgres_district_url,
               "spark": f"spark://{parquet_district}"}
    filled: dict[str, dict[str, Path]] = {}
    kernel = WarmKernel(TEMPLATES_DIR)
    try:
        for engine, location in engines.items():
            store = ReleaseStore(tmp_path_factory.mktemp(f"releases-{engine}"))
            for report, (index, changes) in REPORTS.items():
                body, pack = requests[index]
                request_file = folder / f"{report}.yml"
                request_file.write_text(yaml.safe_dump({**common, **body, **changes}))
                result = fill(request_file, pack, AS_OF, store=store, warehouse=location, kernel=kernel)
                filled.setdefault(report, {})[engine] = result.release.path
    finally:
        kernel.close()
    return filled


def _without_timings(protection: dict) -> dict:
    """What protection did to each table, less how long its audit took."""
    return {name: {**table, "audit": {k: v for k, v in table.get("audit", {}).items() if k != "seconds"}}
            for name, table in protection.items()}


@pytest.mark.parametrize("report", list(REPORTS))
def test_released_tables_are_byte_identical_on_every_engine(releases, report):
    folders = releases[report]
    files = {engine: sorted(p.relative_to(folder) for p in (folder / "tables").rglob("*") if p.is_file())
             for engine, folder in folders.items()}
    assert len(files["duckdb"]) >= 2 and any(p.suffix == ".csv" for p in files["duckdb"])
    for engine in ("postgresql", "spark"):
        assert files[engine] == files["duckdb"], engine
        for relative in files["duckdb"]:
            assert (folders[engine] / relative).read_bytes() == (folders["duckdb"] / relative).read_bytes(), \
                f"{engine}: {relative}"
    protections = {engine: _without_timings(json.loads((folder / "manifest.json").read_text())["protection"])
                   for engine, folder in folders.items()}
    assert protections["spark"] == protections["duckdb"] == protections["postgresql"]
    assert any(t.get("primary", 0) or t.get("suppressed", 0) for t in protections["duckdb"].values()), \
        "a report with nothing suppressed proves little about protection"


# -- a district's own tables behind a views file --------------------------------------------------------------

def test_a_views_file_maps_a_districts_own_tables(duck, parquet_district, tmp_path):
    """The district's student table has its own name and column names; a views file presents it
    in the documented schema (docs/warehouse.md shows the same)."""
    import duckdb
    import shutil

    own = tmp_path / "sis"
    shutil.copytree(parquet_district, own)
    shutil.rmtree(own / "students")
    (own / "sis_student").mkdir()
    duckdb.execute(f"COPY (SELECT student_id AS local_id, state_id, first_name, last_name, date_of_birth, gender, "
                   f"race_ethnicity AS federal_race FROM read_parquet('{parquet_district}/students/*.parquet')) "
                   f"TO '{own}/sis_student/part.parquet' (FORMAT parquet)")
    views = tmp_path / "views.sql"
    views.write_text(
        "-- the district's student table, renamed to the workbench schema\n"
        f"CREATE OR REPLACE TEMPORARY VIEW students AS\n"
        f"SELECT local_id AS student_id, state_id, first_name, last_name, date_of_birth, gender,\n"
        f"       federal_race AS race_ethnicity\n"
        f"FROM parquet.`{own}/sis_student`;\n")
    with pytest.raises(WarehouseError, match="lacks tables: students"):
        connect(f"spark://{own}")
    con = connect(f"spark://{own}?views={views}")
    try:
        _same(compute(duck, "chronic_absence", YEARS, ["race_ethnicity"]),
              compute(con, "chronic_absence", YEARS, ["race_ethnicity"]))
    finally:
        con.disconnect()


# -- the command line ------------------------------------------------------------------------------------------

def _workbench(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(WORKBENCH), *args], capture_output=True, text=True, env={**os.environ, **env})


def test_generate_writes_the_same_district_as_parquet(tmp_path):
    duck_path, folder = tmp_path / "district.duckdb", tmp_path / "parquet"
    common = ("data", "generate", "--students", "300", "--seed", "3", "--quiet")
    assert _workbench(*common, "--out", str(duck_path)).returncode == 0
    written = _workbench(*common, "--format", "parquet", "--out", str(folder))
    assert written.returncode == 0, written.stderr
    ours, theirs = connect(duck_path), connect(folder)
    assert warehouse_info(theirs) == warehouse_info(ours)
    for table, columns in SCHEMA.items():
        pd.testing.assert_frame_equal(
            ours.table(table).to_pandas().sort_values(list(columns), ignore_index=True),
            theirs.table(table).to_pandas().sort_values(list(columns), ignore_index=True), check_exact=True)
    # Writing again replaces the folder: another seed, another district, no leftovers.
    assert _workbench(*common[:-3], "--seed", "4", "--quiet", "--format", "parquet", "--out", str(folder)).returncode == 0
    assert warehouse_info(connect(folder))["seed"] == "4"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["district.duckdb", "parquet"]


def test_generate_refuses_to_replace_a_folder_that_is_not_a_warehouse(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    result = _workbench("data", "generate", "--students", "300", "--format", "parquet", "--out", str(folder))
    assert result.returncode == 2 and "--out" in result.stderr and "not a Parquet warehouse" in result.stderr
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]
    url = _workbench("data", "generate", "--format", "parquet", "--out", "postgresql://me@localhost/db")
    assert url.returncode == 2 and "--out" in url.stderr and "Traceback" not in url.stderr


def test_without_java_spark_is_an_environment_error_with_what_to_install(parquet_district):
    result = _workbench("data", "info", "--warehouse", f"spark://{parquet_district}", JAVA_HOME="/nonexistent")
    assert result.returncode == 1, result.stderr
    assert "Spark did not start" in result.stderr and "default-jre-headless" in result.stderr
    assert "Traceback" not in result.stderr
