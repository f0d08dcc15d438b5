"""Acknowledge and dismiss: what the API, the queue page and the signed links all call.

Ack stops escalation and reminders for an item (or keeps them from starting) without
touching its SLA figures: it is still waiting for a reply. Dismiss takes an unanswered item
out of every figure with a reason (DESIGN.md section 2) and goes through the same events as
a hidden post, so metrics, the deadline scheduler and the notifier all follow.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncConnection

from monitor.alerts.escalation import FollowUp
from monitor.alerts.outbox import Outbox
from monitor.audit import Actor, AuditLog
from monitor.clock import Clock
from monitor.domain import Item, ItemState, SourceRef
from monitor.domain.events import Event, ItemAcknowledged, ItemDismissed
from monitor.logging import get_logger
from monitor.store import Store

log = get_logger("monitor.alerts.actions")

DismissReason = Literal["no_reply_needed", "spam", "duplicate"]
DISMISS_REASONS: tuple[DismissReason, ...] = ("no_reply_needed", "spam", "duplicate")
_UNANSWERED = tuple(s for s in ItemState if s.is_unanswered)
BY_LIMIT = 100


class ActionError(Exception):
    """The action cannot be done; `status` is the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, kw_only=True)
class ActionResult:
    """The item after the action, and its follow-up (ack) record."""

    item: Item
    followup: FollowUp | None
    changed: bool  # False: it was already acknowledged


class ItemActions:
    """Ack and dismiss one item; `emit` hands events to every subscriber of the app."""

    def __init__(
        self,
        *,
        store: Store,
        outbox: Outbox,
        clock: Clock,
        sources: Mapping[str, SourceRef],
        emit: Callable[[list[Event]], None],
    ) -> None:
        self._store = store
        self._outbox = outbox
        self._clock = clock
        self._sources = dict(sources)
        self._emit = emit
        self._audit = AuditLog(store)

    async def item(self, item_id: int) -> Item:
        """The item, or ActionError 404."""
        found = (await self._store.items_by_id([item_id])).get(item_id)
        if found is None or found.source not in self._sources:
            raise ActionError(404, f"no item {item_id}")
        return found

    async def ack(self, item_id: int, *, by: str, actor: Actor | None = None) -> ActionResult:
        """Acknowledge: no more escalation or reminders; the SLA clock keeps running.

        `by` is shown as who acknowledged; the audit records `actor` (default: `by`).
        """
        item = await self.item(item_id)
        if not item.state.is_unanswered:
            raise ActionError(409, f"item {item_id} is {item.state.value}: nothing to acknowledge")
        before = (await self._outbox.followups([item_id])).get(item_id)
        now = self._clock.now()
        audit = self._recorder("ack", item, now, actor or Actor(name=by, via="token"), by=by)
        followup = await self._outbox.acknowledge(
            item_id, item.source, by=_clean(by), now=now, then=audit
        )
        changed = before is None or before.acked_at is None
        if changed:
            log.info("item acknowledged", item=item_id, source=item.source, by=followup.acked_by)
            # Announced where the alert was seen, so a backup does not take it a second time.
            by_whom = followup.acked_by or _clean(by)
            self._emit([ItemAcknowledged(source=self._sources[item.source], item=item, by=by_whom)])
        return ActionResult(item=item, followup=followup, changed=changed)

    async def dismiss(
        self, item_id: int, *, reason: str, by: str, actor: Actor | None = None
    ) -> ActionResult:
        """Dismiss with a reason: the item leaves every figure and stays dismissed."""
        if reason not in DISMISS_REASONS:
            raise ActionError(400, f"reason must be one of {', '.join(DISMISS_REASONS)}")
        item = await self.item(item_id)
        if item.state is ItemState.DISMISSED and item.dismissed_reason == reason:
            return ActionResult(item=item, followup=None, changed=False)
        if not item.state.is_unanswered:
            raise ActionError(409, f"item {item_id} is {item.state.value}: it cannot be dismissed")
        who = actor or Actor(name=by, via="token")
        audit = self._recorder("dismiss", item, self._clock.now(), who, by=by, reason=reason)
        done = await self._store.dismiss(
            item_id, reason=reason, from_states=_UNANSWERED, then=audit
        )
        if done is None:
            raise ActionError(409, f"item {item_id} changed meanwhile; try again")
        before, after = done
        log.info("item dismissed", item=item_id, source=item.source, reason=reason, by=_clean(by))
        self._emit([ItemDismissed(source=self._sources[item.source], item=after, previous=before)])
        return ActionResult(item=after, followup=None, changed=True)

    async def record_undo(self, item_id: int, *, reason: str, actor: Actor) -> None:
        """Audit a dismissal called off in its undo window (the item itself never changed)."""
        item = await self.item(item_id)
        await self._audit.record(**self._entry("undo", item, self._clock.now(), actor, reason))

    def _entry(
        self, action: str, item: Item, now: datetime, actor: Actor, reason: str | None
    ) -> dict[str, Any]:
        return {
            "at": now,
            "actor": actor.name,
            "via": actor.via,
            "action": action,
            "item_id": item.message_id,
            "source": item.source,
            "brand": item.brand,
            "reason": reason,
            "origin": actor.origin,
        }

    def _recorder(
        self,
        action: str,
        item: Item,
        now: datetime,
        actor: Actor,
        *,
        by: str,
        reason: str | None = None,
    ) -> Callable[[AsyncConnection], Awaitable[None]]:
        """The audit entry, written in the action's own transaction."""
        entry = self._entry(action, item, now, actor, reason)
        if _clean(by) != actor.name:
            # Someone named in the request ("by") other than the token's holder.
            entry["detail"] = {"by": _clean(by)}

        async def record(conn: AsyncConnection) -> None:
            await self._audit.record_in(conn, **entry)

        return record


def _clean(by: str) -> str:
    text = " ".join(by.split())[:BY_LIMIT]
    return text or "someone"
