"""Unanswered items kept in memory so a scrape never touches the database."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from monitor.domain import Item, ItemState, Period, SourceRef
from monitor.domain.events import Event, ItemAcknowledged

OPEN_STATES = (ItemState.OPEN, ItemState.WARNING, ItemState.BREACHED)


class OpenItems(Collector):
    """The unanswered items per source; exports webcare_open_items and the oldest age."""

    def __init__(self, sources: Iterable[SourceRef], now: Callable[[], datetime]) -> None:
        self._sources = {ref.name: ref for ref in sources}
        self._now = now
        self._items: dict[tuple[str, int], Item] = {}

    def load(self, items: Iterable[Item]) -> None:
        """Replace the snapshot with the store's unanswered items (at start)."""
        self._items = {
            (i.source, i.message_id): i
            for i in items
            if i.state.is_unanswered and i.source in self._sources
        }

    def apply(self, event: Event) -> None:
        """Follow an item through its transitions."""
        if isinstance(event, ItemAcknowledged):
            return  # taken, still waiting: nothing changes here
        item = event.item
        key = (item.source, item.message_id)
        if item.source not in self._sources:
            return
        if item.state.is_unanswered:
            self._items[key] = item
        else:
            self._items.pop(key, None)

    def items(self) -> list[Item]:
        """A copy of the current unanswered items."""
        return list(self._items.values())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Render the gauges from memory."""
        counts: dict[tuple[str, str, str, str], int] = {}
        oldest: dict[str, datetime] = {}
        for ref in self._sources.values():
            for period in Period:
                for state in OPEN_STATES:
                    counts[(ref.brand, ref.name, period.value, state.value)] = 0
        # A copy first: /metrics may render in a worker thread while the loop applies events.
        for item in list(self._items.values()):
            ref = self._sources[item.source]
            counts[(ref.brand, ref.name, item.period.value, item.state.value)] += 1
            if item.source not in oldest or item.created_at < oldest[item.source]:
                oldest[item.source] = item.created_at
        open_items = GaugeMetricFamily(
            "webcare_open_items",
            "Consumer items waiting for a first response, by SLA state.",
            labels=["brand", "source", "period", "state"],
        )
        for labels, value in sorted(counts.items()):
            open_items.add_metric(list(labels), value)
        yield open_items
        now = self._now()
        age = GaugeMetricFamily(
            "webcare_oldest_open_item_age_seconds",
            "Age of the oldest unanswered consumer item (0 when none waits).",
            labels=["brand", "source"],
        )
        for ref in self._sources.values():
            created = oldest.get(ref.name)
            age.add_metric(
                [ref.brand, ref.name],
                max(0.0, (now - created).total_seconds()) if created else 0.0,
            )
        yield age
