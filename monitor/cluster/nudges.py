"""Nudges: short notes one instance leaves for the others in the database (a webhook for a
source another instance polls, an ack it must know of, "leases changed: look again")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from monitor.store.tables import cluster_nudges

# The source of a nudge meant for every instance.
EVERYONE = "*"


@dataclass(frozen=True, kw_only=True)
class Nudge:
    """One note: for the holder of `source` (or everyone), what to do."""

    id: int
    source: str
    body: dict[str, Any]


class Nudges:
    """The cluster_nudges table."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def send(self, source: str, body: dict[str, Any], now: datetime) -> None:
        """Leave a note for the holder of `source` (EVERYONE: all instances)."""
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(cluster_nudges).values(source=source, body=body, created_at=now)
            )

    async def newest(self) -> int:
        """The id of the latest note (0 when none): where a new reader starts."""
        async with self._engine.connect() as conn:
            value = (await conn.execute(select(func.max(cluster_nudges.c.id)))).scalar()
        return int(value or 0)

    async def after(self, last: int) -> list[Nudge]:
        """The notes left since `last`, oldest first."""
        query = (
            select(cluster_nudges).where(cluster_nudges.c.id > last).order_by(cluster_nudges.c.id)
        )
        async with self._engine.connect() as conn:
            rows = await conn.execute(query)
            return [Nudge(id=r.id, source=r.source, body=dict(r.body)) for r in rows]

    async def prune(self, before: datetime) -> None:
        """Forget notes older than `before` (every reader has seen them)."""
        async with self._engine.begin() as conn:
            await conn.execute(delete(cluster_nudges).where(cluster_nudges.c.created_at < before))
