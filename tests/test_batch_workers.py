"""Progress as a fill works, and batch workers that keep a warm kernel each.

Real runs: the `workbench` command in a subprocess, real guarded kernels, the demo district.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest

from workbench.config import DATA_DIR, TEMPLATES_DIR

pytestmark = pytest.mark.slow

WORKBENCH = Path(sys.executable).parent / "workbench"
ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
DEMO = DATA_DIR / "requests" / "demo"
AS_OF = "2026-06-01"


def _read_lines_as_they_come(process: subprocess.Popen) -> tuple[list[tuple[float, str]], threading.Thread]:
    lines: list[tuple[float, str]] = []

    def read() -> None:
        for line in process.stderr:
            lines.append((time.monotonic(), line.rstrip("\n")))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return lines, reader


def test_a_fill_reports_each_stage_as_it_starts(tmp_path, demo_warehouse):
    process = subprocess.Popen(
        [str(WORKBENCH), "fill", str(DEMO / "partner_aggregate.yml"), "--as-of", AS_OF, "--releases",
         str(tmp_path / "releases"), "--warehouse", demo_warehouse, "--no-register"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    lines, reader = _read_lines_as_they_come(process)
    # The first stage is on the terminal while the fill is still working, not at its end.
    deadline = time.monotonic() + 300
    while not any("deciding" in text for _, text in lines) and time.monotonic() < deadline:
        assert process.poll() is None or lines, "the fill ended without reporting a stage"
        time.sleep(0.05)
    assert process.poll() is None, "the first stages were only printed when the fill had ended"
    stdout = process.stdout.read()
    assert process.wait(timeout=600) == 0, "\n".join(text for _, text in lines)
    reader.join(timeout=10)
    stages = [text.split(": ", 1)[1] for _, text in lines if text.startswith("[") and "partner_aggregate.yml" in text]
    assert stages[:3] == ["reading the request", "deciding", "starting kernel"]
    cells = [s for s in stages if s.startswith("cell ")]
    total = int(cells[0].split()[1].split("/")[1])
    assert [int(c.split()[1].split("/")[0]) for c in cells] == list(range(1, total + 1))
    assert any("(Students in the program, by grade)" in c for c in cells)  # the section each cell is in
    assert stages[-2:] == ["checking release", "publishing"]
    # Lines came as the stages started: the last arrived well after the first.
    arrived = [at for at, text in lines if text.startswith("[")]
    assert arrived[-1] - arrived[0] > 1.0
    assert "released" in stdout
    quiet = subprocess.run([str(WORKBENCH), "fill", str(DEMO / "media.yml"), "--policy", "bps", "--as-of", AS_OF,
                            "--releases", str(tmp_path / "quiet"), "--warehouse", demo_warehouse, "--no-register",
                            "--quiet"], capture_output=True, text=True, env=ENV)
    assert quiet.returncode == 0 and quiet.stderr == ""


def _template_that_looks_for_leftovers(folder: Path) -> None:
    """The partner template, with a cell that prints which names of an earlier report it can see
    and the kernel it runs in, and a last cell that leaves a variable behind."""
    shutil.copytree(TEMPLATES_DIR, folder)
    path = folder / "partner_aggregate.ipynb"
    notebook = nbformat.read(path, as_version=4)
    notebook.cells.insert(2, nbformat.v4.new_code_cell(
        "import os\n"
        "print('leftover:', sorted(n for n in ('left_behind', 'ctx', 'by_grade', 'summary') if n in globals()))\n"
        "# the kernel's pid in letters: a number in an output could be mistaken for a student ID\n"
        "print('kernel:', ''.join(chr(97 + int(d)) for d in str(os.getpid())))"))
    notebook.cells.append(nbformat.v4.new_code_cell("left_behind = ctx.request.id"))
    nbformat.write(notebook, path)


def _printed(release: Path) -> dict[str, str]:
    notebook = nbformat.read(release / "report.ipynb", as_version=4)
    text = "".join(o.get("text", "") for cell in notebook.cells for o in cell.get("outputs", []))
    return dict(line.split(": ", 1) for line in text.splitlines() if line.startswith(("leftover:", "kernel:")))


def test_workers_reuse_their_kernel_and_no_report_sees_the_one_before(tmp_path, demo_warehouse, monkeypatch):
    import workbench.fill
    from workbench.batch import FillJob, run_batch

    # Workers are forked from this process: they run the template changed here.
    _template_that_looks_for_leftovers(tmp_path / "templates")
    monkeypatch.setattr(workbench.fill, "TEMPLATES_DIR", tmp_path / "templates")
    aggregate = (DEMO / "partner_aggregate.yml").read_text()
    jobs = []
    for number in range(4):
        request = tmp_path / f"{number}.yml"
        request.write_text(aggregate.replace("id: DEMO-PARTNER-AGG", f"id: AGG-{number}"))
        jobs.append(FillJob(str(request), None, AS_OF, str(tmp_path / "releases"), demo_warehouse, False))
    stages: list[tuple[str, str]] = []
    results = run_batch(jobs, workers=2, on_stage=lambda request, stage: stages.append((Path(request).name, stage)))
    assert all(r["ok"] for r in results), [r.get("error") for r in results]
    printed = [_printed(tmp_path / "releases" / f"AGG-{n}") for n in range(4)]
    assert [p["leftover"] for p in printed] == ["[]"] * 4, "a report saw a variable of the one before"
    assert len({r["process"] for r in results}) == 2 and len({p["kernel"] for p in printed}) == 2, \
        "each of the two workers filled two reports in one kernel"
    assert {name for name, _ in stages} == {f"{n}.yml" for n in range(4)}
    assert ("2.yml", "preparing the warm kernel") in stages


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _is_kernel(pid: int) -> bool:
    try:
        return b"ipykernel_launcher" in (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return False


def _running(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_killed_worker_fails_its_request_and_takes_its_kernel_with_it(tmp_path, demo_warehouse):
    requests = tmp_path / "requests"
    requests.mkdir()
    aggregate = (DEMO / "partner_aggregate.yml").read_text()
    for name in ("1-victim", "2-next", "3-next", "4-next"):
        (requests / f"{name}.yml").write_text(aggregate.replace("id: DEMO-PARTNER-AGG", f"id: {name.upper()}"))
    releases = tmp_path / "releases"
    batch = subprocess.Popen([str(WORKBENCH), "batch", str(requests), "--as-of", AS_OF, "--releases", str(releases),
                              "--warehouse", demo_warehouse, "--workers", "2", "--no-register"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.monotonic() + 300
    victim, kernel = None, None
    while kernel is None:
        assert time.monotonic() < deadline and batch.poll() is None, "the victim's kernel never started"
        locks = list(releases.glob(".staging-1-VICTIM-*.lock"))
        if locks and victim is None:
            victim = int(locks[0].read_text().strip())
        if victim is not None:
            kernel = next((pid for pid in _children(victim) if _is_kernel(pid)), None)
        time.sleep(0.1)
    os.kill(victim, signal.SIGKILL)
    stdout, stderr = batch.communicate(timeout=900)
    assert batch.returncode == 1, stderr[-3000:]
    assert "3 filled, 1 failed" in stdout, stdout + stderr[-3000:]
    assert "1-victim.yml: the process filling this request was killed by SIGKILL" in stderr
    assert sorted(p.name for p in releases.iterdir() if not p.name.startswith(".")) == ["2-NEXT", "3-NEXT", "4-NEXT"]
    deadline = time.monotonic() + 30
    while _running(kernel) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _running(kernel), "the killed worker's kernel outlived it"


def test_a_parallel_batch_after_a_sequential_one_in_the_same_process(tmp_path, demo_warehouse):
    # The workers are forked from a process whose warm kernel and event loop were in use.
    script = tmp_path / "two_batches.py"
    script.write_text(
        "import sys\n"
        "from workbench.batch import FillJob, run_batch\n"
        "demo, warehouse, out = sys.argv[1:]\n"
        "def jobs(folder):\n"
        f"    return [FillJob(f'{{demo}}/{{name}}.yml', None, '{AS_OF}', f'{{out}}/{{folder}}', warehouse, False)\n"
        "            for name in ('partner_aggregate', 'media')]\n"
        "print('sequential', all(r['ok'] for r in run_batch(jobs('one'), workers=1)), flush=True)\n"
        "print('parallel', all(r['ok'] for r in run_batch(jobs('two'), workers=2)), flush=True)\n")
    done = subprocess.run([sys.executable, str(script), str(DEMO), demo_warehouse, str(tmp_path)],
                          capture_output=True, text=True, env=ENV, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["sequential", "True", "parallel", "True"]
