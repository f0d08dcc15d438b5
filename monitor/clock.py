"""Time as a dependency: the real clock and a controllable one for tests."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Tells the time and sleeps; injected so tests never wait for real."""

    def now(self) -> datetime:
        """Current instant, timezone-aware UTC."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait for the given number of seconds."""
        ...


class SystemClock:
    """The machine's clock."""

    def now(self) -> datetime:
        """Current instant, timezone-aware UTC."""
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        """Wait for real."""
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """A clock that only moves when a test advances it; sleepers wake when their time comes."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._sleepers: list[tuple[datetime, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        """The current fake instant."""
        return self._now

    async def sleep(self, seconds: float) -> None:
        """Block until the clock has been advanced past now + seconds."""
        wake_at = self._now + timedelta(seconds=max(0.0, seconds))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((wake_at, future))
        try:
            await future
        finally:
            self._sleepers = [(t, f) for t, f in self._sleepers if f is not future]

    @property
    def pending_sleeps(self) -> list[datetime]:
        """Wake-up instants of the current sleepers, soonest first."""
        return sorted(t for t, _ in self._sleepers)

    async def advance(self, seconds: float) -> None:
        """Move time forward and let every sleeper that is due run."""
        self._now += timedelta(seconds=seconds)
        for wake_at, future in list(self._sleepers):
            if wake_at <= self._now and not future.done():
                future.set_result(None)
        # Give woken tasks a chance to run before the test continues.
        for _ in range(5):
            await asyncio.sleep(0)


async def sleep_or_wake(clock: Clock, wake: asyncio.Event, seconds: float | None) -> None:
    """Sleep on `clock` for `seconds` (forever if None) or until `wake` is set, then clear it."""
    waiters: list[asyncio.Task[object]] = [asyncio.create_task(wake.wait())]
    if seconds is not None:
        waiters.append(asyncio.create_task(clock.sleep(seconds)))
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waiters:
            task.cancel()
        # The waiters' own CancelledErrors are collected, not raised; a cancellation of this
        # task that arrives meanwhile is raised (suppressing it here once lost a shutdown).
        await asyncio.gather(*waiters, return_exceptions=True)
        wake.clear()
