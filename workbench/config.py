"""Where things live: project folders and the configured warehouse location."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = PROJECT_ROOT / "data"
GENERATED_DIR = DATA_DIR / "generated"
POLICY_DIR = DATA_DIR / "policies"
DEFAULT_WAREHOUSE_PATH = GENERATED_DIR / "district.duckdb"

WAREHOUSE_ENV = "WORKBENCH_WAREHOUSE"
CONFIG_ENV = "WORKBENCH_CONFIG"


def read_config() -> dict:
    """The settings file named by WORKBENCH_CONFIG, else ./workbench.toml, else nothing."""
    named = os.environ.get(CONFIG_ENV)
    path = Path(named) if named else Path.cwd() / "workbench.toml"
    if not path.is_file():
        if named:
            raise FileNotFoundError(f"{CONFIG_ENV} names {path}, which does not exist")
        return {}
    with path.open("rb") as handle:
        return tomllib.load(handle)


def warehouse_location(explicit: str | os.PathLike | None = None) -> str:
    """The warehouse to use: argument, environment, configuration file, then the default file."""
    if explicit:
        return str(explicit)
    from_env = os.environ.get(WAREHOUSE_ENV)
    if from_env:
        return from_env
    configured = read_config().get("warehouse")
    if configured:
        return str(configured)
    return str(DEFAULT_WAREHOUSE_PATH)


REGISTER_ENV = "WORKBENCH_REGISTER"
DEFAULT_REGISTER_PATH = PROJECT_ROOT / "var" / "register.sqlite"


def register_location(explicit: str | None = None) -> str:
    """SQLAlchemy URL of the request register: argument, environment, configuration, default file."""
    if explicit:
        return explicit
    from_env = os.environ.get(REGISTER_ENV)
    if from_env:
        return from_env
    configured = read_config().get("register")
    if configured:
        return str(configured)
    return f"sqlite:///{DEFAULT_REGISTER_PATH}"
