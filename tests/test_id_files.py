"""Cohort ID files: the ID column is found by what it holds, and nothing else in the file travels on.

The attacks are the two the outside tester found: a roster without a header whose first column is
a row number (``17,0012684`` selected student 0000017, a real student, instead of 0012684), and a
roster titled ``Student Number`` beside a name column (the names were read as IDs and reached
the decision and the register).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.config import DATA_DIR
from workbench.forms import cohort_logic
from workbench.id_files import IdFileError, ids_from_rows, read_id_file
from workbench.warehouse import connect

ROOT = Path(__file__).resolve().parents[1]
WORKBENCH = Path(sys.executable).parent / "workbench"
AGGREGATE = (DATA_DIR / "requests" / "demo" / "partner_aggregate.yml").read_text()


@pytest.mark.parametrize(("rows", "expected", "kind"), [
    ([["17", "0012684"], ["18", "0012685"]], ["0012684", "0012685"], "auto"),  # row number first
    ([["0012684", "17"], ["0012685", "3"]], ["0012684", "0012685"], "auto"),  # a count after the ID
    ([["Student Number", "Name"], ["0012684", "Ana Lopez"], ["12685", "Ben Smith"]], ["0012684", "12685"], "auto"),
    ([["Name", "Student Number"], ["Ana Lopez", "0012684"]], ["0012684"], "auto"),
    ([["12684"], ["41275.0"]], ["12684", "41275.0"], "auto"),  # a spreadsheet that dropped zeros
    ([["SASID", "Grade"], ["2000000001", "5"]], ["2000000001"], "state"),
    ([["student_id", "state_id"], ["0012684", "2000000001"]], ["0012684"], "auto"),
    ([["#", "student_id"], ["1", "12684"], ["2", "41275"]], ["12684", "41275"], "auto"),  # named beats position
    ([["0012684", "Ana", "2014-03-01"], ["0012685", "Ben", "2015-05-02"]], ["0012684", "0012685"], "auto"),
])
def test_the_id_column_is_found_by_its_contents(rows, expected, kind):
    assert ids_from_rows(rows, "roster.csv") == (expected, kind)


@pytest.mark.parametrize(("rows", "message"), [
    ([["1", "12684"], ["2", "41275"]], "cannot tell which column"),  # two columns of short numbers
    ([["0012684", "2000000001"], ["0012685", "2000000002"]], "cannot tell which column"),  # district and state, untitled
    ([["ID", "Name"], ["0012684", "x"], ["Ana Lopez", "y"], ["0012686", "z"]], "row 3 holds something else"),
    ([["Name", "Birth date"], ["Ana Lopez", "2014-03-01"]], "no column holds student IDs"),
])
def test_an_ambiguous_or_mixed_file_is_refused_without_quoting_it(rows, message):
    with pytest.raises(IdFileError, match=message) as caught:
        ids_from_rows(rows, "roster.csv")
    assert "Ana" not in str(caught.value) and "2014" not in str(caught.value)


def test_csv_with_semicolons_and_excel_files_are_read_the_same_way(tmp_path):
    csv_path = tmp_path / "roster.csv"
    csv_path.write_text("Nummer;Name\n0012684;Ana Lopez\n0012685;Ben Smith\n", encoding="utf-8")
    assert read_id_file(csv_path) == (["0012684", "0012685"], "auto")
    import pandas as pd

    xlsx = tmp_path / "roster.xlsx"
    pd.DataFrame({"Student Number": [12684, 41275], "Name": ["Ana Lopez", "Ben Smith"]}).to_excel(xlsx, index=False)
    assert read_id_file(xlsx) == (["12684", "41275"], "auto")
    (tmp_path / "broken.xlsx").write_bytes(b"PK\x03\x04 not really a workbook")
    with pytest.raises(IdFileError, match="cannot be read as an Excel workbook"):
        read_id_file(tmp_path / "broken.xlsx")


def test_an_id_file_over_the_limit_is_refused_before_it_is_read(tmp_path, monkeypatch):
    path = tmp_path / "ids.csv"
    path.write_text("student_id\n" + "0012684\n" * 2000)
    monkeypatch.setenv("WORKBENCH_MAX_ID_FILE_BYTES", "1000")
    with pytest.raises(IdFileError, match="limit|read up to 1,000 bytes"):
        read_id_file(path)


def test_the_upload_in_the_form_uses_the_same_reader_and_shows_no_names(small_con):
    content = b"Student Number,Name\n0012684,Ana Lopez\nBen Smith,0012685\n0012686,Cara Jones\n"
    with pytest.raises(IdFileError, match="row 3") as caught:
        cohort_logic.choice_from_upload("roster.csv", content)
    assert "Ben" not in str(caught.value)
    # Pasted text with a name in it: the name is reported by position, never repeated.
    choice = cohort_logic.choice_from_text("0012684 Lopez 12A")
    summary = cohort_logic.summarize(small_con, choice, ["2025-2026"])
    shown = " ".join(summary.problems.get("malformed", []))
    assert "Lopez" not in shown and "entry 2" in shown and "12A" in shown
    assert "Lopez" not in cohort_logic.summary_html(summary)


def _program_students(warehouse: str, count: int = 3):
    con = connect(warehouse)
    tags = con.table("program_students").filter(lambda t: t.program_id == "PRG-007")
    students = con.table("students")
    frame = (tags.join(students, "student_id").select("student_id", "first_name", "last_name")
             .distinct().order_by("student_id").limit(count).to_pandas())
    return frame


def _cli(*args: str):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([str(WORKBENCH), *args], capture_output=True, text=True, env=env, timeout=600)


def _request_with_file(tmp_path: Path, name: str, content: str) -> Path:
    (tmp_path / name).write_text(content)
    request = tmp_path / "request.yml"
    request.write_text(AGGREGATE.replace("  program: PRG-007", f"  student_ids: {name}"))
    return request


def test_a_headerless_roster_with_row_numbers_selects_the_students_it_lists(tmp_path, demo_warehouse):
    chosen = _program_students(demo_warehouse)
    ids = chosen["student_id"].tolist()
    assert "0000017" in set(connect(demo_warehouse).table("students").student_id.to_pandas())  # the trap is real
    rows = "".join(f"{17 + n},{student}\n" for n, student in enumerate(ids))
    request = _request_with_file(tmp_path, "roster.csv", rows)
    result = _cli("request", "check", str(request), "--policy", "dmps", "--as-of", "2026-06-01", "--json",
                  "--warehouse", demo_warehouse)
    assert result.returncode == 0, result.stderr
    decision = json.loads(result.stdout)
    assert sorted(s["student_id"] for s in decision["students"]) == sorted(ids)
    assert decision["cohort"]["unmatched"] == 0


def test_names_beside_the_ids_never_reach_the_decision_or_the_register(tmp_path, demo_warehouse):
    chosen = _program_students(demo_warehouse)
    rows = "Student Number,Name\n" + "".join(
        f"{r.student_id},{r.first_name} {r.last_name}\n" for r in chosen.itertuples(index=False))
    request = _request_with_file(tmp_path, "roster.csv", rows)
    register = f"sqlite:///{tmp_path / 'register.sqlite'}"
    result = _cli("request", "register", str(request), "--policy", "dmps", "--as-of", "2026-06-01",
                  "--warehouse", demo_warehouse, "--register", register)
    assert result.returncode == 0, result.stderr
    shown = _cli("request", "show", "DEMO-PARTNER-AGG", "--json", "--register", register)
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    assert sorted(record["request"]["cohort"]["student_ids"]) == sorted(chosen["student_id"])
    students = record["decisions"][-1]["decision"]["students"]
    assert sorted(s["student_id"] for s in students) == sorted(chosen["student_id"])
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("register.sqlite*")).decode("utf-8", "replace")
    everything = shown.stdout + result.stdout + result.stderr + stored
    for r in chosen.itertuples(index=False):
        assert f"{r.first_name} {r.last_name}" not in everything
