"""Weekly office calendars in local wall time, evaluated with zoneinfo."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPEC = re.compile(
    r"^(?P<days>[a-z]{3}(?:-[a-z]{3})?(?:,[a-z]{3}(?:-[a-z]{3})?)*)\s+"
    r"(?P<start>\d{2}:\d{2})-(?P<end>\d{2}:\d{2})$"
)


@dataclass(frozen=True, kw_only=True)
class WeeklyInterval:
    """Open `start`-`end` local time on `weekday` (0=Monday); end <= start runs past midnight."""

    weekday: int
    start: time
    end: time

    @property
    def crosses_midnight(self) -> bool:
        """True for shifts such as 18:00-02:00."""
        return self.end <= self.start


def _parse_time(text: str) -> time:
    hour, minute = (int(p) for p in text.split(":"))
    if hour == 24 and minute == 0:
        return time(0, 0)
    return time(hour, minute)


def _expand_days(days: str) -> list[int]:
    result: list[int] = []
    for part in days.split(","):
        first, _, last = part.partition("-")
        if first not in WEEKDAYS or (last and last not in WEEKDAYS):
            raise ValueError(f"unknown weekday in {part!r}; use {', '.join(WEEKDAYS)}")
        a = WEEKDAYS.index(first)
        b = WEEKDAYS.index(last) if last else a
        span = (b - a) % 7
        result.extend((a + k) % 7 for k in range(span + 1))
    return result


def parse_hours(spec: str) -> list[WeeklyInterval]:
    """Parse "mon-fri 09:00-17:00" (or "sat,sun 10:00-14:00", "fri 18:00-02:00")."""
    match = _SPEC.match(spec.strip().lower())
    if not match:
        raise ValueError(f"invalid hours {spec!r}; expected e.g. 'mon-fri 09:00-17:00'")
    try:
        start = _parse_time(match["start"])
        end = _parse_time(match["end"])
    except ValueError as err:
        raise ValueError(f"invalid time in {spec!r}: {err}") from err
    if start == end and match["start"] != "00:00":
        raise ValueError(f"empty interval in {spec!r}")
    return [WeeklyInterval(weekday=d, start=start, end=end) for d in _expand_days(match["days"])]


@dataclass(frozen=True, kw_only=True)
class WeeklyCalendar:
    """A time zone plus weekly open intervals; `always` is open every instant."""

    name: str
    timezone: ZoneInfo
    intervals: tuple[WeeklyInterval, ...]
    always: bool = False

    def is_open(self, instant: datetime) -> bool:
        """True if `instant` (aware) falls inside an open interval, [start, end)."""
        if self.always:
            return True
        local = instant.astimezone(self.timezone)
        wall = local.time().replace(tzinfo=None)
        weekday = local.weekday()
        for interval in self.intervals:
            if interval.crosses_midnight:
                if interval.weekday == weekday and wall >= interval.start:
                    return True
                if (interval.weekday + 1) % 7 == weekday and wall < interval.end:
                    return True
            elif interval.weekday == weekday and interval.start <= wall < interval.end:
                return True
        return False

    def is_weekend(
        self, instant: datetime, weekend_days: frozenset[int] = frozenset({5, 6})
    ) -> bool:
        """True if the local weekday of `instant` is a weekend day."""
        return instant.astimezone(self.timezone).weekday() in weekend_days


ALWAYS = WeeklyCalendar(name="always", timezone=ZoneInfo("UTC"), intervals=(), always=True)


def utc(dt: datetime) -> datetime:
    """Normalise an aware datetime to UTC."""
    return dt.astimezone(UTC)
