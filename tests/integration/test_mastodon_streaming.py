"""Mastodon's streaming API wakes the poll: a new post is stored in seconds, not at the next
poll_interval (60 s here). The service is create_app on a real clock, the fake Mastodon speaks
SSE over real HTTP (monitor/simulator/mastodon/streaming.py)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from monitor.app import create_app
from monitor.config import load_config
from monitor.logging import configure_logging
from monitor.simulator.mastodon import FakeMastodon
from monitor.sources.mastodon._stream import StreamListener
from monitor.web.keys import COORDINATOR, METRICS, STORE

TOKEN = "stream-test-token"
CONFIG = """
database_url = "sqlite+aiosqlite:///{db}"
[policies.default]
office_hours = "60m"
after_hours = "30m"
[[sources]]
type = "mastodon"
name = "acme-masto"
brand = "acme"
base_url = "{server}"
account = "acme"
access_token = "{token}"
hashtags = ["JobFair"]
poll_interval = "60s"
request_timeout = "5s"
streaming = {streaming}
"""


@pytest.fixture
async def fake() -> AsyncIterator[FakeMastodon]:
    server = FakeMastodon(owner="acme", access_token=TOKEN)
    server.streaming.heartbeat_seconds = 0.5
    await server.start()
    yield server
    await server.stop()


async def service(
    fake: FakeMastodon, tmp_path: Path, aiohttp_client: Any, *, streaming: bool = True
) -> Any:
    path = tmp_path / "c.toml"
    path.write_text(
        CONFIG.format(
            db=tmp_path / "m.db",
            server=fake.base_url,
            token=TOKEN,
            streaming=str(streaming).lower(),
        )
    )
    app = create_app(load_config(path))
    await aiohttp_client(app)
    # The first poll (the backfill) has run: news may hurry the next one from now on.
    await until(lambda: app[COORDINATOR].sources["acme-masto"].polls >= 1, "the first poll")
    return app


async def until(check: Callable[[], bool | Awaitable[bool]], what: str, within: float = 8) -> float:
    """Seconds until `check()` holds; fails after `within`."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        result = check()
        if await result if isinstance(result, Awaitable) else result:
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    pytest.fail(f"{what}: not within {within} s")


async def item_count(app: Any) -> int:
    now = datetime.now(UTC)
    return len(await app[STORE].items_between(now - timedelta(days=1), now + timedelta(days=1)))


def streams(fake: FakeMastodon) -> list[str]:
    return [r.path for r in fake.requests if r.path.startswith("/api/v1/streaming/")]


async def test_a_hashtag_question_and_a_mention_are_stored_in_seconds(
    fake: FakeMastodon, tmp_path: Path, aiohttp_client: Any
) -> None:
    app = await service(fake, tmp_path, aiohttp_client)
    await until(lambda: fake.streaming.open_streams == 2, "both streams open")
    assert sorted(streams(fake)) == [
        "/api/v1/streaming/hashtag",
        "/api/v1/streaming/user/notification",
    ]
    assert connected(app) == 2
    fake.post("ann@other.example", "Is the fair free this year? #JobFair")
    took = await until(lambda: count_is(app, 1), "the question")
    fake.post("bob", "@acme where do I park?")  # no hashtag: through the notification stream
    took = max(took, await until(lambda: count_is(app, 2), "the mention"))
    # The 60 s interval was never waited for; a poll per burst, not per status.
    assert took < 6
    assert app[COORDINATOR].sources["acme-masto"].polls <= 4


async def test_a_dropped_stream_reconnects_and_the_next_post_still_arrives(
    fake: FakeMastodon, tmp_path: Path, aiohttp_client: Any
) -> None:
    app = await service(fake, tmp_path, aiohttp_client)
    await until(lambda: fake.streaming.open_streams == 2, "both streams open")
    fake.streaming.drop_all()  # the server restarts, or a proxy cuts idle connections
    await until(lambda: fake.streaming.connections == 4, "both streams open again")
    fake.post("carl", "@acme are the doors open at nine?")
    assert await until(lambda: count_is(app, 1), "the mention after the reconnect") < 6


async def test_a_post_made_while_the_streams_were_down_is_fetched_after_the_reconnect(
    fake: FakeMastodon, tmp_path: Path, aiohttp_client: Any
) -> None:
    app = await service(fake, tmp_path, aiohttp_client)
    await until(lambda: fake.streaming.open_streams == 2, "both streams open")
    fake.streaming.drop_all()
    # Announced to nobody: the streams are closing and the next ones are not open yet.
    fake.post("dora", "@acme is there a cloakroom?")
    await until(lambda: fake.streaming.connections == 4, "both streams open again")
    assert await until(lambda: count_is(app, 1), "the mention made in the gap") < 6


async def test_a_server_before_4_0_names_its_streaming_server_in_v1(
    fake: FakeMastodon, tmp_path: Path, aiohttp_client: Any
) -> None:
    fake.streaming.instance_v2 = False
    app = await service(fake, tmp_path, aiohttp_client)
    await until(lambda: fake.streaming.open_streams == 2, "both streams open")
    asked = [r.path for r in fake.requests if r.path.endswith("/instance")]
    assert asked == ["/api/v2/instance", "/api/v1/instance"]
    fake.post("ann@other.example", "Can I bring my CV on paper? #JobFair")
    assert await until(lambda: count_is(app, 1), "the question") < 6


async def test_streams_follow_the_lease(
    fake: FakeMastodon, tmp_path: Path, aiohttp_client: Any
) -> None:
    app = await service(fake, tmp_path, aiohttp_client)
    coordinator = app[COORDINATOR]
    await until(lambda: fake.streaming.open_streams == 2, "both streams open")
    await coordinator.hold(set())  # another instance took the source over
    await until(lambda: fake.streaming.open_streams == 0, "the streams closed", within=3)
    assert connected(app) is None
    await coordinator.hold({"acme-masto"})  # and gave it back
    await until(lambda: fake.streaming.open_streams == 2, "both streams open again")
    assert connected(app) == 2


async def test_a_server_without_streaming_is_polled_and_asked_once(
    fake: FakeMastodon, tmp_path: Path, aiohttp_client: Any
) -> None:
    logs = io.StringIO()
    configure_logging(level="info", fmt="json", stream=logs)
    fake.streaming.enabled = False
    try:
        app = await service(fake, tmp_path, aiohttp_client)
        await until(lambda: len(streams(fake)) == 2, "each stream tried")
        await asyncio.sleep(2.5)  # longer than the first retries would take
    finally:
        configure_logging()
    assert len(streams(fake)) == 2 and fake.streaming.connections == 0
    lines = [orjson.loads(line) for line in logs.getvalue().splitlines() if line]
    refused = [line for line in lines if line["event"].startswith("Mastodon streaming refused")]
    assert sorted(line["stream"] for line in refused) == ["hashtag", "user/notification"]
    assert all(line["level"] == "warning" and line["status"] == 404 for line in refused)
    assert app[COORDINATOR].sources["acme-masto"].failures == 0
    assert connected(app) == 0  # what the operator sees: no stream, polling only


async def test_streaming_false_opens_no_stream(
    fake: FakeMastodon, tmp_path: Path, aiohttp_client: Any
) -> None:
    app = await service(fake, tmp_path, aiohttp_client, streaming=False)
    await asyncio.sleep(1)
    assert streams(fake) == [] and fake.streaming.connections == 0
    assert connected(app) is None


async def test_stopping_the_service_closes_its_streams(
    fake: FakeMastodon, tmp_path: Path, aiohttp_client: Any
) -> None:
    app = await service(fake, tmp_path, aiohttp_client)
    await until(lambda: fake.streaming.open_streams == 2, "both streams open")
    await app[COORDINATOR].stop()
    await until(lambda: fake.streaming.open_streams == 0, "the streams closed", within=3)
    tasks = [t for t in asyncio.all_tasks() if t.get_name().startswith("stream:")]
    assert tasks == []


async def count_is(app: Any, wanted: int) -> bool:
    return await item_count(app) == wanted


def connected(app: Any) -> float | None:
    """webcare_stream_connected of the source (None: no such series)."""
    labels = {"brand": "acme", "source": "acme-masto"}
    value: float | None = app[METRICS].registry.get_sample_value("webcare_stream_connected", labels)
    return value


async def test_a_refused_stream_is_asked_again_later_and_logged_once(
    fake: FakeMastodon, aiohttp_client: Any
) -> None:
    """The server switches streaming on after refusing it: the hourly retry (here 0.3 s) opens
    the stream, and the refusal was logged once, not once per retry."""
    fake.streaming.enabled = False
    logs = io.StringIO()
    configure_logging(level="info", fmt="json", stream=logs)
    news: list[int] = []
    async with aiohttp.ClientSession() as session:
        listener = StreamListener(
            source="acme-masto",
            base_url=fake.base_url,
            token=None,
            hashtags=["jobfair"],
            session=session,
            refused_retry=0.3,
        )
        task = asyncio.create_task(listener.listen(lambda: news.append(1)))
        try:
            await until(lambda: len(streams(fake)) >= 3, "three refused tries")
            fake.streaming.enabled = True
            await until(lambda: fake.streaming.open_streams == 1, "the stream open at last")
            fake.post("ann", "Is it free? #JobFair")
            await until(lambda: bool(news), "the news")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            configure_logging()
    lines = [orjson.loads(line) for line in logs.getvalue().splitlines() if line]
    assert [line["event"] for line in lines].count(
        "Mastodon streaming refused: new posts are seen at the next poll"
    ) == 1


async def test_news_during_a_poll_brings_the_next_poll_right_after_it(
    fake: FakeMastodon, tmp_path: Path, aiohttp_client: Any
) -> None:
    """A status announced while a poll runs, after that poll read its timeline, is fetched by
    a poll right after it ends, not at the next 60 s interval."""
    app = await service(fake, tmp_path, aiohttp_client)
    await until(lambda: fake.streaming.open_streams == 2, "both streams open")
    # The next poll stops at the brand's own statuses, after the hashtag timeline and mentions.
    release = fake.hold("/api/v1/accounts/")
    read = sum(1 for r in fake.requests if "/timelines/tag/" in r.path)
    fake.post("ann", "Is the fair free? #JobFair")
    # Requests are recorded as answered: the timeline is read, the poll goes on to the hold.
    await until(
        lambda: sum(1 for r in fake.requests if "/timelines/tag/" in r.path) > read,
        "the poll past the hashtag timeline",
    )
    fake.post("bob", "Is there parking? #JobFair")  # announced while the poll is under way
    release.set()
    assert await until(lambda: count_is(app, 2), "both questions") < 8
