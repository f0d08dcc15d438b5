"""Weekly office calendars: parsing, open/closed instants, midnight shifts, DST, worked examples."""

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from monitor.sla.calendar import (
    ALWAYS,
    WeeklyCalendar,
    build_calendar,
    check_holidays,
    parse_day_hours,
    parse_hours,
)

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


# --- Worked examples (hand-computed) -----------------------------------------------------

MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)


def nl(*specs: str, **kw: Any) -> WeeklyCalendar:
    return build_calendar("t", timezone="Europe/Amsterdam", hours=list(specs), **kw)


def test_friday_1650_with_a_60_minute_target_is_due_monday_0950() -> None:
    office = nl("mon-fri 09:00-17:00", holidays_country="NL")
    item = local(2026, 11, 20, 16, 50)  # Friday
    due = office.add_covered(item, 3600)
    # 10 minutes on Friday, 50 on Monday morning.
    assert due == local(2026, 11, 23, 9, 50)
    assert due.tzinfo is UTC
    assert office.covered_seconds(item, due) == 3600
    # The warning time at 0.75 of the target: 45 covered minutes, i.e. Monday 09:35.
    assert office.add_covered(item, 0.75 * 3600) == local(2026, 11, 23, 9, 35)


def test_item_at_0200_answered_0710_under_0700_2300_coverage() -> None:
    team = nl("mon-sun 07:00-23:00")
    item, reply = local(2026, 11, 18, 2, 0), local(2026, 11, 18, 7, 10)
    assert reply - item == 5 * HOUR + 10 * MIN  # wall-clock
    assert team.covered_seconds(item, reply) == 10 * 60  # SLA time
    # A 30-minute target under that coverage is due at 07:30.
    assert team.add_covered(item, 1800) == local(2026, 11, 18, 7, 30)


def test_item_at_0130_under_evening_coverage_is_due_1830_same_day() -> None:
    evenings = nl("mon-sun 18:00-02:00")
    item = local(2026, 11, 18, 1, 30)  # the small hours of Tuesday's 18:00-02:00 shift
    # 30 minutes until 02:00, then 30 minutes after 18:00.
    assert evenings.add_covered(item, 3600) == local(2026, 11, 18, 18, 30)
    assert evenings.covered_seconds(item, local(2026, 11, 18, 18, 30)) == 3600


def test_split_shifts_skip_the_lunch_break() -> None:
    split = nl("mon-fri 09:00-12:30", "mon-fri 13:30-17:30")
    monday = (2026, 11, 16)
    # 12:00 + 60 min: 30 minutes before lunch, 30 after 13:30.
    assert split.add_covered(local(*monday, 12, 0), 3600) == local(*monday, 14, 0)
    assert split.covered_seconds(local(*monday, 11, 0), local(*monday, 15, 0)) == 3 * 3600
    assert not split.is_open(local(*monday, 13, 0))
    assert split.next_open(local(*monday, 12, 45)) == local(*monday, 13, 30)
    assert split.next_close(local(*monday, 10, 0)) == local(*monday, 12, 30)
    # The day covers 3.5 h + 4 h; the item at 17:00 is due Tuesday 09:30.
    assert split.covered_seconds(local(*monday, 0, 0), local(2026, 11, 17)) == 7.5 * 3600
    assert split.add_covered(local(*monday, 17, 0), 3600) == local(2026, 11, 17, 9, 30)


def test_half_day_and_closed_date_with_dutch_holidays() -> None:
    office = nl(
        "mon-fri 09:00-17:00",
        holidays_country="NL",
        closed_dates=[date(2026, 12, 31)],
        half_days={date(2026, 12, 24): "09:00-13:00"},
    )
    # Thursday 24 December closes at 13:00; Friday 25 is Christmas, then the weekend.
    assert office.add_covered(local(2026, 12, 24, 12, 30), 3600) == local(2026, 12, 28, 9, 30)
    assert office.covered_seconds(local(2026, 12, 24), local(2026, 12, 25)) == 4 * 3600
    assert office.holiday_name(local(2026, 12, 25, 12)) is not None
    assert office.holiday_name(local(2026, 12, 24, 12)) is None
    # Wednesday 30 December 16:30: Thursday 31 is a closed date, 1 January a holiday, then
    # the weekend: due Monday 4 January 09:30.
    assert office.add_covered(local(2026, 12, 30, 16, 30), 3600) == local(2027, 1, 4, 9, 30)
    assert not office.is_open(local(2026, 12, 31, 10))


def test_next_open_and_next_close() -> None:
    office = nl("mon-fri 09:00-17:00")
    friday_evening = local(2026, 11, 20, 17, 0)
    assert office.next_open(friday_evening) == local(2026, 11, 23, 9, 0)
    assert office.next_close(friday_evening) == friday_evening  # already closed
    assert office.next_open(local(2026, 11, 23, 10)) == local(2026, 11, 23, 10)  # already open
    assert office.next_close(local(2026, 11, 23, 10)) == local(2026, 11, 23, 17)
    evening = nl("mon-sun 18:00-02:00")
    assert evening.next_close(local(2026, 11, 18, 23, 0)) == local(2026, 11, 19, 2, 0)
    assert ALWAYS.next_close(local(2026, 11, 18)) is None
    assert ALWAYS.next_open(local(2026, 11, 18)) == local(2026, 11, 18)
    # Around the clock except one closed date: open until that date's local midnight.
    nonstop = nl("mon-sun 00:00-24:00", closed_dates=[date(2026, 12, 31)])
    assert nonstop.next_close(local(2026, 12, 1, 12)) == local(2026, 12, 31)
    assert nonstop.next_open(local(2026, 12, 31, 12)) == local(2027, 1, 1)
    assert nl("mon-sun 00:00-00:00").next_close(local(2026, 12, 1)) is None


# --- DST in Europe/Amsterdam (2026: spring forward 29 March, fall back 25 October) --------


def test_night_shift_lasts_seven_hours_in_spring_and_nine_in_autumn() -> None:
    nights = nl("mon-sun 22:00-06:00")
    spring = nights.covered_seconds(local(2026, 3, 28, 21), local(2026, 3, 29, 7))
    autumn = nights.covered_seconds(local(2026, 10, 24, 21), local(2026, 10, 25, 7))
    assert (spring, autumn) == (7 * 3600, 9 * 3600)
    # Due times count real elapsed time: 8 covered hours end at 07:00 the next evening...
    assert nights.add_covered(local(2026, 3, 28, 22), 8 * 3600) == local(2026, 3, 29, 23, 0)
    # ... but at 05:00 in the long autumn night.
    assert nights.add_covered(local(2026, 10, 24, 22), 8 * 3600) == local(2026, 10, 25, 5, 0)


def test_interval_starting_in_the_spring_gap_opens_at_the_first_existing_instant() -> None:
    early = nl("sun 02:30-05:00")
    # 02:00-03:00 does not exist on 29 March 2026; 03:00 CEST is 01:00 UTC.
    assert early.next_open(local(2026, 3, 29, 0)) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert early.covered_seconds(local(2026, 3, 28), local(2026, 3, 30)) == 2 * 3600
    # Wholly inside the gap: never open that day.
    assert nl("sun 02:10-02:50").covered_seconds(local(2026, 3, 29), local(2026, 3, 30)) == 0


def test_repeated_autumn_hour_uses_exact_wall_time() -> None:
    early = nl("sun 02:30-04:00")
    first_0230 = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST
    second_0200 = datetime(2026, 10, 25, 1, 0, tzinfo=UTC)  # 02:00 CET, the wall clock rewinds
    second_0230 = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)  # 02:30 CET
    assert early.is_open(first_0230)
    assert not early.is_open(second_0200)
    assert early.is_open(second_0230)
    assert early.next_close(first_0230) == second_0200
    # 30 minutes (first pass) + 90 minutes (02:30-04:00 CET).
    assert early.covered_seconds(local(2026, 10, 25), local(2026, 10, 26)) == 2 * 3600


def test_a_day_has_23_or_25_hours() -> None:
    nonstop = nl("mon-sun 00:00-00:00")
    assert nonstop.covered_seconds(local(2026, 3, 29), local(2026, 3, 30)) == 23 * 3600
    assert nonstop.covered_seconds(local(2026, 10, 25), local(2026, 10, 26)) == 25 * 3600


# --- Holidays --------------------------------------------------------------------------


def test_koningsdag_moves_to_saturday_when_the_27th_is_a_sunday() -> None:
    office = nl("mon-sun 09:00-17:00", holidays_country="NL")
    assert office.holiday_name(local(2025, 4, 26, 12)) is not None  # Saturday 26 April 2025
    assert office.holiday_name(local(2025, 4, 27, 12)) is None
    assert not office.is_open(local(2025, 4, 26, 12))
    assert office.is_open(local(2025, 4, 27, 12))
    assert office.holiday_name(local(2026, 4, 27, 12)) is not None  # Monday 27 April 2026
    assert not office.is_open(local(2026, 4, 27, 12))
    # The holiday is judged on the local date: 23:30 UTC on the 26th is already the 27th.
    assert office.holiday_name(datetime(2026, 4, 26, 23, 30, tzinfo=UTC)) is not None


def test_a_holiday_drops_the_shift_that_starts_on_it() -> None:
    evenings = nl("mon-sun 18:00-02:00", holidays_country="NL")
    assert evenings.is_open(local(2026, 4, 27, 1, 0))  # Sunday's shift, still running
    assert not evenings.is_open(local(2026, 4, 27, 20, 0))  # Koningsdag's own shift
    assert not evenings.is_open(local(2026, 4, 28, 1, 0))  # ... and its small hours
    assert evenings.is_open(local(2026, 4, 28, 18, 0))


def test_half_day_on_a_holiday_opens_it() -> None:
    office = nl(
        "mon-fri 09:00-17:00", holidays_country="NL", half_days={date(2026, 4, 27): "10:00-13:00"}
    )
    assert office.is_open(local(2026, 4, 27, 12))
    assert office.covered_seconds(local(2026, 4, 27), local(2026, 4, 28)) == 3 * 3600


@pytest.mark.parametrize(
    ("zone", "country", "subdivision", "day"),
    [
        ("Europe/Brussels", "BE", None, date(2026, 7, 21)),  # national day
        ("Europe/Berlin", "DE", "BY", date(2026, 1, 6)),  # Epiphany, Bavaria only
        ("Europe/London", "GB", None, date(2026, 12, 28)),  # Boxing Day (observed)
        ("Europe/London", "gb", "eng", date(2026, 5, 25)),  # codes in any case
    ],
)
def test_other_countries(zone: str, country: str, subdivision: str | None, day: date) -> None:
    cal = build_calendar(
        "t",
        timezone=zone,
        hours=["mon-sun 09:00-17:00"],
        holidays_country=country,
        holidays_subdivision=subdivision,
    )
    noon = datetime.combine(day, time(12), tzinfo=ZoneInfo(zone))
    assert cal.holiday_name(noon) is not None
    assert not cal.is_open(noon)
    assert cal.is_open(noon - timedelta(days=2)) or cal.holiday_name(noon - timedelta(days=2))


def test_epiphany_is_bavarian_not_national() -> None:
    noon = datetime(2026, 1, 6, 12, tzinfo=ZoneInfo("Europe/Berlin"))
    berlin = build_calendar(
        "t", timezone="Europe/Berlin", hours=["mon-fri 09:00-17:00"], holidays_country="DE"
    )
    assert berlin.holiday_name(noon) is None
    assert berlin.is_open(noon)


def test_no_country_means_no_holidays() -> None:
    office = nl("mon-fri 09:00-17:00")
    assert office.holiday_name(local(2026, 12, 25, 12)) is None
    assert office.is_open(local(2026, 12, 25, 12))


@pytest.mark.parametrize(
    ("country", "subdivision", "message"),
    [
        ("XX", None, "holidays_country 'XX'"),
        ("DE", "ZZ", "BY"),  # lists the supported subdivisions
        (None, "BY", "holidays_country"),
    ],
)
def test_check_holidays_explains_bad_settings(
    country: str | None, subdivision: str | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        check_holidays(country, subdivision)


def test_check_holidays_accepts_known_settings() -> None:
    for country, subdivision in [
        (None, None),
        ("NL", None),
        ("BE", None),
        ("DE", "BY"),
        ("GB", "SCT"),
    ]:
        check_holidays(country, subdivision)


# --- Edge cases and API -------------------------------------------------------------------


def test_zero_negative_and_naive() -> None:
    office = nl("mon-fri 09:00-17:00")
    saturday = local(2026, 11, 21, 12)
    assert office.add_covered(saturday, 0) == saturday  # the clock has not run yet
    assert office.covered_seconds(saturday, saturday - HOUR) == 0
    with pytest.raises(ValueError):
        office.add_covered(saturday, -1)
    with pytest.raises(ValueError, match="naive"):
        office.is_open(datetime(2026, 11, 21, 12))


def test_a_calendar_that_never_opens_raises_instead_of_looping() -> None:
    start = date(2026, 1, 1)
    closed = [start + timedelta(days=n) for n in range(450)]
    never = nl("mon-sun 09:00-17:00", closed_dates=closed)
    with pytest.raises(ValueError, match="no open time"):
        never.add_covered(local(2026, 1, 1), 60)
    assert never.next_open(local(2026, 1, 1)) is None
    # A long closure that does end is fine.
    reopening = nl("mon-sun 09:00-17:00", closed_dates=closed[:300])
    assert reopening.add_covered(local(2026, 1, 1), 60) == datetime.combine(
        start + timedelta(days=300), time(9, 1), tzinfo=AMS
    )


def test_always_covers_everything() -> None:
    start = local(2026, 3, 29, 1)
    # Real elapsed time: local 01:00 to 04:00 on the spring-forward night is 2 hours.
    assert ALWAYS.covered_seconds(start, local(2026, 3, 29, 4)) == 2 * 3600
    assert ALWAYS.add_covered(start, 90) == start + 90 * timedelta(seconds=1)
    assert ALWAYS.holiday_name(start) is None


def test_weekend_days_are_configurable() -> None:
    gulf = build_calendar(
        "t", timezone="Asia/Dubai", hours=["mon-fri 09:00-17:00"], weekend_days=["fri", "sat"]
    )
    friday = datetime(2026, 11, 20, 12, tzinfo=ZoneInfo("Asia/Dubai"))
    assert gulf.is_weekend(friday)
    assert not gulf.is_weekend(friday + timedelta(days=2))  # Sunday
    assert not nl("mon-fri 09:00-17:00").is_weekend(friday)


def test_parse_day_hours_names_what_it_parses() -> None:
    assert parse_day_hours("09:00-13:00", "half day") == (time(9), time(13))
    assert parse_day_hours("18:00-24:00", "x") == (time(18), time(0))
    with pytest.raises(ValueError, match="half day 2026-12-24"):
        parse_day_hours("9-13", "half day 2026-12-24")
    with pytest.raises(ValueError, match="24:00"):
        parse_hours("mon 24:00-02:00")


def test_calendars_are_hashable_and_replace_starts_a_fresh_cache() -> None:
    office = nl("mon-fri 09:00-17:00", closed_dates=[date(2026, 12, 31)])
    assert office == nl("mon-fri 09:00-17:00", closed_dates=[date(2026, 12, 31)])
    assert hash(office) == hash(nl("mon-fri 09:00-17:00", closed_dates=[date(2026, 12, 31)]))
    assert office.is_open(local(2026, 12, 30, 10))  # fills the cache
    closed = replace(office, closed_dates=frozenset({date(2026, 12, 30)}))
    assert not closed.is_open(local(2026, 12, 30, 10))
    assert office.is_open(local(2026, 12, 30, 10))


def test_weekly_calendar_constructor_keywords_still_work() -> None:
    plain = WeeklyCalendar(
        name="t", timezone=AMS, intervals=tuple(parse_hours("mon-fri 09:00-17:00"))
    )
    assert plain.add_covered(local(2026, 11, 20, 16, 50), 3600) == local(2026, 11, 23, 9, 50)
    assert plain.holiday_name(local(2026, 12, 25, 12)) is None
