"""Property tests: the calendar engine against an independent second-by-second reference.

The reference below knows nothing of the engine's UTC spans: it asks zoneinfo for the wall
time of every single second and checks it against the day's intervals as naive datetimes —
the definition in monitor/sla/calendar.py's docstring, written out as plainly as possible.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from monitor.sla.calendar import WEEKDAYS, WeeklyCalendar, build_calendar

ZONES = ("Europe/Amsterdam", "America/New_York", "Australia/Sydney", "Asia/Kolkata", "UTC")
COUNTRIES: tuple[tuple[str | None, str | None], ...] = (
    (None, None),
    ("NL", None),
    ("BE", None),
    ("DE", "BY"),
    ("GB", None),
)
# Times that sit on DST transitions (01:00-03:00), shift edges and midnight.
INTERESTING_MINUTES = (0, 60, 90, 120, 150, 180, 210, 360, 420, 540, 1020, 1080, 1320, 1439)
# Local dates that are public holidays in one of COUNTRIES: Koningsdag (2025 on Saturday the
# 26th, because the 27th was a Sunday), Christmas, BE national day, Epiphany in Bavaria, GB's
# observed Boxing Day, Whit Monday, Good Friday.
HOLIDAY_DATES: tuple[tuple[date, tuple[str | None, str | None]], ...] = (
    (date(2025, 4, 26), ("NL", None)),
    (date(2026, 4, 27), ("NL", None)),
    (date(2026, 12, 25), ("NL", None)),
    (date(2026, 7, 21), ("BE", None)),
    (date(2026, 1, 6), ("DE", "BY")),
    (date(2026, 12, 28), ("GB", None)),
    (date(2026, 5, 25), ("DE", "BY")),
    (date(2026, 4, 3), ("GB", None)),
)
FIRST = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp())
LAST = int(datetime(2027, 12, 31, tzinfo=UTC).timestamp())
MICRO = timedelta(microseconds=1)


def at(second: int) -> datetime:
    return datetime.fromtimestamp(second, UTC)


def hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True)
class Spec:
    """A calendar in the test's own terms: (weekdays, start minute, end minute) per interval."""

    zone: str
    weekly: tuple[tuple[frozenset[int], int, int], ...]
    country: str | None = None
    subdivision: str | None = None
    closed: frozenset[date] = frozenset()
    half: tuple[tuple[date, int, int], ...] = ()

    def build(self) -> WeeklyCalendar:
        hours = [
            f"{','.join(WEEKDAYS[d] for d in sorted(days))} {hhmm(s)}-{hhmm(e)}"
            for days, s, e in self.weekly
        ]
        half_days: dict[date, list[str]] = {}
        for day, s, e in self.half:
            half_days.setdefault(day, []).append(f"{hhmm(s)}-{hhmm(e)}")
        return build_calendar(
            "prop",
            timezone=self.zone,
            hours=hours,
            holidays_country=self.country,
            holidays_subdivision=self.subdivision,
            closed_dates=self.closed,
            half_days=half_days,
        )


class Reference:
    """Naive and slow on purpose: one zoneinfo wall-time lookup per second."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.tz = ZoneInfo(spec.zone)

    @functools.cache  # noqa: B019 - one short-lived Reference per example
    def holiday(self, day: date) -> str | None:
        if self.spec.country is None:
            return None
        table = holidays.country_holidays(
            self.spec.country, subdiv=self.spec.subdivision, years=day.year
        )
        return table.get(day)

    @functools.cache  # noqa: B019
    def intervals(self, day: date) -> list[tuple[datetime, datetime]]:
        """Wall-time intervals [start, end) that start on `day`, as naive datetimes."""
        halves = [(s, e) for d, s, e in self.spec.half if d == day]
        if day in self.spec.closed:
            minutes = []
        elif halves:
            minutes = halves
        elif self.holiday(day) is not None:
            minutes = []
        else:
            minutes = [(s, e) for days, s, e in self.spec.weekly if day.weekday() in days]
        midnight = datetime.combine(day, time())
        return [
            (
                midnight + timedelta(minutes=s),
                midnight + timedelta(minutes=e if e > s else e + 1440),
            )
            for s, e in minutes
        ]

    def is_open(self, second: int) -> bool:
        wall = datetime.fromtimestamp(second, self.tz).replace(tzinfo=None)
        today = wall.date()
        for day in (today, today - timedelta(days=1)):
            for start, end in self.intervals(day):
                if start <= wall < end:
                    return True
        return False


@functools.cache
def transitions(zone: str) -> tuple[int, ...]:
    """UTC offset changes in 2025-2027 (to the hour), used to aim examples at DST weekends."""
    tz = ZoneInfo(zone)
    found: list[int] = []
    previous = datetime.fromtimestamp(FIRST, tz).utcoffset()
    for second in range(FIRST, LAST, 3600):
        offset = datetime.fromtimestamp(second, tz).utcoffset()
        if offset != previous:
            found.append(second)
            previous = offset
    return tuple(found)


minutes_of_day = st.one_of(st.sampled_from(INTERESTING_MINUTES), st.integers(0, 1439))


@st.composite
def interval_minutes(draw: st.DrawFn) -> tuple[int, int]:
    start = draw(minutes_of_day)
    end = draw(st.one_of(minutes_of_day, st.just(1440)))
    if end == start and start != 0:
        end = (start + 30) % 1440  # empty intervals are rejected by the parser
    return start, end


@dataclass(frozen=True)
class Scenario:
    """A calendar, a start (epoch seconds) and a length in seconds."""

    spec: Spec
    start: int
    seconds: int
    label: str = "random"


@st.composite
def scenarios(draw: st.DrawFn, max_seconds: int) -> Scenario:
    zone = draw(st.sampled_from(ZONES))
    aim = draw(st.sampled_from(("transition", "holiday", "anywhere")))
    holiday = draw(st.sampled_from(HOLIDAY_DATES)) if aim == "holiday" else None
    if aim == "transition" and transitions(zone):
        anchor = draw(st.sampled_from(transitions(zone)))
    elif holiday is not None:
        anchor = int(datetime.combine(holiday[0], time(), tzinfo=UTC).timestamp())
    else:
        anchor = draw(st.integers(FIRST, LAST))
    offset = draw(st.integers(-36 * 3600, 12 * 3600))
    if draw(st.booleans()):
        offset -= offset % 60  # on the minute: lands on interval edges more often
    start = anchor + offset
    weekly = tuple(
        (frozenset(draw(st.sets(st.integers(0, 6), min_size=1))), *draw(interval_minutes()))
        for _ in range(draw(st.integers(1, 3)))
    )
    country, subdivision = draw(st.sampled_from(COUNTRIES))
    if holiday is not None and draw(st.booleans()):
        country, subdivision = holiday[1]  # a holiday inside the window, for sure
    first_day = datetime.fromtimestamp(start, ZoneInfo(zone)).date()
    near_days = st.integers(-1, 4).map(lambda n: first_day + timedelta(days=n))
    if holiday is not None and draw(st.booleans()):
        near_days = st.just(holiday[0])  # closed / half day on the holiday itself
    closed = frozenset(draw(st.sets(near_days, max_size=2)))
    half = tuple(
        (draw(near_days), *draw(interval_minutes())) for _ in range(draw(st.integers(0, 2)))
    )
    spec = Spec(zone, weekly, country, subdivision, closed, half)
    # Half of the draws are long: hypothesis alone favours short lengths.
    length = st.one_of(st.integers(0, max_seconds), st.integers(max_seconds // 2, max_seconds))
    return Scenario(spec, start, draw(length))


def ams(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    """Epoch seconds of an Amsterdam wall time (the first occurrence if repeated)."""
    local = datetime(year, month, day, hour, minute, tzinfo=ZoneInfo("Europe/Amsterdam"))
    return int(local.timestamp())


EVERY_DAY = frozenset(range(7))
NIGHTS = Spec("Europe/Amsterdam", ((EVERY_DAY, 22 * 60, 6 * 60),))
SUNDAY_0230_0500 = Spec("Europe/Amsterdam", ((frozenset({6}), 150, 300),))
SUNDAY_0230_0400 = Spec("Europe/Amsterdam", ((frozenset({6}), 150, 240),))
NL_EVENINGS = Spec("Europe/Amsterdam", ((EVERY_DAY, 18 * 60, 2 * 60),), country="NL")
NL_OFFICE = Spec("Europe/Amsterdam", ((frozenset(range(5)), 9 * 60, 17 * 60),), country="NL")
NY_NIGHTS = Spec("America/New_York", ((EVERY_DAY, 22 * 60, 6 * 60),))
SYDNEY_NIGHTS = Spec("Australia/Sydney", ((EVERY_DAY, 22 * 60, 6 * 60),))
OFFICE_9_17 = ((EVERY_DAY, 9 * 60, 17 * 60),)
SPECIAL_CASES = [
    # Night shifts across the Amsterdam DST weekends of 2026: 7 h (March), 9 h (October).
    Scenario(NIGHTS, ams(2026, 3, 28, 20), 16 * 3600, "ams-spring-night"),
    Scenario(NIGHTS, ams(2026, 10, 24, 20), 16 * 3600, "ams-autumn-night"),
    # An interval starting inside the spring-forward gap, and one inside the repeated hour.
    Scenario(SUNDAY_0230_0500, ams(2026, 3, 29, 0), 8 * 3600, "ams-starts-in-gap"),
    Scenario(SUNDAY_0230_0400, ams(2026, 10, 25, 0), 8 * 3600, "ams-starts-in-fold"),
    # Koningsdag: Saturday 26 April 2025 (the 27th was a Sunday), Monday 27 April 2026.
    Scenario(NL_EVENINGS, ams(2025, 4, 25, 20), 30 * 3600, "koningsdag-2025-evenings"),
    Scenario(NL_EVENINGS, ams(2026, 4, 26, 20), 30 * 3600, "koningsdag-2026-evenings"),
    Scenario(NL_OFFICE, ams(2026, 4, 27, 8), 12 * 3600, "koningsdag-2026-office"),
    # Explicit dates beat holidays: a half day on Koningsdag opens it; a closed date closes.
    Scenario(
        Spec(
            "Europe/Amsterdam",
            OFFICE_9_17,
            "NL",
            closed=frozenset({date(2026, 4, 28)}),
            half=((date(2026, 4, 27), 600, 780), (date(2026, 4, 27), 1380, 60)),
        ),
        ams(2026, 4, 27, 0),
        40 * 3600,
        "half-day-on-koningsdag",
    ),
    # BE national day, Epiphany in Bavaria, GB's observed Boxing Day.
    Scenario(Spec("Europe/Brussels", OFFICE_9_17, "BE"), ams(2026, 7, 21, 6), 8 * 3600, "be"),
    Scenario(Spec("Europe/Berlin", OFFICE_9_17, "DE", "BY"), ams(2026, 1, 6, 6), 8 * 3600, "de-by"),
    Scenario(Spec("Europe/London", OFFICE_9_17, "GB"), ams(2026, 12, 28, 6), 8 * 3600, "gb"),
    # New York and Sydney DST changes under a night shift.
    Scenario(NY_NIGHTS, ams(2026, 3, 8, 0), 16 * 3600, "new-york-spring"),
    Scenario(NY_NIGHTS, ams(2026, 11, 1, 0), 16 * 3600, "new-york-autumn"),
    Scenario(SYDNEY_NIGHTS, ams(2026, 4, 4, 10), 16 * 3600, "sydney-autumn"),
    Scenario(SYDNEY_NIGHTS, ams(2026, 10, 3, 10), 16 * 3600, "sydney-spring"),
]


def check_against_reference(sc: Scenario) -> None:
    cal, ref = sc.spec.build(), Reference(sc.spec)
    s, e = sc.start, sc.start + sc.seconds
    flags = [ref.is_open(t) for t in range(s, e)]
    prefix = [0]
    for flag in flags:
        prefix.append(prefix[-1] + flag)
    # is_open at every second, covered over the window and over some sub-windows.
    assert [cal.is_open(at(t)) for t in range(s, e)] == flags
    assert cal.covered_seconds(at(s), at(e)) == prefix[-1]
    n = len(flags)
    for i, j in ((0, n // 2), (n // 3, n), (n // 4, 3 * n // 4), (n - 1, n)):
        if 0 <= i <= j:
            assert cal.covered_seconds(at(s + i), at(s + j)) == prefix[j] - prefix[i]
    # add_covered: the k-th open second ends at the due instant; past the window if k > total.
    total = prefix[-1]
    open_seconds = [s + i for i, flag in enumerate(flags) if flag]
    for k in {0, min(1, total), total // 3, total // 2, total}:
        expected = s if k == 0 else open_seconds[k - 1] + 1
        assert cal.add_covered(at(s), k) == at(expected), k
    assert cal.add_covered(at(s), total + 1) > at(e)
    # next_open: the first open second at or after s, if there is one in the window.
    if open_seconds:
        assert cal.next_open(at(s)) == at(open_seconds[0])
    # The holiday of every local date in the window, straight from the holidays package.
    for t in range(s, e + 1, 3600):
        local_day = datetime.fromtimestamp(t, ref.tz).date()
        assert cal.holiday_name(at(t)) == ref.holiday(local_day)


@settings(max_examples=80, deadline=None)
@given(scenarios(max_seconds=12 * 3600))
def test_agrees_with_brute_force_reference(sc: Scenario) -> None:
    check_against_reference(sc)


@pytest.mark.parametrize("sc", SPECIAL_CASES, ids=[c.label for c in SPECIAL_CASES])
def test_special_cases_agree_with_brute_force_reference(sc: Scenario) -> None:
    check_against_reference(sc)


@settings(max_examples=150, deadline=None)
@given(
    scenarios(max_seconds=14 * 86400),
    st.integers(0, 14 * 86400),
    st.integers(0, 999_999),
    st.integers(0, 999_999),
)
def test_covered_is_additive_and_bounded(sc: Scenario, cut: int, us1: int, us2: int) -> None:
    cal = sc.spec.build()
    a = at(sc.start) + us1 * MICRO
    c = at(sc.start + sc.seconds) + us2 * MICRO
    b = min(at(sc.start + cut), c)
    whole = cal.covered_seconds(a, c)
    assert 0 <= whole <= max((c - a).total_seconds(), 0)
    if a <= b <= c:
        # Exact in microseconds: split anywhere, the parts add up.
        parts = round(cal.covered_seconds(a, b) * 1e6) + round(cal.covered_seconds(b, c) * 1e6)
        assert parts == round(whole * 1e6)
    assert cal.covered_seconds(max(a, c), min(a, c)) == 0  # reversed or empty: nothing


@settings(max_examples=150, deadline=None)
@given(scenarios(max_seconds=14 * 86400), st.integers(0, 999_999), st.integers(0, 999_999))
def test_add_covered_inverts_covered_and_is_earliest(sc: Scenario, us: int, less: int) -> None:
    cal = sc.spec.build()
    start = at(sc.start) + us * MICRO
    horizon = start + timedelta(seconds=sc.seconds)
    reachable = round(cal.covered_seconds(start, horizon) * 1e6)
    target = max(reachable - less, 0) / 1e6
    due = cal.add_covered(start, target)
    assert start <= due <= horizon
    assert cal.covered_seconds(start, due) == target
    if target > 0:
        assert cal.covered_seconds(start, due - MICRO) < target
        assert cal.is_open(due - MICRO)
    else:
        assert due == start


@settings(max_examples=80, deadline=None)
@given(scenarios(max_seconds=3600))
@example(Scenario(SUNDAY_0230_0400, ams(2026, 10, 25, 2, 15), 3600))
@example(Scenario(SUNDAY_0230_0500, ams(2026, 3, 29, 1, 30), 3600))
def test_is_open_agrees_with_one_second_windows(sc: Scenario) -> None:
    cal = sc.spec.build()
    for t in range(sc.start, sc.start + sc.seconds):
        covered = cal.covered_seconds(at(t), at(t + 1))
        assert covered == (1.0 if cal.is_open(at(t)) else 0.0)


@settings(max_examples=150, deadline=None)
@given(scenarios(max_seconds=0), st.integers(0, 999_999))
def test_next_open_and_next_close_bound_the_current_state(sc: Scenario, us: int) -> None:
    cal = sc.spec.build()
    t = at(sc.start) + us * MICRO
    opens, closes = cal.next_open(t), cal.next_close(t)
    assert opens is not None  # random calendars open every week
    if closes is None:  # only a calendar open around the clock never closes
        fortnight = timedelta(days=14)
        assert cal.covered_seconds(t, t + fortnight) == fortnight.total_seconds()
        return
    assert t <= opens and cal.is_open(opens) and cal.covered_seconds(t, opens) == 0
    assert t <= closes and not cal.is_open(closes)
    assert cal.covered_seconds(t, closes) == (closes - t).total_seconds()
    assert (opens == t) == cal.is_open(t) == (closes > t)
