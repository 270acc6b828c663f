"""`workbench protect`, `workbench audit`, `workbench protect-extract`: the disclosure contracts.

Input CSVs are read as text (leading zeros in IDs and codes survive); bad input ends with a
one-line message on stderr and exit code 2, never a traceback (the errors are `InputError`s,
mapped to exit codes in `workbench.cli`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from typing import TYPE_CHECKING

import click

from workbench.cli import main
from workbench.errors import EnvironmentProblem, InputError


class UnsafeTable(EnvironmentProblem):
    """The audit could not prove a protected table safe: nothing to release (exit 1)."""

if TYPE_CHECKING:
    import pandas as pd


def _read_csv(path: Path) -> "pd.DataFrame":
    import stat

    import pandas as pd

    from workbench.limits import table_bytes

    try:
        status = path.stat()
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    if stat.S_ISDIR(status.st_mode):
        raise InputError(f"{path} is a folder, not a CSV file")
    if not stat.S_ISREG(status.st_mode):  # a pipe or a device would block or never end
        raise InputError(f"{path} is not a regular file (a pipe or a device)")
    if status.st_size > table_bytes():
        raise InputError(f"{path} is {status.st_size:,} bytes; tables are read up to {table_bytes():,} bytes "
                         "(see docs/releases.md, Limits)")
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a folder, not a CSV file") from None
    except UnicodeDecodeError:
        raise InputError(f"cannot read {path} as CSV: it is not UTF-8 text") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        # pandas names the line and the field count; the first line of its message quotes no cells.
        raise InputError(f"cannot read {path} as CSV: {str(exc).splitlines()[0][:200]}") from None


def _check_size(frame, dims: list[str], path: Path, *, has_totals: bool = False) -> None:
    """Refuse a table whose cells with every margin are more than the limit, before working on it.
    A published table (`has_totals`) already lists its totals among each dimension's categories."""
    from math import prod

    from workbench.limits import table_cells

    present = [dim for dim in dims if dim in frame.columns]  # a missing column is reported later, by name
    cells = prod(frame[dim].nunique() + (0 if has_totals else 1) for dim in present)
    if cells > table_cells():
        sizes = " x ".join(f"{dim} {frame[dim].nunique()}" for dim in present)
        raise InputError(f"{path}: {sizes} categories make {cells:,} cells with their totals; tables are protected "
                         f"up to {table_cells():,} cells (see docs/releases.md, Limits)")


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _write(frame, out: Path | None) -> None:
    if out is None:
        frame.to_csv(sys.stdout, index=False)
        return
    try:
        frame.to_csv(out, index=False)
    except OSError as exc:
        raise EnvironmentProblem(f"cannot write {out}: {exc.strerror or type(exc).__name__}") from None


def _rule_for(policy: str):
    from workbench.policy import load_policy

    return load_policy(policy).small_group_rule()


def _chosen_bands(policy, dims: list[str], chosen: list[str]) -> dict[str, dict]:
    """Every dimension the pack has bands for; a name in --bands must be one of them."""
    available = {dim: policy.bands(dim) for dim in dims if policy.bands(dim)}
    for name in chosen:
        if name not in dims:
            raise InputError(f"--bands: {name} is not one of --dims ({', '.join(dims)})")
        if name not in available:
            raise InputError(f"--bands: policy {policy.name} has no bands for {name}"
                             + (f" (it has bands for {', '.join(available)})" if available else ""))
    return available


@main.command("protect")
@click.argument("input_csv", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dims", required=True, help="Dimension columns, comma-separated (e.g. school,grade,race).")
@click.option("--count", "count_col", required=True, help="Column with the count of distinct students.")
@click.option("--policy", required=True, help="Policy pack name (data/policies/NAME.yaml) giving the small-group rule.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Output CSV (default: stdout).")
@click.option(
    "--intervals",
    type=click.Choice(["exact", "proof"]),
    default="exact",
    show_default=True,
    help="exact: every suppressed cell's attacker interval; proof: stop once safety is proven (faster).",
)
@click.option(
    "--analyst",
    is_flag=True,
    help="Also write status, reason and the attacker's intervals: for the analyst only, never for release.",
)
@click.option("--bands", "bands", default="", help="Publish these dimensions in the policy's bands (e.g. grade).")
def protect_command(
    input_csv: Path, dims: str, count_col: str, policy: str, out: Path | None, intervals: str, analyst: bool,
    bands: str,
) -> None:
    """Suppress small groups in a count table with all its margins, and prove it safe.

    INPUT_CSV has one row per inner cell (a missing combination is a zero). The output has one
    row per cell including every margin (`Total`) and its value, empty when suppressed: one mark
    for every suppressed cell, whatever the reason. With --analyst, status, reason and the
    attacker's interval follow; the release check refuses a file with those columns.

    Where the policy has bands for a dimension (grade: K-5, 6-8, 9-12), the banded table is
    protected too and both are reported; --bands grade publishes the banded one.
    """
    from workbench.disclosure import CountTable, protect_tables
    from workbench.disclosure.bands import band_table, compare_bands
    from workbench.policy import load_policy

    dim_list = _split(dims)
    if not dim_list:
        raise InputError("--dims names no column")
    chosen = _split(bands)
    pack = load_policy(policy)
    available = _chosen_bands(pack, dim_list, chosen)
    frame = _read_csv(input_csv)
    _check_size(frame, dim_list, input_csv)
    rule = pack.small_group_rule()
    table = CountTable.from_frame(frame, dim_list, count_col)
    original = protect_tables(table, rule=rule, intervals=intervals)
    for dim, groups in available.items():
        comparison = compare_bands(table, dim, groups, rule, original=original, intervals=intervals)
        click.echo(comparison.describe() + ("" if dim in chosen or not comparison.offered
                                            else f" (publish them with --bands {dim})"), err=True)
    if chosen:
        for dim in chosen:
            table = band_table(table, dim, available[dim])
        result = protect_tables(table, rule=rule, intervals=intervals)
    else:
        result = original
    cells = result.cells
    if not analyst:
        cells = cells[[c for c in cells.columns if c in (*dim_list, "table", "value")]]
    _write(cells, out)
    summary = result.summary()
    hidden = summary["students_hidden_in_inner_cells"]
    click.echo(
        f"{summary['suppressed']} of {summary['cells']} cells suppressed, {hidden} students in suppressed groups "
        f"({rule.describe()})",
        err=True,
    )
    if analyst:
        click.echo(
            "analyst columns written (status, reason, interval_low, interval_high): not for release; "
            "the release check refuses them",
            err=True,
        )
    if not result.is_safe:
        for problem in result.problems[:10]:
            click.echo(f"unsafe: {problem}", err=True)
        raise UnsafeTable("the audit could not prove the table safe; nothing should be released")


@main.command("audit")
@click.argument("published_csv", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dims", required=True, help="Dimension columns, comma-separated.")
@click.option("--value", "value_col", default="value", show_default=True, help="Column with the published counts.")
def audit_command(published_csv: Path, dims: str, value_col: str) -> None:
    """Run the attacker on a published table: each suppressed cell's interval; exit 1 on an exact disclosure."""
    import pandas as pd

    from workbench.disclosure import audit_published_table

    dim_list = _split(dims)
    if not dim_list:
        raise InputError("--dims names no column")
    frame = _read_csv(published_csv)
    _check_size(frame, dim_list, published_csv, has_totals=True)
    checked = audit_published_table(frame, dim_list, value_col)
    intervals = checked.intervals
    for row in intervals.itertuples(index=False):
        record = row._asdict()
        cell = ", ".join(f"{dim}={record[dim]}" for dim in dim_list)
        high = "inf" if pd.isna(record["interval_high"]) else str(record["interval_high"])
        verdict = "EXACT" if record["exact"] else "ok"
        click.echo(f"{cell}: [{record['interval_low']}, {high}] {verdict}")
    disclosed = checked.exactly_disclosed
    click.echo(f"{len(intervals)} suppressed cells, {disclosed} exactly disclosed")
    if disclosed:
        sys.exit(1)


@main.command("protect-extract")
@click.argument("input_csv", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--id-col", default="student_id", show_default=True, help="Column with the student IDs.")
@click.option("--quasi", default="school,grade,gender,race_ethnicity", show_default=True, help="Quasi-identifiers.")
@click.option("--k", "k", default=10, show_default=True, type=int, help="Every record must match at least k records.")
@click.option("--drop", default="", help="Aggregate-only columns to remove, comma-separated (e.g. low_income).")
@click.option(
    "--suppress-order",
    default=None,
    help="Quasi-identifiers in the order they are given up (default: race_ethnicity,gender,school,grade).",
)
@click.option("--year-col", default=None, help="Column with the school year, when the input has a row per student and year.")
@click.option("--seed", type=int, default=None, help="Seed for the pseudonym order (default: fresh randomness).")
@click.option(
    "--linkage-key-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="File holding the district's linkage key; adds linkage_token = HMAC-SHA256(key, ID). Only where the agreement allows.",
)
@click.option("--policy", "policy", default=None,
              help="Policy pack whose hierarchies may show a quasi-identifier as a group instead of withholding it.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Output CSV (default: stdout).")
def protect_extract_command(
    input_csv: Path,
    id_col: str,
    quasi: str,
    k: int,
    drop: str,
    suppress_order: str | None,
    year_col: str | None,
    seed: int | None,
    linkage_key_file: Path | None,
    policy: str | None,
    out: Path | None,
) -> None:
    """De-identify a student-level extract: keyed pseudonyms, dropped fields, k-anonymity with blanks as values."""
    from workbench.disclosure import protect_extract
    from workbench.disclosure.hierarchy import Hierarchy

    hierarchies = {}
    if policy is not None:
        from workbench.policy import load_policy

        levels = load_policy(policy).pack.fields.quasi_identifiers.hierarchies
        hierarchies = {column: Hierarchy.from_levels(levels[column]) for column in _split(quasi) if column in levels}

    frame = _read_csv(input_csv)
    key = None
    if linkage_key_file is not None:
        key = linkage_key_file.read_bytes().strip()
        if not key:
            raise InputError(f"linkage key file {linkage_key_file} is empty")
    extract, report = protect_extract(
        frame,
        id_col=id_col,
        year_col=year_col,
        quasi=_split(quasi),
        k=k,
        drop=_split(drop),
        suppression_order=_split(suppress_order) if suppress_order else None,
        key=None if seed is None else f"seed:{seed}".encode(),
        linkage_key=key,
        hierarchies=hierarchies,
    )
    _write(extract, out)
    for line in report.lines():
        click.echo(line, err=True)
