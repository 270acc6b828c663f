"""`workbench data ...`: the synthetic district warehouse."""

from __future__ import annotations

import time
from pathlib import Path

import click

from workbench.cli import main
from workbench.config import DEFAULT_PARQUET_PATH, DEFAULT_WAREHOUSE_PATH


@main.group("data")
def data_group() -> None:
    """Create and inspect the warehouse."""


@data_group.command("generate")
@click.option("--students", default=25_000, show_default=True, type=click.IntRange(200, 10_000_000),
              help="Students enrolled per school year.")
@click.option("--years", default="2023-2024,2024-2025,2025-2026", show_default=True,
              help="Consecutive school years, comma-separated.")
@click.option("--seed", default=20261122, show_default=True, type=click.IntRange(0, 2**63 - 1),
              help="Random seed; same seed, same district.")
@click.option("--out", default=None,
              help="Where to write: a DuckDB file (replaced atomically; default "
                   f"{DEFAULT_WAREHOUSE_PATH}), a folder with --format parquet, or a postgresql:// URL "
                   "to load (its warehouse tables are replaced in one transaction).")
@click.option("--format", "out_format", type=click.Choice(["duckdb", "parquet"]), default="duckdb",
              show_default=True,
              help="For a path: one DuckDB file, or a folder of Parquet tables partitioned by school "
                   "year that Spark, DuckDB and other engines read (default folder "
                   f"{DEFAULT_PARQUET_PATH}).")
@click.option("--chunk-students", type=click.IntRange(min=400), default=None,
              help="With --format parquet: a district with more students than this is generated this many "
                   "students at a time, so memory stays that of one chunk (default 500,000; smaller "
                   "districts are written exactly as in one piece).")
@click.option("--quiet", is_flag=True, help="Print nothing but errors.")
def generate_command(students: int, years: str, seed: int, out: str | None, out_format: str,
                     chunk_students: int | None, quiet: bool) -> None:
    """Generate a synthetic district (no real students) into a DuckDB file, Parquet or PostgreSQL."""
    from workbench.schema import ParquetWarehouseWriter, is_parquet_warehouse, is_postgres_url, write_warehouse
    from workbench.synthetic import generate_district, parse_years
    from workbench.synthetic.chunks import DEFAULT_CHUNK_STUDENTS, chunk_sizes, generate_district_in_chunks

    try:
        school_years = parse_years(years)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--years") from exc
    if chunk_students is not None and out_format != "parquet":
        raise click.BadParameter("only a Parquet warehouse is written in chunks; add --format parquet",
                                 param_hint="--chunk-students")
    chunk_students = chunk_students or DEFAULT_CHUNK_STUDENTS
    if out is None:
        out = str(DEFAULT_PARQUET_PATH if out_format == "parquet" else DEFAULT_WAREHOUSE_PATH)
    to_postgres = is_postgres_url(out)
    if to_postgres and out_format == "parquet":
        raise click.BadParameter("--format parquet writes a folder; give a path, not a URL", param_hint="--out")
    if not to_postgres:
        if "://" in out:
            raise click.BadParameter("give a DuckDB file path, a folder (with --format parquet) or a "
                                     "postgresql:// URL", param_hint="--out")
        target = Path(out)
        if out_format == "duckdb" and target.is_dir():
            raise click.BadParameter(f"{out} is a folder; give the DuckDB file to write, or add "
                                     "--format parquet", param_hint="--out")
        if out_format == "parquet" and target.exists() and (
                not target.is_dir() or (any(target.iterdir()) and not is_parquet_warehouse(target))):
            raise click.BadParameter(f"{out} exists and is not a Parquet warehouse; give a new or empty "
                                     "folder (nothing in it is replaced)", param_hint="--out")
    else:
        from workbench.schema import require_postgres

        require_postgres(out)
    started = time.perf_counter()

    def progress(step: str) -> None:
        if not quiet:
            click.echo(f"  [{time.perf_counter() - started:6.1f}s] {step}", err=True)

    if not quiet:
        click.echo(f"Generating {students:,} students for {', '.join(school_years)} (seed {seed})", err=True)
    if out_format == "parquet":
        try:
            chunks = len(chunk_sizes(students, chunk_students, len(school_years)))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--chunk-students") from exc
        if chunks > 1 and not quiet:
            click.echo(f"  in {chunks} chunks of up to {chunk_students:,} students", err=True)
        rows = table_count = 0
        with ParquetWarehouseWriter(out) as writer:
            for number, tables in enumerate(generate_district_in_chunks(
                    students, school_years, seed, chunk_students, progress=progress), start=1):
                progress("writing the warehouse" if chunks == 1 else f"chunk {number} of {chunks}: writing")
                writer.write(tables)
                rows += sum(len(frame) for frame in tables.values())
                table_count = max(table_count, len(tables))
                del tables  # free this chunk before the next one is generated
    else:
        tables = generate_district(students, school_years, seed, progress=progress)
        progress("writing the warehouse")
        write_warehouse(out if to_postgres else Path(out), tables)
        rows, table_count = sum(len(frame) for frame in tables.values()), len(tables)
    if not quiet:
        if to_postgres:
            from sqlalchemy.engine import make_url

            where = make_url(out).render_as_string(hide_password=True)
            size = ""
        elif out_format == "parquet":
            written = sum(f.stat().st_size for f in Path(out).rglob("*.parquet"))
            where, size = out, f"Parquet, {written / 1e6:.1f} MB, "
        else:
            where, size = out, f"{Path(out).stat().st_size / 1e6:.1f} MB, "
        click.echo(
            f"Wrote {where} ({size}{table_count} tables, {rows:,} rows) in {time.perf_counter() - started:.1f}s",
            err=True,
        )


@data_group.command("info")
@click.option("--warehouse", "location", default=None, help="Ibis URL or DuckDB path (default: configured).")
def info_command(location: str | None) -> None:
    """Show what warehouse is configured and how big its tables are (counts only)."""
    from workbench.warehouse import REQUIRED_TABLES, connect, warehouse_info

    con = connect(location)
    for key, value in warehouse_info(con).items():
        click.echo(f"{key}: {value}")
    for table in REQUIRED_TABLES:
        click.echo(f"  {table:<20} {con.table(table).count().to_pandas():>12,}")
