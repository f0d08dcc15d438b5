"""The running service around one fake forum, as the push-back tests drive it (poll by hand)."""

from __future__ import annotations

import asyncio
import io
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from monitor.clock import FakeClock
from monitor.domain import Batch
from monitor.sources.base import FetchRequest, Source
from monitor.store import Store
from monitor.web.keys import COORDINATOR, METRICS, STORE

NAME = "acme-forum"


def service_toml(path: Path) -> str:
    """The config around the one forum source: its own SQLite file, any port, one calendar."""
    return f"""
database_url = "sqlite+aiosqlite:///{path.parent}/{path.stem}.db"
[http]
port = 0
[calendars.office]
timezone = "Europe/Amsterdam"
hours = ["mon-fri 09:00-17:00"]
[policies.default]
office_hours = "60m"
after_hours = "30m"
"""


class Recording:
    """Wraps the service's source: every batch it returns, to see what was delivered twice."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.batches: list[Batch] = []

    async def fetch(self, request: FetchRequest) -> Batch:
        batch = await self.source.fetch(request)
        self.batches.append(batch)
        return batch


@dataclass(kw_only=True)
class Service:
    """The running service around one fake forum."""

    app: web.Application
    clock: FakeClock
    platform: str  # the `platform` label of webcare_source_up
    recording: Recording
    logs: io.StringIO
    client: Any = None  # a test client of the app (for /readyz), when the suite made one
    polls: int = 0
    ups: list[float] = field(default_factory=list)  # webcare_source_up after each poll

    @property
    def store(self) -> Store:
        return self.app[STORE]  # type: ignore[no-any-return]

    @property
    def entry(self) -> Any:
        return self.app[COORDINATOR].sources[NAME]

    async def poll(self) -> float:
        """One poll as the coordinator's loop makes it; the delay it asks for before the next."""
        self.polls += 1
        delay = await asyncio.wait_for(self.app[COORDINATOR].poll_once(NAME), timeout=30)
        self.ups.append(self.metric("source_up", "acme", NAME, self.platform))
        return float(delay)

    async def poll_until_complete(self, limit: int = 500) -> None:
        """Poll, waiting out each asked delay on the fake clock, until a poll completes."""
        for _ in range(limit):
            delay = await self.poll()
            if self.entry.interruptions == 0 and self.entry.failures == 0:
                return
            await self.clock.advance(delay)
        raise AssertionError(f"no poll completed in {limit}: {self.entry.last_error}")

    async def poll_every_minute(self, minutes: int) -> None:
        """The steady state: a poll a minute (the interval) for `minutes`."""
        for _ in range(minutes):
            await self.clock.advance(60)
            await self.poll_until_complete()

    def metric(self, name: str, *labels: str) -> float:
        counter = getattr(self.app[METRICS], name)
        return float(counter.labels(*labels)._value.get())

    def logged(self, event: str, **fields: str) -> int:
        lines = [orjson.loads(line) for line in self.logs.getvalue().splitlines()]
        return sum(
            1
            for line in lines
            if line.get("event") == event and all(line.get(k) == v for k, v in fields.items())
        )

    def delivered(self) -> Counter[str]:
        """How often each post id came in a batch."""
        return Counter(m.platform_id for b in self.recording.batches for m in b.messages)

    async def stored(self) -> dict[str, Any]:
        return {m.message.platform_id: m for m in await self.store.all_messages(NAME)}
