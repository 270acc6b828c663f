"""Many requests at once: a folder of request files, or one request repeated for every school.

A principal's report is asked for every school each term. `requests_for_every_school` turns one
school-report request into one request per school, addressed to that school's principal of record
(the decision checks each principal's assignment, as it would for a request a principal sent).
The per-school files are written out so that each release can be traced to the exact file it came
from.

`run_batch` fills requests in worker processes. Each worker fills one request at a time through
`fill_one`, which never raises: a failing request comes back as a failure and the others go on.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import yaml

from workbench.request import load_request
from workbench.errors import InputError


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
    raw = yaml.safe_load(request_file.read_text())
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
        path.write_text(header + yaml.safe_dump(copy_, sort_keys=False, default_flow_style=None))
        written.append(path)
    return written


_WARM_KERNEL = None  # one guarded kernel per worker process, reused across its reports


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

    With `warm`, the template runs in this process's warm kernel (one per batch worker)."""
    from workbench.fill import FillError, fill, releases_root
    from workbench.policy import PolicyError
    from workbench.release.store import ReleaseStore
    from workbench.request import RequestError

    started = time.perf_counter()
    register = None
    if job.use_register:
        from workbench.register import RequestRegister

        register = RequestRegister()
    base = {"request": job.request_file}
    try:
        result = fill(job.request_file, job.policy, job.as_of,
                      store=ReleaseStore(Path(job.releases) if job.releases else releases_root()),
                      warehouse=job.warehouse, register=register, kernel=_warm_kernel() if warm else None)
    except (RequestError, PolicyError) as exc:
        return {**base, "ok": False, "kind": "input", "error": str(exc), "seconds": time.perf_counter() - started}
    except FillError as exc:
        return {**base, "ok": False, "kind": "fill", "error": str(exc), "seconds": time.perf_counter() - started}
    except Exception as exc:  # one broken request must not stop a batch; its text may quote data
        return {**base, "ok": False, "kind": "unexpected", "error": f"unexpected {type(exc).__name__}",
                "seconds": time.perf_counter() - started}
    finally:
        if register is not None:
            register.close()
    suppressed = sum(t.get("primary", 0) + t.get("secondary", 0) for t in result.tables.values())
    return {
        **base, "ok": True, "id": result.request_id, "outcome": result.outcome, "level": result.level,
        "path": str(result.release.path), "tables": len(result.tables), "suppressed": suppressed,
        "reused": result.release.reused, "summary": result.summary(), "seconds": time.perf_counter() - started,
    }


def run_batch(jobs: Sequence[FillJob], workers: int, on_done: Callable[[dict], None] | None = None) -> list[dict]:
    """Fills every job; results in the order of `jobs`. workers=1 runs in this process."""
    results: dict[int, dict] = {}
    if workers == 1:
        for index, job in enumerate(jobs):
            results[index] = fill_one(job, warm=True)
            if on_done:
                on_done(results[index])
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(fill_one, job, True): index for index, job in enumerate(jobs)}
            for future in as_completed(futures):
                index = futures[future]
                try:
                    results[index] = future.result()
                except Exception as exc:  # a worker that died (out of memory, killed)
                    results[index] = {"request": jobs[index].request_file, "ok": False, "kind": "worker",
                                      "error": f"worker process failed: {type(exc).__name__}", "seconds": 0.0}
                if on_done:
                    on_done(results[index])
    return [results[i] for i in range(len(jobs))]
