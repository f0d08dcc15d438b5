"""Acceptance (issue 5, point 3): 200 pages on one token, counted at the fake Graph API.

A quiet cycle (no new activity) may cost at most 1.1 Graph API calls per page and, with batch
requests, at most one HTTP request per 40 pages.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.app import create_app
from monitor.clock import FakeClock
from monitor.config import load_config
from monitor.poller import Coordinator
from monitor.simulator.graph_api import FakeGraphApi
from monitor.web.keys import COORDINATOR, STORE

PAGES = 200
TOKEN = "EAAG-shared-agency-token-200-pages"
NOW = datetime(2026, 3, 4, 20, 0, tzinfo=UTC)  # a Wednesday evening
CONSUMER = ("8001", "Consumer")
MAX_CALLS_PER_PAGE = 1.1
PAGES_PER_HTTP_REQUEST = 40


@dataclass(frozen=True, kw_only=True)
class Cycle:
    """What one poll cycle of every page cost, counted at the fake."""

    graph_calls: int
    http_requests: int

    @property
    def calls_per_page(self) -> float:
        return self.graph_calls / PAGES

    @property
    def pages_per_request(self) -> float:
        return PAGES / self.http_requests if self.http_requests else math.inf


@pytest.fixture
async def graph() -> AsyncIterator[FakeGraphApi]:
    api = FakeGraphApi(access_token=TOKEN)
    await api.start()
    yield api
    await api.stop()


def page_id(number: int) -> str:
    return str(510_000_000 + number)


def script_pages(graph: FakeGraphApi, *, active_every: int | None) -> None:
    """Three answered posts per page, all older than active_days (14); every `active_every`-th
    page also has an unanswered comment on its oldest post (one active thread)."""
    for number in range(PAGES):
        graph.add_page(page_id(number), f"Brand {number}")
        posts = []
        for age in (30, 25, 20):
            at = NOW - timedelta(days=age)
            post = graph.add_post(created_time=at, message="deal", page_id=page_id(number))
            question = graph.add_comment(
                post_id=post, created_time=at + timedelta(hours=1), message="?", author=CONSUMER
            )
            graph.add_comment(
                post_id=post,
                created_time=at + timedelta(hours=1, minutes=5),
                message="!",
                parent_id=question,
            )
            posts.append(post)
        if active_every and number % active_every == 0:
            # A late question on an old post: `feed?since=` no longer returns that post.
            graph.add_comment(
                post_id=posts[0],
                created_time=NOW - timedelta(minutes=10),
                message="still there?",
                author=CONSUMER,
            )


def write_config(path: Path, *, api_base_url: str, database_url: str) -> Path:
    blocks = "".join(
        f"""
[[sources]]
type = "facebook_page"
name = "page-{number:03d}"
brand = "brand-{number:03d}"
page_id = "{page_id(number)}"
access_token = "{TOKEN}"
api_base_url = "{api_base_url}"
backfill_days = 60
request_timeout = "10s"
"""
        for number in range(PAGES)
    )
    path.write_text(
        f"""
database_url = "{database_url}"
[calendars.office]
timezone = "Europe/Amsterdam"
hours = ["mon-fri 09:00-17:00"]
[policies.default]
office_hours = "60m"
after_hours = "30m"
{blocks}""",
        encoding="utf-8",
    )
    return path


async def cycle(coordinator: Coordinator, graph: FakeGraphApi, names: list[str]) -> Cycle:
    """Poll every page once, concurrently, as the coordinator runs a poll group."""
    calls, requests = graph.graph_calls, graph.http_requests
    seen_calls, seen_requests = len(graph.calls), len(graph.requests)
    await asyncio.gather(*(coordinator.poll_once(name) for name in names))
    # The token-expiry check (/debug_token, every 6 hours, started with the app) is no part of
    # polling; it may overlap the first cycle.
    token_calls = sum("debug_token" in call.path for call in graph.calls[seen_calls:])
    token_requests = sum("debug_token" in r.path for r in graph.requests[seen_requests:])
    return Cycle(
        graph_calls=graph.graph_calls - calls - token_calls,
        http_requests=graph.http_requests - requests - token_requests,
    )


async def until_idle(graph: FakeGraphApi) -> None:
    """Let background traffic started with the app (token checks) finish before measuring."""
    for _ in range(100):
        before = graph.http_requests
        await asyncio.sleep(0.1)
        if graph.http_requests == before:
            return
    raise AssertionError("the fake Graph API never went quiet")


def report(label: str, figures: Cycle) -> None:
    print(
        f"\n{label}: {figures.graph_calls} Graph API calls for {PAGES} pages"
        f" = {figures.calls_per_page:.3f} calls/page;"
        f" {figures.http_requests} HTTP requests = 1 per {figures.pages_per_request:.1f} pages"
    )


@pytest.mark.parametrize(
    ("active_every", "label"),
    [(None, "no active threads"), (10, "10% of pages with one active thread")],
)
async def test_quiet_cycle_is_frugal(
    graph: FakeGraphApi,
    tmp_path: Path,
    aiohttp_client: Any,
    active_every: int | None,
    label: str,
) -> None:
    script_pages(graph, active_every=active_every)
    config = load_config(
        write_config(
            tmp_path / "c.toml",
            api_base_url=graph.base_url,
            database_url=f"sqlite+aiosqlite:///{tmp_path}/pages.db",
        )
    )
    clock = FakeClock(NOW)
    app = create_app(config, clock=clock, start_polling=False)
    await aiohttp_client(app)
    coordinator = app[COORDINATOR]
    names = sorted(coordinator.sources)
    assert len(names) == PAGES
    # One poll group: the pages share a token, so they are polled together and batched.
    assert len({coordinator.sources[name].group for name in names}) == 1

    backfill = await cycle(coordinator, graph, names)
    report(f"backfill ({label})", backfill)
    assert all(coordinator.sources[name].up for name in names)
    stored = await app[STORE].counts()
    extra = PAGES // active_every if active_every else 0
    assert stored["messages"] == PAGES * 3 * 3 + extra

    await until_idle(graph)
    await clock.advance(60)
    quiet = await cycle(coordinator, graph, names)
    report(f"quiet cycle ({label})", quiet)
    assert all(coordinator.sources[name].up for name in names)
    assert await app[STORE].counts() == stored  # nothing new, nothing lost
    assert quiet.calls_per_page <= MAX_CALLS_PER_PAGE
    assert quiet.http_requests * PAGES_PER_HTTP_REQUEST <= PAGES
