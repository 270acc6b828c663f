"""`workbench ledger ...`: what each recipient holds, and what a new request would add."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import click

from workbench.cli import main


@main.group("ledger")
def ledger_group() -> None:
    """The release ledger: groups already released, per recipient (keyed hashes, no IDs)."""


def _ledger(register: str | None):
    from workbench.ledger import Ledger

    return Ledger(register)


@ledger_group.command("show")
@click.option("--requester", default=None, help="The requester's name as in their requests.")
@click.option("--organization", default=None)
@click.option("--partner", "partner_id", default=None, help="Partner ID (P-...).")
@click.option("--register", default=None, help="Register database URL (default: configured).")
def show_command(requester, organization, partner_id, register):
    """Releases a recipient holds (their own, their organization's or partner's, and public ones)."""
    if not (requester or organization or partner_id):
        raise click.UsageError("name the recipient: --requester, --organization or --partner")
    rows = _ledger(register).holdings(requester, organization, partner_id)
    if not rows:
        click.echo("no aggregate release is held by this recipient")
        return
    click.echo(f"{'release':<30} {'role':<18} {'public':<7} {'year':<10} groups")
    for row in rows:
        click.echo(f"{row['request_id']:<30} {row['role'] or '':<18} {'yes' if row['public'] else 'no':<7} "
                   f"{row['school_year']:<10} {row['groups']}")


@ledger_group.command("check")
@click.argument("request_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--policy", default=None, help="Policy pack (default: the configured policy).")
@click.option("--as-of", "as_of", default=None, help="Date agreements are judged on, YYYY-MM-DD (default today).")
@click.option("--warehouse", default=None)
@click.option("--register", default=None)
def check_command(request_file, policy, as_of, warehouse, register):
    """What REQUEST_FILE would add to what its recipient holds, and any group it would single out."""
    from workbench.errors import InputError
    from workbench.plan import make_plan
    from workbench.policy import load_policy
    from workbench.request import load_request
    from workbench.settings import resolve
    from workbench.warehouse import connect

    try:
        day = date.fromisoformat(as_of) if as_of else date.today()
    except ValueError:
        raise InputError(f"--as-of: {as_of!r} is not a date written YYYY-MM-DD") from None
    request = load_request(request_file)
    pack = load_policy(resolve("policy", policy).value)
    con = connect(warehouse)
    ledger = _ledger(register)
    plan = make_plan(request, pack, con, day)
    conflicts = ledger.conflicts(plan, con, pack.small_group_rule())
    click.echo(f"{request.id}: {plan.decision.outcome}, {plan.level or 'nothing'}; "
               f"students by year {plan.decision.cohort.get('by_year', {})}")
    if not conflicts:
        click.echo("no group would differ by fewer than a publishable group from what the recipient holds")
    for conflict in conflicts:
        click.echo(f"  conflict: {conflict.describe()}")


@ledger_group.command("rotate-key")
def rotate_command():
    """Start hashing with a new key; earlier keys are kept for the releases hashed with them."""
    from workbench.ledger import Keyring
    from workbench.settings import resolve

    keyring = Keyring(resolve("ledger_keys").value)
    click.echo(f"ledger key {keyring.rotate()} is now current ({len(keyring.keys)} keys kept)")


@ledger_group.command("recover")
@click.option("--releases", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--register", default=None)
def recover_command(releases, register):
    """Complete or remove ledger entries a crash left pending."""
    from workbench.config import releases_location
    from workbench.release.store import ReleaseStore

    done = _ledger(register).recover(ReleaseStore(releases_location(releases)))
    click.echo(f"{done['published']} confirmed, {done['removed']} removed")
