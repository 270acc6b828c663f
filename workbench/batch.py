"""Many requests at once: a folder of request files, or one request repeated for every school.

A principal's report is asked for every school each term. `requests_for_every_school` turns one
school-report request into one request per school, addressed to that school's principal of record
(the decision checks each principal's assignment, as it would for a request a principal sent).
The per-school files are written out so that each release can be traced to the exact file it came
from.

`run_batch` fills each request in a process of its own, at most `workers` at a time, through
`fill_one`, which never raises: a failing request comes back as a failure and the others go on.
A process that dies (killed by a signal, out of memory) fails only its own request; a pool of
shared workers would fail every request it held. A SIGTERM to the batch is passed on to the
running fills, which remove their staging folders, and the batch then ends.
"""

from __future__ import annotations

import copy
import errno
import multiprocessing
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from multiprocessing.connection import wait
from pathlib import Path

from workbench import safe_yaml
from workbench.errors import ENVIRONMENT_EXIT_CODE, INPUT_EXIT_CODE, InputError, WorkbenchError
from workbench.limits import yaml_bytes
from workbench.request import load_request


class BatchError(InputError):
    """A batch that cannot start (no requests, a template request that is not per school)."""


@dataclass(frozen=True)
class FillJob:
    request_file: str
    policy: str | None
    as_of: str | None
    releases: str | None
    warehouse: str | None
    use_register: bool


def request_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix in (".yml", ".yaml") and p.is_file())
    if not files:
        raise BatchError(f"no request files (*.yml, *.yaml) in {folder}")
    return files


def _principals(con, year: str) -> dict[str, str]:
    assignments = con.table("staff_assignments")
    rows = assignments.filter((assignments.school_year == year) & (assignments.role == "principal"))
    frame = rows.select("school_id", "staff_id").order_by(["school_id", "staff_id"]).to_pandas()
    # A school with two principals of record in a year: the first by staff ID, deterministically.
    return dict(frame.drop_duplicates("school_id").itertuples(index=False, name=None))


def requests_for_every_school(request_file: str | Path, con, out_dir: str | Path, as_of: date | None = None,
                              schools: Sequence[str] | None = None) -> list[Path]:
    """One request file per school (or per school in `schools`), written to out_dir.

    The template request must be a school leader's request for a school cohort; each copy gets the
    id `<id>-<school>`, the school as its cohort and the school's principal as its requester.
    """
    from workbench.policy import evidence

    request_file = Path(request_file)
    request = load_request(request_file)
    if request.requester.role != "school_leader" or request.cohort.kind != "school":
        raise BatchError(f"{request_file.name}: a per-school batch needs a school leader's request for a school "
                         f"cohort (this one is {request.requester.role}, cohort by {request.cohort.kind})")
    year = evidence.current_school_year(con, as_of or date.today())
    principals = _principals(con, year)
    school_table = con.table("schools").select("school_id", "name").order_by("school_id").to_pandas()
    names = dict(school_table.itertuples(index=False, name=None))
    wanted = list(schools) if schools else list(names)
    unknown = [s for s in wanted if s not in names]
    if unknown:
        raise BatchError(f"unknown school ID(s): {', '.join(unknown)}")
    raw = safe_yaml.load(safe_yaml.read_text(request_file, yaml_bytes(), "request file"), dates_as_text=True)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for school_id in wanted:
        copy_ = copy.deepcopy(raw)
        copy_["id"] = f"{request.id}-{school_id}"
        copy_["requester"] = {**raw["requester"], "name": f"Principal of {names[school_id]}",
                              "organization": names[school_id], "staff_school_id": school_id,
                              "staff_id": principals.get(school_id)}
        copy_["cohort"] = {**raw["cohort"], "school": school_id}
        path = out_dir / f"{copy_['id']}.yml"
        header = f"# Generated from {request_file.name} for school {school_id}; edit the template, not this file.\n"
        path.write_text(header + safe_yaml.dump(copy_, sort_keys=False, default_flow_style=None))
        written.append(path)
    return written


def _failure(base: dict, kind: str, error: str, exit_code: int, started: float) -> dict:
    return {**base, "ok": False, "kind": kind, "error": error, "exit_code": exit_code,
            "seconds": time.perf_counter() - started}


_WARM_KERNEL = None  # one guarded kernel kept by a process that fills reports one after the other


def _warm_kernel():
    global _WARM_KERNEL
    if _WARM_KERNEL is None:
        import atexit

        from workbench.config import TEMPLATES_DIR
        from workbench.kernels import WarmKernel

        _WARM_KERNEL = WarmKernel(TEMPLATES_DIR)
        atexit.register(_WARM_KERNEL.close)
    return _WARM_KERNEL


def fill_one(job: FillJob, warm: bool = False) -> dict:
    """Fills one request in whatever process runs it; returns a plain, picklable summary.

    A failure has `kind` (input, fill, environment, unexpected) and the `exit_code` the command
    line ends with: 2 for a mistake in what was given, 1 for anything else. With `warm`, the
    template runs in this process's warm kernel (workbench.kernels), kept across its fills.
    """
    from workbench.policy import load_policy
    from workbench.release.store import ReleaseStore

    started = time.perf_counter()
    base = {"request": job.request_file}
    register = None
    try:
        # The request and the policy are checked before anything heavy is loaded and before the
        # register is opened: a mistake in either is reported at once and writes nothing anywhere.
        load_request(job.request_file)
        if job.policy:
            load_policy(job.policy)
        from workbench.fill import fill, releases_root

        if job.use_register:
            from workbench.register import RequestRegister

            register = RequestRegister()
        # The policy as given (None: the pack the request names, else the configured one).
        result = fill(job.request_file, job.policy, job.as_of,
                      store=ReleaseStore(Path(job.releases) if job.releases else releases_root()),
                      warehouse=job.warehouse, register=register, kernel=_warm_kernel() if warm else None)
    except WorkbenchError as exc:
        kind = "input" if exc.exit_code == INPUT_EXIT_CODE else "fill"
        return _failure(base, kind, str(exc), exc.exit_code, started)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EACCES):
            where = f" {exc.filename}" if exc.filename else ""
            return _failure(base, "environment", f"cannot write{where}: {exc.strerror}; nothing was released",
                            ENVIRONMENT_EXIT_CODE, started)
        return _failure(base, "unexpected", f"unexpected {type(exc).__name__}", ENVIRONMENT_EXIT_CODE, started)
    except Exception as exc:  # one broken request must not stop a batch; its text may quote data
        return _failure(base, "unexpected", f"unexpected {type(exc).__name__}", ENVIRONMENT_EXIT_CODE, started)
    finally:
        if register is not None:
            register.close()
    suppressed = sum(t.get("suppressed", t.get("primary", 0) + t.get("secondary", 0)) for t in result.tables.values())
    return {
        **base, "ok": True, "id": result.request_id, "outcome": result.outcome, "level": result.level,
        "path": str(result.release.path), "tables": len(result.tables), "suppressed": suppressed,
        "reused": result.release.reused, "summary": result.summary(), "seconds": time.perf_counter() - started,
    }


def _fill_in_child(job: FillJob, connection) -> None:
    try:
        connection.send(fill_one(job))
    finally:
        connection.close()


def _dead_worker(job: FillJob, exitcode: int | None, seconds: float) -> dict:
    if exitcode is not None and exitcode < 0:
        how = f"was killed by {signal.Signals(-exitcode).name}"
    else:
        how = f"ended with status {exitcode} before reporting"
    return {"request": job.request_file, "ok": False, "kind": "worker", "exit_code": ENVIRONMENT_EXIT_CODE,
            "error": f"the process filling this request {how}; nothing was released for it", "seconds": seconds}


class _BatchTerminated(SystemExit):
    def __init__(self) -> None:
        super().__init__(128 + signal.SIGTERM)


def run_batch(jobs: Sequence[FillJob], workers: int, on_done: Callable[[dict], None] | None = None) -> list[dict]:
    """Fills every job; results in the order of `jobs`. workers=1 runs in this process."""
    results: dict[int, dict] = {}

    def finish(index: int, result: dict) -> None:
        results[index] = result
        if on_done:
            on_done(result)

    if workers == 1:
        # One after the other in this process: one warm kernel serves every report.
        for index, job in enumerate(jobs):
            finish(index, fill_one(job, warm=True))
        return [results[i] for i in range(len(jobs))]

    context = multiprocessing.get_context()
    waiting = list(enumerate(jobs))
    running: dict = {}  # process sentinel -> (index, process, connection, started)
    received: dict[int, dict] = {}
    closed: set[int] = set()  # pipes that reached their end (result read, or the process died)

    def on_term(_signum, _frame):
        raise _BatchTerminated()

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        while waiting or running:
            while waiting and len(running) < workers:
                index, job = waiting.pop(0)
                reader, writer = context.Pipe(duplex=False)
                process = context.Process(target=_fill_in_child, args=(job, writer), daemon=True)
                process.start()
                writer.close()
                running[process.sentinel] = (index, process, reader, time.perf_counter())
            readers = {entry[2]: sentinel for sentinel, entry in running.items() if entry[0] not in closed}
            for ready in wait(list(running) + list(readers)):
                if ready in readers:  # read before the process ends, so a large result cannot block it
                    if readers[ready] not in running:  # its process was already handled in this round
                        continue
                    index, _process, reader, _started = running[readers[ready]]
                    closed.add(index)
                    try:
                        received[index] = reader.recv()
                    except (EOFError, OSError):
                        pass
                    continue
                index, process, reader, started = running.pop(ready)
                if index not in received and reader.poll():
                    try:
                        received[index] = reader.recv()
                    except (EOFError, OSError):
                        pass
                process.join()
                reader.close()
                closed.discard(index)
                result = received.pop(index, None)
                finish(index, result if result is not None else
                       _dead_worker(jobs[index], process.exitcode, time.perf_counter() - started))
    finally:
        signal.signal(signal.SIGTERM, previous)
        for _index, process, reader, _started in running.values():
            process.terminate()  # SIGTERM: each fill removes its staging folder, then ends
        for _index, process, reader, _started in running.values():
            process.join(timeout=60)
            reader.close()
    return [results[i] for i in range(len(jobs))]
