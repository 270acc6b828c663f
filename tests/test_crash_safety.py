"""Crashes lose nothing and leave nothing: real processes, killed with real signals.

A fill killed at any point leaves at most a staging folder whose lock is free; the next fill
removes it. SIGTERM removes it at once. Readers of the store skip what is not a release. A
release altered after it was published is refused by `release check` and by a re-fill. One
killed batch worker fails only its own request.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from workbench.config import DATA_DIR
from workbench.release.store import ReleaseStore

ROOT = Path(__file__).resolve().parents[1]
WORKBENCH = Path(sys.executable).parent / "workbench"
DEMO = DATA_DIR / "requests" / "demo"
AS_OF = "2026-06-01"
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(WORKBENCH), *args], capture_output=True, text=True, env=ENV, timeout=timeout)


def start_fill(request: Path, releases: Path, warehouse: str, policy: str = "dmps") -> subprocess.Popen:
    return subprocess.Popen([str(WORKBENCH), "fill", str(request), "--policy", policy, "--as-of", AS_OF,
                             "--releases", str(releases), "--warehouse", warehouse, "--no-register"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)


def staging_left(releases: Path) -> list[str]:
    return sorted(p.name for p in releases.glob(".staging-*")) if releases.is_dir() else []


def wait_for(condition, timeout: float = 300, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def wait_for_kernel_output(releases: Path, process: subprocess.Popen) -> None:
    """Until the template has started writing into its staging folder (the kernel is running)."""
    def writing() -> bool:
        assert process.poll() is None, process.communicate()
        return any((folder / "report.ipynb").exists() for folder in releases.glob(".staging-*") if folder.is_dir())
    wait_for(writing, what="the template to start writing")


def no_traceback(result) -> None:
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout


# -- kills during a fill ------------------------------------------------------------------------

@pytest.mark.slow
def test_a_fill_killed_mid_run_leaves_only_stale_staging_that_the_next_fill_removes(tmp_path, demo_warehouse):
    releases = tmp_path / "releases"
    process = start_fill(DEMO / "partner_aggregate.yml", releases, demo_warehouse)
    wait_for_kernel_output(releases, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    left = staging_left(releases)
    assert any(not name.endswith(".lock") for name in left), left  # what a killed fill leaves
    assert not (releases / "DEMO-PARTNER-AGG").exists()

    listing = run("release", "list", "--releases", str(releases))
    assert listing.returncode == 0 and listing.stdout.strip() == "", listing.stderr
    no_traceback(listing)

    again = run("fill", str(DEMO / "partner_aggregate.yml"), "--policy", "dmps", "--as-of", AS_OF,
                "--releases", str(releases), "--warehouse", demo_warehouse, "--no-register")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "; released]" in again.stdout
    assert staging_left(releases) == []
    assert ReleaseStore(releases).verify("DEMO-PARTNER-AGG") == []


@pytest.mark.slow
def test_sigterm_during_a_fill_removes_its_staging_folder_and_ends(tmp_path, demo_warehouse):
    releases = tmp_path / "releases"
    process = start_fill(DEMO / "partner_aggregate.yml", releases, demo_warehouse)
    wait_for_kernel_output(releases, process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert "Traceback" not in stderr
    assert staging_left(releases) == []
    assert not (releases / "DEMO-PARTNER-AGG").exists()


TERM_DURING_A_QUERY = textwrap.dedent("""
    import os, signal, sys, threading
    import duckdb
    from workbench.release.store import ReleaseStore

    store = ReleaseStore(sys.argv[1])
    with store.staging("REQ-1") as folder:
        (folder / "report.ipynb").write_text("{}")
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
        # A long warehouse query: DuckDB turns the signal's exception into its own RuntimeError.
        duckdb.connect().execute("select count(*) from range(10000000000) a").fetchall()
""")


def test_sigterm_during_a_warehouse_query_ends_as_terminated_not_as_an_unexpected_error(tmp_path):
    releases = tmp_path / "releases"
    result = subprocess.run([sys.executable, "-c", TERM_DURING_A_QUERY, str(releases)], capture_output=True,
                            text=True, env=ENV, timeout=120)
    assert result.returncode == 128 + signal.SIGTERM, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert staging_left(releases) == [] and list(releases.iterdir()) == []


KILL_BEFORE_RENAME = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from workbench.release.store import ReleaseStore

    store = ReleaseStore(sys.argv[1])
    real_replace = os.replace

    def replace(source, target):
        if Path(target).name == "REQ-1":  # the final rename of the release folder
            os.kill(os.getpid(), signal.SIGKILL)
        return real_replace(source, target)

    os.replace = replace
    with store.staging("REQ-1") as folder:
        (folder / "data").mkdir()
        (folder / "data" / "roster.csv").write_text("student_id,first_name\\n0012684,Ana\\n")
        store.publish(folder, "REQ-1", {"request": {"id": "REQ-1"}})
""")

PUBLISH = textwrap.dedent("""
    import sys
    from workbench.release.store import ReleaseStore

    store = ReleaseStore(sys.argv[1])
    with store.staging(sys.argv[2]) as folder:
        (folder / "letter.md").write_text("Dear requester")
        store.publish(folder, sys.argv[2], {"request": {"id": sys.argv[2]}})
""")


def test_a_kill_just_before_the_final_rename_does_not_break_readers_and_is_cleaned_next_time(tmp_path):
    releases = tmp_path / "releases"
    killed = subprocess.run([sys.executable, "-c", KILL_BEFORE_RENAME, str(releases)], env=ENV,
                            capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL
    left = staging_left(releases)
    folder = next(releases / name for name in left if not name.endswith(".lock"))
    assert (folder / "manifest.json").is_file() and (folder / "data" / "roster.csv").is_file()

    listing = run("release", "list", "--releases", str(releases))
    assert listing.returncode == 0, listing.stderr
    no_traceback(listing)
    assert listing.stdout.strip() == ""

    nxt = subprocess.run([sys.executable, "-c", PUBLISH, str(releases), "REQ-2"], env=ENV, capture_output=True,
                         text=True)
    assert nxt.returncode == 0, nxt.stderr
    assert staging_left(releases) == []  # the roster left by the killed fill is gone
    assert sorted(p.name for p in releases.iterdir()) == ["REQ-2"]
    assert run("release", "list", "--releases", str(releases)).stdout.startswith("REQ-2")


HOLD_STAGING = textwrap.dedent("""
    import sys, time
    from workbench.release.store import ReleaseStore

    with ReleaseStore(sys.argv[1]).staging("LIVE") as folder:
        (folder / "part.csv").write_text("x")
        print(folder.name, flush=True)
        time.sleep(120)
""")


def test_only_staging_whose_process_is_gone_is_removed(tmp_path):
    releases = tmp_path / "releases"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_STAGING, str(releases)], env=ENV, stdout=subprocess.PIPE,
                              text=True)
    try:
        live = holder.stdout.readline().strip()
        assert live.startswith(".staging-LIVE-")
        orphan = releases / ".staging-OLD-0badc0de"  # from a version without lock files, or a lost lock
        orphan.mkdir()
        (orphan / "roster.csv").write_text("x")
        removed = ReleaseStore(releases).remove_stale_staging()
        assert removed == [orphan.name]
        assert (releases / live / "part.csv").is_file()  # the live fill keeps its folder
    finally:
        holder.kill()
        holder.wait()
    assert ReleaseStore(releases).remove_stale_staging() == [live]
    assert staging_left(releases) == []


# -- readers skip what is not a release --------------------------------------------------------

def test_release_list_skips_malformed_folders_with_a_warning(tmp_path):
    releases = tmp_path / "releases"
    assert subprocess.run([sys.executable, "-c", PUBLISH, str(releases), "GOOD-1"], env=ENV).returncode == 0
    (releases / "TRUNCATED").mkdir()
    (releases / "TRUNCATED" / "manifest.json").write_text('{"files": {"a.csv": "')
    (releases / "NO-MANIFEST").mkdir()
    (releases / "LIST").mkdir()
    (releases / "LIST" / "manifest.json").write_text("[1, 2]")
    (releases / "OTHER").mkdir()
    (releases / "OTHER" / "manifest.json").write_text(json.dumps({"release_id": "GOOD-1", "files": {}}))
    (releases / "BINARY").mkdir()
    (releases / "BINARY" / "manifest.json").write_bytes(b"\xff\xfe\x00")
    (releases / "not an id").mkdir()
    result = run("release", "list", "--releases", str(releases))
    assert result.returncode == 0, result.stderr
    no_traceback(result)
    assert [line.split()[0] for line in result.stdout.splitlines()] == ["GOOD-1"]
    for name in ("TRUNCATED", "NO-MANIFEST", "LIST", "OTHER", "BINARY", "not an id"):
        assert f"skipped {name}:" in result.stderr, result.stderr
    assert ReleaseStore(releases).releases() == ["GOOD-1"]


# -- altered releases ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def letter_release(tmp_path_factory, demo_warehouse):
    """A real release (a redirect letter: no kernel needed), filled once through the command line."""
    releases = tmp_path_factory.mktemp("letter") / "releases"
    result = run("fill", str(DEMO / "media.yml"), "--policy", "bps", "--as-of", AS_OF, "--releases", str(releases),
                 "--warehouse", demo_warehouse, "--no-register")
    assert result.returncode == 0, result.stderr
    return releases / "DEMO-MEDIA"


def fresh_copy(release: Path, tmp_path: Path) -> Path:
    releases = tmp_path / "releases"
    releases.mkdir()
    target = releases / release.name
    shutil.copytree(release, target)
    for path in target.rglob("*"):
        path.chmod(0o644 if path.is_file() else 0o755)
    return target


def check(folder: Path, warehouse: str):
    return run("release", "check", str(folder), "--warehouse", warehouse)


def test_release_check_verifies_every_byte_against_the_manifest(letter_release, tmp_path, demo_warehouse):
    folder = fresh_copy(letter_release, tmp_path)
    clean = check(folder, demo_warehouse)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "checksums: all 2 files match the manifest" in clean.stdout

    letter = folder / "letter.md"
    original = letter.read_bytes()
    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 0x01  # one bit of one byte
    letter.write_bytes(bytes(flipped))
    altered = check(folder, demo_warehouse)
    assert altered.returncode == 1
    assert "letter.md: its bytes do not match the manifest's checksum" in altered.stdout
    no_traceback(altered)

    letter.write_bytes(original)
    (folder / "extra.csv").write_text("students\n3\n")
    extra = check(folder, demo_warehouse)
    assert extra.returncode == 1 and "extra.csv: not in the manifest" in extra.stdout

    (folder / "extra.csv").unlink()
    os.symlink("/etc/hostname", folder / "decision.md")
    link = check(folder, demo_warehouse)
    assert link.returncode == 1 and "decision.md: is a link" in link.stdout

    (folder / "decision.md").unlink()
    (folder / "decision.json").unlink()
    missing = check(folder, demo_warehouse)
    assert missing.returncode == 1 and "decision.json: listed in the manifest but missing" in missing.stdout

    (folder / "manifest.json").write_text("{not json")
    broken = check(folder, demo_warehouse)
    assert broken.returncode == 1 and "not valid JSON" in broken.stderr
    no_traceback(broken)


def test_release_check_verifies_every_byte_of_the_manifest_itself(letter_release, tmp_path, demo_warehouse):
    """The manifest says who the release is for and what was decided: an edit there is tampering too."""
    folder = fresh_copy(letter_release, tmp_path)
    manifest = folder / "manifest.json"
    original = manifest.read_text()
    assert '"outcome": "redirect"' in original
    edits = {
        "a decision changed": original.replace('"outcome": "redirect"', '"outcome": "approve"', 1),
        "one byte of layout": original.replace('{\n  "', '{\n   "', 1),
        "its own digest removed": "\n".join(line for line in original.splitlines()
                                            if '"manifest_digest"' not in line) + "\n",
    }
    for what, text in edits.items():
        assert text != original, what
        manifest.write_text(text)
        result = check(folder, demo_warehouse)
        assert result.returncode == 1, (what, result.stdout)
        assert "manifest.json:" in result.stdout, (what, result.stdout)
        no_traceback(result)
        refill = run("fill", str(DEMO / "media.yml"), "--policy", "bps", "--as-of", AS_OF,
                     "--releases", str(folder.parent), "--warehouse", demo_warehouse, "--no-register")
        assert refill.returncode == 1 and "no longer matches its manifest" in refill.stderr, (what, refill.stderr)
        assert manifest.read_text() == text  # the evidence is kept as found
    manifest.write_text(original)
    assert check(folder, demo_warehouse).returncode == 0


def test_refilling_an_altered_release_is_refused_not_called_identical(letter_release, tmp_path, demo_warehouse):
    folder = fresh_copy(letter_release, tmp_path)
    (folder / "letter.md").write_text("Your request is approved; the data is attached.\n")
    result = run("fill", str(DEMO / "media.yml"), "--policy", "bps", "--as-of", AS_OF,
                 "--releases", str(folder.parent), "--warehouse", demo_warehouse, "--no-register")
    assert result.returncode == 1, result.stdout
    assert "identical release exists" not in result.stdout
    assert "no longer matches its manifest" in result.stderr and "letter.md" in result.stderr
    assert (folder / "letter.md").read_text().startswith("Your request is approved")  # evidence kept as found
    assert staging_left(folder.parent) == []


# -- batch ---------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_killed_batch_worker_fails_only_its_own_request(tmp_path, demo_warehouse):
    requests = tmp_path / "requests"
    requests.mkdir()
    aggregate = (DEMO / "partner_aggregate.yml").read_text()
    (requests / "1-victim.yml").write_text(aggregate.replace("id: DEMO-PARTNER-AGG", "id: VICTIM"))
    (requests / "2-survivor.yml").write_text(aggregate.replace("id: DEMO-PARTNER-AGG", "id: SURVIVOR"))
    # An unregistered partner: refused, so a decision letter (no kernel) that starts after the kill.
    (requests / "3-letter.yml").write_text(aggregate.replace("id: DEMO-PARTNER-AGG", "id: REFUSED")
                                           .replace("partner_id: P-04", "partner_id: P-99"))
    releases = tmp_path / "releases"
    batch = subprocess.Popen([str(WORKBENCH), "batch", str(requests), "--policy", "dmps", "--as-of", AS_OF,
                              "--releases", str(releases), "--warehouse", demo_warehouse, "--workers", "2",
                              "--no-register"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    # The lock file of a staging folder holds the pid of the process filling it.
    wait_for(lambda: batch.poll() is None and any(releases.glob(".staging-VICTIM-*.lock")), what="the victim's staging")
    lock = next(releases.glob(".staging-VICTIM-*.lock"))
    victim = int(lock.read_text().strip())
    assert victim != batch.pid
    os.kill(victim, signal.SIGKILL)
    stdout, stderr = batch.communicate(timeout=900)
    assert batch.returncode == 1, stderr[-3000:]
    assert "2 filled, 1 failed" in stdout, stdout + stderr[-3000:]
    assert "1-victim.yml: the process filling this request was killed by SIGKILL" in stderr
    assert sorted(p.name for p in releases.iterdir() if not p.name.startswith(".")) == ["REFUSED", "SURVIVOR"]
    assert staging_left(releases) == []  # the request filled after the kill removed the victim's folder
