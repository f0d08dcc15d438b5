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
from dataclasses import replace
from datetime import datetime, timedelta

from monitor.alerts.escalation import FollowUp, FollowUpPolicy, Step
from monitor.alerts.links import Links
from monitor.alerts.models import AlertItem, Duty, Kind, Notification, Recipient, Role
from monitor.alerts.outbox import Outbox
from monitor.clock import Clock
from monitor.config.alerts import NEEDS_ITEMS, ReceiverConfig
from monitor.domain import Item, ItemState, SourceRef
from monitor.domain.events import (
    Event,
    ItemAcknowledged,
    ItemAnswered,
    ItemBreached,
    ItemDismissed,
    ItemWarned,
)
from monitor.domain.reply_window import REPLY_WINDOW, WINDOWED_PLATFORMS, reply_windows
from monitor.logging import get_logger
from monitor.store import Store
from monitor.store.windows import read_said

log = get_logger("monitor.alerts.notifier")

DutyLookup = Callable[[datetime, str, str], Duty | None]
LeadLookup = Callable[[datetime, str, str], str | None]
EXCERPT_CHARS = 200
# A handover lists at most this many items, most urgent first (the queue page has them all).
HANDOVER_MAX_ITEMS = 100
# Kinds that report what became of alerted items: told once to everyone who was alerted,
# addressed to nobody, without ack or dismiss links.
NEWS: frozenset[Kind] = frozenset({"resolved", "taken"})
# The on-duty student is warned this long before a Messenger reply window closes (the Page can
# no longer answer with a standard message 24 h after the person's last message).
WINDOW_LEAD = timedelta(hours=2)


def _matches(patterns: Sequence[str], value: str) -> bool:
    return "*" in patterns or value in patterns


def receivers_for(
    receivers: Iterable[ReceiverConfig],
    kind: Kind,
    ref: SourceRef,
    *,
    role: Role | None = None,
    empty: bool = False,
) -> list[str]:
    """Names of the receivers that want this kind of notification for this source.

    `role` is whom the notification is addressed to (None: everyone); `empty` says it lists
    no items (a quiet handover), which some formats cannot express.
    """
    return [
        r.name
        for r in receivers
        if kind in r.kinds
        and _matches(r.brands, ref.brand)
        and _matches(r.sources, ref.name)
        and (role is None or role in r.roles)
        and not (empty and r.type in NEEDS_ITEMS)
        # Alertmanager has no acknowledgement (its silences are the like): a re-sent
        # firing alert would only be noise there.
        and not (kind == "taken" and r.type == "alertmanager")
    ]


def hash_name(name: str) -> int:
    """A stable number for a name (notification ids are built from numbers)."""
    return int(hashlib.sha256(name.encode()).hexdigest()[:12], 16)


def notification_id(kind: str, source: str, item_ids: Iterable[int], at: datetime) -> str:
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
        policy: FollowUpPolicy | None = None,
        links: Links | None = None,
        lead: LeadLookup | None = None,
        timezone: str = "UTC",
        people: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self._people = dict(people or {})  # name -> handles, to mention them
        self._timezone = timezone  # the roster's: times in messages are local to the team
        self._store = store
        self._outbox = outbox
        self._receivers = receivers
        self._sources = dict(sources)
        self._max_targets = dict(max_targets)
        self._duty = duty
        self._clock = clock
        self._on_enqueued = on_enqueued
        self._policy = policy or FollowUpPolicy(
            escalate_after=900, escalate_to=(), remind_every=None
        )
        self._links = links
        self._lead = lead or (lambda at, brand, source: None)
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
            elif isinstance(event, ItemAcknowledged):
                kind = "taken"
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
        if kind == "resolved":
            # Answered or dismissed: escalation and reminders end here.
            for reason, state_ids in (
                ("dismissed", [i.message_id for i in items if i.state is ItemState.DISMISSED]),
                ("answered", [i.message_id for i in items if i.state is not ItemState.DISMISSED]),
            ):
                await self._outbox.stop_followups(state_ids, reason=reason, now=now)
        cutoff = await self._historic_before(source)
        items = [i for i in items if cutoff is None or i.created_at >= cutoff]
        alerted = await self._outbox.alerted([i.message_id for i in items])
        if kind in NEWS:
            # Told to those who were alerted, once, and only while it is still news.
            items = [
                i
                for i in items
                if alerted.get(i.message_id, set()) & {"warning", "breach"}
                and not alerted.get(i.message_id, set()) & {"resolved", kind}
            ]
        else:
            items = [i for i in items if kind not in alerted.get(i.message_id, set())]
        if not items:
            return None
        at = max(_instant(kind, i, now) for i in items)
        duty = self._duty(at, ref.brand, source)
        addressed = (
            self._recipient("student", duty.student)
            if duty is not None and kind not in NEWS
            else None
        )
        notification = await self._build(kind, ref, items, at, duty=duty, to=addressed)
        followups: list[FollowUp] = []
        if kind == "breach":
            # Escalation and reminders start at the breach instant (the item's due time).
            followups = [
                FollowUp(item_id=i.message_id, source=source, breached_at=i.due_at) for i in items
            ]
            followups = [
                replace(f, next_at=self._policy.next_at(f))
                if self._policy.next_at(f) is not None
                else replace(f, stopped_at=f.breached_at, stop_reason="done")
                for f in followups
            ]
        receivers = receivers_for(
            self._receivers, kind, ref, role=addressed.role if addressed else None
        )
        if not await self._outbox.enqueue(notification, receivers, now, new_followups=followups):
            return None
        self._queued(notification, receivers)
        return notification

    async def fire_followups(self, now: datetime) -> int:
        """Send every escalation step and reminder due at `now`; return how many were queued."""
        rows = await self._outbox.due_followups(now)
        if not rows:
            return 0
        items = await self._store.items_by_id([r.item_id for r in rows])
        finished: dict[str, list[int]] = {}
        current: dict[int, FollowUp] = {}
        groups: dict[tuple[datetime, str, int, str], list[int]] = {}
        for row in rows:
            item = items.get(row.item_id)
            if item is None or row.source not in self._sources or not item.state.is_unanswered:
                # Answered or dismissed while the stop was on its way (or a source removed).
                reason = "dismissed" if item and item.state is ItemState.DISMISSED else "answered"
                finished.setdefault(reason, []).append(row.item_id)
                continue
            current[row.item_id] = row
            for step in self._policy.due(row, now):
                groups.setdefault((step.at, step.kind, step.number, row.source), []).append(
                    row.item_id
                )
        for reason, ids in finished.items():
            await self._outbox.stop_followups(ids, reason=reason, now=now)
        sent = 0
        # Earliest first; at one instant an escalation goes before a reminder.
        for (at, kind, number, source), ids in sorted(groups.items()):
            step = Step(
                at=at, kind="escalation" if kind == "escalation" else "reminder", number=number
            )
            group = [items[i] for i in ids]
            if await self._send_step(step, source, group, current, now):
                sent += 1
        return sent

    async def fire_windows(self, now: datetime, lead: timedelta = WINDOW_LEAD) -> int:
        """Warn once per unanswered Messenger item whose reply window closes within `lead`.

        The window closes 24 h after the person's last message in the conversation; an item
        whose window already closed is not warned about (the report counts it as lost).
        Returns how many notifications were queued (one per source).
        """
        messenger = {
            name for name, ref in self._sources.items() if ref.platform in WINDOWED_PLATFORMS
        }
        if not messenger:
            return 0
        per_source: dict[str, list[Item]] = {}
        for item in await self._store.unanswered_items():
            if item.source in messenger:
                per_source.setdefault(item.source, []).append(item)
        sent = 0
        for source, waiting in sorted(per_source.items()):
            said = await read_said(self._store, source, now - REPLY_WINDOW)
            closes = {w.thread: w.closes for w in reply_windows(said) if w.replied_at is None}
            cutoff = await self._historic_before(source)
            due = {
                i.message_id: closes[i.thread_id]
                for i in waiting
                if i.thread_id in closes
                and closes[i.thread_id] - lead <= now < closes[i.thread_id]
                and (cutoff is None or i.created_at >= cutoff)
            }
            alerted = await self._outbox.alerted(list(due))
            items = [
                i
                for i in waiting
                if i.message_id in due and "window" not in alerted.get(i.message_id, set())
            ]
            if not items:
                continue
            ref = self._sources[source]
            at = max(due[i.message_id] for i in items) - lead
            duty = self._duty(at, ref.brand, source)
            to = self._recipient("student", duty.student) if duty is not None else None
            notification = await self._build(
                "window", ref, items, at, duty=duty, to=to, windows=due
            )
            receivers = receivers_for(self._receivers, "window", ref, role=to.role if to else None)
            if await self._outbox.enqueue(notification, receivers, now):
                self._queued(notification, receivers)
                sent += 1
        return sent

    async def _send_step(
        self,
        step: Step,
        source: str,
        items: list[Item],
        current: dict[int, FollowUp],
        now: datetime,
    ) -> bool:
        ref = self._sources[source]
        duty = self._duty(step.at, ref.brand, source)
        to: Recipient | None
        if step.kind == "escalation":
            role = self._policy.escalate_to[step.number - 1]
            if role == "backup":
                name = duty.backup if duty is not None else None
            else:
                name = duty.lead if duty is not None else self._lead(step.at, ref.brand, source)
            to = self._recipient("backup" if role == "backup" else "lead", name) if name else None
        else:
            to = self._recipient("student", duty.student) if duty is not None else None
        advance = []
        for item in items:
            before = current[item.message_id]
            after = self._policy.after(before, step)
            if after.next_at is None:
                after = replace(after, stopped_at=now, stop_reason="done")
            advance.append((before, after))
        kind: Kind = step.kind
        if step.kind == "escalation" and to is None:
            # Nobody holds that role now (no backup in this shift): the step passes silently.
            notification = None
            receivers: list[str] = []
        else:
            notification = await self._build(
                kind, ref, items, step.at, duty=duty, to=to, step=step.number
            )
            receivers = receivers_for(self._receivers, kind, ref, role=to.role if to else None)
        if notification is None:
            log.info(
                "escalation step skipped: nobody holds the role",
                source=source,
                step=step.number,
                role=self._policy.escalate_to[step.number - 1],
            )
            empty = Notification(
                id=notification_id(kind, source, (), step.at),
                kind=kind,
                brand=ref.brand,
                source=source,
                platform=ref.platform,
                created_at=step.at,
                items=(),
                duty=duty,
            )
            ok = await self._outbox.enqueue(empty, [], now, advance=advance)
        else:
            ok = await self._outbox.enqueue(
                notification, receivers, now, mark=f"{kind}:{step.number}", advance=advance
            )
            if ok:
                self._queued(notification, receivers)
        for before, after in advance if ok else ():
            current[before.item_id] = after
        return ok and notification is not None

    async def handover(
        self, source: str, starts_at: datetime, duty: Duty, *, only_when_waiting: bool
    ) -> Notification | None:
        """Queue the summary of what waits on `source` for the student starting at `starts_at`."""
        ref = self._sources.get(source)
        if ref is None or await self._outbox.handover_sent(source, starts_at):
            return None
        now = self._clock.now()
        cutoff = await self._historic_before(source)
        waiting = [
            i
            for i in await self._store.unanswered_items()
            if i.source == source and (cutoff is None or i.created_at >= cutoff)
        ]
        if not waiting and only_when_waiting:
            return None
        # Most urgent first; a long backlog is cut (the queue page has them all).
        waiting.sort(key=lambda i: (i.due_at, i.created_at, i.message_id))
        waiting = waiting[:HANDOVER_MAX_ITEMS]
        to = self._recipient("student", duty.student)
        notification = await self._build(
            "handover", ref, waiting, starts_at, duty=duty, to=to, judge=True
        )
        notification = replace(
            notification,
            id=notification_id("handover", source, [hash_name(duty.student)], starts_at),
        )
        receivers = receivers_for(
            self._receivers, "handover", ref, role="student", empty=not waiting
        )
        record = {
            "source": source,
            "starts_at": starts_at,
            "student": duty.student,
            "notification_id": notification.id,
            "created_at": now,
        }
        if not await self._outbox.enqueue(
            notification, receivers, now, mark="handover", handover=record
        ):
            return None
        self._queued(notification, receivers)
        return notification

    async def _build(
        self,
        kind: Kind,
        ref: SourceRef,
        items: list[Item],
        at: datetime,
        *,
        duty: Duty | None,
        to: Recipient | None,
        step: int | None = None,
        judge: bool = False,
        windows: Mapping[int, datetime] | None = None,
    ) -> Notification:
        """The notification for `items`, with excerpts, ack info and links."""
        messages = await self._store.messages_by_id([i.message_id for i in items])
        acks = await self._outbox.followups([i.message_id for i in items])
        alert_items = []
        order = (
            (lambda i: (i.due_at, i.created_at))
            if kind == "handover"
            else (lambda i: (i.created_at, i.message_id))
        )
        for item in sorted(items, key=order):
            stored = messages.get(item.message_id)
            text = " ".join(stored.message.text.split()) if stored else ""
            state = item.state
            if judge and state.is_unanswered:
                # The stored state lags the deadlines: judge open/warning/breached as of `at`.
                state = (
                    ItemState.BREACHED
                    if item.due_at <= at
                    else ItemState.WARNING
                    if item.warning_at <= at
                    else ItemState.OPEN
                )
            waiting = state.is_unanswered and kind not in NEWS
            links = self._links if waiting else None
            follow = acks.get(item.message_id)
            alert_items.append(
                AlertItem(
                    item_id=item.message_id,
                    permalink=stored.message.permalink if stored else None,
                    # Kept on the item while it waits (stored authors are pseudonyms).
                    author=item.author_name,
                    excerpt=text[:EXCERPT_CHARS],
                    created_at=item.created_at,
                    due_at=item.due_at,
                    period=item.period.value,
                    state=state.value,
                    responder=item.responder,
                    responded_at=item.responded_at,
                    ack_url=links.action_url("ack", item.message_id, at) if links else None,
                    dismiss_url=(
                        links.action_url("dismiss", item.message_id, at) if links else None
                    ),
                    acked_by=follow.acked_by if follow is not None else None,
                    window_closes_at=(windows or {}).get(item.message_id),
                )
            )
        mark = kind if step is None else f"{kind}:{step}"
        return Notification(
            id=notification_id(mark, ref.name, (i.message_id for i in items), at),
            kind=kind,
            brand=ref.brand,
            source=ref.name,
            platform=ref.platform,
            created_at=at,
            items=tuple(alert_items),
            duty=duty,
            addressed_to=to,
            step=step,
            queue_url=self._links.queue_url() if self._links else None,
            timezone=self._timezone,
        )

    def _recipient(self, role: Role, name: str) -> Recipient:
        """Whom a notification is for, with their handles so channels can mention them."""
        return Recipient(role=role, name=name, handles=dict(self._people.get(name, {})))

    def _queued(self, notification: Notification, receivers: list[str]) -> None:
        log.info(
            "alert queued",
            kind=notification.kind,
            source=notification.source,
            items=len(notification.items),
            step=notification.step,
            to=notification.addressed_to.name if notification.addressed_to else None,
            receivers=receivers,
            on_duty=notification.duty.student if notification.duty else None,
        )
        self._on_enqueued()

    async def historic_before(self, source: str) -> datetime | None:
        """Items created before this instant are history: never alerted on (public view)."""
        return await self._historic_before(source)

    async def _historic_before(self, source: str) -> datetime | None:
        """Items created before this instant are history: never alerted on."""
        if source not in self._tracking_start:
            state = (await self._store.source_states()).get(source)
            if state is None or state.tracking_start is None:
                return None
            self._tracking_start[source] = state.tracking_start
        margin = timedelta(seconds=self._max_targets.get(source, 0.0))
        return self._tracking_start[source] - margin
