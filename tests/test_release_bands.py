"""A request that opts into grade bands: the released tables use them, pass the release check and
the plan's contract, and give the independent attacker nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from workbench.cli import main
from workbench.config import DATA_DIR
from workbench.fill import fill
from workbench.release.store import ReleaseStore
from tests.release_attacker import Facts, Method, pinned, tables_by_year

DEMO = DATA_DIR / "requests" / "demo"
AS_OF = "2026-06-01"
WORKBENCH = Path(sys.executable).parent / "workbench"
BAND_LABELS = {"K-5", "6-8", "9-12"}


def request_with(tmp_path: Path, extra: str, name: str = "banded.yml") -> Path:
    text = (DEMO / "partner_aggregate.yml").read_text().replace("DEMO-PARTNER-AGG", "DEMO-PARTNER-BANDS")
    path = tmp_path / name
    path.write_text(text + extra)
    return path


@pytest.fixture(scope="module")
def banded_release(demo_warehouse, tmp_path_factory):
    folder = tmp_path_factory.mktemp("banded")
    store = ReleaseStore(folder / "releases")
    return fill(request_with(folder, "bands: [grade]\n"), "dmps", AS_OF, store=store, warehouse=demo_warehouse)


def test_the_release_publishes_grade_bands_and_passes_the_checks(banded_release, demo_warehouse):
    folder = banded_release.release.path
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["plan"]["bands"] == ["grade"]
    assert manifest["release_check"]["passed"]
    graded = [name for name, t in manifest["protection"].items() if "grade" in t["dims"]]
    assert graded
    for name in graded:
        table = pd.read_csv(folder / "tables" / f"{name}.csv", dtype=str, keep_default_na=False)
        assert set(table["grade"]) - {"Total"} <= BAND_LABELS
        assert manifest["protection"][name]["bands"]["grade"]["9-12"] == ["9", "10", "11", "12"]
        assert "bands_offer" not in manifest["protection"][name]
    check = subprocess.run([str(WORKBENCH), "release", "check", str(folder), "--warehouse", demo_warehouse],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout


def test_the_attacker_finds_nothing_in_the_banded_release(banded_release):
    folder = banded_release.release.path
    manifest = json.loads((folder / "manifest.json").read_text())
    # What the measures' definitions say about bands: no course marks in any grade of K-5.
    facts = {
        "behavior_incident": Facts(denominator_is_group=True),
        "course_failure": Facts(zero_where={"grade": {"K-5"}}),
        "assessment_benchmark_ela": Facts(),
        "assessment_benchmark_math": Facts(),
    }
    years = tables_by_year(folder, manifest, facts)
    for year, tables in years.items():
        assert pinned(tables, Method(comparison="<=", numerator_threshold=11), facts) == [], year


def test_the_contract_refuses_a_banded_table_the_plan_does_not_grant(banded_release):
    from workbench.release.contract import _band_findings

    class Plan:
        bands: list[str] = []

        @staticmethod
        def policy():
            from workbench.policy import load_policy

            return load_policy("dmps")

    rows = [["K-5", "40"], ["6-8", "30"], ["Total", "70"]]
    findings = _band_findings("tables/t.csv", ["grade"], [0], rows, Plan())
    assert findings and "grade bands the plan does not grant: 6-8, K-5" in findings[0].detail
    Plan.bands = ["grade"]
    assert _band_findings("tables/t.csv", ["grade"], [0], rows, Plan()) == []
    findings = _band_findings("tables/t.csv", ["grade"], [0], [["7", "12"], ["Total", "12"]], Plan())
    assert findings and "publishes grade in bands" in findings[0].detail


@pytest.mark.parametrize(("extra", "words"), [
    ("bands: [colour]\n", "bands: unknown breakdown(s) 'colour'"),
    ("bands: [race_ethnicity]\n", "bands: race_ethnicity not among the breakdowns asked for"),
    ("bands: [gender]\n", "bands: policy dmps has no bands for gender"),
])
def test_a_band_the_request_cannot_have_is_refused_with_exit_2_naming_the_field(tmp_path, demo_warehouse, extra, words):
    request = request_with(tmp_path, extra)
    outcome = CliRunner().invoke(main, ["fill", str(request), "--policy", "dmps", "--as-of", AS_OF,
                                        "--releases", str(tmp_path / "releases"), "--warehouse", demo_warehouse,
                                        "--no-register"])
    assert outcome.exit_code == 2, outcome.output
    assert words in outcome.stderr
    assert "Traceback" not in outcome.output
    assert not (tmp_path / "releases").exists() or not any((tmp_path / "releases").iterdir())
