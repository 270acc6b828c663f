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


# --- the Jupyter server configuration -------------------------------------------------------

def jupyter_server_config_file(prefix: Path) -> dict:
    return json.loads((prefix / "etc" / "jupyter" / "jupyter_server_config.json").read_text())


def test_install_writes_the_jupyter_server_configuration(tmp_path):
    result = run_cli("kernel", "install", "--prefix", str(tmp_path))
    assert result.returncode == 0, result.stderr
    config = jupyter_server_config_file(tmp_path)
    assert config["MultiKernelManager"]["default_kernel_name"] == "workbench"
    assert config["KernelSpecManager"]["allowed_kernelspecs"] == ["workbench"]
    assert config["ContentsManager"]["pre_save_hook"] == "workbench.guard.savecheck.pre_save_hook"


def test_installing_keeps_the_other_settings_of_the_file(tmp_path):
    folder = tmp_path / "etc" / "jupyter"
    folder.mkdir(parents=True)
    (folder / "jupyter_server_config.json").write_text(json.dumps({"ServerApp": {"shutdown_no_activity_timeout": 60}}))
    assert run_cli("kernel", "install", "--prefix", str(tmp_path)).returncode == 0
    config = jupyter_server_config_file(tmp_path)
    assert config["ServerApp"] == {"shutdown_no_activity_timeout": 60}
    assert config["KernelSpecManager"]["allowed_kernelspecs"] == ["workbench"]


def test_a_broken_configuration_file_is_named_and_left_alone(tmp_path):
    folder = tmp_path / "etc" / "jupyter"
    folder.mkdir(parents=True)
    (folder / "jupyter_server_config.json").write_text("{not json")
    result = run_cli("kernel", "install", "--prefix", str(tmp_path))
    assert result.returncode == 2 and "jupyter_server_config.json" in result.stderr and "Traceback" not in result.stderr
    assert (folder / "jupyter_server_config.json").read_text() == "{not json"


def test_an_administrator_can_offer_the_plain_kernel_or_skip_the_configuration(tmp_path):
    assert run_cli("kernel", "install", "--prefix", str(tmp_path / "a"), "--offer-plain-kernel").returncode == 0
    config = jupyter_server_config_file(tmp_path / "a")
    assert "allowed_kernelspecs" not in config["KernelSpecManager"]
    assert config["MultiKernelManager"]["default_kernel_name"] == "workbench"
    assert run_cli("kernel", "install", "--prefix", str(tmp_path / "b"), "--no-jupyter-config").returncode == 0
    assert not (tmp_path / "b" / "etc").exists()


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _request(url: str, method: str = "GET", body: dict | None = None, token: str = "") -> dict:
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"{}")


@pytest.mark.slow
def test_jupyter_offers_only_the_guarded_kernel_and_checks_notebooks_it_saves(tmp_path, small_district_path):
    """A real Jupyter server started with the installed configuration: JupyterLab asks it which
    kernels exist and which is the default, and saves notebooks through its contents API."""
    import duckdb

    prefix = tmp_path / "prefix"
    assert run_cli("kernel", "install", "--prefix", str(prefix)).returncode == 0
    root = tmp_path / "notebooks"
    root.mkdir()
    port, token = _free_port(), "t" * 32
    env = {**os.environ, "JUPYTER_CONFIG_PATH": str(prefix / "etc" / "jupyter"),
           "JUPYTER_PATH": str(prefix / "share" / "jupyter"), "WORKBENCH_WAREHOUSE": small_district_path,
           "WORKBENCH_POLICY": "bps", "WORKBENCH_LEVEL": "aggregate"}
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", f"--port={port}", "--ip=127.0.0.1", "--no-browser", "--allow-root",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                specs = _request(f"{base}/kernelspecs", token=token)
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "the server did not start"
                time.sleep(0.5)
        assert specs["default"] == "workbench"
        assert set(specs["kernelspecs"]) == {"workbench"}  # python3 is not offered

        with duckdb.connect(small_district_path, read_only=True) as con:
            student_id, first, last = con.sql("select student_id, first_name, last_name from students limit 1").fetchone()
        leaking = {
            "cell_type": "code", "execution_count": 1, "metadata": {}, "source": "roster",
            "outputs": [{"output_type": "stream", "name": "stdout", "text": f"{student_id} {first} {last}\n"}],
        }
        safe = {"cell_type": "code", "execution_count": 2, "metadata": {}, "source": "1 + 1",
                "outputs": [{"output_type": "execute_result", "execution_count": 2, "metadata": {},
                             "data": {"text/plain": "2"}}]}
        notebook = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [leaking, safe]}
        _request(f"{base}/contents/leak.ipynb", "PUT", {"type": "notebook", "content": notebook}, token=token)
    finally:
        server.terminate()
        server.wait(timeout=30)
    stored = (root / "leak.ipynb").read_text()
    assert student_id not in stored and first not in stored
    saved = json.loads(stored)
    note = saved["cells"][0]["outputs"][0]
    assert note["output_type"] == "stream" and "cleared when this notebook was saved" in "".join(note["text"])
    assert "".join(saved["cells"][1]["outputs"][0]["data"]["text/plain"]) == "2"
