"""`workbench kernel ...`: the "Python 3 (workbench)" Jupyter kernel, which starts guarded."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import click

from workbench.cli import main
from workbench.errors import InputError

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


CONFIG_FILE_NAME = "jupyter_server_config.json"
PRE_SAVE_HOOK = "workbench.guard.savecheck.pre_save_hook"


def jupyter_server_config(kernel_name: str = DEFAULT_KERNEL_NAME, *, offer_plain_kernel: bool = False) -> dict:
    """The Jupyter server settings of the workbench: its kernel by default (and, unless
    `offer_plain_kernel`, the only one offered), and the save-time check of every notebook."""
    config: dict = {
        "MultiKernelManager": {"default_kernel_name": kernel_name},
        "ContentsManager": {"pre_save_hook": PRE_SAVE_HOOK},
        "KernelSpecManager": {"ensure_native_kernel": offer_plain_kernel},
    }
    if not offer_plain_kernel:
        config["KernelSpecManager"]["allowed_kernelspecs"] = [kernel_name]
    return config


def config_folder(*, user: bool = False, prefix: str | None = None) -> Path:
    """Where Jupyter reads configuration for this scope: PREFIX/etc/jupyter, ~/.jupyter, or this
    environment's etc/jupyter."""
    if user and prefix is None:
        from jupyter_core.paths import jupyter_config_dir

        return Path(jupyter_config_dir())
    return Path(prefix or sys.prefix) / "etc" / "jupyter"


def install_jupyter_config(
    kernel_name: str = DEFAULT_KERNEL_NAME,
    *,
    user: bool = False,
    prefix: str | None = None,
    offer_plain_kernel: bool = False,
) -> Path:
    """Merge the workbench's settings into jupyter_server_config.json of the scope; returns its path.

    Only the settings above are written; anything else in the file is kept. The Jupyter server
    (and so JupyterLab) reads this file; Voila and the dashboards do not.
    """
    folder = config_folder(user=user, prefix=prefix)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CONFIG_FILE_NAME
    try:
        existing = json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError:
        raise InputError(f"{path} is not valid JSON; fix or remove it, then install again") from None
    for section, values in jupyter_server_config(kernel_name, offer_plain_kernel=offer_plain_kernel).items():
        existing.setdefault(section, {}).update(values)
    if offer_plain_kernel:
        existing.get("KernelSpecManager", {}).pop("allowed_kernelspecs", None)
    path.write_text(json.dumps(existing, indent=2) + "\n")
    return path


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
@click.option("--offer-plain-kernel", is_flag=True,
              help="Keep the other kernels (plain Python 3) in JupyterLab's launcher; the workbench kernel stays the default.")
@click.option("--no-jupyter-config", "write_config", flag_value=False, default=True,
              help="Install the kernel only; leave the Jupyter server configuration alone.")
def install_command(scope: str, prefix: str | None, name: str, display_name: str, offer_plain_kernel: bool,
                    write_config: bool) -> None:
    """Install the "Python 3 (workbench)" kernel: this Python, with the guard loaded at start.

    Also writes the Jupyter server configuration for the same scope (etc/jupyter/
    jupyter_server_config.json): JupyterLab opens notebooks in this kernel, offers no
    unguarded kernel, and checks every notebook as it is saved.
    """
    if prefix is not None and scope == "user":
        raise click.UsageError("give either --user or --prefix, not both")
    user = scope == "user" and prefix is None
    folder = install_kernel(name, display_name=display_name, user=user, prefix=prefix)
    click.echo(f"Installed kernel {name!r} ({display_name}) in {folder}")
    if write_config:
        path = install_jupyter_config(name, user=user, prefix=prefix, offer_plain_kernel=offer_plain_kernel)
        offered = "every installed kernel" if offer_plain_kernel else f"only {name!r}"
        click.echo(f"Jupyter server configuration in {path}: default kernel {name!r}, offering {offered}, "
                   "notebooks checked when saved")
