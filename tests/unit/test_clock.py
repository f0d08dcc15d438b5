"""sleep_or_wake: a cancellation is never lost, whenever it comes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from monitor.clock import FakeClock, sleep_or_wake


@pytest.mark.parametrize("steps", range(8))
async def test_a_cancel_that_arrives_while_a_wake_is_handled_still_ends_the_loop(
    steps: int,
) -> None:
    """A loop of sleep_or_wake is cancelled `steps` loop turns after its wake was set: at any
    of them, including while it cleans up after the wake, the task ends cancelled (a lost
    cancellation kept a service's shutdown waiting forever)."""
    clock = FakeClock(datetime(2026, 12, 4, tzinfo=UTC))
    wake = asyncio.Event()

    async def forever() -> None:
        while True:
            await sleep_or_wake(clock, wake, 60.0)

    task = asyncio.create_task(forever())
    await asyncio.sleep(0)
    wake.set()
    for _ in range(steps):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=2)
