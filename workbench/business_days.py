"""Business-day arithmetic for turnaround promises.

District turnaround times are promised in business days (BPS: clarifying questions within 3-5,
partner requests within 15, research within 25). A business day is a weekday that is neither a
public holiday (from the `holidays` package, observed dates included, because the office is
closed on the observed day) nor a district closure listed in the policy pack.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

import holidays
from workbench.errors import InputError

# A turnaround of a few hundred business days is already absurd; this bound only stops a
# calendar that closes every day (a misconfigured pack) from looping forever.
_MAX_CALENDAR_DAYS_SCANNED = 3660


class CalendarError(InputError):
    """The calendar settings cannot be used (unknown country or subdivision)."""


class BusinessCalendar:
    """Weekdays minus public holidays minus district closures."""

    def __init__(
        self,
        closures: Iterable[date] = (),
        country: str = "US",
        subdivision: str | None = None,
    ) -> None:
        self.closures = frozenset(closures)
        self.country = country
        self.subdivision = subdivision
        try:
            self._holidays = holidays.country_holidays(country, subdiv=subdivision)
        except NotImplementedError as exc:
            raise CalendarError(f"no public-holiday calendar for country {country!r}") from exc
        except Exception as exc:  # the holidays package raises plain errors for bad subdivisions
            raise CalendarError(
                f"no public-holiday calendar for {country!r} subdivision {subdivision!r}: {exc}"
            ) from exc

    def holiday_name(self, day: date) -> str | None:
        """Why the office is closed on a weekday, or None when it is open."""
        if day in self.closures:
            return "district closure"
        return self._holidays.get(day)

    def is_business_day(self, day: date) -> bool:
        return day.weekday() < 5 and self.holiday_name(day) is None

    def add_business_days(self, start: date, days: int) -> date:
        """The date `days` business days after `start`; the start day itself never counts.

        A request received on a Saturday and due in one business day is due on Monday (or the
        next open day), the same as one received on the Friday before.
        """
        if days < 0:
            raise ValueError("business days to add must not be negative")
        current = start
        remaining = days
        scanned = 0
        while remaining:
            current += timedelta(days=1)
            scanned += 1
            if scanned > _MAX_CALENDAR_DAYS_SCANNED:
                raise CalendarError("the calendar has no business days in ten years")
            if self.is_business_day(current):
                remaining -= 1
        return current

    def business_days_between(self, start: date, end: date) -> int:
        """Business days after `start` up to and including `end` (0 when end <= start)."""
        count = 0
        current = start
        while current < end:
            current += timedelta(days=1)
            if self.is_business_day(current):
                count += 1
        return count
