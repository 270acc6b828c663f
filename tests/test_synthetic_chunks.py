"""A large district generated in chunks of schools (`workbench data generate --format parquet`).

Real districts of millions of students are cut into chunks of `--chunk-students`; here a small
district is cut into small chunks so the same code runs in seconds. What must hold: up to the chunk
size nothing changes, and above it the chunks add up to one valid district: no ID shared between
chunks, every reference resolves, the district-wide tables come once, the same seed writes the same
bytes, and DuckDB reads the folder as a warehouse.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.test_synthetic import frame_digest
from workbench.measures import compute
from workbench.schema import SCHEMA
from workbench.synthetic import generate_district
from workbench.synthetic.chunks import chunk_seed, chunk_sizes, generate_district_in_chunks
from workbench.warehouse import connect, warehouse_info

WORKBENCH = Path(sys.executable).parent / "workbench"
STUDENTS, CHUNK, SEED = 1_800, 600, 11

# (table, column) -> (table it must exist in, column there)
REFERENCES = {
    **{(table, "student_id"): ("students", "student_id") for table in (
        "student_years", "enrollments", "attendance", "section_students", "course_marks", "behavior_incidents",
        "assessments", "program_students", "consents", "directory_opt_outs")},
    **{(table, "school_id"): ("schools", "school_id") for table in (
        "enrollments", "attendance", "sections", "staff_assignments", "behavior_incidents", "programs")},
    ("sections", "staff_id"): ("staff", "staff_id"),
    ("staff_assignments", "staff_id"): ("staff", "staff_id"),
    ("section_students", "section_id"): ("sections", "section_id"),
    ("course_marks", "section_id"): ("sections", "section_id"),
    ("programs", "partner_id"): ("partners", "partner_id"),
    ("consents", "partner_id"): ("partners", "partner_id"),
    ("ndas", "partner_id"): ("partners", "partner_id"),
    ("program_students", "program_id"): ("programs", "program_id"),
}
KEYS = {
    "students": ["student_id"], "schools": ["school_id"], "staff": ["staff_id"], "sections": ["section_id"],
    "behavior_incidents": ["incident_id"], "consents": ["consent_id"], "programs": ["program_id"],
    "partners": ["partner_id"], "student_years": ["student_id", "school_year"],
}


def _generate(folder: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(WORKBENCH), "data", "generate", "--students", str(STUDENTS), "--seed", str(SEED), "--format", "parquet",
         "--out", str(folder), *extra], capture_output=True, text=True, env=dict(os.environ))


def _file_digests(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*.parquet"))}


@pytest.fixture(scope="module")
def chunked(tmp_path_factory):
    folder = tmp_path_factory.mktemp("chunked") / "district"
    result = _generate(folder, "--chunk-students", str(CHUNK))
    assert result.returncode == 0, result.stderr
    return folder, result.stderr


@pytest.fixture(scope="module")
def chunked_tables(chunked):
    con = connect(chunked[0])
    return {table: con.table(table).to_pandas() for table in SCHEMA}


def test_chunk_sizes_are_one_chunk_up_to_the_size_then_equal_chunks():
    assert chunk_sizes(25_000) == [25_000]
    assert chunk_sizes(500_000) == [500_000]
    assert chunk_sizes(3_333_333) == [476_191] * 3 + [476_190] * 4
    assert chunk_sizes(1_801, 600) == [451, 450, 450, 450]
    with pytest.raises(ValueError, match="at least 400"):
        chunk_sizes(1_000, 399)
    with pytest.raises(ValueError, match="do not fit"):
        chunk_sizes(40_000_000, 400)  # 100,000 chunks: more schools than 4-digit IDs


def test_up_to_the_chunk_size_the_district_is_the_one_piece_district():
    one_piece = generate_district(600, seed=SEED)
    chunks = list(generate_district_in_chunks(600, seed=SEED, chunk_students=600))
    assert len(chunks) == 1
    assert set(chunks[0]) == set(one_piece)
    for table, frame in one_piece.items():
        assert frame_digest(chunks[0][table]) == frame_digest(frame), table


def test_chunks_have_their_own_seeds():
    seeds = {chunk_seed(SEED, index) for index in range(50)}
    assert len(seeds) == 50 and chunk_seed(SEED, 3) == chunk_seed(SEED, 3) != chunk_seed(SEED + 1, 3)


def test_progress_is_shown_per_chunk(chunked):
    _, progress = chunked
    assert "in 3 chunks of up to 600 students" in progress
    for number in (1, 2, 3):
        assert f"chunk {number} of 3: attendance" in progress and f"chunk {number} of 3: writing" in progress


def test_every_chunk_adds_files_to_the_same_folders(chunked):
    folder, _ = chunked
    for year in ("2023-2024", "2024-2025", "2025-2026"):
        names = sorted(p.name for p in (folder / "attendance" / f"school_year={year}").iterdir())
        assert names == ["data_0.parquet", "data_1_0.parquet", "data_2_0.parquet"]
    # District-wide tables are written once, by the first chunk.
    for table in ("partners", "ndas", "research_approvals", "school_calendar", "warehouse_info"):
        assert {p.name for p in (folder / table).rglob("*.parquet")} == {"data_0.parquet"}, table


def test_duckdb_reads_the_chunked_folder_as_one_warehouse(chunked, chunked_tables):
    folder, _ = chunked
    con = connect(folder)
    info = warehouse_info(con)
    assert info["students_per_year"] == str(STUDENTS) and info["seed"] == str(SEED)
    assert info["chunks"].startswith("3 chunks")
    by_year = chunked_tables["student_years"].groupby("school_year").size()
    assert len(by_year) == 3 and (abs(by_year - STUDENTS) <= STUDENTS * 0.06).all()
    # A measure over the folder reaches the schools of every chunk.
    result = compute(con, "chronic_absence", ["2025-2026"], ["school"])
    schools = chunked_tables["schools"]
    assert set(result["school_id"]) <= set(schools["school_id"])
    blocks = {(int(school_id) - 1000) // (8999 // 3) for school_id in result["school_id"]}
    assert blocks == {0, 1, 2}
    assert result["students"].sum() == by_year["2025-2026"]  # every chunk's students, each counted once


def test_the_chunks_add_up_row_for_row(chunked_tables):
    expected: dict[str, int] = {}
    for tables in generate_district_in_chunks(STUDENTS, seed=SEED, chunk_students=CHUNK):
        for table, frame in tables.items():
            expected[table] = expected.get(table, 0) + len(frame)
    assert {table: len(frame) for table, frame in chunked_tables.items()} == expected
    assert expected["partners"] < 20 and expected["school_calendar"] == 6  # once, not three times


def test_no_id_is_shared_between_chunks_and_ids_keep_their_shapes(chunked_tables):
    for table, key in KEYS.items():
        frame = chunked_tables[table]
        assert not frame.duplicated(key).any(), table
    students = chunked_tables["students"]
    assert students["student_id"].str.fullmatch(r"\d{7}").all()
    assert students["state_id"].str.fullmatch(r"[1-9]\d{9}").all()
    assert not students["state_id"].duplicated().any()
    assert chunked_tables["schools"]["school_id"].str.fullmatch(r"\d{4}").all()
    staff_numbers = chunked_tables["staff"]["staff_id"].str[1:].astype(int)
    assert sorted(staff_numbers) == list(range(1, len(staff_numbers) + 1))
    incidents = chunked_tables["behavior_incidents"]["incident_id"]
    assert sorted(incidents) == list(range(1, len(incidents) + 1))


def test_every_reference_resolves_across_chunks(chunked_tables):
    for (table, column), (target, target_column) in REFERENCES.items():
        values = chunked_tables[table][column].dropna()
        assert len(values), (table, column)
        missing = set(values) - set(chunked_tables[target][target_column])
        assert not missing, f"{table}.{column}: {len(missing)} values not in {target}"
    # Students attend schools of their own chunk only: a section's students are its school's.
    sections = chunked_tables["sections"].set_index("section_id")
    members = chunked_tables["section_students"].join(sections[["school_id", "school_year"]], on="section_id")
    enrolled = chunked_tables["enrollments"][["student_id", "school_year", "school_id"]].drop_duplicates()
    joined = members.merge(enrolled, on=["student_id", "school_year", "school_id"], how="left", indicator=True)
    assert (joined["_merge"] == "both").all()


def test_same_seed_same_bytes_other_seed_other_district(chunked, tmp_path):
    folder, _ = chunked
    again = tmp_path / "again"
    assert _generate(again, "--chunk-students", str(CHUNK), "--quiet").returncode == 0
    assert _file_digests(again) == _file_digests(folder)
    other = tmp_path / "other"
    assert subprocess.run(
        [str(WORKBENCH), "data", "generate", "--students", str(STUDENTS), "--seed", str(SEED + 1), "--format",
         "parquet", "--out", str(other), "--chunk-students", str(CHUNK), "--quiet"]).returncode == 0
    theirs = pd.read_parquet(other / "students")
    ours = pd.read_parquet(folder / "students")
    assert set(theirs["student_id"]) != set(ours["student_id"])


def test_chunk_option_mistakes_are_named_and_write_nothing(tmp_path):
    duck = subprocess.run([str(WORKBENCH), "data", "generate", "--students", "300", "--chunk-students", "600",
                           "--out", str(tmp_path / "d.duckdb")], capture_output=True, text=True)
    assert duck.returncode == 2 and "--chunk-students" in duck.stderr and "--format parquet" in duck.stderr
    tiny = _generate(tmp_path / "tiny", "--chunk-students", "100")
    assert tiny.returncode == 2 and "--chunk-students" in tiny.stderr
    too_many = subprocess.run([str(WORKBENCH), "data", "generate", "--students", "10000000", "--chunk-students", "400",
                               "--format", "parquet", "--out", str(tmp_path / "big")], capture_output=True, text=True)
    assert too_many.returncode == 2 and "--chunk-students" in too_many.stderr and "do not fit" in too_many.stderr
    for result in (duck, tiny, too_many):
        assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []
