"""`workbench --help` lists every command without importing what the commands need."""

from __future__ import annotations

import importlib
import subprocess
import sys

import click
from click.testing import CliRunner

from workbench.cli import COMMANDS, main

HEAVY = ("pandas", "numpy", "ibis", "duckdb", "matplotlib", "papermill", "jupyter_client", "yaml", "pydantic")


def test_help_imports_no_heavy_library():
    code = ("import sys\nfrom workbench.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "Commands:" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_listed_commands_are_the_commands_their_modules_attach():
    for module in {module for module, _help in COMMANDS.values()}:
        importlib.import_module(f"workbench.cli.{module}")
    assert set(main.commands) == set(COMMANDS)
    for name, (module, first_paragraph) in COMMANDS.items():
        command = main.commands[name]
        assert command.callback.__module__ == f"workbench.cli.{module}", name
        for limit in (30, 45, 60, 200):
            listed = click.Command(name, help=first_paragraph).get_short_help_str(limit)
            assert listed == command.get_short_help_str(limit), name


def test_a_command_runs_when_only_its_name_was_given():
    result = CliRunner().invoke(main, ["release", "--help"])
    assert result.exit_code == 0
    assert "Inspect and check releases." in result.output
    unknown = CliRunner().invoke(main, ["no-such-command"])
    assert unknown.exit_code == 2
    assert "No such command" in unknown.output


def test_commands_read_notebooks_without_building_iri_grammars():
    # The fill reads and validates notebooks with nbformat; jsonschema's IRI checker is not built.
    code = ("import sys\nimport workbench\nimport nbformat\n"
            "nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('x = 1')])\n"
            "nbformat.validate(nb)\n"
            "print(sys.modules.get('rfc3987_syntax') is None, 'lark' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]
