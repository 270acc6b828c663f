"""The request register: every request, its decisions and its status history, in a database.

History is append-only. A status change is a new row in `events`; the current status is the
status of a request's latest event, and a change is accepted only if the transition from the
current status is allowed. Nothing is ever updated or deleted.

SQLite (the default, ``var/register.sqlite``) runs in WAL mode with a busy timeout, and every
write transaction starts with ``BEGIN IMMEDIATE``: two analysts writing at once queue for the
write lock instead of failing, and a status check and the event it allows are one transaction,
so two analysts cannot both move a request out of the same status. On PostgreSQL the request
row is locked (``SELECT ... FOR UPDATE``) for the same effect. Set the location with
``WORKBENCH_REGISTER`` or ``register = "..."`` in workbench.toml (see workbench.config).
"""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, IntegrityError, OperationalError

from workbench.config import register_location
from workbench.errors import EnvironmentProblem, InputError
from workbench.request_ids import request_id_problem

STATUSES = ("received", "clarifying", "approved", "refused", "filled", "released", "withdrawn")

# Where a request may go from each status. released, refused and withdrawn are final: a new
# request is registered instead of reopening one, so the history of each stays readable.
TRANSITIONS: dict[str, frozenset[str]] = {
    "received": frozenset({"clarifying", "approved", "refused", "withdrawn"}),
    "clarifying": frozenset({"received", "approved", "refused", "withdrawn"}),
    "approved": frozenset({"filled", "refused", "withdrawn"}),
    "filled": frozenset({"released", "withdrawn"}),
    "released": frozenset(),
    "refused": frozenset(),
    "withdrawn": frozenset(),
}

SQLITE_BUSY_TIMEOUT_MS = 30_000

metadata = MetaData()

requests_table = Table(
    "requests", metadata,
    Column("request_id", String(100), primary_key=True),
    Column("received", Date, nullable=False),
    Column("requester_role", String(40), nullable=False),
    Column("organization", String(300)),
    Column("requester_name", String(300), nullable=False),
    Column("level", String(20), nullable=False),
    Column("purpose", Text, nullable=False),
    Column("audience", Text, nullable=False),
    Column("request_json", Text, nullable=False),
    Column("source_file", Text),
    Column("registered_at", DateTime(timezone=True), nullable=False),
    Column("registered_by", String(100), nullable=False),
)

decisions_table = Table(
    "decisions", metadata,
    Column("decision_id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(100), ForeignKey("requests.request_id"), nullable=False, index=True),
    Column("policy", String(100), nullable=False),
    Column("policy_hash", String(64), nullable=False),
    Column("as_of", Date, nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("level", String(20)),
    Column("decision_json", Text, nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=False),
    Column("decided_by", String(100), nullable=False),
)

events_table = Table(
    "events", metadata,
    Column("event_id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(100), ForeignKey("requests.request_id"), nullable=False, index=True),
    Column("status", String(20), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("by", String(100), nullable=False),
    Column("note", Text),
)


class RegisterError(InputError):
    """A register operation that cannot be done: unknown request, duplicate ID, bad status."""


class TransitionError(RegisterError):
    """A status change the workflow does not allow from the current status."""


class RegisterUnavailable(EnvironmentProblem):
    """The register database cannot be opened or written: locked, damaged, disk full, unreachable."""


def _shown_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(not a database URL)"


@contextmanager
def _database(url: str) -> Iterator[None]:
    """Database failures as `RegisterUnavailable`, naming the register but not its password."""
    try:
        yield
    except IntegrityError:
        raise
    except (OperationalError, DatabaseError) as exc:
        reason = str(getattr(exc, "orig", None) or type(exc).__name__).splitlines()[0][:200]
        raise RegisterUnavailable(f"the request register at {_shown_url(url)} cannot be used: {reason}") from None


@dataclass(frozen=True)
class Event:
    event_id: int
    request_id: str
    status: str
    at: datetime
    by: str
    note: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "request_id": self.request_id, "status": self.status,
                "at": self.at.isoformat(), "by": self.by, "note": self.note}


@dataclass(frozen=True)
class RequestSummary:
    request_id: str
    received: date
    requester_role: str
    organization: str | None
    level: str
    status: str
    updated_at: datetime
    updated_by: str

    def to_dict(self) -> dict[str, Any]:
        return {"request_id": self.request_id, "received": self.received.isoformat(),
                "requester_role": self.requester_role, "organization": self.organization, "level": self.level,
                "status": self.status, "updated_at": self.updated_at.isoformat(), "updated_by": self.updated_by}


def default_analyst() -> str:
    """Who is writing: the operating-system user."""
    try:
        return getpass.getuser()
    except Exception:  # no user database entry (some containers)
        return os.environ.get("USER") or "unknown"


BY_CHARS = 100  # the register's `by` columns


def check_event_text(by: str | None = None, note: str | None = None) -> None:
    """Refuse who-and-why text the register or a terminal showing it cannot hold: over-long text,
    or control characters (an escape sequence in `--by` would rewrite the screen of whoever lists
    the history). Newlines and tabs are fine in a note."""
    from workbench.limits import NOTE_CHARS

    if by is not None and not (0 < len(by) <= BY_CHARS and by.isprintable()):
        raise RegisterError(f"--by: the analyst is one line of 1 to {BY_CHARS} printable characters")
    if note is not None:
        if len(note) > NOTE_CHARS:
            raise RegisterError(f"--note: a note is at most {NOTE_CHARS:,} characters (this one has {len(note):,})")
        if not note.replace("\n", " ").replace("\t", " ").isprintable():
            raise RegisterError("--note: a note may not hold control characters (other than line breaks and tabs)")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _utc(value: datetime) -> datetime:
    # SQLite hands timestamps back without a zone; they were written in UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def _make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        # psycopg (3), the driver Ibis uses too; SQLAlchemy before 2.1 would pick psycopg2.
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # Let SQLAlchemy's "begin" event below open transactions, instead of the driver.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        # Take the write lock at the start, so a read-then-write cannot interleave with another.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class RequestRegister:
    """Requests, decisions and status history in one database."""

    def __init__(self, url: str | None = None) -> None:
        self.url = register_location(url)
        try:
            self.engine = _make_engine(self.url)
        except (ArgumentError, ImportError) as exc:
            raise RegisterError(f"register: {self.url[:80]!r} is not a database URL this installation can open "
                                f"({type(exc).__name__})") from None
        except OSError as exc:
            raise RegisterUnavailable(f"the request register at {_shown_url(self.url)} cannot be created: "
                                      f"{exc.strerror or type(exc).__name__}") from None
        with _database(self.url), self.engine.begin() as connection:
            metadata.create_all(connection)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "RequestRegister":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------------------
    def register(self, request, by: str | None = None, note: str | None = None) -> Event:
        """Record a new request with its first event, `received`."""
        problem = request_id_problem(request.id)
        if problem:
            raise RegisterError(f"request id {str(request.id)[:60]!r} cannot be registered: {problem}")
        check_event_text(by, note)
        by = by or default_analyst()
        at = _now()
        row = {
            "request_id": request.id,
            "received": request.received,
            "requester_role": request.requester.role,
            "organization": request.requester.organization,
            "requester_name": request.requester.name,
            "level": request.level,
            "purpose": request.purpose,
            "audience": request.audience,
            "request_json": request.model_dump_json(),
            "source_file": str(request.path) if request.path else None,
            "registered_at": at,
            "registered_by": by,
        }
        try:
            with _database(self.url), self.engine.begin() as connection:
                connection.execute(requests_table.insert().values(**row))
                result = connection.execute(events_table.insert().values(
                    request_id=request.id, status="received", at=at, by=by, note=note))
                event_id = result.inserted_primary_key[0]
        except IntegrityError:
            raise RegisterError(f"request {request.id} is already registered") from None
        return Event(event_id, request.id, "received", at, by, note)

    def record_decision(self, decision, by: str | None = None) -> int:
        """Store a decision for a registered request; earlier decisions are kept."""
        check_event_text(by)
        by = by or default_analyst()
        with _database(self.url), self.engine.begin() as connection:
            self._require(connection, decision.request_id)
            result = connection.execute(decisions_table.insert().values(
                request_id=decision.request_id, policy=decision.policy, policy_hash=decision.policy_hash,
                as_of=decision.as_of, outcome=decision.outcome, level=decision.level,
                decision_json=decision.to_json(indent=None), decided_at=_now(), decided_by=by))
            return int(result.inserted_primary_key[0])

    def set_status(self, request_id: str, status: str, by: str | None = None, note: str | None = None) -> Event:
        """Append a status change, if the workflow allows it from the current status."""
        if status not in STATUSES:
            raise RegisterError(f"unknown status {status!r}; choose from {', '.join(STATUSES)}")
        check_event_text(by, note)
        by = by or default_analyst()
        at = _now()
        with _database(self.url), self.engine.begin() as connection:
            self._require(connection, request_id, lock=True)
            current = self._current_status(connection, request_id)
            if status not in TRANSITIONS[current]:
                allowed = ", ".join(sorted(TRANSITIONS[current])) or "nothing (it is final)"
                raise TransitionError(f"request {request_id} is {current}; it can move to {allowed}, not {status}")
            result = connection.execute(events_table.insert().values(
                request_id=request_id, status=status, at=at, by=by, note=note))
            event_id = result.inserted_primary_key[0]
        return Event(event_id, request_id, status, at, by, note)

    # -- reading ---------------------------------------------------------------------------
    def _require(self, connection, request_id: str, lock: bool = False) -> None:
        query = select(requests_table.c.request_id).where(requests_table.c.request_id == request_id)
        if lock:
            query = query.with_for_update()
        if connection.execute(query).first() is None:
            raise RegisterError(f"no request {request_id} in the register")

    def _current_status(self, connection, request_id: str) -> str:
        row = connection.execute(
            select(events_table.c.status).where(events_table.c.request_id == request_id)
            .order_by(events_table.c.event_id.desc()).limit(1)
        ).first()
        return row[0]

    def status(self, request_id: str) -> str:
        with _database(self.url), self.engine.connect() as connection:
            self._require(connection, request_id)
            return self._current_status(connection, request_id)

    def history(self, request_id: str) -> list[Event]:
        with _database(self.url), self.engine.connect() as connection:
            self._require(connection, request_id)
            rows = connection.execute(
                select(events_table).where(events_table.c.request_id == request_id).order_by(events_table.c.event_id)
            ).mappings().all()
        return [Event(r["event_id"], r["request_id"], r["status"], _utc(r["at"]), r["by"], r["note"]) for r in rows]

    def all_events(self) -> list[Event]:
        with _database(self.url), self.engine.connect() as connection:
            rows = connection.execute(select(events_table).order_by(events_table.c.event_id)).mappings().all()
        return [Event(r["event_id"], r["request_id"], r["status"], _utc(r["at"]), r["by"], r["note"]) for r in rows]

    def list_requests(self, status: str | None = None) -> list[RequestSummary]:
        """Every request with its current status (optionally only those in `status`)."""
        if status is not None and status not in STATUSES:
            raise RegisterError(f"unknown status {status!r}; choose from {', '.join(STATUSES)}")
        latest = (
            select(events_table.c.request_id, func.max(events_table.c.event_id).label("event_id"))
            .group_by(events_table.c.request_id).subquery()
        )
        query = (
            select(requests_table.c.request_id, requests_table.c.received, requests_table.c.requester_role,
                   requests_table.c.organization, requests_table.c.level, events_table.c.status,
                   events_table.c.at, events_table.c.by)
            .join(latest, latest.c.request_id == requests_table.c.request_id)
            .join(events_table, events_table.c.event_id == latest.c.event_id)
            .order_by(requests_table.c.received, requests_table.c.request_id)
        )
        if status is not None:
            query = query.where(events_table.c.status == status)
        with _database(self.url), self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [RequestSummary(r.request_id, r.received, r.requester_role, r.organization, r.level,
                               r.status, _utc(r.at), r.by) for r in rows]

    def show(self, request_id: str) -> dict[str, Any]:
        """The request as registered, its decisions (latest last) and its history."""
        with _database(self.url), self.engine.connect() as connection:
            row = connection.execute(
                select(requests_table).where(requests_table.c.request_id == request_id)).mappings().first()
            if row is None:
                raise RegisterError(f"no request {request_id} in the register")
            decisions = connection.execute(
                select(decisions_table).where(decisions_table.c.request_id == request_id)
                .order_by(decisions_table.c.decision_id)).mappings().all()
        history = self.history(request_id)
        return {
            "request_id": row["request_id"],
            "received": row["received"].isoformat(),
            "requester_role": row["requester_role"],
            "organization": row["organization"],
            "requester_name": row["requester_name"],
            "level": row["level"],
            "purpose": row["purpose"],
            "audience": row["audience"],
            "source_file": row["source_file"],
            "registered_at": _utc(row["registered_at"]).isoformat(),
            "registered_by": row["registered_by"],
            "status": history[-1].status,
            "request": json.loads(row["request_json"]),
            "decisions": [
                {"decision_id": d["decision_id"], "policy": d["policy"], "policy_hash": d["policy_hash"],
                 "as_of": d["as_of"].isoformat(), "outcome": d["outcome"], "level": d["level"],
                 "decided_at": _utc(d["decided_at"]).isoformat(), "decided_by": d["decided_by"],
                 "decision": json.loads(d["decision_json"])}
                for d in decisions
            ],
            "history": [e.to_dict() for e in history],
        }


__all__ = [
    "STATUSES", "TRANSITIONS", "Event", "RegisterError", "RegisterUnavailable", "RequestRegister", "RequestSummary",
    "TransitionError", "default_analyst",
]
