"""The `workbench` command: one entry point, one module of subcommands per concern."""

from __future__ import annotations

import errno

import click

from workbench import __version__
from workbench.errors import ENVIRONMENT_EXIT_CODE, WorkbenchError

# Failures of the machine rather than of the command: reported in a line, exit 1.
_ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EACCES, errno.EPERM})


class WorkbenchGroup(click.Group):
    """Ends any command that raises a `WorkbenchError` with its message and exit code, once for all.

    A full, read-only or unwritable disk met outside the places that report it themselves ends the
    same way (exit 1, naming the file), instead of with a traceback.
    """

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


# Each module attaches its own commands to `main`; importing it is all that is needed.
from workbench.cli import data_commands  # noqa: E402,F401
from workbench.cli import request_commands  # noqa: E402,F401
from workbench.cli import kernel_commands  # noqa: E402,F401
from workbench.cli import guard_commands  # noqa: E402,F401
from workbench.cli import disclosure_commands  # noqa: E402,F401
from workbench.cli import release_commands  # noqa: E402,F401
from workbench.cli import demo_commands  # noqa: E402,F401
from workbench.cli import serve_commands  # noqa: E402,F401
from workbench.cli import ledger_commands  # noqa: E402,F401
