"""`workbench request check` as a user runs it: the JSON contract, exit codes, no student data in text."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.policy_fixtures import (
    CONSENT_VIRTUAL_CURRENT,
    NO_CONSENT,
    build_warehouse,
    identified_request,
    request_data,
    write_request,
)

WORKBENCH = Path(sys.executable).parent / "workbench"
CONTRACT_KEYS = {"outcome", "level", "students", "withheld_fields", "reasons", "redirect_to", "due_date",
                 "clarify_by", "fee_estimate"}


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> str:
    return str(build_warehouse(tmp_path_factory.mktemp("cli") / "district.duckdb"))


def check(request: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(WORKBENCH), "request", "check", str(request), *args], capture_output=True, text=True)


def test_json_decision_has_the_contract_keys_and_student_levels(tmp_path, warehouse):
    """003:68: an identified request lists each student with a level and reasons."""
    path = write_request(tmp_path / "r.yml", identified_request([CONSENT_VIRTUAL_CURRENT, NO_CONSENT]))
    result = check(path, "--policy", "bps", "--as-of", "2025-11-03", "--json", "--warehouse", warehouse)
    assert result.returncode == 0, result.stderr
    decision = json.loads(result.stdout)
    assert CONTRACT_KEYS <= set(decision)
    assert decision["outcome"] == "partial" and decision["level"] == "identified"
    assert {s["student_id"]: s["level"] for s in decision["students"]} == {
        CONSENT_VIRTUAL_CURRENT: "identified", NO_CONSENT: "excluded"}
    assert decision["due_date"] == "2025-11-25" and decision["clarify_by"] == "2025-11-10"
    assert decision["redirect_to"] is None
    assert all({"rule", "message", "source"} <= set(reason) for reason in decision["reasons"])


def test_a_refusal_and_a_redirect_are_decisions_with_exit_code_0(tmp_path, warehouse):
    """003:78: media requests are redirected; 003:74: research without a proposal is refused."""
    media = write_request(tmp_path / "media.yml", request_data(requester={"role": "media", "partner_id": None}))
    result = check(media, "--policy", "bps", "--as-of", "2025-11-03", "--json", "--warehouse", warehouse)
    assert result.returncode == 0
    assert json.loads(result.stdout)["outcome"] == "redirect"
    assert json.loads(result.stdout)["redirect_to"]["to"] == "BPS Communications Office"
    research = write_request(tmp_path / "research.yml", request_data(
        requester={"role": "researcher", "partner_id": None, "nda_id": None, "organization": "Nobody"}))
    result = check(research, "--policy", "bps", "--as-of", "2025-11-03", "--json", "--warehouse", warehouse)
    assert result.returncode == 0 and json.loads(result.stdout)["outcome"] == "refuse"


def test_the_text_output_shows_counts_not_students(tmp_path, warehouse):
    path = write_request(tmp_path / "r.yml", identified_request([CONSENT_VIRTUAL_CURRENT, NO_CONSENT]))
    result = check(path, "--policy", "bps", "--as-of", "2025-11-03", "--warehouse", warehouse)
    assert result.returncode == 0
    assert "Outcome: PARTIAL" in result.stdout and "1 excluded, 1 identified" in result.stdout
    assert CONSENT_VIRTUAL_CURRENT not in result.stdout and NO_CONSENT not in result.stdout
    assert "First0" not in result.stdout  # names never appear
    listed = check(path, "--policy", "bps", "--as-of", "2025-11-03", "--warehouse", warehouse, "--show-students")
    assert CONSENT_VIRTUAL_CURRENT in listed.stdout


def test_an_invalid_request_exits_2_with_the_problem_on_stderr(tmp_path, warehouse):
    path = tmp_path / "bad.yml"
    path.write_text("id: X\nreceived: 2026-02-30\nrequester: {name: A, role: journalist}\n"
                    "cohort: {student_ids: [0041275]}\n")
    result = check(path, "--policy", "bps", "--warehouse", warehouse)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert "quote" in result.stderr.lower()  # unquoted IDs are reported before anything else
    path.write_text(path.read_text().replace("[0041275]", '["0041275"]'))
    result = check(path, "--policy", "bps", "--warehouse", warehouse)
    assert result.returncode == 2
    assert "received: 2026-02-30 is not a real date" in result.stderr
    assert "requester.role: must be" in result.stderr
    assert "purpose: is required" in result.stderr


def test_an_unknown_or_invalid_policy_exits_2(tmp_path, warehouse):
    path = write_request(tmp_path / "r.yml", request_data())
    result = check(path, "--policy", "nowhere", "--warehouse", warehouse)
    assert result.returncode == 2 and "policy nowhere: no such pack" in result.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ntitle: Bad\nextends: nces\nsmall_groups: {threshold: 10, comparison: '=<', "
                   "source: {external: x}}\n")
    result = check(path, "--policy", str(bad), "--warehouse", warehouse)
    assert result.returncode == 2
    assert "policy bad: small_groups.comparison: must be '<' or '<='" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_as_of_date_exits_2(tmp_path, warehouse):
    path = write_request(tmp_path / "r.yml", request_data())
    result = check(path, "--policy", "bps", "--as-of", "03/11/2025", "--warehouse", warehouse)
    assert result.returncode == 2 and "YYYY-MM-DD" in result.stderr


def test_a_missing_warehouse_is_an_error_not_a_traceback(tmp_path):
    path = write_request(tmp_path / "r.yml", request_data())
    result = check(path, "--policy", "bps", "--warehouse", str(tmp_path / "none.duckdb"))
    assert result.returncode == 1
    assert "no warehouse" in result.stderr and "Traceback" not in result.stderr
