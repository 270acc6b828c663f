"""Every example request the documentation points to fills through the real CLI.

A newcomer's first step is to copy an example: each one must give a release (or a decision
letter) that passes `workbench release check`, never an error. Four of them once failed because
the templates published a table by grade that the request had not asked for.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.report.aggregate import COLUMN_FOR

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "data" / "requests" / "examples").glob("*.yml"))
WORKBENCH = Path(sys.executable).parent / "workbench"


@pytest.mark.slow
@pytest.mark.parametrize("request_file", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_an_example_request_fills_and_its_release_checks(request_file, demo_warehouse, tmp_path):
    env = {**os.environ, "WORKBENCH_WAREHOUSE": demo_warehouse,
           "WORKBENCH_REGISTER": f"sqlite:///{tmp_path / 'register.sqlite'}",
           "WORKBENCH_LEDGER_KEYS": str(tmp_path / "keys.json")}
    releases = tmp_path / "releases"
    filled = subprocess.run([str(WORKBENCH), "fill", str(request_file), "--as-of", "2026-06-01",
                             "--releases", str(releases)], env=env, capture_output=True, text=True, timeout=600)
    assert filled.returncode == 0, filled.stderr[-2000:]
    (folder,) = [p for p in releases.iterdir() if p.is_dir() and not p.name.startswith(".")]
    manifest = json.loads((folder / "manifest.json").read_text())
    granted = set(manifest["decision"].get("breakdowns") or [])
    for name, entry in (manifest.get("released") or {}).items():
        if name.startswith("tables/"):
            assert set(manifest["protection"][Path(name).stem]["dims"]) <= {COLUMN_FOR.get(b, b) for b in granted}, name
    checked = subprocess.run([str(WORKBENCH), "release", "check", str(folder)], env=env, capture_output=True,
                             text=True, timeout=300)
    assert checked.returncode == 0, checked.stdout[-2000:] + checked.stderr[-2000:]


def test_an_aggregate_request_without_a_breakdown_stops_before_anything_is_written(demo_warehouse, tmp_path):
    import yaml

    request = yaml.safe_load((EXAMPLES[0].parent / "state_agency.yml").read_text())  # an aggregate request
    request["breakdowns"] = ["program"]
    path = tmp_path / "no-breakdown.yml"
    path.write_text(yaml.safe_dump(request))
    env = {**os.environ, "WORKBENCH_WAREHOUSE": demo_warehouse,
           "WORKBENCH_REGISTER": f"sqlite:///{tmp_path / 'register.sqlite'}",
           "WORKBENCH_LEDGER_KEYS": str(tmp_path / "keys.json")}
    filled = subprocess.run([str(WORKBENCH), "fill", str(path), "--as-of", "2026-06-01",
                             "--releases", str(tmp_path / "releases")], env=env, capture_output=True, text=True,
                            timeout=300)
    assert filled.returncode == 2 and "breakdowns: an aggregate report" in filled.stderr, filled.stderr
    assert "Traceback" not in filled.stderr
    assert not (tmp_path / "releases").exists() or not any((tmp_path / "releases").iterdir())
