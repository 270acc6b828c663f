"""Attacks on a running `workbench serve`, over real HTTP and websockets on 127.0.0.1.

Each test plays a signed-in partner (or a stranger) who tries what issue 14 found: frames that claim
billions of parts, dozens of tabs, widget messages that keep a kernel alive, foreign comm targets,
client-made widgets, crafted messages that raise in the kernel, a revoked token still holding a
channel, tokens in URLs that end in 4xx, token guessing, altered release files, logout and error
pages. The release store is a fixture folder (the same hand-built releases as
test_dashboard_access). Every loop is bounded by a deadline.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import psutil
import pytest
import websocket

from tests.test_dashboard_access import _manifest, _publish
from workbench.dashboard.access import TokenBook
from workbench.release.store import ReleaseStore

pytestmark = pytest.mark.slow

WORKBENCH = Path(sys.executable).parent / "workbench"
TOKENS = {"partner:P-04": "token-of-partner-p04-hardening", "partner:P-02": "token-of-partner-p02-hardening",
          "partner:P-99": "token-of-partner-p99-hardening"}
P04, P02, P99 = TOKENS["partner:P-04"], TOKENS["partner:P-02"], TOKENS["partner:P-99"]
V1 = "v1.kernel.websocket.jupyter.org"


# --------------------------------------------------------------------------------------------
# A server, an HTTP client and a Jupyter websocket client


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = ReleaseStore(tmp_path_factory.mktemp("hardening-releases"))
    _publish(store, "AGG-P04", _manifest(partner_id="P-04"))
    _publish(store, "AGG-P02", _manifest(partner_id="P-02"))
    return store


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    def __init__(self, store: ReleaseStore, folder: Path, *options: str):
        self.folder, self.tokens = folder, folder / "tokens.json"
        book = TokenBook(self.tokens)  # what `workbench serve tokens add` does, without a process per token
        for viewer, token in TOKENS.items():
            book.add(viewer, "tests", token)
        self.port = _free_port()
        self.log = folder / "server.log"
        self._log_handle = self.log.open("w")
        env = {**os.environ, "WORKBENCH_WAREHOUSE": str(folder / "never.duckdb"), "MAIL_PASSWORD": "kept-out"}
        self.process = subprocess.Popen(
            [str(WORKBENCH), "serve", "--releases", str(store.root), "--tokens", str(self.tokens),
             "--port", str(self.port), *options],
            env=env, stdout=self._log_handle, stderr=subprocess.STDOUT, start_new_session=True, cwd=folder)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if self.request("GET", "/login", timeout=2)[0] == 200:
                    return
            except OSError:
                time.sleep(0.3)
        raise AssertionError("workbench serve did not come up")

    def cli(self, *args: str) -> str:
        return subprocess.run([str(WORKBENCH), "serve", *args, "--tokens", str(self.tokens)], check=True,
                              capture_output=True, text=True).stdout

    def request(self, method: str, path: str, headers: dict | None = None, body: str | None = None,
                timeout: float = 120) -> tuple[int, dict, str]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            headers_out = {}
            for name, value in response.getheaders():
                headers_out.setdefault(name.lower(), []).append(value)
            return response.status, headers_out, response.read().decode("utf-8", "replace")
        finally:
            connection.close()

    def kernels(self) -> list[psutil.Process]:
        try:
            tree = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        return [p for p in tree if _is_kernel(p)]

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._log_handle.close()


def _is_kernel(process: psutil.Process) -> bool:
    try:
        return "ipykernel" in " ".join(process.cmdline())
    except psutil.NoSuchProcess:
        return False


def kernel_alive(server: Server, kernel_id: str) -> bool:
    return any(kernel_id in " ".join(p.cmdline()) for p in server.kernels() if p.is_running())


class Viewer:
    """A browser-like session: signs in with the token link, then sends the cookie."""

    def __init__(self, server: Server, token: str):
        self.server, self.cookies = server, {}
        status, headers, _ = self.get(f"/?token={token}")
        assert status == 302, status

    def get(self, path: str, **headers) -> tuple[int, dict, str]:
        cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        status, out, body = self.server.request("GET", path, {"Cookie": cookie, **headers} if cookie else headers)
        for line in out.get("set-cookie", []):
            name, _, rest = line.partition("=")
            value = rest.split(";", 1)[0]
            if "expires=Thu, 01 Jan 1970" in line or "Max-Age=0" in line or not value:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return status, out, body

    def open_page(self) -> str:
        """Opens the dashboard page (live mode) and returns its kernel id."""
        status, _, body = self.get("/")
        assert status == 200, (status, body[:300])
        return re.search(r'"kernelId": "([0-9a-f-]{36})"', body).group(1)

    def channel(self, kernel_id: str, protocol: str | None = V1) -> websocket.WebSocket:
        cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        return websocket.create_connection(
            f"ws://127.0.0.1:{self.server.port}/api/kernels/{kernel_id}/channels?session_id={uuid.uuid4().hex}",
            cookie=cookie, subprotocols=[protocol] if protocol else None, timeout=10,
            origin=f"http://127.0.0.1:{self.server.port}")


def frame(msg_type: str, content: dict, channel: str = "shell", msg_id: str | None = None,
          metadata: dict | None = None) -> bytes:
    """A v1 websocket frame, written out from the protocol description."""
    header = json.dumps({"msg_id": msg_id or uuid.uuid4().hex, "msg_type": msg_type, "username": "x",
                         "session": "probe", "date": "2026-01-01T00:00:00Z", "version": "5.3"}).encode()
    parts = [channel.encode(), header, b"{}", json.dumps(metadata or {}).encode(), json.dumps(content).encode()]
    offsets, position = [], 8 * (len(parts) + 2)
    for part in parts:
        offsets.append(position)
        position += len(part)
    offsets.append(position)
    return len(offsets).to_bytes(8, "little") + b"".join(o.to_bytes(8, "little") for o in offsets) + b"".join(parts)


def read_frame(data: bytes) -> tuple[str, dict, dict]:
    count = int.from_bytes(data[:8], "little")
    offsets = [int.from_bytes(data[8 * (i + 1): 8 * (i + 2)], "little") for i in range(min(count, 64))]
    parts = [data[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]
    return parts[0].decode(), json.loads(parts[1]), json.loads(parts[4]) if parts[4] else {}


def collect(channel: websocket.WebSocket, seconds: float) -> tuple[list[tuple[str, dict, dict]], bool]:
    """Messages received within `seconds`, and whether the server closed the channel."""
    received, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        channel.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            opcode, data = channel.recv_data(control_frame=False)
        except websocket.WebSocketTimeoutException:
            break
        except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
            return received, True
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return received, True
        if isinstance(data, bytes) and opcode == websocket.ABNF.OPCODE_BINARY:
            received.append(read_frame(data))
    return received, False


def widget_comms(channel: websocket.WebSocket) -> dict:
    request_id = uuid.uuid4().hex
    channel.send_binary(frame("comm_info_request", {"target_name": "jupyter.widget"}, msg_id=request_id))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        received, closed = collect(channel, 1)
        assert not closed
        for _, header, content in received:
            if header["msg_type"] == "comm_info_reply":
                return content["comms"]
    raise AssertionError("no comm_info_reply")


def assert_server_answers_quickly(server: Server) -> float:
    started = time.perf_counter()
    status, _, _ = server.request("GET", "/login", timeout=5)
    elapsed = time.perf_counter() - started
    assert status == 200 and elapsed < 1.0, elapsed
    return elapsed


# --------------------------------------------------------------------------------------------
# Live mode (Voila kernels)


@pytest.fixture(scope="module")
def live(store, tmp_path_factory):
    server = Server(store, tmp_path_factory.mktemp("live"), "--live", "--no-preheat", "--kernels-per-viewer", "2",
                    "--max-kernels", "3", "--kernel-lifetime", "900")
    yield server
    server.stop()


@pytest.mark.parametrize("claimed", [2**32, 2**32 - 1, 10_000_000, 2**64 - 1])
def test_a_frame_claiming_millions_of_parts_is_refused_at_once(live, claimed):
    viewer = Viewer(live, P04)
    kernel_id = viewer.open_page()
    channel = viewer.channel(kernel_id)
    try:
        started = time.perf_counter()
        channel.send_binary(claimed.to_bytes(8, "little"))
        assert_server_answers_quickly(live)
        _, closed = collect(channel, 3)
        assert closed and time.perf_counter() - started < 3
    finally:
        channel.close()
    legacy = viewer.channel(kernel_id, protocol=None)  # the legacy binary shape: 4-byte big-endian count
    try:
        legacy.send_binary(min(claimed, 2**31 - 1).to_bytes(4, "big") + b"\0\0\0\0")
        assert_server_answers_quickly(live)
        assert collect(legacy, 3)[1]
    finally:
        legacy.close()
    assert "frame claims" in live.log.read_text()


def test_a_frame_over_the_size_limit_closes_the_channel(live):
    viewer = Viewer(live, P04)
    channel = viewer.channel(viewer.open_page())
    try:
        channel.send_binary(frame("comm_msg", {"comm_id": "x", "data": {"pad": "x" * 300_000}}))
        assert collect(channel, 5)[1]
    finally:
        channel.close()
    assert_server_answers_quickly(live)


def test_only_widget_comm_targets_are_accepted_and_client_widgets_are_bounded(live):
    viewer = Viewer(live, P04)
    channel = viewer.channel(viewer.open_page())
    try:
        before = widget_comms(channel)
        assert before, "the dashboard's own widgets should be listed"
        foreign = uuid.uuid4().hex
        channel.send_binary(frame("comm_open", {"comm_id": foreign, "target_name": "jupyter.debugger", "data": {}}))
        channel.send_binary(frame("execute_request", {"code": "import os; os._exit(1)", "silent": False}))
        state = {"_model_module": "@jupyter-widgets/controls", "_model_module_version": "2.0.0",
                 "_model_name": "IntSliderModel", "_view_module": "@jupyter-widgets/controls",
                 "_view_module_version": "2.0.0", "_view_name": "IntSliderView", "value": 1}
        for _ in range(40):
            channel.send_binary(frame("comm_open", {"comm_id": uuid.uuid4().hex, "target_name": "jupyter.widget",
                                                    "data": {"state": state, "buffer_paths": []}},
                                      metadata={"version": "2.1.0"}))
        collect(channel, 2)
        after = widget_comms(channel)
    finally:
        channel.close()
    created = len(after) - len(before)
    assert 1 <= created <= 16, created  # the page may make a few widgets, never forty
    assert foreign not in after
    log = live.log.read_text()
    assert "comm target 'jupyter.debugger' is not a widget target" in log
    assert "message type 'execute_request' is not widget traffic" in log
    assert "already opened 16 comms" in log


def test_crafted_widget_messages_send_no_traceback_or_stderr_to_the_page(live):
    viewer = Viewer(live, P04)
    channel = viewer.channel(viewer.open_page())
    try:
        comms = widget_comms(channel)
        for comm_id in comms:
            for state in ({"index": "not-a-number"}, {"value": {"no": "such"}}, {"layout": 5}):
                channel.send_binary(frame("comm_msg", {"comm_id": comm_id,
                                                       "data": {"method": "update", "state": state,
                                                                "buffer_paths": [["x", 1]]}}))
        channel.send_binary(frame("comm_msg", {"comm_id": "no-such-comm", "data": {"method": "update"}}))
        channel.send_binary(frame("comm_open", {"comm_id": uuid.uuid4().hex, "target_name": "jupyter.widget",
                                                "data": {"state": {"_model_name": "NoSuchModel"}}}))
        received, _ = collect(channel, 4)
    finally:
        channel.close()
    assert received, "the kernel answered nothing at all"
    for _, header, content in received:
        assert header["msg_type"] != "error"
        assert not (header["msg_type"] == "stream" and content.get("name") == "stderr"), content
        assert "Traceback" not in json.dumps(content) and "traceback" not in content
    # the kernel did complain; the server kept it from the page
    assert "kept an error report or stderr" in live.log.read_text()


def test_thirty_tabs_of_one_viewer_hold_at_most_two_kernels(live):
    viewer = Viewer(live, P04)
    with ThreadPoolExecutor(max_workers=30) as pool:  # thirty tabs opened at once
        statuses = list(pool.map(lambda _: viewer.get("/")[0], range(30)))
    assert 1 <= statuses.count(200) <= 4 and set(statuses) <= {200, 429}, statuses
    assert len(live.kernels()) <= 3
    kernel_ids = [viewer.open_page() for _ in range(3)]  # then three more, one after the other
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and kernel_alive(live, kernel_ids[0]):
        time.sleep(0.2)
    assert not kernel_alive(live, kernel_ids[0])  # the oldest was taken over
    assert kernel_alive(live, kernel_ids[-1]) and kernel_alive(live, kernel_ids[-2])
    assert len(live.kernels()) <= 3
    with pytest.raises(websocket.WebSocketException):
        viewer.channel(kernel_ids[0])


def test_kernels_hold_no_secret_outside_the_allow_list(live):
    kernels = live.kernels()
    assert kernels, "the earlier tests left no kernel to look at"
    for kernel in kernels:
        environ = kernel.environ()
        assert "WORKBENCH_WAREHOUSE" not in environ and "MAIL_PASSWORD" not in environ


def test_revoking_a_token_closes_its_channels_and_kernels_at_once(live):
    viewer = Viewer(live, P02)
    kernel_id = viewer.open_page()
    channel = viewer.channel(kernel_id)
    try:
        widget_comms(channel)  # the channel works
        live.cli("tokens", "revoke", "partner:P-02")
        revoked = time.monotonic()
        _, closed = collect(channel, 3)
        assert closed
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and kernel_alive(live, kernel_id):
            time.sleep(0.1)
        assert not kernel_alive(live, kernel_id)
        assert time.monotonic() - revoked < 5
        assert viewer.get("/")[0] == 302  # the cookie no longer signs in
    finally:
        channel.close()
        live.cli("tokens", "add", "partner:P-02", "--token", P02)


def test_the_server_refuses_pages_beyond_the_total_kernel_cap(live):
    Viewer(live, P04).open_page()
    Viewer(live, P04).open_page()  # P-04 holds its two kernels
    Viewer(live, P02).open_page()  # P-02 the third: the server is full
    status, headers, body = Viewer(live, P99).get("/")
    assert status == 503 and headers.get("retry-after") == ["60"]
    assert "busy" in body and "Traceback" not in body
    assert len(live.kernels()) <= 3


@pytest.fixture(scope="module")
def short_lived(store, tmp_path_factory):
    server = Server(store, tmp_path_factory.mktemp("short"), "--live", "--no-preheat", "--kernel-lifetime", "12",
                    "--cull-idle", "600")
    yield server
    server.stop()


def test_widget_messages_do_not_keep_a_kernel_past_its_lifetime(short_lived):
    viewer = Viewer(short_lived, P04)
    kernel_id = viewer.open_page()
    opened = time.monotonic()
    channel = viewer.channel(kernel_id)
    closed_at = None
    try:
        while time.monotonic() - opened < 25 and closed_at is None:  # a widget message every second
            try:
                channel.send_binary(frame("kernel_info_request", {}))
            except (websocket.WebSocketException, OSError):
                closed_at = time.monotonic()
                break
            if collect(channel, 1)[1]:
                closed_at = time.monotonic()
    finally:
        channel.close()
    assert closed_at is not None and 8 <= closed_at - opened <= 20, closed_at and closed_at - opened
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and kernel_alive(short_lived, kernel_id):
        time.sleep(0.1)
    assert not kernel_alive(short_lived, kernel_id)
    assert "reached the kernel lifetime" in short_lived.log.read_text()


def test_live_error_pages_are_offline_and_api_errors_carry_no_traceback(live):
    viewer = Viewer(live, P04)
    status, _, body = viewer.get("/?release=AGG-P02")
    assert status == 404
    assert_offline(body)
    status, _, body = viewer.get(f"/api/kernels/{uuid.uuid4()}")
    assert status in (403, 404) and "Traceback" not in body and "traceback" not in body


# --------------------------------------------------------------------------------------------
# Static mode (the default) and what both modes share


@pytest.fixture(scope="module")
def static(store, tmp_path_factory):
    server = Server(store, tmp_path_factory.mktemp("static"))
    yield server
    server.stop()


def assert_offline(body: str) -> None:
    links = re.findall(r"""(?:href|src|action)\s*=\s*["']([^"']*)["']""", body)
    assert all(not re.match(r"^(?:[a-z]+:)?//", link) for link in links), links
    assert "cdn" not in body.lower() and "Traceback" not in body


def test_the_static_page_is_the_release_with_no_kernel_and_no_script(static):
    viewer = Viewer(static, P04)
    started = time.perf_counter()
    status, headers, body = viewer.get("/")
    assert status == 200 and time.perf_counter() - started < 1.0
    assert "<td>1,234</td>" in body and "AGG-P04" in body and "AGG-P02" not in body
    assert "<script" not in body and "kernelId" not in body
    assert "default-src 'none'" in headers["content-security-policy"][0]
    assert_offline(body)
    assert static.kernels() == []
    assert viewer.get("/?release=AGG-P02")[0] == 404
    for probe in ["/api/kernels", f"/api/kernels/{uuid.uuid4()}", "/voila/files/dashboard.ipynb"]:
        assert viewer.get(probe)[0] == 404, probe
    with pytest.raises(websocket.WebSocketException):
        viewer.channel(str(uuid.uuid4()))


def test_tokens_are_never_written_to_the_log(static):
    wrong = "a-wrong-token-of-some-length-123"
    for path, headers in [(f"/nothing-here?token={P04}", {}), (f"/?release=AGG-P02&token={P04}", {}),
                          (f"/?token={wrong}", {}), (f"/workbench/download/AGG-P02/tables/by_grade.csv?token={P04}", {}),
                          ("/nothing-here", {"Authorization": f"token {P04}"}),
                          (f"/api/kernels?token={P02}", {})]:
        status, _, _ = static.request("GET", path, headers)
        assert status in (302, 403, 404), (path, status)
    status, _, _ = static.request("POST", "/login", {"Content-Type": "application/x-www-form-urlencoded"},
                                  urlencode({"password": wrong}))
    assert status in (401, 403)
    time.sleep(0.3)
    log = static.log.read_text()
    for secret in [P04, P02, wrong]:
        assert secret not in log
    assert "[hidden]" in log


def test_sign_in_cookies_are_same_site_and_http_only(static):
    status, headers, _ = static.request("GET", f"/?token={P04}")
    assert status == 302
    [cookie] = [c for c in headers["set-cookie"] if c.startswith("workbench-viewer=")]
    assert "SameSite=Lax" in cookie and "HttpOnly" in cookie
    _, headers, _ = static.request("GET", "/login")
    assert all("SameSite=Lax" in c for c in headers["set-cookie"] if c.startswith("_xsrf="))


def test_logout_works_and_signs_the_browser_out(static):
    viewer = Viewer(static, P04)
    assert viewer.get("/")[0] == 200
    status, headers, body = viewer.get("/logout")
    assert status == 200 and "signed out" in body.lower()
    assert any(c.startswith("workbench-viewer=") for c in headers["set-cookie"])
    assert_offline(body)
    status, headers, _ = viewer.get("/")
    assert status == 302 and headers["location"][0].startswith("/login")


def test_error_pages_are_offline_and_show_no_exception(static):
    viewer = Viewer(static, P04)
    for path, expected in [("/?release=AGG-P02", 404), ("/no/such/page", 404),
                           ("/workbench/download/AGG-P04/manifest.json", 404)]:
        status, _, body = viewer.get(path)
        assert status == expected, path
        assert_offline(body)
    status, _, body = static.request("POST", "/login", {"Content-Type": "application/x-www-form-urlencoded"},
                                     "password=x")  # no XSRF token
    assert status == 403
    assert_offline(body)
    status, _, body = static.request("GET", "/login")
    assert status == 200 and "name='password'" in body
    assert_offline(body)


def test_a_page_opened_before_a_file_was_altered_never_shows_the_altered_data(static, store):
    viewer = Viewer(static, P04)
    status, _, body = viewer.get("/")
    assert "<td>1,234</td>" in body
    table = store.path_for("AGG-P04") / "tables" / "by_grade.csv"
    original = table.read_bytes()
    table.chmod(0o644)
    try:
        table.write_bytes(original.replace(b"1234", b"9876"))
        status, _, body = viewer.get("/")
        assert status == 200 and "9,876" not in body and "9876" not in body
        assert "AGG-P04" not in body  # an altered release is withdrawn from the page
        assert viewer.get("/workbench/download/AGG-P04/tables/by_grade.csv")[0] == 404
    finally:
        table.write_bytes(original)
        table.chmod(0o444)
    status, _, body = viewer.get("/")
    assert "<td>1,234</td>" in body
    status, _, data = viewer.get("/workbench/download/AGG-P04/tables/by_grade.csv")
    assert status == 200 and data.encode() == original


def test_revoking_a_token_signs_the_viewer_out_of_the_static_pages(static):
    viewer = Viewer(static, P99)
    assert viewer.get("/")[0] == 200
    static.cli("tokens", "revoke", "partner:P-99")
    try:
        assert viewer.get("/")[0] == 302
    finally:
        static.cli("tokens", "add", "partner:P-99", "--token", P99)


@pytest.fixture
def strict(store, tmp_path):
    server = Server(store, tmp_path, "--sign-in-failures", "5", "--sign-in-window", "4")
    yield server
    server.stop()


def test_token_guessing_is_rate_limited(strict):
    for attempt in range(5):
        status, headers, _ = strict.request("GET", f"/?token=guess-number-{attempt:02d}-of-many")
        assert status == 302 and "/login" in headers["location"][0]
    status, headers, body = strict.request("GET", f"/?token={P04}")  # even the right token waits now
    assert status == 429 and int(headers["retry-after"][0]) >= 1
    assert_offline(body)
    status, _, _ = strict.request("GET", "/", {"Authorization": f"token {P04}"})
    assert status == 429
    _, headers, form = strict.request("GET", "/login")  # the login form, with its XSRF token
    xsrf_cookie = next(c.split(";")[0] for c in headers["set-cookie"] if c.startswith("_xsrf="))
    xsrf_field = re.search(r'name="_xsrf" value="([^"]+)"', form).group(1)
    status, _, _ = strict.request("POST", "/login", {"Content-Type": "application/x-www-form-urlencoded",
                                                     "Cookie": xsrf_cookie},
                                  urlencode({"_xsrf": xsrf_field, "password": P04}))
    assert status == 429
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline and strict.request("GET", f"/?token={P04}")[0] == 429:
        time.sleep(0.5)
    assert strict.request("GET", f"/?token={P04}")[0] == 302
    assert P04 not in strict.log.read_text()


def test_hostile_requests_get_a_4xx_without_a_traceback_and_the_server_keeps_serving(static):
    """Methods nobody uses, traversal, a real token with one byte that is not UTF-8, huge and
    unicode tokens: each gets a 4xx (or a redirect to sign in), the log never shows the token or
    an exception, and other viewers are still served."""
    before = static.log.read_text()
    viewer = Viewer(static, P04)
    probes = [("TRACE", "/"), ("FOO", "/"), ("HEAD", "/"), ("GET", "/release/../../etc/passwd"),
              ("GET", "/%2e%2e/%2e%2e/etc/passwd"), ("GET", "/workbench/download/AGG-P04/tables%2f..%2fmanifest.json"),
              ("GET", "/workbench/download/..%2F..%2Fetc/tables/passwd")]
    for method, path in probes:
        cookie = "; ".join(f"{k}={v}" for k, v in viewer.cookies.items())
        status, _, body = static.request(method, path, {"Cookie": cookie})
        assert (status == 200 and method == "HEAD" and body == "") or 400 <= status < 500, (method, path, status)
        assert "Traceback" not in body and "root:" not in body
    for path in [f"/?token={P04}%FF", f"/?token={P04}%C3", "/?token=" + "A" * 4000, "/?token=%E2%9C%93t%C3%B6ken"]:
        status, headers, body = static.request("GET", path)
        assert status in (302, 400, 401, 403), (path[:40], status)
        assert status != 302 or headers["location"][0].startswith("/login")
    _, headers, form = static.request("GET", "/login")
    xsrf_cookie = next(c.split(";")[0] for c in headers["set-cookie"] if c.startswith("_xsrf="))
    xsrf_field = re.search(r'name="_xsrf" value="([^"]+)"', form).group(1)
    status, _, body = static.request("POST", "/login", {"Content-Type": "application/x-www-form-urlencoded",
                                                        "Cookie": xsrf_cookie},
                                     f"_xsrf={xsrf_field}&password={P04}%FF")
    assert 400 <= status < 500 and "Traceback" not in body
    assert Viewer(static, P02).get("/")[0] == 200
    time.sleep(0.3)
    log = static.log.read_text()[len(before):]
    assert P04 not in log and P04.encode().hex() not in log
    assert "Traceback" not in log and "Uncaught exception" not in log
