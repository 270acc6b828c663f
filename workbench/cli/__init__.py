"""The `workbench` command: one entry point, one module of subcommands per concern."""

from __future__ import annotations

import click

from workbench import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="workbench")
def main() -> None:
    """Fill student-data requests under the district's policy, safely."""


# Each module attaches its own commands to `main`; importing it is all that is needed.
from workbench.cli import data_commands  # noqa: E402,F401
from workbench.cli import request_commands  # noqa: E402,F401
from workbench.cli import kernel_commands  # noqa: E402,F401
from workbench.cli import disclosure_commands  # noqa: E402,F401
from workbench.cli import release_commands  # noqa: E402,F401
from workbench.cli import demo_commands  # noqa: E402,F401
from workbench.cli import serve_commands  # noqa: E402,F401
