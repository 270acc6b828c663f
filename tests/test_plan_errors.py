"""User-facing errors end a command in one place (workbench.cli) with one format and exit code.

An input mistake is `error: ...` and exit 2, whichever command meets it; a missing setup step or
an unusable environment is exit 1. No command maps an error class to an exit code of its own.
"""

from __future__ import annotations

import errno
import re
from pathlib import Path

from click.testing import CliRunner

from workbench import errors
from workbench.cli import main

CLI_FOLDER = Path(__file__).resolve().parent.parent / "workbench" / "cli"


def test_a_malformed_dashboard_viewer_is_an_input_mistake(tmp_path):
    result = CliRunner().invoke(main, ["serve", "tokens", "add", "bad viewer", "--tokens", str(tmp_path / "t.json")])
    assert result.exit_code == errors.INPUT_EXIT_CODE, result.output
    assert result.output.startswith("error: viewer 'bad viewer'")
    assert not (tmp_path / "t.json").exists()


def test_a_missing_setup_step_is_an_environment_problem_in_the_same_format(tmp_path):
    result = CliRunner().invoke(main, ["serve", "tokens", "demo", "--releases", str(tmp_path / "none"),
                                       "--tokens", str(tmp_path / "t.json")])
    assert result.exit_code == errors.ENVIRONMENT_EXIT_CODE, result.output
    assert result.output.startswith("error: no dashboard releases")


def test_no_command_turns_an_error_into_an_exit_of_its_own():
    """Commands may translate a library's exception into a WorkbenchError (naming the option or
    file); only workbench/cli/__init__.py turns errors into exit codes and messages."""
    offending = []
    for path in sorted(CLI_FOLDER.glob("*.py")):
        if path.name == "__init__.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if re.search(r"raise click\.ClickException|ctx\.exit\(", line):
                offending.append(f"{path.name}:{number}: {line.strip()}")
    assert offending == []


def test_the_disk_errors_that_are_environment_problems_are_named_once():
    from workbench import batch
    from workbench import cli

    assert cli._ENVIRONMENT_ERRNOS is errors.ENVIRONMENT_ERRNOS
    assert errno.EPERM in errors.ENVIRONMENT_ERRNOS
    assert "ENVIRONMENT_ERRNOS" in Path(batch.__file__).read_text()
