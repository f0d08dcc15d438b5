"""Issue 13 on Flarum: a throttle in the middle of a long backfill loses nothing.

The fake answers every 5th request with Flarum's 429 (its ThrottleApi middleware's JSON:API
error) or every 7th with a 503; the discussions read before it are kept, the next fetch reads
only the ones left, and the whole year arrives once, for at most 1.3x the requests.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import aiohttp
import pytest

from monitor.clock import FakeClock
from monitor.config import FlarumConfig
from monitor.simulator.flarum import FakeFlarum, FlarumError, HttpStatus
from monitor.sources.base import FetchRequest, SourceError
from monitor.sources.flarum import FlarumSource
from tests.integration.test_flarum_source import ADMIN_USER, KEY, NOW

DISCUSSIONS = 150
MAX_RATIO = 1.3


def seed(forum: FakeFlarum) -> set[str]:
    """150 discussions over a year, a question and two replies each."""
    ann = forum.add_user("ann", display_name="Ann Consumer")
    sam = forum.add_user("support_sam", display_name="Sam (Acme)")
    posts: set[str] = set()
    for number in range(DISCUSSIONS):
        at = NOW - timedelta(days=360 * (DISCUSSIONS - number) / DISCUSSIONS)
        discussion, first = forum.add_discussion(
            title=f"Question {number}", author=ann, created_at=at, content="?"
        )
        posts.add(str(first))
        for minute, author in ((5, sam), (9, ann)):
            posts.add(
                str(
                    forum.add_post(
                        discussion,
                        author=author,
                        created_at=at + timedelta(minutes=minute),
                        content="...",
                    )
                )
            )
    return posts


async def backfill(fault: object | None, every: int) -> tuple[int, int]:
    """(requests, fetches) of a 365-day backfill, every post checked returned exactly once."""
    forum = FakeFlarum(api_key=KEY)
    expected = seed(forum)
    await forum.start()
    clock = FakeClock(NOW)
    try:
        if fault is not None:
            forum.inject_every(fault, every)
        config = FlarumConfig.model_validate(
            {
                "type": "flarum",
                "name": "acme-forum",
                "brand": "acme",
                "base_url": forum.base_url,
                "moderators": ["support_sam"],
                "api_key": KEY,
                "user_id": ADMIN_USER,
                "backfill_days": 365,
                "request_timeout": 2,
            }
        )
        async with aiohttp.ClientSession() as session:
            source = FlarumSource(config, session, clock, page_size=50)
            seen: Counter[str] = Counter()
            cursor: dict[str, object] = {}
            fetches = 0
            while fetches < 400:
                fetches += 1
                try:
                    batch = await source.fetch(
                        FetchRequest(cursor=cursor, active_threads=frozenset())
                    )
                except SourceError:  # refused before any progress: the coordinator backs off
                    await clock.advance(1.0)
                    continue
                seen.update(m.platform_id for m in batch.messages)
                cursor = dict(batch.cursor)
                if batch.interrupted is None:
                    break
                await clock.advance(batch.wait_seconds or 1.0)
            assert "resume" not in cursor, "the backfill never completed"
        assert set(seen) == expected  # every post ...
        assert max(seen.values()) == 1  # ... exactly once
        return len(forum.requests), fetches
    finally:
        await forum.stop()


@pytest.mark.parametrize(
    ("fault", "every"),
    [
        pytest.param(FlarumError(status=429, code="too_many_requests"), 5, id="429"),
        pytest.param(
            FlarumError(status=429, code="too_many_requests", headers={"Retry-After": "30"}),
            5,
            id="429-retry-after",
        ),
        pytest.param(HttpStatus(status=503), 7, id="503-every-7th"),
    ],
)
async def test_a_year_backfill_completes_under_a_throttle_with_few_extra_requests(
    fault: object, every: int
) -> None:
    calm, calm_fetches = await backfill(None, every)
    assert calm_fetches == 1
    throttled, fetches = await backfill(fault, every)
    ratio = throttled / calm
    name = type(fault).__name__
    print(f"\n{name}: {throttled} requests in {fetches} fetches vs {calm}: {ratio:.3f}x")
    assert fetches > 1
    assert ratio <= MAX_RATIO
