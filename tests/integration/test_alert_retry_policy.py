"""The one retry policy of alert delivery (issue 22), step by step on a fake clock.

5xx, 408, 429 and network errors: retried with backoff until max_age. Any other refusal
(4xx, 3xx): retried the same way for a 10-minute grace from the first of an unbroken run of
refusals, then dead-lettered as permanent, and the outbox row says so. The sender is scripted;
the outbox is the real one on SQLite.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from monitor.alerts.delivery import REFUSED_GRACE_SECONDS, DeliveryWorker
from monitor.alerts.models import Duty, Notification
from monitor.alerts.outbox import Outbox
from monitor.alerts.transport import SendResult
from monitor.clock import FakeClock
from monitor.config.alerts import ReceiverConfig
from monitor.metrics import Metrics
from monitor.store import Store, create_engine, upgrade

T0 = datetime(2026, 11, 20, 21, 0, tzinfo=UTC)
GRACE = timedelta(seconds=REFUSED_GRACE_SECONDS)


def refused(status: int = 404) -> SendResult:
    return SendResult(ok=False, retryable=False, status=status, error=f"HTTP {status}")


def failed(status: int | None = 503) -> SendResult:
    return SendResult(ok=False, retryable=True, status=status, error=f"HTTP {status}")


OK = SendResult(ok=True, retryable=False, status=200)


class Script:
    """A sender that answers from a function of the attempt's instant."""

    def __init__(self, answer: Callable[[datetime], SendResult]) -> None:
        self.answer = answer
        self.attempts: list[datetime] = []

    async def __call__(self, receiver: ReceiverConfig, n: Notification, **kw: Any) -> SendResult:
        self.attempts.append(kw["now"])
        return self.answer(kw["now"])


@pytest.fixture
async def outbox(tmp_path: Path) -> AsyncIterator[Outbox]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/outbox.db")
    await upgrade(engine)
    yield Outbox(Store(engine))
    await engine.dispose()


def notification(number: int, at: datetime) -> Notification:
    return Notification(
        id=f"breach:acme-fb:{number}",
        kind="breach",
        brand="acme",
        source="acme-fb",
        platform="facebook",
        created_at=at,
        items=(),
        duty=Duty(student="nina", backup=None, lead="lisa"),
    )


def worker(outbox: Outbox, clock: FakeClock, script: Script, max_age: float) -> DeliveryWorker:
    receiver = ReceiverConfig(
        name="team", type="webhook", url=SecretStr("http://127.0.0.1:9/hook"), max_age=max_age
    )
    return DeliveryWorker(
        receiver=receiver,
        outbox=outbox,
        session=None,  # type: ignore[arg-type]  # the scripted sender needs none
        clock=clock,
        metrics=Metrics(version="test", targets=()),
        sender=script,
        rng=random.Random(7),
    )


async def run_until_settled(
    w: DeliveryWorker, outbox: Outbox, clock: FakeClock, until: datetime
) -> None:
    """Step the worker, jumping the clock to each next attempt, until its queue is empty."""
    while clock.now() <= until:
        delay = await w.step()
        if delay is None or await outbox.head("team") is None:
            return
        if delay > 0:
            await clock.advance(delay)


async def rows(outbox: Outbox) -> list[tuple[str, int, str | None]]:
    return [(r["state"], r["attempts"], r["last_error"]) for r in await outbox.rows("team")]


async def test_a_refusal_is_retried_for_the_grace_then_dead_lettered_as_permanent(
    outbox: Outbox,
) -> None:
    clock = FakeClock(T0)
    script = Script(lambda now: refused(404))
    w = worker(outbox, clock, script, max_age=86400)
    await outbox.enqueue(notification(1, T0), ["team"], T0)
    await outbox.enqueue(notification(2, T0), ["team"], T0)

    # Within the grace: still pending, and the record says when it will be given up.
    await w.step()
    (first, second) = await rows(outbox)
    assert first[0:2] == ("pending", 1)
    assert (
        first[2] == "HTTP 404; a refusal: given up at 2026-11-20T21:10:00Z unless accepted before"
    )
    assert w.refusing_since == T0

    await run_until_settled(w, outbox, clock, T0 + timedelta(hours=1))
    (first, second) = await rows(outbox)
    assert first[0] == "dead" and second[0] == "dead"
    assert first[2] == (
        "HTTP 404; refused since 2026-11-20T21:00:00Z (grace 600 s): given up as permanent"
    )
    # Retried with backoff through the grace (5 s doubling, jittered), then once more at most.
    assert 5 <= first[1] <= 9
    *retries, last, next_in_line = script.attempts
    assert all(b > a for a, b in zip(retries, [*retries[1:], last], strict=True))
    assert last - T0 >= GRACE > retries[-1] - T0
    # The next one in line: the receiver's run of refusals is older than the grace already, so
    # its first refusal is final (at once, not another 10 minutes).
    assert next_in_line == last and second[1] == 0


@pytest.mark.parametrize(
    "answer", [failed(503), failed(500), failed(408), failed(429), failed(None)]
)
async def test_5xx_408_429_and_network_errors_are_retried_until_max_age(
    outbox: Outbox, answer: SendResult
) -> None:
    clock = FakeClock(T0)
    script = Script(lambda now: answer)
    w = worker(outbox, clock, script, max_age=3 * 3600)
    await outbox.enqueue(notification(1, T0), ["team"], T0)
    await run_until_settled(w, outbox, clock, T0 + timedelta(hours=4))
    ((state, attempts, error),) = await rows(outbox)
    assert state == "dead"
    # Well past the 10-minute grace of a refusal: only max_age ends it.
    assert script.attempts[-1] - T0 <= timedelta(hours=3)
    assert script.attempts[-1] - T0 >= timedelta(hours=3) - timedelta(minutes=5)
    assert attempts == len(script.attempts) and error == f"gave up after {attempts} attempts"


async def test_any_other_answer_ends_a_run_of_refusals(outbox: Outbox) -> None:
    # 404 for 8 minutes, a 503 burst, then 404 again: the grace starts again at the second run.
    def answer(now: datetime) -> SendResult:
        if now < T0 + timedelta(minutes=8):
            return refused(404)
        if now < T0 + timedelta(minutes=20):
            return failed(503)
        return refused(403)

    clock = FakeClock(T0)
    script = Script(answer)
    w = worker(outbox, clock, script, max_age=86400)
    await outbox.enqueue(notification(1, T0), ["team"], T0)
    await run_until_settled(w, outbox, clock, T0 + timedelta(hours=2))
    ((state, _, error),) = await rows(outbox)
    assert state == "dead"
    assert error is not None and error.startswith("HTTP 403; refused since 2026-11-20T21:2")
    assert script.attempts[-1] - T0 >= timedelta(minutes=20) + GRACE


async def test_a_refusal_after_an_accepted_one_starts_a_fresh_grace(outbox: Outbox) -> None:
    clock = FakeClock(T0)
    answers = iter([refused(401)] * 3 + [OK] + [refused(401)] * 50)
    script = Script(lambda now: next(answers))
    w = worker(outbox, clock, script, max_age=86400)
    for number in (1, 2):
        await outbox.enqueue(notification(number, T0), ["team"], T0)
    await run_until_settled(w, outbox, clock, T0 + timedelta(hours=2))
    first, second = await rows(outbox)
    assert first[0] == "delivered"
    assert second[0] == "dead" and second[1] >= 5  # its own grace, not the first one's


async def test_max_age_ends_a_refusal_within_its_grace(outbox: Outbox) -> None:
    clock = FakeClock(T0)
    script = Script(lambda now: refused(400))
    w = worker(outbox, clock, script, max_age=120)
    await outbox.enqueue(notification(1, T0), ["team"], T0)
    await run_until_settled(w, outbox, clock, T0 + timedelta(hours=1))
    ((state, attempts, error),) = await rows(outbox)
    assert state == "dead" and error == f"gave up after {attempts} attempts"
    assert script.attempts[-1] - T0 <= timedelta(seconds=120)


async def test_no_usable_url_is_dead_at_once(outbox: Outbox) -> None:
    clock = FakeClock(T0)
    script = Script(
        lambda now: SendResult(ok=False, retryable=False, error="invalid URL", permanent=True)
    )
    w = worker(outbox, clock, script, max_age=86400)
    await outbox.enqueue(notification(1, T0), ["team"], T0)
    await w.step()
    assert await rows(outbox) == [("dead", 0, "invalid URL")]
