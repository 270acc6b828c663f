"""`workbench fill`, the release check and `workbench batch`, end to end on the demo district."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import nbformat
import pandas as pd
import pytest

from workbench.config import DATA_DIR
from workbench.fill import FillError, fill
from workbench.register import RequestRegister
from workbench.release.store import ReleaseStore

DEMO = DATA_DIR / "requests" / "demo"
AS_OF = "2026-06-01"
WORKBENCH = Path(sys.executable).parent / "workbench"


@pytest.fixture(scope="module")
def aggregate_release(demo_warehouse, tmp_path_factory):
    store = ReleaseStore(tmp_path_factory.mktemp("releases"))
    register = RequestRegister(f"sqlite:///{tmp_path_factory.mktemp('register') / 'r.sqlite'}")
    result = fill(DEMO / "partner_aggregate.yml", "dmps", AS_OF, store=store, warehouse=demo_warehouse, register=register)
    return result, store, register


def test_aggregate_release_has_every_artifact_and_a_manifest(aggregate_release):
    result, store, _ = aggregate_release
    folder = result.release.path
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["policy"]["name"] == "dmps" and len(manifest["policy"]["content_hash"]) == 64
    assert manifest["decision"]["outcome"] == "approve" and manifest["decision"]["level"] == "aggregate"
    assert manifest["software"]["workbench"]
    assert {"report.ipynb", "tables/by_grade.csv", "tables/by_grade.xlsx", "charts/by_grade_chronic_absence.png"} <= set(manifest["files"])
    assert store.verify(result.request_id) == []
    assert all(t["audit_safe"] for t in manifest["protection"].values())
    assert manifest["release_check"]["passed"]
    table = pd.read_csv(folder / "tables" / "by_grade.csv", dtype=str, keep_default_na=False)
    assert "status" not in table.columns and "reason" not in table.columns  # one mark says nothing more
    published = table.loc[table["students"] != "*", "students"].astype(int)
    assert ((published == 0) | (published > 10)).all()  # dmps: groups of 10 or fewer are small
    notebook = nbformat.read(folder / "report.ipynb", as_version=4)
    assert notebook.metadata.kernelspec.name == "workbench"
    assert "papermill" not in notebook.metadata


def test_each_released_year_gives_an_attacker_nothing(aggregate_release):
    from tests.release_attacker import Facts, Method, pinned, tables_by_year

    result, store, _ = aggregate_release
    folder = result.release.path
    manifest = json.loads((folder / "manifest.json").read_text())
    facts = {
        "behavior_incident": Facts(denominator_is_group=True),
        "course_failure": Facts(zero_where={"grade": {"K", "1", "2", "3", "4", "5"}}),
        "assessment_benchmark_ela": Facts(zero_where={"grade": {"K", "1", "2", "9", "11", "12"}}),
        "assessment_benchmark_math": Facts(zero_where={"grade": {"K", "1", "2", "9", "11", "12"}}),
    }
    years = tables_by_year(folder, manifest, facts)
    assert years
    for year, tables in years.items():
        assert pinned(tables, Method(comparison="<=", numerator_threshold=11), facts) == [], year


def test_rerunning_the_same_request_is_idempotent(aggregate_release, demo_warehouse):
    result, store, _ = aggregate_release
    again = fill(DEMO / "partner_aggregate.yml", "dmps", AS_OF, store=store, warehouse=demo_warehouse)
    assert again.release.reused and again.release.digest == result.release.digest


def test_the_release_is_recorded_in_the_register(aggregate_release):
    result, _, register = aggregate_release
    assert register.status(result.request_id) == "released"
    assert [e.status for e in register.history(result.request_id)][-3:] == ["approved", "filled", "released"]


def test_a_redirected_request_gets_a_letter_not_data(demo_warehouse, tmp_path):
    result = fill(DEMO / "media.yml", "bps", AS_OF, store=ReleaseStore(tmp_path), warehouse=demo_warehouse)
    files = sorted(p.name for p in result.release.path.iterdir())
    assert files == ["decision.json", "letter.md", "manifest.json"]
    letter = (result.release.path / "letter.md").read_text()
    assert "Communications Office" in letter and "Superintendent's Circular ODA-03" in letter
    assert "003_a1c0b4a5b6af9e75.txt" not in letter, "people read document titles, not file names"


def test_a_failing_template_leaves_no_release_and_names_the_cell(demo_warehouse, tmp_path, monkeypatch):
    import workbench.fill

    templates = tmp_path / "templates"
    shutil.copytree(workbench.fill.TEMPLATES_DIR, templates)
    notebook = nbformat.read(templates / "partner_aggregate.ipynb", as_version=4)
    notebook.cells.insert(4, nbformat.v4.new_code_cell("raise RuntimeError('warehouse went away')"))
    nbformat.write(notebook, templates / "partner_aggregate.ipynb")
    monkeypatch.setattr(workbench.fill, "TEMPLATES_DIR", templates)
    store = ReleaseStore(tmp_path / "releases")
    with pytest.raises(FillError, match=r"partner_aggregate.ipynb failed: cell \d+ raised RuntimeError") as failure:
        fill(DEMO / "partner_aggregate.yml", "dmps", AS_OF, store=store, warehouse=demo_warehouse)
    assert "warehouse went away" not in str(failure.value)  # error text may quote data: never repeated
    assert list((tmp_path / "releases").iterdir()) == []  # no release, no staging folder left


def _tampered_copy(release: Path, tmp_path: Path, html_cell: str) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(release, copy)
    for path in copy.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    notebook = nbformat.read(copy / "report.ipynb", as_version=4)
    cell = nbformat.v4.new_code_cell("x", outputs=[nbformat.v4.new_output("display_data", data={"text/html": html_cell, "text/plain": "x"})])
    notebook.cells.append(cell)
    nbformat.write(notebook, copy / "report.ipynb")
    return copy


def run_check(folder: Path, warehouse: str):
    return subprocess.run([str(WORKBENCH), "release", "check", str(folder), "--warehouse", warehouse],
                          capture_output=True, text=True)


def test_release_check_passes_the_real_release(aggregate_release, demo_warehouse):
    result, _, _ = aggregate_release
    outcome = run_check(result.release.path, demo_warehouse)
    assert outcome.returncode == 0, outcome.stdout


def test_release_check_refuses_a_small_count_inserted_into_the_notebook(aggregate_release, demo_warehouse, tmp_path):
    result, _, _ = aggregate_release
    copy = _tampered_copy(result.release.path, tmp_path,
                          "<table><tr><th>Grade</th><th>Students</th></tr><tr><td>9</td><td>4</td></tr></table>")
    outcome = run_check(copy, demo_warehouse)
    assert outcome.returncode == 1
    assert "small_count" in outcome.stdout and "report.ipynb" in outcome.stdout


def test_release_check_refuses_a_student_id_inserted_into_the_notebook(aggregate_release, demo_warehouse, tmp_path):
    result, _, _ = aggregate_release
    student_id = duckdb.connect(demo_warehouse, read_only=True).execute("select min(student_id) from students").fetchone()[0]
    copy = _tampered_copy(result.release.path, tmp_path, f"<p>see student {student_id}</p>")
    outcome = run_check(copy, demo_warehouse)
    assert outcome.returncode == 1
    assert "student_id" in outcome.stdout
    assert student_id not in outcome.stdout  # the report never repeats the identifier


def test_batch_fills_what_it_can_and_lists_what_failed(demo_warehouse, tmp_path):
    folder = tmp_path / "requests"
    folder.mkdir()
    shutil.copy(DEMO / "media.yml", folder / "a_media.yml")
    (folder / "b_broken.yml").write_text("id: BROKEN\nrequester: {}\n")
    outcome = subprocess.run(
        [str(WORKBENCH), "batch", str(folder), "--policy", "bps", "--as-of", AS_OF, "--releases", str(tmp_path / "out"),
         "--warehouse", demo_warehouse, "--workers", "2", "--no-register"],
        capture_output=True, text=True,
    )
    assert outcome.returncode == 1
    assert "1 filled, 1 failed" in outcome.stdout
    assert "a_media.yml" in outcome.stdout and "redirect" in outcome.stdout
    assert "b_broken.yml" in outcome.stderr
    assert (tmp_path / "out" / "DEMO-MEDIA" / "letter.md").exists()


def test_the_manifest_records_each_tables_loss_and_fill_reports_the_grade_bands_offer(aggregate_release):
    result, _, _ = aggregate_release
    folder = result.release.path
    manifest = json.loads((folder / "manifest.json").read_text())
    offers = []
    for name, summary in manifest["protection"].items():
        # The offer describes a table that was not released and is not audited: analyst only.
        assert "bands_offer" not in summary
        summary = result.tables[name]
        table = pd.read_csv(folder / "tables" / f"{name}.csv", dtype=str, keep_default_na=False)
        loss = summary["information_loss"]
        assert loss["cells"] == len(table)
        assert loss["cells_hidden"] == int((table["students"] == "*").sum())
        assert loss["students_hidden"] == summary["students_hidden"]
        for offer in summary.get("bands_offer", []):
            assert offer["as_asked"] == loss  # the table as released beside the banded version alone
            assert offer["banded"]["students_hidden"] < loss["students_hidden"]
            offers.append(name)
    # In 2024-2025 the program's small grades cost students that grade bands would not.
    assert offers
    assert all(f"{name}: by grade band" in result.summary() for name in offers)
