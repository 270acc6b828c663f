"""The release ledger: pairs of releases that a recipient could difference.

The attacker here holds every release a recipient received (the folders, as delivered) and knows
how their cohorts relate (they asked for them). For every two releases of the same school year it
lines up the groups both publish with the same labels; a pair whose published counts differ by 1
to t-1 students describes those few students (their count, and with the percentages their
outcomes). The workbench must never release such a pair. Fills go through the real `fill` and
guarded kernel on the demo district; the program case changes the district between the two fills.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import duckdb
import pytest
import yaml

from workbench.fill import fill
from workbench.ledger import Ledger, candidate_groups
from workbench.plan import make_plan
from workbench.policy import load_policy
from workbench.register import RequestRegister
from workbench.release.store import ReleaseStore
from workbench.request import load_request
from workbench.warehouse import connect

AS_OF = "2026-06-01"
PARTNER = {"name": "Morgan Lee", "organization": "Reading Partners Collaborative", "role": "community_partner",
           "partner_id": "P-04", "nda_id": "NDA-0004"}
COLLEAGUE = {**PARTNER, "name": "Sam Ortiz"}
PROGRAM = "PRG-007"


# -- the attacker -------------------------------------------------------------------------------

def published_groups(folder: Path) -> dict[tuple[str, str], int]:
    """(school year, group labels) -> published count, over every table of a release."""
    manifest = json.loads((folder / "manifest.json").read_text())
    found = {}
    for name, entry in (manifest.get("released") or {}).items():
        if not name.startswith("tables/"):
            continue
        dims = manifest["protection"][Path(name).stem]["dims"]
        rows = list(csv.DictReader(io.StringIO((folder / name).read_text())))
        for row in rows:
            count = row.get("students", "").replace(",", "")
            if count.isdigit():
                labels = ",".join(f"{d}={row[d]}" for d in dims if row[d] != "Total")
                found[(entry["year"], labels)] = int(count)
    return found


def differencing_attack(folders: list[Path], t: int) -> list[str]:
    """Every group of 1..t-1 students the recipient can isolate by subtracting two releases."""
    findings = []
    groups = [(f.name, published_groups(f)) for f in folders if (f / "manifest.json").exists()]
    for i, (first, a) in enumerate(groups):
        for second, b in groups[i + 1:]:
            for key in set(a) & set(b):
                difference = abs(a[key] - b[key])
                if 0 < difference < t:
                    findings.append(f"{first} vs {second}, {key}: {difference} students isolated")
    return findings


# -- fixtures -----------------------------------------------------------------------------------

@pytest.fixture
def workspace(tmp_path, demo_warehouse):
    class Workspace:
        store = ReleaseStore(tmp_path / "releases")
        register = RequestRegister(f"sqlite:///{tmp_path / 'register.sqlite'}")
        ledger = Ledger(f"sqlite:///{tmp_path / 'register.sqlite'}", key_file=tmp_path / "keys.json")
        warehouse = demo_warehouse

        def request(self, name: str, body: dict) -> Path:
            data = {"id": name, "received": "2026-05-18", "purpose": "ledger test", "audience": "tests", **body}
            path = tmp_path / f"{name}.yml"
            path.write_text(yaml.safe_dump(data, sort_keys=False))
            return path

        def fill(self, name: str, body: dict, policy: str = "dmps", warehouse: str | None = None):
            return fill(self.request(name, body), policy, AS_OF, store=self.store, register=self.register,
                        ledger=self.ledger, warehouse=warehouse or self.warehouse)

        def releases(self) -> list[Path]:
            return sorted(p for p in self.store.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    return Workspace()


def _program_students(warehouse: str, year: str = "2025-2026") -> list[str]:
    with duckdb.connect(warehouse, read_only=True) as con:
        return [r[0] for r in con.execute(
            "SELECT DISTINCT p.student_id FROM program_students p JOIN student_years s USING (student_id) "
            "WHERE p.program_id = ? AND s.school_year = ? ORDER BY 1", [PROGRAM, year]).fetchall()]


def _aggregate(cohort: dict, years=("2025-2026",), requester=PARTNER) -> dict:
    return {"requester": requester, "level": "aggregate", "years": list(years), "cohort": cohort,
            "measures": ["chronic_absence", "course_failure"], "breakdowns": ["grade", "gender"]}


T_DMPS = load_policy("dmps").small_group_rule().smallest_publishable


# -- the pairs ------------------------------------------------------------------------------------

@pytest.mark.slow
def test_an_id_list_minus_one_student_is_not_released_as_a_second_total(workspace):
    ids = _program_students(workspace.warehouse)[:16]
    first = workspace.fill("LEDGER-16", _aggregate({"student_ids": ids}))
    assert first.outcome in ("approve", "partial") and first.level == "aggregate"
    # Without the ledger, this pair gives the 16th student's outcomes away (the issue's attack).
    second = workspace.fill("LEDGER-15", _aggregate({"student_ids": ids[1:]}))
    assert second.outcome == "refuse"
    letter = (second.release.path / "letter.md").read_text()
    assert "already holds" in letter and "LEDGER-16" in letter
    assert differencing_attack(workspace.releases(), T_DMPS) == []


@pytest.mark.slow
@pytest.mark.parametrize("first_bands", [False, True])
def test_grade_bands_and_single_grades_of_one_year_are_not_both_released(workspace, first_bands):
    # A band's count is the sum of its grades': beside a table by single grades it can pin a grade
    # that table hid (K-5 published, grades 5 and 6 hidden together), whichever comes first.
    ids = _program_students(workspace.warehouse)[:40]
    banded = {**_aggregate({"student_ids": ids}), "bands": ["grade"]}
    single = _aggregate({"student_ids": ids})
    first = workspace.fill("LEDGER-GRAIN-1", banded if first_bands else single)
    assert first.outcome in ("approve", "partial") and first.level == "aggregate"
    second = workspace.fill("LEDGER-GRAIN-2", single if first_bands else banded)
    assert second.outcome == "refuse"
    letter = (second.release.path / "letter.md").read_text()
    assert "already holds" in letter and "LEDGER-GRAIN-1" in letter
    # Refused for the granularity: the students are the same, so no group of one granularity
    # differs by a few students from the same group of the other.
    con = connect(workspace.warehouse)
    plan = make_plan(load_request(workspace.request("LEDGER-GRAIN-2", single if first_bands else banded)),
                     load_policy("dmps"), con, date.fromisoformat(AS_OF))
    held = workspace.ledger.conflicts(plan, con, load_policy("dmps").small_group_rule())
    assert held and all(c.earlier_release == "LEDGER-GRAIN-1" for c in held)
    assert any("other granularity" in c.describe() for c in held)
    assert not [c for c in held if not c.why and c.labels == c.earlier_labels]


@pytest.mark.slow
def test_two_staff_of_one_organization_share_what_they_hold(workspace):
    ids = _program_students(workspace.warehouse)[:20]
    workspace.fill("LEDGER-ORG-A", _aggregate({"student_ids": ids[:19]}))
    second = workspace.fill("LEDGER-ORG-B", _aggregate({"student_ids": ids}, requester=COLLEAGUE))
    assert second.outcome == "refuse"
    assert differencing_attack(workspace.releases(), T_DMPS) == []


@pytest.mark.slow
def test_a_program_after_one_student_is_tagged_in(workspace, tmp_path):
    workspace.fill("LEDGER-PROGRAM-MAY", _aggregate({"program": PROGRAM}))
    changed = tmp_path / "district-june.duckdb"
    shutil.copy(workspace.warehouse, changed)
    with duckdb.connect(str(changed)) as con:
        newcomer = con.execute(
            "SELECT s.student_id FROM student_years s JOIN enrollments e USING (student_id, school_year) "
            "JOIN programs p ON p.school_id = e.school_id AND p.program_id = ? WHERE s.school_year = '2025-2026' "
            "AND s.student_id NOT IN (SELECT student_id FROM program_students WHERE program_id = ?) LIMIT 1",
            [PROGRAM, PROGRAM]).fetchone()[0]
        con.execute("INSERT INTO program_students VALUES (?, ?, DATE '2026-05-20', NULL)", [PROGRAM, newcomer])
    second = workspace.fill("LEDGER-PROGRAM-JUNE", _aggregate({"program": PROGRAM}), warehouse=str(changed))
    assert second.outcome == "refuse"
    assert differencing_attack(workspace.releases(), T_DMPS) == []


@pytest.mark.slow
def test_a_school_report_over_two_year_sets_agrees_on_the_shared_year(workspace):
    """A multi-year school report's current-year tables cover the students at the school that year,
    the same students as the one-year report: nothing is left to subtract, and both are released."""
    principal = {"name": "Principal", "role": "district_staff", "organization": "Office of Data"}
    body = {"requester": principal, "level": "aggregate", "cohort": {"school": "8106"},
            "measures": ["chronic_absence"], "breakdowns": ["grade", "gender"]}
    both = workspace.fill("LEDGER-SCHOOL-2Y", {**body, "years": ["2024-2025", "2025-2026"]}, policy="bps")
    one = workspace.fill("LEDGER-SCHOOL-1Y", {**body, "years": ["2025-2026"]}, policy="bps")
    assert both.outcome == one.outcome == "approve"
    t = load_policy("bps").small_group_rule().smallest_publishable
    assert differencing_attack(workspace.releases(), t) == []
    assert published_groups(both.release.path)[("2025-2026", "")] == published_groups(one.release.path)[("2025-2026", "")]


# -- the ledger on its own ------------------------------------------------------------------------

def test_the_ledger_stores_no_student_id(workspace, tmp_path):
    from workbench.plan import make_plan
    from workbench.request import load_request
    from workbench.warehouse import connect

    ids = _program_students(workspace.warehouse)[:30]
    con = connect(workspace.warehouse)
    plan = make_plan(load_request(workspace.request("LEDGER-UNIT", _aggregate({"student_ids": ids}))),
                     load_policy("dmps"), con, None)
    key = workspace.ledger.begin(plan, "f" * 64, {"2025-2026": {"", "grade=6"}}, con)
    workspace.ledger.commit(key)
    database = (tmp_path / "register.sqlite").read_bytes()
    assert not any(sid.encode() in database for sid in ids)
    assert workspace.ledger.holdings(partner_id="P-04")[0]["request_id"] == "LEDGER-UNIT"


def test_near_identical_groups_are_found_and_others_are_not(workspace):
    from workbench.plan import make_plan
    from workbench.request import load_request
    from workbench.warehouse import connect

    con = connect(workspace.warehouse)
    rule = load_policy("dmps").small_group_rule()
    ids = _program_students(workspace.warehouse)
    assert len(ids) >= 40

    def plan_for(name, chosen):
        return make_plan(load_request(workspace.request(name, _aggregate({"student_ids": chosen}))),
                         load_policy("dmps"), con, None)

    held = plan_for("LEDGER-HELD", ids[:40])
    workspace.ledger.commit(workspace.ledger.begin(held, "a" * 64, {"2025-2026": {""}}, con))
    assert workspace.ledger.conflicts(plan_for("LEDGER-SAME", ids[:40]), con, rule) == []
    near = workspace.ledger.conflicts(plan_for("LEDGER-NEAR", ids[:37]), con, rule)
    assert [(c.labels, c.difference, c.earlier_release) for c in near] == [("", 3, "LEDGER-HELD")]
    assert workspace.ledger.conflicts(plan_for("LEDGER-FAR", ids[:40 - T_DMPS]), con, rule) == []
    # After a key rotation the earlier release is still compared (hashed with its own key).
    workspace.ledger.keyring.rotate()
    assert len(workspace.ledger.conflicts(plan_for("LEDGER-NEAR2", ids[:38]), con, rule)) == 1


def test_candidate_groups_keep_only_groups_that_could_be_published():
    rule = load_policy("bps").small_group_rule()
    labels = {f"{n:07d}": {"grade": "6" if n < 15 else "7", "gender": "F" if n % 2 else "M"} for n in range(30)}
    groups = candidate_groups(labels, ["grade", "gender"], rule)
    assert set(groups[""]) == set(labels) and len(groups["grade=6"]) == 15
    assert all(not rule.is_small(len(members)) for members in groups.values())
    assert "gender=F|grade=6" not in groups  # 7 students: small, never published


def test_recovery_completes_or_removes_what_a_crash_interrupted(workspace, tmp_path):
    from workbench.plan import make_plan
    from workbench.request import load_request
    from workbench.warehouse import connect

    con = connect(workspace.warehouse)
    ids = _program_students(workspace.warehouse)[:30]
    plan = make_plan(load_request(workspace.request("LEDGER-CRASH", _aggregate({"student_ids": ids}))),
                     load_policy("dmps"), con, None)
    # Crashed after the ledger entry and before the folder was published: the entry goes.
    workspace.ledger.begin(plan, "b" * 64, {"2025-2026": {""}}, con)
    assert workspace.ledger.recover(workspace.store) == {"published": 0, "removed": 1}
    assert workspace.ledger.holdings(partner_id="P-04") == []
    # Crashed after publishing and before the entry was confirmed: the entry is confirmed.
    with workspace.store.staging("LEDGER-CRASH") as staged:
        (staged / "x.csv").write_text("a\n1\n")
        published = workspace.store.publish(staged, "LEDGER-CRASH", {})
    workspace.ledger.begin(plan, published.digest, {"2025-2026": {""}}, con)
    assert workspace.ledger.recover(workspace.store) == {"published": 1, "removed": 0}
    assert workspace.ledger.holdings(partner_id="P-04")[0]["request_id"] == "LEDGER-CRASH"


@pytest.mark.slow
def test_a_killed_fill_leaves_the_ledger_and_the_store_in_agreement(tmp_path, demo_warehouse):
    """Kill real fills at different moments; after recovery every published ledger entry has its
    release folder and every release folder its entry."""
    ids = _program_students(demo_warehouse)[:25]
    register = f"sqlite:///{tmp_path / 'register.sqlite'}"
    env = {**os.environ, "WORKBENCH_REGISTER": register, "WORKBENCH_LEDGER_KEYS": str(tmp_path / "keys.json"),
           "WORKBENCH_WAREHOUSE": demo_warehouse}
    workbench = Path(sys.executable).parent / "workbench"
    for attempt, delay in enumerate((4.0, 9.0, 60.0)):
        request = tmp_path / f"kill-{attempt}.yml"
        request.write_text(yaml.safe_dump({"id": f"LEDGER-KILL-{attempt}", "received": "2026-05-18",
                                           "purpose": "p", "audience": "a",
                                           **_aggregate({"student_ids": ids[attempt:]})}))
        process = subprocess.Popen([str(workbench), "fill", str(request), "--policy", "dmps", "--as-of", AS_OF,
                                    "--releases", str(tmp_path / "releases")], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    ledger = Ledger(register, key_file=tmp_path / "keys.json")
    store = ReleaseStore(tmp_path / "releases")
    ledger.recover(store)
    held = {row["request_id"] for row in ledger.holdings(partner_id="P-04")}
    aggregates = {r for r in store.releases() if store.manifest(r)["decision"]["level"] == "aggregate"}
    assert held == aggregates
    assert held, "the last fill ran to the end"


def test_published_zeros_are_not_groups(tmp_path):
    """A table publishes empty groups as 0: they describe nobody and are not recorded."""
    from workbench.ledger import published_groups as released_groups

    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "t.csv").write_text("grade,race_ethnicity,students\n10,Asian,0\n10,Total,45\nTotal,Total,45\n"
                                                "11,Asian,*\n")
    groups = released_groups(tmp_path, {"t": {"year": "2025-2026", "dims": ["grade", "race_ethnicity"]}})
    assert groups == {"2025-2026": {"grade=10", ""}}


@pytest.mark.slow
def test_the_same_request_filled_again_is_the_same_release(workspace):
    """A repeat run (a monthly batch on unchanged data) is recognised: nothing differs, nothing is
    refused, the release is re-published as it was."""
    body = _aggregate({"program": PROGRAM}, years=("2024-2025", "2025-2026"))
    first = workspace.fill("LEDGER-REPEAT", body)
    again = workspace.fill("LEDGER-REPEAT", body)
    assert first.outcome == again.outcome == "approve"
    assert again.release.reused and again.release.digest == first.release.digest
