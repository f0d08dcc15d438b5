"""Who is on duty: weekly shifts, dated overrides and .ics events, in local wall time.

Semantics (the same wall-time rules as monitor/sla/calendar.py, in the roster's time zone):

* A weekly shift "mon-fri 17:00-23:00" covers an instant when its local wall time lies in
  ``[D + 17:00, D + 23:00)`` for a listed weekday D; "fri 22:00-06:00" runs past midnight and
  belongs to the Friday it starts on. So across DST a night shift 22:00-06:00 lasts 7 h (spring
  forward) or 9 h (fall back), a shift starting in the spring-forward gap opens at the first
  instant that exists, and wall times of the repeated autumn hour count both times.
* A dated override covers ``date`` (the whole local day, or its ``hours``, past midnight when
  end <= start), or ``start``-``end``: naive datetimes are local wall times, ones with an offset
  are instants. Swaps are expressed as overrides: "on 2026-03-29 22:00-06:00 student-b" takes
  student-a's night.
* An .ics event covers ``[start, end)``: instants when aware, local wall times when floating
  (all-day events are floating local days).

Precedence when several entries cover an instant for a (brand, source):
1. a dated override or an .ics event beats every weekly shift;
2. then the most specific: an entry naming the source beats one naming the brand, which beats
   one for "*" (naming both is the most specific);
3. then a config override beats an .ics event (the operator's written exception);
4. then the occurrence that started last (a two-hour swap inside an all-day entry wins);
5. then the entry listed first.
The duty's lead is the first lead named along that order (an override without a lead keeps
the shift's lead), else ``RosterConfig.lead``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from monitor.alerts.models import Duty
from monitor.config.alerts import OverrideConfig, RosterConfig, ShiftConfig
from monitor.sla.calendar import (
    DatedInterval,
    WeeklyCalendar,
    WeeklyInterval,
    parse_day_hours,
    parse_hours,
)

if TYPE_CHECKING:
    from monitor.alerts.ics import IcsShift

_DAY = timedelta(days=1)
_EPSILON = timedelta(microseconds=1)
_MIDNIGHT = time(0, 0)

# Precedence rank of where an entry comes from (lower wins at equal specificity).
_OVERRIDE, _ICS, _SHIFT = 0, 1, 2

_Range = tuple[datetime, datetime]


def _dated_intervals(start: datetime, end: datetime) -> tuple[DatedInterval, ...]:
    """A naive wall-time range split into per-date intervals (end 00:00 = next midnight)."""
    pieces: list[DatedInterval] = []
    day = start.date()
    while True:
        midnight = datetime.combine(day, _MIDNIGHT)
        lo, hi = max(start, midnight), min(end, midnight + _DAY)
        if lo < hi:
            # An end at the next midnight is written 00:00: calendar.py reads end <= start as
            # "on the next day".
            end_time = _MIDNIGHT if hi == midnight + _DAY else hi.time()
            pieces.append(DatedInterval(day=day, start=lo.time(), end=end_time))
        if hi >= end:
            return tuple(pieces)
        day += _DAY


@dataclass(frozen=True, kw_only=True)
class _Entry:
    """One roster line, normalised: whom it is for, when it covers, and who is on duty."""

    duty: Duty
    brands: frozenset[str]
    sources: frozenset[str]
    origin: int  # _OVERRIDE, _ICS or _SHIFT
    order: int  # position in the config / .ics, for the last tie-break
    weekly: tuple[WeeklyInterval, ...] = ()
    walls: tuple[_Range, ...] = ()  # naive local wall-time ranges [start, end)
    instants: tuple[_Range, ...] = ()  # aware UTC ranges [start, end)
    # The wall-time parts as a calendar, so gaps() walks the exact spans calendar.py computes.
    calendar: WeeklyCalendar | None = field(default=None, compare=False, repr=False)

    def specificity(self, brand: str, source: str) -> int | None:
        """None if the entry is not for this (brand, source); else 3 (both named) .. 0 ("*")."""
        source_named = source in self.sources
        brand_named = brand in self.brands
        if not (source_named or "*" in self.sources) or not (brand_named or "*" in self.brands):
            return None
        return 2 * source_named + brand_named

    def covering_start(self, at: datetime, wall: datetime, tz: ZoneInfo) -> datetime | None:
        """Local wall start of the latest occurrence covering `at` (wall = its wall time)."""
        found: datetime | None = None
        if self.weekly:
            # Only occurrences that start on the wall date or the day before can reach it.
            for day in (wall.date() - _DAY, wall.date()):
                for interval in self.weekly:
                    if interval.weekday != day.weekday():
                        continue
                    start = datetime.combine(day, interval.start)
                    end_day = day + _DAY if interval.crosses_midnight else day
                    if start <= wall < datetime.combine(end_day, interval.end):
                        found = start if found is None else max(found, start)
        for start, end in self.walls:
            if start <= wall < end:
                found = start if found is None else max(found, start)
        for start, end in self.instants:
            if start <= at < end:
                local = start.astimezone(tz).replace(tzinfo=None)
                found = local if found is None else max(found, local)
        return found

    def spans(self, start: datetime, end: datetime) -> list[_Range]:
        """The UTC spans within [start, end) that this entry covers."""
        result = [(max(s, start), min(e, end)) for s, e in self.instants if s < end and e > start]
        calendar = self.calendar
        if calendar is None:
            return result
        if self.walls and not self.weekly:
            # Dated entries far from the window cannot reach it (offsets are < 1 day), and
            # skipping them avoids next_open's long search for a date that never comes.
            tz = calendar.timezone
            first = min(s for s, _ in self.walls) - _DAY
            last = max(e for _, e in self.walls) + _DAY
            window_start = start.astimezone(tz).replace(tzinfo=None)
            window_end = end.astimezone(tz).replace(tzinfo=None)
            if last <= window_start or first >= window_end:
                return result
        t = start
        while t < end:
            opened = calendar.next_open(t)
            if opened is None or opened >= end:
                break
            closed = calendar.next_close(opened)
            stop = end if closed is None else min(closed, end)
            result.append((opened, stop))
            t = stop
        return result


def _names(values: Iterable[str]) -> frozenset[str]:
    names = frozenset(v.strip() for v in values if v.strip())
    return names or frozenset({"*"})


def _shift_entry(shift: ShiftConfig, order: int, tz: ZoneInfo) -> _Entry:
    weekly = tuple(parse_hours(shift.when))
    return _Entry(
        duty=Duty(student=shift.student, backup=shift.backup, lead=shift.lead),
        brands=_names(shift.brands),
        sources=_names(shift.sources),
        origin=_SHIFT,
        order=order,
        weekly=weekly,
        calendar=WeeklyCalendar(name=f"roster.shifts[{order}]", timezone=tz, intervals=weekly),
    )


def _override_ranges(override: OverrideConfig, tz: ZoneInfo) -> tuple[list[_Range], list[_Range]]:
    """(wall ranges, UTC instant ranges) of a dated override."""
    if override.date is not None:
        day = override.date
        if override.hours is None:
            begin, finish = _MIDNIGHT, _MIDNIGHT
        else:
            begin, finish = parse_day_hours(override.hours, f"override on {day}")
        start = datetime.combine(day, begin)
        end = datetime.combine(day + _DAY if finish <= begin else day, finish)
        return [(start, end)], []
    assert override.start is not None and override.end is not None  # checked by the config
    start, end = override.start, override.end
    if start.tzinfo is None and end.tzinfo is None:
        return [(start, end)], []
    # One side with an offset: the naive side is read as the first instant of that wall time.
    if start.tzinfo is None:
        start = start.replace(tzinfo=tz)
    if end.tzinfo is None:
        end = end.replace(tzinfo=tz)
    return [], [(start.astimezone(UTC), end.astimezone(UTC))]


def _wall_calendar(name: str, walls: Sequence[_Range], tz: ZoneInfo) -> WeeklyCalendar | None:
    if not walls:
        return None
    dated = tuple(piece for s, e in walls for piece in _dated_intervals(s, e))
    return WeeklyCalendar(name=name, timezone=tz, intervals=(), half_days=dated)


def _override_entry(override: OverrideConfig, order: int, tz: ZoneInfo) -> _Entry:
    walls, instants = _override_ranges(override, tz)
    return _Entry(
        duty=Duty(student=override.student, backup=override.backup, lead=override.lead),
        brands=_names(override.brands),
        sources=_names(override.sources),
        origin=_OVERRIDE,
        order=order,
        walls=tuple(walls),
        instants=tuple(instants),
        calendar=_wall_calendar(f"roster.overrides[{order}]", walls, tz),
    )


def _ics_entry(event: IcsShift, order: int, tz: ZoneInfo) -> _Entry | None:
    start, end = event.start, event.end
    floating = start.tzinfo is None
    if floating != (end.tzinfo is None):
        # A mixed pair: read the floating side in the roster's zone.
        start = start if start.tzinfo else start.replace(tzinfo=tz)
        end = end if end.tzinfo else end.replace(tzinfo=tz)
        floating = False
    if end <= start:
        return None
    walls = [(start, end)] if floating else []
    instants = [] if floating else [(start.astimezone(UTC), end.astimezone(UTC))]
    return _Entry(
        duty=Duty(student=event.student, backup=event.backup, lead=event.lead),
        brands=_names(event.brands),
        sources=frozenset({"*"}),
        origin=_ICS,
        order=order,
        walls=tuple(walls),
        instants=tuple(instants),
        calendar=_wall_calendar(f"roster.ics[{order}]", walls, tz),
    )


def _aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value.isoformat()} for {what}: pass an aware one")
    return value


@dataclass(frozen=True, kw_only=True)
class Roster:
    """Who is on duty for a brand and source at an instant; swaps are dated overrides."""

    timezone: ZoneInfo
    lead: str | None  # RosterConfig.lead: told when nobody is on duty
    entries: tuple[_Entry, ...]

    @classmethod
    def from_config(cls, config: RosterConfig, *, ics_events: Iterable[IcsShift] = ()) -> Roster:
        """Build the roster from validated config and the current .ics events (no I/O)."""
        tz = ZoneInfo(config.timezone)
        entries: list[_Entry] = [
            _override_entry(override, n, tz) for n, override in enumerate(config.overrides)
        ]
        for n, event in enumerate(ics_events):
            entry = _ics_entry(event, n, tz)
            if entry is not None:
                entries.append(entry)
        entries.extend(_shift_entry(shift, n, tz) for n, shift in enumerate(config.shifts))
        return cls(timezone=tz, lead=config.lead, entries=tuple(entries))

    def _matches(self, at: datetime, *, brand: str, source: str) -> list[_Entry]:
        """Entries covering `at` for (brand, source), the winner first."""
        at = _aware(at, "the roster lookup").astimezone(UTC)
        wall = at.astimezone(self.timezone).replace(tzinfo=None)
        ranked: list[tuple[tuple[bool, int, int, datetime, int], _Entry]] = []
        for entry in self.entries:
            specificity = entry.specificity(brand, source)
            if specificity is None:
                continue
            started = entry.covering_start(at, wall, self.timezone)
            if started is None:
                continue
            key = (entry.origin != _SHIFT, specificity, -entry.origin, started, -entry.order)
            ranked.append((key, entry))
        ranked.sort(key=lambda pair: pair[0], reverse=True)
        return [entry for _, entry in ranked]

    def on_duty(self, at: datetime, *, brand: str, source: str) -> Duty | None:
        """Who is on duty at `at` for this brand and source; None in a roster gap."""
        matches = self._matches(at, brand=brand, source=source)
        if not matches:
            return None
        winner = matches[0].duty
        lead = next((e.duty.lead for e in matches if e.duty.lead is not None), self.lead)
        return Duty(student=winner.student, backup=winner.backup, lead=lead)

    def lead_for(self, at: datetime, *, brand: str, source: str) -> str | None:
        """The lead to tell at `at`: the on-duty entry's (or shift's) lead, else the roster's."""
        duty = self.on_duty(at, brand=brand, source=source)
        return self.lead if duty is None else duty.lead

    def changes(
        self, start: datetime, end: datetime, *, brand: str, source: str
    ) -> list[tuple[datetime, Duty]]:
        """Shift starts in (start, end): instants where someone new (or again) comes on duty.

        The duty can only change where a roster entry's span begins or ends, so those are the
        only instants checked; a change is a different student than just before (or the end
        of a gap), never the start of a gap.
        """
        start = _aware(start, "changes start").astimezone(UTC)
        end = _aware(end, "changes end").astimezone(UTC)
        boundaries: set[datetime] = set()
        for entry in self.entries:
            if entry.specificity(brand, source) is not None:
                for s, e in entry.spans(start, end):
                    boundaries.update((s, e))
        found: list[tuple[datetime, Duty]] = []
        for at in sorted(b for b in boundaries if start < b < end):
            after = self.on_duty(at, brand=brand, source=source)
            if after is None:
                continue
            before = self.on_duty(at - _EPSILON, brand=brand, source=source)
            if before is None or before.student != after.student:
                found.append((at, after))
        return found

    def gaps(
        self, start: datetime, end: datetime, *, brand: str, source: str
    ) -> list[tuple[datetime, datetime]]:
        """The stretches of [start, end) with nobody on duty, as UTC [from, to) pairs."""
        start = _aware(start, "gaps start").astimezone(UTC)
        end = _aware(end, "gaps end").astimezone(UTC)
        if end <= start:
            return []
        covered: list[_Range] = []
        for entry in self.entries:
            if entry.specificity(brand, source) is not None:
                covered.extend(entry.spans(start, end))
        covered.sort()
        result: list[_Range] = []
        t = start
        for s, e in covered:
            if s > t:
                result.append((t, s))
            t = max(t, e)
        if t < end:
            result.append((t, end))
        return result


def first_gap(
    roster: Roster, at: datetime, within: timedelta, *, brand: str, source: str
) -> tuple[datetime, datetime] | None:
    """The first roster gap in [at, at + within), if any."""
    found = roster.gaps(at, at + within, brand=brand, source=source)
    return found[0] if found else None
