"""`workbench fill`: from a request file to a checked, immutable release.

    decide -> pick the template for the granted level -> run it with papermill in the guarded
    kernel, writing into a staging folder -> release check -> manifest -> atomic publish ->
    request register

Anything that fails leaves no release folder behind and says which step (and for a template,
which cell) failed. A refused or redirected request gets a decision letter instead of data.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import nbformat

from workbench import __version__
from workbench.config import PROJECT_ROOT
from workbench.decision import Decision, decide
from workbench.policy import Policy, load_policy
from workbench.release.check import CheckReport, Identifiers, check_release
from workbench.release.store import PublishedRelease, ReleaseStore
from workbench.report.context import default_policy_name
from workbench.report.narrative import decision_letter
from workbench.request import DataRequest, load_request
from workbench.warehouse import connect
from workbench.errors import EnvironmentProblem

TEMPLATES_DIR = PROJECT_ROOT / "templates"
DEFAULT_RELEASES = PROJECT_ROOT / "releases"
KERNEL_NAME = "workbench"
RELEASES_ENV = "WORKBENCH_RELEASES"
# Cell metadata papermill and Jupyter stamp with times; dropped so a re-run is byte-identical.
_VOLATILE_CELL_METADATA = ("papermill", "execution", "ExecuteTime")


class FillError(EnvironmentProblem):
    """The request could not be filled; nothing was released."""


@dataclass
class FillResult:
    request_id: str
    outcome: str
    level: str | None
    release: PublishedRelease
    check: CheckReport
    tables: dict = field(default_factory=dict)

    def summary(self) -> str:
        suppressed = sum(t.get("primary", 0) + t.get("secondary", 0) for t in self.tables.values())
        files = len(json.loads((self.release.path / "manifest.json").read_text())["files"])
        state = "unchanged (identical release exists)" if self.release.reused else "released"
        return (f"{self.request_id}: {self.outcome} ({self.level or 'no data'}) -> {self.release.path} "
                f"[{files} files, {len(self.tables)} tables, {suppressed} cells suppressed; {state}]")


def releases_root() -> Path:
    return Path(os.environ.get(RELEASES_ENV) or DEFAULT_RELEASES)


def template_for(request: DataRequest, decision: Decision) -> Path:
    """The template that answers this request at the level it was granted."""
    level = decision.level
    if level == "aggregate":
        name = "school_report" if request.requester.role in ("school_leader", "teacher") or (
            request.cohort is not None and request.cohort.kind == "school") else "partner_aggregate"
    else:
        name = {"deidentified": "deidentified_extract", "identified": "identified_roster", "directory": "directory_list"}[level]
    return TEMPLATES_DIR / f"{name}.ipynb"


def _scrub(notebook_path: Path, request_file: Path) -> None:
    """Make the executed notebook depend only on the request and the data.

    Papermill stamps times and a random id on the cells it touches, and the parameters it
    injects name the staging folder; a re-run must give the same bytes, and the release must not
    record where it was built.
    """
    notebook = nbformat.read(notebook_path, as_version=4)
    notebook.metadata.pop("papermill", None)
    for index, cell in enumerate(notebook.cells):
        cell["id"] = f"cell-{index}"
        for key in _VOLATILE_CELL_METADATA:
            cell.metadata.pop(key, None)
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell.source = "\n".join(
                f'request_file = "{request_file.name}"' if line.startswith("request_file") else
                'output_dir = "."  # this release folder' if line.startswith("output_dir") else line
                for line in cell.source.splitlines()
            )
    nbformat.write(notebook, notebook_path)


def _failed_cell(exc: Exception) -> str:
    """Which cell failed and the error's type: never the error text, which may quote data."""
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        return f"cell {exc.exec_count or exc.cell_index} raised {exc.ename}"
    return type(exc).__name__


def _run_template(template: Path, staging: Path, request_file: Path, policy: Policy, as_of: date,
                  level: str, warehouse: str | None) -> None:
    import papermill

    env_before = {k: os.environ.get(k) for k in ("WORKBENCH_POLICY", "WORKBENCH_LEVEL", "WORKBENCH_WAREHOUSE")}
    # The kernel reads these when it starts, so the guard is on from the first cell.
    os.environ["WORKBENCH_POLICY"] = str(policy.path)
    os.environ["WORKBENCH_LEVEL"] = level
    if warehouse:
        os.environ["WORKBENCH_WAREHOUSE"] = str(warehouse)
    try:
        papermill.execute_notebook(
            str(template), str(staging / "report.ipynb"),
            parameters={"request_file": str(request_file), "policy": str(policy.path),
                        "as_of": as_of.isoformat(), "output_dir": str(staging)},
            kernel_name=KERNEL_NAME, cwd=str(template.parent), progress_bar=False, log_output=False,
        )
    except Exception as exc:
        raise FillError(f"template {template.name} failed: {_failed_cell(exc)}; no release was written") from None
    finally:
        for key, value in env_before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    _scrub(staging / "report.ipynb", request_file)


def _manifest(request: DataRequest, decision: Decision, policy: Policy, template: str | None, tables: dict,
              check: CheckReport) -> dict:
    request_data = json.loads(request.model_dump_json())
    cohort = request_data.get("cohort") or {}
    if cohort.get("student_ids"):
        # The release records how many IDs were asked for, not the IDs themselves.
        cohort["student_ids"] = f"{len(cohort['student_ids'])} IDs"
    if request_data["requester"].get("student_ids"):
        request_data["requester"]["student_ids"] = f"{len(request_data['requester']['student_ids'])} IDs"
    decision_data = decision.to_dict()
    decision_data["students"] = f"{len(decision.students)} students, by level: {decision.cohort.get('by_level', {})}"
    return {
        "request": request_data,
        "decision": decision_data,
        "policy": {"name": policy.name, "title": policy.title, "content_hash": policy.content_hash},
        "software": {"workbench": __version__},
        "template": template,
        "protection": tables,
        "release_check": {"passed": check.passed, "artifacts": len(check.artifacts)},
    }


def fill(
    request_file: str | os.PathLike,
    policy: str | Policy | None = None,
    as_of: date | str | None = None,
    *,
    store: ReleaseStore | None = None,
    warehouse: str | None = None,
    register=None,
    by: str | None = None,
) -> FillResult:
    """Fill one request into a release folder (see the module docstring)."""
    request_file = Path(request_file).resolve()
    request = load_request(request_file)
    policy = policy if isinstance(policy, Policy) else load_policy(policy or default_policy_name())
    as_of = date.fromisoformat(str(as_of)) if as_of else date.today()
    store = store or ReleaseStore(releases_root())
    con = connect(warehouse)
    decision = decide(request, policy, con, as_of)
    rule = policy.small_group_rule()
    tables: dict = {}
    template_name = None
    with store.staging(request.id) as staging:
        if decision.outcome in ("refuse", "redirect") or decision.level is None:
            (staging / "letter.md").write_text(decision_letter(request, decision, policy.title))
            (staging / "decision.json").write_text(decision.to_json() + "\n")
            level = "aggregate"
        else:
            template = template_for(request, decision)
            template_name = template.name
            level = decision.level
            _run_template(template, staging, request_file, policy, as_of, level, warehouse)
            protection = staging / "protection.json"
            if protection.exists():
                tables = json.loads(protection.read_text()).get("tables", {})
                protection.unlink()
            unsafe = [name for name, t in tables.items() if not t.get("audit_safe", False)]
            if unsafe:
                raise FillError(f"the audit could not prove tables {', '.join(unsafe)} safe; no release was written")
        identifiers = Identifiers.from_warehouse(con)
        aggregate_only = list(policy.pack.fields.aggregate_only.fields)
        check = check_release(staging, level, rule, identifiers, aggregate_only_fields=aggregate_only)
        if not check.passed:
            raise FillError(check.summary())
        published = store.publish(staging, request.id, _manifest(request, decision, policy, template_name, tables, check))
    if register is not None:
        _record(register, request, decision, published, by)
    return FillResult(request.id, decision.outcome, decision.level, published, check, tables)


def _record(register, request: DataRequest, decision: Decision, published: PublishedRelease, by: str | None) -> None:
    """Bring the request's register entry up to date: registered, decided, filled, released."""
    from workbench.register import RegisterError

    try:
        register.status(request.id)
    except RegisterError:
        register.register(request, by=by)
    register.record_decision(decision, by=by)
    current = register.status(request.id)
    note = f"release {published.path.name} ({published.digest[:12]})"
    if decision.outcome in ("refuse", "redirect"):
        if current in ("received", "clarifying"):
            register.set_status(request.id, "refused", by=by, note=f"{decision.outcome}: letter in {note}")
        return
    path = {"received": ["approved", "filled", "released"], "clarifying": ["approved", "filled", "released"],
            "approved": ["filled", "released"], "filled": ["released"]}.get(current, [])
    for status in path:
        register.set_status(request.id, status, by=by, note=note if status != "approved" else None)
