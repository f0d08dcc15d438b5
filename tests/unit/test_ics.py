"""The .ics roster: a Google-style export parsed and expanded, served over real loopback HTTP."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from monitor.alerts.ics import IcsError, IcsRoster, IcsShift, describe_source, load_ics, parse_ics
from monitor.alerts.models import Duty
from monitor.alerts.roster import Roster
from monitor.clock import FakeClock
from monitor.config.alerts import RosterConfig
from monitor.logging import configure_logging

ServerFactory = Callable[..., Awaitable[TestServer]]
AMS = ZoneInfo("Europe/Amsterdam")
NOW = datetime(2026, 3, 25, 12, 0, tzinfo=UTC)

# Shaped like Google Calendar's "Export" / secret iCal address: CRLF lines, a VTIMEZONE block,
# TZID on every timed DTSTART, folded long lines, escaped newlines in DESCRIPTION.
GOOGLE_ICS = """\
BEGIN:VCALENDAR
PRODID:-//Google Inc//Google Calendar 70.9054//EN
VERSION:2.0
CALSCALE:GREGORIAN
METHOD:PUBLISH
X-WR-CALNAME:Webcare rooster
X-WR-TIMEZONE:Europe/Amsterdam
BEGIN:VTIMEZONE
TZID:Europe/Amsterdam
X-LIC-LOCATION:Europe/Amsterdam
BEGIN:DAYLIGHT
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
TZNAME:CEST
DTSTART:19700329T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
TZNAME:CET
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
END:VTIMEZONE
BEGIN:VEVENT
DTSTART;TZID=Europe/Amsterdam:20260103T220000
DTEND;TZID=Europe/Amsterdam:20260104T060000
RRULE:FREQ=WEEKLY;BYDAY=SA
EXDATE;TZID=Europe/Amsterdam:20260404T220000
DTSTAMP:20260301T120000Z
UID:6k0q2b8h9v1c3d4e5f6g7h8i9j@google.com
CREATED:20251215T101500Z
DESCRIPTION:Nachtdienst webcare. Bij twijfel eerst de backup bellen.\\nbacku
 p: Omar\\nlead: Lea
LAST-MODIFIED:20260301T120000Z
SEQUENCE:2
STATUS:CONFIRMED
SUMMARY:Nina
CATEGORIES:acme,globex
TRANSP:OPAQUE
END:VEVENT
BEGIN:VEVENT
DTSTART;VALUE=DATE:20260330
DTEND;VALUE=DATE:20260331
DTSTAMP:20260301T120000Z
UID:0a1b2c3d4e5f@google.com
DESCRIPTION:<b>Ruil</b> met Nina<br>lead: Lars
SUMMARY:Piet
TRANSP:TRANSPARENT
END:VEVENT
BEGIN:VEVENT
DTSTART:20260331T150000Z
DTEND:20260331T170000Z
DTSTAMP:20260301T120000Z
UID:utc-event@google.com
SUMMARY:Sam
X-WEBCARE-BACKUP:Bo
X-WEBCARE-LEAD:Lea
DESCRIPTION:backup: ignored because the X- property wins
END:VEVENT
BEGIN:VEVENT
DTSTART;TZID=Europe/Amsterdam:20260401T170000
DTEND;TZID=Europe/Amsterdam:20260401T230000
DTSTAMP:20260301T120000Z
UID:cancelled@google.com
STATUS:CANCELLED
SUMMARY:Kim
END:VEVENT
BEGIN:VEVENT
DTSTART;TZID=Europe/Amsterdam:20260402T170000
DTEND;TZID=Europe/Amsterdam:20260402T230000
DTSTAMP:20260301T120000Z
UID:nobody@google.com
SUMMARY:
END:VEVENT
END:VCALENDAR
""".replace("\n", "\r\n")

# Outlook names its zones the Windows way and defines them in VTIMEZONE; no X-WR-TIMEZONE,
# so a time without TZID stays floating (the roster's zone).
OUTLOOK_ICS = """\
BEGIN:VCALENDAR
PRODID:-//Microsoft Corporation//Outlook 16.0 MIMEDIR//EN
VERSION:2.0
METHOD:PUBLISH
BEGIN:VTIMEZONE
TZID:W. Europe Standard Time
BEGIN:STANDARD
DTSTART:16011028T030000
RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:16010325T020000
RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
END:DAYLIGHT
END:VTIMEZONE
BEGIN:VEVENT
DTSTART;TZID=W. Europe Standard Time:20261024T220000
DTEND;TZID=W. Europe Standard Time:20261025T060000
SUMMARY:Nina
UID:040000008200E00074C5B7101A82E00800000000
END:VEVENT
BEGIN:VEVENT
DTSTART:20261026T170000
DTEND:20261026T230000
SUMMARY:Floor
UID:floating-1
END:VEVENT
END:VCALENDAR
""".replace("\n", "\r\n")


def by_start(shifts: list[IcsShift]) -> dict[datetime, IcsShift]:
    return {s.start: s for s in shifts}


# --- parsing and expansion --------------------------------------------------------------------


def test_weekly_rrule_is_expanded_around_now_with_the_exdate_left_out() -> None:
    shifts = parse_ics(GOOGLE_ICS, now=NOW, past=timedelta(days=7), ahead=timedelta(days=21))
    nights = [s for s in shifts if s.student == "Nina"]
    starts = [s.start for s in nights]
    # Saturdays 21 Mar .. 11 Apr at 22:00 local; 4 April is the EXDATE.
    assert starts == [
        datetime(2026, 3, 21, 21, 0, tzinfo=UTC),
        datetime(2026, 3, 28, 21, 0, tzinfo=UTC),
        datetime(2026, 4, 11, 20, 0, tzinfo=UTC),
    ]
    first = nights[0]
    assert (first.backup, first.lead, first.brands) == ("Omar", "Lea", ("acme", "globex"))
    assert first.uid == "6k0q2b8h9v1c3d4e5f6g7h8i9j@google.com"


def test_the_dst_night_lasts_seven_real_hours() -> None:
    nights = by_start(parse_ics(GOOGLE_ICS, now=NOW))
    spring = nights[datetime(2026, 3, 28, 21, 0, tzinfo=UTC)]
    assert spring.end == datetime(2026, 3, 29, 4, 0, tzinfo=UTC)  # 06:00 CEST
    autumn = by_start(parse_ics(GOOGLE_ICS, now=datetime(2026, 10, 20, tzinfo=UTC)))
    night = autumn[datetime(2026, 10, 24, 20, 0, tzinfo=UTC)]  # 22:00 CEST
    assert night.end - night.start == timedelta(hours=9)


def test_all_day_utc_cancelled_and_nameless_events() -> None:
    shifts = parse_ics(GOOGLE_ICS, now=NOW)
    named = {s.student: s for s in shifts if s.student != "Nina"}
    assert set(named) == {"Piet", "Sam"}  # Kim is cancelled, the last one names nobody
    # An all-day date is a floating local day: the roster reads it in its own zone.
    assert (named["Piet"].start, named["Piet"].end) == (
        datetime(2026, 3, 30),
        datetime(2026, 3, 31),
    )
    assert (named["Piet"].lead, named["Piet"].backup) == ("Lars", None)  # HTML description
    assert named["Piet"].brands == ("*",)
    sam = named["Sam"]
    assert (sam.start, sam.end) == (
        datetime(2026, 3, 31, 15, tzinfo=UTC),
        datetime(2026, 3, 31, 17, tzinfo=UTC),
    )
    assert (sam.backup, sam.lead) == ("Bo", "Lea")


def test_outlook_windows_zone_names_and_floating_times() -> None:
    shifts = by_start(parse_ics(OUTLOOK_ICS.encode(), now=datetime(2026, 10, 20, tzinfo=UTC)))
    night = shifts[datetime(2026, 10, 24, 20, 0, tzinfo=UTC)]
    assert night.end == datetime(2026, 10, 25, 5, 0, tzinfo=UTC)
    floating = shifts[datetime(2026, 10, 26, 17, 0)]
    assert floating.end == datetime(2026, 10, 26, 23, 0) and floating.end.tzinfo is None


def test_events_outside_the_window_are_left_out() -> None:
    later = parse_ics(OUTLOOK_ICS, now=datetime(2027, 1, 1, tzinfo=UTC))
    assert later == []


@pytest.mark.parametrize(
    "text", ["", "garbage", "BEGIN:VEVENT\r\nSUMMARY:x\r\nEND:VEVENT\r\n", "<html>login</html>"]
)
def test_not_an_icalendar_file(text: str) -> None:
    with pytest.raises(IcsError, match="not an iCalendar file"):
        parse_ics(text, now=NOW)


def test_the_roster_uses_ics_events_across_the_dst_night() -> None:
    config = RosterConfig.model_validate(
        {"shifts": [{"when": "sat-sun 00:00-00:00", "student": "weekend"}]}
    )
    roster = Roster.from_config(config, ics_events=parse_ics(GOOGLE_ICS, now=NOW))
    # 02:30 does not exist on 29 March; 01:30 UTC is 03:30 CEST, inside Nina's night.
    at = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert roster.on_duty(at, brand="acme", source="fb") == Duty(
        student="Nina", backup="Omar", lead="Lea"
    )
    # Her categories are acme and globex: another brand keeps the weekly shift.
    other = roster.on_duty(at, brand="initech", source="forum")
    assert other is not None and other.student == "weekend"
    after = datetime(2026, 3, 29, 4, 0, tzinfo=UTC)  # 06:00 CEST
    assert roster.on_duty(after, brand="acme", source="fb") == Duty(student="weekend")
    # Piet's all-day event is the local Monday 30 March.
    monday = datetime(2026, 3, 30, 0, 0, tzinfo=AMS)
    assert roster.gaps(monday, monday + timedelta(days=1), brand="acme", source="fb") == []
    assert roster.gaps(
        monday + timedelta(days=1), monday + timedelta(days=1, hours=1), brand="acme", source="fb"
    ) == [(datetime(2026, 3, 30, 22, 0, tzinfo=UTC), datetime(2026, 3, 30, 23, 0, tzinfo=UTC))]


def test_describe_source_hides_the_secret_path() -> None:
    url = "https://calendar.google.com/calendar/ical/team%40x.nl/private-abc123/basic.ics"
    assert describe_source(url) == "https://calendar.google.com/…"
    assert "abc123" not in describe_source("webcal://cal.example/private-abc123/x.ics")
    assert describe_source("/etc/roster.ics") == "/etc/roster.ics"


# --- reading files and URLs -------------------------------------------------------------------


async def test_load_from_a_file_path(tmp_path: Path) -> None:
    path = tmp_path / "roster.ics"
    path.write_text(GOOGLE_ICS, encoding="utf-8", newline="")
    async with aiohttp.ClientSession() as session:
        shifts = await load_ics(str(path), session, timeout=5, now=NOW)
        assert {s.student for s in shifts} == {"Nina", "Piet", "Sam"}
        with pytest.raises(IcsError, match="cannot read"):
            await load_ics(str(tmp_path / "missing.ics"), session, timeout=5, now=NOW)


class CalendarServer:
    """A calendar host on 127.0.0.1 that can be told to fail or hang."""

    def __init__(self) -> None:
        self.body = GOOGLE_ICS.encode()
        self.status = 200
        self.hang = False
        self.requests = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.hang:
            await asyncio.sleep(30)
        if self.status != 200:
            return web.Response(status=self.status, text="Service Unavailable")
        return web.Response(body=self.body, content_type="text/calendar", charset="utf-8")


@pytest.fixture
async def calendar_host(aiohttp_server: ServerFactory) -> tuple[CalendarServer, str]:
    host = CalendarServer()
    app = web.Application()
    app.router.add_get("/calendar/ical/private-s3cret/basic.ics", host.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    return host, str(server.make_url("/calendar/ical/private-s3cret/basic.ics"))


async def test_load_from_a_url_and_http_errors(calendar_host: tuple[CalendarServer, str]) -> None:
    host, url = calendar_host
    async with aiohttp.ClientSession() as session:
        shifts = await load_ics(url, session, timeout=5, now=NOW)
        assert len([s for s in shifts if s.student == "Nina"]) == 5  # 21 Mar .. 25 Apr, less 4 Apr
        host.status = 404
        with pytest.raises(IcsError, match="HTTP 404") as caught:
            await load_ics(url, session, timeout=5, now=NOW)
        assert "s3cret" not in str(caught.value)
        host.status, host.hang = 200, True
        with pytest.raises(IcsError, match="cannot fetch"):
            await load_ics(url, session, timeout=0.2, now=NOW)


async def test_failing_refresh_keeps_the_old_events_and_logs_once(
    calendar_host: tuple[CalendarServer, str],
) -> None:
    host, url = calendar_host
    logs = io.StringIO()
    configure_logging(level="debug", fmt="json", stream=logs)
    results: list[bool] = []
    async with aiohttp.ClientSession() as session:
        ics = IcsRoster(url, session, timeout=5, on_refresh=results.append)
        assert await ics.refresh(NOW)
        good = ics.events
        assert {s.student for s in good} == {"Nina", "Piet", "Sam"}
        assert ics.last_success == NOW

        host.status = 503
        assert not await ics.refresh(NOW + timedelta(minutes=15))
        host.body, host.status = b"<html>please log in</html>", 200
        assert not await ics.refresh(NOW + timedelta(minutes=30))
        assert ics.events == good and ics.failing
        assert ics.last_success == NOW

        host.body = GOOGLE_ICS.replace("SUMMARY:Sam", "SUMMARY:Sem").encode()
        assert await ics.refresh(NOW + timedelta(minutes=45))
        assert {s.student for s in ics.events} == {"Nina", "Piet", "Sem"}
        assert not ics.failing
    assert results == [True, False, False, True]
    lines = [orjson.loads(line) for line in logs.getvalue().splitlines()]
    warnings = [line for line in lines if "unreadable" in line["event"]]
    assert len(warnings) == 1
    assert warnings[0]["error"] == "HTTP 503 from http://127.0.0.1/…"
    ours = [line for line in lines if line.get("logger") == "monitor.alerts.ics"]
    assert "s3cret" not in repr(ours)  # the server's own access log is not ours to judge
    assert [line for line in ours if "readable again" in line["event"]]


async def test_a_long_outage_moves_the_window_over_the_last_good_text(
    calendar_host: tuple[CalendarServer, str],
) -> None:
    host, url = calendar_host
    async with aiohttp.ClientSession() as session:
        ics = IcsRoster(url, session, timeout=5, past=timedelta(days=1), ahead=timedelta(days=7))
        assert await ics.refresh(NOW)
        assert datetime(2026, 4, 18, 20, 0, tzinfo=UTC) not in by_start(list(ics.events))
        host.status = 500
        assert not await ics.refresh(NOW + timedelta(days=21))
        # Still the last good calendar, expanded around the new now.
        assert datetime(2026, 4, 18, 20, 0, tzinfo=UTC) in by_start(list(ics.events))


async def test_run_refreshes_every_interval_on_the_injected_clock(
    calendar_host: tuple[CalendarServer, str],
) -> None:
    host, url = calendar_host
    clock = FakeClock(NOW)
    async with aiohttp.ClientSession() as session:
        ics = IcsRoster(url, session, refresh_every=900)
        task = asyncio.create_task(ics.run(clock))
        try:
            for _ in range(200):
                if clock.pending_sleeps:
                    break
                await asyncio.sleep(0.01)
            assert host.requests == 1 and ics.events
            assert clock.pending_sleeps == [NOW + timedelta(seconds=900)]
            await clock.advance(899)
            assert host.requests == 1
            await clock.advance(1)
            for _ in range(200):
                if host.requests == 2 and clock.pending_sleeps:
                    break
                await asyncio.sleep(0.01)
            assert host.requests == 2
            assert ics.last_success == NOW + timedelta(seconds=900)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task


async def test_from_config() -> None:
    async with aiohttp.ClientSession() as session:
        assert IcsRoster.from_config(RosterConfig(), session) is None
        config = RosterConfig.model_validate({"ics": "/r.ics", "ics_refresh": "5m"})
        ics = IcsRoster.from_config(config, session)
        assert ics is not None and not ics.events and not ics.failing
