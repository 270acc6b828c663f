"""The partner dashboard in a real browser: `workbench serve` (Voila) driven by Debian's chromium.

Two partners' aggregate releases are filled from the demo district into a private store; the
server runs in both modes: static (pre-rendered pages, the default) and live (Voila kernels from a
preheated pool, with a warehouse setting in its environment that its kernels must not inherit). Screenshots go to tests/screenshots/ (ignored). Filters and a phone-wide
screen are checked in both modes, with axe-core's accessibility rules.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import psutil
import pytest
import yaml

from tests.browser_fixtures import accessibility_problems, screenshot, sideways_scroll
from workbench.config import DATA_DIR
from workbench.fill import fill
from workbench.release.store import ReleaseStore
from workbench.schema import write_warehouse
from workbench.synthetic import generate_district

pytestmark = pytest.mark.slow

DEMO = DATA_DIR / "requests" / "demo"
AS_OF = "2026-06-01"
WORKBENCH = Path(sys.executable).parent / "workbench"
P04_TOKEN = "token-of-partner-p04-for-tests"
P02_TOKEN = "token-of-partner-p02-for-tests"
P04_RELEASE = "DEMO-PARTNER-AGG"
P02_RELEASE = "DASH-PARTNER-P02"
RENDER_TIMEOUT_MS = 90_000


@pytest.fixture(scope="module")
def release_store(tmp_path_factory):
    """P-04's demo aggregate request, and the same request made by P-02 for its own program."""
    warehouse = tmp_path_factory.mktemp("dash-demo") / "district.duckdb"
    write_warehouse(warehouse, generate_district())
    store = ReleaseStore(tmp_path_factory.mktemp("dash-releases"))
    fill(DEMO / "partner_aggregate.yml", "dmps", AS_OF, store=store, warehouse=str(warehouse))
    request = yaml.safe_load((DEMO / "partner_aggregate.yml").read_text())
    request["id"] = P02_RELEASE
    request["requester"].update(organization="Bright Futures Tutoring", partner_id="P-02", nda_id="NDA-0002",
                                name="Sam Rivera")
    request["cohort"] = {"program": "PRG-003"}
    request["purpose"] = "Check how students in Sports and Wellness are doing"
    request["measures"] = ["attendance_rate", "chronic_absence"]
    request["breakdowns"] = ["grade"]
    other = tmp_path_factory.mktemp("dash-requests") / "p02.yml"
    other.write_text(yaml.safe_dump(request))
    fill(other, "dmps", AS_OF, store=store, warehouse=str(warehouse))
    assert store.releases() == [P02_RELEASE, P04_RELEASE]
    return store


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_up(url: str, process: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "workbench serve exited"
        try:
            urllib.request.urlopen(url + "login", timeout=2)
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    raise AssertionError("workbench serve did not come up")


def _start_server(release_store, folder: Path, *extra: str):
    tokens = folder / "tokens.json"
    for viewer, token in [("partner:P-04", P04_TOKEN), ("partner:P-02", P02_TOKEN)]:
        subprocess.run([str(WORKBENCH), "serve", "tokens", "add", viewer, "--token", token, "--tokens", str(tokens)],
                       check=True, capture_output=True)
    port = _free_port()
    env = {**os.environ, "WORKBENCH_WAREHOUSE": str(folder / "must-not-reach-kernels.duckdb")}
    log = (folder / "server.log").open("w")
    process = subprocess.Popen(
        [str(WORKBENCH), "serve", "--releases", str(release_store.root), "--tokens", str(tokens), "--port", str(port),
         *extra],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=folder)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_until_up(url, process)
        yield {"url": url, "pid": process.pid, "store": release_store, "log": folder / "server.log"}
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


@pytest.fixture(scope="module")
def server(release_store, tmp_path_factory):
    """Live mode: Voila kernels from a preheated pool."""
    yield from _start_server(release_store, tmp_path_factory.mktemp("dash-server"), "--live", "--pool-size", "2",
                             "--cull-idle", "300")


@pytest.fixture(scope="module")
def static_server(release_store, tmp_path_factory):
    """The default mode: pre-rendered pages, no kernel."""
    yield from _start_server(release_store, tmp_path_factory.mktemp("dash-static"))


def _sign_in(page, server, token: str, query: str = ""):
    response = page.goto(f"{server['url']}?token={token}{query}")
    return response


def _rendered_tables(page) -> dict[str, list[list[str]]]:
    return page.evaluate("""() => Object.fromEntries(
        [...document.querySelectorAll('section.workbench-table-block')].map(s => [
            s.dataset.table,
            [...s.querySelectorAll('tbody tr')].map(tr => [...tr.querySelectorAll('td')].map(td => td.textContent))
        ]))""")


def _expected_rows(csv_path: Path) -> list[list[str]]:
    """The released CSV as a reader sees it: breakdowns, students (or the mark), each measure's text."""
    frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    columns = list(frame.columns)
    dims = columns[: columns.index("students")]
    measures = [c for c in columns[columns.index("students") + 1:] if not c.endswith("_percent")]
    rows = []
    for record in frame.to_dict("records"):
        students = record["students"] if record["students"] == "*" else f"{int(record['students']):,}"
        rows.append([*(record[d] for d in dims), students, *(record[m] for m in measures)])
    return rows


NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?%?")


@pytest.mark.parametrize("mode", ["static", "live"])
def test_dashboard_shows_the_release_and_every_number_matches_its_files(page, mode, request):
    server = request.getfixturevalue("static_server" if mode == "static" else "server")
    store = server["store"]
    folder = store.path_for(P04_RELEASE)
    manifest = store.manifest(P04_RELEASE)
    hosts = set()
    page.on("request", lambda request: hosts.add(request.url.split("/")[2]) if "://" in request.url
            and not request.url.startswith(("data:", "blob:")) else None)
    response = _sign_in(page, server, P04_TOKEN)
    assert response.status == 200 and "token=" not in page.url  # the token is dropped from the address
    page.wait_for_selector(f".workbench-release[data-release='{P04_RELEASE}']", timeout=RENDER_TIMEOUT_MS)

    # Every table of the release, every cell equal to the released CSV, suppression marks included.
    tables = _rendered_tables(page)
    released = sorted(p.stem for p in (folder / "tables").glob("*.csv"))
    assert sorted(tables) == released
    for name, rows in tables.items():
        assert rows == _expected_rows(folder / "tables" / f"{name}.csv"), name
    cells = [cell for rows in tables.values() for row in rows for cell in row]
    assert "*" in cells and "\u2020" not in cells  # the demo release suppresses cells, all with one mark
    csv_text = " ".join((folder / "tables" / f"{n}.csv").read_text() for n in released)
    for number in {n for cell in cells for n in NUMBER.findall(cell)}:
        assert number.replace(",", "") in csv_text, number

    # Footnotes are the release's own; facts come from the manifest; no code, no traceback.
    notes = page.locator(".workbench-footnotes li").all_inner_texts()
    assert any(note.startswith("* Suppressed") for note in notes)
    assert not any("\u2020" in note for note in notes)
    assert page.locator(".workbench-purpose").inner_text() == manifest["request"]["purpose"]
    assert page.locator(".workbench-received").inner_text() == manifest["request"]["received"]
    assert page.locator(".workbench-as-of").inner_text() == manifest["decision"]["as_of"]
    body = page.inner_text("body")
    assert "wait_for_viewer" not in body and "import" not in body and "Traceback" not in body
    numbers_outside_tables = page.evaluate("""() => {
        const root = document.querySelector('.workbench-release').cloneNode(true);
        root.querySelectorAll('table, .workbench-footnotes, .workbench-facts').forEach(n => n.remove());
        return root.textContent; }""")
    # Headings may carry years ("2025-2026: ..."); no other number appears outside the tables.
    leftovers = NUMBER.findall(re.sub(r"\d{4}-\d{4}", "", numbers_outside_tables))
    assert leftovers == [], leftovers

    # The chart is the released PNG; the download links serve the released files, byte for byte.
    assert page.locator(".workbench-chart img[src^='data:image/png;base64,']").count() == len(
        list((folder / "charts").glob("*.png")))
    links = page.locator("a.workbench-download").evaluate_all("links => links.map(a => a.href)")
    assert len(links) == 2 * len(released)
    for link in links[:2]:
        download = page.request.get(link)
        relative = link.split(f"/{P04_RELEASE}/", 1)[1]
        assert download.status == 200 and download.body() == (folder / relative).read_bytes()
    assert hosts == {server["url"].split("/")[2]}, hosts  # nothing from the internet
    page.set_viewport_size({"width": 1280, "height": 2600})
    screenshot(page, f"dashboard_partner_release_{mode}")


def _choose(page, mode: str, name: str, label: str) -> None:
    """Pick a filter as a person would: the form and its Show button, or the live page's dropdown."""
    if mode == "static":
        page.select_option(f"#workbench-filter-{name}", label=label)
        page.locator("form.workbench-filters button[type=submit]").click()
        page.wait_for_load_state()
    else:
        page.locator(f".workbench-filter-{name} select").select_option(label=label)


def _shown_tables(page) -> list[str]:
    return page.locator("section.workbench-table-block").evaluate_all("s => s.map(e => e.dataset.table)")


@pytest.mark.parametrize("mode", ["static", "live"])
def test_filters_pick_released_tables_and_columns_on_a_phone(chromium, mode, request):
    server = request.getfixturevalue("static_server" if mode == "static" else "server")
    folder = server["store"].path_for(P04_RELEASE)
    context = chromium.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        _sign_in(page, server, P04_TOKEN)
        page.wait_for_selector(f".workbench-release[data-release='{P04_RELEASE}']", timeout=RENDER_TIMEOUT_MS)
        released = sorted(p.stem for p in (folder / "tables").glob("*.csv"))
        assert sorted(_shown_tables(page)) == released
        assert sideways_scroll(page) <= 0  # a phone never scrolls the page sideways; wide tables scroll in place
        for scroller in page.locator(".workbench-table-scroll").all():
            box = scroller.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= 390 + 0.5
        problems = accessibility_problems(page, None if mode == "static" else ".workbench-release")
        assert problems == [], problems

        _choose(page, mode, "year", "2024-2025")
        page.wait_for_function("() => document.querySelectorAll('section.workbench-table-block').length === 1",
                               timeout=RENDER_TIMEOUT_MS)
        assert _shown_tables(page) == ["by_grade_2024-2025"]
        _choose(page, mode, "measure", "Chronically absent")
        page.wait_for_function("() => document.querySelectorAll('section.workbench-table-block th').length === 3",
                               timeout=RENDER_TIMEOUT_MS)
        expected = _expected_rows(folder / "tables" / "by_grade_2024-2025.csv")
        header = pd.read_csv(folder / "tables" / "by_grade_2024-2025.csv", nrows=0).columns
        shown = [c for c in header if not c.endswith("_percent")]
        keep = [0, 1, shown.index("chronic_absence")]
        assert _rendered_tables(page)["by_grade_2024-2025"] == [[row[i] for i in keep] for row in expected]
        assert page.locator(".workbench-showing").inner_text() == "Showing tables for: 2024-2025; Chronically absent."
        _choose(page, mode, "group", "Gender")
        page.wait_for_selector(".workbench-no-match", timeout=RENDER_TIMEOUT_MS)  # no gender table that year
        assert _shown_tables(page) == []
        assert sideways_scroll(page) <= 0
        screenshot(page, f"dashboard_filters_phone_{mode}")
    finally:
        context.close()


@pytest.mark.parametrize("mode", ["static", "live"])
def test_a_second_partner_sees_only_its_release_and_cannot_open_the_first(page, mode, request):
    server = request.getfixturevalue("static_server" if mode == "static" else "server")
    _sign_in(page, server, P02_TOKEN)
    page.wait_for_selector(f".workbench-release[data-release='{P02_RELEASE}']", timeout=RENDER_TIMEOUT_MS)
    menu = ".widget-dropdown:has(label:has-text('Report')) select option" if mode == "live" else "nav.workbench-menu li a"
    options = page.locator(menu).all_inner_texts()
    assert len(options) == 1 and options[0].startswith(P02_RELEASE)
    assert P04_RELEASE not in page.content()
    screenshot(page, f"dashboard_second_partner_{mode}")

    refused = page.goto(f"{server['url']}?release={P04_RELEASE}")
    assert refused.status == 404
    assert "Attendance Coaching" not in page.content()
    download = page.request.get(f"{server['url']}workbench/download/{P04_RELEASE}/tables/by_grade.csv")
    assert download.status == 404
    own = page.request.get(f"{server['url']}workbench/download/{P02_RELEASE}/tables/by_grade.csv")
    assert own.status == 200
    for probe in ["workbench/download/DASH-PARTNER-P02/report.ipynb", "workbench/download/DASH-PARTNER-P02/manifest.json",
                  "voila/files/dashboard.ipynb", f"voila/files/{P04_RELEASE}/charts/by_grade_chronic_absence.png",
                  "voila/api/contents/", "api/contents/", "api/kernels"]:
        assert page.request.get(server["url"] + probe, max_redirects=0).status in (403, 404, 405), probe
    screenshot(page, f"dashboard_second_partner_refused_{mode}")


@pytest.mark.parametrize("mode", ["static", "live"])
def test_without_a_valid_token_nothing_is_shown(page, mode, request):
    server = request.getfixturevalue("static_server" if mode == "static" else "server")
    for address in [server["url"], f"{server['url']}?release={P04_RELEASE}", f"{server['url']}?token=not-a-real-token-1234"]:
        page.goto(address)
        assert "/login" in page.url
        assert page.locator(".workbench-release").count() == 0
    assert "Attendance Coaching" not in page.content()
    download = page.request.get(f"{server['url']}workbench/download/{P04_RELEASE}/tables/by_grade.csv", max_redirects=0)
    assert download.status in (302, 403)
    page.fill("input[type=password]", P04_TOKEN)  # the login form takes the same token
    page.locator("button[type=submit], input[type=submit]").first.click()
    page.wait_for_selector(f".workbench-release[data-release='{P04_RELEASE}']", timeout=RENDER_TIMEOUT_MS)
    screenshot(page, f"dashboard_login_form_{mode}")


SEND_OVER_KERNEL_CHANNEL = """async ([url, marker]) => {
    const ws = new WebSocket(url);
    const seen = [];
    const opened = await new Promise(resolve => {
        ws.onopen = () => resolve(true);
        ws.onerror = () => resolve(false);
        ws.onclose = () => resolve(false);
    });
    if (!opened) return {opened, seen};
    ws.onmessage = event => {
        const msg = JSON.parse(event.data);
        seen.push([msg.msg_type || msg.header.msg_type, msg.parent_header.msg_id || null,
                   (msg.content && msg.content.status) || null]);
    };
    const message = (id, type, content) => JSON.stringify({
        header: {msg_id: id, msg_type: type, username: 'x', session: 'probe', date: new Date().toISOString(), version: '5.3'},
        parent_header: {}, metadata: {}, content, channel: 'shell', buffers: []});
    ws.send(message('probe-info', 'kernel_info_request', {}));
    ws.send(message('probe-exec', 'execute_request', {
        code: `open(${JSON.stringify(marker)}, 'w').write('ran')`, silent: false, store_history: false,
        user_expressions: {}, allow_stdin: false, stop_on_error: true}));
    await new Promise(resolve => setTimeout(resolve, 5000));
    ws.close();
    return {opened, seen};
}"""


def _kernel_channel(page, server, kernel_id):
    return f"{server['url'].replace('http', 'ws', 1)}api/kernels/{kernel_id}/channels?session_id=probe"


def test_the_page_cannot_execute_code_in_its_kernel(page, server, tmp_path, chromium):
    _sign_in(page, server, P04_TOKEN)
    page.wait_for_selector(".workbench-release", timeout=RENDER_TIMEOUT_MS)
    kernel_id = re.search(r'"kernelId": "([0-9a-f-]{36})"', page.content()).group(1)
    marker = tmp_path / "executed.txt"
    result = page.evaluate(SEND_OVER_KERNEL_CHANNEL, [_kernel_channel(page, server, kernel_id), str(marker)])
    assert result["opened"]
    replies = {(msg_type, parent) for msg_type, parent, _ in result["seen"]}
    assert ("kernel_info_reply", "probe-info") in replies  # the channel works ...
    assert not [m for m in result["seen"] if m[1] == "probe-exec"]  # ... but the execute_request went nowhere
    assert not marker.exists()
    assert "message type 'execute_request' is not widget traffic" in server["log"].read_text()

    # Another partner, signed in, cannot even open this kernel's channel.
    other = chromium.new_context()
    try:
        intruder = other.new_page()
        _sign_in(intruder, server, P02_TOKEN)
        intruder.wait_for_selector(".workbench-release", timeout=RENDER_TIMEOUT_MS)
        stolen = intruder.evaluate(SEND_OVER_KERNEL_CHANNEL, [_kernel_channel(page, server, kernel_id), str(marker)])
        assert not stolen["opened"]
        assert intruder.request.delete(f"{server['url']}api/kernels/{kernel_id}").status == 403
    finally:
        other.close()
    assert not marker.exists()


def test_dashboard_kernels_hold_no_warehouse_setting(page, server):
    _sign_in(page, server, P04_TOKEN)
    page.wait_for_selector(".workbench-release", timeout=RENDER_TIMEOUT_MS)
    kernels = [p for p in psutil.Process(server["pid"]).children(recursive=True) if "ipykernel" in " ".join(p.cmdline())]
    assert kernels, "no dashboard kernels found"
    for kernel in kernels:
        environ = kernel.environ()
        assert "WORKBENCH_WAREHOUSE" not in environ and "WORKBENCH_REGISTER" not in environ
        assert environ.get("WORKBENCH_RELEASES") == str(server["store"].root.resolve())
    assert server["store"].verify(P04_RELEASE) == []  # viewing changed nothing in the release


def test_the_preheated_kernels_request_channel_needs_the_server_key(page, server):
    import websocket

    _sign_in(page, server, P02_TOKEN)
    page.wait_for_selector(".workbench-release", timeout=RENDER_TIMEOUT_MS)
    kernel_id = re.search(r'"kernelId": "([0-9a-f-]{36})"', page.content()).group(1)
    base = server["url"].replace("http", "ws", 1)
    channel = websocket.create_connection(f"{base}voila/query/not-the-key/{kernel_id}", timeout=10)
    try:
        received = channel.recv()
    except websocket.WebSocketConnectionClosedException:
        received = ""
    finally:
        channel.close()
    assert not received  # a viewer's request variables are never handed to a stranger
    with pytest.raises(websocket.WebSocketException):  # Voila's unkeyed route is gone (no upgrade there)
        websocket.create_connection(f"{base}voila/query/{kernel_id}", timeout=10)
