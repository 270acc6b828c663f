"""`workbench scan NOTEBOOK...`: the save-time check of the notebook guard, from the command line."""

from __future__ import annotations

from pathlib import Path

import click

from workbench.cli import main
from workbench.errors import InputError

FINDINGS_EXIT_CODE = 3


@main.command("scan")
@click.argument("notebooks", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--policy", default=None, help="Policy pack whose small-group rule applies (default: the guard's).")
@click.option("--level", default=None, help="Data level the notebook was made for (default: the guard's).")
@click.option("--check", "check_only", is_flag=True,
              help=f"Report only; write nothing; exit {FINDINGS_EXIT_CODE} if any notebook would leak.")
def scan_command(notebooks: tuple[Path, ...], policy: str | None, level: str | None, check_only: bool) -> None:
    """Check every stored output of NOTEBOOK for student identifiers and small counts.

    A notebook with findings is rewritten with those outputs cleared and a note in their cells
    (unless --check). Findings name the cell, output and kind, never the value.
    """
    import nbformat

    from workbench.guard import settings as guard_settings
    from workbench.guard.savecheck import check_notebook_file
    from workbench.guard.student_index import current_index, status_line

    for path in notebooks:
        if not path.is_file():
            raise InputError(f"NOTEBOOK: {path} does not exist")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise InputError(f"NOTEBOOK: {path} is not a notebook (not JSON)") from None
        try:
            nbformat.validate(nbformat.reads(text, as_version=4))
        except nbformat.reader.NotJSONError:
            raise InputError(f"NOTEBOOK: {path} is not a notebook (not JSON)") from None
        except Exception:  # nbformat raises several kinds for JSON of the wrong shape; its text may quote data
            raise InputError(f"NOTEBOOK: {path} is not a notebook (JSON, but not in the notebook format)") from None
    current = guard_settings.current_settings()
    try:
        chosen = current if policy is None and level is None else guard_settings.settings_for(
            policy or current.policy or guard_settings.DEFAULT_POLICY, level or current.level)
    except Exception as exc:  # noqa: BLE001 - a bad --policy or --level is the user's to fix
        raise InputError(f"--policy/--level: {exc}") from None
    index = current_index()
    click.echo(status_line(index), err=True)
    leaking = 0
    for path in notebooks:
        result = check_notebook_file(path, level=chosen.level, rule=chosen.rule, index=index, write=not check_only)
        if result.clean:
            click.echo(f"{path}: {result.outputs} outputs, nothing the guard would hide")
            continue
        leaking += 1
        action = "would be cleared" if check_only else "cleared"
        click.echo(f"{path}: {len({(f.cell, f.output) for f in result.findings})} output(s) {action}")
        for finding in result.findings:
            click.echo(f"  - {finding}")
    if check_only and leaking:
        raise SystemExit(FINDINGS_EXIT_CODE)
