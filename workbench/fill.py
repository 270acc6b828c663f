"""`workbench fill`: from a request file to a checked, immutable release.

    plan (decide once: students per year, fields, template) -> run the template with papermill in
    the guarded kernel, reading the plan, writing into a staging folder -> release check (the
    plan's contract included) -> manifest -> atomic publish -> request register

Anything that fails leaves no release folder behind and says which step (and for a template,
which cell) failed. A refused or redirected request gets a decision letter instead of data.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import nbformat

from workbench import __version__
from workbench.config import TEMPLATES_DIR, releases_location
from workbench.decision import Decision
from workbench.errors import EnvironmentProblem, InputError
from workbench.ledger import PublishedDifference
from workbench.plan import ReleasePlan, apply_conflicts, make_plan, policy_for
from workbench.policy import Policy
from workbench.progress import Stage, no_progress
from workbench.release.check import CheckReport, Identifiers, check_release
from workbench.release.store import PublishedRelease, ReleaseStore, checksums, content_digest
from workbench.report.narrative import decision_letter
from workbench.request import DataRequest, load_request
from workbench.settings import resolve, sources
from workbench.warehouse import connect

KERNEL_NAME = "workbench"
# Cell metadata papermill and Jupyter stamp with times; dropped so a re-run is byte-identical.
_VOLATILE_CELL_METADATA = ("papermill", "execution", "ExecuteTime")


class FillError(EnvironmentProblem):
    """The request could not be filled; nothing was released."""


class PolicyMismatch(InputError):
    """The register decided the request under another policy than the one in force."""


@dataclass
class FillResult:
    request_id: str
    outcome: str
    level: str | None
    release: PublishedRelease
    check: CheckReport
    tables: dict = field(default_factory=dict)

    def summary(self) -> str:
        suppressed = sum(t.get("suppressed", t.get("primary", 0) + t.get("secondary", 0)) for t in self.tables.values())
        files = len(json.loads((self.release.path / "manifest.json").read_text())["files"])
        state = "unchanged (identical release exists)" if self.release.reused else "released"
        lines = [f"{self.request_id}: {self.outcome} ({self.level or 'no data'}) -> {self.release.path} "
                 f"[{files} files, {len(self.tables)} tables, {suppressed} cells suppressed; {state}]"]
        for name, table in sorted(self.tables.items()):
            for offer in table.get("bands_offer", ()):
                asked, banded = offer["as_asked"], offer["banded"]
                lines.append(
                    f"  {name}: by {offer['breakdown']} band ({', '.join(offer['bands'])}) "
                    f"{banded['cells_hidden']} cells and {banded['students_hidden']} students would be hidden, "
                    f"not {asked['cells_hidden']} and {asked['students_hidden']}: "
                    f"add `bands: [{offer['breakdown']}]` to the request to publish the bands")
        return "\n".join(lines)


def releases_root() -> Path:
    return releases_location()


def _kernel_manager_with(environment: dict[str, str]):
    """A kernel manager class that starts the guarded kernel with `environment` added.

    The kernel is a child process: it gets the request's policy, level and warehouse in the
    environment it starts with (read by the settings resolver there), so the guard enforces them
    from the first cell. This process's own environment is left as it is.
    """
    from jupyter_client import AsyncKernelManager

    class RequestKernelManager(AsyncKernelManager):
        async def _async_pre_start_kernel(self, **kw):
            kw["env"] = {**(kw.get("env") or os.environ), **environment}
            # The kernel's own log (transport warnings, the interrupt it gets when it is shut
            # down) is not for the analyst's terminal, and a traceback there could quote data.
            kw.setdefault("stderr", subprocess.DEVNULL)
            kw.setdefault("stdout", subprocess.DEVNULL)
            return await super()._async_pre_start_kernel(**kw)

    return RequestKernelManager


def _scrub(notebook_path: Path, request_file: Path) -> None:
    """Make the executed notebook depend only on the request and the data.

    Papermill stamps times and a random id on the cells it touches, and the parameters it
    injects name the staging folder; a re-run must give the same bytes, and the release must not
    record where it was built.
    """
    notebook = nbformat.read(notebook_path, as_version=4)
    notebook.metadata.pop("papermill", None)
    executed = 0
    for index, cell in enumerate(notebook.cells):
        cell["id"] = f"cell-{index}"
        if cell.cell_type == "code" and cell.get("execution_count") is not None:
            # Numbered from 1 whatever ran in the kernel before (a warm batch kernel).
            executed += 1
            cell.execution_count = executed
            for output in cell.outputs:
                if output.get("output_type") == "execute_result":
                    output["execution_count"] = executed
        for key in _VOLATILE_CELL_METADATA:
            cell.metadata.pop(key, None)
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell.source = "\n".join(
                f'request_file = "{request_file.name}"' if line.startswith("request_file") else
                'output_dir = "."  # this release folder' if line.startswith("output_dir") else
                'plan_file = None  # the release plan names students: kept by the district, not released'
                if line.startswith("plan_file") else line
                for line in cell.source.splitlines()
            )
    nbformat.write(notebook, notebook_path)


def _failed_cell(exc: Exception) -> str:
    """Which cell failed and the error's type: never the error text, which may quote data."""
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        return f"cell {exc.exec_count or exc.cell_index} raised {exc.ename}"
    return type(exc).__name__


def _run_template(template: Path, staging: Path, request_file: Path, plan: ReleasePlan, plan_file: Path,
                  warehouse: str, kernel=None, progress: Stage = no_progress) -> None:
    import papermill

    from workbench.guard import papermill_engine

    environment = {"WORKBENCH_POLICY": plan.policy_path, "WORKBENCH_LEVEL": plan.level or "aggregate",
                   "WORKBENCH_WAREHOUSE": warehouse}
    if kernel is not None:
        # A warm kernel (batch): cleared of the last report and set for this one first.
        progress("preparing the warm kernel")
        kernel.prepare(plan.policy_path, plan.level or "aggregate", warehouse)
        where = {"km": kernel.km}
    else:
        progress("starting kernel")
        where = {"kernel_manager_class": _kernel_manager_with(environment)}
    from workbench.guard.student_index import using_warehouse

    try:
        # The saved notebook is checked against the students of the warehouse filled from.
        with using_warehouse(warehouse):
            papermill.execute_notebook(
                str(template), str(staging / "report.ipynb"),
                parameters={"request_file": str(request_file), "policy": plan.policy_path,
                            "as_of": plan.decision.as_of.isoformat(), "output_dir": str(staging),
                            "plan_file": str(plan_file)},
                kernel_name=KERNEL_NAME, cwd=str(template.parent), progress_bar=False, log_output=False,
                engine_name=papermill_engine.register(), on_cell=_cell_progress(progress), save_each_cell=False,
                **where,
            )
    except Exception as exc:
        raise FillError(f"template {template.name} failed: {_failed_cell(exc)}; no release was written") from None
    _scrub(staging / "report.ipynb", request_file)


def _cell_progress(progress: Stage):
    def on_cell(number: int, of: int, section: str) -> None:
        progress(f"cell {number}/{of}" + (f" ({section})" if section else ""))

    return on_cell


def _manifest(request: DataRequest, plan: ReleasePlan, policy: Policy, template: str | None, tables: dict,
              check: CheckReport) -> dict:
    decision = plan.decision
    request_data = json.loads(request.model_dump_json())
    cohort = request_data.get("cohort") or {}
    if cohort.get("student_ids"):
        # The release records how many IDs were asked for, not the IDs themselves.
        cohort["student_ids"] = f"{len(cohort['student_ids'])} IDs"
    if request_data["requester"].get("student_ids"):
        request_data["requester"]["student_ids"] = f"{len(request_data['requester']['student_ids'])} IDs"
    decision_data = decision.to_public_dict()
    return {
        "request": request_data,
        "decision": decision_data,
        "policy": {"name": policy.name, "title": policy.title, "content_hash": policy.content_hash},
        "software": {"workbench": __version__},
        "template": template,
        "plan": plan.summary(),
        "protection": {name: _recipient_view(summary) for name, summary in tables.items()},
        "released": check.released,
        "release_check": {"passed": check.passed, "artifacts": len(check.artifacts)},
    }


# Figures about versions of a table that were never released: the release audit does not model
# them, so they stay with the analyst (printed by fill) and never reach the recipient's manifest.
_ANALYST_ONLY_SUMMARY = ("bands_offer",)


def _recipient_view(summary: dict) -> dict:
    return {key: value for key, value in summary.items() if key not in _ANALYST_ONLY_SUMMARY}


def _registered_policy(register, request_id: str) -> str | None:
    """The policy of the request's latest decision in the register, if it has one."""
    from workbench.register import RegisterError

    try:
        decisions = register.show(request_id)["decisions"]
    except RegisterError:
        return None
    return decisions[-1]["policy"] if decisions else None


def fill(
    request_file: str | os.PathLike,
    policy: str | Policy | None = None,
    as_of: date | str | None = None,
    *,
    store: ReleaseStore | None = None,
    warehouse: str | None = None,
    register=None,
    by: str | None = None,
    ledger=None,
    kernel=None,
    progress: Stage | None = None,
) -> FillResult:
    """Fill one request into a release folder (see the module docstring).

    `ledger` (workbench.ledger.Ledger) compares the plan with what its recipient already holds and
    records the release; by default it is the ledger in the register's database when a `register`
    is given, and none otherwise. `kernel` (workbench.kernels.WarmKernel) runs the template in a
    kernel kept across fills (batches); without it each fill starts its own. `progress`
    (workbench.progress.Stage) hears each stage as it starts.

    `policy` None takes the district's configured policy (workbench.settings). When the register
    already decided the request under another policy, the fill stops unless `policy` was given
    explicitly: a request is released under the policy it was registered under.
    """
    progress = progress or no_progress
    request_file = Path(request_file).resolve()
    request = load_request(request_file)
    policy, policy_source = policy_for(request, policy)
    if register is not None and policy_source != "option":
        registered = _registered_policy(register, request.id)
        if registered is not None and registered != policy.name:
            raise PolicyMismatch(
                f"request {request.id} was decided under the {registered} policy, and the policy in force is "
                f"{policy.name} ({policy_source}); fill it with --policy {registered}, or with --policy "
                f"{policy.name} to decide it again under that policy")
    if as_of and not isinstance(as_of, date):
        try:
            as_of = date.fromisoformat(str(as_of))
        except ValueError as exc:
            raise InputError(f"as_of: {exc}") from None
    as_of = as_of or date.today()
    # A store the caller gives is an option (`--releases`); its folder is made absolute, because
    # the template runs in another working folder and writes into the store's staging folder.
    releases_source = "option" if store is not None else resolve("releases").source
    store = store if store is not None else ReleaseStore(releases_root())
    store.root = Path(store.root).absolute()
    warehouse_location = resolve("warehouse", os.fspath(warehouse) if warehouse else None).value
    con = connect(warehouse_location)
    if ledger is None and register is not None:
        from workbench.ledger import Ledger

        ledger = Ledger(register.url)
    if ledger is not None:
        ledger.recover(store)
    if register is not None:
        _recover_register(register, store, by)
    settings = _setting_sources(warehouse, policy_source, releases_source, register, ledger)
    progress("deciding")
    plan = make_plan(request, policy, con, as_of, settings=settings, ledger=ledger)
    if plan.template is not None and plan.level == "aggregate" and not plan.table_breakdowns:
        raise InputError(f"{request_file.name}: breakdowns: an aggregate report needs something to split its tables "
                         "by (for example grade); a program is asked for as the cohort, not as a breakdown")
    rule = policy.small_group_rule()

    def attempt() -> tuple[PublishedRelease, CheckReport, dict]:
        decision = plan.decision
        tables: dict = {}
        student_files: dict = {}
        with store.staging(request.id) as staging, tempfile.TemporaryDirectory(prefix="workbench-plan-") as private:
            if plan.template is None:
                progress("writing the decision letter")
                (staging / "letter.md").write_text(decision_letter(request, decision, policy.title))
                public = json.dumps(decision.to_public_dict(), indent=2, ensure_ascii=False)
                (staging / "decision.json").write_text(public + "\n")
                level = "aggregate"
            else:
                template = TEMPLATES_DIR / f"{plan.template}.ipynb"
                level = plan.level
                plan_file = plan.save(Path(private) / "plan.json")
                _run_template(template, staging, request_file, plan, plan_file, warehouse_location, kernel, progress)
                protection = staging / "protection.json"
                if protection.exists():
                    recorded = json.loads(protection.read_text())
                    tables = recorded.get("tables", {})
                    student_files = recorded.get("student_files", {})
                    protection.unlink()
                unsafe = [name for name, t in tables.items() if not t.get("audit_safe", False)]
                if unsafe:
                    raise FillError(f"the audit could not prove tables {', '.join(unsafe)} safe; no release was written")
            progress("checking release")
            identifiers = Identifiers.from_warehouse(con)
            aggregate_only = list(policy.pack.fields.aggregate_only.fields)
            check = check_release(staging, level, rule, identifiers, aggregate_only_fields=aggregate_only,
                                  plan=plan if plan.template else None, tables=tables, con=con)
            if not check.passed:
                raise FillError(check.summary())
            manifest = _manifest(request, plan, policy, f"{plan.template}.ipynb" if plan.template else None, tables, check)
            if student_files:
                manifest["extract_report"] = student_files  # what the k-anonymity step did, in counts
            pending = None
            if ledger is not None and plan.template is not None:
                from workbench.ledger import published_groups

                # Written before the folder is published and confirmed after: a crash in between
                # leaves a pending entry that the next fill's recover() completes or removes.
                pending = ledger.begin(plan, content_digest(checksums(staging)), published_groups(staging, tables), con,
                                       rule)
            if register is not None and plan.template is not None:
                # Up to "filled" before the folder is published, "released" right after: a crash in
                # between leaves "filled", which the next fill completes when the release is there.
                _record_filled(register, request, decision, by)
            progress("publishing")
            published = store.publish(staging, request.id, manifest)
            if ledger is not None:
                ledger.commit(pending)
        return published, check, tables

    while True:
        try:
            published, check, tables = attempt()
            break
        except PublishedDifference as difference:
            # Which categories protection hides is known only once the tables are made: a
            # published group that differs by a few students from a group the recipient holds
            # under another definition leaves its school year out, as a conflict in the plan does.
            apply_conflicts(plan, difference.conflicts, policy)
            progress("leaving out " + ", ".join(sorted({c.school_year for c in difference.conflicts})))
    decision = plan.decision
    if register is not None:
        _record(register, request, decision, published, by)
    return FillResult(request.id, decision.outcome, decision.level, published, check, tables)


def _setting_sources(warehouse, policy_source: str, releases_source: str, register, ledger) -> dict[str, str]:
    """Where each setting of this fill came from, for the manifest.

    The kernel enforces the plan's level (not the `level` setting), and a register or ledger the
    fill does not use has no source worth recording.
    """
    found = sources(warehouse=warehouse)
    found |= {"policy": policy_source, "releases": releases_source, "level": "plan"}
    if register is None:
        found["register"] = "not used"
    if ledger is None:
        found["ledger_keys"] = "not used"
    return found


def _record_filled(register, request: DataRequest, decision: Decision, by: str | None) -> None:
    """Registered, decided, approved and filled: everything but "released"."""
    from workbench.register import RegisterError

    try:
        register.status(request.id)
    except RegisterError:
        register.register(request, by=by)
    register.record_decision(decision, by=by)
    path = {"received": ["approved", "filled"], "clarifying": ["approved", "filled"], "approved": ["filled"]}
    for status in path.get(register.status(request.id), []):
        register.set_status(request.id, status, by=by)


def _recover_register(register, store: ReleaseStore, by: str | None) -> None:
    """Requests left "filled" by a fill that stopped after publishing: released if the folder is there."""
    for entry in register.list_requests(status="filled"):
        try:
            if store.exists(entry.request_id):
                digest = store.manifest(entry.request_id).get("content_digest", "")
                register.set_status(entry.request_id, "released", by=by,
                                    note=f"release {entry.request_id} ({digest[:12]}); recorded after an interrupted fill")
        except (OSError, ValueError):
            continue


def _record(register, request: DataRequest, decision: Decision, published: PublishedRelease, by: str | None) -> None:
    """Bring the request's register entry up to date: registered, decided, filled, released."""
    from workbench.register import RegisterError

    try:
        register.status(request.id)
    except RegisterError:
        register.register(request, by=by)
    current = register.status(request.id)
    if current not in ("filled", "released"):
        register.record_decision(decision, by=by)
    note = f"release {published.path.name} ({published.digest[:12]})"
    if decision.outcome in ("refuse", "redirect"):
        if current in ("received", "clarifying"):
            register.set_status(request.id, "refused", by=by, note=f"{decision.outcome}: letter in {note}")
        return
    path = {"received": ["approved", "filled", "released"], "clarifying": ["approved", "filled", "released"],
            "approved": ["filled", "released"], "filled": ["released"]}.get(current, [])
    for status in path:
        register.set_status(request.id, status, by=by, note=note if status != "approved" else None)
