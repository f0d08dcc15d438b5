"""The one deadline scheduler: warning and due instants of unanswered items become events."""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum

from monitor.clock import Clock, sleep_or_wake
from monitor.domain import Item, ItemState, SourceRef
from monitor.domain.events import (
    Event,
    ItemAnswered,
    ItemBreached,
    ItemCreated,
    ItemDismissed,
    ItemReopened,
    ItemWarned,
)
from monitor.logging import get_logger
from monitor.store import Store

log = get_logger("monitor.deadlines.scheduler")

# Re-fetches the given threads of a source (and stores what it finds) before a breach.
Refetch = Callable[[str, frozenset[str]], Awaitable[None]]


class Deadline(IntEnum):
    """What happens at an instant; warnings sort before dues at the same instant."""

    WARNING = 0
    DUE = 1


@dataclass(frozen=True, order=True)
class _Entry:
    at: datetime
    kind: Deadline
    message_id: int


class DeadlineScheduler:
    """Keeps a heap of the next warning/due instants and fires them on time.

    State changes go through a conditional update in the store, so an instant that already
    fired before a restart does not fire again, and one that was missed fires once at start.
    """

    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        sources: Mapping[str, SourceRef],
        refetch: Refetch,
        on_events: Callable[[list[Event]], None],
    ) -> None:
        self._store = store
        self._clock = clock
        self._sources = dict(sources)
        # The sources whose deadlines this instance fires (all, unless instances share them).
        self._held = set(self._sources)
        self._refetch = refetch
        self._on_events = on_events
        self._heap: list[_Entry] = []
        self._items: dict[int, Item] = {}
        # Items first read after their due time: their thread was read past the due instant
        # already, so re-reading it before the breach can only find the same (a year's
        # backfill would otherwise re-read every unanswered thread once more).
        self._read_after_due: set[int] = set()
        self._wake = asyncio.Event()
        self.fired = 0

    def load(self, items: Iterable[Item]) -> None:
        """Schedule the store's unanswered items (at start; past instants fire at once)."""
        for item in items:
            self.track(item)

    def hold(self, names: Collection[str], items: Iterable[Item]) -> None:
        """Fire the deadlines of these sources only, starting over from the store's `items`."""
        self._held = set(names) & set(self._sources)
        self._heap = []
        self._items = {}
        self.load(items)
        self._wake.set()

    def track(self, item: Item) -> None:
        """Schedule the deadlines an unanswered item still has ahead of it."""
        if item.source not in self._held or not item.state.is_unanswered:
            self._items.pop(item.message_id, None)
            return
        self._items[item.message_id] = item
        if item.state is ItemState.OPEN:
            heapq.heappush(self._heap, _Entry(item.warning_at, Deadline.WARNING, item.message_id))
        if item.state in (ItemState.OPEN, ItemState.WARNING):
            heapq.heappush(self._heap, _Entry(item.due_at, Deadline.DUE, item.message_id))
        self._wake.set()

    def apply(self, event: Event) -> None:
        """Follow the pipeline: new or reopened items get deadlines, answered ones lose them."""
        if isinstance(event, ItemCreated):
            item = event.item
            detected = item.created_at + timedelta(seconds=event.detection_lag_seconds)
            if detected >= item.due_at:
                self._read_after_due.add(item.message_id)
        if isinstance(event, ItemCreated | ItemReopened):
            self.track(event.item)
        elif isinstance(event, ItemAnswered | ItemDismissed):
            self._items.pop(event.item.message_id, None)
            self._read_after_due.discard(event.item.message_id)

    @property
    def next_deadline(self) -> datetime | None:
        """The earliest pending instant (stale entries included)."""
        return self._heap[0].at if self._heap else None

    async def run(self) -> None:
        """Fire deadlines as the clock reaches them, until cancelled."""
        while True:
            now = self._clock.now()
            due: list[_Entry] = []
            while self._heap and self._heap[0].at <= now:
                due.append(heapq.heappop(self._heap))
            if due:
                try:
                    await self._fire(due)
                except Exception:  # a store hiccup must not stop every future deadline
                    log.exception("deadline handling failed; retrying in 1 s")
                    for entry in due:
                        heapq.heappush(self._heap, entry)
                    await self._clock.sleep(1.0)
                continue
            # Sleep until the next instant, or until a new deadline is tracked.
            delay = (self._heap[0].at - now).total_seconds() if self._heap else None
            await sleep_or_wake(self._clock, self._wake, delay)

    async def _fire(self, entries: list[_Entry]) -> None:
        events: list[Event] = []
        breaching: dict[str, list[Item]] = {}
        for entry in entries:
            item = self._items.get(entry.message_id)
            if item is None or (entry.at != item.warning_at and entry.at != item.due_at):
                continue  # answered, dismissed or rescheduled since it was queued
            if entry.kind is Deadline.WARNING:
                if item.due_at <= self._clock.now():
                    continue  # a missed warning is superseded by the breach right behind it
                warned = await self._store.transition(
                    item.message_id, from_states=[ItemState.OPEN], to=ItemState.WARNING
                )
                if warned is not None:
                    self._items[item.message_id] = warned
                    events.append(ItemWarned(source=self._sources[item.source], item=warned))
            else:
                breaching.setdefault(item.source, []).append(item)
        if events:
            self._emit(events)
        for source, items in breaching.items():
            await self._breach(source, items)

    async def _breach(self, source: str, items: list[Item]) -> None:
        """Re-fetch the threads once, then breach whatever is still unanswered."""
        stale = frozenset(i.thread_id for i in items if i.message_id not in self._read_after_due)
        self._read_after_due.difference_update(i.message_id for i in items)
        try:
            if stale:
                await self._refetch(source, stale)
        except Exception as err:  # the breach is declared on what we know at due time
            log.warning("re-fetch before breach failed", source=source, error=str(err))
        events: list[Event] = []
        for item in items:
            if item.message_id not in self._items:
                continue  # the re-fetch found an answer (or a dismissal)
            breached = await self._store.transition(
                item.message_id,
                from_states=[ItemState.OPEN, ItemState.WARNING],
                to=ItemState.BREACHED,
            )
            self._items.pop(item.message_id, None)
            if breached is not None:
                events.append(ItemBreached(source=self._sources[source], item=breached))
        if events:
            self._emit(events)

    def _emit(self, events: list[Event]) -> None:
        self.fired += len(events)
        self._on_events(events)
