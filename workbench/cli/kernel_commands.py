"""`workbench kernel ...`: the "Python 3 (workbench)" Jupyter kernel, which starts guarded."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import click

from workbench.cli import main

DEFAULT_KERNEL_NAME = "workbench"
DEFAULT_DISPLAY_NAME = "Python 3 (workbench)"

# Load the guard at start, and refuse to start at all if it cannot load: IPython's default is to
# log the failure and carry on, which would leave a "workbench" kernel showing tables unguarded.
KERNEL_ARGUMENTS = [
    "--ext=workbench",
    "--InteractiveShellApp.reraise_ipython_extension_failures=True",
]


def kernel_spec(display_name: str = DEFAULT_DISPLAY_NAME, python: str | None = None) -> dict:
    """The kernel.json content: this interpreter running ipykernel with the guard loaded."""
    from ipykernel.kernelspec import get_kernel_dict

    spec = get_kernel_dict(extra_arguments=list(KERNEL_ARGUMENTS))
    spec["argv"][0] = python or sys.executable
    spec["display_name"] = display_name
    spec.setdefault("metadata", {})["workbench"] = {"guard": True}
    return spec


def install_kernel(
    name: str = DEFAULT_KERNEL_NAME,
    *,
    display_name: str = DEFAULT_DISPLAY_NAME,
    user: bool = False,
    prefix: str | None = None,
) -> str:
    """Install the kernelspec; returns the folder it went to. `prefix` None and not `user`: this
    environment (sys.prefix), where `jupyter kernelspec list` of the venv finds it."""
    from ipykernel.kernelspec import write_kernel_spec
    from jupyter_client.kernelspec import KernelSpecManager

    if not user and prefix is None:
        prefix = sys.prefix
    with tempfile.TemporaryDirectory() as scratch:
        spec = kernel_spec(display_name)
        folder = write_kernel_spec(Path(scratch) / name, overrides=spec)
        return KernelSpecManager().install_kernel_spec(folder, name, user=user, prefix=prefix)


@main.group("kernel")
def kernel_group() -> None:
    """The Jupyter kernel whose notebooks are guarded from the first cell."""


@kernel_group.command("install")
@click.option("--user", "scope", flag_value="user", help="Install for the current user (~/.local/share/jupyter).")
@click.option("--sys-prefix", "scope", flag_value="sys-prefix", default=True,
              help="Install into this Python environment (the default).")
@click.option("--prefix", type=click.Path(file_okay=False), default=None,
              help="Install under PREFIX/share/jupyter/kernels.")
@click.option("--name", default=DEFAULT_KERNEL_NAME, show_default=True, help="Kernel name notebooks refer to.")
@click.option("--display-name", default=DEFAULT_DISPLAY_NAME, show_default=True, help="Name shown in JupyterLab.")
def install_command(scope: str, prefix: str | None, name: str, display_name: str) -> None:
    """Install the "Python 3 (workbench)" kernel: this Python, with the guard loaded at start."""
    if prefix is not None and scope == "user":
        raise click.UsageError("give either --user or --prefix, not both")
    folder = install_kernel(name, display_name=display_name, user=scope == "user" and prefix is None, prefix=prefix)
    click.echo(f"Installed kernel {name!r} ({display_name}) in {folder}")
