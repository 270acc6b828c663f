"""`workbench request ...`: check a request against a policy, and track it in the register.

Exit codes: 0 for any decision (approve, partial, refuse and redirect are all answers), 2 for a
request file, policy pack or register operation that is not valid (the message goes to stderr,
without a traceback), 1 when the warehouse or register cannot be reached. The errors are mapped
to exit codes in `workbench.cli`, once for every command.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import click

from workbench.cli import main
from workbench.cli.options import parse_date_option

def _parse_as_of(ctx, param, value: str | None) -> date:
    return parse_date_option(ctx, param, value) or date.today()


def _load(request_file: Path, policy_name: str | None):
    from workbench.policy import load_policy
    from workbench.request import load_request

    request = load_request(request_file)
    policy = load_policy(policy_name) if policy_name else None
    return request, policy


def _decide(request, policy, warehouse: str | None, as_of: date, ledger_register: str | None = None):
    """The decision a fill would make; with `ledger_register` ("" = the configured register), after
    comparing with the release ledger."""
    from workbench.plan import make_plan
    from workbench.warehouse import connect

    con = connect(warehouse)
    ledger = None
    if ledger_register is not None:
        from workbench.ledger import Ledger

        ledger = Ledger.if_present(ledger_register or None)
    return make_plan(request, policy, con, as_of, ledger=ledger).decision


def _source_label(source: dict | None) -> str:
    if not source:
        return "warehouse"
    if "external" in source:
        return source["external"]
    from workbench.policy.model import format_lines

    return f"{source.get('document') or source['file']}, {format_lines(source['lines'])}"


def render_decision(decision, show_students: bool = False) -> str:
    """The decision for a person to read. Student IDs only with show_students."""
    out = []
    out.append(f"Request {decision.request_id} under policy {decision.policy}, as of {decision.as_of.isoformat()}")
    level = decision.level or "nothing"
    out.append(f"Outcome: {decision.outcome.upper()} - {level} (asked: {decision.requested_level})")
    if decision.redirect_to:
        contact = f" ({decision.redirect_to['contact']})" if decision.redirect_to.get("contact") else ""
        out.append(f"Redirect to: {decision.redirect_to['to']}{contact}")
    if decision.years:
        out.append(f"Years: {', '.join(decision.years)}")
    if decision.measures:
        out.append(f"Measures: {', '.join(decision.measures)}")
        out.append(f"Breakdowns: {', '.join(decision.breakdowns) or 'none'}")
    if decision.fields:
        out.append(f"Fields: {', '.join(decision.fields)}")
    for withheld in decision.withheld_fields:
        out.append(f"Withheld: {withheld['field']} from {withheld['applies_to']} - {withheld['message']} "
                   f"[{withheld['rule']}; {_source_label(withheld['source'])}]")
    if decision.redact_as_needed:
        out.append(f"May be redacted: {', '.join(decision.redact_as_needed)}")
    if decision.cohort:
        by_level = ", ".join(f"{n} {lvl}" for lvl, n in sorted(decision.cohort.get("by_level", {}).items())) or "none"
        unmatched = decision.cohort.get("unmatched", 0)
        extra = f"; {unmatched} IDs not usable" if unmatched else ""
        out.append(f"Students ({decision.cohort.get('kind')}): {decision.cohort.get('size', 0)} - {by_level}{extra}")
        by_year = decision.cohort.get("by_year") or {}
        if by_year:
            out.append("Released per school year: " + ", ".join(f"{year}: {n}" for year, n in by_year.items()))
        if decision.students and not show_students:
            out.append("  (list each student's level with --show-students or --json)")
    if show_students:
        for student in decision.students:
            why = "; ".join(r.message for r in student.reasons)
            out.append(f"  {student.student_id}: {student.level}" + (f" - {why}" if why else ""))
    if decision.due_date or decision.clarify_by:
        clarify = f" (clarifying questions by {decision.clarify_by.isoformat()})" if decision.clarify_by else ""
        due = decision.due_date.isoformat() if decision.due_date else "no turnaround set"
        out.append(f"Due: {due}{clarify}")
    if decision.fee_estimate:
        fee = decision.fee_estimate
        label = "waived" if fee.get("waived") else f"{fee['amount']:.2f} {fee['currency']} ({fee['hours']:g} hours)"
        out.append(f"Fee estimate: {label} - {fee['note']}")
    if decision.office:
        contact = f" ({decision.office['contact']})" if decision.office.get("contact") else ""
        out.append(f"District office: {decision.office['name']}{contact}")
    if decision.conditions:
        out.append("Confirm before release:")
        out.extend(f"  - {text}" for text in decision.conditions)
    out.append("Reasons:")
    for reason in decision.reasons:
        out.append(f"  [{reason.effect}] {reason.message} ({reason.rule}; {_source_label(reason.source)})")
    return "\n".join(out)


@main.group("request")
def request_group() -> None:
    """Check data requests against a policy and track them in the register."""


@request_group.command("check")
@click.argument("request_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--policy", "policy_name", default=None,
              help="Policy pack name (data/policies/NAME.yaml) or path (default: the configured policy).")
@click.option("--as-of", callback=_parse_as_of, default=None, help="Date to judge agreements on (default: today).")
@click.option("--json", "as_json", is_flag=True, help="Print the decision as one JSON object.")
@click.option("--warehouse", default=None, help="Ibis URL or DuckDB path (default: configured).")
@click.option("--show-students", is_flag=True, help="List each student's level (IDs) in the text output.")
@click.option("--register", "register_url", default=None,
              help="Register database whose release ledger the request is compared with (default: configured).")
@click.option("--no-ledger", is_flag=True, help="Do not compare with the releases the recipient already holds.")
def check_command(request_file: Path, policy_name: str | None, as_of: date, as_json: bool, warehouse: str | None,
                  show_students: bool, register_url: str | None, no_ledger: bool) -> None:
    """Decide what REQUEST_FILE may receive under a policy, and why.

    The decision is the one a fill would make: it is also compared with every release the
    requester (or their organization, or the public) already holds, in the register's ledger.
    """
    from workbench.plan import policy_for

    request, policy = _load(request_file, policy_name)
    policy = policy or policy_for(request)[0]
    decision = _decide(request, policy, warehouse, as_of, None if no_ledger else register_url or "")
    if as_json:
        click.echo(decision.to_json())
    else:
        click.echo(render_decision(decision, show_students))


def _open_register(location: str | None):
    from workbench.register import RequestRegister

    return RequestRegister(location)


_register_option = click.option("--register", "register_url", default=None,
                                help="Register database URL (default: WORKBENCH_REGISTER, workbench.toml, var/register.sqlite).")
_by_option = click.option("--by", default=None, help="Analyst making the change (default: the OS user).")


@request_group.command("register")
@click.argument("request_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--policy", "policy_name", default=None, help="Also decide under this policy and record the decision.")
@click.option("--as-of", callback=_parse_as_of, default=None, help="Date to judge agreements on (default: today).")
@click.option("--warehouse", default=None, help="Ibis URL or DuckDB path (default: configured).")
@_by_option
@click.option("--note", default=None, help="A note on the received event.")
@_register_option
def register_command(request_file: Path, policy_name: str | None, as_of: date, warehouse: str | None,
                     by: str | None, note: str | None, register_url: str | None) -> None:
    """Record REQUEST_FILE as received (and its decision, with --policy)."""
    from workbench.register import check_event_text

    check_event_text(by, note)  # before the register is opened: a mistake writes nothing
    request, policy = _load(request_file, policy_name)
    decision = _decide(request, policy, warehouse, as_of) if policy is not None else None
    register = _open_register(register_url)
    try:
        event = register.register(request, by=by, note=note)
        if decision is not None:
            register.record_decision(decision, by=by)
    finally:
        register.close()
    click.echo(f"Registered {request.id}: received, by {event.by}")
    if decision is not None:
        click.echo(f"Decision under {decision.policy}: {decision.outcome} ({decision.level or 'nothing'})")


@request_group.command("list")
@click.option("--status", type=click.Choice(
    ["received", "clarifying", "approved", "refused", "filled", "released", "withdrawn"]), default=None)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@_register_option
def list_command(status: str | None, as_json: bool, register_url: str | None) -> None:
    """Requests in the register with their current status."""
    register = _open_register(register_url)
    try:
        rows = register.list_requests(status)
    finally:
        register.close()
    if as_json:
        click.echo(json.dumps([row.to_dict() for row in rows], indent=2))
        return
    if not rows:
        click.echo("No requests" + (f" with status {status}" if status else "") + ".")
        return
    for row in rows:
        click.echo(f"{row.request_id:<20} {row.status:<11} {row.received.isoformat()}  {row.requester_role:<18} "
                   f"{row.level:<13} {row.organization or ''}  (last change {row.updated_at:%Y-%m-%d %H:%M} by {row.updated_by})")


@request_group.command("show")
@click.argument("request_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_register_option
def show_command(request_id: str, as_json: bool, register_url: str | None) -> None:
    """A registered request: what was asked, its decisions and its history."""
    register = _open_register(register_url)
    try:
        record = register.show(request_id)
    finally:
        register.close()
    if as_json:
        click.echo(json.dumps(record, indent=2))
        return
    click.echo(f"{record['request_id']}: {record['status']}")
    click.echo(f"  {record['requester_role']} - {record['organization'] or record['requester_name']}; "
               f"{record['level']} data; received {record['received']}")
    click.echo(f"  Purpose: {record['purpose']}")
    click.echo(f"  Audience: {record['audience']}")
    for decision in record["decisions"]:
        click.echo(f"  Decision {decision['decision_id']} under {decision['policy']} as of {decision['as_of']}: "
                   f"{decision['outcome']} ({decision['level'] or 'nothing'}), by {decision['decided_by']}")
    click.echo("  History:")
    for event in record["history"]:
        note = f" - {event['note']}" if event["note"] else ""
        click.echo(f"    {event['at'][:19]}  {event['status']:<11} by {event['by']}{note}")


@request_group.command("status")
@click.argument("request_id")
@click.argument("new_status", type=click.Choice(
    ["received", "clarifying", "approved", "refused", "filled", "released", "withdrawn"]))
@_by_option
@click.option("--note", default=None, help="Why (kept in the history).")
@_register_option
def status_command(request_id: str, new_status: str, by: str | None, note: str | None, register_url: str | None) -> None:
    """Move REQUEST_ID to NEW_STATUS, if the workflow allows it."""
    from workbench.register import check_event_text

    check_event_text(by, note)
    register = _open_register(register_url)
    try:
        event = register.set_status(request_id, new_status, by=by, note=note)
    finally:
        register.close()
    click.echo(f"{request_id}: {event.status} (by {event.by})")
