"""Where things live: the warehouse, the request register and the package's own folders.

The values come from the settings resolver (`workbench.settings`): option, environment,
`workbench.toml`, default. These functions are the names the rest of the package uses.
"""

from __future__ import annotations

import os
from pathlib import Path

from workbench.settings import PACKAGE_ROOT, read_file_settings, resolve

# The workbench checkout (templates, policy packs, docs ship here).
PROJECT_ROOT = PACKAGE_ROOT
DATA_DIR = PROJECT_ROOT / "data"
GENERATED_DIR = DATA_DIR / "generated"
POLICY_DIR = DATA_DIR / "policies"
TEMPLATES_DIR = PROJECT_ROOT / "templates"
DEFAULT_WAREHOUSE_PATH = GENERATED_DIR / "district.duckdb"
DEFAULT_PARQUET_PATH = GENERATED_DIR / "district-parquet"

WAREHOUSE_ENV = "WORKBENCH_WAREHOUSE"
REGISTER_ENV = "WORKBENCH_REGISTER"
CONFIG_ENV = "WORKBENCH_CONFIG"


def read_config() -> dict:
    """The settings file's content (see `workbench.settings.config_file`), or nothing."""
    return read_file_settings()


def warehouse_location(explicit: str | os.PathLike | None = None) -> str:
    """The warehouse to use: argument, environment, settings file, then the default file."""
    return resolve("warehouse", os.fspath(explicit) if explicit else None).value


def register_location(explicit: str | None = None) -> str:
    """SQLAlchemy URL of the request register: argument, environment, settings file, default."""
    return resolve("register", explicit).value


def releases_location(explicit: str | os.PathLike | None = None) -> Path:
    """The release store folder: argument, environment, settings file, default."""
    return Path(resolve("releases", os.fspath(explicit) if explicit else None).value)


def policy_name(explicit: str | None = None) -> str:
    """The district's policy pack: argument, environment, settings file, then the baseline."""
    return resolve("policy", explicit).value
