"""DiscourseSource against the fake Discourse over real loopback HTTP (no mocks)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import orjson
import pytest

from monitor.clock import FakeClock
from monitor.config import DiscourseConfig
from monitor.domain import Batch, Message
from monitor.simulator.discourse import (
    MODERATOR_ACTION,
    Delay,
    Disconnect,
    DiscourseError,
    FakeDiscourse,
    Fault,
    HttpStatus,
    IpRateLimit,
    MalformedJson,
    NginxRateLimit,
    RateLimit,
    TruncatedBody,
)
from monitor.simulator.discourse_scenario import WEBCARE_GROUP, seed_forum
from monitor.sources.base import (
    AuthError,
    FatalError,
    FetchRequest,
    RateLimited,
    SourceError,
    TransientError,
)
from monitor.sources.budget import RequestBudget
from monitor.sources.discourse import (
    DiscourseSource,
    ListCursor,
    ListedTopic,
    Moderators,
    cooked_text,
    parse_discourse_time,
)

KEY = "d1sc0urse-admin-key-6f1e2d3c4b5a"
NOW = datetime(2024, 1, 8, 12, 0, tzinfo=UTC)
EMPTY = FetchRequest(cursor={}, active_threads=frozenset())


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
async def forum(clock: FakeClock) -> AsyncIterator[FakeDiscourse]:
    fake = FakeDiscourse(api_key=KEY, clock=clock)
    fake.add_user("ann", name="Ann Consumer")
    fake.add_user("bob", name="Bob Consumer")
    fake.add_user("sam", name="Sam Support", group="support")
    fake.add_user("mod", name="Mo Derator", moderator=True)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def make_source(
    forum: FakeDiscourse,
    session: aiohttp.ClientSession,
    clock: FakeClock,
    *,
    budget: RequestBudget | None = None,
    **overrides: Any,
) -> DiscourseSource:
    settings: dict[str, Any] = {
        "type": "discourse",
        "name": "acme-forum",
        "brand": "acme",
        "base_url": forum.base_url,
        "api_key": KEY,
        "moderators": ["group:support", "group:staff"],
        "backfill_days": 7,
        "request_timeout": 2,
        **overrides,
    }
    config = DiscourseConfig.model_validate(settings)
    return DiscourseSource(
        config, session, clock, budget or RequestBudget(per_minute=1000, clock=clock)
    )


def at(minutes: float) -> datetime:
    return NOW + timedelta(minutes=minutes)


def by_id(batch: Batch) -> dict[str, Message]:
    return {m.platform_id: m for m in batch.messages}


def active(cursor: Any, *topics: int) -> FetchRequest:
    return FetchRequest(cursor=cursor, active_threads=frozenset(str(t) for t in topics))


# --- mapping ----------------------------------------------------------------------------------


async def test_maps_topics_posts_replies_and_brand_authors(
    forum: FakeDiscourse, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    topic = forum.add_topic(
        title="Order not arrived", author="ann", created_at=at(-60), text="Where is <my> order?"
    )
    first = forum.post_id(topic, 1)
    direct = forum.add_post(
        topic, author="sam", created_at=at(-50), text="Checking now", reply_to=1
    )
    follow = forum.add_post(topic, author="bob", created_at=at(-40), text="Same here")
    staff = forum.add_post(topic, author="mod", created_at=at(-30), text="Fixed", reply_to=3)
    whisper = forum.whisper(topic, author="sam", created_at=at(-29), text="internal note")
    action = forum.small_action(topic, author="mod", created_at=at(-28))
    moved = forum.add_post(
        topic, author="mod", created_at=at(-27), text="", post_type=MODERATOR_ACTION
    )

    batch = await make_source(forum, session, clock).fetch(EMPTY)
    messages = by_id(batch)

    assert messages[str(first)] == Message(
        platform_id=str(first),
        thread_id=str(topic),
        parent_id=None,
        author_id="1",
        author_name="ann",
        text="Where is <my> order?",
        created_at=at(-60),
        seq=1,
        is_brand=False,
        permalink=f"{forum.base_url}/t/order-not-arrived/{topic}/1",
    )
    assert (messages[str(direct)].parent_id, messages[str(direct)].is_brand) == (str(first), True)
    # No reply_to_post_number: a reply to the topic, i.e. to its first post.
    assert messages[str(follow)].parent_id == str(first)
    assert messages[str(follow)].is_brand is False
    # The staff flag counts for "group:staff"; reply_to_post_number 3 is the follow-up.
    assert (messages[str(staff)].parent_id, messages[str(staff)].is_brand) == (str(follow), True)
    assert [messages[str(p)].seq for p in (first, direct, follow, staff)] == [1, 2, 3, 4]
    for hidden_kind in (whisper, action, moved):
        assert str(hidden_kind) not in messages
    assert batch.complete_threads == {
        str(topic): frozenset({str(first), str(direct), str(follow), str(staff)})
    }
    assert batch.requests == 2  # one list, one topic
    for request in forum.requests:
        assert KEY not in request.path and all(KEY not in v for _, v in request.query)


@pytest.mark.parametrize(
    ("moderators", "expected"),
    [
        (["SAM"], {"sam"}),
        (["id:4"], {"mod"}),
        (["group:Support"], {"sam"}),
        (["group:moderators"], {"mod"}),
        (["group:admins"], set()),
        (["group:staff"], {"mod"}),
    ],
)
async def test_moderators_by_username_id_group_and_flag(
    forum: FakeDiscourse,
    session: aiohttp.ClientSession,
    clock: FakeClock,
    moderators: list[str],
    expected: set[str],
) -> None:
    topic = forum.add_topic(title="Q", author="ann", created_at=at(-60), text="q")
    forum.add_post(topic, author="sam", created_at=at(-50), text="a1")
    forum.add_post(topic, author="mod", created_at=at(-40), text="a2")
    batch = await make_source(forum, session, clock, moderators=moderators).fetch(EMPTY)
    assert {m.author_name for m in batch.messages if m.is_brand} == expected


async def test_long_topic_is_read_through_its_stream_in_chunks_of_20(
    forum: FakeDiscourse, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    topic = forum.add_topic(title="Long", author="ann", created_at=at(-300), text="post 1")
    for n in range(2, 46):
        forum.add_post(
            topic, author="bob" if n % 2 else "sam", created_at=at(-300 + n), text=f"{n}"
        )
    forum.whisper(topic, author="sam", created_at=at(-200), text="staff only")

    batch = await make_source(forum, session, clock).fetch(EMPTY)

    assert [m.seq for m in batch.messages] == list(range(1, 46))
    assert len(batch.complete_threads[str(topic)]) == 45
    chunks = forum.requests_to("/posts.json")
    # 46 posts in the stream (the whisper included), 20 in /t/{id}.json: 20 + 6 more.
    assert [len(r.query) for r in chunks] == [20, 6]
    assert all(key == "post_ids[]" for r in chunks for key, _ in r.query)
    assert batch.requests == 1 + 1 + 2


async def test_a_mega_topic_is_read_as_first_chunk_and_newest_posts(
    forum: FakeDiscourse, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    topic = forum.add_topic(title="Mega", author="ann", created_at=at(-300), text="1")
    for n in range(2, 66):
        forum.add_post(topic, author="bob", created_at=at(-300 + n), text=str(n))
    source = make_source(forum, session, clock)
    source._max_posts = 40
    batch = await source.fetch(EMPTY)
    assert [m.seq for m in batch.messages] == [*range(1, 21), *range(46, 66)]
    assert str(topic) not in batch.complete_threads  # the unread middle is not tombstoned
    assert batch.requests == 1 + 1 + 1


async def test_a_forbidden_list_is_an_auth_error_about_access(
    forum: FakeDiscourse, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    forum.inject(
        DiscourseError(
            status=403,
            error_type="invalid_access",
            message="You are not permitted to view the requested resource.",
        )
    )
    error = await fetch_error(make_source(forum, session, clock, categories=[1]))
    assert type(error) is AuthError and "give the user access" in str(error)


async def test_hidden_edited_withdrawn_and_deleted_posts(
    forum: FakeDiscourse, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    topic = forum.add_topic(title="Q", author="ann", created_at=at(-60), text="q")
    spam = forum.add_post(topic, author="bob", created_at=at(-50), text="spam")
    edited = forum.add_post(topic, author="bob", created_at=at(-45), text="typo")
    withdrawn = forum.add_post(topic, author="ann", created_at=at(-40), text="never mind")
    doomed = forum.add_post(topic, author="bob", created_at=at(-35), text="rude")
    source = make_source(forum, session, clock)
    first = await source.fetch(EMPTY)
    assert len(first.complete_threads[str(topic)]) == 5

    forum.hide(spam)
    forum.edit(edited, "fixed the typo")
    forum.withdraw(withdrawn)
    forum.delete(doomed)
    # None of these bump the topic: only the active-thread re-read finds them, and a topic
    # read less than `recheck_after` (10 min) ago is not re-read yet.
    blind = await source.fetch(active(first.cursor))
    assert blind.messages == ()
    assert (await source.fetch(active(first.cursor, topic))).messages == ()
    await clock.advance(600)
    second = await source.fetch(active(first.cursor, topic))
    messages = by_id(second)
    assert messages[str(spam)].hidden is True
    assert messages[str(edited)].text == "fixed the typo"
    assert messages[str(edited)].created_at == at(-45)
    assert str(withdrawn) not in messages and str(doomed) not in messages
    assert second.complete_threads[str(topic)] == frozenset(
        {str(forum.post_id(topic, 1)), str(spam), str(edited)}
    )


async def test_deleted_and_missing_topics_are_deleted_threads_a_forbidden_one_is_skipped(
    forum: FakeDiscourse, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    kept = forum.add_topic(title="Kept", author="ann", created_at=at(-90), text="k")
    gone = forum.add_topic(title="Gone", author="bob", created_at=at(-80), text="g")
    source = make_source(forum, session, clock)
    first = await source.fetch(EMPTY)
    forum.delete(forum.post_id(gone, 1))  # deleting post 1 deletes the topic
    forbidden = DiscourseError(
        status=403,
        error_type="invalid_access",
        message="You are not permitted to view the requested resource.",
    )
    forum.inject(forbidden, path_contains="/t/999999")
    await clock.advance(600)

    second = await source.fetch(active(first.cursor, kept, gone, 424242, 999999))
    assert second.deleted_threads == frozenset({str(gone), "424242"})
    # Out of the API user's sight (moved to a private category) is not deleted: its stored
    # posts stay, the topic is skipped and tried again later (issue 13).
    assert set(second.skipped) == {"999999"}
    assert second.skipped["999999"].reason == "forbidden"
    assert "not permitted" in second.skipped["999999"].detail
    assert set(second.complete_threads) == {str(kept)}
    assert second.interrupted is None


async def test_thread_only_refetch_skips_the_lists_and_keeps_the_cursor(
    forum: FakeDiscourse, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    topic = forum.add_topic(title="Q", author="ann", created_at=at(-60), text="q")
    source = make_source(forum, session, clock)
    first = await source.fetch(EMPTY)
    forum.add_post(topic, author="sam", created_at=at(-1), text="answer")
    other = forum.add_topic(title="New", author="bob", created_at=at(-1), text="n")
    before = len(forum.requests)

    refetch = FetchRequest(
        cursor=first.cursor, active_threads=frozenset({str(topic)}), include_feed=False
    )
    batch = await source.fetch(refetch)

    assert batch.cursor == first.cursor
    assert {m.thread_id for m in batch.messages} == {str(topic)}
    assert str(other) not in batch.complete_threads
    assert [r.path for r in forum.requests[before:]] == [f"/t/{topic}.json"]


# --- topic lists and the cursor ---------------------------------------------------------------


async def test_lists_follow_more_topics_url_back_to_the_backfill_start(
    clock: FakeClock, session: aiohttp.ClientSession
) -> None:
    forum = FakeDiscourse(api_key=KEY, clock=clock, per_page=4)
    forum.add_user("ann")
    await forum.start()
    try:
        old = forum.add_topic(title="Ancient", author="ann", created_at=at(-60 * 24 * 30), text="o")
        pinned = forum.add_topic(
            title="Welcome", author="ann", created_at=at(-60 * 24 * 60), text="w", pinned=True
        )
        recent = [
            forum.add_topic(title=f"T{i}", author="ann", created_at=at(-600 + i), text=f"{i}")
            for i in range(9)
        ]
        batch = await make_source(forum, session, clock).fetch(EMPTY)
    finally:
        await forum.stop()

    assert set(batch.complete_threads) == {str(t) for t in recent}
    assert str(old) not in batch.complete_threads and str(pinned) not in batch.complete_threads
    lists = forum.requests_to("/latest")
    # Page 0 holds the pinned topic + 3; then 4, then 2 recent and the ancient one: stop there.
    assert [dict(r.query).get("page") for r in lists] == [None, "1", "2"]
    assert all(r.path == "/latest.json" for r in lists)
    assert dict(lists[1].query)["no_definitions"] == "true"
    assert batch.cursor == {
        "bumped_since": "2024-01-08T02:08:00.000000Z",
        "bumped_ids": [str(recent[-1])],
    }


async def test_second_poll_reads_only_bumped_topics_and_ties_are_not_lost(
    forum: FakeDiscourse, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    quiet = forum.add_topic(title="Quiet", author="ann", created_at=at(-120), text="q")
    busy = forum.add_topic(title="Busy", author="bob", created_at=at(-100), text="b")
    source = make_source(forum, session, clock)
    first = await source.fetch(EMPTY)
    assert first.cursor["bumped_ids"] == [str(busy)]

    # Bumped at the very instant of the cursor, by another topic: still new.
    twin = forum.add_topic(title="Twin", author="ann", created_at=at(-100), text="t")
    reply = forum.add_post(busy, author="sam", created_at=at(-5), text="on it")
    second = await source.fetch(active(first.cursor))
    assert set(second.complete_threads) == {str(twin), str(busy)}
    assert str(reply) in by_id(second)
    assert str(quiet) not in second.complete_threads
    third = await source.fetch(active(second.cursor))
    assert third.complete_threads == {} and third.requests == 1


async def test_categories_use_their_own_latest_lists(
    forum: FakeDiscourse, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    support = forum.add_category("support")
    shop = forum.add_category("shop")
    chat = forum.add_category("chat")
    wanted = [
        forum.add_topic(title=t, author="ann", created_at=at(-30), text="h", category_id=c)
        for t, c in (("Help", support), ("Buy", shop))
    ]
    forum.add_topic(title="Chat", author="ann", created_at=at(-10), text="c", category_id=chat)
    batch = await make_source(forum, session, clock, categories=[support, shop]).fetch(EMPTY)
    assert set(batch.complete_threads) == {str(t) for t in wanted}
    assert [r.path for r in forum.requests_to("/c/")] == [
        f"/c/{support}/l/latest.json",
        f"/c/{shop}/l/latest.json",
    ]


async def test_active_topics_are_rechecked_least_recently_read_first(
    forum: FakeDiscourse, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    topics = [
        forum.add_topic(title=f"T{i}", author="ann", created_at=at(-100 + i), text="t")
        for i in range(5)
    ]
    # 6 requests per minute, 60 s interval, half for re-checks: 3 active topics per poll.
    source = make_source(forum, session, clock, budget=RequestBudget(per_minute=6, clock=clock))
    first = await source.fetch(EMPTY)
    assert len(first.complete_threads) == 5
    await clock.advance(600)

    everything = active(first.cursor, *topics)
    second = await source.fetch(everything)
    await clock.advance(60)
    third = await source.fetch(everything)
    await clock.advance(60)
    fourth = await source.fetch(everything)
    assert fourth.complete_threads == {}  # all five were read less than 10 minutes ago
    read_second, read_third = set(second.complete_threads), set(third.complete_threads)
    assert (len(read_second), len(read_third)) == (3, 2)
    assert read_second | read_third == {str(t) for t in topics}


async def test_more_topics_url_is_joined_under_a_subfolder_and_never_leaves_the_site(
    forum: FakeDiscourse, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    source = make_source(forum, session, clock, base_url=f"{forum.base_url}/forum")
    base = forum.base_url
    assert source._next_page("/forum/latest?page=1", "x") == f"{base}/forum/latest.json?page=1"
    assert source._next_page("/latest?page=1", "x") == f"{base}/forum/latest.json?page=1"
    assert source._next_page(f"{base}/forum/c/a/1?page=2", "x") == f"{base}/forum/c/a/1.json?page=2"
    assert source._next_page(None, "x") is None
    with pytest.raises(FatalError, match="not at the configured base_url"):
        source._next_page("https://evil.example/latest?page=1", "x")


# --- errors -----------------------------------------------------------------------------------


async def fetch_error(source: DiscourseSource, request: FetchRequest = EMPTY) -> SourceError:
    with pytest.raises(SourceError) as caught:
        await source.fetch(request)
    error = caught.value
    chained: BaseException | None = error
    while chained is not None:
        assert KEY not in str(chained)
        chained = chained.__cause__ or chained.__context__
    return error


@pytest.mark.parametrize(
    ("fault", "wait"),
    [
        (RateLimit(wait_seconds=39), 39),
        (IpRateLimit(wait_seconds=8), 8),
        (NginxRateLimit(), 60),
        # Only very old Discourse (or a proxy) drops Retry-After; then the whole window.
        (RateLimit(wait_seconds=12, retry_after="none"), 60),
        # A gateway's HTTP-date: the seconds until then on the shared clock.
        (RateLimit(wait_seconds=45, retry_after="http-date"), 45),
    ],
)
async def test_rate_limits_block_the_whole_site(
    forum: FakeDiscourse,
    session: aiohttp.ClientSession,
    clock: FakeClock,
    fault: Fault,
    wait: float,
) -> None:
    budget = RequestBudget(per_minute=60, clock=clock)
    source = make_source(forum, session, clock, budget=budget)
    sibling = make_source(forum, session, clock, budget=budget, name="acme-forum-2")
    forum.inject(fault)
    error = await fetch_error(source)
    assert isinstance(error, RateLimited) and error.retry_after == wait
    assert "rate limited by Discourse" in str(error)

    # The other source on the same site sends nothing until the server's wait is over.
    task = asyncio.create_task(sibling.fetch(EMPTY))
    await asyncio.sleep(0.05)
    assert not task.done() and len(forum.requests) == 1
    await clock.advance(wait - 1)
    await asyncio.sleep(0.05)
    assert not task.done() and len(forum.requests) == 1
    await clock.advance(1)
    await asyncio.wait_for(task, timeout=5)
    assert len(forum.requests) == 2


async def test_fake_rate_limit_answers_in_the_real_formats(
    forum: FakeDiscourse, session: aiohttp.ClientSession
) -> None:
    headers = {"Api-Key": KEY, "Api-Username": "system"}
    forum.inject(RateLimit(wait_seconds=39))
    async with session.get(f"{forum.base_url}/latest.json", headers=headers) as response:
        assert response.status == 429
        assert response.headers["Retry-After"] == "39"
        assert await response.json() == {
            "errors": [
                "You’ve performed this action too many times. Please wait 39 seconds before"
                " trying again."
            ],
            "error_type": "rate_limit",
            "extras": {"wait_seconds": 39, "time_left": "39 seconds"},
        }
    forum.inject(IpRateLimit())
    async with session.get(f"{forum.base_url}/latest.json", headers=headers) as response:
        assert response.status == 429 and response.content_type == "text/plain"
        assert response.headers["Discourse-Rate-Limit-Error-Code"] == "ip_10_secs_limit"
        assert (await response.text()).startswith("Slow down, too many requests from this IP")
    forum.inject(RateLimit(wait_seconds=39, retry_after="http-date"))
    async with session.get(f"{forum.base_url}/latest.json", headers=headers) as response:
        # NOW is Monday 8 January 2024 12:00:00 UTC on the fake's clock.
        assert response.headers["Retry-After"] == "Mon, 08 Jan 2024 12:00:39 GMT"
    forum.inject(RateLimit(wait_seconds=39, retry_after="none"))
    async with session.get(f"{forum.base_url}/latest.json", headers=headers) as response:
        assert response.status == 429 and "Retry-After" not in response.headers
        assert (await response.json())["extras"]["wait_seconds"] == 39


async def test_fake_fails_single_topics_and_posts_as_discourse_does(
    forum: FakeDiscourse, session: aiohttp.ClientSession
) -> None:
    headers = {"Api-Key": KEY, "Api-Username": "system", "Accept": "application/json"}
    topics = [
        forum.add_topic(title=f"T{n}", author="ann", created_at=at(-9), text="t") for n in range(4)
    ]
    for topic, status in zip(topics, (403, 404, 400, 500), strict=True):
        forum.fail_topic(topic, status)
    answers = {}
    for topic in topics:
        for path in (f"/t/{topic}.json", f"/t/{topic}/posts.json?post_ids[]=1"):
            async with session.get(f"{forum.base_url}{path}", headers=headers) as response:
                answers[path] = (response.status, await response.json())
    forbidden = answers[f"/t/{topics[0]}.json"]
    assert forbidden[0] == 403 and forbidden[1]["error_type"] == "invalid_access"
    assert "T0" not in forbidden[1]["extras"]["html"]  # a private topic's title never shows
    assert answers[f"/t/{topics[1]}.json"][1]["error_type"] == "not_found"
    assert answers[f"/t/{topics[2]}.json"][1]["error_type"] == "invalid_parameters"
    assert answers[f"/t/{topics[3]}.json"] == (
        500,
        {"status": 500, "error": "Internal Server Error"},
    )
    assert {status for status, _ in answers.values()} == {403, 404, 400, 500}
    async with session.get(f"{forum.base_url}/latest.json", headers=headers) as response:
        listed = {t["id"] for t in (await response.json())["topic_list"]["topics"]}
    assert listed == {topics[2], topics[3]}  # out of sight and gone are not listed
    forum.heal_topic(topics[0])

    post = forum.add_post(topics[0], author="bob", created_at=at(-8), text="p")
    forum.drop_post_fields(post, "created_at", "post_number")
    orphan = forum.add_post(topics[0], author="bob", created_at=at(-7), text="o")
    forum.orphan_post(orphan)
    async with session.get(f"{forum.base_url}/t/{topics[0]}.json", headers=headers) as response:
        posts = {p["id"]: p for p in (await response.json())["post_stream"]["posts"]}
    assert "created_at" not in posts[post] and "post_number" not in posts[post]
    assert posts[post]["username"] == "bob"
    assert (posts[orphan]["user_id"], posts[orphan]["username"], posts[orphan]["name"]) == (
        None,
        None,
        None,
    )
    assert posts[orphan]["created_at"] and posts[orphan]["post_number"] == 3


async def test_fake_enforces_the_admin_api_limit_on_its_clock(
    clock: FakeClock, session: aiohttp.ClientSession
) -> None:
    forum = FakeDiscourse(api_key=KEY, clock=clock, admin_api_per_minute=3)
    await forum.start()
    try:
        headers = {"Api-Key": KEY, "Api-Username": "system"}
        statuses = []
        for _ in range(4):
            async with session.get(f"{forum.base_url}/latest.json", headers=headers) as r:
                statuses.append(r.status)
                retry = r.headers.get("Retry-After")
        await clock.advance(60)
        async with session.get(f"{forum.base_url}/latest.json", headers=headers) as r:
            statuses.append(r.status)
    finally:
        await forum.stop()
    assert statuses == [200, 200, 200, 429, 200]
    assert retry == "60"
    assert forum.max_requests_per_minute() == 4
    assert forum.count_status(429) == 1


@pytest.mark.parametrize("change", ["revoke", "wrong_key", "wrong_user"])
async def test_revoked_or_wrong_credentials_are_auth_errors(
    forum: FakeDiscourse, session: aiohttp.ClientSession, clock: FakeClock, change: str
) -> None:
    overrides: dict[str, Any] = {}
    if change == "revoke":
        forum.revoke_key()
    elif change == "wrong_key":
        overrides["api_key"] = "not-the-key-at-all-123"
    else:
        overrides["api_username"] = "nobody"
    error = await fetch_error(make_source(forum, session, clock, **overrides))
    assert type(error) is AuthError
    assert "The API username or key is invalid" in str(error)
    assert "create a new API key" in str(error)
    assert "not-the-key-at-all-123" not in str(error)


async def test_revoked_key_on_a_topic_read_is_still_an_auth_error(
    forum: FakeDiscourse, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    topic = forum.add_topic(title="Q", author="ann", created_at=at(-5), text="q")
    source = make_source(forum, session, clock)
    first = await source.fetch(EMPTY)
    forum.revoke_key()
    refetch = FetchRequest(
        cursor=first.cursor, active_threads=frozenset({str(topic)}), include_feed=False
    )
    assert type(await fetch_error(source, refetch)) is AuthError


@pytest.mark.parametrize(
    "fault",
    [
        HttpStatus(status=500),
        HttpStatus(status=502, body="<html>502 Bad Gateway</html>"),
        HttpStatus(status=503, body='{"errors":["maintenance"]}', content_type="application/json"),
        MalformedJson(),
        TruncatedBody(),
        Disconnect(),
        HttpStatus(status=200, body="<!DOCTYPE html><html></html>"),
    ],
)
async def test_transient_failures(
    forum: FakeDiscourse, session: aiohttp.ClientSession, clock: FakeClock, fault: Fault
) -> None:
    forum.inject(fault)
    assert type(await fetch_error(make_source(forum, session, clock))) is TransientError


async def test_failure_inside_a_topic_read_delivers_the_topic_whole_on_the_next_fetch(
    forum: FakeDiscourse, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    topic = forum.add_topic(title="Long", author="ann", created_at=at(-100), text="1")
    for n in range(2, 30):
        forum.add_post(topic, author="bob", created_at=at(-100 + n), text=str(n))
    source = make_source(forum, session, clock)
    forum.inject(TruncatedBody(), path_contains="/posts.json")
    first = await source.fetch(EMPTY)
    # The first 20 posts came with the topic, the chunk of the other 9 was cut off: a batch
    # holds whole topics only, so nothing of it yet; the listing is kept.
    assert first.interrupted == "transient" and first.messages == ()
    assert first.cursor["resume"]["topics"] == [str(topic)]
    assert "bumped_since" not in first.cursor  # the list cursor moves once the topics are read
    before = len(forum.requests)
    again = FetchRequest(cursor=first.cursor, active_threads=frozenset())
    second = await source.fetch(again)
    assert second.interrupted is None
    assert [m.seq for m in second.messages] == list(range(1, 30))
    assert len(second.complete_threads[str(topic)]) == 29
    # Only the refused request is made again: not the lists, not the topic's first chunk.
    assert [r.path for r in forum.requests[before:]] == [f"/t/{topic}/posts.json"]
    assert "resume" not in second.cursor and "bumped_since" in second.cursor


async def test_a_topic_cut_short_long_ago_is_read_again_from_its_start(
    forum: FakeDiscourse, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    topic = forum.add_topic(title="Long", author="ann", created_at=at(-100), text="1")
    for n in range(2, 30):
        forum.add_post(topic, author="bob", created_at=at(-100 + n), text=str(n))
    source = make_source(forum, session, clock)
    forum.inject(RateLimit(wait_seconds=900), path_contains="/posts.json")
    first = await source.fetch(EMPTY)
    assert first.interrupted == "rate_limited" and first.wait_seconds == 900
    await clock.advance(900)  # longer than a re-check interval: what came is stale
    before = len(forum.requests)
    second = await source.fetch(FetchRequest(cursor=first.cursor, active_threads=frozenset()))
    assert len(second.messages) == 29
    assert [r.path for r in forum.requests[before:]] == [
        f"/t/{topic}.json",
        f"/t/{topic}/posts.json",
    ]


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param({"bumped_since": "2024-01-08T10:00:00.000000Z", "bumped_ids": []}, id="v1"),
        pytest.param(
            {
                "bumped_since": "2024-01-08T10:00:00.000000Z",
                "bumped_ids": [],
                "resume": {
                    "listing": None,
                    "topics": ["TOPIC"],
                    "advance": {"bumped_since": "2024-01-08T11:00:00.000000Z", "bumped_ids": []},
                    "partial": {"TOPIC": [1, 2]},
                },
            },
            id="resume-with-partial",
        ),
    ],
)
async def test_cursors_written_by_earlier_versions_still_load(
    forum: FakeDiscourse, session: aiohttp.ClientSession, clock: FakeClock, cursor: dict[str, Any]
) -> None:
    old = forum.add_topic(title="Old", author="ann", created_at=at(-180), text="o")
    new = forum.add_topic(title="New", author="bob", created_at=at(-90), text="n")
    saved = orjson.loads(orjson.dumps(cursor).replace(b"TOPIC", str(new).encode()))
    batch = await make_source(forum, session, clock).fetch(active(saved))
    # Only the topic bumped after 10:00 (or left by the interrupted poll), read whole.
    assert set(batch.complete_threads) == {str(new)} and str(old) not in batch.complete_threads
    assert batch.interrupted is None and "resume" not in batch.cursor


async def test_a_listed_topic_without_a_bump_time_is_skipped_not_the_list(
    forum: FakeDiscourse, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    topic = forum.add_topic(title="Fine", author="ann", created_at=at(-30), text="f")
    page = {
        "topic_list": {
            "topics": [
                {"id": 777, "title": "no times at all"},
                {"id": topic, "bumped_at": "2024-01-08T11:30:00.000Z", "pinned": False},
            ]
        }
    }
    body = orjson.dumps(page).decode()
    forum.inject(HttpStatus(status=200, body=body, content_type="application/json"))
    batch = await make_source(forum, session, clock).fetch(EMPTY)
    assert set(batch.complete_threads) == {str(topic)} and batch.interrupted is None
    assert set(batch.skipped) == {"topic-list:777"}
    assert batch.skipped["topic-list:777"].reason == "malformed"


async def test_timeout_is_transient(
    forum: FakeDiscourse, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    forum.inject(Delay(seconds=5))
    error = await fetch_error(make_source(forum, session, clock, request_timeout=0.2))
    assert type(error) is TransientError and "timed out" in str(error)


async def test_unknown_category_is_fatal(
    forum: FakeDiscourse, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    error = await fetch_error(make_source(forum, session, clock, categories=[77]))
    assert type(error) is FatalError and "check base_url and categories" in str(error)


# --- the simulator's wire format --------------------------------------------------------------


async def test_simulator_serves_real_shapes(
    clock: FakeClock, session: aiohttp.ClientSession
) -> None:
    forum = FakeDiscourse(api_key=KEY, clock=clock, per_page=2)
    forum.add_user("ann")
    await forum.start()
    try:
        for i in range(3):
            topic = forum.add_topic(title=f"T {i}", author="ann", created_at=at(i), text="x")
        forum.hide(forum.post_id(topic, 1))
        headers = {"Api-Key": KEY, "Api-Username": "system"}
        async with session.get(f"{forum.base_url}/latest.json", headers=headers) as response:
            listing = await response.json()
        async with session.get(f"{forum.base_url}/t/{topic}.json", headers=headers) as response:
            shown = await response.json()
        async with session.get(f"{forum.base_url}/latest?page=1", headers=headers) as response:
            browser = (response.status, response.content_type)
        async with session.get(f"{forum.base_url}/t/1.json", headers=headers) as response:
            missing = (response.status, await response.json())
        async with session.get(f"{forum.base_url}/latest.json") as response:
            anonymous = (response.status, await response.json())
    finally:
        await forum.stop()
    assert listing["topic_list"]["more_topics_url"] == "/latest?no_definitions=true&page=1"
    assert listing["topic_list"]["per_page"] == 2
    assert [t["title"] for t in listing["topic_list"]["topics"]] == ["T 2", "T 1"]
    assert listing["topic_list"]["topics"][0]["bumped_at"] == "2024-01-08T12:02:00.000Z"
    post = shown["post_stream"]["posts"][0]
    assert shown["post_stream"]["stream"] == [post["id"]]
    assert (post["hidden"], post["hidden_reason_id"], post["post_type"]) == (True, 1, 1)
    assert post["created_at"] == "2024-01-08T12:02:00.000Z"
    assert {"staff", "moderator", "admin", "primary_group_name", "reply_to_post_number"} <= set(
        post
    )
    assert browser == (200, "text/html")
    assert missing == (
        404,
        {
            "errors": ["The requested URL or resource could not be found."],
            "error_type": "not_found",
        },
    )
    assert anonymous[0] == 403 and anonymous[1]["error_type"] == "not_logged_in"


async def test_demo_history_is_chronological_and_its_first_poll_fits_one_minute(
    clock: FakeClock, session: aiohttp.ClientSession
) -> None:
    forum = FakeDiscourse(api_key=KEY, clock=clock)
    stats = seed_forum(forum, now=NOW)
    await forum.start()
    try:
        source = make_source(
            forum,
            session,
            clock,
            budget=RequestBudget(per_minute=60, clock=clock),
            moderators=[f"group:{WEBCARE_GROUP}"],
            backfill_days=8,
        )
        batch = await source.fetch(EMPTY)
    finally:
        await forum.stop()
    assert batch.requests < 60
    assert len(batch.complete_threads) == stats.topics
    consumer = [m for m in batch.messages if not m.is_brand]
    assert len(consumer) == stats.posts
    assert sum(m.hidden for m in consumer) >= 1
    assert sum(m.is_brand for m in batch.messages) == stats.replies
    for topic in batch.complete_threads:
        times = [m.created_at for m in batch.messages if m.thread_id == topic]
        assert times == sorted(times)  # post numbers follow creation times


# --- helpers ----------------------------------------------------------------------------------


def test_list_cursor_round_trip_and_ties() -> None:
    since = datetime(2024, 1, 8, 11, 0, 0, 916000, tzinfo=UTC)
    cursor = ListCursor.parse(
        {"bumped_since": "2024-01-08T11:00:00.916Z", "bumped_ids": ["7"]}, NOW
    )
    assert cursor == ListCursor(since=since, at_since=frozenset({"7"}))
    assert not cursor.is_new(ListedTopic(id="7", bumped_at=since, pinned=False))
    assert cursor.is_new(ListedTopic(id="8", bumped_at=since, pinned=False))
    tie = cursor.advanced([ListedTopic(id="8", bumped_at=since, pinned=False)])
    assert tie.at_since == {"7", "8"}
    assert ListCursor.parse(tie.to_json(), NOW) == tie
    assert ListCursor.parse({"bumped_since": "garbage"}, NOW) == ListCursor(since=NOW)
    assert ListCursor.parse({}, NOW).advanced([]) == ListCursor(since=NOW)


def test_wire_helpers() -> None:
    assert parse_discourse_time("2024-01-05T21:13:04.916Z") == datetime(
        2024, 1, 5, 21, 13, 4, 916000, tzinfo=UTC
    )
    assert cooked_text('<p>Hi &amp; <a href="x">welcome</a><br>line 2</p>\n<p>bye</p>') == (
        "Hi & welcome\nline 2\nbye"
    )
    assert cooked_text(None) == ""
    mods = Moderators.parse(["Alice", "id:42", "group:Support", "group:staff"])
    assert mods.match({"username": "alice"})
    assert mods.match({"user_id": 42, "username": "x"})
    assert mods.match({"primary_group_name": "support"})
    assert mods.match({"staff": True})
    assert not mods.match({"username": "bob", "user_id": 7, "staff": False, "admin": True})
