"""A newcomer's first hour, in a real browser, as the README tells it.

A project folder of its own (the intake notebook, the templates, a `workbench.toml` naming the
district's policy, warehouse and register) and a real JupyterLab server on it. Chromium opens the
launcher, the intake notebook (fills the form, sees the decision, saves), then a template pointed
at the saved request; the terminal's `workbench fill` releases it; `workbench serve` shows it to the
partner on a desktop screen and on a phone. Every step asserts what a person sees: texts, numbers,
no sideways scrolling, filters that work, and axe-core's accessibility rules (run offline).

The tests run in order and share the project; each screenshot named walkthrough_* is kept in the
repository for the README.
"""

from __future__ import annotations

import csv
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.browser_fixtures import accessibility_problems, screenshot, sideways_scroll

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
REQUEST_ID = "REQ-WALK-1"
AS_OF = "2026-06-01"  # the synthetic district's "today"
YEAR = "2025-2026"
PARTNER_TOKEN = "walkthrough-token-of-partner-p01"
SLOW_MS = 240_000  # the CI machine has two cores shared by everything: wait for texts, generously
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _environment(base: Path) -> dict[str, str]:
    """The shell of an analyst in the project: no WORKBENCH_* settings, so workbench.toml rules."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env.update(JUPYTER_CONFIG_DIR=str(base / "jupyter-config"), JUPYTER_RUNTIME_DIR=str(base / "jupyter-runtime"))
    return env


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _wait_for(url: str, process: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            with urllib.request.urlopen(url, timeout=3):
                return
        except urllib.error.HTTPError:
            return  # up, and answering
        except OSError:
            pass
        assert time.monotonic() < deadline, f"{url} did not come up: " + log.read_text()[-3000:]
        time.sleep(0.5)


@pytest.fixture(scope="module")
def project(tmp_path_factory, demo_warehouse):
    """An analyst's project folder, configured once in workbench.toml."""
    base = tmp_path_factory.mktemp("walkthrough")
    root = base / "project"
    shutil.copytree(ROOT / "notebooks", root / "notebooks")
    shutil.copytree(ROOT / "templates", root / "templates")
    shutil.copytree(ROOT / "data" / "requests" / "demo", root / "data" / "requests" / "demo")
    (root / "workbench.toml").write_text(
        f'policy = "dmps"\nwarehouse = "{demo_warehouse}"\nregister = "sqlite:///{root}/var/register.sqlite"\n')
    # Every cell stays in the page (JupyterLab otherwise renders only those in view), so that
    # the test can read a whole notebook's outputs as a person scrolling through it would.
    settings = base / "jupyter-config" / "lab" / "user-settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    return {"root": root, "base": base, "env": _environment(base)}


@pytest.fixture(scope="module")
def lab(project):
    port, token = _free_port(), secrets.token_hex(16)
    log_path = project["base"] / "lab.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [str(BIN / "jupyter"), "lab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={project['root']}", "--LabApp.news_url=",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.extension_manager=readonly"]
        + (["--allow-root"] if os.geteuid() == 0 else []),
        cwd=project["root"], env=project["env"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{url}/api/status?token={token}", process, log_path)
        yield {"url": url, "token": token}
    finally:
        _stop(process)
        log.close()


def _dismiss_notifications(page) -> None:
    close = page.locator(".jp-Notification-Toast-Close, .Toastify__close-button")
    for index in range(close.count()):
        try:
            close.nth(index).click(timeout=2_000)
        except Exception:  # a toast that went away by itself
            pass


def _open_notebook(page, lab, path: str) -> None:
    page.goto(f"{lab['url']}/lab/tree/{path}?token={lab['token']}")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=SLOW_MS)
    # The notebook runs in the guarded kernel, named so in the toolbar.
    page.wait_for_selector(".jp-NotebookPanel-toolbar .jp-Toolbar-kernelName:has-text('Python 3 (workbench)'):visible",
                           timeout=SLOW_MS)
    page.wait_for_selector(".jp-NotebookPanel-toolbar .jp-Notebook-ExecutionIndicator[data-status='idle']:visible",
                           timeout=SLOW_MS)


def _run_all(page) -> None:
    page.locator(".lm-MenuBar-item", has_text="Run").first.click()
    page.locator(".lm-Menu-item:visible", has_text="Run All Cells").first.click()


def _wait_until_idle(page) -> None:
    """Every cell has run: no prompt shows [*] and the kernel is idle."""
    page.wait_for_function(
        """() => ![...document.querySelectorAll('.jp-InputPrompt')].some(p => p.textContent.includes('[*]'))""",
        timeout=SLOW_MS)
    page.wait_for_selector(".jp-NotebookPanel-toolbar .jp-Notebook-ExecutionIndicator[data-status='idle']:visible",
                           timeout=SLOW_MS)


def _type(page, key: str, text: str) -> None:
    field = page.locator(f".wb-input-{key} input, .wb-input-{key} textarea").first
    field.fill(text)
    field.press("Tab")  # the form reads a field when it loses focus


def _select(page, key: str, labels) -> None:
    labels = [labels] if isinstance(labels, str) else list(labels)
    page.locator(f".wb-input-{key} select").select_option(label=labels)


def test_the_launcher_offers_only_the_guarded_kernel(page, lab):
    page.set_viewport_size(DESKTOP)
    page.goto(f"{lab['url']}/lab?token={lab['token']}")
    page.wait_for_selector(".jp-LauncherCard", timeout=SLOW_MS)
    notebook_cards = page.locator(".jp-Launcher-section:has(.jp-Launcher-sectionTitle:has-text('Notebook')) "
                                  ".jp-LauncherCard").all_inner_texts()
    assert [card.strip() for card in notebook_cards] == ["Python 3 (workbench)"], notebook_cards
    assert "ipykernel" not in page.locator(".jp-Launcher").inner_text()
    screenshot(page, "launcher_kernels")


def test_intake_form_decides_and_saves_into_the_project(page, lab, project):
    page.set_viewport_size(DESKTOP)
    _open_notebook(page, lab, "notebooks/intake.ipynb")
    _run_all(page)
    page.wait_for_selector(".wb-intake-form", timeout=SLOW_MS)
    _dismiss_notifications(page)
    # Untouched fields are not red; the form says where it will save: in this project.
    assert page.locator(".wb-field-error:visible").all_inner_texts() in ([], [""] * page.locator(
        ".wb-field-error:visible").count())
    folder = page.locator(".wb-intake-form .widget-text:has(label:has-text('Save to folder')) input")
    assert folder.input_value() == str(project["root"] / "data" / "requests")
    policy = page.locator(".wb-intake-form .widget-dropdown:has(label:has-text('Policy')) select")
    assert policy.locator("option:checked").inner_text() == "dmps"  # from the project's workbench.toml

    decide_on = page.locator(".wb-intake-form .widget-datepicker:has(label:has-text('Decide as of')) input")
    decide_on.fill(AS_OF)
    decide_on.press("Tab")
    received = page.locator(".wb-input-received input")
    received.fill("2026-05-20")
    received.press("Tab")
    _type(page, "request_id", REQUEST_ID)
    _type(page, "name", "Jane Doe")
    _select(page, "role", "community partner")
    _type(page, "organization", "Northside Youth Club")
    _type(page, "partner_id", "P-01")
    _type(page, "purpose", "Compare reading results of our mentored students with their school")
    _type(page, "audience", "Program staff and our board")
    _select(page, "level", "aggregate")
    _select(page, "years", [YEAR])
    _select(page, "measures", ["attendance_rate", "chronic_absence", "assessment_benchmark"])
    _select(page, "breakdowns", ["grade"])
    _type(page, "nda_id", "NDA-0001")
    page.locator(".wb-cohort-picker .lm-TabBar-tab", has_text="Program").click()
    program = page.locator(".wb-cohort-picker .widget-dropdown:has(label:has-text('Program')) select")
    label = next(text for text in program.locator("option").all_inner_texts() if text.startswith("PRG-001"))
    program.select_option(label=label)

    decision = page.wait_for_selector(".wb-decision-panel .wb-decision[data-outcome='approve']", timeout=SLOW_MS)
    assert decision is not None
    panel = page.locator(".wb-decision-panel").inner_text()
    assert "aggregate" in page.locator(".wb-decision-panel .wb-level").inner_text()
    # Reasons never send the analyst to a hash-named seed file.
    assert not re.search(r"\d{3}_[0-9a-f]{16}\.txt", panel)
    page.wait_for_selector(".wb-cohort-summary [data-count='matched']", timeout=SLOW_MS)
    # The decision column stays in view beside the form (the analyst scrolled down to the cohort).
    box = page.locator(".wb-decision-column").bounding_box()
    assert box is not None and box["y"] < DESKTOP["height"] and box["y"] + 40 > 0
    problems = accessibility_problems(page, ".wb-decision-column")
    assert problems == [], problems

    page.locator(".wb-save").click()
    page.wait_for_selector(".wb-save-status .wb-save-ok", timeout=SLOW_MS)
    saved = project["root"] / "data" / "requests" / f"{REQUEST_ID}.yml"
    assert saved.is_file()
    assert str(saved) in page.locator(".wb-save-status").inner_text()
    page.locator(".wb-decision-column").scroll_into_view_if_needed()
    screenshot(page, "walkthrough_1_intake", keep=True)


def test_the_template_previews_the_saved_request(page, lab, project):
    page.set_viewport_size(DESKTOP)
    _open_notebook(page, lab, "templates/partner_aggregate.ipynb")
    _dismiss_notifications(page)
    notebook = page.locator(".jp-NotebookPanel:visible")  # the intake notebook stays open in its own tab
    parameters = notebook.locator(".jp-CodeCell").first.locator(".cm-content")
    # Edit the parameters cell as a person does: click into it (edit mode), replace its text.
    parameters.click()
    page.wait_for_selector(".jp-NotebookPanel:visible .jp-Notebook.jp-mod-editMode", timeout=SLOW_MS)
    page.keyboard.press("Control+a")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(f'request_file = "../data/requests/{REQUEST_ID}.yml"\npolicy = None\n'
                              f'as_of = "{AS_OF}"\noutput_dir = None\nplan_file = None\n')
    page.keyboard.press("Escape")
    assert f"{REQUEST_ID}.yml" in parameters.inner_text() and "demo" not in parameters.inner_text()
    _run_all(page)
    try:
        page.wait_for_selector(f".jp-OutputArea-output:has-text('Request {REQUEST_ID}')", timeout=SLOW_MS)
        _wait_until_idle(page)
    except Exception:
        screenshot(page, "failed_template_run")  # ignored by git; shows where the run stopped
        raise
    outputs = notebook.inner_text()
    assert "Northside Youth Club" in outputs and "Traceback" not in outputs
    table = notebook.locator(".workbench-report-table").first
    table.scroll_into_view_if_needed()
    assert "Students" in table.inner_text() and "n/a" in table.inner_text()  # untested grades, explained below
    assert "n/a Not applicable" in table.inner_text()
    screenshot(page, "walkthrough_2_template", keep=True)


def test_fill_releases_the_request_into_the_project(project):
    result = subprocess.run([str(BIN / "workbench"), "fill", f"data/requests/{REQUEST_ID}.yml", "--as-of", AS_OF],
                            cwd=project["root"], env=project["env"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "released" in result.stdout and "Traceback" not in result.stderr
    release = project["root"] / "releases" / REQUEST_ID
    assert (release / "manifest.json").is_file() and (release / "tables" / "by_grade.csv").is_file()


@pytest.fixture(scope="module")
def dashboard(project):
    root, env = project["root"], project["env"]
    added = subprocess.run([str(BIN / "workbench"), "serve", "tokens", "add", "partner:P-01", "--token", PARTNER_TOKEN],
                           cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert added.returncode == 0, added.stderr
    assert (root / "var" / "dashboard_tokens.json").is_file()  # the project's tokens file
    port = _free_port()
    log_path = project["base"] / "serve.log"
    log = log_path.open("w")
    process = subprocess.Popen([str(BIN / "workbench"), "serve", "--port", str(port)], cwd=root, env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_for(url + "login", process, log_path)
        yield {"url": url, "release": root / "releases" / REQUEST_ID}
    finally:
        _stop(process)
        log.close()


def _released_rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as handle:
        records = list(csv.DictReader(handle))
    header = list(records[0])
    dims = header[: header.index("students")]
    measures = [c for c in header[header.index("students") + 1:] if not c.endswith("_percent")]
    return [[*(r[d] for d in dims), r["students"] if r["students"] == "*" else f"{int(r['students']):,}",
             *(r[m] for m in measures)] for r in records]


def _shown_rows(page, table: str) -> list[list[str]]:
    return page.locator(f"section[data-table='{table}'] tbody tr").evaluate_all(
        "rows => rows.map(tr => [...tr.querySelectorAll('td')].map(td => td.textContent))")


def _filter_to_one_measure(page, dashboard, expected) -> None:
    page.select_option("#workbench-filter-measure", label="Chronically absent")
    page.locator("form.workbench-filters button[type=submit]").click()
    page.wait_for_selector(".workbench-clear", timeout=SLOW_MS)
    assert "measure=chronic_absence" in page.url
    header = page.locator("section[data-table='by_grade'] thead th").all_inner_texts()
    assert header[2:] == ["Chronically absent", "Chronically absent (district)"]
    csv_header = next(csv.reader((dashboard["release"] / "tables" / "by_grade.csv").open()))
    shown_columns = [0, 1] + [i for i, key in enumerate(
        [c for c in csv_header if not c.endswith("_percent")]) if key.startswith("chronic_absence")]
    assert _shown_rows(page, "by_grade") == [[row[i] for i in shown_columns] for row in expected]
    assert page.locator(".workbench-chart").count() == 1
    assert page.locator(".workbench-chart img").get_attribute("alt").startswith("Bar chart")


@pytest.mark.parametrize("screen", ["desktop", "phone"])
def test_the_partner_reads_and_filters_the_release(chromium, dashboard, screen):
    viewport = DESKTOP if screen == "desktop" else PHONE
    context = chromium.new_context(viewport=viewport)
    page = context.new_page()
    try:
        page.goto(f"{dashboard['url']}?token={PARTNER_TOKEN}")
        page.wait_for_selector(f".workbench-release[data-release='{REQUEST_ID}']", timeout=SLOW_MS)
        assert sideways_scroll(page) <= 0
        assert page.locator(".workbench-purpose").inner_text().startswith("Compare reading results")
        expected = _released_rows(dashboard["release"] / "tables" / "by_grade.csv")
        assert _shown_rows(page, "by_grade") == expected
        # What a person sees: the first rows' numbers, the mark, n/a and the key that tells them apart.
        first_cell = page.locator("section[data-table='by_grade'] tbody tr").first.locator("td").first
        assert first_cell.is_visible() and first_cell.inner_text() == expected[0][0]
        assert page.locator("section[data-table='by_grade'] td", has_text="n/a").first.is_visible()
        assert page.locator(".workbench-legend dt", has_text="n/a").is_visible()
        assert page.locator(".workbench-legend dt").all_inner_texts()[:2] == ["*", "n/a"]
        problems = accessibility_problems(page)
        assert problems == [], problems
        if screen == "phone":  # the table as a phone shows it, under the filters
            page.locator("form.workbench-filters").scroll_into_view_if_needed()
            page.evaluate("window.scrollBy(0, document.querySelector('form.workbench-filters').getBoundingClientRect().top)")
        screenshot(page, f"walkthrough_3_dashboard_{screen}", keep=True)

        _filter_to_one_measure(page, dashboard, expected)
        assert sideways_scroll(page) <= 0
        assert accessibility_problems(page) == []
        page.locator(".workbench-clear").click()
        page.wait_for_selector(".workbench-clear", state="detached", timeout=SLOW_MS)
        assert _shown_rows(page, "by_grade") == expected
    finally:
        context.close()


def test_the_filters_work_without_script(chromium, dashboard):
    """The report page carries no script (its policy forbids it): the filters are a plain form."""
    context = chromium.new_context(viewport=PHONE, java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto(f"{dashboard['url']}?token={PARTNER_TOKEN}")
        page.wait_for_selector(f".workbench-release[data-release='{REQUEST_ID}']", timeout=SLOW_MS)
        _filter_to_one_measure(page, dashboard, _released_rows(dashboard["release"] / "tables" / "by_grade.csv"))
        assert sideways_scroll(page) <= 0
    finally:
        context.close()
