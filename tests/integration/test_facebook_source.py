"""FacebookPageSource against the fake Graph API over real loopback HTTP (no mocks)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import orjson
import pytest
from multidict import CIMultiDict

from monitor.clock import FakeClock
from monitor.config import FacebookPageConfig
from monitor.domain import Batch, Message
from monitor.simulator.graph_api import (
    Delay,
    Disconnect,
    FakeGraphApi,
    Fault,
    GraphError,
    HttpStatus,
    MalformedJson,
    TruncatedBody,
)
from monitor.sources.base import (
    AuthError,
    FatalError,
    FetchRequest,
    RateLimited,
    SourceError,
    TransientError,
)
from monitor.sources.facebook import FacebookPageSource, comment_seq, parse_graph_time, parse_usage

PAGE_ID = "104857600"
TOKEN = "EAAGfake-page-token-d41d8cd98f00b204"
NOW = datetime(2024, 1, 8, 12, 0, tzinfo=UTC)
ANN = ("7001", "Ann Consumer")
BOB = ("7002", "Bob Consumer")
EMPTY = FetchRequest(cursor={}, active_threads=frozenset())


@pytest.fixture
async def graph() -> AsyncIterator[FakeGraphApi]:
    api = FakeGraphApi(PAGE_ID, "Acme", TOKEN, username="acme.nl")
    await api.start()
    yield api
    await api.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def make_source(
    graph: FakeGraphApi,
    session: aiohttp.ClientSession,
    *,
    page_size: int = 100,
    token: str = TOKEN,
    page_id: str = PAGE_ID,
    timeout: float = 2.0,
    now: datetime = NOW,
    backfill_days: float = 7,
) -> FacebookPageSource:
    config = FacebookPageConfig.model_validate(
        {
            "type": "facebook_page",
            "name": "acme-fb",
            "brand": "acme",
            "page_id": page_id,
            "access_token": token,
            "api_base_url": graph.base_url,
            "request_timeout": timeout,
            "backfill_days": backfill_days,
        }
    )
    return FacebookPageSource(config, session, FakeClock(now), page_size=page_size)


def at(minutes: float) -> datetime:
    """An instant relative to NOW."""
    return NOW + timedelta(minutes=minutes)


def by_id(batch: Batch) -> dict[str, Message]:
    return {message.platform_id: message for message in batch.messages}


def paths(graph: FakeGraphApi, edge: str) -> list[dict[str, str]]:
    return [query for path, query in graph.requests if path.endswith(edge)]


# --- mapping and pagination -----------------------------------------------------------------


async def test_maps_posts_comments_and_replies(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    post = graph.add_post(created_time=at(-60), message="Winter sale!")
    question = graph.add_comment(
        post_id=post, created_time=at(-50), message="Do you ship to Belgium?", author=ANN
    )
    answer = graph.add_comment(
        post_id=post, created_time=at(-40), message="Yes we do", parent_id=question
    )
    anonymous = graph.add_comment(
        post_id=post, created_time=at(-30), message="", author=BOB, anonymous=True
    )
    visitor = graph.add_post(created_time=at(-20), message="Where is my order?", author=BOB)

    batch = await make_source(graph, session).fetch(EMPTY)
    messages = by_id(batch)

    assert messages[post] == Message(
        platform_id=post,
        thread_id=post,
        parent_id=None,
        author_id=PAGE_ID,
        author_name="Acme",
        text="Winter sale!",
        created_at=datetime(2024, 1, 8, 11, 0, tzinfo=UTC),
        seq=0,
        is_brand=True,
        hidden=False,
        permalink=f"https://www.facebook.com/{PAGE_ID}/posts/{post.split('_')[1]}",
    )
    assert messages[visitor].is_brand is False
    assert messages[visitor].author_id == BOB[0]
    q = messages[question]
    assert (q.thread_id, q.parent_id, q.author_name, q.is_brand) == (post, post, ANN[1], False)
    assert q.created_at == datetime(2024, 1, 8, 11, 10, tzinfo=UTC)
    assert q.permalink is not None and "comment_id=" in q.permalink
    # The reply only shows up because of filter=stream; its parent is the question.
    a = messages[answer]
    assert (a.thread_id, a.parent_id, a.is_brand, a.author_id) == (post, question, True, PAGE_ID)
    assert a.seq > q.seq > 0
    anon = messages[anonymous]
    assert (anon.author_id, anon.author_name, anon.is_brand, anon.text) == (None, None, False, "")

    assert batch.complete_threads == {
        post: frozenset({post, question, answer, anonymous}),
        visitor: frozenset({visitor}),
    }
    assert batch.deleted_threads == frozenset()
    assert batch.cursor == {"feed_since": int(at(-20).timestamp()), "feed_since_ids": [visitor]}
    # One call: the feed page brings the posts with their comments (field expansion).
    assert batch.requests == 1 and not paths(graph, "/comments")
    fields = paths(graph, "/feed")[0]["fields"]
    assert ",comments.filter(stream).order(chronological).limit(100){" in fields
    assert "parent{id}" in fields


async def test_follows_feed_and_comment_pages(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    posts = [graph.add_post(created_time=at(-100 + i), message=f"p{i}") for i in range(5)]
    comments = [
        graph.add_comment(post_id=posts[0], created_time=at(-50 + i), message=f"c{i}", author=ANN)
        for i in range(5)
    ]

    batch = await make_source(graph, session, page_size=2).fetch(EMPTY)

    assert set(by_id(batch)) == {*posts, *comments}
    assert batch.complete_threads[posts[0]] == frozenset({posts[0], *comments})
    assert len(paths(graph, "/feed")) == 3  # 2 + 2 + 1 posts
    # posts[0]: 2 comments came with the feed, 3 more in 2 pages of its own edge; the other
    # posts had no comments, so no further calls.
    assert len(paths(graph, "/comments")) == 2
    assert batch.requests == len(graph.requests) == 5
    # Follow-up pages were the server's own absolute links, not URLs we rebuilt.
    assert any("__paging_token" in query for query in paths(graph, "/feed"))
    assert all("after" in query for query in paths(graph, "/comments"))
    # The token travels in a header, never in a URL.
    assert all("access_token" not in query for _, query in graph.requests)


async def test_a_first_backfill_says_how_many_days_are_left_after_each_feed_page(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    """A year of posts, two a day, read 50 a page: the days left shrink to zero."""
    for day in range(365):
        for hour in (9, 21):
            graph.add_post(created_time=NOW - timedelta(days=day, hours=hour), message="p")
    told: list[tuple[float, float, str]] = []
    request = FetchRequest(
        cursor={}, active_threads=frozenset(), on_progress=lambda *a: told.append(a)
    )
    batch = await make_source(graph, session, page_size=50, backfill_days=365).fetch(request)
    assert len(batch.messages) == 730
    assert len(told) == len(paths(graph, "/feed")) == 15  # one report per feed page
    assert {(total, unit) for _, total, unit in told} == {(365.0, "days")}
    lefts = [left for left, _, _ in told]
    assert lefts == sorted(lefts, reverse=True) and lefts[-1] < 1
    assert 365 - 25 - 1 < lefts[0] < 365 - 25 + 1  # the first 50 posts: the newest 25 days


async def test_trailing_empty_feed_page_ends_cleanly(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    graph.trailing_empty_page = True
    post = graph.add_post(created_time=at(-5), message="only post")
    batch = await make_source(graph, session).fetch(EMPTY)
    assert set(by_id(batch)) == {post}
    assert len(paths(graph, "/feed")) == 2


async def test_cursor_starts_at_backfill_then_moves_to_the_newest_post(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    source = make_source(graph, session)
    first = await source.fetch(EMPTY)
    assert paths(graph, "/feed")[0]["since"] == str(int((NOW - timedelta(days=7)).timestamp()))
    assert first.cursor == {
        "feed_since": int((NOW - timedelta(days=7)).timestamp()),
        "feed_since_ids": [],
    }

    post = graph.add_post(created_time=at(1), message="new")
    second = await source.fetch(FetchRequest(cursor=first.cursor, active_threads=frozenset()))
    assert set(by_id(second)) == {post}
    assert second.cursor == {"feed_since": int(at(1).timestamp()), "feed_since_ids": [post]}


async def test_active_thread_repoll_finds_new_comment_on_old_post(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    old = graph.add_post(created_time=at(-600), message="old post")
    newer = graph.add_post(created_time=at(-60), message="newer post")
    source = make_source(graph, session)
    first = await source.fetch(EMPTY)
    assert set(by_id(first)) == {old, newer}

    late = graph.add_comment(post_id=old, created_time=at(-1), message="still open?", author=ANN)
    # Without re-polling, feed?since= never returns the old post, so the comment is invisible.
    blind = await source.fetch(FetchRequest(cursor=first.cursor, active_threads=frozenset()))
    assert late not in by_id(blind)

    second = await source.fetch(FetchRequest(cursor=first.cursor, active_threads=frozenset({old})))
    assert old not in by_id(second)  # the post itself is not re-fetched
    assert by_id(second)[late].thread_id == old
    assert second.complete_threads[old] == frozenset({old, late})


async def test_hidden_and_deleted_comments(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    post = graph.add_post(created_time=at(-60), message="post")
    hidden = graph.add_comment(post_id=post, created_time=at(-50), message="spam", author=ANN)
    gone = graph.add_comment(post_id=post, created_time=at(-40), message="oops", author=BOB)
    reply = graph.add_comment(post_id=post, created_time=at(-30), message="re", parent_id=gone)
    graph.hide(hidden)
    source = make_source(graph, session)
    first = await source.fetch(EMPTY)
    assert by_id(first)[hidden].hidden is True
    assert by_id(first)[gone].hidden is False

    graph.delete(gone)  # its reply goes with it, as on Facebook
    second = await source.fetch(FetchRequest(cursor=first.cursor, active_threads=frozenset({post})))
    assert second.complete_threads[post] == frozenset({post, hidden})
    assert gone not in by_id(second) and reply not in by_id(second)


async def test_deleted_post_becomes_a_deleted_thread(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    kept = graph.add_post(created_time=at(-90), message="kept")
    doomed = graph.add_post(created_time=at(-60), message="doomed")
    graph.add_comment(post_id=doomed, created_time=at(-50), message="?", author=ANN)
    source = make_source(graph, session)
    first = await source.fetch(EMPTY)
    graph.delete(doomed)

    active = FetchRequest(cursor=first.cursor, active_threads=frozenset({kept, doomed}))
    second = await source.fetch(active)
    assert second.deleted_threads == frozenset({doomed})
    assert set(second.complete_threads) == {kept}


async def test_threads_read_one_by_one_are_fetched_with_bounded_concurrency(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    posts = [graph.add_post(created_time=at(-100 + i), message=f"p{i}") for i in range(10)]
    graph.delete(posts[0])
    graph.delay_path("/comments", 0.05)
    # Graph refuses the batch, so each thread is read on its own, at most 4 at a time.
    graph.refuse_batches = GraphError(code=1)
    request = FetchRequest(cursor={}, active_threads=frozenset(posts), include_feed=False)
    batch = await make_source(graph, session).fetch(request)
    assert len(batch.complete_threads) == 9
    assert batch.deleted_threads == {posts[0]}
    assert 2 <= graph.peak_concurrency <= 4


async def test_page_configured_by_username_is_resolved_to_its_numeric_id(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    post = graph.add_post(created_time=at(-60), message="brand post")
    source = make_source(graph, session, page_id="acme.nl")
    batch = await source.fetch(EMPTY)
    assert by_id(batch)[post].is_brand is True
    assert graph.requests[0].path.endswith("/acme.nl")
    await source.fetch(EMPTY)
    assert sum(path.endswith("/acme.nl") for path, _ in graph.requests) == 1  # resolved once


# --- errors -----------------------------------------------------------------------------------


async def fetch_error(graph: FakeGraphApi, session: aiohttp.ClientSession, **kw: Any) -> Any:
    with pytest.raises(SourceError) as caught:
        await make_source(graph, session, **kw).fetch(EMPTY)
    error = caught.value
    # No message anywhere in the chain may carry the token.
    chained: BaseException | None = error
    while chained is not None:
        assert TOKEN not in str(chained)
        chained = chained.__cause__ or chained.__context__
    return error


@pytest.mark.parametrize("code", [4, 17, 32, 613, 80001])
async def test_throttling_codes_are_rate_limited(
    graph: FakeGraphApi, session: aiohttp.ClientSession, code: int
) -> None:
    graph.inject(GraphError(code=code))
    error = await fetch_error(graph, session)
    assert type(error) is RateLimited
    assert error.retry_after is None
    assert f"code {code}" in str(error) and "fbtrace_id A" in str(error)


async def test_throttle_retry_after_comes_from_the_usage_header(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    graph.add_post(created_time=at(-5), message="p")
    graph.business_usage = {
        PAGE_ID: [
            {
                "type": "pages",
                "call_count": 100,
                "total_cputime": 12,
                "total_time": 14,
                "estimated_time_to_regain_access": 7,
            }
        ]
    }
    # Throttled on the feed call: the whole fetch fails.
    graph.inject(GraphError(code=80001), path_contains="/feed")
    error = await fetch_error(graph, session)
    assert isinstance(error, RateLimited)
    assert error.retry_after == 7 * 60


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (GraphError(code=190, subcode=463), "access token expired (code 190/463"),
        (GraphError(code=190, subcode=460), "invalidated"),
        (GraphError(code=190, subcode=467), "logged out"),
        (GraphError(code=200), "permission missing (code 200"),
        (GraphError(code=10), "permission missing (code 10"),
    ],
)
async def test_token_and_permission_errors_are_auth_errors(
    graph: FakeGraphApi, session: aiohttp.ClientSession, fault: Fault, expected: str
) -> None:
    graph.inject(fault)
    error = await fetch_error(graph, session)
    assert type(error) is AuthError
    assert expected in str(error)
    assert "generate a new Page access token" in str(error)


async def test_wrong_token_is_an_auth_error(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    error = await fetch_error(graph, session, token="EAAGsomething-else")
    assert type(error) is AuthError
    assert "code 190" in str(error)
    assert "EAAGsomething-else" not in str(error)


@pytest.mark.parametrize(
    "fault",
    [
        HttpStatus(status=500),
        HttpStatus(status=502),
        GraphError(code=1, status=500),
        GraphError(code=2),
        GraphError(code=99999, is_transient=True),
        GraphError(code=99999, status=500),
        MalformedJson(),
        TruncatedBody(),
        Disconnect(),
    ],
)
async def test_transient_failures(
    graph: FakeGraphApi, session: aiohttp.ClientSession, fault: Fault
) -> None:
    graph.inject(fault)
    assert type(await fetch_error(graph, session)) is TransientError


async def test_a_single_dropped_connection_is_absorbed_by_the_client_retry(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    graph.inject(Disconnect(retries_too=False))
    batch = await make_source(graph, session).fetch(EMPTY)
    assert batch.requests == 1  # one logical request; aiohttp retried it on a new connection
    assert len(paths(graph, "/feed")) == 2


async def test_timeout_is_transient(graph: FakeGraphApi, session: aiohttp.ClientSession) -> None:
    graph.inject(Delay(seconds=5))  # cut short when the fixture stops the server
    error = await fetch_error(graph, session, timeout=0.2)
    assert type(error) is TransientError
    assert "timed out" in str(error)


async def test_malformed_json_message_is_clear(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    graph.add_post(created_time=at(-5), message="p")
    graph.inject(MalformedJson(), path_contains="/feed")
    error = await fetch_error(graph, session)
    assert "not valid JSON" in str(error) and "/feed" in str(error)


@pytest.mark.parametrize(
    "fault", [GraphError(code=100), GraphError(code=100, subcode=1), GraphError(code=12345)]
)
async def test_unknown_errors_are_fatal(
    graph: FakeGraphApi, session: aiohttp.ClientSession, fault: Fault
) -> None:
    graph.inject(fault)
    error = await fetch_error(graph, session)
    assert type(error) is FatalError
    assert "code 1" in str(error)


async def test_missing_page_is_fatal(graph: FakeGraphApi, session: aiohttp.ClientSession) -> None:
    error = await fetch_error(graph, session, page_id="999")
    assert isinstance(error, FatalError)
    assert "100/33" in str(error)


async def test_transient_error_after_a_successful_page_keeps_it_and_resumes(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    # Older than the backfill (7 days): only its own read brings it.
    old = graph.add_post(created_time=at(-8 * 24 * 60), message="old")
    new = graph.add_post(created_time=at(-5), message="p")
    source = make_source(graph, session)
    request = FetchRequest(cursor={}, active_threads=frozenset({old}))
    graph.inject(HttpStatus(status=503), path_contains="/comments")
    first = await source.fetch(request)
    assert first.interrupted == "transient"
    assert set(first.complete_threads) == {new}  # the feed's post is kept
    assert first.cursor["resume"]["threads"] == [[old, None]]
    calls = graph.graph_calls
    # The resumed fetch reads only what was left: the old thread, not the feed again.
    second = await source.fetch(FetchRequest(cursor=first.cursor, active_threads=frozenset()))
    assert second.interrupted is None and set(second.complete_threads) == {old}
    assert graph.graph_calls - calls == 1
    assert "resume" not in second.cursor
    assert second.cursor["feed_since_ids"] == [new]


# --- usage headers ----------------------------------------------------------------------------


async def test_usage_ratio_is_the_highest_reported_percentage(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    source = make_source(graph, session)
    assert (await source.fetch(EMPTY)).api_usage_ratio is None
    graph.app_usage = {"call_count": 28, "total_cputime": 25, "total_time": 31}
    assert (await source.fetch(EMPTY)).api_usage_ratio == pytest.approx(0.31)
    graph.business_usage = {
        "1": [{"type": "pages", "call_count": 67, "total_cputime": 3, "total_time": 4}]
    }
    assert (await source.fetch(EMPTY)).api_usage_ratio == pytest.approx(0.67)


def test_parse_usage_reads_every_header_and_ignores_malformed_ones() -> None:
    headers = CIMultiDict(
        {
            "X-App-Usage": '{"call_count": 10, "total_cputime": 5, "total_time": 5}',
            "X-Page-Usage": '{"call_count": 85, "total_cputime": 56, "total_time": 60}',
            "X-Business-Use-Case-Usage": orjson.dumps(
                {
                    "1": [{"call_count": 20, "estimated_time_to_regain_access": 2}],
                    "2": [{"total_time": 40, "estimated_time_to_regain_access": 5}, "junk"],
                    "3": "not a list",
                }
            ).decode(),
        }
    )
    usage = parse_usage(headers)
    assert usage.ratio == pytest.approx(0.85)
    assert usage.regain_seconds == 300
    assert parse_usage({}).ratio is None
    broken = {"x-app-usage": "{not json", "x-business-use-case-usage": "[1, 2]"}
    assert parse_usage(broken).ratio is None
    assert parse_usage({"x-app-usage": '{"call_count": "lots", "total_time": true}'}).ratio is None


def test_graph_time_and_comment_order_helpers() -> None:
    assert parse_graph_time("2024-01-05T21:13:04+0000") == datetime(
        2024, 1, 5, 21, 13, 4, tzinfo=UTC
    )
    assert parse_graph_time("2024-01-05T22:13:04+0100") == datetime(
        2024, 1, 5, 21, 13, 4, tzinfo=UTC
    )
    assert comment_seq("1234_5678", 3) == 5678
    assert comment_seq("opaque", 3) == 3


# --- the simulator's wire format ---------------------------------------------------------------


async def test_simulator_paging_links_carry_the_token_only_when_it_came_in_the_query(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    for i in range(3):
        graph.add_post(created_time=at(-10 + i), message=f"p{i}")
    url = f"{graph.base_url}/{PAGE_ID}/feed"
    async with session.get(url, params={"limit": "2", "access_token": TOKEN}) as response:
        body = await response.json()
    assert body["paging"]["next"].startswith(graph.base_url)
    assert f"access_token={TOKEN}" in body["paging"]["next"]
    assert "__previous=1" in body["paging"]["previous"]
    headers = {"Authorization": f"OAuth {TOKEN}"}
    async with session.get(url, params={"limit": "2"}, headers=headers) as response:
        body = await response.json()
    assert "access_token" not in body["paging"]["next"]
    async with session.get(body["paging"]["next"], headers=headers) as response:
        last = await response.json()
    assert [post["message"] for post in last["data"]] == ["p0"]
    assert "next" not in last["paging"]


async def test_simulator_comments_edge_filters_orders_and_pages_by_cursor(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    post = graph.add_post(created_time=at(-10), message="p")
    top = graph.add_comment(post_id=post, created_time=at(-9), message="top", author=ANN)
    graph.add_comment(post_id=post, created_time=at(-8), message="reply", parent_id=top)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    url = f"{graph.base_url}/{post}/comments"
    async with session.get(url, headers=headers) as response:
        toplevel = await response.json()
    assert [c["message"] for c in toplevel["data"]] == ["top"]
    assert set(toplevel["data"][0]) == {"created_time", "from", "message", "id"}
    assert set(toplevel["paging"]) == {"cursors"}  # last page: cursors, no next
    params = {"filter": "stream", "order": "reverse_chronological", "limit": "1"}
    params["fields"] = "id,parent{id},message"
    async with session.get(url, params=params, headers=headers) as response:
        first = await response.json()
    assert first["data"] == [
        {"id": first["data"][0]["id"], "parent": {"id": top}, "message": "reply"}
    ]
    async with session.get(first["paging"]["next"], headers=headers) as response:
        second = await response.json()
    assert [c["message"] for c in second["data"]] == ["top"]
    assert "next" not in second["paging"] and "previous" in second["paging"]


async def test_simulator_errors_look_like_graph_errors(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with session.get(f"{graph.base_url}/123_456/comments", headers=headers) as response:
        assert response.status == 400
        error = (await response.json())["error"]
    assert error["type"] == "GraphMethodException"
    assert (error["code"], error["error_subcode"]) == (100, 33)
    assert error["message"].startswith("Unsupported get request. Object with ID '123_456'")
    assert error["fbtrace_id"]
    async with session.get(f"{graph.base_url}/{PAGE_ID}/feed") as response:
        assert (await response.json())["error"]["code"] == 104
    params = {"fields": "id,bogus"}
    async with session.get(
        f"{graph.base_url}/{PAGE_ID}/feed", params=params, headers=headers
    ) as response:
        assert "nonexisting field (bogus)" in (await response.json())["error"]["message"]


async def test_simulator_stop_cuts_delayed_and_held_requests_short(
    session: aiohttp.ClientSession,
) -> None:
    api = FakeGraphApi(PAGE_ID, "Acme", TOKEN)
    await api.start()
    api.delay_path("/feed", 30)
    api.hold("/comments")
    headers = {"Authorization": f"Bearer {TOKEN}"}

    async def call(url: str) -> int:
        async with session.get(url, headers=headers) as response:
            return response.status

    calls = [
        asyncio.create_task(call(f"{api.base_url}/{PAGE_ID}/feed")),
        asyncio.create_task(call(f"{api.base_url}/{PAGE_ID}_1/comments")),
    ]
    async with asyncio.timeout(5):
        while len(api.requests) < 2:  # noqa: ASYNC110 - the fake has no "request seen" event
            await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await api.stop()
    for task in calls:
        with contextlib.suppress(aiohttp.ClientError):
            await asyncio.wait_for(task, timeout=5)
    assert loop.time() - started < 5
