"""Business calendars in local wall time: open instants, covered time and due times.

Semantics (the brute-force reference in tests/unit/test_calendar_properties.py uses the same):

* Each local date D has a list of intervals ``[start, end)`` in local wall time: the weekly
  intervals of D's weekday, or, if D is a ``half_days`` date, that date's own intervals, or
  none if D is in ``closed_dates`` or is a public holiday of ``holidays_country`` (only when a
  country is listed). Precedence: closed date > half day > public holiday > weekly hours, so
  a half day configured on a holiday opens it on purpose.
* An interval with ``end <= start`` runs past midnight and ends at ``end`` on D + 1
  ("18:00-02:00"; "00:00-00:00" is a whole day). It belongs to the date it starts on, so a
  holiday on D drops D's evening shift (including its small hours on D + 1), not the one that
  started on D - 1.
* An instant is open iff its local wall time (``instant.astimezone(tz)`` with the tzinfo
  dropped: date + time, as zoneinfo gives it) lies in ``[D + start, D + end)`` for one of the
  intervals of some date D. This is exact wall-time semantics, so across DST:
  - spring forward: wall times in the gap never occur, so a night shift 22:00-06:00 lasts 7 h,
    and an interval that starts inside the gap opens at the first instant that exists (the
    transition instant); one that lies wholly inside the gap never opens;
  - fall back: the repeated hour occurs twice and both occurrences count, so 22:00-06:00
    lasts 9 h; an interval starting inside the repeated hour (02:30-04:00) is open during
    the first 02:30-03:00, closed while the wall clock re-reads 02:00-02:30, then open again.
* Covered time is real elapsed time (UTC) inside open instants; instants are handled with
  microsecond resolution, as datetime does.
* ``always`` is open at every instant: covered = end - start, add = start + seconds.

Implementation: each local date's intervals are turned into UTC spans by intersecting the wall
interval with the constant-offset pieces of the zone around that date (the transition instant
is found by bisecting utcoffset). Spans are then merged per UTC day; both steps are cached on
the calendar, so covered time and due times only walk a few cached UTC days.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPEC = re.compile(
    r"^(?P<days>[a-z]{3}(?:-[a-z]{3})?(?:,[a-z]{3}(?:-[a-z]{3})?)*)\s+(?P<range>\S+)$"
)
_RANGE = re.compile(r"^(?P<start>\d{2}:\d{2})-(?P<end>\d{2}:\d{2})$")

# All arithmetic is in integer microseconds since the Unix epoch, so results are exact.
_US = 1_000_000
_DAY = 86_400 * _US
_ONE_US = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
# No UTC offset reaches a whole day (they span -12h..+14h), which bounds every search window.
# Sampling utcoffset every 3 hours finds each transition: zones never change twice that fast.
_SAMPLE_SECONDS = 3 * 3600
# A calendar with no open time for this long is treated as never opening (or never closing).
_HORIZON_DAYS = 400
# Cached UTC days / local dates per calendar; 4096 days is about 11 years.
_CACHE_LIMIT = 4096

_Span = tuple[int, int]


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


@dataclass(frozen=True, kw_only=True)
class DatedInterval:
    """Open `start`-`end` local time on one specific date (a half day); end <= start: next day."""

    day: date
    start: time
    end: time


def _parse_time(text: str, *, is_end: bool) -> time:
    hour, minute = (int(p) for p in text.split(":"))
    if hour == 24 and minute == 0:
        if not is_end:
            raise ValueError("24:00 is only valid as an end time")
        return time(0, 0)
    return time(hour, minute)


def _parse_range(text: str) -> tuple[time, time]:
    """Parse "09:00-17:00" into (start, end); raise ValueError without context."""
    match = _RANGE.match(text)
    if not match:
        raise ValueError("expected HH:MM-HH:MM, e.g. '09:00-17:00'")
    start = _parse_time(match["start"], is_end=False)
    end = _parse_time(match["end"], is_end=True)
    # "00:00-00:00" (or "00:00-24:00") is a whole day; any other empty range is a typo.
    if start == end and start != time(0, 0):
        raise ValueError("empty interval (start equals end)")
    return start, end


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
        start, end = _parse_range(match["range"])
    except ValueError as err:
        raise ValueError(f"invalid hours {spec!r}: {err}") from err
    return [WeeklyInterval(weekday=d, start=start, end=end) for d in _expand_days(match["days"])]


def parse_day_hours(spec: str, what: str) -> tuple[time, time]:
    """Parse "09:00-13:00" (hours of one specific date); `what` names it in errors."""
    try:
        return _parse_range(spec.strip())
    except ValueError as err:
        raise ValueError(f"{what}: invalid hours {spec!r}: {err}") from err


def _wall_offsets(start: time, end: time) -> _Span:
    """Microseconds after local midnight of the start date: (start, end), end past midnight."""
    a = (start.hour * 3600 + start.minute * 60 + start.second) * _US + start.microsecond
    b = (end.hour * 3600 + end.minute * 60 + end.second) * _US + end.microsecond
    return (a, b + _DAY) if b <= a else (a, b)


def _merge(spans: list[_Span]) -> tuple[_Span, ...]:
    """Sorted union of half-open spans; touching spans become one."""
    spans.sort()
    merged: list[_Span] = []
    for s, e in spans:
        if merged and s <= merged[-1][1]:
            if e > merged[-1][1]:
                merged[-1] = (merged[-1][0], e)
        else:
            merged.append((s, e))
    return tuple(merged)


def _to_us(instant: datetime) -> int:
    if instant.tzinfo is None:
        raise ValueError(f"naive datetime {instant.isoformat()}: pass an aware datetime")
    return (instant - _EPOCH) // _ONE_US


def _from_us(us: int) -> datetime:
    return _EPOCH + timedelta(0, 0, us)  # positional: measurably faster than keywords


class _Cache:
    """Mutable memo held by a frozen calendar: derived tables and per-day results."""

    __slots__ = ("dates", "days", "half_days", "holidays", "weekly")

    def __init__(self) -> None:
        self.weekly: tuple[tuple[_Span, ...], ...] = ((),) * 7
        self.half_days: dict[date, tuple[_Span, ...]] = {}
        self.dates: dict[date, tuple[_Span, ...]] = {}
        # UTC day number -> (merged spans clipped to that day, their total length).
        self.days: dict[int, tuple[tuple[_Span, ...], int]] = {}
        self.holidays: dict[int, holidays.HolidayBase] = {}


@dataclass(frozen=True, kw_only=True)
class WeeklyCalendar:
    """A time zone, weekly open intervals, holidays, closed and half days; or `always` open."""

    name: str
    timezone: ZoneInfo
    intervals: tuple[WeeklyInterval, ...]
    always: bool = False
    # Closed on public holidays only when a country is listed (holidays package codes).
    holidays_country: str | None = None
    holidays_subdivision: str | None = None
    closed_dates: frozenset[date] = frozenset()
    # Replace the weekly hours of their dates; several entries per date are fine.
    half_days: tuple[DatedInterval, ...] = ()
    weekend_days: frozenset[int] = frozenset({5, 6})
    # init=False: dataclasses.replace() must build a fresh cache, not share a stale one.
    _cache: _Cache = field(
        default_factory=_Cache, init=False, compare=False, repr=False, hash=False
    )

    def __post_init__(self) -> None:
        # Callers may pass plain sets; frozensets keep the calendar hashable.
        object.__setattr__(self, "closed_dates", frozenset(self.closed_dates))
        object.__setattr__(self, "weekend_days", frozenset(self.weekend_days))
        weekly: list[list[_Span]] = [[] for _ in range(7)]
        for interval in self.intervals:
            weekly[interval.weekday].append(_wall_offsets(interval.start, interval.end))
        self._cache.weekly = tuple(tuple(sorted(day)) for day in weekly)
        special: dict[date, list[_Span]] = {}
        for half in self.half_days:
            special.setdefault(half.day, []).append(_wall_offsets(half.start, half.end))
        self._cache.half_days = {day: tuple(sorted(spans)) for day, spans in special.items()}

    # -- public operations -------------------------------------------------------------

    # The three hot paths below read the day cache inline and avoid max()/min() calls:
    # that is about half of their cost in CPython.

    def is_open(self, instant: datetime) -> bool:
        """True if `instant` (aware) falls inside an open interval, [start, end)."""
        t = _to_us(instant)
        if self.always:
            return True
        k = t // _DAY
        for a, b in (self._cache.days.get(k) or self._day(k))[0]:
            if t < b:
                return a <= t
        return False

    def covered_seconds(self, start: datetime, end: datetime) -> float:
        """Real seconds of [start, end) that lie in open time; 0 if end <= start."""
        s, e = _to_us(start), _to_us(end)
        if e <= s:
            return 0.0
        if self.always:
            return (e - s) / _US
        days = self._cache.days
        first, last = s // _DAY, (e - 1) // _DAY
        total = 0
        for k in range(first, last + 1):
            spans, day_total = days.get(k) or self._day(k)
            if first < k < last:
                total += day_total
                continue
            for a, b in spans:
                if a < s:
                    a = s
                if b > e:
                    b = e
                if a < b:
                    total += b - a
        return total / _US

    def add_covered(self, start: datetime, seconds: float) -> datetime:
        """The earliest instant at which covered time since `start` reaches `seconds` (UTC)."""
        if not 0 <= seconds < math.inf:  # also rejects NaN
            raise ValueError(f"covered seconds must be finite and >= 0, got {seconds}")
        s = _to_us(start)
        need = round(seconds * _US)
        if need == 0:
            return start.astimezone(UTC)
        if self.always:
            return _from_us(s + need)
        days = self._cache.days
        k = s // _DAY
        closed_days = 0
        while True:
            spans, day_total = days.get(k) or self._day(k)
            if spans and spans[-1][1] > s:
                closed_days = 0
                if spans[0][0] >= s and day_total < need:
                    need -= day_total  # the whole day counts: skip its spans
                else:
                    for a, b in spans:
                        if b <= s:
                            continue
                        if a < s:
                            a = s
                        if b - a >= need:
                            return _from_us(a + need)
                        need -= b - a
            else:
                closed_days += 1
                if closed_days > _HORIZON_DAYS:
                    raise ValueError(
                        f"calendar {self.name!r} has no open time within {_HORIZON_DAYS}"
                        f" days, searching from {start.isoformat()}"
                    )
            k += 1

    def next_open(self, instant: datetime) -> datetime | None:
        """The first open instant at or after `instant` (UTC); None if it never opens."""
        t = _to_us(instant)
        if self.always:
            return _from_us(t)
        k = t // _DAY
        for i in range(_HORIZON_DAYS + 1):
            for a, b in self._day(k + i)[0]:
                if b > t:
                    return _from_us(max(a, t))
        return None

    def next_close(self, instant: datetime) -> datetime | None:
        """The first closed instant at or after `instant` (UTC); None if it never closes."""
        t = _to_us(instant)
        if self.always:
            return None
        k = t // _DAY
        for i in range(_HORIZON_DAYS + 1):
            for a, b in self._day(k + i)[0]:
                if b <= t:
                    continue
                if a > t:
                    return _from_us(t)
                t = b  # open until b; a span of the next UTC day may start exactly there
            if t < (k + i + 1) * _DAY:
                return _from_us(t)
        return None

    def holiday_name(self, instant: datetime) -> str | None:
        """The public holiday on the local date of `instant`, if the calendar lists a country."""
        if self.holidays_country is None:
            return None
        return self._holiday(instant.astimezone(self.timezone).date())

    def is_weekend(self, instant: datetime, weekend_days: frozenset[int] | None = None) -> bool:
        """True if the local weekday of `instant` is a weekend day (default: the calendar's)."""
        days = self.weekend_days if weekend_days is None else weekend_days
        return instant.astimezone(self.timezone).weekday() in days

    # -- cached building blocks --------------------------------------------------------

    def _holiday(self, day: date) -> str | None:
        cache = self._cache.holidays
        table = cache.get(day.year)
        if table is None:
            assert self.holidays_country is not None
            table = holidays.country_holidays(
                self.holidays_country, subdiv=self.holidays_subdivision, years=day.year
            )
            cache[day.year] = table
        name = table.get(day)
        return None if name is None else str(name)

    def _wall_intervals(self, day: date) -> tuple[_Span, ...]:
        """The intervals that start on local `day`, as wall offsets from its midnight."""
        if day in self.closed_dates:
            return ()
        special = self._cache.half_days.get(day)
        if special is not None:
            return special
        if self.holidays_country is not None and self._holiday(day) is not None:
            return ()
        return self._cache.weekly[day.weekday()]

    def _offset(self, second: int) -> int:
        """UTC offset in microseconds at a UTC instant given in whole seconds."""
        offset = datetime.fromtimestamp(second, self.timezone).utcoffset()
        assert offset is not None
        return offset // _ONE_US

    def _pieces(self, lo: int, hi: int) -> list[tuple[int, int, int]]:
        """Constant-offset pieces (start, end, offset) covering UTC [lo, hi), in microseconds."""
        # Zone transitions happen at whole seconds, so bisecting seconds finds them exactly.
        lo_s, hi_s = lo // _US, hi // _US
        pieces: list[tuple[int, int, int]] = []
        piece_start, current = lo_s, self._offset(lo_s)
        t = lo_s
        while t < hi_s:
            probe = min(t + _SAMPLE_SECONDS, hi_s)
            if self._offset(probe) == current:
                t = probe
                continue
            same, changed = t, probe
            while changed - same > 1:
                mid = (same + changed) // 2
                if self._offset(mid) == current:
                    same = mid
                else:
                    changed = mid
            pieces.append((piece_start * _US, changed * _US, current))
            piece_start, current, t = changed, self._offset(changed), changed
        pieces.append((piece_start * _US, hi_s * _US, current))
        return pieces

    def _date_spans(self, day: date) -> tuple[_Span, ...]:
        """UTC spans (merged) of the intervals that start on local `day`."""
        cache = self._cache.dates
        hit = cache.get(day)
        if hit is not None:
            return hit
        intervals = self._wall_intervals(day)
        spans: list[_Span] = []
        if intervals:
            # Wall microseconds of local midnight, as if the wall clock were UTC.
            base = (day.toordinal() - _EPOCH_ORDINAL) * _DAY
            # Wall times lie in [base, base + 2 days); |offset| < 1 day bounds their instants.
            for lo, hi, offset in self._pieces(base - _DAY, base + 3 * _DAY):
                for a, b in intervals:
                    # The instants of this piece whose wall time (utc + offset) is in [a, b).
                    s, e = max(lo, base + a - offset), min(hi, base + b - offset)
                    if s < e:
                        spans.append((s, e))
        result = _merge(spans)
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[day] = result
        return result

    def _day(self, k: int) -> tuple[tuple[_Span, ...], int]:
        """Merged open spans within UTC day number `k`, and their total length."""
        cache = self._cache.days
        hit = cache.get(k)
        if hit is not None:
            return hit
        lo, hi = k * _DAY, (k + 1) * _DAY
        # Spans of local date D lie within UTC (D - 1 day, D + 3 days): D in k-2 .. k+1.
        utc_date = date.fromordinal(_EPOCH_ORDINAL + k)
        spans: list[_Span] = []
        for i in (-2, -1, 0, 1):
            for a, b in self._date_spans(utc_date + timedelta(days=i)):
                a, b = max(a, lo), min(b, hi)
                if a < b:
                    spans.append((a, b))
        merged = _merge(spans)
        result = (merged, sum(b - a for a, b in merged))
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[k] = result
        return result


ALWAYS = WeeklyCalendar(name="always", timezone=ZoneInfo("UTC"), intervals=(), always=True)


def utc(dt: datetime) -> datetime:
    """Normalise an aware datetime to UTC."""
    return dt.astimezone(UTC)


def _resolve_holidays(
    country: str | None, subdivision: str | None
) -> tuple[str | None, str | None]:
    """Canonical (country, subdivision) codes for the holidays package, or ValueError."""
    if country is None:
        if subdivision is not None:
            raise ValueError("holidays_subdivision needs holidays_country as well")
        return None, None
    supported = holidays.list_supported_countries()
    code = country.strip().upper()
    if code not in supported:
        raise ValueError(
            f"holidays_country {country!r} is not supported by the holidays package;"
            " use an ISO 3166-1 alpha-2 code such as NL, BE, DE or GB"
        )
    if subdivision is None:
        return code, None
    known = supported[code]
    wanted = subdivision.strip()
    for candidate in (wanted, wanted.upper()):
        try:
            holidays.country_holidays(code, subdiv=candidate)
        except NotImplementedError:
            continue
        return code, candidate
    listed = ", ".join(known) if known else "none"
    raise ValueError(
        f"holidays_subdivision {subdivision!r} is not known for {code}; supported: {listed}"
    )


def check_holidays(country: str | None, subdivision: str | None) -> None:
    """Raise ValueError unless the holidays package knows the country and subdivision."""
    _resolve_holidays(country, subdivision)


def build_calendar(
    name: str,
    *,
    timezone: str,
    hours: Sequence[str],
    holidays_country: str | None = None,
    holidays_subdivision: str | None = None,
    closed_dates: Iterable[date] = (),
    half_days: Mapping[date, str | Sequence[str]] | None = None,
    weekend_days: Sequence[str] = ("sat", "sun"),
) -> WeeklyCalendar:
    """Build a calendar from validated settings (raises ValueError on bad ones)."""
    intervals = [i for spec in hours for i in parse_hours(spec)]
    country, subdivision = _resolve_holidays(holidays_country, holidays_subdivision)
    dated: list[DatedInterval] = []
    for day, specs in sorted((half_days or {}).items()):
        for spec in [specs] if isinstance(specs, str) else specs:
            start, end = parse_day_hours(spec, f"half day {day.isoformat()}")
            dated.append(DatedInterval(day=day, start=start, end=end))
    weekend: set[int] = set()
    for day_name in weekend_days:
        key = day_name.strip().lower()
        if key not in WEEKDAYS:
            raise ValueError(f"unknown weekday {day_name!r}; use {', '.join(WEEKDAYS)}")
        weekend.add(WEEKDAYS.index(key))
    return WeeklyCalendar(
        name=name,
        timezone=ZoneInfo(timezone),
        intervals=tuple(intervals),
        holidays_country=country,
        holidays_subdivision=subdivision,
        closed_dates=frozenset(closed_dates),
        half_days=tuple(dated),
        weekend_days=frozenset(weekend),
    )
