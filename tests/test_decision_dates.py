"""Due dates in business days: weekends, federal holidays (observed) and district closures."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.policy_fixtures import policy_con, request_data, run_decision  # noqa: F401  (fixture)
from workbench.business_days import BusinessCalendar, CalendarError
from workbench.policy import PolicyError, load_policy

CALENDAR = BusinessCalendar()


def test_weekends_are_not_business_days():
    assert CALENDAR.add_business_days(date(2025, 11, 7), 1) == date(2025, 11, 10)  # Friday -> Monday
    assert CALENDAR.add_business_days(date(2025, 11, 8), 1) == date(2025, 11, 10)  # Saturday -> Monday


def test_federal_holidays_are_skipped_including_observed_days():
    assert CALENDAR.add_business_days(date(2025, 11, 10), 1) == date(2025, 11, 12)  # Veterans Day
    assert CALENDAR.add_business_days(date(2025, 11, 26), 1) == date(2025, 11, 28)  # Thanksgiving
    # 4 July 2026 is a Saturday; the office closes on Friday 3 July (observed).
    assert not CALENDAR.is_business_day(date(2026, 7, 3))
    assert CALENDAR.add_business_days(date(2026, 7, 2), 1) == date(2026, 7, 6)
    assert CALENDAR.holiday_name(date(2026, 1, 19)) is not None  # Martin Luther King Jr. Day


def test_district_closures_are_skipped():
    closed = BusinessCalendar(closures=[date(2025, 12, 22), date(2025, 12, 23)])
    assert closed.add_business_days(date(2025, 12, 19), 1) == date(2025, 12, 24)
    assert closed.holiday_name(date(2025, 12, 22)) == "district closure"


def test_zero_days_is_the_same_day_and_negative_is_refused():
    assert CALENDAR.add_business_days(date(2025, 11, 8), 0) == date(2025, 11, 8)
    with pytest.raises(ValueError):
        CALENDAR.add_business_days(date(2025, 11, 8), -1)


def test_unknown_holiday_country_is_a_calendar_error():
    with pytest.raises(CalendarError):
        BusinessCalendar(country="XX")


@settings(max_examples=200, deadline=None)
@given(start=st.dates(date(2024, 1, 1), date(2030, 12, 31)), days=st.integers(1, 40))
def test_adding_business_days_lands_on_an_open_day_after_exactly_that_many(start, days):
    due = CALENDAR.add_business_days(start, days)
    assert due > start and CALENDAR.is_business_day(due)
    assert CALENDAR.business_days_between(start, due) == days
    assert (due - start) <= timedelta(days=days * 2 + 10)


def test_pack_closures_move_the_due_date(policy_con, tmp_path):
    """003:95: 15 business days; a district closure listed in the pack is one more day skipped."""
    child = tmp_path / "closed.yaml"
    child.write_text(yaml.safe_dump({
        "name": "closed", "title": "BPS with a closure", "extends": "bps",
        "calendar": {"country": "US", "closures": [date(2025, 11, 17)]},
    }))
    plain = run_decision(policy_con, "bps", request_data())
    closed = run_decision(policy_con, str(child), request_data())
    assert plain.due_date == date(2025, 11, 25)
    assert closed.due_date == date(2025, 11, 26)


def test_a_bad_calendar_in_a_pack_is_a_policy_error(tmp_path):
    child = tmp_path / "nowhere.yaml"
    child.write_text(yaml.safe_dump({"name": "nowhere", "title": "x", "extends": "nces", "calendar": {"country": "XX"}}))
    with pytest.raises(PolicyError, match="calendar"):
        load_policy(child)


def test_turnaround_counts_from_receipt_not_from_the_decision_date(policy_con):
    """003:95: the clock starts when the request is received."""
    decision = run_decision(policy_con, "bps", request_data(received="2025-11-03"), as_of=date(2025, 11, 20))
    assert decision.due_date == date(2025, 11, 25)
