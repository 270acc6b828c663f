"""`workbench kernel install`: the kernelspec it writes, and kernels started from it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workbench.cli.kernel_commands import install_kernel

WORKBENCH = Path(sys.executable).parent / "workbench"


def run_cli(*args):
    return subprocess.run([str(WORKBENCH), *args], capture_output=True, text=True)


def kernel_json(prefix: Path, name: str = "workbench") -> dict:
    return json.loads((prefix / "share" / "jupyter" / "kernels" / name / "kernel.json").read_text())


def test_install_writes_a_kernelspec_that_loads_the_guard(tmp_path):
    result = run_cli("kernel", "install", "--prefix", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "Installed kernel 'workbench'" in result.stdout
    spec = kernel_json(tmp_path)
    assert spec["display_name"] == "Python 3 (workbench)" and spec["language"] == "python"
    python, *arguments = spec["argv"]
    assert arguments[:4] == ["-m", "ipykernel_launcher", "-f", "{connection_file}"]
    assert "--ext=workbench" in arguments
    assert "--InteractiveShellApp.reraise_ipython_extension_failures=True" in arguments
    # The kernel runs this environment's interpreter, not whatever `python` is on PATH.
    prefix = subprocess.run([python, "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True)
    assert prefix.stdout.strip() == sys.prefix


def test_name_and_display_name_can_be_chosen(tmp_path):
    result = run_cli("kernel", "install", "--prefix", str(tmp_path), "--name", "wb-test", "--display-name", "WB test")
    assert result.returncode == 0, result.stderr
    assert kernel_json(tmp_path, "wb-test")["display_name"] == "WB test"


def test_user_and_prefix_together_are_refused(tmp_path):
    result = run_cli("kernel", "install", "--user", "--prefix", str(tmp_path))
    assert result.returncode != 0 and "either --user or --prefix" in result.stderr


def test_the_default_location_is_this_environment(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    folder = install_kernel()
    assert Path(folder) == tmp_path / "share" / "jupyter" / "kernels" / "workbench"


@pytest.mark.slow
def test_a_kernel_started_from_the_spec_is_guarded(tmp_path, monkeypatch):
    from jupyter_client.manager import start_new_kernel

    install_kernel(prefix=str(tmp_path))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "share" / "jupyter"))
    monkeypatch.delenv("WORKBENCH_POLICY", raising=False)
    manager, client = start_new_kernel(kernel_name="workbench", startup_timeout=120)
    try:
        outputs = []
        client.execute_interactive(
            "import pandas as pd\n"
            "print(sorted(get_ipython().extension_manager.loaded))\n"
            "pd.Series([4, 40, 50], index=['x', 'y', 'z'])",
            output_hook=lambda message: outputs.append(message["content"]),
            timeout=60,
        )
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    printed = next(o["text"] for o in outputs if "text" in o)
    shown = next(o["data"]["text/plain"] for o in outputs if "data" in o)
    assert "'workbench'" in printed
    assert "workbench guard: 2 cells masked (*) under policy nces" in shown


@pytest.mark.slow
def test_a_kernel_whose_guard_cannot_load_refuses_to_start(tmp_path, monkeypatch):
    from jupyter_client.manager import KernelManager

    install_kernel(prefix=str(tmp_path / "prefix"))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "prefix" / "share" / "jupyter"))
    # A `workbench` that fails on import, ahead of the real one on the path.
    broken = tmp_path / "broken" / "workbench"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('guard unavailable')\n")
    env = {**os.environ, "PYTHONPATH": str(broken.parent)}
    manager = KernelManager(kernel_name="workbench")
    manager.start_kernel(env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while manager.is_alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not manager.is_alive(), "the kernel kept running without its guard"
    finally:
        if manager.is_alive():
            manager.shutdown_kernel(now=True)
        manager.cleanup_resources()
