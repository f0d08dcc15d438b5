"""The persistent outbox: notifications wait here per receiver until delivered or given up."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from monitor.alerts.escalation import FollowUp
from monitor.alerts.models import Notification, notification_from_json, notification_to_json
from monitor.store import Store
from monitor.store.repository import chunked
from monitor.store.tables import alert_followups, alert_handovers, alert_outbox, item_alerts

_T = TypeVar("_T")


class _Stale(Exception):
    """A follow-up changed since it was read (sent, acknowledged or stopped): roll back."""


@dataclass(frozen=True, kw_only=True)
class OutboxRow:
    """One notification for one receiver."""

    id: int
    delivery_id: str
    receiver: str
    notification: Notification
    created_at: datetime
    next_attempt_at: datetime
    attempts: int


@dataclass(frozen=True, kw_only=True)
class Backlog:
    """What waits for one receiver: how many notifications, and since when the oldest."""

    pending: int = 0
    oldest: datetime | None = None  # created_at (the event's instant) of the oldest pending

    def age(self, now: datetime) -> float:
        """Seconds the oldest pending notification has waited (0 when none waits)."""
        return 0.0 if self.oldest is None else max(0.0, (now - self.oldest).total_seconds())


_EMPTY = Backlog()


def _row(row: Any) -> OutboxRow:
    return OutboxRow(
        id=row.id,
        delivery_id=row.delivery_id,
        receiver=row.receiver,
        notification=notification_from_json(row.notification),
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at,
        attempts=row.attempts,
    )


class Outbox:
    """Queries and writes of the alert tables."""

    def __init__(self, store: Store) -> None:
        self._engine = store.engine
        # The backlog per receiver as the table holds it, for the gauges (a scrape never
        # queries the store). Every write that adds or ends a pending row holds this lock,
        # commits, and re-reads the backlog before releasing it, so the snapshot is never
        # behind a committed write, whatever else happens concurrently.
        self._writes = asyncio.Lock()
        self._backlog: dict[str, Backlog] = {}

    def backlog(self, receiver: str) -> Backlog:
        """The receiver's backlog as of the last write (load_backlog at start)."""
        return self._backlog.get(receiver, _EMPTY)

    async def load_backlog(self) -> None:
        """Read the backlog of every receiver from the table (at start)."""
        async with self._writes:
            self._backlog = await self._read_backlog()

    async def between_writes(self, read: Callable[[], Awaitable[_T]]) -> _T:
        """Run `read` while no write is in progress (tests compare the gauges with the table)."""
        async with self._writes:
            return await read()

    async def _read_backlog(self) -> dict[str, Backlog]:
        query = (
            select(alert_outbox.c.receiver, func.count(), func.min(alert_outbox.c.created_at))
            .where(alert_outbox.c.state == "pending")
            .group_by(alert_outbox.c.receiver)
        )
        async with self._engine.connect() as conn:
            return {
                receiver: Backlog(pending=int(count), oldest=oldest)
                for receiver, count, oldest in await conn.execute(query)
            }

    async def alerted(self, item_ids: Collection[int]) -> dict[int, set[str]]:
        """The kinds each item was already alerted for."""
        found: dict[int, set[str]] = {}
        async with self._engine.connect() as conn:
            for chunk in chunked(item_ids):
                result = await conn.execute(
                    select(item_alerts.c.item_id, item_alerts.c.kind).where(
                        item_alerts.c.item_id.in_(chunk)
                    )
                )
                for item_id, kind in result:
                    found.setdefault(item_id, set()).add(kind)
        return found

    async def unresolved_alerted_items(self) -> set[int]:
        """Items alerted for a warning or breach that have had no resolution yet."""
        resolved = select(item_alerts.c.item_id).where(item_alerts.c.kind == "resolved")
        query = select(item_alerts.c.item_id).where(
            item_alerts.c.kind.in_(["warning", "breach"]), item_alerts.c.item_id.not_in(resolved)
        )
        async with self._engine.connect() as conn:
            return {row[0] for row in await conn.execute(query)}

    async def enqueue(
        self,
        n: Notification,
        receivers: Iterable[str],
        now: datetime,
        *,
        mark: str | None = None,
        new_followups: Sequence[FollowUp] = (),
        advance: Sequence[tuple[FollowUp, FollowUp]] = (),
        handover: dict[str, Any] | None = None,
    ) -> bool:
        """Record the alert for its items and queue it for every receiver, atomically.

        `mark` is what item_alerts records per item (default the kind; "escalation:2" for a
        step). With a breach, `new_followups` start escalation for items that have no row yet;
        `advance` moves follow-ups from (before) to (after) only if nobody changed them in the
        meantime; `handover` records a shift handover. False (and nothing written) when a
        follow-up was stale or the alert or handover was already recorded.
        """
        payload = notification_to_json(n)
        receivers = list(receivers)
        async with self._writes:
            try:
                async with self._engine.begin() as conn:
                    await self._enqueue(
                        conn, n, payload, receivers, now, mark or n.kind, new_followups, advance
                    )
                    if handover is not None:
                        await conn.execute(insert(alert_handovers), [handover])
            except (_Stale, IntegrityError):
                return False
            if receivers:
                self._backlog = await self._read_backlog()
        return True

    async def _enqueue(
        self,
        conn: Any,
        n: Notification,
        payload: dict[str, Any],
        receivers: Iterable[str],
        now: datetime,
        mark: str,
        new_followups: Sequence[FollowUp],
        advance: Sequence[tuple[FollowUp, FollowUp]],
    ) -> None:
        for before, after in advance:
            result = await conn.execute(
                update(alert_followups)
                .where(
                    alert_followups.c.item_id == before.item_id,
                    alert_followups.c.escalations_sent == before.escalations_sent,
                    alert_followups.c.reminders_sent == before.reminders_sent,
                    alert_followups.c.stopped_at.is_(None),
                )
                .values(**_progress(after))
            )
            if result.rowcount != 1:
                raise _Stale(before.item_id)
        if new_followups:
            existing = await conn.execute(
                select(alert_followups.c.item_id).where(
                    alert_followups.c.item_id.in_([f.item_id for f in new_followups])
                )
            )
            known = {row[0] for row in existing}
            fresh = [_followup_values(f) for f in new_followups if f.item_id not in known]
            if fresh:
                await conn.execute(insert(alert_followups), fresh)
        if n.items and mark != "handover":
            await conn.execute(
                insert(item_alerts),
                [
                    {
                        "item_id": i.item_id,
                        "kind": mark,
                        "notification_id": n.id,
                        "created_at": now,
                    }
                    for i in n.items
                ],
            )
        rows = [
            {
                "delivery_id": f"{n.id}.{receiver}",
                "receiver": receiver,
                "kind": n.kind,
                "notification": payload,
                "created_at": n.created_at,
                "next_attempt_at": now,
                "attempts": 0,
                "state": "pending",
            }
            for receiver in receivers
        ]
        if rows:
            await conn.execute(insert(alert_outbox), rows)

    async def followups(self, item_ids: Collection[int]) -> dict[int, FollowUp]:
        """The follow-up rows of the given items."""
        found: dict[int, FollowUp] = {}
        async with self._engine.connect() as conn:
            for chunk in chunked(item_ids):
                result = await conn.execute(
                    select(alert_followups).where(alert_followups.c.item_id.in_(chunk))
                )
                found.update((row.item_id, _followup(row)) for row in result)
        return found

    async def next_followup_at(self) -> datetime | None:
        """The earliest pending escalation step or reminder."""
        async with self._engine.connect() as conn:
            value: datetime | None = (
                await conn.execute(
                    select(func.min(alert_followups.c.next_at)).where(
                        alert_followups.c.stopped_at.is_(None)
                    )
                )
            ).scalar()
        return value

    async def due_followups(self, now: datetime) -> list[FollowUp]:
        """Follow-ups with a step due at `now`."""
        query = (
            select(alert_followups)
            .where(alert_followups.c.stopped_at.is_(None), alert_followups.c.next_at <= now)
            .order_by(alert_followups.c.next_at, alert_followups.c.item_id)
        )
        async with self._engine.connect() as conn:
            return [_followup(row) for row in await conn.execute(query)]

    async def stop_followups(
        self, item_ids: Collection[int], *, reason: str, now: datetime
    ) -> None:
        """No more escalation or reminders for these items (answered, dismissed, done)."""
        if not item_ids:
            return
        async with self._engine.begin() as conn:
            for chunk in chunked(item_ids):
                await conn.execute(
                    update(alert_followups)
                    .where(
                        alert_followups.c.item_id.in_(chunk),
                        alert_followups.c.stopped_at.is_(None),
                    )
                    .values(stopped_at=now, stop_reason=reason, next_at=None)
                )

    async def acknowledge(
        self,
        item_id: int,
        source: str,
        *,
        by: str,
        now: datetime,
        then: Callable[[AsyncConnection], Awaitable[None]] | None = None,
    ) -> FollowUp:
        """Record an ack: escalation and reminders stop (now, or never start). Idempotent.

        `then` runs in the same transaction when this call acknowledged it (the audit entry).
        """
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    select(alert_followups).where(alert_followups.c.item_id == item_id)
                )
            ).first()
            if row is None:
                await conn.execute(
                    insert(alert_followups),
                    [
                        _followup_values(
                            FollowUp(
                                item_id=item_id,
                                source=source,
                                breached_at=None,
                                acked_at=now,
                                acked_by=by,
                                stopped_at=now,
                                stop_reason="acked",
                            )
                        )
                    ],
                )
            elif row.acked_at is None:
                values: dict[str, Any] = {"acked_at": now, "acked_by": by}
                if row.stopped_at is None:
                    values.update(stopped_at=now, stop_reason="acked", next_at=None)
                await conn.execute(
                    update(alert_followups)
                    .where(alert_followups.c.item_id == item_id)
                    .values(**values)
                )
            if (row is None or row.acked_at is None) and then is not None:
                await then(conn)
            result = (
                await conn.execute(
                    select(alert_followups).where(alert_followups.c.item_id == item_id)
                )
            ).one()
        return _followup(result)

    async def handover_sent(self, source: str, starts_at: datetime) -> bool:
        """Whether the handover of this shift start was already queued."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(alert_handovers.c.source).where(
                        alert_handovers.c.source == source,
                        alert_handovers.c.starts_at == starts_at,
                    )
                )
            ).first()
        return row is not None

    async def head(self, receiver: str) -> OutboxRow | None:
        """The oldest pending notification of a receiver (delivered strictly in order)."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(alert_outbox)
                    .where(alert_outbox.c.receiver == receiver, alert_outbox.c.state == "pending")
                    .order_by(alert_outbox.c.id)
                    .limit(1)
                )
            ).first()
        return None if row is None else _row(row)

    async def finish(self, row_id: int, *, state: str, now: datetime, error: str | None) -> None:
        """Mark a row delivered or dead."""
        async with self._writes:
            async with self._engine.begin() as conn:
                await conn.execute(
                    update(alert_outbox)
                    .where(alert_outbox.c.id == row_id)
                    .values(state=state, finished_at=now, last_error=error)
                )
            self._backlog = await self._read_backlog()

    async def retry_later(self, row_id: int, *, at: datetime, attempts: int, error: str) -> None:
        """Keep a row pending for another attempt at `at`."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(alert_outbox)
                .where(alert_outbox.c.id == row_id)
                .values(next_attempt_at=at, attempts=attempts, last_error=error)
            )

    async def newest_id(self) -> int:
        """The id of the latest notification queued (0 when none): others' writes show here."""
        async with self._engine.connect() as conn:
            value = (await conn.execute(select(func.max(alert_outbox.c.id)))).scalar()
        return int(value or 0)

    async def pending_counts(self) -> dict[str, int]:
        """Pending notifications per receiver."""
        async with self._engine.connect() as conn:
            result = await conn.execute(
                select(alert_outbox.c.receiver, func.count())
                .where(alert_outbox.c.state == "pending")
                .group_by(alert_outbox.c.receiver)
            )
            return {receiver: int(count) for receiver, count in result}

    async def rows(self, receiver: str | None = None) -> list[dict[str, Any]]:
        """Every outbox row (tests and operators' inspection)."""
        query = select(alert_outbox).order_by(alert_outbox.c.id)
        if receiver is not None:
            query = query.where(alert_outbox.c.receiver == receiver)
        async with self._engine.connect() as conn:
            return [dict(row._mapping) for row in await conn.execute(query)]


def _followup(row: Any) -> FollowUp:
    m = row._mapping
    return FollowUp(**{name: m[name] for name in FollowUp.__dataclass_fields__})


def _followup_values(f: FollowUp) -> dict[str, Any]:
    return {name: getattr(f, name) for name in FollowUp.__dataclass_fields__}


def _progress(f: FollowUp) -> dict[str, Any]:
    values: dict[str, Any] = {
        "escalations_sent": f.escalations_sent,
        "reminders_sent": f.reminders_sent,
        "next_at": f.next_at,
    }
    if f.next_at is None:
        values.update(stopped_at=f.stopped_at, stop_reason=f.stop_reason)
    return values
