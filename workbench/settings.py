"""One place that decides every setting, and remembers where each value came from.

Order, for each setting: a command-line option (or an argument a caller passes), then what the
process was set up for (`set_for_process`: a warm kernel given the next report's settings), then
the environment (`WORKBENCH_<NAME>`), then the project's settings file (`workbench.toml`), then the
default. The settings file is the one `WORKBENCH_CONFIG` names, else the first `workbench.toml`
found in the working folder or a folder above it, so a kernel started in `templates/` or
`notebooks/` reads the same file as a command run at the project's top. Paths written in the
file are relative to the file's folder.

    from workbench.settings import resolve
    resolve("policy")            # Setting(name="policy", value="dmps", source="workbench.toml", file=...)
    resolve("policy", "bps")     # Setting(..., value="bps", source="option")

The command line, fill, batch, templates, the guard and the dashboard all ask here; nothing
passes settings around by writing `os.environ`. A child process (a kernel) gets them in the
environment it is started with; a kernel kept for many reports is told the next report's with
`set_for_process`.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import InputError

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
CONFIG_ENV = "WORKBENCH_CONFIG"
CONFIG_FILE = "workbench.toml"


class SettingsError(InputError):
    """A settings file that cannot be read, or a setting that is not known."""


@dataclass(frozen=True)
class Setting:
    name: str
    value: str
    source: str  # "option", "environment WORKBENCH_X", "workbench.toml" or "default"
    file: Path | None = None  # the settings file, when the value came from one

    def __str__(self) -> str:
        return self.value

    def where(self) -> str:
        """The source for a person to read, with the settings file's path."""
        return f"{self.source} ({self.file})" if self.file else self.source


@dataclass(frozen=True)
class _Spec:
    env: str
    in_file: bool  # whether workbench.toml may set it
    is_path: bool  # a path: relative values in the file are taken from the file's folder
    default: str  # may use {project}


_SPECS: dict[str, _Spec] = {
    "policy": _Spec("WORKBENCH_POLICY", True, False, "nces"),
    "warehouse": _Spec("WORKBENCH_WAREHOUSE", True, True, "{project}/data/generated/district.duckdb"),
    "register": _Spec("WORKBENCH_REGISTER", True, False, "sqlite:///{project}/var/register.sqlite"),
    "releases": _Spec("WORKBENCH_RELEASES", True, True, "{project}/releases"),
    # The keys of the release ledger's student hashes (workbench.ledger): the district keeps them.
    "ledger_keys": _Spec("WORKBENCH_LEDGER_KEYS", True, True, "{project}/var/ledger-keys.json"),
    # The data level the notebook guard enforces before a request's template names one.
    "level": _Spec("WORKBENCH_LEVEL", False, False, "aggregate"),
}
NAMES = tuple(_SPECS)
# Settings this process was set up for after it started (see `set_for_process`).
_PROCESS: dict[str, Setting] = {}


def set_for_process(source: str, **values: object) -> None:
    """Set up this process for a new piece of work: `values` rank below options and above the
    environment, recorded as coming from `source`. A warm kernel gets each report's policy, level
    and warehouse this way; its environment (from its first report) is left as it was started.
    """
    unknown = [name for name in values if name not in _SPECS]
    if unknown:
        raise SettingsError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(NAMES)}")
    for name, value in values.items():
        if value is None or str(value) == "":
            _PROCESS.pop(name, None)
        else:
            _PROCESS[name] = Setting(name, _absolute(_SPECS[name], str(value)), source)


def config_file() -> Path | None:
    """The settings file in force, or None."""
    named = os.environ.get(CONFIG_ENV)
    if named:
        path = Path(named)
        if not path.is_file():
            raise SettingsError(f"{CONFIG_ENV} names {path}, which does not exist")
        return path.resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_FILE
        if candidate.is_file():
            return candidate
    return None


def read_file_settings(path: Path | None = None) -> dict:
    path = path if path is not None else config_file()
    if path is None:
        return {}
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read the settings file: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML: {exc}") from None


def project_root() -> Path:
    """The folder of the settings file; without one, the workbench checkout itself."""
    path = config_file()
    return path.parent if path is not None else PACKAGE_ROOT


def resolve(name: str, option: object | None = None) -> Setting:
    """The value of one setting and where it came from (see the module docstring)."""
    spec = _SPECS.get(name)
    if spec is None:
        raise SettingsError(f"unknown setting {name!r}; known: {', '.join(NAMES)}")
    # A relative path given on the command line or in the environment means the working folder's:
    # made absolute here, so a kernel or worker started elsewhere reads the same place.
    if option is not None and str(option) != "":
        return Setting(name, _absolute(spec, str(option)), "option")
    if name in _PROCESS:
        return _PROCESS[name]
    from_env = os.environ.get(spec.env)
    if from_env:
        return Setting(name, _absolute(spec, from_env), f"environment {spec.env}")
    path = config_file()
    if spec.in_file and path is not None:
        value = read_file_settings(path).get(name)
        if value not in (None, ""):
            text = str(value)
            if spec.is_path and "://" not in text and not Path(text).is_absolute():
                text = str((path.parent / text).resolve())
            return Setting(name, text, CONFIG_FILE, path)
    root = path.parent if path is not None else PACKAGE_ROOT
    return Setting(name, spec.default.format(project=root), "default")


def _absolute(spec: "_Spec", text: str) -> str:
    if spec.is_path and "://" not in text and not Path(text).is_absolute():
        return str(Path(text).resolve())
    return text


def describe(**options: object | None) -> dict[str, dict[str, str]]:
    """Every setting with its value and where it came from, for `%workbench status`.

    `options` are the command-line values in force (None: not given). A URL's password is
    replaced, so the result can be shown or logged.
    """
    out = {}
    for name in NAMES:
        setting = resolve(name, options.get(name))
        out[name] = {"value": _without_password(setting.value), "source": setting.where()}
    return out


def sources(**options: object | None) -> dict[str, str]:
    """Where each setting came from, without values or paths: what a release's manifest records."""
    return {name: resolve(name, options.get(name)).source for name in NAMES}


def _without_password(value: str) -> str:
    if "://" not in value or "@" not in value:
        return value
    scheme, rest = value.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"
