"""One settings resolver: option > environment > workbench.toml > default, with the source of each.

The kernel test shows the point of it: a guarded kernel started in a folder whose workbench.toml
names a pack enforces that pack, with no environment variable set.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from workbench import settings
from workbench.errors import InputError


@pytest.fixture
def project(tmp_path, monkeypatch):
    for name in ("WORKBENCH_POLICY", "WORKBENCH_WAREHOUSE", "WORKBENCH_REGISTER", "WORKBENCH_RELEASES",
                 "WORKBENCH_LEVEL", "WORKBENCH_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "workbench.toml").write_text('policy = "dmps"\nwarehouse = "data/district.duckdb"\n'
                                             'releases = "/srv/releases"\n')
    (tmp_path / "notebooks" / "deep").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "notebooks" / "deep")
    return tmp_path


def test_the_settings_file_is_found_above_the_working_folder(project):
    policy = settings.resolve("policy")
    assert (policy.value, policy.source, policy.file) == ("dmps", "workbench.toml", project / "workbench.toml")
    assert settings.resolve("warehouse").value == str(project / "data" / "district.duckdb")
    assert settings.resolve("releases").value == "/srv/releases"
    assert settings.project_root() == project


def test_option_beats_environment_beats_file_beats_default(project, monkeypatch):
    assert settings.resolve("register").source == "default"
    assert settings.resolve("register").value == f"sqlite:///{project}/var/register.sqlite"
    monkeypatch.setenv("WORKBENCH_POLICY", "mps")
    assert (settings.resolve("policy").value, settings.resolve("policy").source) == ("mps", "environment WORKBENCH_POLICY")
    assert settings.resolve("policy", "bps") == settings.Setting("policy", "bps", "option")
    assert settings.sources(policy="bps")["policy"] == "option"
    assert settings.sources()["policy"] == "environment WORKBENCH_POLICY"


def test_a_relative_path_given_as_an_option_or_in_the_environment_is_the_working_folders(project, monkeypatch):
    here = project / "notebooks" / "deep"
    assert settings.resolve("warehouse", "w.duckdb").value == str(here / "w.duckdb")
    monkeypatch.setenv("WORKBENCH_RELEASES", "out")
    assert settings.resolve("releases").value == str(here / "out")
    # URLs and names are left as given.
    assert settings.resolve("warehouse", "postgresql://db/district").value == "postgresql://db/district"
    assert settings.resolve("policy", "bps").value == "bps"


def test_the_level_is_never_read_from_the_file(project):
    (project / "workbench.toml").write_text('level = "identified"\n')
    assert settings.resolve("level").value == "aggregate"


def test_passwords_never_leave_in_a_description(project, monkeypatch):
    monkeypatch.setenv("WORKBENCH_WAREHOUSE", "postgresql://wb:s3cret@db.internal/district")
    shown = settings.describe()["warehouse"]
    assert "s3cret" not in shown["value"] and shown["source"] == "environment WORKBENCH_WAREHOUSE"


def test_a_bad_settings_file_is_an_input_error_naming_it(project):
    (project / "workbench.toml").write_text("policy = \n")
    with pytest.raises(InputError, match="workbench.toml: not valid TOML"):
        settings.resolve("policy")
    with pytest.raises(InputError, match="unknown setting"):
        settings.resolve("colour")


def test_without_a_settings_file_the_checkout_is_the_project(tmp_path, monkeypatch):
    monkeypatch.delenv("WORKBENCH_CONFIG", raising=False)
    monkeypatch.delenv("WORKBENCH_POLICY", raising=False)
    monkeypatch.chdir(tmp_path)
    assert settings.config_file() is None
    assert settings.resolve("policy") == settings.Setting("policy", "nces", "default")
    assert settings.project_root() == settings.PACKAGE_ROOT


@pytest.mark.slow
@pytest.mark.parametrize("pack, ten_is_shown", [("dmps", False), ("nces", True)])
def test_a_kernel_in_a_configured_folder_enforces_that_pack(tmp_path, monkeypatch, pack, ten_is_shown):
    """DMPS suppresses groups of 10 or fewer, the NCES baseline fewer than 10: a count of exactly 10
    tells which pack the guard enforces. Nothing but workbench.toml names the pack."""
    from jupyter_client.manager import start_new_kernel

    from workbench.cli.kernel_commands import install_kernel

    prefix = tmp_path / "prefix"
    install_kernel(prefix=str(prefix))
    folder = tmp_path / "project" / "notebooks"
    folder.mkdir(parents=True)
    (folder.parent / "workbench.toml").write_text(f'policy = "{pack}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env["JUPYTER_PATH"] = str(prefix / "share" / "jupyter")
    manager, client = start_new_kernel(kernel_name="workbench", env=env, cwd=str(folder), startup_timeout=120)
    try:
        shown: list[str] = []

        def keep(message):
            if message["msg_type"] in ("execute_result", "display_data", "stream"):
                content = message["content"]
                shown.append(content.get("text") or content.get("data", {}).get("text/plain", ""))

        client.execute_interactive(
            "import pandas as pd\nimport workbench.guard as g\nprint(g.current_settings().status_line())\n"
            "pd.DataFrame({'students': [10, 250]}, index=['a', 'b'])", output_hook=keep, timeout=120)
        text = "\n".join(shown)
        assert f"policy {pack}" in text and "workbench.toml" in text
        row_a = re.findall(r"^a\s+(\S+)\s*$", text, re.MULTILINE)
        assert row_a == (["10"] if ten_is_shown else ["*"])

        shown.clear()
        client.execute_interactive("%workbench status", output_hook=keep, timeout=120)
        status = "\n".join(shown)
        # Every setting, with where it came from: the pack from the file, the rest by default.
        sources = dict(re.findall(r"^\s+(\w+) = .* \(from (.+)\)$", status, re.MULTILINE))
        assert set(sources) == set(settings.NAMES), status
        assert sources["policy"].startswith("workbench.toml") and str(folder.parent) in sources["policy"]
        assert sources["warehouse"] == "default"
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


@pytest.mark.slow
def test_the_manifest_records_where_each_setting_of_a_real_fill_came_from(tmp_path, demo_warehouse):
    """`workbench fill` in a configured folder, with --releases on the command line: the manifest
    says the release store came from the option (it said workbench.toml), the level from the plan
    (it said default, while the kernel enforced the plan's level), and that no register was used."""
    import json
    import subprocess
    import sys

    import yaml

    from workbench.config import DATA_DIR

    project = tmp_path / "project"
    project.mkdir()
    (project / "workbench.toml").write_text(f'policy = "dmps"\nwarehouse = "{demo_warehouse}"\nreleases = "from-file"\n')
    request = yaml.safe_load((DATA_DIR / "requests" / "demo" / "partner_roster.yml").read_text())
    request.pop("policy")
    (project / "request.yml").write_text(yaml.safe_dump(request, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    command = [str(Path(sys.executable).parent / "workbench"), "fill", "request.yml", "--as-of", "2026-06-01",
               "--releases", "from-option", "--no-register", "--quiet"]
    done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert not (project / "from-file").exists()
    release = project / "from-option" / request["id"]
    # A relative --releases is the working folder's, also for the template (run in templates/):
    # the roster was written there and the release published without it.
    assert (release / "data" / "roster_2025-2026.csv").is_file()
    manifest = json.loads((release / "manifest.json").read_text())
    assert manifest["plan"]["settings"] == {
        "policy": "workbench.toml", "warehouse": "workbench.toml", "releases": "option", "level": "plan",
        "register": "not used", "ledger_keys": "not used"}


# Writing os.environ here would pass settings behind the resolver's back. The dashboard server
# scrubs its own environment before Voila starts its kernels from it (docs/dashboards.md).
ENVIRON_WRITE = re.compile(r"environ(\[[^\]]+\]\s*=(?!=)|\.(setdefault|update|pop|clear)\()|putenv\(")
ENVIRON_WRITERS_ALLOWED = {"workbench/dashboard/server.py"}


def test_no_code_passes_settings_by_writing_the_environment():
    root = Path(__file__).resolve().parent.parent
    found = []
    for folder in ("workbench", "templates", "notebooks"):
        for path in sorted((root / folder).rglob("*")):
            name = path.relative_to(root).as_posix()
            if path.suffix not in (".py", ".ipynb") or name in ENVIRON_WRITERS_ALLOWED:
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if ENVIRON_WRITE.search(line):
                    found.append(f"{name}:{number}: {line.strip()}")
    assert found == []


def test_settings_set_for_the_process_rank_between_option_and_environment(project, monkeypatch):
    monkeypatch.setenv("WORKBENCH_POLICY", "mps")
    try:
        settings.set_for_process("fill", policy="bps", warehouse="elsewhere.duckdb")
        assert settings.resolve("policy") == settings.Setting("policy", "bps", "fill")
        assert settings.resolve("policy", "dmps").value == "dmps"
        assert settings.resolve("warehouse").value == str(Path("elsewhere.duckdb").resolve())
        assert os.environ["WORKBENCH_POLICY"] == "mps"
        with pytest.raises(InputError, match="unknown setting"):
            settings.set_for_process("fill", colour="red")
    finally:
        settings.set_for_process("fill", policy=None, warehouse=None)
    assert settings.resolve("policy").source == "environment WORKBENCH_POLICY"


@pytest.mark.slow
def test_a_warm_kernel_reads_each_report_s_settings_from_the_resolver(tmp_path, demo_warehouse):
    """Before each report the batch's kernel is set up for it without its environment being
    rewritten: the resolver in the kernel answers with the report's settings, source `fill`."""
    import papermill
    import nbformat

    from workbench.config import POLICY_DIR
    from workbench.kernels import WarmKernel

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(
        "import os\nfrom workbench.settings import resolve\n"
        "print(resolve('policy').value, resolve('policy').source, resolve('warehouse').value, "
        "os.environ.get('WORKBENCH_POLICY'))")]
    notebook.metadata["kernelspec"] = {"name": "workbench", "display_name": "Python 3 (workbench)", "language": "python"}
    nbformat.write(notebook, tmp_path / "probe.ipynb")
    other = tmp_path / "other.duckdb"
    other.write_bytes(Path(demo_warehouse).read_bytes())
    kernel = WarmKernel(tmp_path)
    try:
        printed = []
        for pack, warehouse in (("dmps", demo_warehouse), ("bps", str(other))):
            kernel.prepare(str(POLICY_DIR / f"{pack}.yaml"), "aggregate", warehouse)
            out = papermill.execute_notebook(str(tmp_path / "probe.ipynb"), str(tmp_path / f"{pack}.ipynb"),
                                             km=kernel.km, kernel_name="workbench", progress_bar=False)
            printed.append(out.cells[0].outputs[0]["text"].split())
        assert printed[1][:3] == [str(POLICY_DIR / "bps.yaml"), "fill", str(other)]
        assert printed[1][3] == printed[0][3] == str(POLICY_DIR / "dmps.yaml"), "the environment it started with"
    finally:
        kernel.close()
