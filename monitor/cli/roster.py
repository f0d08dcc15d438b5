"""`webcare-monitor roster`: who is on duty at an instant, per source, and the next gap."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import aiohttp

from monitor.alerts.models import Duty
from monitor.alerts.roster import Roster
from monitor.cli.common import load_or_exit
from monitor.config.alerts import RosterConfig
from monitor.report import parse_instant

if TYPE_CHECKING:
    from monitor.alerts.ics import IcsShift
    from monitor.cli.common import SubParsers

LOOK_AHEAD = timedelta(days=7)
ICS_TIMEOUT = 30.0


def _local(moment: datetime, roster: Roster) -> str:
    # With the offset: a wall time of the repeated autumn hour is ambiguous without it.
    return moment.astimezone(roster.timezone).isoformat(timespec="minutes")


def _duty_line(duty: Duty | None, lead: str | None) -> str:
    if duty is None:
        return f"nobody on duty (lead: {lead or '-'})"
    return f"student {duty.student}, backup {duty.backup or '-'}, lead {duty.lead or '-'}"


def _gap_line(gap: tuple[datetime, datetime] | None, at: datetime, roster: Roster) -> str:
    if gap is None:
        return f"no gap in the next {LOOK_AHEAD.days} days"
    start, end = gap
    until = (
        f"beyond the {LOOK_AHEAD.days}-day look-ahead"
        if end >= at + LOOK_AHEAD
        else _local(end, roster)
    )
    if start <= at:
        return f"gap now, until {until}"
    return f"next gap: {_local(start, roster)} to {until}"


async def _ics_events(config: RosterConfig, at: datetime) -> list[IcsShift]:
    """The .ics events around `at`; none (with a warning) when the .ics cannot be read."""
    # Imported here: icalendar is only needed when a roster names an .ics.
    from monitor.alerts.ics import IcsError, describe_source, load_ics

    assert config.ics is not None
    async with aiohttp.ClientSession() as session:
        try:
            return await load_ics(config.ics, session, timeout=ICS_TIMEOUT, now=at)
        except IcsError as err:
            print(
                f"webcare-monitor roster: warning: .ics {describe_source(config.ics)} "
                f"not used: {err}",
                file=sys.stderr,
            )
            return []


def cmd_roster(args: argparse.Namespace) -> int:
    """`roster -c CONFIG [--at ISO] [--brand B] [--source S]`: print who is on duty."""
    config = load_or_exit(args.config)
    try:
        # A time without an offset is the roster's wall clock, as the team reads it.
        zone = ZoneInfo(config.roster.timezone)
        at = parse_instant(args.at, zone) if args.at else datetime.now(UTC)
    except ValueError as err:
        print(f"webcare-monitor roster: error: {err}", file=sys.stderr)
        return 2
    sources = [(s.name, s.brand) for s in config.sources]
    if args.source is not None:
        sources = [(n, b) for n, b in sources if n == args.source]
        if not sources:
            known = ", ".join(s.name for s in config.sources)
            print(
                f"webcare-monitor roster: error: unknown source {args.source!r} "
                f"(configured: {known})",
                file=sys.stderr,
            )
            return 2
    if args.brand is not None:
        sources = [(n, b) for n, b in sources if b == args.brand]
        if not sources:
            print(
                f"webcare-monitor roster: error: no configured source of brand {args.brand!r}"
                + (f" named {args.source!r}" if args.source else ""),
                file=sys.stderr,
            )
            return 2
    events: list[IcsShift] = []
    if config.roster.ics is not None:
        events = asyncio.run(_ics_events(config.roster, at))
    roster = Roster.from_config(config.roster, ics_events=events)
    print(
        f"On duty at {_local(at, roster)} ({config.roster.timezone}; "
        f"{at.astimezone(UTC).isoformat(timespec='seconds')}):"
    )
    for name, brand in sources:
        duty = roster.on_duty(at, brand=brand, source=name)
        gaps = roster.gaps(at, at + LOOK_AHEAD, brand=brand, source=name)
        print(f"  {name} [{brand}]: {_duty_line(duty, roster.lead)}")
        print(f"    {_gap_line(gaps[0] if gaps else None, at, roster)}")
    return 0


def add_parser(subparsers: SubParsers) -> None:
    """Register the `roster` subcommand."""
    roster = subparsers.add_parser(
        "roster",
        help="who is on duty at an instant, and the next roster gap",
        description=(
            "Who is on duty (student, backup, lead) per configured source at an instant, and "
            f"the next stretch within {LOOK_AHEAD.days} days with nobody on duty. "
            "A time without an offset is UTC."
        ),
    )
    roster.add_argument("-c", "--config", required=True, help="TOML config file")
    roster.add_argument(
        "--at", default=None, help="ISO 8601; without an offset: the roster's time (default: now)"
    )
    roster.add_argument("--brand", default=None, help="only the sources of this brand")
    roster.add_argument("--source", default=None, help="only this source")
    roster.set_defaults(func=cmd_roster)
