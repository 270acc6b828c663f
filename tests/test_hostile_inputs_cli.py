"""More hostile input through the real command line, the way an outside tester tries it.

Each case is a file or option a careless or hostile sender could hand an analyst and that the
first round of hardening did not cover: a cohort export with one enormous cell, a request with a
NUL byte or a 100,000-digit number, fifty thousand unknown keys, free text pages long, a named
pipe instead of a file, a relative release store, a policy threshold written as `true`. Every one
must end with exit 2 (1 for the machine), a short message naming the field or file, no
traceback, and nothing written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.test_input_mistakes_cli import (
    AGGREGATE,
    DEMO,
    assert_nothing_written,
    assert_refused,
    fill,
    place,  # noqa: F401  (the fixture)
    run,
    with_field,
)

ROSTER = DEMO.parent / "examples" / "partner_roster.csv"
IDS = [line.split(",")[0] for line in ROSTER.read_text().splitlines()[1:]]


def request_with_id_file(place: Path, name: str, content: bytes) -> Path:
    (place / "in" / name).write_bytes(content)
    request = place / "in" / "request.yml"
    request.write_text(AGGREGATE.replace("  program: PRG-007", f"  student_ids: {name}"))
    return request


@pytest.mark.parametrize("cell", ["1" * 5_000_000, "y" * 200_000])
def test_a_cohort_file_with_an_enormous_cell_is_exit_2_naming_the_file(place, cell):
    content = ("student_id,notes\n" + "".join(f"{i},x\n" for i in IDS) + f'{IDS[0]},"{cell}"\n').encode()
    request = request_with_id_file(place, "roster.csv", content)
    result = fill(place, request)
    assert_refused(result, 2, "cohort.student_ids", "roster.csv", "row 14")
    assert cell[:100] not in result.stderr
    assert_nothing_written(place)


@pytest.mark.parametrize("name, content", [
    ("bom.csv", ("\ufeffstudent_id,program\r\n" + "".join(f"{i},P\r\n" for i in IDS)).encode()),
    ("semicolons.csv", ("Student Number;Name\n" + "".join(f'"{i}";Name {n}\n' for n, i in enumerate(IDS))).encode()),
    ("spaces.csv", ("student_id\n" + "".join(f'" {i} "\n' for i in IDS) + f"{IDS[0]}\n").encode()),
])
def test_cohort_exports_in_the_usual_shapes_select_the_listed_students(place, name, content, demo_warehouse):
    request = request_with_id_file(place, name, content)
    result = run("request", "check", str(request), "--policy", "dmps", "--as-of", "2026-06-01", "--no-ledger", "--json",
                 env_extra={"WORKBENCH_WAREHOUSE": demo_warehouse})
    assert result.returncode == 0, result.stderr[-2000:]
    decision = json.loads(result.stdout)
    listed = {entry["student_id"] for entry in decision["students"]}
    assert listed == set(IDS)
    assert "Name" not in result.stdout


def request_file(place: Path, text: str, name: str = "request.yml") -> Path:
    path = place / "in" / name
    path.write_bytes(text.encode("utf-8"))
    return path


def test_a_request_with_a_nul_byte_is_exit_2_naming_the_file_and_line(place):
    request = request_file(place, with_field(AGGREGATE, "purpose", "Evaluate\x00 the program"))
    line = next(n for n, text in enumerate(AGGREGATE.splitlines(), 1) if text.startswith("purpose:"))
    assert_refused(fill(place, request), 2, "request.yml", f"line {line}")
    assert_nothing_written(place)


def test_a_number_too_long_to_convert_is_exit_2(place):
    request = request_file(place, AGGREGATE + "notes: " + "9" * 100_000 + "\n")
    result = fill(place, request)
    assert_refused(result, 2, "request.yml", "line 19")
    assert len(result.stderr) < 2000
    assert_nothing_written(place)


def test_fifty_thousand_unknown_keys_give_a_short_message(place):
    request = request_file(place, AGGREGATE + "".join(f"k{i}: 1\n" for i in range(50_000)))
    result = fill(place, request)
    assert_refused(result, 2, "request.yml", "k0: is not a known key", "more")
    assert len(result.stderr) < 5000
    assert_nothing_written(place)


LONG_TEXT = {
    "purpose": with_field(AGGREGATE, "purpose", "x" * 10_000),
    "requester.email": AGGREGATE.replace("  name: Morgan Lee", "  name: Morgan Lee\n  email: " + "a" * 100_000),
    "cohort.program": AGGREGATE.replace("  program: PRG-007", "  program: " + "P" * 100_000),
}


@pytest.mark.parametrize("field", sorted(LONG_TEXT))
def test_pages_long_free_text_is_exit_2_naming_the_field(place, field):
    body = LONG_TEXT[field]
    result = fill(place, request_file(place, body))
    assert_refused(result, 2, "request.yml", f"{field}:", "characters")
    assert len(result.stderr) < 2000 and len(result.stdout) < 2000
    assert_nothing_written(place)


def test_a_named_pipe_instead_of_a_request_file_is_refused_at_once(place):
    pipe = place / "in" / "request.yml"
    os.mkfifo(pipe)
    # If the command opened the pipe it would wait for a writer forever; this writer would then
    # release it, so a hang shows as a timeout or as a request read from the pipe.
    result = run("request", "check", str(pipe), "--policy", "dmps", timeout=60)
    assert_refused(result, 2, "request.yml", "not a regular file")
    pack = run("request", "check", str(DEMO / "media.yml"), "--policy", str(pipe), timeout=60)
    assert_refused(pack, 2, "request")


def test_a_named_pipe_as_cohort_file_is_refused(place):
    pipe = place / "in" / "roster.csv"
    os.mkfifo(pipe)
    request = place / "in" / "request.yml"
    request.write_text(AGGREGATE.replace("  program: PRG-007", "  student_ids: roster.csv"))
    result = run("request", "check", str(request), "--policy", "dmps", timeout=60)
    assert_refused(result, 2, "cohort.student_ids", "roster.csv")


def test_a_policy_threshold_written_as_true_is_exit_2(place):
    pack = place / "in" / "loose.yaml"
    pack.write_text("name: loose\nextends: nces\nsmall_groups:\n  threshold: true\n"
                    "  source: {external: a test}\n")
    result = run("request", "check", str(DEMO / "media.yml"), "--policy", str(pack))
    assert_refused(result, 2, "policy loose", "small_groups.threshold")


@pytest.mark.parametrize("port", ["99999", "-1"])
def test_a_port_out_of_range_is_exit_2_naming_the_option(place, port):
    result = run("serve", "--port", port, "--tokens", str(place / "tokens.json"), "--releases", str(place / "rel"))
    assert_refused(result, 2, "--port")


@pytest.mark.slow
def test_a_relative_release_store_holds_every_file_of_the_release(tmp_path, demo_warehouse):
    """`--releases out` is relative to where the command runs, not to the template's folder."""
    from tests.test_input_mistakes_cli import ROOT

    templates_before = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "templates").rglob("*"))
    env = {"WORKBENCH_REGISTER": f"sqlite:///{tmp_path / 'register.sqlite'}"}
    result = run("fill", str(DEMO / "partner_aggregate.yml"), "--as-of", "2026-06-01", "--releases", "out",
                 "--warehouse", demo_warehouse, "-q", cwd=tmp_path, env_extra=env)
    assert result.returncode == 0, result.stderr[-2000:]
    release = tmp_path / "out" / "DEMO-PARTNER-AGG"
    manifest = json.loads((release / "manifest.json").read_text())
    assert any(name.startswith("tables/") for name in manifest["files"]), sorted(manifest["files"])
    assert sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "templates").rglob("*")) == templates_before



TOKEN_MISTAKES = {
    "short token": (["add", "partner:P-04", "--token", "short"], "at least 16"),
    "unicode token": (["add", "partner:P-04", "--token", "é" * 20], "token"),
    "huge token": (["add", "partner:P-04", "--token", "a" * 100_000], "token"),
    "token with a space": (["add", "partner:P-04", "--token", "a" * 10 + " " + "b" * 10], "token"),
    "viewer path": (["add", "../../etc"], "viewer"),
    "viewer unicode": (["add", "partner:Pé-04"], "viewer"),
    "viewer long": (["add", "partner:" + "P" * 500], "viewer"),
    "label pages long": (["add", "partner:P-04", "--label", "x" * 5000], "--label"),
    "label with an escape": (["add", "partner:P-04", "--label", "a\x1b[2Jb"], "--label"),
    "revoke a path": (["revoke", "../../etc"], "viewer"),
}


@pytest.mark.parametrize("case", sorted(TOKEN_MISTAKES))
def test_a_token_command_mistake_is_exit_2_and_writes_no_tokens_file(place, case):
    args, needle = TOKEN_MISTAKES[case]
    tokens = place / "tokens.json"
    result = run("serve", "tokens", *args, "--tokens", str(tokens))
    assert_refused(result, 2, needle)
    assert len(result.stderr) < 1000
    assert not tokens.exists()


def seven_way_table(path: Path) -> Path:
    rows = "".join(f"{i % 3},{i % 5},{i % 7},{i % 2},{i % 11},{i % 13},{i % 4},{i % 20}\n" for i in range(3000))
    path.write_text("a,b,c,d,e,f,g,n\n" + rows)
    return path


def test_a_table_too_large_to_protect_is_refused_at_once(place):
    """Seven dimensions: nearly half a million cells with their totals, a search that would not end."""
    table = seven_way_table(place / "in" / "seven.csv")
    out = place / "out.csv"
    result = run("protect", str(table), "--dims", "a,b,c,d,e,f,g", "--count", "n", "--policy", "nces",
                 "--out", str(out), timeout=60)
    assert_refused(result, 2, "seven.csv", "483,840 cells", "50,000")
    assert not out.exists()
    audit = run("audit", str(table), "--dims", "a,b,c,d,e,f,g", "--value", "n", timeout=60)
    assert_refused(audit, 2, "seven.csv", "cells")


def test_a_table_over_the_byte_limit_or_not_a_file_is_refused(place):
    table = place / "in" / "counts.csv"
    table.write_text("school,grade,n\nA,1,12\nA,2,30\nB,1,25\nB,2,40\n")
    result = run("protect", str(table), "--dims", "school,grade", "--count", "n", "--policy", "nces",
                 env_extra={"WORKBENCH_MAX_TABLE_BYTES": "20"})
    assert_refused(result, 2, "counts.csv", "up to 20 bytes")
    pipe = place / "in" / "pipe.csv"
    os.mkfifo(pipe)
    result = run("protect", str(pipe), "--dims", "school,grade", "--count", "n", "--policy", "nces", timeout=60)
    assert_refused(result, 2, "pipe.csv", "not a regular file")


@pytest.mark.parametrize("text", ['{"cells": 5}', '{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [7]}',
                                  "[1, 2]", '"a notebook"'])
def test_a_json_file_that_is_not_a_notebook_is_exit_2_naming_it(place, text):
    notebook = place / "in" / "report.ipynb"
    notebook.write_text(text)
    result = run("scan", str(notebook), "--check")
    assert_refused(result, 2, "NOTEBOOK", "report.ipynb", "not a notebook")
    assert notebook.read_text() == text


@pytest.mark.parametrize("option, value", [("--seed", "-1"), ("--students", "99999999999999")])
def test_a_synthetic_district_option_out_of_range_is_exit_2(place, option, value):
    out = place / "district.duckdb"
    result = run("data", "generate", "--quiet", "--out", str(out), option, value, timeout=60)
    assert_refused(result, 2, option)
    assert not out.exists()


REGISTER_TEXT_MISTAKES = {
    "--by with a terminal escape": (["--by", "analyst\x1b[2J"], "--by"),
    "--by pages long": (["--by", "b" * 5000], "--by"),
    "--note pages long": (["--note", "n" * 100_000], "--note"),
    "--note with a NUL-like control": (["--note", "a\x07b"], "--note"),
}


@pytest.mark.parametrize("case", sorted(REGISTER_TEXT_MISTAKES))
def test_register_text_that_a_terminal_or_the_register_cannot_hold_is_exit_2(place, case):
    extra, needle = REGISTER_TEXT_MISTAKES[case]
    database = place / "register.sqlite"
    result = run("request", "register", str(DEMO / "media.yml"), "--register", f"sqlite:///{database}", *extra)
    assert_refused(result, 2, needle)
    assert not database.exists()
    assert run("request", "register", str(DEMO / "media.yml"), "--register", f"sqlite:///{database}").returncode == 0
    status = run("request", "status", "DEMO-MEDIA", "clarifying", "--register", f"sqlite:///{database}", *extra)
    assert_refused(status, 2, needle)
    shown = run("request", "show", "DEMO-MEDIA", "--json", "--register", f"sqlite:///{database}")
    assert [event["status"] for event in json.loads(shown.stdout)["history"]] == ["received"]
    database.unlink()


def test_a_request_cannot_choose_a_policy_file_of_its_own(place, demo_warehouse):
    """A request names the district's pack it is decided under (`policy: dmps`); a path would let
    whoever wrote the request bring their own rules, here a threshold of 1."""
    lenient = place / "in" / "lenient.yaml"
    lenient.write_text("name: lenient\ntitle: Lenient\nextends: nces\nsmall_groups:\n  threshold: 1\n  comparison: '<'\n"
                       "  numerator_threshold: 1\n  source: {external: the requester}\n")
    for value in (str(lenient), "../in/lenient.yaml", "lenient.yaml"):
        request = request_file(place, with_field(AGGREGATE, "policy", f'"{value}"'))
        result = run("request", "check", str(request), "--no-ledger", env_extra={"WORKBENCH_WAREHOUSE": demo_warehouse})
        assert_refused(result, 2, "request.yml", "policy:")
        assert "lenient" not in result.stdout
    # The analyst may still choose a pack file on the command line.
    chosen = run("request", "check", str(DEMO / "partner_aggregate.yml"), "--policy", str(lenient), "--no-ledger",
                 "--as-of", "2026-06-01", env_extra={"WORKBENCH_WAREHOUSE": demo_warehouse})
    assert chosen.returncode == 0 and "under policy lenient" in chosen.stdout, chosen.stderr[-1000:]


def test_a_named_pipe_as_tokens_file_is_refused_at_once(place):
    pipe = place / "tokens.json"
    os.mkfifo(pipe)
    for args in (["tokens", "list"], ["tokens", "add", "partner:P-04"]):
        result = run("serve", *args, "--tokens", str(pipe), timeout=60)
        assert_refused(result, 2, "tokens.json", "not a regular file")
