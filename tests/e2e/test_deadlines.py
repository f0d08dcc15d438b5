"""Warning and breach at the right instants, on a controllable clock, across a restart."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from monitor.app import create_app
from monitor.clock import FakeClock
from monitor.config import load_config
from monitor.domain import ItemState
from monitor.simulator.graph_api import FakeGraphApi
from monitor.web.keys import COORDINATOR, METRICS, OPEN_ITEMS, SCHEDULER, STORE
from tests.e2e.conftest import settle, write_config

# Friday 21:00 in Amsterdam: after hours, target 30 min, warning at 22.5 min.
T0 = datetime(2026, 11, 20, 20, 0, tzinfo=UTC)
ANN = ("9001", "Ann")
AFTER = ("acme", "acme-fb", "after_hours")


class Service:
    """The real app on a fake clock, started through pytest-aiohttp."""

    def __init__(self, app: Any, clock: FakeClock) -> None:
        self.app, self.clock = app, clock

    @property
    def breaches(self) -> float:
        return float(self.app[METRICS].breaches.labels(*AFTER)._value.get())

    def states(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.app[OPEN_ITEMS].items():
            counts[item.state.value] = counts.get(item.state.value, 0) + 1
        return counts

    async def item_state(self) -> ItemState:
        items = await self.app[STORE].items_between(T0 - timedelta(days=1), T0 + timedelta(days=1))
        assert len(items) == 1
        return items[0].state

    async def advance_to(self, at: datetime) -> None:
        await self.clock.advance((at - self.clock.now()).total_seconds())


async def start(graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any, now: datetime) -> Service:
    config = load_config(
        write_config(
            tmp_path / "c.toml",
            api_base_url=graph.base_url,
            database_url=f"sqlite+aiosqlite:///{tmp_path}/d.db",
        )
    )
    clock = FakeClock(now)
    app = create_app(config, clock=clock, start_polling=False)
    await aiohttp_client(app)
    return Service(app, clock)


def comment_thread(graph: FakeGraphApi) -> str:
    post = graph.add_post(created_time=T0 - timedelta(hours=1), message="Deals")
    graph.add_comment(post_id=post, created_time=T0, message="Is it in stock?", author=ANN)
    return post


async def test_warning_then_breach_at_their_instants_with_a_refetch_first(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any
) -> None:
    post = comment_thread(graph)
    service = await start(graph, tmp_path, aiohttp_client, T0 + timedelta(minutes=1))
    await service.app[COORDINATOR].poll_once("acme-fb")
    assert service.states() == {"open": 1}

    await service.advance_to(T0 + timedelta(minutes=22, seconds=29))
    await asyncio.sleep(0.05)
    assert service.states() == {"open": 1}  # not a second early
    await service.advance_to(T0 + timedelta(minutes=22, seconds=30))
    await settle(lambda: service.states() == {"warning": 1}, "warning at 22m30s")
    assert await service.item_state() is ItemState.WARNING

    seen = len(graph.requests)
    await service.advance_to(T0 + timedelta(minutes=30))
    await settle(lambda: service.breaches == 1, "breach at 30m")
    assert service.states() == {"breached": 1}
    assert await service.item_state() is ItemState.BREACHED
    # The thread was re-read (comments only, no feed) before the breach was declared.
    refetch = [r.path for r in graph.requests[seen:]]
    assert refetch and all(f"/{post}/comments" in p for p in refetch)

    # Answered after due: late, and the breach stays counted once.
    graph.add_comment(post_id=post, created_time=T0 + timedelta(minutes=45), message="Yes!")
    await service.advance_to(T0 + timedelta(minutes=50))
    await service.app[COORDINATOR].poll_once("acme-fb")
    assert await service.item_state() is ItemState.ANSWERED_LATE
    assert service.states() == {}
    assert service.breaches == 1


async def test_reply_made_before_due_but_seen_after_due_is_in_time(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any
) -> None:
    post = comment_thread(graph)
    service = await start(graph, tmp_path, aiohttp_client, T0 + timedelta(minutes=1))
    await service.app[COORDINATOR].poll_once("acme-fb")
    # The student answers at 29 min; no poll runs before the due instant.
    graph.add_comment(post_id=post, created_time=T0 + timedelta(minutes=29), message="Yes")
    await service.advance_to(T0 + timedelta(minutes=30))
    await settle(lambda: service.states() == {}, "the re-fetch to find the reply")
    assert await service.item_state() is ItemState.ANSWERED_IN_TIME
    assert service.breaches == 0
    responses = service.app[METRICS].responses.labels(*AFTER, "in_time")._value.get()
    assert responses == 1


async def test_restart_between_warning_and_due_neither_loses_nor_repeats(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any
) -> None:
    comment_thread(graph)
    first = await start(graph, tmp_path, aiohttp_client, T0 + timedelta(minutes=1))
    await first.app[COORDINATOR].poll_once("acme-fb")
    await first.advance_to(T0 + timedelta(minutes=25))
    await settle(lambda: first.states() == {"warning": 1}, "warning before the restart")
    await first.app.shutdown()
    await first.app.cleanup()

    second = await start(graph, tmp_path, aiohttp_client, T0 + timedelta(minutes=26))
    await asyncio.sleep(0.05)
    assert second.app[SCHEDULER].fired == 0  # the warning is not sent again
    assert second.states() == {"warning": 1}
    await second.advance_to(T0 + timedelta(minutes=30))
    await settle(lambda: second.breaches == 1, "breach after the restart")
    await asyncio.sleep(0.05)
    assert second.app[SCHEDULER].fired == 1


async def test_missed_due_while_down_fires_once_at_start(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any
) -> None:
    comment_thread(graph)
    first = await start(graph, tmp_path, aiohttp_client, T0 + timedelta(minutes=1))
    await first.app[COORDINATOR].poll_once("acme-fb")
    await first.app.shutdown()
    await first.app.cleanup()

    second = await start(graph, tmp_path, aiohttp_client, T0 + timedelta(hours=3))
    await settle(lambda: second.breaches == 1, "the missed breach")
    await asyncio.sleep(0.05)
    # Only the breach: the missed warning is superseded, not sent late.
    assert second.app[SCHEDULER].fired == 1
    assert second.states() == {"breached": 1}
