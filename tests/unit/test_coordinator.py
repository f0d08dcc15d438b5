"""The poll loop on a fake clock: groups poll together, usage slows polling, errors back off."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.clock import FakeClock
from monitor.domain import Batch, Message, Period, Skipped, SourceRef
from monitor.metrics import Metrics
from monitor.pipeline import SourceSettings
from monitor.poller import Coordinator, PolledSource
from monitor.poller.backoff import backoff_delay, usage_slowdown
from monitor.sla.calendar import ALWAYS
from monitor.sla.evaluate import SlaPolicy
from monitor.sources.base import FetchRequest, RateLimited, TransientError
from monitor.store import Store, create_engine, upgrade
from monitor.web.health import _first_poll_state

START = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


class ScriptedSource:
    """A Source that records when it was asked and answers from a script of outcomes."""

    def __init__(self, clock: FakeClock, outcomes: list[Exception | float | None]) -> None:
        self.clock = clock
        self.outcomes = outcomes
        self.calls: list[float] = []

    async def fetch(self, request: FetchRequest) -> Batch:
        self.calls.append((self.clock.now() - START).total_seconds())
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if isinstance(outcome, Exception):
            raise outcome
        return Batch(messages=(), cursor={}, api_usage_ratio=outcome)


def settings(name: str) -> SourceSettings:
    return SourceSettings(
        ref=SourceRef(name=name, brand="b", platform="test"),
        policy=SlaPolicy(
            office=ALWAYS,
            coverage=ALWAYS,
            targets={Period.OFFICE_HOURS: 60.0, Period.AFTER_HOURS: 60.0},
            warn_at=0.75,
            reply_match="thread",
        ),
        ignore_authors=frozenset(),
        active_days=14,
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/c.db")
    await upgrade(engine)
    yield Store(engine)
    await engine.dispose()


async def run_for(clock: FakeClock, coordinator: Coordinator, seconds: int, loops: int) -> None:
    """Jump from one wake-up to the next until `seconds` of fake time have passed."""

    async def all_asleep() -> None:
        # Polls do real database I/O: wait until every loop sleeps on the fake clock again.
        for _ in range(2000):
            if len(clock.pending_sleeps) == loops:
                return
            await asyncio.sleep(0.001)
        raise AssertionError("a poll loop never went back to sleep")

    coordinator.start()
    await all_asleep()
    end = (clock.now() - START).total_seconds() + seconds
    while clock.pending_sleeps and (clock.pending_sleeps[0] - START).total_seconds() <= end:
        await clock.advance((clock.pending_sleeps[0] - clock.now()).total_seconds())
        await all_asleep()
    await coordinator.stop()


def make(
    store: Store, clock: FakeClock, sources: dict[str, ScriptedSource], group: str | None
) -> Coordinator:
    entries = [
        PolledSource(settings=settings(n), source=s, interval=60, group=group)
        for n, s in sources.items()
    ]
    metrics = Metrics(version="t", targets=[60.0])
    for entry in entries:
        metrics.prepare(entry.settings.ref)
    return Coordinator(
        sources=entries,
        store=store,
        metrics=metrics,
        on_events=lambda events: None,
        clock=clock,
        rng=random.Random(1),
    )


async def test_a_group_polls_together_and_a_failing_member_backs_off_alone(store: Store) -> None:
    clock = FakeClock(START)
    healthy = [ScriptedSource(clock, []) for _ in range(3)]
    broken = ScriptedSource(clock, [TransientError("down")] * 10)
    sources = {"a": healthy[0], "b": healthy[1], "c": healthy[2], "d": broken}
    await run_for(clock, make(store, clock, sources, group="token-1"), 300, loops=1)
    # Healthy members always run in the same cycles, once per ~60 s (jitter ±10%).
    assert healthy[0].calls == healthy[1].calls == healthy[2].calls
    assert 4 <= len(healthy[0].calls) <= 6
    assert all(
        54 <= b - a <= 66 for a, b in zip(healthy[0].calls, healthy[0].calls[1:], strict=False)
    )
    # The broken one retries on its own, sooner at first, never in a tight loop.
    gaps = [b - a for a, b in zip(broken.calls, broken.calls[1:], strict=False)]
    assert gaps and min(gaps) >= 5


async def test_high_api_usage_slows_polling_down(store: Store) -> None:
    clock = FakeClock(START)
    busy = ScriptedSource(clock, [0.9] * 20)
    calm = ScriptedSource(clock, [0.1] * 20)
    await run_for(clock, make(store, clock, {"busy": busy, "calm": calm}, group=None), 700, loops=2)
    assert len(calm.calls) >= 10
    assert len(busy.calls) == 2  # at 90% usage the next poll waits ~10 intervals


async def test_retry_after_beats_the_backoff_curve(store: Store) -> None:
    clock = FakeClock(START)
    throttled = ScriptedSource(clock, [RateLimited("slow down", retry_after=600)])
    await run_for(clock, make(store, clock, {"t": throttled}, group=None), 700, loops=1)
    first, second = throttled.calls[:2]
    assert second - first == pytest.approx(600, abs=1)


def test_pure_delay_rules() -> None:
    assert usage_slowdown(None) == usage_slowdown(0.3) == 1.0
    assert usage_slowdown(0.75) == 4.0
    assert usage_slowdown(0.99) == 16.0
    rng = random.Random(0)
    delays = [backoff_delay(n, base=10, cap=900, rng=rng) for n in range(1, 12)]
    assert all(5 <= d <= 900 for d in delays)
    assert delays[-1] >= 450  # capped, with at least half the nominal delay


class BatchSource:
    """A Source that answers from a script of ready-made batches and records the requests."""

    def __init__(self, batches: list[Batch]) -> None:
        self.batches = batches
        self.requests: list[FetchRequest] = []

    async def fetch(self, request: FetchRequest) -> Batch:
        self.requests.append(request)
        return self.batches.pop(0) if self.batches else Batch(messages=(), cursor=request.cursor)


async def test_an_interrupted_poll_is_stored_and_resumed_after_the_wait(store: Store) -> None:
    clock = FakeClock(START)
    resume = {"resume": {"left": ["t2"]}}
    source = BatchSource(
        [
            Batch(messages=(), cursor=resume, interrupted="rate_limited", wait_seconds=42.0),
            Batch(messages=(), cursor={"done": True}),
        ]
    )
    coordinator = make(store, clock, {}, group=None)
    entry = PolledSource(settings=settings("s"), source=source, interval=60)
    coordinator.sources["s"] = entry
    coordinator._metrics.prepare(entry.settings.ref)

    delay = await coordinator.poll_once("s")
    assert delay == pytest.approx(42.0, abs=1.0)  # the platform's wait, not the interval
    assert entry.cursor == resume and entry.up is True  # progress kept; not down
    assert entry.last_success is None  # the poll has not completed yet
    assert coordinator._metrics.poll_errors.labels("b", "s", "rate_limited")._value.get() == 1
    assert (await store.source_states())["s"].cursor == resume  # saved with the batch
    # /readyz says why the source is not ready yet.
    assert _first_poll_state(entry).startswith("backfill interrupted 1 time so far, resuming")

    await coordinator.poll_once("s")
    assert source.requests[1].cursor == resume  # the next fetch resumes from it
    assert entry.cursor == {"done": True} and entry.last_success == START


async def test_a_skipped_thread_is_counted_once_and_left_out_until_its_retry(
    store: Store,
) -> None:
    clock = FakeClock(START)
    why = Skipped(reason="forbidden", detail="HTTP 403")
    source = BatchSource([Batch(messages=(), cursor={}, skipped={"t1": why}) for _ in range(3)])
    coordinator = make(store, clock, {}, group=None)
    entry = PolledSource(settings=settings("s"), source=source, interval=60)
    coordinator.sources["s"] = entry
    metrics = coordinator._metrics
    metrics.prepare(entry.settings.ref)
    for _ in range(3):
        await coordinator.poll_once("s")
        await clock.advance(60)
    assert metrics.source_skipped.labels("b", "s", "forbidden")._value.get() == 1
    assert entry.up is True
    assert "t1" in entry.skips and entry.skips.resting(clock.now()) == {"t1"}


async def test_a_post_with_a_skipped_threads_number_does_not_clear_the_skip(
    store: Store,
) -> None:
    """Forum topic 2 and post 2 are different objects: reading post 2 says nothing of topic 2."""
    clock = FakeClock(START)
    post_two = Message(
        platform_id="2",
        thread_id="7",
        parent_id=None,
        author_id="u",
        author_name="u",
        text="hi",
        created_at=START,
        seq=1,
        is_brand=False,
    )
    why = Skipped(reason="forbidden", detail="HTTP 403")
    source = BatchSource(
        [
            Batch(messages=(), cursor={}, skipped={"2": why}),
            Batch(messages=(post_two,), cursor={}, complete_threads={"7": frozenset({"2"})}),
        ]
    )
    coordinator = make(store, clock, {}, group=None)
    entry = PolledSource(settings=settings("s"), source=source, interval=60)
    coordinator.sources["s"] = entry
    coordinator._metrics.prepare(entry.settings.ref)
    await coordinator.poll_once("s")
    await clock.advance(60)
    await coordinator.poll_once("s")
    assert "2" in entry.skips  # still skipped: only a read of thread 2 clears it
