"""Pure delay arithmetic: jittered intervals and exponential backoff."""

from __future__ import annotations

import random


def jittered(interval: float, rng: random.Random, spread: float = 0.1) -> float:
    """The poll interval ± `spread`, so many sources never poll in lock-step."""
    return interval * rng.uniform(1 - spread, 1 + spread)


def backoff_delay(
    failures: int,
    *,
    base: float,
    cap: float,
    rng: random.Random,
    retry_after: float | None = None,
) -> float:
    """Delay after `failures` consecutive failures: doubling, capped, with jitter.

    "Equal jitter" keeps at least half the nominal delay so a dead server is never hammered;
    a server's own Retry-After wins whenever it asks for more.
    """
    nominal = min(cap, base * 2 ** max(0, failures - 1))
    delay = rng.uniform(nominal / 2, nominal)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def usage_slowdown(usage_ratio: float | None) -> float:
    """How much longer to wait as a platform's usage quota fills up (1 = normal pace).

    Below half the quota nothing changes; above it the interval grows as 1 / (1 - usage), so
    at 75% we poll 4x less often and at 90% 10x less, never more than 16x: the quota then
    recovers before the platform has to throttle us.
    """
    if usage_ratio is None or usage_ratio < 0.5:
        return 1.0
    if usage_ratio >= 1.0 - 1 / 16:
        return 16.0
    return 1.0 / (1.0 - usage_ratio)
