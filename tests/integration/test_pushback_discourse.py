"""Issue 13 on Discourse: a throttle in the middle of a long backfill loses nothing.

The fake answers 429 to every 5th request (Discourse's JSON 429 with Retry-After, the same
without the header, nginx's HTML 429) or a 502 to every 7th; the source keeps what it read,
the next fetch resumes after it, and the whole year arrives once, for at most 1.3x the
requests of the unthrottled run.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import aiohttp
import pytest

from monitor.clock import FakeClock
from monitor.simulator.discourse import (
    FakeDiscourse,
    HttpStatus,
    NginxRateLimit,
    RateLimit,
)
from monitor.sources.base import FetchRequest
from tests.integration.test_discourse_source import KEY, NOW, make_source

TOPICS = 200
MAX_RATIO = 1.3


def seed(forum: FakeDiscourse) -> set[str]:
    """200 topics over a year, 3 posts each, every 20th with 45 posts (chunked reads)."""
    forum.add_user("ann", name="Ann Consumer")
    forum.add_user("sam", name="Sam Support", group="support")
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


async def backfill(fault: object | None, every: int) -> tuple[int, int]:
    """(requests, fetches) of a 365-day backfill, every post checked stored exactly once."""
    clock = FakeClock(NOW)
    forum = FakeDiscourse(api_key=KEY, clock=clock, admin_api_per_minute=None)
    expected = seed(forum)
    await forum.start()
    try:
        if fault is not None:
            forum.inject_every(fault, every)
        async with aiohttp.ClientSession() as session:
            source = make_source(forum, session, clock, backfill_days=365)
            seen: Counter[str] = Counter()
            cursor: dict[str, object] = {}
            fetches = 0
            while fetches < 400:
                fetches += 1
                batch = await source.fetch(FetchRequest(cursor=cursor, active_threads=frozenset()))
                seen.update(m.platform_id for m in batch.messages)
                cursor = dict(batch.cursor)
                if batch.interrupted is None:
                    break
                assert batch.wait_seconds is None or batch.wait_seconds > 0
                await clock.advance(batch.wait_seconds or 1.0)
            assert batch.interrupted is None, "the backfill never completed"
        assert set(seen) == expected  # every post ...
        assert max(seen.values()) == 1  # ... exactly once
        assert "resume" not in cursor
        return len(forum.requests), fetches
    finally:
        await forum.stop()


@pytest.mark.parametrize(
    ("fault", "every"),
    [
        pytest.param(RateLimit(wait_seconds=30), 5, id="429-retry-after"),
        pytest.param(RateLimit(wait_seconds=30, retry_after_header=False), 5, id="429-no-header"),
        pytest.param(NginxRateLimit(), 5, id="nginx-429"),
        pytest.param(HttpStatus(status=502), 7, id="502-every-7th"),
    ],
)
async def test_a_year_backfill_completes_under_a_throttle_with_few_extra_requests(
    fault: object, every: int
) -> None:
    calm, calm_fetches = await backfill(None, every)
    assert calm_fetches == 1
    throttled, fetches = await backfill(fault, every)
    ratio = throttled / calm
    print(
        f"\n{fault}: {throttled} requests in {fetches} fetches vs {calm} unthrottled: {ratio:.3f}x"
    )
    assert fetches > 1  # it was interrupted, and resumed
    assert ratio <= MAX_RATIO
