"""The request register and the release ledger on a real PostgreSQL server, written to at once.

The register's own tests (tests/test_register.py) run the same writers against SQLite. Here two
processes write register entries and ledger records into one PostgreSQL database at the same time,
and the warehouse the plans are made from is PostgreSQL too. The attacker is the recipient of two
releases filled at the same moment whose cohorts differ by a few students: both must not be
recorded (and so released).
"""

from __future__ import annotations

import multiprocessing
from datetime import date

import pytest
from sqlalchemy import func, select

from tests.policy_fixtures import request_data
from tests.test_register import EVENTS_PER_WRITER, RACED_REQUESTS, _racer, _writer
from workbench.ledger import Ledger, LedgerConflict, groups_table, members_table, releases_table, sketch_table
from workbench.policy import load_policy
from workbench.register import RequestRegister
from workbench.request import parse_request

AS_OF = date(2026, 6, 1)
YEAR = "2025-2026"
PARTNERS = {  # partner -> (its NDA, one of its programs) in the small generated district
    "P-01": ("NDA-0001", "PRG-001"),
    "P-02": ("NDA-0002", "PRG-004"),
    "P-04": ("NDA-0004", "PRG-010"),
}
RELEASES_PER_WRITER = 6


CONTEXT = multiprocessing.get_context("spawn")


def _spawn(target, args_for, names):
    ctx = CONTEXT
    start, results = ctx.Event(), ctx.Queue()
    processes = [ctx.Process(target=target, args=(*args_for(name), start, results)) for name in names]
    for process in processes:
        process.start()
    start.set()
    for process in processes:
        process.join(timeout=300)
        assert process.exitcode == 0
    return results


def test_the_register_uses_the_psycopg_driver(postgres_database):
    with RequestRegister(postgres_database) as reg:
        assert reg.engine.dialect.name == "postgresql"
        assert reg.engine.dialect.driver == "psycopg"


def test_two_processes_registering_at_once_lose_nothing(postgres_database):
    RequestRegister(postgres_database).close()
    errors = _spawn(_writer, lambda name: (postgres_database, name, EVENTS_PER_WRITER), ("ana", "ben"))
    assert errors.empty(), errors.get()
    with RequestRegister(postgres_database) as reg:
        events = reg.all_events()
        assert len(events) == 2 * EVENTS_PER_WRITER * 3
        for name in ("ana", "ben"):
            assert len([e for e in events if e.by == name]) == EVENTS_PER_WRITER * 3
        assert len(reg.list_requests("filled")) == 2 * EVENTS_PER_WRITER
        assert len({e.event_id for e in events}) == len(events)


def test_two_analysts_racing_on_the_same_requests_never_both_move_one(postgres_database):
    with RequestRegister(postgres_database) as reg:
        for i in range(RACED_REQUESTS):
            reg.register(parse_request(request_data(id=f"REQ-RACE-{i:03d}")), by="setup")
            reg.set_status(f"REQ-RACE-{i:03d}", "approved", by="setup")
    results = _spawn(_racer, lambda name: (postgres_database, name, {"ana": "filled", "ben": "refused"}[name]),
                     ("ana", "ben"))
    moved = dict(results.get(timeout=10) for _ in range(2))
    assert moved["ana"] + moved["ben"] == RACED_REQUESTS
    with RequestRegister(postgres_database) as reg:
        for i in range(RACED_REQUESTS):
            assert [e.status for e in reg.history(f"REQ-RACE-{i:03d}")][2:] in (["filled"], ["refused"])


# -- the ledger ------------------------------------------------------------------------------------

def _partner_request(request_id: str, partner: str, student_ids: list[str], requester: str | None = None):
    nda, _program = PARTNERS[partner]
    return parse_request({
        "id": request_id, "received": "2026-05-18", "purpose": "ledger on PostgreSQL", "audience": "tests",
        "requester": {"name": requester or f"Coordinator {partner}", "organization": f"Partner {partner}",
                      "role": "community_partner", "partner_id": partner, "nda_id": nda},
        "level": "aggregate", "years": [YEAR], "cohort": {"student_ids": student_ids},
        "measures": ["chronic_absence"], "breakdowns": ["grade"],
    })


def _program_students(con, program: str) -> list[str]:
    tags = con.table("program_students").to_pandas()
    enrolled = set(con.table("student_years").filter(lambda t: t.school_year == YEAR).to_pandas()["student_id"])
    return sorted(set(tags.loc[tags["program_id"] == program, "student_id"]) & enrolled)


def _release_writer(register_url, warehouse_url, key_file, name, ids, start, errors) -> None:
    """Register requests, plan them from the warehouse and record their releases, as fast as possible."""
    from workbench.plan import make_plan
    from workbench.warehouse import connect

    try:
        con = connect(warehouse_url)
        policy = load_policy("dmps")
        with RequestRegister(register_url) as reg:
            ledger = Ledger(register_url, key_file=key_file)
            start.wait()
            for i in range(RELEASES_PER_WRITER):
                request = _partner_request(f"REQ-{name}-{i}", "P-04", ids, requester=f"Coordinator {name}")
                reg.register(request, by=name)
                plan = make_plan(request, policy, con, AS_OF, ledger=ledger)
                assert plan.releasable, plan.decision.outcome
                reg.set_status(request.id, "approved", by=name)
                key = ledger.begin(plan, f"{name}{i}".ljust(64, "0"), {YEAR: {"", "grade=6"}}, con,
                                   policy.small_group_rule())
                ledger.commit(key)
                reg.set_status(request.id, "filled", by=name)
            ledger.close()
    except Exception as exc:  # reported to the parent, which fails the test
        errors.put(f"{name}: {type(exc).__name__}: {exc}")


def test_two_processes_recording_releases_at_once_lose_nothing(postgres_database, postgres_district_url,
                                                               postgres_con, tmp_path):
    key_file = tmp_path / "keys.json"
    Ledger(postgres_database, key_file=key_file).close()
    RequestRegister(postgres_database).close()
    ids = _program_students(postgres_con, "PRG-010")[:40]
    assert len(ids) == 40
    errors = _spawn(_release_writer, lambda name: (postgres_database, postgres_district_url, key_file, name, ids),
                    ("ana", "ben"))
    assert errors.empty(), errors.get()
    ledger = Ledger(postgres_database, key_file=key_file)
    with ledger.engine.connect() as connection:
        states = connection.execute(select(releases_table.c.state, func.count()).group_by(releases_table.c.state)).all()
        assert dict(states) == {"published": 2 * RELEASES_PER_WRITER}
        assert connection.execute(select(func.count()).select_from(members_table)).scalar() == \
            2 * RELEASES_PER_WRITER * len(ids)
        assert connection.execute(select(func.count()).select_from(groups_table)).scalar() == 2 * RELEASES_PER_WRITER * 2
        assert connection.execute(select(func.count()).select_from(sketch_table)).scalar() > 0
    held = {row["request_id"] for row in ledger.holdings(partner_id="P-04")}
    assert held == {f"REQ-{name}-{i}" for name in ("ana", "ben") for i in range(RELEASES_PER_WRITER)}
    ledger.close()
    with RequestRegister(postgres_database) as reg:
        assert len(reg.list_requests("filled")) == 2 * RELEASES_PER_WRITER
        assert len(reg.all_events()) == 2 * RELEASES_PER_WRITER * 3


def _racing_release(register_url, warehouse_url, key_file, request_id, partner, ids, planned, start,
                    results) -> None:
    """Plan a release, then record it at the same moment as the other process."""
    from workbench.plan import make_plan
    from workbench.warehouse import connect

    con = connect(warehouse_url)
    policy = load_policy("dmps")
    ledger = Ledger(register_url, key_file=key_file)
    plan = make_plan(_partner_request(request_id, partner, ids), policy, con, AS_OF, ledger=ledger)
    start.wait()
    planned.wait(timeout=120)  # both plans are made before either is recorded
    if not plan.releasable:
        results.put((request_id, f"not releasable: {plan.decision.outcome}"))
        return
    try:
        key = ledger.begin(plan, request_id.ljust(64, "0"), {YEAR: {""}}, con, policy.small_group_rule())
        ledger.commit(key)
        results.put((request_id, "recorded"))
    except LedgerConflict:
        results.put((request_id, "conflict"))
    finally:
        ledger.close()


@pytest.mark.parametrize("partner", sorted(PARTNERS))
def test_two_releases_a_few_students_apart_filled_at_once_are_never_both_recorded(
        postgres_database, postgres_district_url, postgres_con, tmp_path, partner):
    """The attacker holds both releases and subtracts their totals: two students' outcomes."""
    key_file = tmp_path / "keys.json"
    Ledger(postgres_database, key_file=key_file).close()
    ids = _program_students(postgres_con, PARTNERS[partner][1])[:40]
    assert len(ids) == 40
    t = load_policy("dmps").small_group_rule().smallest_publishable
    assert 0 < 2 < t
    cohorts = {f"RACE-{partner}-40": ids, f"RACE-{partner}-38": ids[:38]}
    planned = CONTEXT.Barrier(len(cohorts))
    results = _spawn(_racing_release,
                     lambda request_id: (postgres_database, postgres_district_url, key_file, request_id, partner,
                                         cohorts[request_id], planned),
                     list(cohorts))
    outcomes = dict(results.get(timeout=10) for _ in cohorts)
    assert sorted(outcomes.values()) == ["conflict", "recorded"], outcomes
    ledger = Ledger(postgres_database, key_file=key_file)
    try:
        held = [row["request_id"] for row in ledger.holdings(partner_id=partner)]
        assert held == [request_id for request_id, outcome in outcomes.items() if outcome == "recorded"]
    finally:
        ledger.close()
