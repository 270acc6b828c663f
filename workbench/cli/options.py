"""Options several commands share, checked once: a bad value is exit 2 naming the option."""

from __future__ import annotations

from datetime import date

import click


def parse_date_option(_ctx, param, value: str | None) -> date | None:
    """A YYYY-MM-DD option (None stays None): a real date, from 1970 to a year from today."""
    from workbench.request import check_date_in_range

    if value is None:
        return None
    try:
        parsed = date.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(f"{value[:40]!r} is not a date written YYYY-MM-DD (e.g. 2026-06-01)") from None
    try:
        return check_date_in_range(parsed)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


as_of_option = click.option("--as-of", "as_of", callback=parse_date_option, default=None,
                            help="Date agreements and consents are judged on, YYYY-MM-DD (default: today).")
