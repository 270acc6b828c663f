"""`workbench fill`, `workbench batch`, `workbench release ...`: from requests to releases."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from workbench.cli import main
from workbench.cli.options import as_of_option


def _store(releases: Path | None):
    from workbench.fill import releases_root
    from workbench.release.store import ReleaseStore

    return ReleaseStore(releases or releases_root())


def _job(request_file, policy, as_of, releases, warehouse, use_register):
    from workbench.batch import FillJob

    return FillJob(str(request_file), policy, as_of.isoformat() if as_of else None,
                   str(releases) if releases else None, warehouse, use_register)


@main.command("fill")
@click.argument("request_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--policy", default=None, help="Policy pack name or file (default: WORKBENCH_POLICY, workbench.toml, nces).")
@as_of_option
@click.option("--releases", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Release store (default: WORKBENCH_RELEASES or releases/).")
@click.option("--warehouse", default=None, help="Ibis URL or DuckDB path (default: configured).")
@click.option("--no-register", is_flag=True, help="Do not record the release in the request register.")
@click.option("--quiet", "-q", is_flag=True, help="Do not print each stage on stderr as it starts.")
def fill_command(request_file, policy, as_of, releases, warehouse, no_register, quiet):
    """Decide a request, run its template in the guarded kernel, check and release it.

    Each stage (deciding, starting kernel, each template cell, checking release, publishing) is
    printed on stderr as it starts, unless --quiet.
    """
    from workbench.batch import fill_one
    from workbench.progress import StageLines

    progress = None if quiet else StageLines().for_request(request_file.name)
    outcome = fill_one(_job(request_file, policy, as_of, releases, warehouse, not no_register), progress=progress)
    if not outcome["ok"]:
        click.echo(f"error: {outcome['error']}", err=True)
        sys.exit(outcome["exit_code"])
    click.echo(outcome["summary"])


def _summary_table(results: list[dict], seconds: float) -> None:
    click.echo(f"\n{'request':<40} {'result':<10} {'level':<13} {'tables':>6} {'suppressed':>10} {'seconds':>8}")
    for r in results:
        name = Path(r["request"]).name
        if r["ok"]:
            click.echo(f"{name:<40} {r['outcome']:<10} {str(r['level'] or '-'):<13} {r['tables']:>6} "
                       f"{r['suppressed']:>10} {r['seconds']:>8.1f}")
        else:
            click.echo(f"{name:<40} {'FAILED':<10} {'-':<13} {'-':>6} {'-':>10} {r['seconds']:>8.1f}")
    failed = [r for r in results if not r["ok"]]
    click.echo(f"\n{len(results) - len(failed)} filled, {len(failed)} failed in {seconds:.1f}s")
    for r in failed:
        click.echo(f"  {Path(r['request']).name}: {r['error']}", err=True)


@main.command("batch")
@click.argument("folder", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--every-school", "every_school", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="A school leader's request to repeat for every school (instead of FOLDER).")
@click.option("--schools", default=None, help="With --every-school: only these school IDs (comma-separated).")
@click.option("--requests-out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="With --every-school: where the per-school request files go (default: data/generated/requests/ID).")
@click.option("--policy", default=None, help="Policy pack for every request.")
@as_of_option
@click.option("--releases", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--warehouse", default=None)
@click.option("--workers", default=None, type=click.IntRange(min=1),
              help="Worker processes, each with a warm kernel  [default: one per core].")
@click.option("--no-register", is_flag=True)
@click.option("--quiet", "-q", is_flag=True, help="Only the bar: do not print each report's stages on stderr.")
def batch_command(folder, every_school, schools, requests_out, policy, as_of, releases, warehouse, workers, no_register,
                  quiet):
    """Fill every request file in FOLDER, or one request for every school, in parallel.

    A failing request does not stop the others; failures are listed at the end and the exit
    status is 1 when any failed. Each report's stages are printed on stderr as they start,
    above the bar of reports done, unless --quiet.
    """
    from tqdm import tqdm

    from workbench.batch import default_workers, request_files, requests_for_every_school, run_batch
    from workbench.progress import StageLines

    if (folder is None) == (every_school is None):
        raise click.UsageError("give a FOLDER of request files or --every-school REQUEST.yml (one of them)")
    if every_school:
        from workbench.config import DATA_DIR
        from workbench.request import load_request
        from workbench.warehouse import connect

        template_id = load_request(every_school).id
        out = requests_out or DATA_DIR / "generated" / "requests" / template_id
        files = requests_for_every_school(every_school, connect(warehouse), out, as_of,
                                          schools.split(",") if schools else None)
        click.echo(f"{len(files)} school requests written to {out}", err=True)
    else:
        files = request_files(folder)
    jobs = [_job(f, policy, as_of, releases, warehouse, not no_register) for f in files]
    started = time.perf_counter()
    workers = workers or default_workers()
    click.echo(f"{len(jobs)} requests, {min(workers, len(jobs))} worker(s)", err=True)
    # The bar redraws itself in place: on a terminal only; elsewhere (a log) the lines say it all.
    with tqdm(total=len(jobs), desc="filling", unit="request", file=sys.stderr, disable=not sys.stderr.isatty()) as bar:
        lines = StageLines(write=lambda line: bar.write(line, file=sys.stderr))
        on_stage = None if quiet else (lambda request, stage: lines(Path(request).name, stage))
        done = []

        def on_done(result: dict) -> None:
            done.append(result)
            bar.update(1)
            if not quiet:
                lines(Path(result["request"]).name, f"{'done' if result['ok'] else 'FAILED'} ({len(done)}/{len(jobs)})")

        results = run_batch(jobs, workers, on_done=on_done, on_stage=on_stage)
    _summary_table(results, time.perf_counter() - started)
    sys.exit(1 if any(not r["ok"] for r in results) else 0)


@main.group("release")
def release_group() -> None:
    """Inspect and check releases."""


@release_group.command("check")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--level", type=click.Choice(["aggregate", "deidentified", "identified", "directory"]), default=None,
              help="Level the release is for (default: from its manifest).")
@click.option("--policy", default=None, help="Policy pack (default: from its manifest).")
@click.option("--warehouse", default=None, help="Warehouse to read student names and dates of birth from.")
def release_check_command(folder, level, policy, warehouse):
    """Verify every file against the manifest's checksums, then scan every artifact for student
    identifiers and unsuppressed small counts; exit 1 if anything is found."""
    from workbench.policy import load_policy
    from workbench.release.check import Identifiers, check_release
    from workbench.release.store import MANIFEST, read_manifest, verify_folder
    from workbench.warehouse import WarehouseError, connect

    manifest = read_manifest(folder) if (folder / MANIFEST).exists() else None
    if manifest is None:
        click.echo(f"warning: no {MANIFEST} in {folder}: its files cannot be checked against checksums", err=True)
    altered = verify_folder(folder, manifest) if manifest is not None else []
    manifest = manifest or {}
    level = level or (manifest.get("decision") or {}).get("level") or "aggregate"
    policy_name = policy or (manifest.get("policy") or {}).get("name")
    if not policy_name:
        raise click.UsageError("no manifest in the folder: give --policy")
    pack = load_policy(policy_name)
    try:
        identifiers = Identifiers.from_warehouse(connect(warehouse))
    except WarehouseError as exc:
        click.echo(f"warning: {exc}; names and dates of birth are not checked", err=True)
        identifiers = None
    if altered:
        click.echo(f"checksums: {len(altered)} difference(s) from the manifest; release refused")
        for line in altered:
            click.echo(f"  - {line}")
    elif manifest:
        click.echo(f"checksums: all {len(manifest['files'])} files match the manifest")
    report = check_release(folder, level, pack.small_group_rule(), identifiers,
                           aggregate_only_fields=pack.pack.fields.aggregate_only.fields)
    click.echo(report.summary())
    sys.exit(0 if report.passed and not altered else 1)


@release_group.command("list")
@click.option("--releases", type=click.Path(file_okay=False, path_type=Path), default=None)
def release_list_command(releases):
    """Releases in the store, with their request and decision."""
    store = _store(releases)
    for release_id in store.releases():  # folders that are not releases are skipped with a warning
        manifest = store.manifest(release_id)
        decision = manifest.get("decision", {})
        click.echo(f"{release_id:<28} {decision.get('outcome', '?'):<9} {str(decision.get('level')):<13} "
                   f"{manifest.get('policy', {}).get('name', '?'):<6} {len(manifest.get('files', {}))} files")
