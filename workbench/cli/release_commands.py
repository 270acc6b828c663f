"""`workbench fill`, `workbench batch`, `workbench release ...`: from requests to releases."""

from __future__ import annotations

import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import click

from workbench.cli import main


def _store(releases: Path | None):
    from workbench.fill import releases_root
    from workbench.release.store import ReleaseStore

    return ReleaseStore(releases or releases_root())


def _register(use_register: bool):
    if not use_register:
        return None
    from workbench.register import RequestRegister

    return RequestRegister()


def _fill_one(request_file: str, policy: str | None, as_of: str | None, releases: str | None,
              warehouse: str | None, use_register: bool) -> dict:
    """One request, in whatever process runs it; returns a plain summary (picklable)."""
    from workbench.fill import FillError, fill
    from workbench.policy import PolicyError
    from workbench.request import RequestError

    started = time.perf_counter()
    try:
        result = fill(request_file, policy, as_of, store=_store(Path(releases) if releases else None),
                      warehouse=warehouse, register=_register(use_register))
    except (RequestError, PolicyError) as exc:
        return {"request": request_file, "ok": False, "kind": "input", "error": str(exc), "seconds": time.perf_counter() - started}
    except FillError as exc:
        return {"request": request_file, "ok": False, "kind": "fill", "error": str(exc), "seconds": time.perf_counter() - started}
    except Exception as exc:  # one broken request must not stop a batch; its text may quote data
        return {"request": request_file, "ok": False, "kind": "unexpected", "error": f"unexpected {type(exc).__name__}",
                "seconds": time.perf_counter() - started}
    suppressed = sum(t.get("primary", 0) + t.get("secondary", 0) for t in result.tables.values())
    return {
        "request": request_file, "ok": True, "id": result.request_id, "outcome": result.outcome,
        "level": result.level, "path": str(result.release.path), "tables": len(result.tables),
        "suppressed": suppressed, "reused": result.release.reused, "summary": result.summary(),
        "seconds": time.perf_counter() - started,
    }


@main.command("fill")
@click.argument("request_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--policy", default=None, help="Policy pack name or file (default: WORKBENCH_POLICY, workbench.toml, nces).")
@click.option("--as-of", "as_of", default=None, help="Date agreements and consents are judged on (default today).")
@click.option("--releases", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Release store (default: WORKBENCH_RELEASES or releases/).")
@click.option("--warehouse", default=None, help="Ibis URL or DuckDB path (default: configured).")
@click.option("--no-register", is_flag=True, help="Do not record the release in the request register.")
def fill_command(request_file, policy, as_of, releases, warehouse, no_register):
    """Decide a request, run its template in the guarded kernel, check and release it."""
    outcome = _fill_one(str(request_file), policy, as_of, str(releases) if releases else None, warehouse, not no_register)
    if not outcome["ok"]:
        click.echo(f"error: {outcome['error']}", err=True)
        sys.exit(2 if outcome["kind"] == "input" else 1)
    click.echo(outcome["summary"])


def _request_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix in (".yml", ".yaml") and p.is_file())


@main.command("batch")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--policy", default=None, help="Policy pack for every request.")
@click.option("--as-of", "as_of", default=None)
@click.option("--releases", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--warehouse", default=None)
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=1), help="Parallel worker processes.")
@click.option("--no-register", is_flag=True)
def batch_command(folder, policy, as_of, releases, warehouse, workers, no_register):
    """Fill every request file in FOLDER in parallel; a failing request does not stop the others."""
    from tqdm import tqdm

    files = _request_files(folder)
    if not files:
        raise click.ClickException(f"no request files (*.yml) in {folder}")
    args = [(str(f), policy, as_of, str(releases) if releases else None, warehouse, not no_register) for f in files]
    results = []
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_fill_one, *a) for a in args]
        with tqdm(total=len(futures), desc="filling", unit="request", file=sys.stderr) as bar:
            for future in as_completed(futures):
                results.append(future.result())
                bar.update(1)
    results.sort(key=lambda r: r["request"])
    click.echo(f"\n{'request':<40} {'result':<10} {'level':<13} {'tables':>6} {'suppressed':>10} {'seconds':>8}")
    for r in results:
        name = Path(r["request"]).name
        if r["ok"]:
            click.echo(f"{name:<40} {r['outcome']:<10} {str(r['level'] or '-'):<13} {r['tables']:>6} {r['suppressed']:>10} {r['seconds']:>8.1f}")
        else:
            click.echo(f"{name:<40} {'FAILED':<10} {'-':<13} {'-':>6} {'-':>10} {r['seconds']:>8.1f}")
    failed = [r for r in results if not r["ok"]]
    click.echo(f"\n{len(results) - len(failed)} filled, {len(failed)} failed in {time.perf_counter() - started:.1f}s")
    for r in failed:
        click.echo(f"  {Path(r['request']).name}: {r['error']}", err=True)
    sys.exit(1 if failed else 0)


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
    """Scan every artifact for student identifiers and unsuppressed small counts; exit 1 if any."""
    import json

    from workbench.policy import PolicyError, load_policy
    from workbench.release.check import Identifiers, check_release
    from workbench.warehouse import WarehouseError, connect

    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    level = level or (manifest.get("decision") or {}).get("level") or "aggregate"
    policy_name = policy or (manifest.get("policy") or {}).get("name")
    if not policy_name:
        raise click.UsageError("no manifest in the folder: give --policy")
    try:
        pack = load_policy(policy_name)
    except PolicyError as exc:
        raise click.UsageError(str(exc)) from exc
    try:
        identifiers = Identifiers.from_warehouse(connect(warehouse))
    except WarehouseError as exc:
        click.echo(f"warning: {exc}; names and dates of birth are not checked", err=True)
        identifiers = None
    report = check_release(folder, level, pack.small_group_rule(), identifiers,
                           aggregate_only_fields=pack.pack.fields.aggregate_only.fields)
    click.echo(report.summary())
    sys.exit(0 if report.passed else 1)


@release_group.command("list")
@click.option("--releases", type=click.Path(file_okay=False, path_type=Path), default=None)
def release_list_command(releases):
    """Releases in the store, with their request and decision."""
    store = _store(releases)
    for release_id in store.releases():
        manifest = store.manifest(release_id)
        decision = manifest.get("decision", {})
        click.echo(f"{release_id:<28} {decision.get('outcome', '?'):<9} {str(decision.get('level')):<13} "
                   f"{manifest.get('policy', {}).get('name', '?'):<6} {len(manifest.get('files', {}))} files")
