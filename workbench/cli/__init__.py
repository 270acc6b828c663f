"""The `workbench` command: one entry point, one module of subcommands per concern.

Each subcommand's module is imported only when that command runs (or its help is asked for):
`workbench --help` lists the commands from `COMMANDS` without importing pandas, Ibis or the
policy packs, so it answers about as fast as Python starts.
"""

from __future__ import annotations

import importlib

import click

from workbench import __version__
from workbench.errors import ENVIRONMENT_ERRNOS, ENVIRONMENT_EXIT_CODE, WorkbenchError

# Failures of the machine rather than of the command: reported in a line, exit 1.
_ENVIRONMENT_ERRNOS = ENVIRONMENT_ERRNOS

# Command -> (module in workbench.cli that attaches it to `main`, the first paragraph of its help).
# tests/test_cli_start.py checks both against the commands themselves.
COMMANDS: dict[str, tuple[str, str]] = {
    "audit": ("disclosure_commands",
              "Run the attacker on a published table: each suppressed cell's interval; exit 1 on an exact disclosure."),
    "batch": ("release_commands", "Fill every request file in FOLDER, or one request for every school, in parallel."),
    "data": ("data_commands", "Create and inspect the warehouse."),
    "demo": ("demo_commands",
             "Generate the demo district, print a protected aggregate, and fill one request of each type."),
    "fill": ("release_commands", "Decide a request, run its template in the guarded kernel, check and release it."),
    "kernel": ("kernel_commands", "The Jupyter kernel whose notebooks are guarded from the first cell."),
    "ledger": ("ledger_commands",
               "The release ledger: groups already released, per recipient (keyed hashes, no IDs)."),
    "protect": ("disclosure_commands",
                "Suppress small groups in a count table with all its margins, and prove it safe."),
    "protect-extract": ("disclosure_commands", "De-identify a student-level extract: keyed pseudonyms, dropped "
                        "fields, k-anonymity with blanks as values."),
    "release": ("release_commands", "Inspect and check releases."),
    "request": ("request_commands", "Check data requests against a policy and track them in the register."),
    "scan": ("guard_commands", "Check every stored output of NOTEBOOK for student identifiers and small counts."),
    "serve": ("serve_commands", "Start the partner and school-leader dashboards over the release store."),
}


class WorkbenchGroup(click.Group):
    """The top-level group: loads a command's module when the command is used, and ends any
    command that raises a `WorkbenchError` with its message and exit code, once for all.

    A full, read-only or unwritable disk met outside the places that report it themselves ends the
    same way (exit 1, naming the file), instead of with a traceback.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, name: str):
        if name not in self.commands and name in COMMANDS:
            importlib.import_module(f"workbench.cli.{COMMANDS[name][0]}")
        return self.commands.get(name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            if name in self.commands:  # already loaded: its own help
                command = self.commands[name]
                if command.hidden:
                    continue
                rows.append((name, command.get_short_help_str(limit)))
            else:
                rows.append((name, click.Command(name, help=COMMANDS[name][1]).get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except WorkbenchError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except OSError as exc:
            if exc.errno not in _ENVIRONMENT_ERRNOS:
                raise
            where = exc.filename or "a file or the disk"
            click.echo(f"error: cannot use {where}: {exc.strerror}", err=True)
            ctx.exit(ENVIRONMENT_EXIT_CODE)


@click.group(cls=WorkbenchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="workbench")
def main() -> None:
    """Fill student-data requests under the district's policy, safely."""
