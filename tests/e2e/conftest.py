"""Fixtures for end-to-end runs: a fake Graph API and a config pointing at it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from monitor.simulator.graph_api import FakeGraphApi

PAGE_ID = "555000111"
TOKEN = "e2e-secret-token-8f3a9c"


@pytest.fixture
async def graph() -> AsyncIterator[FakeGraphApi]:
    api = FakeGraphApi(page_id=PAGE_ID, page_name="Acme", access_token=TOKEN)
    await api.start()
    yield api
    await api.stop()


def write_config(
    path: Path,
    *,
    api_base_url: str,
    database_url: str,
    port: int = 0,
    poll_interval: str = "60s",
    reply_match: str = "thread",
    extra: str = "",
) -> Path:
    """A config with the Amsterdam office calendar and 60m / 30m targets."""
    path.write_text(
        f"""
database_url = "{database_url}"
[http]
port = {port}
[calendars.office]
timezone = "Europe/Amsterdam"
hours = ["mon-fri 09:00-17:00"]
[policies.default]
office_hours = "60m"
after_hours = "30m"
reply_match = "{reply_match}"
[[sources]]
type = "facebook_page"
name = "acme-fb"
brand = "acme"
page_id = "{PAGE_ID}"
access_token = "{TOKEN}"
api_base_url = "{api_base_url}"
poll_interval = "{poll_interval}"
request_timeout = "2s"
{extra}
""",
        encoding="utf-8",
    )
    return path


async def settle(condition: Callable[[], bool], what: str) -> None:
    """Let background work with real I/O (scheduler, store) finish while fake time stands.

    Up to 30 s: on a loaded 2-core CI runner, store writes can take seconds.
    """
    for _ in range(3000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")
