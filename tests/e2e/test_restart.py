"""SIGKILL in the middle of a poll, then a restart: no message lost, none counted twice."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from monitor.simulator.graph_api import FakeGraphApi
from monitor.store import Store, create_engine
from tests.e2e.conftest import TOKEN, write_config

ANN = ("9001", "Ann")
BOB = ("9002", "Bob")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def start_service(config: Path, log: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        "run",
        "-c",
        str(config),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=log.open("ab"),
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def scrape(port: int) -> dict[str, float]:
    """Sum of each sample name over all label sets (connection errors give {})."""
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/metrics") as response,
        ):
            text = await response.text()
    except aiohttp.ClientError:
        return {}
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


async def wait_for(check: Callable[[], Awaitable[bool]], what: str, within: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_sigkill_mid_poll_loses_nothing_and_counts_nothing_twice(
    graph: FakeGraphApi, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    post = graph.add_post(created_time=now - timedelta(hours=2), message="Winter sale")
    graph.add_comment(
        post_id=post, created_time=now - timedelta(minutes=100), message="?", author=ANN
    )
    graph.add_comment(
        post_id=post, created_time=now - timedelta(minutes=90), message="!", author=BOB
    )
    graph.add_comment(post_id=post, created_time=now - timedelta(minutes=80), message="Answer")
    port = free_port()
    db_url = f"sqlite+aiosqlite:///{tmp_path}/restart.db"
    config = write_config(
        tmp_path / "c.toml",
        api_base_url=graph.base_url,
        database_url=db_url,
        port=port,
        poll_interval="1s",
    )
    log = tmp_path / "service.log"

    first = await start_service(config, log)
    try:

        async def first_poll_done() -> bool:
            return (await scrape(port)).get("webcare_items_total", 0) == 2

        await wait_for(first_poll_done, "the first poll")
        # New traffic, then freeze the next poll in the middle: its feed request hangs.
        graph.add_comment(post_id=post, created_time=now, message="Hello?", author=ANN)
        visitor = graph.add_post(created_time=now, message="Order missing", author=BOB)
        graph.add_comment(post_id=visitor, created_time=now, message="Same here", author=ANN)
        held = graph.hold("/feed")
        seen = len(graph.requests)

        async def mid_poll() -> bool:
            return any("/feed" in r.path for r in graph.requests[seen:])

        await wait_for(mid_poll, "a poll to reach the feed")
        first.send_signal(signal.SIGKILL)
        await first.wait()
    finally:
        if first.returncode is None:
            first.kill()
            await first.wait()
    held.set()
    graph.release_all()

    second = await start_service(config, log)
    try:

        async def caught_up() -> bool:
            return (await scrape(port)).get("webcare_items_total", 0) >= 3

        await wait_for(caught_up, "the restarted service to store the new items")
        await asyncio.sleep(1.5)  # one more poll: must not count anything again
        totals = await scrape(port)
    finally:
        second.send_signal(signal.SIGTERM)
        await second.wait()

    # The restarted process counts only what it stored itself: the three new items.
    assert totals["webcare_items_total"] == 3
    engine = create_engine(db_url)
    try:
        store = Store(engine)
        stored = await store.all_messages("acme-fb")
        ids = [m.message.platform_id for m in stored]
        assert len(ids) == len(set(ids)) == 7  # 2 posts, 5 comments, each once
        assert await store.counts() == {"messages": 7, "items": 5}
    finally:
        await engine.dispose()
    assert second.returncode == 0, log.read_text()[-2000:]
    assert TOKEN not in log.read_text()  # the access token never reaches the logs
