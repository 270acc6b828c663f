"""The intake form and the cohort picker in a real JupyterLab page, driven by Playwright.

A JupyterLab server runs on a copy of notebooks/intake.ipynb with the warehouse pointing at a
small generated district and the register at a scratch database. Chromium opens the notebook,
runs it, types a request, uploads a CSV of student IDs through the FileUpload widget, and sees the
problems, the decision and the cohort counts change. Screenshots go to tests/screenshots/.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.browser_fixtures import screenshot
from workbench.register import RequestRegister
from workbench.request import load_request

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
JUPYTER = Path(sys.executable).parent / "jupyter"
YEAR = "2025-2026"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory, small_district_path):
    """A JupyterLab server over a scratch copy of the notebooks folder; stopped on teardown."""
    base = tmp_path_factory.mktemp("lab")
    root = base / "root"
    shutil.copytree(ROOT / "notebooks", root / "notebooks")
    # The district's pack is configured once, for the project: the form reads it from here.
    (root / "workbench.toml").write_text('policy = "bps"\n')
    port, token = _free_port(), secrets.token_hex(16)
    register_url = f"sqlite:///{base / 'register.sqlite'}"
    env = dict(os.environ,
               WORKBENCH_WAREHOUSE=small_district_path,
               WORKBENCH_REGISTER=register_url,
               JUPYTER_CONFIG_DIR=str(base / "config"),
               JUPYTER_RUNTIME_DIR=str(base / "runtime"))
    log = (base / "lab.log").open("w")
    process = subprocess.Popen(
        [str(JUPYTER), "lab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.news_url=",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.extension_manager=readonly"]
        + (["--allow-root"] if os.geteuid() == 0 else []),
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, (base / "lab.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "JupyterLab did not start: " + (base / "lab.log").read_text()[-3000:]
            time.sleep(0.5)
        yield {"url": url, "token": token, "root": root, "register": register_url, "base": base}
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)  # the server and the kernels it started
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        log.close()


def _open_and_run(page, lab) -> None:
    page.set_viewport_size({"width": 1400, "height": 1800})  # room for the form and the decision in a screenshot
    page.goto(f"{lab['url']}/lab/tree/notebooks/intake.ipynb?token={lab['token']}")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
    # Wait for the workbench kernel, then Run > Run All Cells.
    page.wait_for_selector(".jp-NotebookPanel-toolbar .jp-Toolbar-kernelName:has-text('workbench')", timeout=60_000)
    news = page.locator(".jp-Notification-Toast-Close, .Toastify__close-button")  # "Jupyter news?" toast
    # Run > Run All Cells; on a loaded machine the menu can miss the first click (the kernel is
    # still settling, or a toast is in the way), so the cells are run again if no form came.
    for attempt, patience in enumerate((90_000, 120_000)):
        if news.count():
            news.first.click()
        page.locator(".lm-MenuBar-item", has_text="Run").first.click()
        page.locator(".lm-Menu-item:visible", has_text="Run All Cells").first.click()
        try:
            page.wait_for_selector(".wb-intake-form", timeout=patience)
            break
        except PlaywrightTimeout:
            if attempt:
                raise
            page.keyboard.press("Escape")
    if news.count():
        news.first.click()


def _type(page, key: str, text: str) -> None:
    field = page.locator(f".wb-input-{key} input, .wb-input-{key} textarea").first
    field.fill(text)
    field.press("Tab")  # the fields sync on change (blur), not on every key


def _select(page, key: str, labels) -> None:
    """Choose options by their visible labels (the widgets number their <option> values)."""
    labels = [labels] if isinstance(labels, str) else list(labels)
    page.locator(f".wb-input-{key} select").select_option(label=labels)


def _count(page, kind: str) -> str:
    return page.locator(f".wb-cohort-summary [data-count='{kind}']").inner_text()


def test_intake_form_and_cohort_picker_in_jupyterlab(page, lab, small_con, tmp_path):
    _open_and_run(page, lab)
    panel = page.locator(".wb-decision-panel")
    # Nothing typed yet: problems field by field, no decision.
    page.wait_for_selector(".wb-decision-panel .wb-problems")
    assert panel.locator(".wb-problem[data-field='name']").count() == 1
    assert panel.locator(".wb-decision").count() == 0
    screenshot(page, "forms_intake_empty")

    _type(page, "request_id", "REQ-BROWSER-1")
    _type(page, "name", "Jane Doe")
    _select(page, "role", "community partner")
    _type(page, "organization", "Northside Youth Club")
    _type(page, "partner_id", "P-01")
    _type(page, "purpose", "Compare attendance of program students with their schools")
    _type(page, "audience", "Program staff and our board")
    _select(page, "level", "aggregate")
    # Fixed fields drop out of the problems; what is still missing stays, and still no decision.
    page.wait_for_selector(".wb-decision-panel .wb-problem[data-field='name']", state="detached", timeout=30_000)
    page.wait_for_selector(".wb-decision-panel .wb-problem[data-field='level']", state="detached", timeout=30_000)
    assert panel.locator(".wb-problem[data-field='years']").count() == 1
    assert panel.locator(".wb-decision").count() == 0
    assert "is required" not in page.locator(".wb-input-name").locator("..").inner_text()
    _select(page, "years", [YEAR])
    _select(page, "measures", ["enrolled", "attendance_rate"])

    decision = page.wait_for_selector(".wb-decision-panel .wb-decision", timeout=60_000)
    outcome = decision.get_attribute("data-outcome")
    assert outcome in ("approve", "partial")
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", page.locator(".wb-decision-panel .wb-due").inner_text().strip())
    assert page.locator(".wb-decision-panel .wb-reason").count() > 0
    assert "aggregate" in page.locator(".wb-decision-panel .wb-level").inner_text()
    screenshot(page, "forms_intake_decision")

    # Upload a CSV of IDs as a spreadsheet exports them: leading zeros lost, one ID twice, one unknown.
    # (A file whose ID column also holds other text is refused whole: tests/test_id_files.py.)
    enrolled = (small_con.table("student_years").filter(lambda t: t.school_year == YEAR)
                .select("student_id").order_by("student_id").limit(15).to_pandas()["student_id"].tolist())
    assert any(sid.startswith("0") for sid in enrolled)
    rows = [sid.lstrip("0") for sid in enrolled] + [enrolled[0], "9999999"]
    roster = tmp_path / "roster.csv"
    roster.write_text("student_id,program\n" + "\n".join(f"{sid},tutoring" for sid in rows) + "\n")

    page.locator(".wb-cohort-picker .lm-TabBar-tab", has_text="Upload file").click()
    # The FileUpload's <input type=file> is not in the page: its button opens the file chooser.
    with page.expect_file_chooser() as chooser:
        page.locator(".wb-cohort-picker .widget-upload").click()
    chooser.value.set_files(str(roster))
    page.wait_for_selector(".wb-cohort-summary [data-count='matched']", timeout=60_000)
    assert _count(page, "given") == str(len(rows))
    assert _count(page, "matched") == "15"
    assert _count(page, "duplicated") == "1"
    assert _count(page, "unknown") == "1"
    assert _count(page, "malformed") == "0"
    assert page.locator(".wb-cohort-summary [data-count='consent']").count() == 1  # partner P-01 given
    summary_text = page.locator(".wb-cohort-summary").inner_text()
    assert "9999999" in summary_text
    # The decision follows the cohort: 15 students in aggregate, 1 ID not matched.
    page.wait_for_selector(".wb-decision-panel .wb-students-by-level:has-text('15 aggregate')", timeout=60_000)
    assert page.locator(".wb-decision-panel .wb-ids-not-matched").inner_text() == "1"
    screenshot(page, "forms_intake_cohort")

    # Save into a scratch folder and see it registered.
    folder = lab["base"] / "saved"
    folder_input = page.locator(".wb-intake-form .widget-text:has(label:has-text('Save to folder')) input")
    folder_input.fill(str(folder))
    folder_input.press("Tab")
    page.locator(".wb-save").click()
    page.wait_for_selector(".wb-save-status .wb-save-ok", timeout=60_000)
    saved = load_request(folder / "REQ-BROWSER-1.yml")
    assert list(saved.cohort.student_ids) == enrolled + ["9999999"]  # zeros restored, duplicate left out
    with RequestRegister(lab["register"]) as register:
        assert register.status("REQ-BROWSER-1") == "received"
    page.locator(".wb-save").click()
    page.wait_for_selector(".wb-save-status .wb-save-error", timeout=30_000)
    assert "already" in page.locator(".wb-save-status").inner_text()
    screenshot(page, "forms_intake_saved")
