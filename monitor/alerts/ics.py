"""The team's .ics roster: read a file or URL, expand recurrences, keep the last good copy.

Each VEVENT occurrence is one shift: SUMMARY is the student; the backup and lead come from
``X-WEBCARE-BACKUP`` / ``X-WEBCARE-LEAD`` or from DESCRIPTION lines ``backup: name`` and
``lead: name``; CATEGORIES, when present, are the brands it is for (else every brand).
Times with a TZID (IANA names, or Outlook's Windows names through their VTIMEZONE) and UTC
times become instants; floating times and all-day dates stay local wall times that the roster
reads in its own time zone (Google's X-WR-TIMEZONE is applied first by recurring-ical-events).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import icalendar
import recurring_ical_events  # type: ignore[import-untyped]

from monitor.clock import Clock
from monitor.config.alerts import RosterConfig
from monitor.logging import get_logger

log = get_logger("monitor.alerts.ics")

# The expansion window around now: ongoing shifts that began a while ago, and enough ahead
# for the 7-day gap look-ahead with room to spare between refreshes.
DEFAULT_PAST = timedelta(days=7)
DEFAULT_AHEAD = timedelta(days=35)
# A team roster is kilobytes; these bound what a wrong URL or a runaway RRULE can cost.
MAX_BYTES = 10 * 1024 * 1024
MAX_OCCURRENCES = 20_000

_ROLE_LINE = re.compile(r"^\s*(backup|lead)\s*[:=]\s*(.*?)\s*$", re.IGNORECASE | re.MULTILINE)
_BREAK_TAG = re.compile(r"<br\s*/?>|</p>|</div>", re.IGNORECASE)
_ANY_TAG = re.compile(r"<[^>]+>")
# Any URL in an error text: the source in another spelling (re-encoded, redirected).
_ANY_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


class IcsError(Exception):
    """The .ics source could not be read or parsed."""


@dataclass(frozen=True, kw_only=True)
class IcsShift:
    """One occurrence of an .ics event: who is on duty from `start` to `end`."""

    student: str
    # Aware (UTC) instants, or naive: floating local wall times in the roster's time zone.
    start: datetime
    end: datetime
    backup: str | None = None
    lead: str | None = None
    brands: tuple[str, ...] = ("*",)
    uid: str | None = None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _description_roles(description: str | None) -> dict[str, str]:
    """`backup: name` and `lead: name` lines; Google may send the description as HTML."""
    if not description:
        return {}
    plain = _ANY_TAG.sub("", _BREAK_TAG.sub("\n", description))
    roles: dict[str, str] = {}
    for match in _ROLE_LINE.finditer(plain):
        name = match.group(2).strip()
        if name:
            roles.setdefault(match.group(1).lower(), name)
    return roles


def _brands(component: Any) -> tuple[str, ...]:
    raw = component.get("CATEGORIES")
    if raw is None:
        return ("*",)
    # One CATEGORIES property holds a list; an event may also carry several properties.
    properties = raw if isinstance(raw, list) else [raw]
    names: list[str] = []
    for prop in properties:
        for category in getattr(prop, "cats", [prop]):
            name = str(category).strip()
            if name and name not in names:
                names.append(name)
    return tuple(names) or ("*",)


def _moment(value: date | datetime) -> datetime:
    """An aware time as a UTC instant; a floating time or an all-day date as naive wall time."""
    if isinstance(value, datetime):
        return value if value.tzinfo is None else value.astimezone(UTC)
    return datetime.combine(value, time(0, 0))


def _shift(component: Any) -> IcsShift | None:
    """The shift one expanded occurrence describes, or None if it names nobody or no time."""
    student = _text(component.get("SUMMARY"))
    status = _text(component.get("STATUS"))
    if student is None or (status is not None and status.upper() == "CANCELLED"):
        return None
    try:
        start, end = _moment(component.start), _moment(component.end)
    except (KeyError, ValueError, TypeError, icalendar.IncompleteComponent):
        return None
    if (start.tzinfo is None) == (end.tzinfo is None) and end <= start:
        return None  # a zero-length event covers no instant
    roles = _description_roles(_text(component.get("DESCRIPTION")))
    return IcsShift(
        student=student,
        start=start,
        end=end,
        backup=_text(component.get("X-WEBCARE-BACKUP")) or roles.get("backup"),
        lead=_text(component.get("X-WEBCARE-LEAD")) or roles.get("lead"),
        brands=_brands(component),
        uid=_text(component.get("UID")),
    )


def parse_ics(
    data: bytes | str,
    *,
    now: datetime,
    past: timedelta = DEFAULT_PAST,
    ahead: timedelta = DEFAULT_AHEAD,
) -> list[IcsShift]:
    """The shifts of an iCalendar text that overlap [now - past, now + ahead], in start order."""
    try:
        calendar = icalendar.Calendar.from_ical(data)
    except (ValueError, IndexError, KeyError) as err:
        raise IcsError(f"not an iCalendar file: {err}") from err
    if calendar.name != "VCALENDAR":
        raise IcsError(f"not an iCalendar file: top component is {calendar.name}")
    # Whole local dates, with a day to spare: floating times and offsets shift by < 1 day.
    first = (now - past).date() - timedelta(days=1)
    last = (now + ahead).date() + timedelta(days=2)
    try:
        # skip_bad_series: one broken event must not take the whole roster down.
        query = recurring_ical_events.of(calendar, skip_bad_series=True)
        occurrences = query.between(first, last)
    except (ValueError, TypeError, KeyError) as err:
        raise IcsError(f"cannot expand the calendar's events: {err}") from err
    if len(occurrences) > MAX_OCCURRENCES:
        raise IcsError(f"{len(occurrences)} event occurrences in the window: too many")
    shifts = [shift for component in occurrences if (shift := _shift(component)) is not None]
    # Floating and UTC starts compare as written: close enough for a stable listing order.
    shifts.sort(key=lambda s: s.start.replace(tzinfo=None))
    return shifts


def describe_source(source: str) -> str:
    """The source as it may be logged: a URL loses its path, which is often a secret token."""
    if source.startswith(("http://", "https://", "webcal://")):
        scheme = source.partition("://")[0]
        try:
            host = urlsplit(source).hostname or ""
        except ValueError:  # an unparseable host ("[..."): say no more than the scheme
            host = ""
        return f"{scheme}://{host}/…"
    return source


async def fetch_ics(
    source: str,
    session: aiohttp.ClientSession,
    *,
    timeout: float,  # noqa: ASYNC109 - applies to the HTTP request or the file read
) -> bytes:
    """The raw bytes of an .ics file path or http(s)/webcal URL."""
    if source.startswith("webcal://"):
        # Calendar apps hand out webcal:// links; they are plain HTTPS underneath.
        source = "https://" + source.removeprefix("webcal://")
    if source.startswith(("http://", "https://")):
        try:
            async with session.get(
                source, timeout=aiohttp.ClientTimeout(total=timeout), allow_redirects=True
            ) as response:
                if response.status != 200:
                    raise IcsError(f"HTTP {response.status} from {describe_source(source)}")
                body = await response.content.read(MAX_BYTES + 1)
        except (aiohttp.ClientError, TimeoutError, ValueError) as err:
            # Some aiohttp errors quote the URL (or the one it redirected to), whose path or
            # query may hold the calendar's secret token: only scheme and host are kept.
            # ValueError: a URL that yarl cannot parse. `from None`: a traceback of the
            # cause would quote the URL again.
            text = _ANY_URL.sub(lambda m: describe_source(m[0]), str(err))
            text = text.replace(source, describe_source(source))
            reason = f"{type(err).__name__}: {text}" if text else type(err).__name__
            raise IcsError(f"cannot fetch {describe_source(source)}: {reason}") from None
    else:
        path = Path(source)
        try:
            # A thread: a slow disk or network mount must not stall the event loop.
            body = await asyncio.wait_for(asyncio.to_thread(path.read_bytes), timeout)
        except (OSError, TimeoutError) as err:
            raise IcsError(f"cannot read {source}: {err or type(err).__name__}") from err
    if len(body) > MAX_BYTES:
        raise IcsError(f"{describe_source(source)} is larger than {MAX_BYTES} bytes")
    return body


async def load_ics(
    source: str,
    session: aiohttp.ClientSession,
    *,
    timeout: float,  # noqa: ASYNC109 - passed on to fetch_ics
    now: datetime,
    past: timedelta = DEFAULT_PAST,
    ahead: timedelta = DEFAULT_AHEAD,
) -> list[IcsShift]:
    """Read an .ics file or URL and expand its events around `now` (raises IcsError)."""
    data = await fetch_ics(source, session, timeout=timeout)
    # Parsing a big calendar is CPU work; a thread keeps the loop answering meanwhile.
    return await asyncio.to_thread(parse_ics, data, now=now, past=past, ahead=ahead)


class IcsRoster:
    """The .ics part of the roster: the last good events, re-read every `refresh_every` s."""

    def __init__(
        self,
        source: str,
        session: aiohttp.ClientSession,
        *,
        refresh_every: float = 900.0,
        timeout: float = 30.0,
        past: timedelta = DEFAULT_PAST,
        ahead: timedelta = DEFAULT_AHEAD,
        on_refresh: Callable[[bool], None] | None = None,
    ) -> None:
        self._source = source
        self._session = session
        self._refresh_every = refresh_every
        self._timeout = timeout
        self._past = past
        self._ahead = ahead
        self._on_refresh = on_refresh
        self._events: tuple[IcsShift, ...] = ()
        self._last_good: bytes | None = None
        self._failing = False
        self.last_success: datetime | None = None

    @classmethod
    def from_config(
        cls,
        config: RosterConfig,
        session: aiohttp.ClientSession,
        *,
        on_refresh: Callable[[bool], None] | None = None,
    ) -> IcsRoster | None:
        """The .ics holder the roster config asks for; None when it names no .ics."""
        if config.ics is None:
            return None
        return cls(config.ics, session, refresh_every=config.ics_refresh, on_refresh=on_refresh)

    @property
    def events(self) -> tuple[IcsShift, ...]:
        """The current events (the last good read, expanded around the last refresh)."""
        return self._events

    @property
    def failing(self) -> bool:
        """True while the latest refresh failed."""
        return self._failing

    async def refresh(self, now: datetime) -> bool:
        """Re-read the source; on failure keep the last good events. True on success."""
        try:
            data = await fetch_ics(self._source, self._session, timeout=self._timeout)
            events = await asyncio.to_thread(
                parse_ics, data, now=now, past=self._past, ahead=self._ahead
            )
        except IcsError as err:
            if self._last_good is not None:
                # The last good text, re-expanded around now, so a long outage does not
                # run off the end of the old expansion window.
                self._events = tuple(
                    await asyncio.to_thread(
                        parse_ics, self._last_good, now=now, past=self._past, ahead=self._ahead
                    )
                )
            if not self._failing:
                log.warning(
                    "roster .ics unreadable, keeping the last good events",
                    source=describe_source(self._source),
                    error=str(err),
                    events=len(self._events),
                )
            self._failing = True
            self._report(False)
            return False
        if self._failing:
            log.info(
                "roster .ics readable again",
                source=describe_source(self._source),
                events=len(events),
            )
        self._failing = False
        self._last_good = data
        self._events = tuple(events)
        self.last_success = now
        self._report(True)
        return True

    def _report(self, ok: bool) -> None:
        if self._on_refresh is not None:
            self._on_refresh(ok)

    async def run(self, clock: Clock) -> None:
        """Refresh, then sleep `refresh_every` on `clock`, until cancelled."""
        while True:
            await self.refresh(clock.now())
            await clock.sleep(self._refresh_every)
