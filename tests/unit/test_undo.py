"""Dismissals from the queue page wait 10 s for an undo; a shutdown does the waiting ones."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from monitor.alerts.actions import ActionError
from monitor.clock import FakeClock
from monitor.web.undo import UNDO_SECONDS, DelayedDismissals

T0 = datetime(2026, 11, 26, 22, 40, tzinfo=UTC)


class Recorder:
    """The item actions' dismiss, recorded; item 13 was answered meanwhile."""

    def __init__(self) -> None:
        self.done: list[tuple[int, str, str]] = []

    async def __call__(self, item_id: int, reason: str, by: str, actor: Any = None) -> Any:
        if item_id == 13:
            raise ActionError(409, "item 13 is answered_in_time: it cannot be dismissed")
        self.done.append((item_id, reason, by))


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_done_after_the_window_not_before_and_not_when_undone() -> None:
    clock, recorder = FakeClock(T0), Recorder()
    dismissals = DelayedDismissals(clock, recorder)
    dismissals.schedule(1, reason="spam", by="nina", brand="acme")
    dismissals.schedule(2, reason="duplicate", by="nina", brand="beta")
    assert [p.item_id for p in dismissals.pending(frozenset({"acme"}))] == [1]
    await clock.advance(UNDO_SECONDS - 1)
    await _settle()
    assert recorder.done == []
    undone = dismissals.undo(2)
    assert undone is not None and undone.reason == "duplicate"
    assert dismissals.undo(2) is None  # nothing left to undo
    await clock.advance(1)
    await _settle()
    assert recorder.done == [(1, "spam", "nina")]
    assert dismissals.pending(None) == []


async def test_a_shutdown_does_the_waiting_ones_and_a_refusal_is_only_logged() -> None:
    clock, recorder = FakeClock(T0), Recorder()
    dismissals = DelayedDismissals(clock, recorder)
    dismissals.schedule(13, reason="spam", by="nina", brand="acme")
    dismissals.schedule(14, reason="spam", by="nina", brand="acme")
    await dismissals.flush()
    assert recorder.done == [(14, "spam", "nina")]
    await clock.advance(UNDO_SECONDS)
    await _settle()
    assert recorder.done == [(14, "spam", "nina")]  # not done twice
