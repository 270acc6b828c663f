"""A batch worker's warm kernel: reused across reports, and nothing of one report reaches the next."""

from __future__ import annotations

import nbformat
import pytest

from workbench.config import POLICY_DIR
from workbench.kernels import WarmKernel

pytestmark = pytest.mark.slow


def _notebook(path, *sources):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    notebook.metadata["kernelspec"] = {"name": "workbench", "display_name": "Python 3 (workbench)", "language": "python"}
    nbformat.write(notebook, path)
    return path


def _printed(notebook) -> str:
    return "".join(o.get("text", "") for cell in notebook.cells for o in cell.outputs)


def test_nothing_of_one_report_is_visible_to_the_next(tmp_path, demo_warehouse):
    import papermill

    first = _notebook(tmp_path / "a.ipynb", "secret_rows = ['0041275']\nimport workbench.guard as g\n"
                                            "g.activate(level='identified')\nprint(g.current_settings().level)")
    second = _notebook(tmp_path / "b.ipynb", "import workbench.guard as g, os\nprint('secret_rows' in globals(), "
                                             "g.current_settings().level, g.current_settings().policy_name, "
                                             "os.getpid())")
    kernel = WarmKernel(tmp_path)
    try:
        kernel.prepare(str(POLICY_DIR / "dmps.yaml"), "identified", demo_warehouse)
        out = papermill.execute_notebook(str(first), str(tmp_path / "a-out.ipynb"), km=kernel.km,
                                         kernel_name="workbench", progress_bar=False)
        assert _printed(out).strip() == "identified"
        pid_before = kernel.km.provisioner.process.pid
        kernel.prepare(str(POLICY_DIR / "bps.yaml"), "aggregate", demo_warehouse)
        out = papermill.execute_notebook(str(second), str(tmp_path / "b-out.ipynb"), km=kernel.km,
                                         kernel_name="workbench", progress_bar=False)
        seen, level, policy, pid = _printed(out).split()
        assert seen == "False", "a variable of the previous report is still there"
        assert (level, policy) == ("aggregate", "bps"), "the guard must be set for the new report"
        assert int(pid) == pid_before, "the kernel was reused, not restarted"
    finally:
        kernel.close()


def test_a_dead_kernel_is_replaced_before_the_next_report(tmp_path, demo_warehouse):
    kernel = WarmKernel(tmp_path)
    try:
        kernel.prepare(str(POLICY_DIR / "bps.yaml"), "aggregate", demo_warehouse)
        kernel.km.provisioner.process.kill()
        kernel.km.provisioner.process.wait()
        kernel.prepare(str(POLICY_DIR / "bps.yaml"), "aggregate", demo_warehouse)
        assert kernel.km.is_alive() and kernel.reports == 2
    finally:
        kernel.close()


def test_a_warm_kernel_releases_the_same_bytes_as_a_fresh_one(tmp_path, demo_warehouse):
    from workbench.batch import FillJob, run_batch
    from workbench.config import DATA_DIR
    from workbench.fill import fill
    from workbench.release.store import ReleaseStore

    demo = DATA_DIR / "requests" / "demo"
    cold = {r: fill(demo / f"{r}.yml", None, "2026-06-01", store=ReleaseStore(tmp_path / "cold"), warehouse=demo_warehouse)
            for r in ("partner_aggregate", "partner_directory")}
    jobs = [FillJob(str(demo / f"{r}.yml"), None, "2026-06-01", str(tmp_path / "warm"), demo_warehouse, False)
            for r in ("partner_aggregate", "partner_directory")]
    warm = run_batch(jobs, workers=1)
    assert all(result["ok"] for result in warm)
    warm_store = ReleaseStore(tmp_path / "warm")
    for result in cold.values():
        assert warm_store.manifest(result.request_id)["content_digest"] == result.release.digest
