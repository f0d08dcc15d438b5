"""Weekly office calendars: parsing, open/closed instants, midnight shifts, DST."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from monitor.sla.calendar import ALWAYS, WeeklyCalendar, parse_hours

AMS = ZoneInfo("Europe/Amsterdam")


def cal(*specs: str) -> WeeklyCalendar:
    intervals = [i for s in specs for i in parse_hours(s)]
    return WeeklyCalendar(name="t", timezone=AMS, intervals=tuple(intervals))


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=AMS)


def test_office_hours_boundaries_are_half_open() -> None:
    office = cal("mon-fri 09:00-17:00")
    assert not office.is_open(local(2026, 11, 16, 8, 59, 59))  # Monday
    assert office.is_open(local(2026, 11, 16, 9, 0))
    assert office.is_open(local(2026, 11, 16, 16, 59, 59))
    assert not office.is_open(local(2026, 11, 16, 17, 0))
    assert not office.is_open(local(2026, 11, 21, 12, 0))  # Saturday


def test_evening_shift_runs_past_midnight() -> None:
    evening = cal("fri 18:00-02:00")
    assert evening.is_open(local(2026, 11, 20, 23, 30))  # Friday night
    assert evening.is_open(local(2026, 11, 21, 1, 59))  # Saturday small hours
    assert not evening.is_open(local(2026, 11, 21, 2, 0))
    assert not evening.is_open(local(2026, 11, 20, 1, 0))  # Friday small hours: Thursday's


def test_wraparound_day_ranges_and_lists() -> None:
    weekend = cal("sat-sun 10:00-14:00", "fri,mon 12:00-13:00")
    assert weekend.is_open(local(2026, 11, 22, 11, 0))  # Sunday
    assert weekend.is_open(local(2026, 11, 23, 12, 30))  # Monday
    assert not weekend.is_open(local(2026, 11, 24, 12, 30))  # Tuesday
    assert [i.weekday for i in parse_hours("sat-mon 10:00-11:00")] == [5, 6, 0]


def test_utc_instants_are_judged_in_local_time_across_dst() -> None:
    office = cal("mon-fri 09:00-17:00")
    # Summer (CEST, UTC+2): 07:30 UTC is 09:30 local.
    assert office.is_open(datetime(2026, 7, 6, 7, 30, tzinfo=UTC))
    # Winter (CET, UTC+1): 07:30 UTC is 08:30 local.
    assert not office.is_open(datetime(2026, 11, 16, 7, 30, tzinfo=UTC))
    # Monday after the spring-forward night (2026-03-29) is already on CEST.
    assert office.is_open(datetime(2026, 3, 30, 7, 0, tzinfo=UTC))


@pytest.mark.parametrize(
    "bad", ["mon-fri 9-17", "xyz 09:00-17:00", "mon 25:00-26:00", "mon 10:00-10:00"]
)
def test_invalid_hours_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_hours(bad)


def test_always_is_open_and_weekend_flag() -> None:
    assert ALWAYS.is_open(datetime(2026, 1, 1, 3, 0, tzinfo=UTC))
    office = cal("mon-fri 09:00-17:00")
    assert office.is_weekend(local(2026, 11, 22, 0, 30))  # Sunday local, Saturday 23:30 UTC
    assert not office.is_weekend(local(2026, 11, 23, 0, 30))
