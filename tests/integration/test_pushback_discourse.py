"""Issue 13 on Discourse: the source keeps reading when the forum pushes back.

Against the fake Discourse over real HTTP, with the real service (coordinator, pipeline,
SQLite store) on a fake clock: a year's backfill under a 429 on every 5th request (each
Retry-After form) or a 502 on every 7th completes with every post stored once, for at most
1.3x the requests of the unthrottled run; one refused topic or malformed post is skipped while
the rest is stored; a redirect to another host is refused before the API key goes there.

`pytest -s -k backfill tests/integration/test_pushback_discourse.py` prints the request counts.
"""

from __future__ import annotations

import io
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from monitor.app import create_app
from monitor.clock import FakeClock
from monitor.config import load_config
from monitor.logging import configure_logging
from monitor.simulator.discourse import FakeDiscourse, Fault, HttpStatus, RateLimit
from monitor.web.keys import COORDINATOR
from tests.integration.pushback_harness import NAME, Recording, Service, service_toml

KEY = "pushback-discourse-key-5e4d3c2b"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday
TOPICS = 200
MAX_RATIO = 1.3

Client = Callable[[web.Application], Awaitable[Any]]


def write_config(path: Path, *, base_url: str, backfill_days: int) -> Path:
    """One Discourse source; a site budget far above what a test sends (the clock is fake)."""
    path.write_text(
        service_toml(path)
        + f"""[[sources]]
type = "discourse"
name = "{NAME}"
brand = "acme"
base_url = "{base_url}"
api_key = "{KEY}"
moderators = ["group:support"]
backfill_days = {backfill_days}
request_timeout = "2s"
poll_interval = "60s"
requests_per_minute = 100000
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def start(
    clock: FakeClock, tmp_path: Path, aiohttp_client: Client
) -> Callable[..., Awaitable[Service]]:
    async def started(
        forum: FakeDiscourse, *, label: str = "s", backfill_days: int = 30
    ) -> Service:
        logs = io.StringIO()
        configure_logging(level="info", fmt="json", secrets=[KEY], stream=logs)
        path = write_config(
            tmp_path / f"{label}.toml", base_url=forum.base_url, backfill_days=backfill_days
        )
        app = create_app(load_config(path), clock=clock, start_polling=False, rng=random.Random(13))
        await aiohttp_client(app)
        entry = app[COORDINATOR].sources[NAME]
        recording = Recording(entry.source)
        entry.source = recording
        return Service(app=app, clock=clock, platform="discourse", recording=recording, logs=logs)

    return started


@pytest.fixture
async def forum(clock: FakeClock) -> AsyncIterator[FakeDiscourse]:
    fake = new_forum(clock)
    await fake.start()
    yield fake
    await fake.stop()


def new_forum(clock: FakeClock) -> FakeDiscourse:
    fake = FakeDiscourse(api_key=KEY, clock=clock, admin_api_per_minute=None)
    fake.add_user("ann", name="Ann Consumer")
    fake.add_user("sam", name="Sam Support", group="support")
    return fake


def seed_year(forum: FakeDiscourse) -> set[str]:
    """200 topics over a year, every 20th with 45 posts (read in chunks), the rest with 3.

    Every question is answered (Sam's post comes last), so no breach re-fetch adds requests.
    """
    posts: set[str] = set()
    for number in range(TOPICS):
        at = NOW - timedelta(days=360 * (TOPICS - number) / TOPICS)
        topic = forum.add_topic(title=f"Question {number}", author="ann", created_at=at, text="?")
        posts.add(str(forum.post_id(topic, 1)))
        for index in range(44 if number % 20 == 0 else 2):
            author = "sam" if index % 2 else "ann"
            post = forum.add_post(
                topic, author=author, created_at=at + timedelta(minutes=index + 1), text="..."
            )
            posts.add(str(post))
    return posts


def answered_topic(forum: FakeDiscourse, title: str, minutes_ago: float) -> int:
    """A question and Sam's answer, `minutes_ago` before the clock's now."""
    at = forum.clock.now() - timedelta(minutes=minutes_ago)
    topic = forum.add_topic(title=title, author="ann", created_at=at, text=f"{title}?")
    forum.add_post(topic, author="sam", created_at=at + timedelta(minutes=1), text="Answer")
    return topic


@dataclass(frozen=True, kw_only=True)
class Backfill:
    requests: int  # at the fake, refused ones included
    refused: int
    polls: int


async def backfill(
    start: Callable[..., Awaitable[Service]], clock: FakeClock, fault: Fault | None, every: int
) -> Backfill:
    """A 365-day backfill of the year's forum; asserts every post is stored once."""
    forum = new_forum(clock)
    expected = seed_year(forum)
    await forum.start()
    try:
        if fault is not None:
            forum.inject_every(fault, every)
        service = await start(
            forum, label="calm" if fault is None else "throttled", backfill_days=365
        )
        await service.poll_until_complete()
        stored = [m.message.platform_id for m in await service.store.all_messages(NAME)]
        assert sorted(stored) == sorted(expected)  # every post, none twice
        delivered = service.delivered()
        assert set(delivered) == expected and max(delivered.values()) == 1
        assert all(up == 1 for up in service.ups)  # never down: it only slowed down
        assert service.metric("source_skipped", "acme", NAME, "bad_request") == 0
        assert "resume" not in service.app[COORDINATOR].sources[NAME].cursor
        statuses = Counter(r.status for r in forum.requests)
        return Backfill(
            requests=len(forum.requests),
            refused=len(forum.requests) - statuses[200],
            polls=service.polls,
        )
    finally:
        await forum.stop()


def report(fault: Fault, calm: Backfill, throttled: Backfill) -> float:
    ratio = throttled.requests / calm.requests
    print(
        f"\n{fault}: {throttled.requests} requests ({throttled.refused} refused) in"
        f" {throttled.polls} polls vs {calm.requests} unthrottled in {calm.polls}: {ratio:.3f}x"
    )
    return ratio


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(RateLimit(wait_seconds=30), id="retry-after-seconds"),
        pytest.param(RateLimit(wait_seconds=30, retry_after="http-date"), id="retry-after-date"),
        pytest.param(RateLimit(wait_seconds=30, retry_after="none"), id="no-retry-after"),
    ],
)
async def test_a_year_backfill_under_a_429_on_every_5th_request_stores_every_post_once(
    start: Callable[..., Awaitable[Service]], clock: FakeClock, fault: RateLimit
) -> None:
    calm = await backfill(start, clock, None, 5)
    throttled = await backfill(start, clock, fault, 5)
    ratio = report(fault, calm, throttled)
    assert calm.polls == 1 and calm.refused == 0
    # A refused request is a request: every 5th refused puts the floor at 1.25x.
    assert throttled.refused == throttled.requests // 5
    assert throttled.polls == throttled.refused + 1  # each 429 interrupts one poll, resumed
    assert ratio <= MAX_RATIO


async def test_the_wait_comes_from_retry_after_in_either_form_or_the_whole_window(
    start: Callable[..., Awaitable[Service]], forum: FakeDiscourse, clock: FakeClock
) -> None:
    topic = answered_topic(forum, "Q", minutes_ago=100)
    service = await start(forum)
    await service.poll_until_complete()
    delays = []
    for fault in (
        RateLimit(wait_seconds=42),
        RateLimit(wait_seconds=42, retry_after="http-date"),
        RateLimit(wait_seconds=42, retry_after="none"),
    ):
        # A new post bumps the topic; its read (after the list page) is refused.
        forum.add_post(topic, author="ann", created_at=clock.now(), text="+")
        forum.inject(fault, path_contains="/t/")
        delays.append(await service.poll())
        await clock.advance(delays[-1])
        await service.poll_until_complete()
    # The poll stopped, and the next waits as long as the forum said (or a whole minute).
    assert delays[0] >= 42 and delays[1] >= 42 and delays[2] >= 60
    assert [b.wait_seconds for b in service.recording.batches if b.interrupted] == [42, 42, 60]
    assert service.metric("poll_errors", "acme", NAME, "rate_limited") == 3
    assert all(up == 1 for up in service.ups)


async def test_a_502_on_every_7th_request_resumes_the_same_way(
    start: Callable[..., Awaitable[Service]], clock: FakeClock
) -> None:
    fault = HttpStatus(status=502, body="<html>502 Bad Gateway</html>")
    calm = await backfill(start, clock, None, 7)
    bursts = await backfill(start, clock, fault, 7)
    ratio = report(fault, calm, bursts)
    assert bursts.refused == bursts.requests // 7 and bursts.polls == bursts.refused + 1
    assert ratio <= MAX_RATIO


async def test_a_forum_failing_altogether_is_the_sources_failure_not_a_skipped_topic(
    start: Callable[..., Awaitable[Service]], forum: FakeDiscourse, clock: FakeClock
) -> None:
    topics = [answered_topic(forum, f"Topic {n}", minutes_ago=300 - n) for n in range(6)]
    forum.inject(RateLimit(wait_seconds=30), path_contains=f"/t/{topics[2]}.json")
    service = await start(forum)
    await service.poll()  # stops at topic 2, topics 1 and 0 left
    entry = service.app[COORDINATOR].sources[NAME]
    assert entry.interruptions == 1 and entry.cursor["resume"]["topics"][0] == str(topics[2])

    # Then every request fails: the resumed topic's 502 is not held against that topic,
    # since the forum answers nothing else either.
    forum.inject(HttpStatus(status=502), times=None)
    await clock.advance(30)
    await service.poll()
    assert entry.failures == 1 and service.ups[-1] == 0
    assert service.metric("poll_errors", "acme", NAME, "transient") == 1
    assert [r.path for r in forum.requests[-2:]] == [f"/t/{topics[2]}.json", "/latest.json"]

    forum.clear_faults()
    await clock.advance(60)
    await service.poll_until_complete()
    assert len(await service.store.all_messages(NAME)) == 12
    assert service.metric("source_skipped", "acme", NAME, "bad_request") == 0
    assert service.ups[-1] == 1


async def test_a_topic_a_throttle_left_first_that_then_fails_for_good_is_skipped(
    start: Callable[..., Awaitable[Service]], forum: FakeDiscourse, clock: FakeClock
) -> None:
    topics = [answered_topic(forum, f"Topic {n}", minutes_ago=300 - n) for n in range(4)]
    bad = topics[2]
    forum.inject(RateLimit(wait_seconds=30), path_contains=f"/t/{bad}.json")
    service = await start(forum)
    await service.poll()  # throttled at the bad topic: the next fetch begins with it
    forum.fail_topic(bad, 500)
    await clock.advance(30)
    # Its first failure, before anything else answered: the forum is asked whether it answers
    # at all (it does), the failure is noted, and the second one gets the topic skipped.
    await service.poll_until_complete(limit=5)
    assert service.polls == 3 and all(up == 1 for up in service.ups)
    stored = {m.message.thread_id for m in await service.store.all_messages(NAME)}
    assert stored == {str(t) for t in topics if t != bad}
    assert service.metric("source_skipped", "acme", NAME, "bad_request") == 1
    assert len(forum.requests_to(f"/t/{bad}.json")) == 3  # the 429, then two 500s


@pytest.mark.parametrize(
    ("status", "reason", "reads_per_try"),
    [(403, "forbidden", 1), (400, "bad_request", 1), (500, "bad_request", 2)],
)
async def test_one_bad_topic_is_skipped_counted_once_and_retried_at_a_slower_pace(
    start: Callable[..., Awaitable[Service]],
    forum: FakeDiscourse,
    clock: FakeClock,
    status: int,
    reason: str,
    reads_per_try: int,
) -> None:
    topics = [answered_topic(forum, f"Topic {n}", minutes_ago=300 - n) for n in range(4)]
    bad, busy = topics[1], topics[2]
    service = await start(forum)
    await service.poll_until_complete()
    before = {m.message.platform_id for m in await service.store.all_messages(NAME)}
    assert len(before) == 8

    # Moved to a private category (403), refused (400), or broken on the server (500).
    forum.fail_topic(bad, status)
    await clock.advance(600)  # due for a re-check
    await service.poll_until_complete()
    skipped = [b.skipped[str(bad)] for b in service.recording.batches if str(bad) in b.skipped]
    assert [s.reason for s in skipped] == [reason]
    assert f"HTTP {status}" in skipped[0].detail

    # Half an hour of polls a minute; the other topics go on being read.
    reads = len(forum.requests_to(f"/t/{bad}.json"))
    new_posts = []
    for minute in range(30):
        if minute % 10 == 0:
            answer = forum.add_post(busy, author="ann", created_at=clock.now(), text=f"{minute}")
            new_posts.append(str(answer))
        await service.poll_every_minute(1)
    retries = (len(forum.requests_to(f"/t/{bad}.json")) - reads) // reads_per_try

    stored = {m.message.platform_id: m for m in await service.store.all_messages(NAME)}
    assert set(new_posts) <= set(stored)
    # Its stored posts are not tombstoned: out of reach is not deleted.
    assert not any(m.message.deleted for m in stored.values())
    assert all(up == 1 for up in service.ups)
    assert service.metric("source_skipped", "acme", NAME, reason) == 1
    assert service.logged("object skipped, polling the rest", object=str(bad)) == 1
    # Tried again after 5 min of rest and its 10 min re-check, then every 20: not every poll.
    assert 2 <= retries <= 3
    assert service.app[COORDINATOR].sources[NAME].skips.resting(clock.now()) == {str(bad)}

    forum.heal_topic(bad)  # readable again: read at its next try, and forgotten
    await service.poll_every_minute(40)
    assert str(bad) not in service.app[COORDINATOR].sources[NAME].skips
    assert service.logged("skipped object readable again", object=str(bad)) == 1


@pytest.mark.parametrize("missing", ["created_at", "post_number", "id"])
async def test_a_malformed_post_is_skipped_and_the_rest_of_its_topic_stored(
    start: Callable[..., Awaitable[Service]],
    forum: FakeDiscourse,
    clock: FakeClock,
    missing: str,
) -> None:
    topic = forum.add_topic(title="Q", author="ann", created_at=NOW - timedelta(hours=3), text="1")
    posts = [forum.post_id(topic, 1)]
    for minute in (10, 20, 30):
        author = "sam" if minute == 30 else "ann"
        at = NOW - timedelta(hours=3) + timedelta(minutes=minute)
        posts.append(forum.add_post(topic, author=author, created_at=at, text=str(minute)))
    service = await start(forum)
    await service.poll_until_complete()

    # Post 2 stored earlier now comes without the field; a new topic has one from the start.
    forum.drop_post_fields(posts[1], missing)
    later = answered_topic(forum, "Later", minutes_ago=30)
    broken = forum.add_post(later, author="ann", created_at=clock.now(), text="broken")
    forum.drop_post_fields(broken, missing)
    forum.add_post(later, author="sam", created_at=clock.now(), text="after it")
    forum.add_post(topic, author="sam", created_at=clock.now(), text="bump")
    await clock.advance(60)
    await service.poll_until_complete()
    await service.poll_every_minute(12)  # a re-check of both topics finds the same posts again

    stored = {m.message.platform_id: m for m in await service.store.all_messages(NAME)}
    assert str(broken) not in stored
    assert len(stored) == 5 + 3  # the first topic's five, the new topic's three good posts
    assert stored[str(posts[1])].message.deleted is False  # skipped is not deleted
    assert all(up == 1 for up in service.ups)
    assert service.metric("source_skipped", "acme", NAME, "malformed") == 2
    assert service.logged("object skipped, polling the rest") == 2


@pytest.mark.parametrize("how", ["deleted user", "fields missing"])
async def test_a_post_without_its_author_is_an_unknown_consumer(
    start: Callable[..., Awaitable[Service]], forum: FakeDiscourse, clock: FakeClock, how: str
) -> None:
    topic = forum.add_topic(title="Q", author="ann", created_at=NOW - timedelta(hours=2), text="q")
    nobody = forum.add_post(topic, author="ann", created_at=NOW - timedelta(hours=1), text="me?")
    if how == "deleted user":
        forum.orphan_post(nobody)
    else:
        forum.drop_post_fields(nobody, "user_id", "username")
    service = await start(forum)
    await service.poll_until_complete()

    stored = {m.message.platform_id: m.message for m in await service.store.all_messages(NAME)}
    message = stored[str(nobody)]
    assert (message.author_id, message.author_name, message.is_brand) == (None, None, False)
    items = await service.store.items_between(NOW - timedelta(days=1), NOW)
    assert len(items) == 2  # the question and the anonymous follow-up both wait for an answer
    assert all(
        s.reason != "malformed" for b in service.recording.batches for s in b.skipped.values()
    )


async def test_a_redirect_to_another_host_is_refused_before_the_key_goes_there(
    start: Callable[..., Awaitable[Service]], forum: FakeDiscourse, aiohttp_client: Client
) -> None:
    seen: list[dict[str, str]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.json_response({"topic_list": {"topics": []}})

    other = web.Application()
    other.router.add_route("*", "/{tail:.*}", record)
    elsewhere = await aiohttp_client(other)
    target = f"http://{elsewhere.host}:{elsewhere.port}/latest.json"
    answered_topic(forum, "Q", minutes_ago=30)
    forum.inject(HttpStatus(status=302, body="", headers={"Location": target}), times=None)
    service = await start(forum)
    await service.poll()

    entry = service.app[COORDINATOR].sources[NAME]
    assert entry.failures == 1 and service.ups == [0]
    assert f"{elsewhere.host}:{elsewhere.port}" in (entry.last_error or "")
    assert (entry.last_error or "").startswith("fatal: ")
    assert seen == []  # not followed at all: no Api-Key reached the other host
    assert KEY not in service.logs.getvalue()
    assert service.metric("poll_errors", "acme", NAME, "fatal") == 1
