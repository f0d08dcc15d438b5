"""A request budget shared by every source on one site (e.g. Discourse's 60 requests/minute)."""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta

from monitor.clock import Clock

WINDOW = timedelta(minutes=1)


class RequestBudget:
    """Sliding one-minute window: `acquire` waits until a request fits the budget."""

    def __init__(self, *, per_minute: int, clock: Clock) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._sent: deque[datetime] = deque()
        self._blocked_until: datetime | None = None

    async def acquire(self) -> None:
        """Wait (on the injected clock) until one more request is within budget, then count it."""
        while True:
            now = self._clock.now()
            while self._sent and self._sent[0] <= now - WINDOW:
                self._sent.popleft()
            wait_until = (
                self._blocked_until if self._blocked_until and self._blocked_until > now else None
            )
            if wait_until is None and len(self._sent) >= self.per_minute:
                wait_until = self._sent[0] + WINDOW
            if wait_until is None:
                self._sent.append(now)
                return
            await self._clock.sleep((wait_until - now).total_seconds())

    def block_for(self, seconds: float) -> None:
        """The server said to wait (429 Retry-After): nobody on this site sends until then."""
        until = self._clock.now() + timedelta(seconds=seconds)
        if self._blocked_until is None or until > self._blocked_until:
            self._blocked_until = until
