"""Graph quota per poll cycle: HTTP requests and Graph calls, quiet and under a throttle.

Facebook's rate limits count calls, and every entry of a batch POST is a call; HTTP requests
are what the network and our latency see. This prints both for 200 quiet pages on one token
(no active threads, and 10% with one active thread), for a year's backfill of one page, and
for the same backfill under code 613 on every 5th call, with the ratios.

    .venv/bin/python -m tests.bench.bench_facebook_calls
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from monitor.app import create_app
from monitor.clock import FakeClock
from monitor.config import load_config
from monitor.logging import configure_logging
from monitor.simulator.graph_api import FakeGraphApi, GraphError
from monitor.web.keys import COORDINATOR
from tests.e2e.test_facebook_200_pages import NOW, PAGES, TOKEN, cycle, script_pages
from tests.e2e.test_facebook_200_pages import write_config as write_pages_config
from tests.e2e.test_pushback_facebook import script_year


async def started(config_path: Path) -> tuple[Any, TestClient[Any, Any]]:
    """The real app on a fake clock, polling by hand."""
    app = create_app(load_config(config_path), clock=FakeClock(NOW), start_polling=False)
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    return app, client


async def quiet_pages(workdir: Path, active_every: int | None) -> tuple[int, int]:
    """(Graph calls, HTTP requests) of one quiet cycle of 200 pages on one token."""
    graph = FakeGraphApi(access_token=TOKEN)
    await graph.start()
    try:
        script_pages(graph, active_every=active_every)
        db = workdir / f"pages-{active_every}.db"
        path = write_pages_config(
            workdir / f"pages-{active_every}.toml",
            api_base_url=graph.base_url,
            database_url=f"sqlite+aiosqlite:///{db}",
        )
        app, client = await started(path)
        try:
            coordinator = app[COORDINATOR]
            names = sorted(coordinator.sources)
            await cycle(coordinator, graph, names)  # the backfill
            await asyncio.sleep(1.0)  # token checks started with the app
            await app[COORDINATOR]._clock.advance(60)
            quiet = await cycle(coordinator, graph, names)
            return quiet.graph_calls, quiet.http_requests
        finally:
            await client.close()
    finally:
        await graph.stop()


async def year_backfill(workdir: Path, throttle: bool) -> tuple[int, int, int]:
    """(Graph calls, HTTP requests, polls) of one page's year backfill."""
    graph = FakeGraphApi(page_id="555000111", page_name="Acme", access_token=TOKEN)
    await graph.start()
    try:
        script_year(graph)
        if throttle:
            graph.inject_every(GraphError(code=613), 5)
        path = workdir / f"year-{throttle}.toml"
        path.write_text(
            f'database_url = "sqlite+aiosqlite:///{workdir}/year-{throttle}.db"\n'
            '[[sources]]\ntype = "facebook_page"\nname = "acme-fb"\nbrand = "acme"\n'
            f'page_id = "555000111"\naccess_token = "{TOKEN}"\n'
            f'api_base_url = "{graph.base_url}"\nbackfill_days = 365\n',
            encoding="utf-8",
        )
        app, client = await started(path)
        try:
            coordinator = app[COORDINATOR]
            entry = coordinator.sources["acme-fb"]
            polls = 0
            while entry.polls == 0:
                polls += 1
                delay = await coordinator.poll_once("acme-fb")
                await coordinator._clock.advance(delay)
            token = sum("debug_token" in call.path for call in graph.calls)
            requests = graph.http_requests - token
            return graph.graph_calls - token, requests, polls
        finally:
            await client.close()
    finally:
        await graph.stop()


async def main() -> None:
    argparse.ArgumentParser(description=__doc__).parse_args()
    configure_logging(level="error", fmt="console")  # the figures, not the poll log
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for active_every, label in ((None, "no active thread"), (10, "10% one active thread")):
            calls, requests = await quiet_pages(workdir, active_every)
            print(
                f"quiet cycle, {PAGES} pages on one token, {label}: {calls} Graph calls"
                f" ({calls / PAGES:.3f} per page), {requests} HTTP requests"
                f" (1 per {PAGES / requests:.1f} pages)"
            )
        calm = await year_backfill(workdir, throttle=False)
        throttled = await year_backfill(workdir, throttle=True)
        print(
            f"year backfill of one page (150 posts, 2,355 messages): {calm[0]} Graph calls,"
            f" {calm[1]} HTTP requests in {calm[2]} poll"
        )
        print(
            f"same under code 613 on every 5th call: {throttled[0]} Graph calls,"
            f" {throttled[1]} HTTP requests in {throttled[2]} polls ="
            f" {throttled[0] / calm[0]:.3f}x the calls, {throttled[1] / calm[1]:.3f}x the"
            " requests (a refused call is a call: every 5th refused alone is 1.25x)"
        )


if __name__ == "__main__":
    asyncio.run(main())
