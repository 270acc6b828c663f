"""The request register: append-only history, allowed transitions, concurrent writers, the CLI."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.policy_fixtures import AS_OF, build_warehouse, request_data, write_request
from workbench.decision import decide
from workbench.policy import load_policy
from workbench.register import STATUSES, TRANSITIONS, RegisterError, RequestRegister, TransitionError
from workbench.request import parse_request

WORKBENCH = Path(sys.executable).parent / "workbench"


@pytest.fixture
def register_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'register.sqlite'}"


@pytest.fixture
def register(register_url):
    with RequestRegister(register_url) as reg:
        yield reg


def _request(request_id: str = "REQ-R-0001"):
    return parse_request(request_data(id=request_id))


def test_a_registered_request_starts_received_and_keeps_its_history(register):
    register.register(_request(), by="ana")
    register.set_status("REQ-R-0001", "clarifying", by="ben", note="which years?")
    register.set_status("REQ-R-0001", "approved", by="ana")
    assert register.status("REQ-R-0001") == "approved"
    history = register.history("REQ-R-0001")
    assert [(e.status, e.by) for e in history] == [("received", "ana"), ("clarifying", "ben"), ("approved", "ana")]
    assert history[1].note == "which years?"
    assert history[0].at <= history[1].at <= history[2].at
    assert [r.status for r in register.list_requests()] == ["approved"]
    assert register.list_requests("received") == []


def test_invalid_transitions_are_refused_and_leave_no_trace(register):
    register.register(_request(), by="ana")
    with pytest.raises(TransitionError, match="is received; it can move to .* not released"):
        register.set_status("REQ-R-0001", "released", by="ana")
    for status in ("approved", "filled", "released"):
        register.set_status("REQ-R-0001", status, by="ana")
    with pytest.raises(TransitionError, match="nothing \\(it is final\\)"):
        register.set_status("REQ-R-0001", "withdrawn", by="ana")
    assert [e.status for e in register.history("REQ-R-0001")] == ["received", "approved", "filled", "released"]


def test_the_transition_table_is_closed_and_final_states_are_final():
    assert set(TRANSITIONS) == set(STATUSES)
    for targets in TRANSITIONS.values():
        assert targets <= set(STATUSES)
    assert not TRANSITIONS["released"] and not TRANSITIONS["refused"] and not TRANSITIONS["withdrawn"]


def test_duplicates_unknown_ids_and_statuses_are_register_errors(register):
    register.register(_request(), by="ana")
    with pytest.raises(RegisterError, match="already registered"):
        register.register(_request(), by="ana")
    with pytest.raises(RegisterError, match="no request REQ-NONE"):
        register.set_status("REQ-NONE", "approved", by="ana")
    with pytest.raises(RegisterError, match="unknown status"):
        register.set_status("REQ-R-0001", "done", by="ana")


def test_decisions_are_stored_with_the_policy_hash(register, tmp_path):
    con_path = build_warehouse(tmp_path / "w.duckdb")
    from workbench.warehouse import connect

    request = _request()
    register.register(request, by="ana")
    policy = load_policy("bps")
    register.record_decision(decide(request, policy, connect(con_path), AS_OF), by="ana")
    record = register.show("REQ-R-0001")
    assert record["decisions"][0]["policy_hash"] == policy.content_hash
    assert record["decisions"][0]["decision"]["outcome"] == "approve"
    assert record["request"]["requester"]["partner_id"] == "P-01"


def test_history_is_append_only(register, register_url):
    register.register(_request(), by="ana")
    register.set_status("REQ-R-0001", "approved", by="ana")
    engine = create_engine(register_url)
    with engine.connect() as connection:
        rows = connection.execute(text("select status from events order by event_id")).all()
    assert [r[0] for r in rows] == ["received", "approved"]  # the first event is still there


def test_sqlite_runs_in_wal_mode(register, register_url):
    register.register(_request(), by="ana")
    with register.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000


# -- concurrency ---------------------------------------------------------------------------

EVENTS_PER_WRITER = 60


def _writer(url: str, name: str, count: int, start, errors) -> None:
    """Register `count` requests and walk each through its workflow, as fast as possible."""
    try:
        start.wait()
        with RequestRegister(url) as reg:
            for i in range(count):
                request_id = f"REQ-{name}-{i:04d}"
                reg.register(parse_request(request_data(id=request_id)), by=name)
                reg.set_status(request_id, "approved", by=name)
                reg.set_status(request_id, "filled", by=name)
    except Exception as exc:  # reported to the parent, which fails the test
        errors.put(f"{name}: {type(exc).__name__}: {exc}")


def test_two_processes_writing_at_once_lose_nothing(register_url):
    RequestRegister(register_url).close()  # the schema exists before the race starts
    ctx = multiprocessing.get_context("spawn")
    start, errors = ctx.Event(), ctx.Queue()
    writers = [ctx.Process(target=_writer, args=(register_url, name, EVENTS_PER_WRITER, start, errors))
               for name in ("ana", "ben")]
    for process in writers:
        process.start()
    start.set()
    for process in writers:
        process.join(timeout=300)
        assert process.exitcode == 0
    assert errors.empty(), errors.get()
    with RequestRegister(register_url) as reg:
        events = reg.all_events()
        assert len(events) == 2 * EVENTS_PER_WRITER * 3
        for name in ("ana", "ben"):
            mine = [e for e in events if e.by == name]
            assert len(mine) == EVENTS_PER_WRITER * 3
        assert len(reg.list_requests("filled")) == 2 * EVENTS_PER_WRITER
        assert len({e.event_id for e in events}) == len(events)


RACED_REQUESTS = 300


def _racer(url: str, name: str, status: str, start, results) -> None:
    start.wait()
    moved = 0
    with RequestRegister(url) as reg:
        for i in range(RACED_REQUESTS):
            try:
                reg.set_status(f"REQ-RACE-{i:03d}", status, by=name)
                moved += 1
            except TransitionError:
                pass
    results.put((name, moved))


def test_two_analysts_racing_on_the_same_requests_never_both_move_one(register_url):
    """From approved both filled and refused are allowed, but not one after the other: a status
    check and its event are one transaction, so each request takes exactly one of the two."""
    with RequestRegister(register_url) as reg:
        for i in range(RACED_REQUESTS):
            reg.register(_request(f"REQ-RACE-{i:03d}"), by="setup")
            reg.set_status(f"REQ-RACE-{i:03d}", "approved", by="setup")
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Event(), ctx.Queue()
    racers = [ctx.Process(target=_racer, args=(register_url, name, status, start, results))
              for name, status in (("ana", "filled"), ("ben", "refused"))]
    for process in racers:
        process.start()
    start.set()
    for process in racers:
        process.join(timeout=300)
        assert process.exitcode == 0
    moved = dict(results.get(timeout=10) for _ in racers)
    assert moved["ana"] + moved["ben"] == RACED_REQUESTS
    with RequestRegister(register_url) as reg:
        for i in range(RACED_REQUESTS):
            after = [e.status for e in reg.history(f"REQ-RACE-{i:03d}")][2:]
            assert after in (["filled"], ["refused"])


# -- CLI -----------------------------------------------------------------------------------

def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(WORKBENCH), "request", *args], capture_output=True, text=True)


def test_register_list_show_and_status_from_the_command_line(tmp_path, register_url):
    warehouse = str(build_warehouse(tmp_path / "w.duckdb"))
    path = write_request(tmp_path / "r.yml", request_data(id="REQ-CLI-0001"))
    result = cli("register", str(path), "--policy", "bps", "--as-of", "2025-11-03", "--warehouse", warehouse,
                 "--by", "ana", "--register", register_url)
    assert result.returncode == 0, result.stderr
    assert "Registered REQ-CLI-0001" in result.stdout and "approve" in result.stdout
    again = cli("register", str(path), "--by", "ana", "--register", register_url)
    assert again.returncode == 2 and "already registered" in again.stderr

    moved = cli("status", "REQ-CLI-0001", "approved", "--by", "ben", "--note", "looks fine", "--register", register_url)
    assert moved.returncode == 0, moved.stderr
    refused = cli("status", "REQ-CLI-0001", "released", "--by", "ben", "--register", register_url)
    assert refused.returncode == 2 and "it can move to" in refused.stderr and "Traceback" not in refused.stderr
    unknown = cli("status", "REQ-NONE", "approved", "--register", register_url)
    assert unknown.returncode == 2

    listed = json.loads(cli("list", "--json", "--register", register_url).stdout)
    assert [(r["request_id"], r["status"], r["updated_by"]) for r in listed] == [("REQ-CLI-0001", "approved", "ben")]
    assert "No requests with status filled" in cli("list", "--status", "filled", "--register", register_url).stdout

    shown = json.loads(cli("show", "REQ-CLI-0001", "--json", "--register", register_url).stdout)
    assert [e["status"] for e in shown["history"]] == ["received", "approved"]
    assert shown["history"][1]["note"] == "looks fine"
    assert shown["decisions"][0]["policy"] == "bps"
    text_show = cli("show", "REQ-CLI-0001", "--register", register_url).stdout
    assert "approved" in text_show and "by ben" in text_show


def test_by_defaults_to_the_os_user(tmp_path, register_url):
    from workbench.register import default_analyst

    path = write_request(tmp_path / "r.yml", request_data(id="REQ-CLI-0002"))
    assert cli("register", str(path), "--register", register_url).returncode == 0
    with RequestRegister(register_url) as reg:
        assert reg.history("REQ-CLI-0002")[0].by == default_analyst()


def test_the_register_location_comes_from_the_environment(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'env.sqlite'}"
    monkeypatch.setenv("WORKBENCH_REGISTER", url)
    with RequestRegister() as reg:
        assert reg.url == url
        reg.register(_request(), by="ana")
    assert (tmp_path / "env.sqlite").is_file()
