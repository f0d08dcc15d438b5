"""The persistent outbox: notifications wait here per receiver until delivered or given up."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update

from monitor.alerts.models import Notification, notification_from_json, notification_to_json
from monitor.store import Store
from monitor.store.tables import alert_outbox, item_alerts


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

    async def alerted(self, item_ids: Collection[int]) -> dict[int, set[str]]:
        """The kinds each item was already alerted for."""
        found: dict[int, set[str]] = {}
        ids = sorted(item_ids)
        async with self._engine.connect() as conn:
            for start in range(0, len(ids), 1000):
                chunk = ids[start : start + 1000]
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

    async def enqueue(self, n: Notification, receivers: Iterable[str], now: datetime) -> None:
        """Record the alert for its items and queue it for every receiver, atomically."""
        payload = notification_to_json(n)
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(item_alerts),
                [
                    {
                        "item_id": i.item_id,
                        "kind": n.kind,
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
        async with self._engine.begin() as conn:
            await conn.execute(
                update(alert_outbox)
                .where(alert_outbox.c.id == row_id)
                .values(state=state, finished_at=now, last_error=error)
            )

    async def retry_later(self, row_id: int, *, at: datetime, attempts: int, error: str) -> None:
        """Keep a row pending for another attempt at `at`."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(alert_outbox)
                .where(alert_outbox.c.id == row_id)
                .values(next_attempt_at=at, attempts=attempts, last_error=error)
            )

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
