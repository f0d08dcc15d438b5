"""Coordinator: polls every source on its interval, never overlapping, backing off on errors."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, TextIO

from sqlalchemy.exc import SQLAlchemyError

from monitor.clock import Clock, sleep_or_wake
from monitor.domain import Batch
from monitor.domain.events import Event
from monitor.logging import correlated, get_logger
from monitor.metrics import Metrics
from monitor.pipeline import BatchResult, Guard, SourceSettings, handle_batch
from monitor.poller.backoff import backoff_delay, jittered, usage_slowdown
from monitor.poller.skips import SkipList
from monitor.progress import Progress
from monitor.sources.base import FetchRequest, Listens, RateLimited, Source, SourceError
from monitor.store import FencedOut, Store
from monitor.store.identities import readable

log = get_logger("monitor.poller")

# Backoff never waits longer than this, whatever the interval, so recovery is noticed.
MAX_BACKOFF_SECONDS = 900.0

# Hands the threads of a source this instance does not hold to the instance that does.
Forward = Callable[[str, frozenset[str]], Awaitable[None]]
# The check a source's writes make inside their transaction (None: nothing to check).
GuardFor = Callable[[str], Guard | None]
# Polls store their batches at most this many at a time: the connection pool (15) is shared
# with the API, the scheduler and the lease rounds, and a thousand sources polled in one
# group must not all wait on it (the HTTP side stays concurrent, so batches still meet).
STORE_CONCURRENCY = 8
# A stream's news polls the source this many seconds later (or this long after the poll under
# way ends): a burst of statuses makes one poll, and a busy hashtag not a poll per status.
NEWS_GAP_SECONDS = 2.0


@dataclass(kw_only=True)
class PolledSource:
    """A source with its settings and the coordinator's running state for it."""

    settings: SourceSettings
    source: Source
    interval: float
    cursor: dict[str, Any] = field(default_factory=dict)
    last_success: datetime | None = None
    failures: int = 0
    up: bool | None = None
    polls: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Sources with the same group are polled together, so their requests can share
    # one HTTP batch (e.g. Facebook pages on one token); None: a group of its own.
    group: str | None = None
    next_at: datetime | None = None
    # A stream said something is new since the current poll began: poll again soon after it.
    news: bool = False
    # The last poll ended well, without the platform asking to wait: news may hurry the next.
    may_hurry: bool = False
    # Polls in a row that stopped early (throttled mid-poll) and were resumed.
    interruptions: int = 0
    skips: SkipList = field(default_factory=SkipList)
    last_error: str | None = None  # why the last poll failed or stopped early (for /readyz)
    backfill: Progress | None = None  # how far the first backfill is, while it runs

    @property
    def name(self) -> str:
        """The source's name (its `source` label)."""
        return self.settings.ref.name


class Coordinator:
    """Runs one loop per poll group; a run is re-armed only after it finished, so none overlap."""

    def __init__(
        self,
        *,
        sources: list[PolledSource],
        store: Store,
        metrics: Metrics,
        on_events: Callable[[list[Event]], None],
        clock: Clock,
        rng: random.Random | None = None,
        progress_terminal: TextIO | None = None,
        forward: Forward | None = None,
        guard_for: GuardFor | None = None,
    ) -> None:
        self.sources = {s.name: s for s in sources}
        # The sources this instance polls (all, unless several instances share them: `hold`).
        self._held: set[str] = set(self.sources)
        self._held_before = False
        self._forward = forward
        self._guard_for = guard_for or (lambda _name: None)
        self._store_slots = asyncio.Semaphore(STORE_CONCURRENCY)
        self._wakes: list[asyncio.Event] = []
        # Where a first backfill draws its progress bar (a terminal); None: log lines.
        self._progress_terminal = progress_terminal
        self._store = store
        self._metrics = metrics
        self._on_events = on_events
        self._clock = clock
        self._rng = rng or random.Random()
        self._tasks: list[asyncio.Task[None]] = []
        self._wake_of: dict[str, asyncio.Event] = {}
        # The push channels (streams) of the held sources that have one.
        self._listeners: dict[str, asyncio.Task[None]] = {}
        self.paused = False

    async def load_state(self, names: Collection[str] | None = None) -> None:
        """Resume cursors and last-success times from the store (of `names`, default all)."""
        states = await self._store.source_states()
        for entry in self.sources.values():
            if names is not None and entry.name not in names:
                continue
            state = states.get(entry.name)
            if state is not None:
                entry.cursor = dict(state.cursor)
                entry.last_success = state.last_success_at
                if state.last_success_at is not None:
                    ref = entry.settings.ref
                    gauge = self._metrics.last_success.labels(ref.brand, ref.name)
                    gauge.set(state.last_success_at.timestamp())

    def holds(self, name: str) -> bool:
        """True while this instance polls the source (it holds its lease)."""
        return name in self._held

    async def hold(self, names: Collection[str]) -> None:
        """Poll exactly these sources from now on; others are left to the other instances.

        A source taken over resumes from the store (the other instance moved its cursor) and
        is polled when its interval since the last successful poll is up, at once if late.
        """
        gained = set(names) - self._held if self._held_before else set()
        self._held = set(names) & set(self.sources)
        self._held_before = True
        if gained:
            await self.load_state(gained)
            now = self._clock.now()
            for name in gained & self._held:
                entry = self.sources[name]
                entry.failures = 0
                last = entry.last_success
                due = last + timedelta(seconds=entry.interval) if last is not None else now
                entry.next_at = max(due, now)
        for wake in self._wakes:
            wake.set()
        self._listen()

    def news(self, name: str) -> None:
        """A stream saw something new on the source: poll it within NEWS_GAP_SECONDS; a source
        in backoff, asked to wait or not yet backfilled keeps its own schedule."""
        entry = self.sources.get(name)
        if entry is None or name not in self._held or not entry.may_hurry:
            return
        # During a poll, the loop re-arms it from the poll's end (NEWS_GAP_SECONDS).
        entry.news = True
        soon = self._clock.now() + timedelta(seconds=NEWS_GAP_SECONDS)
        if entry.next_at is None or soon < entry.next_at:
            entry.next_at = soon
            wake = self._wake_of.get(name)
            if wake is not None:
                wake.set()

    def _listen(self) -> None:
        """Run the push channels of the held sources that have one; stop the others'."""
        for name in [n for n in self._listeners if n not in self._held]:
            self._listeners.pop(name).cancel()
            self._unlisted(name)  # the holder's series is the one to read
        if not self._tasks:
            return  # not polling (yet): streams start with the loops
        for name in sorted(self._held - set(self._listeners)):
            source = self.sources[name].source
            if isinstance(source, Listens) and source.streaming:
                ref = self.sources[name].settings.ref
                gauge = self._metrics.stream_connected.labels(ref.brand, ref.name)
                gauge.set_function(_streams_of(source))
                task = asyncio.create_task(self._run_listener(name, source), name=f"stream:{name}")
                self._listeners[name] = task

    def _unlisted(self, name: str) -> None:
        """Drop the source's stream gauge: this instance no longer follows its streams."""
        ref = self.sources[name].settings.ref
        with contextlib.suppress(KeyError):
            self._metrics.stream_connected.remove(ref.brand, ref.name)

    async def _run_listener(self, name: str, source: Listens) -> None:
        try:
            await source.listen(lambda: self.news(name))
        except Exception:  # a bug in a stream must not go unnoticed, nor stop the polls
            log.exception("stream crashed; polling goes on", source=name)

    def start(self) -> None:
        """Start one polling task per group (a lone source is a group of one)."""
        groups: dict[str, list[PolledSource]] = {}
        for entry in self.sources.values():
            groups.setdefault(entry.group or f"source:{entry.name}", []).append(entry)
        for key, members in groups.items():
            wake = asyncio.Event()
            self._wakes.append(wake)
            self._wake_of.update((m.name, wake) for m in members)
            self._tasks.append(asyncio.create_task(self._loop(members, wake), name=f"poll:{key}"))
        self._listen()

    async def stop(self) -> None:
        """Cancel the loops and streams and wait for them to end."""
        tasks = [*self._tasks, *self._listeners.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for name in self._listeners:
            self._unlisted(name)
        self._tasks.clear()
        self._listeners.clear()
        self._wakes.clear()
        self._wake_of.clear()

    async def _loop(self, group: list[PolledSource], wake: asyncio.Event) -> None:
        # When a healthy member is due, every healthy member due within a fifth of the
        # interval comes along, so jitter (±10%) never splits a group; a member in backoff
        # runs on its own schedule and never pulls the others forward.
        coalesce = timedelta(seconds=0.2 * min(m.interval for m in group))
        while True:
            members = [m for m in group if m.name in self._held]
            if not members:
                await sleep_or_wake(self._clock, wake, None)  # until this instance holds one
                continue
            now = self._clock.now()
            due = [m for m in members if m.next_at is None or m.next_at <= now]
            if any(m.failures == 0 for m in due):
                due += [
                    m
                    for m in members
                    if m not in due and m.failures == 0 and (m.next_at or now) <= now + coalesce
                ]
            if self.paused:
                for member in due:
                    member.next_at = now + timedelta(seconds=member.interval)
            elif due:
                delays = await asyncio.gather(*(self.poll_once(m.name) for m in due))
                after = self._clock.now()
                for member, delay in zip(due, delays, strict=True):
                    if member.news and member.may_hurry:
                        delay = min(delay, NEWS_GAP_SECONDS)  # news came during the poll
                    member.next_at = after + timedelta(seconds=delay)
            wake_at = min(m.next_at or now for m in members)
            await sleep_or_wake(self._clock, wake, (wake_at - self._clock.now()).total_seconds())

    async def poll_once(self, name: str) -> float:
        """Poll one source now; return the delay until its next run."""
        entry = self.sources[name]
        async with entry.lock:
            # One id on every line this poll logs (the source's, the store's, the skips').
            with correlated(poll_id=uuid.uuid4().hex[:12]):
                return await self._poll(entry)

    async def ingest(self, name: str, batch: Batch) -> None:
        """Store a pushed batch (webhook) at once, in turn with the source's polls.

        For a source another instance holds, its threads go to that instance to re-read.
        """
        if not self.holds(name) and self._forward is not None:
            await self._forward(name, frozenset(m.thread_id for m in batch.messages))
            return
        entry = self.sources[name]
        async with entry.lock:
            pushed = replace(batch, cursor=entry.cursor)  # a push never moves the poll cursor
            result = await self._store_batch(entry, pushed)
        self._on_events(result.events)
        log.info("pushed", source=name, new=result.new_messages, changed=result.changed_messages)

    async def refetch(self, name: str, thread_ids: frozenset[str]) -> None:
        """Re-read some threads of a source now (before a breach) and store what changed."""
        if not self.holds(name) and self._forward is not None:
            await self._forward(name, thread_ids)
            return
        thread_ids = readable(thread_ids)
        if not thread_ids:
            return
        entry = self.sources[name]
        async with entry.lock:
            request = FetchRequest(
                cursor=entry.cursor, active_threads=thread_ids, include_feed=False
            )
            batch = await entry.source.fetch(request)
            result = await self._store_batch(entry, batch)
            self._note_skips(entry, batch)
        self._on_events(result.events)
        log.info("re-fetched", source=name, threads=len(thread_ids), events=len(result.events))

    async def refetch_quietly(self, name: str, thread_ids: frozenset[str]) -> None:
        """Like refetch, but a failure is only logged: the next poll reconciles anyway."""
        try:
            await self.refetch(name, thread_ids)
        except (SourceError, SQLAlchemyError, OSError, FencedOut) as err:
            log.warning("re-fetch failed", source=name, error=str(err))

    async def _store_batch(self, entry: PolledSource, batch: Batch) -> BatchResult:
        """handle_batch, a few at a time, fenced by the source's lease."""
        async with self._store_slots:
            return await handle_batch(
                self._store,
                entry.settings,
                batch,
                self._clock.now(),
                guard=self._guard_for(entry.name),
            )

    async def _poll(self, entry: PolledSource) -> float:
        settings = entry.settings
        started = time.perf_counter()
        now = self._clock.now()
        retry_after: float | None = None
        entry.news = False  # this poll reads what the news was about
        try:
            async with self._store_slots:
                active = await self._store.active_threads(
                    entry.name, active_since=now - timedelta(days=settings.active_days)
                )
            # A thread that could not be read last time waits for its (slower) retry.
            active = readable(active - entry.skips.resting(now))
            # Until a first poll completes, it is the backfill: sources say how far it is.
            on_progress = self._backfill_progress(entry) if entry.last_success is None else None
            batch = await entry.source.fetch(
                FetchRequest(cursor=entry.cursor, active_threads=active, on_progress=on_progress)
            )
            result = await self._store_batch(entry, batch)
        except FencedOut:
            # Another instance took the source over while this poll ran: its result is theirs
            # to read again, and nothing of it was stored here.
            log.info("poll dropped: the source moved to another instance", source=entry.name)
            return entry.interval
        except SourceError as err:
            retry_after = err.retry_after if isinstance(err, RateLimited) else None
            self._failed(entry, err.reason, err, started)
        except (SQLAlchemyError, OSError) as err:
            self._failed(entry, "store", err, started)
        except Exception as err:  # a bug must not stop the loop for every other poll
            log.exception("poll crashed", source=entry.name)
            self._failed(entry, "error", err, started)
        else:
            duration = time.perf_counter() - started
            # Stored, interrupted or not: the cursor says where the next fetch goes on.
            entry.cursor = dict(batch.cursor)
            self._on_events(result.events)
            self._note_skips(entry, batch)
            m = self._metrics
            ref = entry.settings.ref
            m.poll_duration.labels(ref.brand, ref.name).observe(duration)
            if batch.api_usage_ratio is not None:
                m.api_usage.labels(ref.brand, ref.name).set(batch.api_usage_ratio)
            fields = {
                "source": entry.name,
                "messages": len(batch.messages),
                "new": result.new_messages,
                "changed": result.changed_messages,
                "events": len(result.events),
                "requests": batch.requests,
                "calls": batch.requests if batch.api_calls is None else batch.api_calls,
                "active_threads": len(active),
                "duration_s": round(duration, 3),
            }
            if batch.interrupted is not None:
                return self._interrupted(entry, batch, fields)
            entry.last_success = self._clock.now()
            if entry.backfill is not None:
                entry.backfill.finish()
                entry.backfill = None
            entry.last_error = None
            entry.failures = 0
            entry.interruptions = 0
            entry.polls += 1
            self._mark_up(entry)
            m.last_success.labels(ref.brand, ref.name).set(entry.last_success.timestamp())
            log.info("poll", **fields)
            entry.may_hurry = not batch.wait_seconds
            delay = jittered(entry.interval * usage_slowdown(batch.api_usage_ratio), self._rng)
            # The platform's own "come back in N seconds" beats our pace.
            return max(delay, batch.wait_seconds or 0.0)
        return backoff_delay(
            entry.failures,
            base=min(entry.interval, 10.0),
            cap=max(entry.interval, min(MAX_BACKOFF_SECONDS, entry.interval * 16)),
            rng=self._rng,
            retry_after=retry_after,
        )

    def _backfill_progress(self, entry: PolledSource) -> Callable[[float, float, str], None]:
        """A source's progress callback: one Progress per unit, kept across resumed polls."""

        def on_progress(left: float, total: float, unit: str) -> None:
            if entry.backfill is None or entry.backfill.unit != unit:
                entry.backfill = Progress(
                    "backfill", entry.name, total=total, unit=unit, terminal=self._progress_terminal
                )
            entry.backfill.remaining(left, total)

        return on_progress

    def _interrupted(self, entry: PolledSource, batch: Batch, fields: dict[str, Any]) -> float:
        """A poll stopped early but its progress is stored: resume soon, after the wait asked.

        The source answers (it only asked us to slow down), so it is up; the last successful
        poll moves only when a poll completes.
        """
        entry.may_hurry = False  # throttled mid-poll: the platform's pace now
        reason = batch.interrupted or "transient"
        entry.last_error = f"{reason}: the platform stopped a poll part-way; resuming"
        entry.failures = 0
        entry.interruptions += 1
        self._mark_up(entry)
        ref = entry.settings.ref
        self._metrics.poll_errors.labels(ref.brand, ref.name, reason).inc()
        # Logged at info once per run of interruptions; a throttle every few requests would
        # otherwise fill the log during a long backfill.
        level = log.info if entry.interruptions == 1 else log.debug
        level("poll interrupted, resuming", reason=reason, wait_s=batch.wait_seconds, **fields)
        return backoff_delay(
            entry.interruptions,
            base=1.0,
            cap=max(entry.interval, 60.0),
            rng=self._rng,
            retry_after=batch.wait_seconds,
        )

    def _note_skips(self, entry: PolledSource, batch: Batch) -> None:
        """Count and log (once) the objects a fetch skipped; forget those read again."""
        # Threads by their id, posts as "post:{id}": thread and post ids may share numbers.
        read = {*batch.complete_threads, *(f"post:{m.platform_id}" for m in batch.messages)}
        for object_id in entry.skips.cleared(read - batch.skipped.keys()):
            log.info("skipped object readable again", source=entry.name, object=object_id)
        ref = entry.settings.ref
        for object_id, why in entry.skips.record(batch.skipped, self._clock.now()).items():
            self._metrics.source_skipped.labels(ref.brand, ref.name, why.reason).inc()
            log.warning(
                "object skipped, polling the rest",
                source=entry.name,
                object=object_id,
                reason=why.reason,
                error=why.detail,
            )

    def _failed(self, entry: PolledSource, reason: str, err: BaseException, started: float) -> None:
        entry.failures += 1
        entry.may_hurry = False  # in backoff: news waits for the backoff's poll
        entry.last_error = f"{reason}: {err}"
        ref = entry.settings.ref
        self._metrics.poll_errors.labels(ref.brand, ref.name, reason).inc()
        self._metrics.poll_duration.labels(ref.brand, ref.name).observe(
            time.perf_counter() - started
        )
        self._metrics.source_up.labels(ref.brand, ref.name, ref.platform).set(0)
        if entry.up is not False:
            # Logged once per outage; further failures only show in the metrics.
            log.warning("source down", source=entry.name, reason=reason, error=str(err))
        else:
            log.debug("poll failed", source=entry.name, reason=reason, error=str(err))
        entry.up = False

    def _mark_up(self, entry: PolledSource) -> None:
        ref = entry.settings.ref
        self._metrics.source_up.labels(ref.brand, ref.name, ref.platform).set(1)
        if entry.up is False:
            log.info("source recovered", source=entry.name)
        entry.up = True


def _streams_of(source: Listens) -> Callable[[], float]:
    """The gauge's reading of the source's open streams."""
    return lambda: source.streams_open
