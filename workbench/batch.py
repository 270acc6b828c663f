"""Many requests at once: a folder of request files, or one request repeated for every school.

A principal's report is asked for every school each term. `requests_for_every_school` turns one
school-report request into one request per school, addressed to that school's principal of record
(the decision checks each principal's assignment, as it would for a request a principal sent).
The per-school files are written out so that each release can be traced to the exact file it came
from.

`run_batch` fills the requests in `workers` processes (one per core by default), through
`fill_one`, which never raises: a failing request comes back as a failure and the others go on.
Each worker keeps one warm guarded kernel (workbench.kernels) and takes the next request when it
finishes one; before each report the kernel is cleared of the last one and its guard set for the
new one. A worker holds one request at a time, so a worker that dies (killed by a signal, out of
memory) fails only that request: its kernel is stopped and a new worker takes its place. A
SIGTERM to the batch is passed on to the running fills, which remove their staging folders, and
the batch then ends. Each fill's stages are passed to the batch as they start (progress).
"""

from __future__ import annotations

import copy
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from multiprocessing.connection import wait
from pathlib import Path

from workbench import safe_yaml
from workbench.errors import ENVIRONMENT_ERRNOS, ENVIRONMENT_EXIT_CODE, INPUT_EXIT_CODE, InputError, WorkbenchError
from workbench.limits import yaml_bytes
from workbench.progress import Stage
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


def _forget_the_parents_event_loops() -> None:
    """After a fork: the event loop (its epoll descriptor shared with the parent) and the loop
    threads that jupyter_client's blocking calls keep were the parent's; reusing them hangs."""
    import asyncio

    try:
        from jupyter_core import utils as jupyter_utils
    except ImportError:
        jupyter_utils = None
    if jupyter_utils is not None:
        getattr(jupyter_utils, "_runner_map", {}).clear()
        loop_variable = getattr(jupyter_utils, "_loop", None)
        if loop_variable is not None:
            loop_variable.set(None)
    asyncio.set_event_loop(asyncio.new_event_loop())


def _close_warm_kernel() -> None:
    global _WARM_KERNEL
    if _WARM_KERNEL is not None:
        _WARM_KERNEL.close()
        _WARM_KERNEL = None


def fill_one(job: FillJob, warm: bool = False, progress: Stage | None = None) -> dict:
    """Fills one request in whatever process runs it; returns a plain, picklable summary.

    A failure has `kind` (input, fill, environment, unexpected) and the `exit_code` the command
    line ends with: 2 for a mistake in what was given, 1 for anything else. With `warm`, the
    template runs in this process's warm kernel (workbench.kernels), kept across its fills.
    `progress` hears each stage of the fill as it starts (workbench.progress).
    """
    from workbench.policy import load_policy
    from workbench.release.store import ReleaseStore

    started = time.perf_counter()
    base = {"request": job.request_file, "process": os.getpid()}
    register = None
    if progress is not None:
        progress("reading the request")
    try:
        # The request and the policy are checked before anything heavy is loaded and before the
        # register is opened: a mistake in either is reported at once and writes nothing anywhere.
        load_request(job.request_file)
        if job.policy:
            load_policy(job.policy)
        from workbench.fill import fill

        if job.use_register:
            from workbench.register import RequestRegister

            register = RequestRegister()
        # The policy as given (None: the pack the request names, else the configured one).
        result = fill(job.request_file, job.policy, job.as_of,
                      store=ReleaseStore(Path(job.releases)) if job.releases else None,
                      warehouse=job.warehouse, register=register, kernel=_warm_kernel() if warm else None,
                      progress=progress)
    except WorkbenchError as exc:
        kind = "input" if exc.exit_code == INPUT_EXIT_CODE else "fill"
        return _failure(base, kind, str(exc), exc.exit_code, started)
    except OSError as exc:
        if exc.errno in ENVIRONMENT_ERRNOS:
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


def _worker(connection) -> None:
    """A batch worker: fills the jobs the batch sends, one at a time, in one warm kernel.

    Sends ("stage", text) as each stage starts, ("kernel", (pid, connection file)) as its kernel
    starts (so the batch can stop it if this process is killed), and ("done", result) for each
    job; None ends it.
    """
    global _WARM_KERNEL
    # A kernel the batch's own process had (a sequential batch before this one) is its, not ours:
    # the forked handle to it must be neither used nor shut down here.
    _WARM_KERNEL = None
    _forget_the_parents_event_loops()

    def on_term(_signum, _frame):
        raise SystemExit(128 + signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the batch, which ends its workers
    _warm_kernel().on_start = lambda identity: connection.send(("kernel", identity))
    try:
        while True:
            job = connection.recv()
            if job is None:
                return
            result = fill_one(job, warm=True, progress=lambda stage: connection.send(("stage", stage)))
            connection.send(("done", result))
    except (EOFError, OSError):
        pass  # the batch went away
    finally:
        if _WARM_KERNEL is not None:
            _WARM_KERNEL.close()
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


@dataclass
class _Worker:
    process: multiprocessing.Process
    connection: object
    job: int | None = None  # index of the job it is filling
    started: float = 0.0
    kernel: tuple[int, str] | None = None  # its warm kernel's pid and connection file


def default_workers() -> int:
    """One worker per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def run_batch(jobs: Sequence[FillJob], workers: int | None = None, on_done: Callable[[dict], None] | None = None,
              on_stage: Callable[[str, str], None] | None = None) -> list[dict]:
    """Fills every job; results in the order of `jobs`.

    `workers` (default: one per core) processes each keep a warm kernel and take the next job
    when they finish one; workers=1 runs in this process. A worker that dies fails only the job it
    held (its kernel is stopped too) and a new worker takes its place. `on_stage(request_file,
    stage)` hears each stage of each fill as it starts; `on_done(result)` each result.
    """
    from workbench.kernels import stop_orphan

    workers = workers or default_workers()
    results: dict[int, dict] = {}

    def finish(index: int, result: dict) -> None:
        results[index] = result
        if on_done:
            on_done(result)

    def stage_of(job: FillJob):
        return (lambda stage: on_stage(job.request_file, stage)) if on_stage else None

    if workers == 1 or len(jobs) == 1:
        # One after the other in this process: one warm kernel serves every report.
        for index, job in enumerate(jobs):
            finish(index, fill_one(job, warm=workers == 1 and len(jobs) > 1, progress=stage_of(job)))
        return [results[i] for i in range(len(jobs))]

    # Workers are forked: a warm kernel this process still holds (from a sequential batch before)
    # would be copied into each of them half-alive. It is closed here and started again when needed.
    _close_warm_kernel()
    context = multiprocessing.get_context()
    waiting = list(range(len(jobs)))
    pool: list[_Worker] = []

    def start_worker() -> _Worker:
        mine, theirs = context.Pipe()
        process = context.Process(target=_worker, args=(theirs,), daemon=True)
        process.start()
        theirs.close()
        worker = _Worker(process, mine)
        pool.append(worker)
        return worker

    def retire(worker: _Worker) -> None:
        pool.remove(worker)
        worker.process.join(timeout=5)
        worker.connection.close()
        if worker.kernel is not None and worker.process.exitcode != 0:
            stop_orphan(*worker.kernel)  # the kernel of a killed worker would outlive it

    def on_term(_signum, _frame):
        raise _BatchTerminated()

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        for _ in range(min(workers, len(jobs))):
            start_worker()
        while waiting or any(w.job is not None for w in pool):
            for worker in list(pool):
                if worker.job is None and waiting:
                    if not worker.process.is_alive():  # died between jobs: replaced, nothing lost
                        retire(worker)
                        worker = start_worker()
                    worker.job, worker.started = waiting.pop(0), time.perf_counter()
                    worker.connection.send(jobs[worker.job])
            busy = {w.connection: w for w in pool if w.job is not None}
            ended = {w.process.sentinel: w for w in pool if w.job is not None}
            for ready in wait(list(busy) + list(ended)):
                worker = busy.get(ready) or ended.get(ready)
                if worker not in pool or worker.job is None:
                    continue
                message = None
                if worker.connection.poll():
                    try:
                        message = worker.connection.recv()
                    except (EOFError, OSError):
                        message = None
                if message is None:
                    if worker.process.is_alive():
                        continue
                    worker.process.join()
                    index = worker.job
                    finish(index, _dead_worker(jobs[index], worker.process.exitcode,
                                               time.perf_counter() - worker.started))
                    retire(worker)
                    if waiting:
                        start_worker()
                    continue
                kind, payload = message
                if kind == "stage" and on_stage:
                    on_stage(jobs[worker.job].request_file, payload)
                elif kind == "kernel":
                    worker.kernel = payload
                elif kind == "done":
                    index, worker.job = worker.job, None
                    finish(index, payload)
    finally:
        signal.signal(signal.SIGTERM, previous)
        for worker in pool:
            if worker.job is None:
                try:
                    worker.connection.send(None)  # done: the worker closes its kernel and ends
                except OSError:
                    pass
            else:
                worker.process.terminate()  # SIGTERM: the fill removes its staging folder, then ends
        for worker in list(pool):
            worker.process.join(timeout=60)
            if worker.process.is_alive():
                worker.process.kill()
            retire(worker)
    return [results[i] for i in range(len(jobs))]
