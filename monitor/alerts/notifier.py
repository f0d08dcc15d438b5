"""Turns the scheduler's and pipeline's events into notifications in the outbox.

Warning and breach come from the one deadline scheduler; a resolution follows when an item
that was alerted is answered or dismissed. Items of one source that come due together (one
scheduler round) share one notification. Items created before tracking start minus the
largest target are never alerted on (DESIGN.md section 2). Which item was alerted for what is
recorded with the outbox rows in one transaction, so `reconcile` at start sends exactly the
alerts a crash may have lost, and never one twice.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta

from monitor.alerts.models import AlertItem, Duty, Kind, Notification
from monitor.alerts.outbox import Outbox
from monitor.alerts.settings import ReceiverConfig
from monitor.clock import Clock
from monitor.domain import Item, ItemState, SourceRef
from monitor.domain.events import Event, ItemAnswered, ItemBreached, ItemDismissed, ItemWarned
from monitor.logging import get_logger
from monitor.store import Store

log = get_logger("monitor.alerts.notifier")

DutyLookup = Callable[[datetime, str, str], Duty | None]
EXCERPT_CHARS = 200


def _matches(patterns: Sequence[str], value: str) -> bool:
    return "*" in patterns or value in patterns


def receivers_for(receivers: Iterable[ReceiverConfig], kind: Kind, ref: SourceRef) -> list[str]:
    """Names of the receivers that want this kind of notification for this source."""
    return [
        r.name
        for r in receivers
        if kind in r.kinds and _matches(r.brands, ref.brand) and _matches(r.sources, ref.name)
    ]


def notification_id(kind: Kind, source: str, item_ids: Iterable[int], at: datetime) -> str:
    """Stable id: the same event always gives the same id (receivers can deduplicate)."""
    key = f"{kind}|{source}|{','.join(map(str, sorted(item_ids)))}|{at.isoformat()}"
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def _instant(kind: Kind, item: Item, now: datetime) -> datetime:
    if kind == "warning":
        return item.warning_at
    if kind == "breach":
        return item.due_at
    return item.responded_at or now


class Notifier:
    """Subscribes to events (a list at a time) and queues notifications, one at a time."""

    def __init__(
        self,
        *,
        store: Store,
        outbox: Outbox,
        receivers: Sequence[ReceiverConfig],
        sources: Mapping[str, SourceRef],
        max_targets: Mapping[str, float],
        duty: DutyLookup,
        clock: Clock,
        on_enqueued: Callable[[], None],
    ) -> None:
        self._store = store
        self._outbox = outbox
        self._receivers = receivers
        self._sources = dict(sources)
        self._max_targets = dict(max_targets)
        self._duty = duty
        self._clock = clock
        self._on_enqueued = on_enqueued
        self._queue: asyncio.Queue[tuple[Kind, str, list[Item]]] = asyncio.Queue()
        self._tracking_start: dict[str, datetime] = {}

    def apply_all(self, events: list[Event]) -> None:
        """Group one round of events per (kind, source) and queue them in order."""
        groups: dict[tuple[Kind, str], list[Item]] = {}
        for event in events:
            kind: Kind
            if isinstance(event, ItemWarned):
                kind = "warning"
            elif isinstance(event, ItemBreached):
                kind = "breach"
            elif isinstance(event, ItemAnswered | ItemDismissed):
                kind = "resolved"
            else:
                continue
            groups.setdefault((kind, event.item.source), []).append(event.item)
        for (kind, source), items in groups.items():
            self._queue.put_nowait((kind, source, items))

    async def run(self) -> None:
        """Handle queued groups until cancelled (one at a time keeps each item's order)."""
        while True:
            kind, source, items = await self._queue.get()
            try:
                await self.notify(kind, source, items)
            except Exception:  # keep alerting for everything else; reconcile catches up
                log.exception("could not queue a notification", kind=kind, source=source)
            finally:
                self._queue.task_done()

    async def idle(self) -> None:
        """Wait until everything queued so far is in the outbox (tests)."""
        await self._queue.join()

    async def reconcile(self) -> None:
        """At start: alert what a crash left unalerted (warning, breach or resolution)."""
        unanswered = await self._store.unanswered_items()
        by_state = {
            "warning": [i for i in unanswered if i.state is ItemState.WARNING],
            "breach": [i for i in unanswered if i.state is ItemState.BREACHED],
        }
        open_alerts = await self._outbox.unresolved_alerted_items()
        resolved = [
            i
            for i in (await self._store.items_by_id(open_alerts)).values()
            if not i.state.is_unanswered
        ]
        kinds: tuple[tuple[Kind, list[Item]], ...] = (
            ("warning", by_state["warning"]),
            ("breach", by_state["breach"]),
            ("resolved", resolved),
        )
        for kind, items in kinds:
            per_source: dict[str, list[Item]] = {}
            for item in items:
                per_source.setdefault(item.source, []).append(item)
            for source, group in per_source.items():
                await self.notify(kind, source, group)

    async def notify(self, kind: Kind, source: str, items: list[Item]) -> Notification | None:
        """Queue one notification for the items that still need this kind of alert."""
        ref = self._sources.get(source)
        if ref is None:
            return None
        now = self._clock.now()
        cutoff = await self._historic_before(source)
        items = [i for i in items if cutoff is None or i.created_at >= cutoff]
        alerted = await self._outbox.alerted([i.message_id for i in items])
        if kind == "resolved":
            items = [
                i
                for i in items
                if alerted.get(i.message_id, set()) & {"warning", "breach"}
                and "resolved" not in alerted.get(i.message_id, set())
            ]
        else:
            items = [i for i in items if kind not in alerted.get(i.message_id, set())]
        if not items:
            return None
        at = max(_instant(kind, i, now) for i in items)
        messages = await self._store.messages_by_id([i.message_id for i in items])
        alert_items = []
        for item in sorted(items, key=lambda i: i.created_at):
            stored = messages.get(item.message_id)
            text = " ".join(stored.message.text.split()) if stored else ""
            alert_items.append(
                AlertItem(
                    item_id=item.message_id,
                    permalink=stored.message.permalink if stored else None,
                    author=stored.message.author_name if stored else None,
                    excerpt=text[:EXCERPT_CHARS],
                    created_at=item.created_at,
                    due_at=item.due_at,
                    period=item.period.value,
                    state=item.state.value,
                    responder=item.responder,
                    responded_at=item.responded_at,
                )
            )
        notification = Notification(
            id=notification_id(kind, source, (i.message_id for i in items), at),
            kind=kind,
            brand=ref.brand,
            source=source,
            platform=ref.platform,
            created_at=at,
            items=tuple(alert_items),
            duty=self._duty(at, ref.brand, source),
        )
        receivers = receivers_for(self._receivers, kind, ref)
        await self._outbox.enqueue(notification, receivers, now)
        log.info(
            "alert queued",
            kind=kind,
            source=source,
            items=len(alert_items),
            receivers=receivers,
            on_duty=notification.duty.student if notification.duty else None,
        )
        self._on_enqueued()
        return notification

    async def _historic_before(self, source: str) -> datetime | None:
        """Items created before this instant are history: never alerted on."""
        if source not in self._tracking_start:
            state = (await self._store.source_states()).get(source)
            if state is None or state.tracking_start is None:
                return None
            self._tracking_start[source] = state.tracking_start
        margin = timedelta(seconds=self._max_targets.get(source, 0.0))
        return self._tracking_start[source] - margin
