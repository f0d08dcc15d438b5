"""One instance's part in the cluster: lease rounds, and reading the nudges others leave."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from monitor.clock import Clock, sleep_or_wake
from monitor.cluster.leases import Leases
from monitor.cluster.nudges import EVERYONE, Nudge, Nudges
from monitor.domain.events import Event, ItemAcknowledged, ItemDismissed
from monitor.logging import get_logger

log = get_logger("monitor.cluster")

LEADER = "leader"
# A receiver (or the leader role) moves only when its holder stops or dies, never to even
# out the numbers: handing it over to a newcomer could send the delivery in flight twice.
STICKY = ("receiver", "leader")
# A log line names at most this many sources (an instance may gain a thousand at once).
NAMED_IN_LOGS = 20
# Nudges are read this often: a webhook or an ack taken by another instance reaches the
# holder of its source within about this long.
FEED_SECONDS = 0.5
# Read nudges are kept this long (an instance that was paused can still catch up), then pruned.
NUDGE_KEEP = timedelta(hours=1)


def source_key(name: str) -> str:
    """The lease key of a source."""
    return f"source:{name}"


def receiver_key(name: str) -> str:
    """The lease key of an alert receiver."""
    return f"receiver:{name}"


@dataclass(frozen=True, kw_only=True)
class Holdings:
    """What this instance holds after a round."""

    sources: frozenset[str] = frozenset()
    receivers: frozenset[str] = frozenset()
    leader: bool = False
    fences: dict[str, int] = field(default_factory=dict)


class ClusterMember:
    """Runs lease rounds every third of a lease and hands each change to `on_change`.

    With nudges (PostgreSQL), it also reads the notes other instances leave, every
    FEED_SECONDS, passing each to `on_nudge`, and calls `on_feed` at the same pace (the
    outbox watch). Without nudges (SQLite, one instance) one round at start is all.
    """

    def __init__(
        self,
        *,
        leases: Leases,
        nudges: Nudges | None,
        sources: Mapping[str, str],
        receivers: Collection[str],
        ttl: float,
        clock: Clock,
        on_change: Callable[[Holdings], Awaitable[None]],
        on_nudge: Callable[[Nudge], Awaitable[None]],
        on_feed: Callable[[], Awaitable[None]],
    ) -> None:
        self._leases = leases
        self._nudges = nudges
        # Sources are shared out per platform, so each instance gets its part of the pages
        # and of the forums, not all of one kind.
        self._wanted: dict[str, list[str]] = {}
        for name, platform in sorted(sources.items()):
            self._wanted.setdefault(f"source:{platform}", []).append(source_key(name))
        self._wanted["receiver"] = [receiver_key(n) for n in receivers]
        self._wanted["leader"] = [LEADER]
        self._ttl = ttl
        self._clock = clock
        self._on_change = on_change
        self._on_nudge = on_nudge
        self._on_feed = on_feed
        self.holdings = Holdings()
        self._last_ok = time.monotonic()
        self._last_nudge = 0
        self._round_now = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._sending: set[asyncio.Task[None]] = set()

    @property
    def instance(self) -> str:
        """This instance's name."""
        return self._leases.instance

    def holds_source(self, name: str) -> bool:
        """True while this instance polls the source."""
        return name in self.holdings.sources

    @property
    def solo(self) -> bool:
        """True when alone by construction (SQLite): there is nothing to fence against."""
        return self._nudges is None

    async def guard(self, conn: AsyncConnection, name: str, fence: int) -> None:
        """Inside a write's transaction: refuse it (FencedOut) unless the source is still ours."""
        await self._leases.guard(conn, source_key(name), fence)

    def fence(self, name: str) -> int | None:
        """The fence of this instance's lease on a source (None: not held)."""
        return self.holdings.fences.get(source_key(name))

    async def forward_threads(self, source: str, threads: frozenset[str]) -> None:
        """Ask the holder of `source` to re-read these threads (a webhook arrived here)."""
        if self._nudges is None or not threads:
            return
        await self._nudges.send(source, {"threads": sorted(threads)}, self._clock.now())

    def forward_events(self, events: list[Event]) -> None:
        """Tell the holders of these events' sources (an ack or dismissal made here)."""
        for event in events:
            body: dict[str, Any]
            if isinstance(event, ItemAcknowledged):
                body = {"event": "acknowledged", "item": event.item.message_id, "by": event.by}
            elif isinstance(event, ItemDismissed):
                body = {"event": "dismissed", "item": event.item.message_id}
            else:  # a poll that lost its source; the new holder reads it again anyway
                log.debug("event for another instance's source dropped", kind=type(event).__name__)
                continue
            task = asyncio.create_task(self._send(event.source.name, body))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, source: str, body: dict[str, Any]) -> None:
        assert self._nudges is not None
        try:
            await self._nudges.send(source, body, self._clock.now())
        except Exception as err:  # stored already; the holder's figures catch up at its next change
            log.warning("could not tell the holder", source=source, error=str(err))

    async def start(self) -> None:
        """The first round (before polling starts), then the loops when others may exist."""
        # The first round only says this instance is alive (and renews what it held before a
        # quick restart): instances starting together then see each other before they claim,
        # instead of the first one taking every source.
        await self._round(first=True, claim=self._nudges is None)
        if self._nudges is None:
            return
        self._last_nudge = await self._nudges.newest()
        # Others rebalance now rather than at their next round.
        await self._nudges.send(EVERYONE, {"rebalance": self.instance}, self._clock.now())
        self._tasks = [
            asyncio.create_task(self._rounds(), name="cluster-leases"),
            asyncio.create_task(self._feed(), name="cluster-nudges"),
        ]

    async def stop(self) -> None:
        """Stop the loops and hand every lease over at once."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._sending:
            await asyncio.wait(self._sending, timeout=5)
        if self._nudges is None:
            return
        try:
            await self._leases.leave()
            await self._nudges.send(EVERYONE, {"rebalance": self.instance}, self._clock.now())
            log.info("leases handed over", instance=self.instance)
        except Exception as err:  # they expire on their own within a lease
            log.warning("leases not handed over; they expire", error=str(err))

    async def _round(self, *, first: bool = False, claim: bool = True) -> None:
        # The first round always hands its result on: holding nothing is news too.
        try:
            held = await self._leases.round(self._wanted, sticky=STICKY, claim=claim)
        except Exception as err:
            log.warning("lease round failed", error=str(err))
            if time.monotonic() - self._last_ok < self._ttl:
                return  # what we hold is still ours until the leases expire
            held = {}  # they expired: another instance may hold them now
        else:
            self._last_ok = time.monotonic()
        holdings = Holdings(
            sources=frozenset(k.removeprefix("source:") for k in held if k.startswith("source:")),
            receivers=frozenset(
                k.removeprefix("receiver:") for k in held if k.startswith("receiver:")
            ),
            leader=LEADER in held,
            fences=held,
        )
        if holdings != self.holdings or first:
            gained = holdings.sources - self.holdings.sources
            lost = self.holdings.sources - holdings.sources
            if self._nudges is not None and (
                gained or lost or holdings.leader != self.holdings.leader
            ):
                log.info(
                    "leases changed",
                    instance=self.instance,
                    sources=len(holdings.sources),
                    gained=_some(gained),
                    lost=_some(lost),
                    receivers=sorted(holdings.receivers),
                    leader=holdings.leader,
                )
            self.holdings = holdings
            await self._on_change(holdings)

    async def _rounds(self) -> None:
        while True:
            await sleep_or_wake(self._clock, self._round_now, self._ttl / 3)
            try:
                await self._round()
                if self.holdings.leader and self._nudges is not None:
                    await self._nudges.prune(self._clock.now() - NUDGE_KEEP)
            except Exception:  # the next round tries again
                log.exception("lease round crashed")

    async def _feed(self) -> None:
        assert self._nudges is not None
        while True:
            await asyncio.sleep(FEED_SECONDS)
            try:
                for nudge in await self._nudges.after(self._last_nudge):
                    self._last_nudge = nudge.id
                    await self._dispatch(nudge)
                await self._on_feed()
            except Exception:  # a database hiccup: read again next time
                log.exception("reading nudges failed")

    async def _dispatch(self, nudge: Nudge) -> None:
        if nudge.source == EVERYONE:
            if nudge.body.get("rebalance") != self.instance:
                self._round_now.set()
            return
        if self.holds_source(nudge.source):
            await self._on_nudge(nudge)


def _some(names: Collection[str]) -> list[str]:
    """Up to NAMED_IN_LOGS names, then how many more."""
    named = sorted(names)
    if len(named) <= NAMED_IN_LOGS:
        return named
    return [*named[:NAMED_IN_LOGS], f"and {len(named) - NAMED_IN_LOGS} more"]
