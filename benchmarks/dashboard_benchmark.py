"""Benchmark: partner dashboard, pre-rendered static pages against live Voila kernels.

    .venv/bin/python benchmarks/dashboard_benchmark.py [--viewers 8] [--concurrent 6] [--releases DIR]

For each server mode, `workbench serve` over the demo release store (P-04's aggregate release;
filled from the demo district when the store has none), measured with Debian's /usr/bin/chromium:

  * first render: VIEWERS partner sessions in a row, each a fresh browser context that signs in
    with a token link and waits until the release's tables are on the page, then leaves;
  * memory per concurrent viewer: CONCURRENT sessions that sign in one after another and all stay
    on the page; the resident memory (RSS) of the server and all its kernels is read with nobody
    connected and after each viewer arrives. MB per additional viewer is the least-squares slope of
    RSS over the number of viewers on the page; viewers per GB is 1024 over that slope.

Modes:

  * static        `workbench serve` (the default): each release rendered once, served as a page;
  * live, pool 2  `workbench serve --live`: Voila kernels, two preheated (the former default).

Reported: medians and 90th percentiles of time to first render, MB per additional concurrent
viewer, viewers per GB, and the ratios live / static measured in the same run, against the goals
(<= 1 s first render, <= 10 MB per additional concurrent viewer).
Results: benchmarks/results/dashboard.md and dashboard.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser_fixtures import CHROMIUM, CHROMIUM_FLAGS  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
WORKBENCH = Path(sys.executable).parent / "workbench"
RELEASE = "DEMO-PARTNER-AGG"
VIEWER = "partner:P-04"
TOKEN = "benchmark-token-partner-p04"
MB = 1024 * 1024
GOAL_SECONDS, GOAL_MB = 1.0, 10.0
TABLES = f".workbench-release[data-release='{RELEASE}'] table.workbench-table"


def ensure_release(store_root: Path) -> None:
    """The demo partner release, filled from the demo district when the store lacks it."""
    from workbench.release.store import ReleaseStore

    if ReleaseStore(store_root).exists(RELEASE):
        return
    from workbench.cli.demo_commands import _ensure_district
    from workbench.config import DATA_DIR, DEFAULT_WAREHOUSE_PATH
    from workbench.fill import fill

    _ensure_district(DEFAULT_WAREHOUSE_PATH)
    fill(DATA_DIR / "requests" / "demo" / "partner_aggregate.yml", "dmps", "2026-06-01",
         store=ReleaseStore(store_root), warehouse=str(DEFAULT_WAREHOUSE_PATH))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def tree(pid: int) -> tuple[int, int]:
    """RSS of the process and its descendants, and how many of them are kernels."""
    total, kernels = 0, 0
    root = psutil.Process(pid)
    for process in [root, *root.children(recursive=True)]:
        try:
            total += process.memory_info().rss
            kernels += "ipykernel" in " ".join(process.cmdline())
        except psutil.NoSuchProcess:
            continue
    return total, kernels


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise RuntimeError(f"timed out waiting for {what}")


def slope(xs: list[float], ys: list[float]) -> float:
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / sum((x - mean_x) ** 2 for x in xs)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(round(share * len(ordered))) - 1)]


def run_mode(name: str, extra: list[str], store_root: Path, tokens: Path, viewers: int, concurrent: int,
             browser, settle: float) -> dict:
    port = free_port()
    log_path = Path(tempfile.mkdtemp(prefix="dash-bench-")) / "server.log"
    log = log_path.open("w")
    started = time.perf_counter()
    server = subprocess.Popen([str(WORKBENCH), "serve", "--releases", str(store_root), "--tokens", str(tokens),
                               "--port", str(port), "--kernels-per-viewer", str(concurrent + 2), *extra],
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"

    def up() -> bool:
        try:
            urllib.request.urlopen(url + "login", timeout=2)
            return True
        except (urllib.error.URLError, OSError):
            return False

    try:
        wait_for(up, 120, "the server")
        if "--live" in extra:
            wait_for(lambda: "is filled with" in log_path.read_text(), 180, "the kernel pool")
        ready = time.perf_counter() - started
        time.sleep(settle)
        first_render = []
        for _ in range(viewers):  # one after another: time to the tables on the page
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            t0 = time.perf_counter()
            page.goto(f"{url}?token={TOKEN}")
            page.wait_for_selector(TABLES, timeout=180_000)
            first_render.append(time.perf_counter() - t0)
            page.close(run_before_unload=True)
            context.close()
            time.sleep(1.0)  # the page's kernel shutdown (live) reaches the server
        time.sleep(settle)
        idle_rss, idle_kernels = tree(server.pid)
        on_page, rss, contexts = [0], [idle_rss / MB], []
        for index in range(concurrent):  # then all at once: memory per viewer on the page
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.goto(f"{url}?token={TOKEN}")
            page.wait_for_selector(TABLES, timeout=180_000)
            contexts.append(context)
            time.sleep(2.0)  # a live pool refills after each viewer; count that too
            total, kernels = tree(server.pid)
            on_page.append(index + 1)
            rss.append(total / MB)
        per_viewer = slope(on_page, rss)
        for context in contexts:
            context.close()
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()
    # a slope under the measuring noise still gets a finite viewers-per-GB figure
    floor = max(per_viewer, 0.5)
    return {
        "mode": name,
        "server_args": extra,
        "server_ready_seconds": round(ready, 1),
        "viewers_in_a_row": viewers,
        "first_render_seconds": [round(s, 3) for s in first_render],
        "median_first_render_seconds": round(statistics.median(first_render), 3),
        "p90_first_render_seconds": round(percentile(first_render, 0.9), 3),
        "idle_rss_mb": round(idle_rss / MB, 1),
        "idle_kernels": idle_kernels,
        "concurrent_viewers": concurrent,
        "rss_mb_by_viewers_on_page": [round(v, 1) for v in rss],
        "kernels_with_all_viewers_on_page": kernels,
        "mb_per_additional_viewer": round(per_viewer, 1),
        "viewers_per_gb": int(1024 / floor),
        "viewers_per_gb_is_floor": per_viewer < 0.5,
    }


def write_results(report: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "dashboard.json").write_text(json.dumps(report, indent=2) + "\n")
    static, live = report["modes"]["static"], report["modes"]["live, pool 2"]
    lines = [
        "# Dashboard benchmark: pre-rendered static pages against live Voila kernels",
        "",
        f"`{report['command']}` on {report['machine']} ({report['cpus']} CPUs, shared: 1-minute load average "
        f"{report['load_average_1min'][0]} at the start, {report['load_average_1min'][1]} at the end), {report['date']}. "
        "Both modes ran in the same run, so the ratios compare like with like; absolute live times grow with the load.",
        f"First render: {report['viewers']} partner viewers in a row, each a fresh chromium context that signs in with "
        "a token link and waits until the release's tables are on the page. Memory: then "
        f"{report['concurrent']} viewers sign in one after another and all stay on the page; the RSS of the server and "
        "all its kernels is read with nobody on the page and after each arrival; MB per additional viewer is the "
        "least-squares slope, viewers per GB is 1024 over it.",
        "",
        "| mode | median s to first render | p90 s | goal <= 1 s | MB per additional concurrent viewer | goal <= 10 MB | "
        "viewers per GB | idle RSS MB | kernels with all viewers on | server ready s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mode in (static, live):
        per_gb = ("> " if mode["viewers_per_gb_is_floor"] else "") + str(mode["viewers_per_gb"])
        lines.append(
            f"| {mode['mode']} | {mode['median_first_render_seconds']} | {mode['p90_first_render_seconds']} | "
            f"{'met' if mode['median_first_render_seconds'] <= GOAL_SECONDS else 'missed'} | "
            f"{mode['mb_per_additional_viewer']} | {'met' if mode['mb_per_additional_viewer'] <= GOAL_MB else 'missed'} | "
            f"{per_gb} | {mode['idle_rss_mb']} | {mode['kernels_with_all_viewers_on_page']} | "
            f"{mode['server_ready_seconds']} |")
    lines += [
        "",
        f"Ratios live / static: first render **{report['ratios']['first_render']}x**, memory per additional viewer "
        f"**{report['ratios']['mb_per_viewer']}x** (static's slope floored at 0.5 MB), idle memory "
        f"**{report['ratios']['idle_rss']}x**.",
        "",
        "RSS of the server with 0, 1, 2, ... viewers on the page (MB):",
        "",
        f"- static: {static['rss_mb_by_viewers_on_page']}",
        f"- live, pool 2: {live['rss_mb_by_viewers_on_page']}",
        "",
        "Reading it: a static page is the release rendered once (when the server starts, or on the first view of a "
        "release published later) and sent as one HTML document with its styles and charts inline; the browser draws "
        "it without a script, a websocket or a kernel, so each viewer costs the server a request and nothing that "
        "stays. A live page costs a kernel per viewer (the preheated pool only hides the start-up time, and refills "
        "behind each viewer), and the browser has to start Voila's front end and open the kernel channel before the "
        "widgets appear. The dashboards show released aggregates only, so nothing on them needs a live kernel; "
        "`workbench serve` serves static pages and keeps `--live` for a page that would.",
        "",
        "Per-viewer samples are in dashboard.json.",
    ]
    (RESULTS / "dashboard.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, default=6, help="Viewers in a row for the first-render times.")
    parser.add_argument("--concurrent", type=int, default=5, help="Viewers on the page at once for memory.")
    parser.add_argument("--settle", type=float, default=5.0, help="Seconds to let start-up work finish.")
    parser.add_argument("--releases", type=Path, default=ROOT / "releases")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from workbench.dashboard.access import TokenBook

    ensure_release(args.releases)
    tokens = Path(tempfile.mkdtemp(prefix="dash-bench-")) / "tokens.json"
    TokenBook(tokens).add(VIEWER, "benchmark", TOKEN)
    modes = {}
    load_before = os.getloadavg()[0]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            for name, extra in [("static", []), ("live, pool 2", ["--live", "--pool-size", "2"])]:
                print(f"{name}: {args.viewers} viewers in a row, then {args.concurrent} at once ...", flush=True)
                modes[name] = run_mode(name, extra, args.releases, tokens, args.viewers, args.concurrent, browser,
                                       args.settle)
                print(f"  median first render {modes[name]['median_first_render_seconds']} s, "
                      f"{modes[name]['mb_per_additional_viewer']} MB per additional viewer", flush=True)
        finally:
            browser.close()
    static, live = modes["static"], modes["live, pool 2"]
    report = {
        "command": "python benchmarks/dashboard_benchmark.py" + "".join(f" {a}" for a in sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "viewers": args.viewers,
        "concurrent": args.concurrent,
        "load_average_1min": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "goals": {"first_render_seconds": GOAL_SECONDS, "mb_per_additional_viewer": GOAL_MB},
        "modes": modes,
        "ratios": {
            "first_render": round(live["median_first_render_seconds"] / static["median_first_render_seconds"], 1),
            "mb_per_viewer": round(live["mb_per_additional_viewer"] / max(static["mb_per_additional_viewer"], 0.5), 1),
            "idle_rss": round(live["idle_rss_mb"] / static["idle_rss_mb"], 2),
        },
    }
    write_results(report)
    print(f"ratios live / static: {report['ratios']}")
    print(f"wrote {RESULTS / 'dashboard.md'} and dashboard.json")


if __name__ == "__main__":
    main()
