"""`workbench demo`: the main job on the embedded default district, end to end."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
import yaml

from workbench.cli import main
from workbench.config import DATA_DIR, DEFAULT_WAREHOUSE_PATH

DEMO_PLAN = DATA_DIR / "requests" / "demo" / "plan.yaml"


def _ensure_district(path: Path) -> None:
    from workbench.schema import write_warehouse
    from workbench.synthetic import DEFAULT_SEED, DEFAULT_STUDENTS, DEFAULT_YEARS, generate_district

    if path.exists():
        click.echo(f"Warehouse: {path} (already generated)")
        return
    click.echo(f"Generating the default synthetic district ({DEFAULT_STUDENTS:,} students, {', '.join(DEFAULT_YEARS)}) ...")
    started = time.perf_counter()
    tables = generate_district(progress=lambda step: click.echo(f"  {step}", err=True))
    write_warehouse(path, tables)
    click.echo(f"Warehouse: {path} ({time.perf_counter() - started:.1f}s)")


def _first_aggregate(path: Path, policy_name: str) -> None:
    """Chronic absence by school level and grade, computed in the warehouse, protected."""
    from workbench.disclosure import protect_tables
    from workbench.measures import compute
    from workbench.policy import load_policy
    from workbench.warehouse import connect

    con = connect(path)
    year = max(con.table("student_years").select("school_year").distinct().to_pandas()["school_year"])
    rule = load_policy(policy_name).small_group_rule()
    table = compute(con, "chronic_absence", [year], ["school_level", "grade"])
    result = protect_tables(table, ["level", "grade"], "students", rule, outcome_col="count")
    cells = result.table()
    inner = cells[(cells["level"] != "Total") & (cells["grade"] != "Total")]
    # A level that does not serve a grade has a published zero there: nothing to show.
    inner = inner[(inner["status"] != "published") | (inner["value"] > 0)]
    click.echo(f"\nChronic absence by school level and grade, {year} (distinct students; {policy_name} small-group rule)")
    click.echo(f"{'level':<12} {'grade':>5} {'students':>9} {'chronic':>8} {'rate':>7}")
    for row in inner.itertuples(index=False):
        if row.status != "published":
            click.echo(f"{row.level:<12} {str(row.grade):>5} {'*':>9} {'*':>8} {'*':>7}")
        else:
            click.echo(f"{row.level:<12} {str(row.grade):>5} {int(row.value):>9,} {int(row.outcome):>8,} {row.outcome / row.value:>7.1%}")
    summary = result.summary()
    click.echo(f"* suppressed: a small group, or hidden so one cannot be worked out from the totals "
               f"({summary['suppressed']} cells); audit "
               f"{'proves no suppressed count can be recovered' if result.is_safe else 'FAILED'}")


@main.command("demo")
@click.option("--warehouse", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_WAREHOUSE_PATH,
              show_default=True, help="DuckDB file of the demo district (generated when missing).")
@click.option("--releases", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the demo releases go (default: releases/).")
@click.option("--no-fill", is_flag=True, help="Only generate the district and print the first aggregate.")
def demo_command(warehouse: Path, releases: Path | None, no_fill: bool) -> None:
    """Generate the demo district, print a protected aggregate, and fill one request of each type."""
    from workbench.batch import FillJob, fill_one

    _ensure_district(warehouse)
    _first_aggregate(warehouse, "nces")
    if no_fill:
        return
    plan = yaml.safe_load(DEMO_PLAN.read_text())
    as_of = str(plan["as_of"])
    click.echo(f"\nFilling the demo requests (as of {as_of}) ...")
    failures = 0
    for item in plan["requests"]:
        request_file = DEMO_PLAN.parent / item["file"]
        outcome = fill_one(FillJob(str(request_file), item["policy"], as_of, str(releases) if releases else None,
                                   str(warehouse), True))
        if outcome["ok"]:
            click.echo(f"  {outcome['summary']}")
        else:
            failures += 1
            click.echo(f"  {item['file']}: FAILED: {outcome['error']}", err=True)
    click.echo("\nOpen a release's report.ipynb in JupyterLab (`.venv/bin/jupyter lab`), or run "
               "`workbench release list`.")
    sys.exit(1 if failures else 0)
