"""Messenger's figures: the 24 h reply window and Meta's response rate and time, from the store.

Meta's definitions (Meta Business Help Center, "About responsiveness on Facebook Pages" and
"Response rate and response time"): a message counts when it is the first a person sends
after neither side wrote for 24 hours; the response rate is the share of those the Page
answered within 24 hours; the response time is the mean of the fastest 90% of those response
times; the "Very responsive" badge needs a rate of at least 90% and a time under 15 minutes
over the last 7 days. The reply windows are monitor.domain.reply_window's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from monitor.domain import SourceRef
from monitor.domain.reply_window import REPLY_WINDOW, Said, reply_windows
from monitor.store import Store
from monitor.store.windows import read_said

DAY = timedelta(hours=24)
WEEK = timedelta(days=7)
BADGE_RATE = 0.90
BADGE_SECONDS = 15 * 60.0


@dataclass(frozen=True, kw_only=True)
class Figures:
    """One source's Messenger figures at one moment."""

    counted: int  # conversations started in the last 7 days (Meta's "new messages")
    rate: float | None  # answered within 24 h / counted
    seconds: float | None  # mean of the fastest 90% of response times
    windows: tuple[datetime, ...]  # when each open window of an unanswered conversation closes
    lost: int  # windows lost (monitor.domain.reply_window) that closed in the last 7 days

    @property
    def very_responsive(self) -> bool:
        """Whether the Page would hold Meta's "Very responsive" badge."""
        return (
            self.rate is not None
            and self.seconds is not None
            and self.rate >= BADGE_RATE
            and self.seconds < BADGE_SECONDS
        )


def figures(said: Sequence[Said], now: datetime) -> Figures:
    """Meta's figures over [now - 7 d, now) and the reply windows, from messages in order."""
    since = now - WEEK
    last: dict[str, datetime] = {}
    waiting: dict[str, datetime] = {}  # thread -> a counted message not yet answered
    counted, times = 0, []
    for message in said:
        before = last.get(message.thread)
        last[message.thread] = message.at
        if message.by_page:
            started = waiting.pop(message.thread, None)
            if started is not None and message.at - started <= DAY:
                times.append((message.at - started).total_seconds())
            continue
        if (before is None or message.at - before >= DAY) and message.at >= since:
            counted += 1
            waiting[message.thread] = message.at
    windows = reply_windows(said)
    fastest = sorted(times)[: math.ceil(0.9 * len(times))]
    return Figures(
        counted=counted,
        rate=len(times) / counted if counted else None,
        seconds=sum(fastest) / len(fastest) if fastest else None,
        windows=tuple(sorted(w.closes for w in windows if w.replied_at is None and w.closes > now)),
        lost=sum(1 for w in windows if since <= w.closes <= now and w.lost(now)),
    )


class MessengerFigures(Collector):
    """Gauges per Messenger source: Meta's figures and the time left of the earliest window."""

    def __init__(self, sources: Iterable[SourceRef], now: Callable[[], datetime]) -> None:
        self._sources = [ref for ref in sources if ref.platform == "messenger"]
        self._now = now
        self._figures: dict[str, Figures] = {}

    async def refresh(self, store: Store, now: datetime) -> None:
        """Recompute from the store (a week and a day of messages per source)."""
        found = {}
        for ref in self._sources:
            said = await read_said(store, ref.name, now - WEEK - REPLY_WINDOW)
            found[ref.name] = figures(said, now)
        self._figures = found

    def get(self, source: str) -> Figures | None:
        """The last computed figures of a source."""
        return self._figures.get(source)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Render the last computed figures; the window's time left as of this scrape."""
        now = self._now()
        labels = ["brand", "source"]
        rate = GaugeMetricFamily(
            "webcare_meta_response_rate",
            "Meta's Messenger response rate over 7 days: conversations started (after 24 h of"
            " silence) answered within 24 h.",
            labels=labels,
        )
        seconds = GaugeMetricFamily(
            "webcare_meta_response_time_seconds",
            "Meta's Messenger response time over 7 days: mean of the fastest 90% of times to"
            " the first reply.",
            labels=labels,
        )
        badge = GaugeMetricFamily(
            "webcare_meta_very_responsive",
            'Whether the Page would hold Meta\'s "Very responsive" badge (rate >= 90% and time'
            " < 15 min over 7 days).",
            labels=labels,
        )
        closing = GaugeMetricFamily(
            "webcare_messaging_window_closing_seconds",
            "Seconds until the 24 h reply window of the earliest unanswered conversation"
            " closes; +Inf when none waits.",
            labels=labels,
        )
        lost = GaugeMetricFamily(
            "webcare_messaging_windows_lost",
            "Reply windows that closed in the last 7 days before the Page replied (or with no"
            " reply yet): one per person's turn of a conversation.",
            labels=labels,
        )
        for ref in self._sources:
            values = [ref.brand, ref.name]
            found = self._figures.get(ref.name)
            if found is None:
                continue
            if found.rate is not None:
                rate.add_metric(values, found.rate)
            if found.seconds is not None:
                seconds.add_metric(values, found.seconds)
            badge.add_metric(values, 1.0 if found.very_responsive else 0.0)
            left = [(close - now).total_seconds() for close in found.windows if close > now]
            closing.add_metric(values, min(left) if left else math.inf)
            lost.add_metric(values, found.lost)
        yield from (rate, seconds, badge, closing, lost)
