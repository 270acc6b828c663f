"""The guard in real kernels: every display path, the magic, papermill's saved notebook, Voila.

One "workbench" kernel (installed into a temporary prefix, exactly as `workbench kernel install`
does) serves the whole module; the papermill and Voila tests start their own through the same
kernelspec. Each output is checked in every MIME type it carries.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest

from workbench.cli.kernel_commands import install_kernel
from workbench.guard.masking import MASK

pytestmark = pytest.mark.slow

SETUP = """
import pandas as pd
from IPython.display import display, HTML
counts = pd.DataFrame({"enrolled": [120, 45, 230, 88], "chronic": [7, 15, 3, 22]},
                      index=pd.Index(["Adams", "Baker", "Carver", "Dewey"], name="school"))
regions = pd.Series(["north"] * 3 + ["south"] * 40 + ["east"] * 7 + ["west"] * 25, name="region")
roster = pd.DataFrame({
    "student_id": ["0041275", "1209934", "0003318"],
    "state_id": ["3100458812", "3100458813", "3100458814"],
    "first_name": ["Zephyrine", "Quillon", "Maelis"],
    "last_name": ["Abernathy-Voss", "Castellanos-Roe", "Whitfield-Nair"],
    "date_of_birth": pd.to_datetime(["2012-03-04", "2011-11-30", "2012-07-19"]),
    "low_income": [True, False, True],
    "days_absent": [3, 12, 7],
})
unnamed_ids = pd.DataFrame({"ref": ["0041275", "1209934"], "score": [501, 512]})
"""

# Counts the guard must hide in `counts` (7 and 3 are small; 120 and 230 would give them away).
HIDDEN_COUNTS = {"7", "3", "120", "230", "7.0", "3.0"}
SHOWN_COUNTS = {"45", "15", "88", "22"}
STUDENT_SECRETS = (
    "0041275", "1209934", "0003318", "3100458812", "Zephyrine", "Quillon", "Maelis",
    "Abernathy", "Castellanos", "Whitfield", "2012-03-04", "2011-11-30",
)
BANNER_SENTENCE = re.compile(
    r"^(workbench guard:|This is an automatic mask|Schema only:|Aggregate it|Styling is not|Custom formatting)"
)
KNOWN_MIME_TYPES = {"text/plain", "text/html", "application/vnd.dataresource+json"}


# --- reading outputs ------------------------------------------------------------------------

class _CellText(HTMLParser):
    def __init__(self):
        super().__init__()
        self.cells: list[str] = []
        self._depth = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("td", "th"):
            self._depth += 1
            self.cells.append("")

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._depth -= 1

    def handle_data(self, data):
        if self._depth:
            self.cells[-1] += data


def table_cells(mime: str, payload) -> set[str]:
    """What a reader sees in the table cells of one output, banner sentences left out."""
    if mime == "text/html":
        parser = _CellText()
        parser.feed(payload)
        return {cell.strip() for cell in parser.cells}
    if mime == "application/vnd.dataresource+json":
        return {str(value) for row in payload["data"] for value in row.values()}
    if mime == "text/plain":
        lines = [line for line in payload.splitlines() if not BANNER_SENTENCE.match(line)]
        return set(" ".join(lines).split())
    raise AssertionError(f"an output in {mime} that the guard tests do not know how to read")


def mime_payloads(outputs) -> list[tuple[str, object]]:
    found = []
    for output in outputs:
        if output.get("output_type") == "stream" or "text" in output and "data" not in output:
            found.append(("text/plain", output["text"] if isinstance(output["text"], str) else "".join(output["text"])))
        for mime, payload in output.get("data", {}).items():
            assert mime in KNOWN_MIME_TYPES, f"unexpected output type {mime}"
            if isinstance(payload, list):  # nbformat may store text as a list of lines
                payload = "".join(payload)
            found.append((mime, payload))
    assert found, "the cell showed nothing"
    return found


PLACEHOLDER = re.compile(r"^<[\w.]+ (object|at 0x[0-9a-f]+)>$")


def tables_shown(outputs) -> list[tuple[str, object]]:
    """The payloads that draw a table: not the text/plain stand-in of an HTML or Styler object."""
    # A stream can arrive split, its closing line break an output of its own: that draws no table.
    return [(mime, payload) for mime, payload in mime_payloads(outputs)
            if not (mime == "text/plain" and PLACEHOLDER.match(payload.strip()))
            and not (isinstance(payload, str) and not payload.strip())]


def assert_counts_masked(outputs, banner_expected=True):
    for mime, payload in tables_shown(outputs):
        cells = table_cells(mime, payload)
        assert not cells & HIDDEN_COUNTS, f"{mime} shows a hidden count: {sorted(cells & HIDDEN_COUNTS)}"
        assert MASK in cells, f"{mime} shows no mask mark"
        if banner_expected and mime != "application/vnd.dataresource+json":
            assert "workbench guard:" in payload and "masked" in payload, f"{mime} has no banner"


def assert_no_student_values(outputs):
    dumped = json.dumps(outputs)
    leaked = [secret for secret in STUDENT_SECRETS if secret in dumped]
    assert not leaked, f"student values shown: {leaked}"


# --- a kernel -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def kernelspec_path(tmp_path_factory):
    prefix = tmp_path_factory.mktemp("kernel-prefix")
    install_kernel(prefix=str(prefix))
    data_dir = prefix / "share" / "jupyter"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(data_dir))
        patch.delenv("WORKBENCH_POLICY", raising=False)
        patch.delenv("WORKBENCH_LEVEL", raising=False)
        yield data_dir


class Kernel:
    def __init__(self, client):
        self.client = client

    def run(self, code: str) -> list[dict]:
        outputs: list[dict] = []

        def keep(message):
            kind = message["msg_type"]
            if kind in ("stream", "display_data", "execute_result", "update_display_data", "error"):
                outputs.append({"output_type": kind, **message["content"]})

        reply = self.client.execute_interactive(code, output_hook=keep, timeout=120)
        errors = [o for o in outputs if o["output_type"] == "error"]
        assert reply["content"]["status"] == "ok" and not errors, "\n".join(
            "\n".join(e.get("traceback", [])) for e in errors
        ) or reply["content"]
        return outputs


@pytest.fixture(scope="module")
def kernel(kernelspec_path):
    from jupyter_client.manager import start_new_kernel

    env = {**os.environ, "WORKBENCH_POLICY": "bps", "WORKBENCH_LEVEL": "aggregate"}
    manager, client = start_new_kernel(kernel_name="workbench", env=env, startup_timeout=120)
    running = Kernel(client)
    running.run(SETUP)
    yield running
    client.stop_channels()
    manager.shutdown_kernel(now=True)


# --- every display path ---------------------------------------------------------------------

def test_the_kernel_starts_guarded_with_the_environments_policy(kernel):
    outputs = kernel.run("%workbench status")
    assert "policy bps" in outputs[0]["text"] and "level aggregate" in outputs[0]["text"]


@pytest.mark.parametrize(
    "code",
    [
        "counts",
        "display(counts)",
        "print(counts)",
        "print(counts.to_string())",
        "HTML(counts.to_html())",
        "counts.style",
        "counts.style.background_gradient()",
        "counts[['chronic']]",
        "print(f'{counts}')",
    ],
)
def test_a_table_of_counts_is_masked_on_every_path(kernel, code):
    assert_counts_masked(kernel.run(code))


def test_the_table_schema_output_is_masked(kernel):
    outputs = kernel.run(
        "with pd.option_context('display.html.table_schema', True):\n    display(counts)"
    )
    assert any("application/vnd.dataresource+json" in o.get("data", {}) for o in outputs)
    assert_counts_masked(outputs)


@pytest.mark.parametrize("code", ["regions.value_counts()", "counts['chronic']", "print(counts['chronic'])"])
def test_series_are_masked(kernel, code):
    for mime, payload in mime_payloads(kernel.run(code)):
        cells = table_cells(mime, payload)
        assert MASK in cells and not cells & {"7", "3"}
        assert "workbench guard:" in payload


@pytest.mark.parametrize(
    "code",
    [
        "roster",
        "display(roster)",
        "print(roster)",
        "print(roster.to_string())",
        "HTML(roster.to_html())",
        "roster.style",
        "roster.head(1)",
        "roster['student_id']",
        "roster.set_index('student_id')['days_absent']",
        "roster[['first_name', 'days_absent']]",
        "unnamed_ids",
        "roster.T",
    ],
)
def test_a_student_level_frame_is_never_shown_row_by_row(kernel, code):
    outputs = kernel.run(code)
    assert_no_student_values(outputs)
    for mime, payload in tables_shown(outputs):
        assert "student-level data is not shown row by row" in payload, mime


def test_an_identified_request_shows_the_roster_without_free_lunch(kernel):
    kernel.run("%workbench level identified")
    try:
        outputs = kernel.run("roster")
    finally:
        kernel.run("%workbench level aggregate")
    for mime, payload in mime_payloads(outputs):
        cells = table_cells(mime, payload)
        assert "0041275" in cells and "(withheld)" in cells
        assert not cells & {"True", "False"}, mime
    assert_no_student_values(kernel.run("roster"))


def test_the_magic_switches_policy_and_rejects_nonsense(kernel):
    ten = "pd.Series([10, 40, 50], index=['north', 'south', 'east'])"
    assert MASK not in table_cells("text/plain", kernel.run(ten)[0]["data"]["text/plain"])
    kernel.run("%workbench policy dmps")
    try:
        assert MASK in table_cells("text/plain", kernel.run(ten)[0]["data"]["text/plain"])
        refused = kernel.client.execute_interactive("%workbench level everything", timeout=60)
        assert refused["content"]["status"] == "error"
        assert "policy dmps" in kernel.run("%workbench status")[0]["text"]
    finally:
        kernel.run("%workbench policy bps")


def test_unloading_restores_pandas_and_loading_guards_again(kernel):
    kernel.run("%unload_ext workbench")
    try:
        plain = kernel.run("counts")[0]["data"]
        assert "7" in table_cells("text/html", plain["text/html"])
        assert "workbench guard" not in plain["text/plain"]
    finally:
        kernel.run("%load_ext workbench")
    assert_counts_masked(kernel.run("counts"))


def test_activate_from_python_loads_the_extension_with_its_settings(kernel):
    kernel.run("%unload_ext workbench")
    try:
        outputs = kernel.run(
            "import workbench.guard\n"
            "workbench.guard.activate(policy='dmps', level='aggregate')\n"
            "print('workbench' in get_ipython().extension_manager.loaded)"
        )
        assert outputs[0]["text"].strip() == "True"
        assert "policy dmps" in kernel.run("%workbench status")[0]["text"]  # not reset by loading
        assert_counts_masked(kernel.run("counts"))
    finally:
        kernel.run("%workbench policy bps")


# --- papermill ------------------------------------------------------------------------------

def small_request_notebook(path: Path) -> Path:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "workbench", "display_name": "Python 3 (workbench)", "language": "python"}
    parameters = nbformat.v4.new_code_cell("school_year = '2024-2025'")
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [
        parameters,
        nbformat.v4.new_code_cell(SETUP + "\nexactly_ten = pd.Series([10, 40, 50], index=['north', 'south', 'east'])"),
        nbformat.v4.new_code_cell("counts"),
        nbformat.v4.new_code_cell("print(counts)\ndisplay(counts.style)"),
        nbformat.v4.new_code_cell("regions.value_counts()"),
        nbformat.v4.new_code_cell("exactly_ten"),
        nbformat.v4.new_code_cell("roster"),
        nbformat.v4.new_code_cell("print(roster.to_string())\nHTML(roster.to_html())"),
    ]
    nbformat.write(notebook, path)
    return path


def test_papermill_saves_only_guarded_outputs(kernelspec_path, tmp_path, monkeypatch):
    import papermill

    monkeypatch.setenv("WORKBENCH_POLICY", "dmps")  # "10 or fewer": shows the kernel read it
    source = small_request_notebook(tmp_path / "request.ipynb")
    executed = tmp_path / "executed.ipynb"
    papermill.execute_notebook(str(source), str(executed), kernel_name="workbench",
                               parameters={"school_year": "2025-2026"}, progress_bar=False)
    saved = nbformat.read(executed, as_version=4)
    cells = [cell for cell in saved.cells if cell.cell_type == "code"]
    outputs = {index: [dict(o) for o in cell.outputs] for index, cell in enumerate(cells)}
    assert_no_student_values([o for found in outputs.values() for o in found])
    assert_counts_masked(outputs[3])
    assert_counts_masked(outputs[4])
    for mime, payload in mime_payloads(outputs[5]):
        assert not table_cells(mime, payload) & {"7", "3"}
    for mime, payload in mime_payloads(outputs[6]):
        assert MASK in table_cells(mime, payload) and "10" not in table_cells(mime, payload)
    for index in (7, 8):
        for mime, payload in tables_shown(outputs[index]):
            assert "student-level data is not shown row by row" in payload


# --- Voila ----------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_voila_serves_only_guarded_outputs(kernelspec_path, tmp_path):
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "workbench", "display_name": "Python 3 (workbench)", "language": "python"}
    notebook.cells = [
        nbformat.v4.new_code_cell(SETUP),
        nbformat.v4.new_code_cell("counts"),
        nbformat.v4.new_code_cell("display(roster)"),
    ]
    nbformat.write(notebook, tmp_path / "dashboard.ipynb")
    port = _free_port()
    log = (tmp_path / "voila.log").open("wb")  # a file, not a pipe: a full pipe would stall Voila
    voila = subprocess.Popen(
        [sys.executable, "-m", "voila", "dashboard.ipynb", "--no-browser", f"--port={port}",
         "--Voila.ip=127.0.0.1", "--VoilaConfiguration.progressive_rendering=False"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=log, env={**os.environ, "WORKBENCH_POLICY": "bps"},
    )
    try:
        page = None
        deadline = time.monotonic() + 120
        while page is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=120) as response:
                    page = response.read().decode("utf-8")
            except OSError:
                if voila.poll() is not None:
                    log.flush()
                    pytest.fail(f"voila exited: {(tmp_path / 'voila.log').read_text(errors='replace')[-2000:]}")
                time.sleep(0.5)
        assert page is not None, "voila did not answer"
    finally:
        voila.terminate()
        voila.wait(timeout=30)
        log.close()
    assert not [secret for secret in STUDENT_SECRETS if secret in page]
    # Voila 0.5 embeds each cell's outputs as JSON for the page's output areas to draw.
    embedded = re.findall(r'<script type="application/vnd.voila.cell-output\+json">(.*?)</script>', page, re.S)
    counts_output, roster_output = [json.loads(block) for block in embedded[-2:]]
    assert_counts_masked([counts_output])
    assert "under policy bps" in counts_output["data"]["text/plain"]  # the server's environment reached the kernel
    assert SHOWN_COUNTS <= table_cells("text/html", counts_output["data"]["text/html"])
    for mime, payload in tables_shown([roster_output]):
        assert "student-level data is not shown row by row" in payload, mime


def test_what_a_subprocess_prints_reaches_the_notebook_scanned_and_not_the_server_log(kernelspec_path, tmp_path):
    """ipykernel echoes file-descriptor output (subprocesses, `!` commands) to the terminal the
    kernel runs in, which is the Jupyter server's log; the guarded kernel sends it to the notebook
    only, where the scan sees it."""
    from jupyter_client.manager import start_new_kernel

    marker = "TERMINAL-COPY-" + "MARKER"
    terminal = tmp_path / "kernel-terminal.log"
    # ipykernel captures file descriptors only outside pytest: the kernel runs as in a server.
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"} | {"WORKBENCH_POLICY": "bps"}
    with terminal.open("w") as log:
        manager, client = start_new_kernel(kernel_name="workbench", env=env, startup_timeout=120,
                                           stdout=log, stderr=log)
        try:
            shown = Kernel(client).run(f"import subprocess\nsubprocess.run(['echo', '{marker}'])\n!echo {marker}-BANG")
        finally:
            client.stop_channels()
            manager.shutdown_kernel(now=True)
    streamed = "".join(o.get("text", "") for o in shown if o["output_type"] == "stream")
    assert marker in streamed and f"{marker}-BANG" in streamed
    assert marker not in terminal.read_text(), terminal.read_text()
