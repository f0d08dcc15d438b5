"""Dismissals from the queue page wait UNDO_SECONDS before they happen, so a stray tap on a
phone at night can be undone (the page has no scripts: the server holds the dismissal)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiohttp import web

from monitor.alerts.actions import ActionError, ActionResult
from monitor.audit import Actor
from monitor.clock import Clock
from monitor.logging import get_logger
from monitor.web.keys import ALERTS, CLOCK

log = get_logger("monitor.web.undo")

UNDO_SECONDS = 10.0

Dismiss = Callable[[int, str, str, Actor | None], Awaitable[ActionResult]]


@dataclass(frozen=True, kw_only=True)
class PendingDismissal:
    """A dismissal chosen on the page, not done until `at` unless undone."""

    item_id: int
    reason: str
    by: str
    brand: str
    at: datetime
    # Who chose it (the audit records the dismissal, when done, under this name).
    actor: Actor | None = None


class DelayedDismissals:
    """Dismissals waiting out their undo window, then done through the item actions."""

    def __init__(self, clock: Clock, dismiss: Dismiss) -> None:
        self._clock = clock
        self._dismiss = dismiss
        self._pending: dict[int, tuple[PendingDismissal, asyncio.Task[None]]] = {}

    def schedule(
        self, item_id: int, *, reason: str, by: str, brand: str, actor: Actor | None = None
    ) -> PendingDismissal:
        """Dismiss `item_id` in UNDO_SECONDS (a second tap replaces the first)."""
        self.undo(item_id)
        at = self._clock.now() + timedelta(seconds=UNDO_SECONDS)
        pending = PendingDismissal(
            item_id=item_id, reason=reason, by=by, brand=brand, at=at, actor=actor
        )
        task = asyncio.create_task(self._later(pending), name=f"dismiss:{item_id}")
        self._pending[item_id] = (pending, task)
        return pending

    def undo(self, item_id: int) -> PendingDismissal | None:
        """Call off a dismissal still waiting; None when there is none (done, or never asked)."""
        found = self._pending.pop(item_id, None)
        if found is None:
            return None
        found[1].cancel()
        return found[0]

    def pending(self, brands: frozenset[str] | None) -> list[PendingDismissal]:
        """The dismissals still waiting, of these brands (None: all)."""
        return [p for p, _ in self._pending.values() if brands is None or p.brand in brands]

    async def flush(self) -> None:
        """At shutdown: do every waiting dismissal now (it was asked for; only its undo
        window is cut short)."""
        waiting = list(self._pending.values())
        self._pending.clear()
        for pending, task in waiting:
            task.cancel()
            await self._do(pending)

    async def _later(self, pending: PendingDismissal) -> None:
        # Until its instant, however late this task got to run.
        await self._clock.sleep((pending.at - self._clock.now()).total_seconds())
        if self._pending.get(pending.item_id, (None,))[0] is pending:
            del self._pending[pending.item_id]
            await self._do(pending)

    async def _do(self, pending: PendingDismissal) -> None:
        try:
            await self._dismiss(pending.item_id, pending.reason, pending.by, pending.actor)
        except ActionError as err:
            # Answered or dismissed by someone else meanwhile: nothing left to do.
            log.info("delayed dismissal not done", item=pending.item_id, error=str(err))


PENDING = web.AppKey("pending_dismissals", DelayedDismissals)


async def delayed_dismissals(app: web.Application) -> AsyncIterator[None]:
    """App context: the page's dismissals, done at shutdown if their window is still open."""

    async def dismiss(item_id: int, reason: str, by: str, actor: Actor | None) -> ActionResult:
        return await app[ALERTS].actions.dismiss(item_id, reason=reason, by=by, actor=actor)

    dismissals = DelayedDismissals(app[CLOCK], dismiss)
    app[PENDING] = dismissals
    yield
    try:
        await dismissals.flush()
    except Exception:  # a store already gone must not stop the shutdown
        log.exception("waiting dismissals not done at shutdown")
