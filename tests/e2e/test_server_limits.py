"""The HTTP port under slow and greedy clients (issue 22): header and idle timeouts, the cap.

The service is started the way `run` starts it (monitor/reload.py's ServiceRunner over
monitor/web/server.py) with the limits shortened, so the test takes seconds: 1 s to send a
request's headers, 2 s of idle keep-alive, 40 connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

import monitor.web.server as server
from monitor.config import load_config
from monitor.reload import ServiceRunner
from monitor.simulator.graph_api import FakeGraphApi
from monitor.web.edge import edge
from monitor.web.server import ServerLimits, make_runner, start_sites
from tests.e2e.test_facebook_to_metrics import samples, value
from tests.e2e.test_reload import config_text, running

LIMITS = ServerLimits(header_timeout=1.0, keepalive_timeout=2.0, max_connections=40)
SLOW_CLIENTS = 120  # three times the cap


@pytest.fixture
def short_limits(monkeypatch: pytest.MonkeyPatch) -> ServerLimits:
    monkeypatch.setattr(server, "DEFAULT_LIMITS", LIMITS)
    return LIMITS


@pytest.fixture
async def service(
    graph: FakeGraphApi, tmp_path: Path, short_limits: ServerLimits
) -> AsyncIterator[ServiceRunner]:
    path = tmp_path / "c.toml"
    path.write_text(config_text(api=graph.base_url, db=tmp_path / "m.db", port=0))
    async with running(path, load_config(path)) as runner:
        yield runner


async def slow_client(port: int) -> float:
    """Headers one byte every 0.2 s, for ever; returns how long the server kept it open."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def trickle() -> None:
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: slow\r\nX-Slow: ")
        with contextlib.suppress(ConnectionError, RuntimeError):
            while True:
                await asyncio.sleep(0.2)
                writer.write(b"a")
                await writer.drain()

    task = asyncio.create_task(trickle())
    try:
        with contextlib.suppress(ConnectionError):
            await asyncio.wait_for(reader.read(), timeout=30)
        return time.monotonic() - started
    finally:
        task.cancel()
        writer.close()


async def test_slow_clients_are_cut_after_the_header_timeout_while_metrics_answers(
    service: ServiceRunner,
) -> None:
    port = service.addresses[0][1]
    slow = [asyncio.create_task(slow_client(port)) for _ in range(SLOW_CLIENTS)]
    statuses: list[int] = []
    latencies: list[float] = []
    # A new connection per scrape, as a Prometheus whose keep-alive was cut would make.
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        while not all(task.done() for task in slow):
            began = time.monotonic()
            async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                await response.read()
                statuses.append(response.status)
            latencies.append(time.monotonic() - began)
            await asyncio.sleep(0.05)
        lifetimes = await asyncio.gather(*slow)
        async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
            scrape = samples(await response.text())

    # Every slow client was cut: the ones beyond the cap at once (evicted by newer ones), the
    # rest when their header time ran out; none lived much past it.
    assert max(lifetimes) < LIMITS.header_timeout + 1.0, sorted(lifetimes)[-5:]
    # The last ones in held the cap until their header time ran out (a few were evicted by
    # the scrapes' own connections instead).
    lasted = sum(1 for t in lifetimes if t >= LIMITS.header_timeout * 0.9)
    assert lasted >= LIMITS.max_connections // 2, sorted(lifetimes)
    timed_out = value(
        scrape, "webcare_http_rejected_total", endpoint="connection", reason="header_timeout"
    )
    evicted = value(scrape, "webcare_http_rejected_total", endpoint="connection", reason="evicted")
    assert timed_out + evicted >= SLOW_CLIENTS
    assert evicted >= SLOW_CLIENTS - LIMITS.max_connections
    # /metrics answered all along, never waiting for a slow client's slot to free: a scrape
    # that queued behind them would take the whole header timeout. (The first scrape can meet
    # the first poll at start-up, so the bound is that timeout, not a tighter figure.)
    assert len(statuses) >= 5 and set(statuses) == {200}
    assert max(latencies) < LIMITS.header_timeout, sorted(latencies)[-3:]


async def test_an_idle_connection_is_closed_after_the_keepalive_timeout_not_before(
    service: ServiceRunner,
) -> None:
    port = service.addresses[0][1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    await reader.readexactly(length)
    answered = time.monotonic()
    # Idle: longer than the header timeout (nothing was sent), closed at the keep-alive timeout.
    assert await asyncio.wait_for(reader.read(), timeout=10) == b""
    idle = time.monotonic() - answered
    writer.close()
    assert LIMITS.keepalive_timeout - 0.2 <= idle < LIMITS.keepalive_timeout + 1.0, idle


async def test_a_second_request_on_a_kept_alive_connection_has_the_header_timeout_too(
    service: ServiceRunner,
) -> None:
    port = service.addresses[0][1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    await reader.readexactly(int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0]))
    await asyncio.sleep(0.5)
    began = time.monotonic()
    writer.write(b"GET /healthz HTTP/1.1\r\n")  # ... and nothing more
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), timeout=10) == b""
    cut = time.monotonic() - began
    writer.close()
    assert LIMITS.header_timeout - 0.2 <= cut < LIMITS.header_timeout + 0.8, cut


async def test_when_every_connection_is_busy_a_newcomer_gets_503_and_no_connection_is_lost(
    short_limits: ServerLimits,
) -> None:
    release = asyncio.Event()
    all_busy = asyncio.Event()
    busy = 0

    async def slow_handler(request: web.Request) -> web.Response:
        nonlocal busy
        busy += 1
        if busy == 5:
            all_busy.set()
        await release.wait()
        return web.Response(text="done")

    app = web.Application(middlewares=[edge])
    app.router.add_get("/slow", slow_handler)
    runner = make_runner(app, limits=ServerLimits(max_connections=5))
    await runner.setup()
    try:
        guard = await start_sites(
            runner, host="127.0.0.1", port=0, limits=ServerLimits(max_connections=5)
        )
        port = runner.addresses[0][1]
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            requests = [
                asyncio.create_task(session.get(f"http://127.0.0.1:{port}/slow")) for _ in range(5)
            ]
            await asyncio.wait_for(all_busy.wait(), timeout=10)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            refused = await asyncio.wait_for(reader.read(), timeout=5)
            writer.close()
            assert refused.startswith(b"HTTP/1.1 503 Service Unavailable")
            assert guard.open_connections == 5
            release.set()
            for response in await asyncio.gather(*requests):
                assert (response.status, await response.text()) == (200, "done")
                response.release()
    finally:
        await runner.cleanup()
