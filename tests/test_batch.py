"""One request repeated for every school, and a batch of them filled in worker processes."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from workbench.batch import BatchError, requests_for_every_school
from workbench.config import DATA_DIR
from workbench.request import load_request
from workbench.warehouse import connect

DEMO = DATA_DIR / "requests" / "demo"
AS_OF = "2026-06-01"
WORKBENCH = Path(sys.executable).parent / "workbench"


def test_every_school_gets_its_own_request_addressed_to_its_principal(demo_warehouse, tmp_path):
    con = connect(demo_warehouse)
    files = requests_for_every_school(DEMO / "school_report.yml", con, tmp_path, date(2026, 6, 1))
    schools = con.table("schools").to_pandas()
    assert len(files) == len(schools)
    assignments = con.table("staff_assignments").to_pandas()
    principals = assignments[(assignments["role"] == "principal") & (assignments["school_year"] == "2025-2026")]
    template = load_request(DEMO / "school_report.yml")
    for path in files:
        request = load_request(path)
        school = request.cohort.school
        assert request.id == f"{template.id}-{school}"
        assert request.requester.staff_school_id == school
        assert request.requester.staff_id in set(principals.loc[principals["school_id"] == school, "staff_id"])
        assert request.measures == template.measures and request.years == template.years


def test_every_school_refuses_a_request_that_is_not_a_school_report(demo_warehouse, tmp_path):
    con = connect(demo_warehouse)
    with pytest.raises(BatchError, match="school leader"):
        requests_for_every_school(DEMO / "partner_aggregate.yml", con, tmp_path, date(2026, 6, 1))
    with pytest.raises(BatchError, match="unknown school"):
        requests_for_every_school(DEMO / "school_report.yml", con, tmp_path, date(2026, 6, 1), schools=["9999"])
    assert not list(tmp_path.iterdir())  # nothing written for a batch that cannot start


@pytest.mark.slow
def test_batch_every_school_fills_one_release_per_school(demo_warehouse, tmp_path):
    con = connect(demo_warehouse)
    sizes = con.table("enrollments").filter(lambda t: t.school_year == "2025-2026").group_by("school_id").aggregate(
        n=lambda t: t.student_id.nunique()).order_by("n").to_pandas()
    smallest, largest = sizes["school_id"].iloc[0], sizes["school_id"].iloc[-1]
    outcome = subprocess.run(
        [str(WORKBENCH), "batch", "--every-school", str(DEMO / "school_report.yml"), "--schools", f"{smallest},{largest}",
         "--requests-out", str(tmp_path / "requests"), "--policy", "bps", "--as-of", AS_OF,
         "--releases", str(tmp_path / "out"), "--warehouse", demo_warehouse, "--workers", "2", "--no-register"],
        capture_output=True, text=True,
    )
    assert outcome.returncode == 0, outcome.stderr[-2000:]
    assert "2 filled, 0 failed" in outcome.stdout
    released = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert released == sorted(f"DEMO-SCHOOL-1213-{s}" for s in (smallest, largest))
    for name in released:
        assert (tmp_path / "out" / name / "manifest.json").is_file()
        assert list((tmp_path / "out" / name / "tables").glob("*.csv"))


def test_batch_needs_a_folder_or_every_school(tmp_path):
    outcome = subprocess.run([str(WORKBENCH), "batch"], capture_output=True, text=True)
    assert outcome.returncode == 2 and "--every-school" in outcome.stderr
