"""The `workbench data` commands as a user runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb

WORKBENCH = Path(sys.executable).parent / "workbench"


def run(*args):
    return subprocess.run([str(WORKBENCH), *args], capture_output=True, text=True)


def test_generate_writes_a_warehouse_and_shows_progress(tmp_path):
    out = tmp_path / "w.duckdb"
    result = run("data", "generate", "--students", "600", "--seed", "3", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "attendance" in result.stderr and "Wrote" in result.stderr
    con = duckdb.connect(str(out), read_only=True)
    per_year = con.execute("select count(distinct student_id) from student_years group by school_year").fetchall()
    assert len(per_year) == 3
    info = dict(con.execute("select key, value from warehouse_info").fetchall())
    assert info["seed"] == "3" and info["students_per_year"] == "600"
    assert not (tmp_path / "w.duckdb.partial").exists()


def test_info_reports_table_sizes_without_student_data(tmp_path):
    out = tmp_path / "w.duckdb"
    assert run("data", "generate", "--students", "600", "--out", str(out), "--quiet").returncode == 0
    result = run("data", "info", "--warehouse", str(out))
    assert result.returncode == 0, result.stderr
    assert "students_per_year: 600" in result.stdout
    assert "enrollments" in result.stdout
    first_id = duckdb.connect(str(out), read_only=True).execute("select min(student_id) from students").fetchone()[0]
    assert first_id not in result.stdout


def test_bad_arguments_are_clear_errors_without_tracebacks(tmp_path):
    result = run("data", "generate", "--years", "2025", "--out", str(tmp_path / "x.duckdb"))
    assert result.returncode == 2
    assert "not a school year" in result.stderr and "Traceback" not in result.stderr
    result = run("data", "generate", "--students", "10", "--out", str(tmp_path / "x.duckdb"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    result = run("data", "info", "--warehouse", str(tmp_path / "missing.duckdb"))
    assert result.returncode == 1 and "workbench data generate" in result.stderr
