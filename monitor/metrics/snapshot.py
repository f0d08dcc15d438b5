"""Unanswered items kept in memory so a scrape never touches the database."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from monitor.domain import Item, ItemState, Period, SourceRef
from monitor.domain.events import Event, ItemAcknowledged
from monitor.metrics.text import header, labelled, value_text

OPEN_STATES = (ItemState.OPEN, ItemState.WARNING, ItemState.BREACHED)
OPEN_HELP = "Consumer items waiting for a first response, by SLA state."
AGE_HELP = "Age of the oldest unanswered consumer item (0 when none waits)."


class OpenItems(Collector):
    """The unanswered items per source; exports webcare_open_items and the oldest age."""

    def __init__(self, sources: Iterable[SourceRef], now: Callable[[], datetime]) -> None:
        self._sources = {ref.name: ref for ref in sources}
        self._now = now
        self._items: dict[tuple[str, int], Item] = {}
        self._only: frozenset[str] | None = None
        # Each series' name and labels, written once (a scrape only adds the values).
        self._open_series = {
            (ref.name, period.value, state.value): labelled(
                "webcare_open_items",
                ("brand", "source", "period", "state"),
                (ref.brand, ref.name, period.value, state.value),
            )
            for ref in self._sources.values()
            for period in Period
            for state in OPEN_STATES
        }
        self._age_series = {
            ref.name: labelled(
                "webcare_oldest_open_item_age_seconds", ("brand", "source"), (ref.brand, ref.name)
            )
            for ref in self._sources.values()
        }
        # The series in the order they are exported: by brand, source, period and state.
        self._order = [
            (source, period, state)
            for _, source, period, state in sorted(
                (ref.brand, ref.name, period.value, state.value)
                for ref in self._sources.values()
                for period in Period
                for state in OPEN_STATES
            )
        ]

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

    def restrict(self, names: Collection[str] | None) -> None:
        """Export only these sources from now on (None: every configured one)."""
        self._only = None if names is None else frozenset(names)

    def _figures(
        self, keep: Callable[[str | None, str | None], bool] | None = None
    ) -> tuple[dict[tuple[str, str, str], int], dict[str, float]]:
        """Items per (source, period, state), zeros included, and each source's oldest age."""
        only = self._only
        shown = [
            ref
            for ref in self._sources.values()
            if (only is None or ref.name in only) and (keep is None or keep(ref.name, None))
        ]
        if keep is not None:
            only = frozenset(ref.name for ref in shown)
        counts = dict.fromkeys(
            self._order if only is None else (key for key in self._order if key[0] in only), 0
        )
        oldest: dict[str, datetime] = {}
        # A copy first: /metrics may render in a worker thread while the loop applies events.
        for item in list(self._items.values()):
            key = (item.source, item.period.value, item.state.value)
            if key in counts:
                counts[key] += 1
                if item.source not in oldest or item.created_at < oldest[item.source]:
                    oldest[item.source] = item.created_at
        now = self._now()
        ages = {
            ref.name: max(0.0, (now - oldest[ref.name]).total_seconds())
            if ref.name in oldest
            else 0.0
            for ref in shown
        }
        return counts, ages

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Render the gauges from memory."""
        counts, ages = self._figures()
        open_items = GaugeMetricFamily(
            "webcare_open_items", OPEN_HELP, labels=["brand", "source", "period", "state"]
        )
        for (source, period, state), value in counts.items():
            open_items.add_metric([self._sources[source].brand, source, period, state], value)
        yield open_items
        age = GaugeMetricFamily(
            "webcare_oldest_open_item_age_seconds", AGE_HELP, labels=["brand", "source"]
        )
        for source, seconds in ages.items():
            age.add_metric([self._sources[source].brand, source], seconds)
        yield age

    def expose(
        self, *, openmetrics: bool, keep: Callable[[str | None, str | None], bool] | None = None
    ) -> str:
        """collect() as exposition text, the series' names written once and reused.

        `keep(source, receiver)`: export a source's series only when it says so.
        """
        counts, ages = self._figures(keep)
        series = self._open_series
        parts = [header("webcare_open_items", "gauge", OPEN_HELP, openmetrics=openmetrics)]
        parts.extend(f"{series[key]} {_count_text(value)}\n" for key, value in counts.items())
        parts.append(
            header(
                "webcare_oldest_open_item_age_seconds", "gauge", AGE_HELP, openmetrics=openmetrics
            )
        )
        age_series = self._age_series
        parts.extend(f"{age_series[s]} {value_text(v)}\n" for s, v in ages.items())
        return "".join(parts)


def _count_text(count: int) -> str:
    """value_text(count) without its cost for the small counts (it writes 1e6 as 1e+06)."""
    return f"{count}.0" if count < 1_000_000 else value_text(count)
