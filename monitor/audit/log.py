"""The audit trail: one row per ack, dismiss, undo, erase, export, token change and reload.

Rows are only ever inserted (no update or delete runs on `audit_log` anywhere), so the trail
can explain afterwards who dismissed a complaint, when, why and from where.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import insert, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from monitor.store import Store
from monitor.store.tables import audit_log

# Every action recorded (docs/access.md says what each means); a new one is added here.
ACTIONS = (
    "ack",
    "dismiss",
    "undo",
    "erase",
    "export",
    "token_add",
    "token_revoke",
    "config_reload",
)
# token: the API, the queue page or a signed link; cli: a command; system: the service itself.
VIAS = ("token", "cli", "system")
# The widths of the columns (migration 0006): longer values are cut, not refused.
_SHORT = 200
DEFAULT_LIMIT = 1000


@dataclass(frozen=True, kw_only=True)
class Actor:
    """Who acts, how (one of VIAS) and from where (a client address, a host name)."""

    name: str
    via: str
    origin: str | None = None


@dataclass(frozen=True, kw_only=True)
class AuditEntry:
    """One row of the audit trail."""

    id: int
    at: datetime
    actor: str
    via: str
    action: str
    item_id: int | None
    source: str | None
    brand: str | None
    reason: str | None
    origin: str | None
    detail: Mapping[str, Any] | None

    def as_dict(self) -> dict[str, Any]:
        """The entry for JSON and CSV (the instant in ISO 8601)."""
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        values["at"] = self.at.isoformat()
        return values


def _short(value: str | None) -> str | None:
    return None if value is None else value[:_SHORT]


def _values(
    *,
    at: datetime,
    actor: str,
    via: str,
    action: str,
    item_id: int | None,
    source: str | None,
    brand: str | None,
    reason: str | None,
    origin: str | None,
    detail: Mapping[str, Any] | None,
) -> dict[str, Any]:
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r} (one of {', '.join(ACTIONS)})")
    if via not in VIAS:
        raise ValueError(f"unknown audit via {via!r} (one of {', '.join(VIAS)})")
    return {
        "at": at,
        "actor": _short(" ".join(actor.split())) or "someone",
        "via": via,
        "action": action,
        "item_id": item_id,
        "source": _short(source),
        "brand": _short(brand),
        "reason": reason,
        "origin": _short(origin),
        "detail": dict(detail) if detail is not None else None,
    }


def _entry(row: Row[Any]) -> AuditEntry:
    m = row._mapping
    return AuditEntry(**{name: m[name] for name in AuditEntry.__dataclass_fields__})


class AuditLog:
    """Appends to and reads the audit trail."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def record(self, **entry: Any) -> None:
        """Append one entry in a transaction of its own (the keywords of `record_in`)."""
        async with self._store.engine.begin() as conn:
            await self.record_in(conn, **entry)

    async def record_in(
        self,
        conn: AsyncConnection,
        *,
        at: datetime,
        actor: str,
        via: str,
        action: str,
        item_id: int | None = None,
        source: str | None = None,
        brand: str | None = None,
        reason: str | None = None,
        origin: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """Append one entry inside the caller's transaction (it commits with the action)."""
        values = _values(
            at=at,
            actor=actor,
            via=via,
            action=action,
            item_id=item_id,
            source=source,
            brand=brand,
            reason=reason,
            origin=origin,
            detail=detail,
        )
        await conn.execute(insert(audit_log).values(**values))

    async def entries(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        actor: str | None = None,
        action: str | None = None,
        item_id: int | None = None,
        brand: str | None = None,
        brands: Collection[str] | Literal["*"] | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[AuditEntry]:
        """Entries newest first; `since` inclusive, `until` exclusive.

        `brands` is what the reader may see: None everything (admin, CLI), "*" every entry
        of a brand, or only the entries of these brands (entries without a brand are left out).
        """
        query = select(audit_log)
        if since is not None:
            query = query.where(audit_log.c.at >= since)
        if until is not None:
            query = query.where(audit_log.c.at < until)
        if actor is not None:
            query = query.where(audit_log.c.actor == actor)
        if action is not None:
            query = query.where(audit_log.c.action == action)
        if item_id is not None:
            query = query.where(audit_log.c.item_id == item_id)
        if brand is not None:
            query = query.where(audit_log.c.brand == brand)
        if brands == "*":
            query = query.where(audit_log.c.brand.is_not(None))
        elif brands is not None:
            query = query.where(audit_log.c.brand.in_(sorted(brands)))
        query = query.order_by(audit_log.c.at.desc(), audit_log.c.id.desc()).limit(limit)
        async with self._store.engine.connect() as conn:
            return [_entry(row) for row in await conn.execute(query)]
