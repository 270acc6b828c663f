"""The dashboard's pure guards: bounded frame reading, widget-only policy, sign-in and kernel limits."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.dashboard import wire
from workbench.dashboard.limits import DashboardLimits, KernelLedger, SignInLimiter

V1 = wire.V1_PROTOCOL


def v1_frame(channel: str, msg_type: str, content: dict, buffers: tuple[bytes, ...] = ()) -> bytes:
    """A v1 frame built by hand from the protocol description (not with the code under test)."""
    header = json.dumps({"msg_id": "m1", "msg_type": msg_type, "session": "s", "username": "u",
                         "date": "2026-01-01T00:00:00Z", "version": "5.3"}).encode()
    parts = [channel.encode(), header, b"{}", b"{}", json.dumps(content).encode(), *buffers]
    count = len(parts) + 1
    offsets, position = [], 8 * (count + 1)
    for part in parts:
        offsets.append(position)
        position += len(part)
    offsets.append(position)
    return count.to_bytes(8, "little") + b"".join(o.to_bytes(8, "little") for o in offsets) + b"".join(parts)


@pytest.mark.parametrize("count", [2**32, 2**32 - 1, 10_000_000, 2**64 - 1, 7_000])
def test_frames_claiming_huge_part_counts_are_refused_at_once(count):
    frame = count.to_bytes(8, "little")
    started = time.perf_counter()
    with pytest.raises(wire.RefusedMessage):
        wire.read_incoming(frame, V1, 64 * 1024)
    with pytest.raises(wire.RefusedMessage):  # the legacy binary shape: 4-byte big-endian count
        wire.read_incoming(frame[:4][::-1] + frame[4:], None, 64 * 1024)
    assert time.perf_counter() - started < 0.05


def test_a_well_formed_widget_frame_reads_back():
    message = wire.read_incoming(v1_frame("shell", "comm_open", {"target_name": "jupyter.widget", "comm_id": "c"}),
                                 V1, 64 * 1024)
    assert (message.channel, message.msg_type, message.comm_target) == ("shell", "comm_open", "jupyter.widget")
    wire.check_incoming(message)
    legacy = json.dumps({"header": {"msg_type": "comm_msg"}, "content": {"comm_id": "c"}, "channel": "shell"})
    assert wire.read_incoming(legacy, None, 64 * 1024).msg_type == "comm_msg"


@pytest.mark.parametrize("channel,msg_type,content", [
    ("shell", "execute_request", {"code": "1"}),
    ("shell", "inspect_request", {}),
    ("shell", "shutdown_request", {}),
    ("control", "kernel_info_request", {}),
    ("stdin", "input_reply", {"value": "x"}),
    ("shell", "comm_open", {"target_name": "jupyter.debugger", "comm_id": "c"}),
    ("shell", "comm_open", {"comm_id": "c"}),
])
def test_only_widget_traffic_to_widget_targets_passes(channel, msg_type, content):
    with pytest.raises(wire.RefusedMessage):
        wire.check_incoming(wire.read_incoming(v1_frame(channel, msg_type, content), V1, 64 * 1024))


def test_frames_over_the_size_limit_and_misplaced_offsets_are_refused():
    good = v1_frame("shell", "comm_msg", {"comm_id": "c", "data": {"x": "y" * 100}})
    with pytest.raises(wire.RefusedMessage):
        wire.read_incoming(good, V1, len(good) - 1)
    falling = bytearray(good)
    falling[8 * 3: 8 * 4] = (len(good) + 10).to_bytes(8, "little")  # an offset past the end
    with pytest.raises(wire.RefusedMessage):
        wire.read_incoming(bytes(falling), V1, 64 * 1024)
    with pytest.raises(wire.RefusedMessage):
        wire.read_incoming(v1_frame("shell", "comm_msg", {}, buffers=(b"x",) * 10), V1, 64 * 1024)
    with pytest.raises(wire.RefusedMessage):
        wire.read_incoming(good.decode("latin-1"), V1, 64 * 1024)  # v1 is binary only


@settings(max_examples=300, deadline=200)
@given(st.binary(max_size=200), st.sampled_from([V1, None]))
def test_any_bytes_are_read_or_refused_quickly(frame, protocol):
    try:
        wire.read_incoming(frame, protocol, 64 * 1024)
    except wire.RefusedMessage:
        pass


@settings(max_examples=200, deadline=200)
@given(st.integers(min_value=0, max_value=2**64 - 1), st.binary(max_size=64))
def test_any_claimed_count_with_any_tail_is_bounded(count, tail):
    try:
        wire.read_incoming(count.to_bytes(8, "little") + tail, V1, 64 * 1024)
    except wire.RefusedMessage:
        pass


def test_outgoing_error_reports_and_stderr_are_hidden_and_details_dropped():
    assert wire.hidden_output("error", {"traceback": ["x"]})
    assert wire.hidden_output("stream", {"name": "stderr", "text": "Traceback"})
    assert not wire.hidden_output("stream", {"name": "stdout", "text": "ok"})
    assert wire.without_error_detail({"status": "error", "ename": "E", "evalue": "v", "traceback": []}) == {
        "status": "error"}
    channel, parts = wire.read_outgoing_v1(v1_frame("iopub", "status", {"execution_state": "idle"}))
    assert channel == "iopub" and wire.read_outgoing_v1(wire.write_v1(channel, parts)) == (channel, parts)


def test_sign_in_limiter_blocks_after_the_failures_and_forgets_after_the_window():
    now = [0.0]
    limiter = SignInLimiter(failures=3, window=10, clock=lambda: now[0], max_clients=2)
    for _ in range(3):
        assert not limiter.blocked("a")
        limiter.failed("a")
    assert limiter.blocked("a") and not limiter.blocked("b")
    assert 1 <= limiter.retry_after("a") <= 11
    now[0] = 10.5
    assert not limiter.blocked("a")
    for client in ["c", "d", "e"]:  # bounded memory: the oldest address is forgotten
        limiter.failed(client)
    assert len(limiter._seen) == 2


def test_a_viewer_holds_at_most_the_cap_and_a_new_page_takes_over_the_oldest_kernel():
    now = [0.0]
    ledger = KernelLedger(DashboardLimits(kernels_per_viewer=2, kernels_total=3, kernel_lifetime=100),
                          clock=lambda: now[0])
    for index in range(30):  # thirty tabs, one after the other
        admission = ledger.admit("partner:P-04")
        assert admission.refused is None
        now[0] += 1
        ledger.claim(f"k{index}", "partner:P-04")
        ledger.rendered("partner:P-04")
        assert len(ledger.kernels_of("partner:P-04")) <= 2
    assert ledger.kernels_of("partner:P-04") == ["k28", "k29"]


def test_pages_still_rendering_count_and_the_total_cap_refuses():
    ledger = KernelLedger(DashboardLimits(kernels_per_viewer=2, kernels_total=3))
    assert ledger.admit("a").refused is None and ledger.admit("a").refused is None
    assert ledger.admit("a").refused == "viewer"  # thirty tabs at once: the third waits
    assert ledger.admit("b").refused is None
    assert ledger.admit("c").refused == "server"
    ledger.rendered("b")
    assert ledger.admit("c").refused is None


def test_kernels_expire_after_the_hard_lifetime_whatever_their_activity():
    now = [0.0]
    ledger = KernelLedger(DashboardLimits(kernel_lifetime=30), clock=lambda: now[0])
    ledger.claim("k1", "a")
    ledger.claim("k1", "a")  # a second claim (activity, a reconnect) does not restart the clock
    now[0] = 29
    assert ledger.expired() == []
    now[0] = 30
    assert ledger.expired() == ["k1"]


def test_limits_refuse_nonsense():
    with pytest.raises(ValueError):
        DashboardLimits(kernels_per_viewer=0)
    with pytest.raises(ValueError):
        DashboardLimits(kernel_lifetime=0)
