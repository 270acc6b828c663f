"""environment.yml (conda users) must stay consistent with pyproject.toml (pip users)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
# conda-forge splits some pip packages; the conda name that carries the same code.
CONDA_NAME = {"ibis-framework": "ibis-framework-core"}
PIP_ONLY_EXTRAS = {"bench"}  # pip only (not on conda-forge)
PIP_ONLY_PACKAGES = {"axe-playwright-python"}  # listed under environment.yml's pip: block


def requirement(text: str) -> tuple[str, str]:
    match = re.match(r"^\s*([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*(.*)$", text)
    assert match, text
    return match.group(1).lower(), match.group(3).replace(" ", "")


def test_environment_yml_lists_every_pyproject_dependency_with_the_same_bounds():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [requirement(r) for r in project["dependencies"]]
    for extra, items in project["optional-dependencies"].items():
        if extra not in PIP_ONLY_EXTRAS:
            wanted += [requirement(r) for r in items]
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    listed = {}
    for item in environment["dependencies"]:
        if isinstance(item, str):
            name, bound = requirement(item)
            listed[name] = bound
        else:
            for line in item.get("pip", []):
                name, bound = requirement(line)
                if name in PIP_ONLY_PACKAGES:
                    listed[name] = bound
    for name, bound in wanted:
        conda_name = CONDA_NAME.get(name, name)
        assert conda_name in listed, f"{name} is in pyproject.toml but not in environment.yml"
        assert listed[conda_name] == bound, f"{name}: pyproject says {bound!r}, environment.yml {listed[conda_name]!r}"
    python = project["requires-python"]
    assert listed["python"] == python


def test_environment_yml_installs_the_package_itself():
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_items = [item for item in environment["dependencies"] if isinstance(item, dict)]
    assert any("-e .[dev]" in line for block in pip_items for line in block.get("pip", []))
