"""Every input mistake, through the real command line: exit 2 (or 1 for the machine), a message
naming the field or file, no traceback, and nothing written.

Each case is what a careless or hostile requester could hand an analyst: IDs that are paths,
dates no calendar has, a YAML bomb, a 50 MB file, a roster in another encoding, a policy pack
that reaches outside its folder, a warehouse that is locked or is not a database, a full disk.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from workbench.config import DATA_DIR

ROOT = Path(__file__).resolve().parents[1]
WORKBENCH = Path(sys.executable).parent / "workbench"
DEMO = DATA_DIR / "requests" / "demo"
AGGREGATE = (DEMO / "partner_aggregate.yml").read_text()
MEDIA = (DEMO / "media.yml").read_text()


def run(*args: str, cwd: Path | None = None, env_extra: dict | None = None, timeout: int = 240):
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env_extra or {})}
    return subprocess.run([str(WORKBENCH), *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=timeout)


def with_field(text: str, field: str, value: str) -> str:
    lines = [f"{field}: {value}" if line.startswith(f"{field}:") else line for line in text.splitlines()]
    return "\n".join(lines) + "\n"


@pytest.fixture()
def place(tmp_path):
    """A scratch folder with a release store and a register that must stay untouched."""
    (tmp_path / "in").mkdir()
    return tmp_path


def fill(place: Path, request: Path, *extra: str, warehouse: str | None = None):
    args = ["fill", str(request), "--policy", "dmps", "--as-of", "2026-06-01", "--releases", str(place / "releases"),
            *extra]
    if warehouse:
        args += ["--warehouse", warehouse]
    return run(*args, env_extra={"WORKBENCH_REGISTER": f"sqlite:///{place / 'register.sqlite'}"})


def assert_refused(result, code: int, *needles: str) -> None:
    assert result.returncode == code, (result.returncode, result.stdout[-500:], result.stderr[-2000:])
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert "unexpected" not in result.stderr
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr[-2000:])


def assert_nothing_written(place: Path) -> None:
    assert not (place / "releases").exists() or not any((place / "releases").iterdir())
    assert not (place / "register.sqlite").exists()


# "Billion laughs": under 1 KB, and `level` is 9**7 (4.8 million) nested entries once expanded,
# which the old loader built and an error message then printed in full (tens of megabytes).
BOMB = AGGREGATE.replace("level: aggregate", "x_level: aggregate") + "notes: [&a [x, x, x, x, x, x, x, x, x]" + "".join(
    f", &{chr(c)} [{', '.join(['*' + chr(c - 1)] * 9)}]" for c in range(ord("b"), ord("h"))) + "]\nlevel: *g\n"

REQUEST_MISTAKES = {
    "id_is_a_path": (with_field(AGGREGATE, "id", '"../../X"'), "id:"),
    "id_with_slash": (with_field(AGGREGATE, "id", '"REQ/1"'), "id:"),
    "id_with_space": (with_field(AGGREGATE, "id", '"REQ 1"'), "id:"),
    "id_with_unicode": (with_field(AGGREGATE, "id", '"REQ-É1"'), "id:"),
    "id_with_dots": (with_field(AGGREGATE, "id", '"REQ..1"'), "id:"),
    "received_year_9999": (with_field(AGGREGATE, "received", "9999-12-30"), "received:"),
    "received_month_13": (with_field(AGGREGATE, "received", "2026-13-01"), "received:"),
    "alias_bomb": (BOMB, "anchors"),
    "alias": (AGGREGATE + "notes: &n hello\npurpose2: *n\n", "anchors"),
    "python_tag": (AGGREGATE + "notes: !!python/object/apply:os.system ['touch pwned']\n", "tags"),
    "custom_tag": (AGGREGATE + "notes: !secret hello\n", "tags"),
    "duplicate_key": (AGGREGATE + "level: identified\n", "duplicate key level"),
    "deep_nesting": ("notes: " + "[" * 5000 + "]" * 5000 + "\n", "nested more than"),
}


@pytest.mark.parametrize("case", sorted(REQUEST_MISTAKES))
def test_a_request_mistake_is_exit_2_naming_the_field_and_writes_nothing(place, case):
    text, needle = REQUEST_MISTAKES[case]
    request = place / "in" / "request.yml"
    request.write_text(text, encoding="utf-8")
    result = fill(place, request)
    assert_refused(result, 2, "request.yml", needle)
    assert_nothing_written(place)
    assert not (Path.cwd() / "pwned").exists() and not (place / "pwned").exists()


def test_a_request_that_is_not_utf8_names_the_file_and_line(place):
    request = place / "in" / "latin1.yml"
    request.write_bytes(with_field(AGGREGATE, "purpose", "Évaluer le programme").encode("latin-1"))
    result = fill(place, request)
    line = next(n for n, text in enumerate(AGGREGATE.splitlines(), 1) if text.startswith("purpose:"))
    assert_refused(result, 2, "latin1.yml", f"line {line} is not UTF-8")
    assert_nothing_written(place)


def test_a_50_mb_request_is_refused_by_its_size_before_it_is_read(place):
    request = place / "in" / "huge.yml"
    with request.open("w") as handle:
        handle.write(AGGREGATE)
        handle.write('notes: "' + "x" * (50 * 1024 * 1024) + '"\n')
    result = fill(place, request)
    assert_refused(result, 2, "huge.yml", "52,", "bytes; the limit is 1,000,000")
    assert_nothing_written(place)
    # The administrator's limit applies (docs/releases.md, Limits).
    small = run("request", "check", str(DEMO / "partner_aggregate.yml"), "--policy", "dmps",
                env_extra={"WORKBENCH_MAX_YAML_BYTES": "100"})
    assert_refused(small, 2, "the limit is 100")


def test_long_or_many_bad_values_are_cut_in_the_message(place):
    request = place / "in" / "long.yml"
    text = with_field(AGGREGATE, "received", '"' + "9" * 200_000 + '"')
    text = with_field(text, "measures", "[" + ", ".join(f"m{i}" for i in range(20_000)) + "]")
    request.write_text(text)
    result = fill(place, request)
    assert_refused(result, 2, "received:", "measures:", "characters)", "more")
    assert len(result.stderr) < 3000
    assert_nothing_written(place)


@pytest.mark.parametrize("as_of", ["2026-13-01", "2026-02-30", "9999-12-30", "yesterday", "0001-01-01"])
def test_a_bad_as_of_option_is_exit_2_naming_the_option(place, as_of):
    for command in (["fill", str(DEMO / "media.yml"), "--releases", str(place / "releases"), "--no-register"],
                    ["request", "check", str(DEMO / "media.yml"), "--policy", "bps"],
                    ["batch", str(DEMO), "--releases", str(place / "releases"), "--no-register"]):
        result = run(*command, "--as-of", as_of)
        assert_refused(result, 2, "--as-of")
    assert_nothing_written(place)


POLICY_MISTAKES = {
    "alias": ("name: evil\nextends: nces\ntitle: &t Evil\ndescription: *t\n", "anchors"),
    "tag": ("name: evil\nextends: nces\ntitle: !!python/name:os.system x\n", "tags"),
    "duplicate": ("name: evil\nextends: nces\ntitle: A\ntitle: B\n", "duplicate key title"),
    "extends_a_path": ("name: evil\nextends: ../../../etc/evil\ntitle: Evil\n", "extends:"),
}


@pytest.mark.parametrize("case", sorted(POLICY_MISTAKES))
def test_a_policy_mistake_is_exit_2_naming_the_pack(place, case):
    text, needle = POLICY_MISTAKES[case]
    pack = place / "in" / "evil.yaml"
    pack.write_text(text)
    result = run("request", "check", str(DEMO / "media.yml"), "--policy", str(pack))
    assert_refused(result, 2, "policy evil", needle)
    result = fill(place, DEMO / "media.yml", "--policy", str(pack))
    assert_refused(result, 2, "policy evil", needle)
    assert_nothing_written(place)


def test_a_policy_that_is_not_utf8_names_the_pack(place):
    pack = place / "in" / "latin.yaml"
    pack.write_bytes("name: latin\nextends: nces\ntitle: Politique de données\n".encode("latin-1"))
    result = run("request", "check", str(DEMO / "media.yml"), "--policy", str(pack))
    assert_refused(result, 2, "policy latin", "line 3 is not UTF-8")


ID_FILE_MISTAKES = {
    # A row number and a short number beside it: which one is the ID cannot be known.
    "ambiguous.csv": ("1,12684\n2,41275\n".encode(), "cannot tell which column"),
    "names.csv": ("Student Number,Name\n0012684,Ana Lopez\nBen Smith,0012685\n0012686,Cara Jones\n".encode(),
                  "row 3 holds something else (not shown)"),
    "latin.csv": ("student_id,nom\n0012684,Zoé\n".encode("latin-1"), "line 2 is not UTF-8"),
    "names.txt": ("0012684\nAna Lopez\n".encode(), "line 2 holds something other than student IDs"),
    "roster.pdf": (b"%PDF-1.4", "not .pdf"),
}


@pytest.mark.parametrize("name", sorted(ID_FILE_MISTAKES))
def test_a_cohort_file_mistake_is_exit_2_naming_the_file_without_its_contents(place, name):
    content, needle = ID_FILE_MISTAKES[name]
    (place / "in" / name).write_bytes(content)
    request = place / "in" / "request.yml"
    request.write_text(AGGREGATE.replace("  program: PRG-007", f"  student_ids: {name}"))
    result = fill(place, request)
    assert_refused(result, 2, "cohort.student_ids", name, needle)
    for text in ("Ana", "Lopez", "Ben", "Zo"):
        assert text not in result.stderr
    assert_nothing_written(place)


def test_a_table_that_is_not_utf8_is_exit_2_naming_it(place):
    table = place / "in" / "counts.csv"
    table.write_bytes("école,grade,n\nA,1,12\n".encode("latin-1"))
    result = run("protect", str(table), "--dims", "école,grade", "--count", "n", "--policy", "nces")
    assert_refused(result, 2, "counts.csv", "not UTF-8")


def test_a_warehouse_that_is_not_a_database_is_exit_1_naming_it(place):
    fake = place / "in" / "district.duckdb"
    fake.write_bytes(os.urandom(8192))
    result = fill(place, DEMO / "media.yml", "--policy", "bps", "--no-register", warehouse=str(fake))
    assert_refused(result, 1, str(fake), "not a DuckDB database")
    assert_nothing_written(place)
    info = run("data", "info", "--warehouse", str(fake))
    assert_refused(info, 1, str(fake))


def test_a_locked_warehouse_is_exit_1_naming_it(place, tiny_warehouse_path):
    warehouse = place / "in" / "locked.duckdb"
    shutil.copy(tiny_warehouse_path, warehouse)
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import duckdb, sys, time
            con = duckdb.connect({str(warehouse)!r})  # read-write: holds the file's lock
            print("locked", flush=True)
            time.sleep(120)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = fill(place, DEMO / "media.yml", "--policy", "bps", "--no-register", warehouse=str(warehouse))
        assert_refused(result, 1, str(warehouse), "locked")
        check = run("request", "check", str(DEMO / "media.yml"), "--policy", "bps", "--warehouse", str(warehouse))
        assert_refused(check, 1, "locked")
    finally:
        holder.kill()
        holder.wait()
    assert_nothing_written(place)


def test_an_id_that_can_never_be_filled_is_refused_by_the_register(place):
    from workbench.register import RegisterError, RequestRegister
    from workbench.request import parse_request
    import yaml

    good = parse_request(yaml.safe_load(MEDIA.replace("2026-05-18", "'2026-05-18'")))
    register = RequestRegister(f"sqlite:///{place / 'reg.sqlite'}")
    try:
        for bad in ("../../X", "a/b", "REQ 1", "É", "..", ""):
            forged = good.model_copy(update={"id": bad})  # skips validation, as a caller of the API could
            with pytest.raises(RegisterError, match="cannot be registered"):
                register.register(forged)
        assert register.list_requests() == []
    finally:
        register.close()
    # and through the command line, with the request file
    request = place / "in" / "request.yml"
    request.write_text(with_field(MEDIA, "id", '"../../X"'))
    result = run("request", "register", str(request), "--register", f"sqlite:///{place / 'cli.sqlite'}")
    assert_refused(result, 2, "id:")
    assert not (place / "cli.sqlite").exists()


def _unshare_available() -> bool:
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(shutil.which("unshare") is None or not _unshare_available(),
                    reason="needs a private mount namespace (unshare -rm) for a real full disk")
def test_a_full_disk_is_exit_1_and_leaves_nothing(place, demo_warehouse):
    """A real full file system: a 1 MB tmpfs in a private mount namespace, filled up first."""
    disk = place / "disk"
    disk.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    script = textwrap.dedent(f"""
        set -u
        mount -t tmpfs -o size=1m tmpfs {disk}
        mkdir {disk}/releases
        head -c 2000000 /dev/zero > {disk}/filler 2>/dev/null
        {WORKBENCH} fill {DEMO / 'media.yml'} --policy bps --as-of 2026-06-01 --releases {disk}/releases --no-register --warehouse {demo_warehouse}
        echo "fill=$?"
        {WORKBENCH} request register {DEMO / 'media.yml'} --register sqlite:///{disk}/register.sqlite --warehouse {demo_warehouse}
        echo "register=$?"
        ls -A {disk}/releases | wc -l | sed 's/^/left=/'
    """)
    result = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, env=env,
                            timeout=300)
    assert "fill=1" in result.stdout and "register=1" in result.stdout, result.stdout + result.stderr[-3000:]
    assert "left=0" in result.stdout  # no release, no staging folder, no lock file
    assert "Traceback" not in result.stderr
    assert "the disk is full" in result.stderr or "No space left on device" in result.stderr
    assert "register" in result.stderr


def test_an_output_that_cannot_be_written_is_exit_1_naming_it(place):
    """/dev/full answers every write with 'No space left on device', like a full disk."""
    table = place / "in" / "counts.csv"
    table.write_text("school,grade,n\nA,1,12\nA,2,30\nB,1,25\nB,2,40\n")
    result = run("protect", str(table), "--dims", "school,grade", "--count", "n", "--policy", "nces",
                 "--out", "/dev/full")
    assert_refused(result, 1, "/dev/full", "No space left on device")
