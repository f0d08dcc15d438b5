"""The audit entry of a consumer's export or erasure, the same from the CLI and the API.

Counts only: the entry says who asked, how, from where and how much was found or erased,
never the name or id of the person concerned (docs/data-protection.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncConnection

from monitor.audit.log import Actor, AuditLog
from monitor.store import Store
from monitor.store.privacy import Recorder, Redacted

# What an export found and an erasure changed, counted in the entry's detail.
COUNTED = ("messages", "items", "alerts")


def privacy_counts(held: Mapping[str, Any] | Redacted) -> dict[str, int]:
    """How many messages, items and alerts an export holds or an erasure changed."""
    if isinstance(held, Redacted):
        return {name: int(getattr(held, name)) for name in COUNTED}
    return {name: len(held[name]) for name in COUNTED}


async def record_privacy(
    store: Store,
    action: Literal["export", "erase"],
    held: Mapping[str, Any] | Redacted,
    *,
    actor: Actor,
    at: datetime,
) -> dict[str, int]:
    """Append the one entry of an export (`held`: its JSON) or erasure (its Redacted); the
    counts recorded are returned."""
    async with store.engine.begin() as conn:
        return await record_privacy_in(conn, store, action, held, actor=actor, at=at)


def erasure_entry(store: Store, *, actor: Actor, at: datetime) -> Recorder:
    """What an erasure runs in its own transaction: its entry commits with it (there is no
    erasure without its record)."""

    async def record(conn: AsyncConnection, done: Redacted) -> dict[str, int]:
        return await record_privacy_in(conn, store, "erase", done, actor=actor, at=at)

    return record


async def record_privacy_in(
    conn: AsyncConnection,
    store: Store,
    action: Literal["export", "erase"],
    held: Mapping[str, Any] | Redacted,
    *,
    actor: Actor,
    at: datetime,
) -> dict[str, int]:
    """`record_privacy` inside the caller's transaction."""
    counts = privacy_counts(held)
    await AuditLog(store).record_in(
        conn,
        at=at,
        actor=actor.name,
        via=actor.via,
        action=action,
        origin=actor.origin,
        detail=counts,
    )
    return counts
