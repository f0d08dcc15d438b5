"""What the Mastodon and Bluesky source tests store through: office hours, a one-hour target."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from monitor.domain import Period, SourceRef
from monitor.pipeline import SourceSettings
from monitor.sla.calendar import ALWAYS, WeeklyCalendar, parse_hours
from monitor.sla.evaluate import SlaPolicy


def hour_target(name: str, platform: str) -> SourceSettings:
    """A source of brand acme: Amsterdam office hours, 1 h in and out of them, thread replies."""
    return SourceSettings(
        ref=SourceRef(name=name, brand="acme", platform=platform),
        policy=SlaPolicy(
            office=WeeklyCalendar(
                name="office",
                timezone=ZoneInfo("Europe/Amsterdam"),
                intervals=tuple(parse_hours("mon-fri 09:00-17:00")),
            ),
            coverage=ALWAYS,
            targets={Period.OFFICE_HOURS: 3600.0, Period.AFTER_HOURS: 3600.0},
            warn_at=0.75,
            reply_match="thread",
        ),
        ignore_authors=frozenset(),
        active_days=14,
    )
