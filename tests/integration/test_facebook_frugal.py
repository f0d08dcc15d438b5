"""Frugal Facebook polling on the fake Graph API: field expansion, multi-id lookups, batches."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import orjson
import pytest

from monitor.clock import FakeClock
from monitor.config import FacebookPageConfig, load_config
from monitor.domain import Batch
from monitor.simulator.graph_api import (
    Delay,
    Disconnect,
    FakeGraphApi,
    Fault,
    GraphError,
    HttpStatus,
    MalformedJson,
)
from monitor.sources.base import AuthError, FetchRequest, RateLimited, SourceError, TransientError
from monitor.sources.facebook import FacebookPageSource
from monitor.sources.graph_batch import GraphBatcher, batch_group, graph_key, shared_batchers

TOKEN = "EAAGfake-agency-token-0123456789"
NOW = datetime(2024, 1, 8, 12, 0, tzinfo=UTC)
ANN = ("7001", "Ann Consumer")
EMPTY = FetchRequest(cursor={}, active_threads=frozenset())


@pytest.fixture
async def graph() -> AsyncIterator[FakeGraphApi]:
    api = FakeGraphApi("104857600", "Acme", TOKEN, username="acme.nl")
    await api.start()
    yield api
    await api.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def at(minutes: float) -> datetime:
    return NOW + timedelta(minutes=minutes)


def config(graph: FakeGraphApi, page_id: str, **extra: Any) -> FacebookPageConfig:
    return FacebookPageConfig.model_validate(
        {
            "type": "facebook_page",
            "name": f"page-{page_id}",
            "brand": "acme",
            "page_id": page_id,
            "access_token": TOKEN,
            "api_base_url": graph.base_url,
            "request_timeout": 2.0,
            "backfill_days": 7,
            **extra,
        }
    )


def source(
    graph: FakeGraphApi,
    session: aiohttp.ClientSession,
    *,
    page_id: str | None = None,
    page_size: int = 100,
    batcher: GraphBatcher | None = None,
    timeout: float = 2.0,
) -> FacebookPageSource:
    cfg = config(graph, page_id or graph.page_id, request_timeout=timeout)
    return FacebookPageSource(cfg, session, FakeClock(NOW), page_size=page_size, batcher=batcher)


def ids(batch: Batch) -> set[str]:
    return {message.platform_id for message in batch.messages}


def calls_to(graph: FakeGraphApi, ending: str) -> list[dict[str, str]]:
    return [query for path, query in graph.calls if path.endswith(ending)]


# --- field expansion --------------------------------------------------------------------------


async def test_comments_that_do_not_fit_are_read_on_with_replies(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    post = graph.add_post(created_time=at(-60), message="p")
    first = graph.add_comment(post_id=post, created_time=at(-50), message="1", author=ANN)
    rest = [graph.add_comment(post_id=post, created_time=at(-49), message="2", author=ANN)]
    rest.append(graph.add_comment(post_id=post, created_time=at(-48), message="r", parent_id=first))
    rest += [
        graph.add_comment(post_id=post, created_time=at(-47 + i), message=f"{i}", author=ANN)
        for i in range(2)
    ]
    batch = await source(graph, session, page_size=2).fetch(EMPTY)

    assert batch.complete_threads[post] == frozenset({post, first, *rest})
    # Feed (2 comments expanded), then the post's own edge for the other 3, 2 per page.
    assert batch.requests == 3
    follow_ups = calls_to(graph, f"/{post}/comments")
    assert len(follow_ups) == 2
    # The nested `next` carried limit and cursor only; filter=stream (replies) was re-stated.
    assert all(query["filter"] == "stream" for query in follow_ups)
    assert all("parent{id}" in query["fields"] for query in follow_ups)


async def test_a_quiet_repoll_of_the_newest_post_costs_one_call(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    older = graph.add_post(created_time=at(-90), message="older")
    newest = graph.add_post(created_time=at(-60), message="newest")
    graph.add_comment(post_id=newest, created_time=at(-50), message="?", author=ANN)
    page = source(graph, session)
    first = await page.fetch(EMPTY)
    assert first.cursor["feed_since_ids"] == [newest]

    reply = graph.add_comment(post_id=newest, created_time=at(-1), message="!")
    calls = graph.graph_calls
    second = await page.fetch(FetchRequest(cursor=first.cursor, active_threads=frozenset({newest})))
    # The newest post comes back with the feed (since is inclusive), comments included.
    assert graph.graph_calls - calls == second.requests == 1
    assert reply in ids(second)
    assert set(second.complete_threads) == {newest}
    assert older not in ids(second)


async def test_other_active_threads_share_one_batch_post(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    old = [graph.add_post(created_time=at(-600 - i), message=f"old {i}") for i in range(3)]
    newest = graph.add_post(created_time=at(-60), message="newest")
    page = source(graph, session)
    first = await page.fetch(EMPTY)
    late = [
        graph.add_comment(post_id=post, created_time=at(-1), message="late", author=ANN)
        for post in old
    ]
    calls, requests = graph.graph_calls, graph.http_requests
    active = FetchRequest(cursor=first.cursor, active_threads=frozenset(old))
    second = await page.fetch(active)

    assert set(late) <= ids(second)
    assert set(second.complete_threads) == {*old, newest}  # the newest came with the feed
    # The feed GET and one batch POST; Facebook counts one call per batch entry.
    assert second.requests == graph.http_requests - requests == 2
    assert second.api_calls == graph.graph_calls - calls == 1 + 3
    assert not [query for _, query in graph.requests if "ids" in query]  # refused from v26.0
    lookups = calls_to(graph, "/comments")[-3:]
    assert all(query["filter"] == "stream" for query in lookups)


async def test_more_than_50_active_threads_take_one_batch_per_50(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    old = [graph.add_post(created_time=at(-600 - i), message="old") for i in range(120)]
    request = FetchRequest(cursor={}, active_threads=frozenset(old), include_feed=False)
    batch = await source(graph, session).fetch(request)
    assert set(batch.complete_threads) == set(old)
    assert [path for path, _ in graph.requests] == ["/v26.0/"] * 3  # 50 + 50 + 20
    assert batch.requests == 3 and batch.api_calls == graph.graph_calls == 120


async def test_a_deleted_post_in_a_batch_is_gone_and_the_others_are_read(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    kept = [graph.add_post(created_time=at(-600 - i), message="kept") for i in range(2)]
    gone = graph.add_post(created_time=at(-700), message="gone")
    comment = graph.add_comment(post_id=kept[0], created_time=at(-500), message="?", author=ANN)
    graph.delete(gone)
    request = FetchRequest(cursor={}, active_threads=frozenset({*kept, gone}), include_feed=False)
    batch = await source(graph, session).fetch(request)

    assert batch.deleted_threads == {gone}
    assert batch.complete_threads == {kept[0]: frozenset({kept[0], comment}), kept[1]: {kept[1]}}
    # Each sub-response has its own code: one POST tells which post is gone.
    assert batch.requests == 1 and batch.api_calls == 3


async def test_a_refused_batch_falls_back_to_one_read_per_thread(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    posts = [graph.add_post(created_time=at(-600 - i), message="p") for i in range(3)]
    graph.refuse_batches = GraphError(code=100, message="(#100) Batch requests are not allowed")
    request = FetchRequest(cursor={}, active_threads=frozenset(posts), include_feed=False)
    batch = await source(graph, session).fetch(request)
    assert set(batch.complete_threads) == set(posts)
    assert len(calls_to(graph, "/comments")) == 3  # each thread on its own edge
    assert batch.requests == 3 + 1  # the refused POST, then three plain GETs


async def test_a_batch_refused_for_throttling_is_not_retried_one_by_one(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    posts = [graph.add_post(created_time=at(-600 - i), message="p") for i in range(3)]
    graph.refuse_batches = GraphError(code=613)
    request = FetchRequest(cursor={}, active_threads=frozenset(posts), include_feed=False)
    with pytest.raises(RateLimited):
        await source(graph, session).fetch(request)
    assert not calls_to(graph, "/comments")  # no plain GETs while Graph says slow down


async def test_a_single_active_thread_uses_its_own_edge(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    post = graph.add_post(created_time=at(-600), message="p")
    request = FetchRequest(cursor={}, active_threads=frozenset({post}), include_feed=False)
    assert set((await source(graph, session).fetch(request)).complete_threads) == {post}
    assert [path for path, _ in graph.calls] == [f"/v26.0/{post}/comments"]


async def test_a_post_expected_back_from_the_feed_but_deleted_is_a_deleted_thread(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    newest = graph.add_post(created_time=at(-60), message="newest")
    page = source(graph, session)
    first = await page.fetch(EMPTY)
    graph.delete(newest)
    second = await page.fetch(FetchRequest(cursor=first.cursor, active_threads=frozenset({newest})))
    assert second.deleted_threads == {newest}
    assert second.cursor == {**first.cursor, "feed_since_ids": []}


async def test_a_looked_up_thread_with_more_comments_than_fit_reads_on(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    posts = [graph.add_post(created_time=at(-600 - i), message="p") for i in range(2)]
    comments = [
        graph.add_comment(post_id=posts[0], created_time=at(-500 + i), message="c", author=ANN)
        for i in range(5)
    ]
    request = FetchRequest(cursor={}, active_threads=frozenset(posts), include_feed=False)
    batch = await source(graph, session, page_size=2).fetch(request)
    assert batch.complete_threads[posts[0]] == frozenset({posts[0], *comments})
    assert batch.complete_threads[posts[1]] == frozenset({posts[1]})


# --- batches ----------------------------------------------------------------------------------


def add_pages(graph: FakeGraphApi, count: int) -> list[tuple[str, str, str]]:
    """Pages with one post and one comment each: (page id, post id, comment id)."""
    made = []
    for number in range(count):
        page_id = graph.add_page(str(200_000_000 + number), f"Brand {number}")
        post = graph.add_post(created_time=at(-60), message="p", page_id=page_id)
        comment = graph.add_comment(post_id=post, created_time=at(-50), message="?", author=ANN)
        made.append((page_id, post, comment))
    return made


async def poll_together(
    graph: FakeGraphApi,
    session: aiohttp.ClientSession,
    pages: list[str],
    *,
    request_timeout: float = 2.0,
) -> list[Batch | BaseException]:
    batcher = GraphBatcher(
        session, api_base_url=graph.base_url, access_token=TOKEN, members=len(pages)
    )
    sources = [
        source(graph, session, page_id=page, batcher=batcher, timeout=request_timeout)
        for page in pages
    ]
    try:
        return await asyncio.gather(
            *(page.fetch(EMPTY) for page in sources), return_exceptions=True
        )
    finally:
        await batcher.close()


@pytest.mark.parametrize("count", [2, 50, 51, 120])
async def test_concurrent_pages_on_one_token_share_batch_posts(
    graph: FakeGraphApi, session: aiohttp.ClientSession, count: int
) -> None:
    made = add_pages(graph, count)
    results = await poll_together(graph, session, [page for page, _, _ in made])

    assert graph.http_requests == math.ceil(count / 50)
    assert graph.graph_calls == count
    assert {path for path, _ in graph.requests} == {"/v26.0/"}
    for (_, post, comment), batch in zip(made, results, strict=True):
        assert isinstance(batch, Batch)
        assert ids(batch) == {post, comment}
        assert batch.complete_threads == {post: frozenset({post, comment})}
    # The token travels in the POST's header only, never in a URL.
    assert all("access_token" not in query for _, query in [*graph.requests, *graph.calls])


async def test_sub_request_errors_are_mapped_like_plain_responses(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    made = add_pages(graph, 4)
    pages = [page for page, _, _ in made]
    graph.business_usage = {
        "1": [{"type": "pages", "call_count": 100, "estimated_time_to_regain_access": 3}]
    }
    graph.inject(GraphError(code=190, subcode=463), path_contains=f"/{pages[1]}/feed")
    graph.inject(GraphError(code=80001), path_contains=f"/{pages[2]}/feed")
    graph.inject(Disconnect(), path_contains=f"/{pages[3]}/feed")  # a null entry
    ok, expired, throttled, timed_out = await poll_together(graph, session, pages)

    assert isinstance(ok, Batch) and ok.api_usage_ratio == 1.0
    assert isinstance(expired, AuthError) and "access token expired" in str(expired)
    assert isinstance(throttled, RateLimited)
    assert throttled.retry_after == 3 * 60  # from the batch response's usage header
    assert isinstance(timed_out, TransientError) and "null response" in str(timed_out)
    assert graph.http_requests == 1


@pytest.mark.parametrize(
    ("fault", "kind", "text"),
    [
        (HttpStatus(status=502), TransientError, "server error HTTP 502"),
        (MalformedJson(), TransientError, "not valid JSON"),
        (
            HttpStatus(status=200, body='{"ok": true}', content_type="application/json"),
            TransientError,
            "not a list of 3 responses",
        ),
        (Delay(seconds=5), TransientError, "timed out"),
        (GraphError(code=190), AuthError, "access token invalid"),
        (GraphError(code=4), RateLimited, "code 4"),
    ],
)
async def test_a_failed_batch_post_fails_every_sub_request(
    graph: FakeGraphApi,
    session: aiohttp.ClientSession,
    fault: Fault,
    kind: type[SourceError],
    text: str,
) -> None:
    made = add_pages(graph, 3)
    graph.inject(fault)  # the first request: the batch POST itself
    results = await poll_together(
        graph, session, [page for page, _, _ in made], request_timeout=0.5
    )
    for result in results:
        assert type(result) is kind, result
        assert text in str(result)
        assert TOKEN not in str(result)
    assert len({id(result) for result in results}) == 3  # one exception per caller
    assert graph.http_requests == 1

    # The next cycle goes through.
    recovered = await poll_together(graph, session, [page for page, _, _ in made])
    assert all(isinstance(batch, Batch) for batch in recovered)


async def test_a_lone_page_keeps_plain_gets_and_shared_tokens_share_a_poll_group(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    shared = [config(graph, str(300 + n), name=f"shared-{n}") for n in range(3)]
    alone = config(graph, "399", name="alone", access_token="EAAGanother-token")
    batchers = shared_batchers([*shared, alone], session, FakeClock(NOW))

    assert list(batchers) == [graph_key(shared[0])]
    assert {batch_group(cfg, batchers) for cfg in shared} == {graph_key(shared[0])}
    assert batch_group(alone, batchers) is None
    # The group key names tasks and logs: never the token itself.
    assert TOKEN not in graph_key(shared[0])


async def test_the_app_groups_and_batches_pages_that_share_a_token(
    graph: FakeGraphApi, tmp_path: Any, aiohttp_client: Any
) -> None:
    from monitor.app import create_app
    from monitor.web.keys import COORDINATOR

    made = add_pages(graph, 3)
    blocks = "".join(
        f"""
[[sources]]
type = "facebook_page"
name = "page-{n}"
brand = "acme"
page_id = "{page}"
access_token = "{TOKEN}"
api_base_url = "{graph.base_url}"
backfill_days = 7
"""
        for n, (page, _, _) in enumerate(made)
    )
    path = tmp_path / "c.toml"
    path.write_text(
        f"""
database_url = "sqlite+aiosqlite:///{tmp_path}/b.db"
[calendars.office]
timezone = "Europe/Amsterdam"
hours = ["mon-fri 09:00-17:00"]
[policies.default]
office_hours = "60m"
after_hours = "30m"
{blocks}""",
        encoding="utf-8",
    )
    app = create_app(load_config(path), clock=FakeClock(NOW), start_polling=False)
    await aiohttp_client(app)
    coordinator = app[COORDINATOR]
    assert len({entry.group for entry in coordinator.sources.values()}) == 1
    posts_before = sum(path == "/v26.0/" for path, _ in graph.requests)
    await asyncio.gather(*(coordinator.poll_once(name) for name in coordinator.sources))
    assert all(entry.up for entry in coordinator.sources.values())
    assert sum(path == "/v26.0/" for path, _ in graph.requests) - posts_before == 1
    assert not [path for path, _ in graph.requests if path.endswith("/feed")]


# --- the simulator's new wire formats ----------------------------------------------------------


async def graph_get(session: aiohttp.ClientSession, url: str, **params: str) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with session.get(url, params=params, headers=headers) as response:
        return response.status, await response.json()


async def test_simulator_serves_many_pages_on_one_token(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    other = graph.add_page("555", "Other brand", username="other.brand")
    mine = graph.add_post(created_time=at(-5), message="mine")
    theirs = graph.add_post(created_time=at(-5), message="theirs", page_id=other)
    reply = graph.add_comment(post_id=theirs, created_time=at(-4), message="hi")
    assert graph.page_ids == [graph.page_id, other]

    _, feed = await graph_get(session, f"{graph.base_url}/other.brand/feed")
    assert [post["id"] for post in feed["data"]] == [theirs]
    _, own = await graph_get(session, f"{graph.base_url}/{graph.page_id}/feed")
    assert [post["id"] for post in own["data"]] == [mine]
    _, comment = await graph_get(session, f"{graph.base_url}/{reply}", fields="from,permalink_url")
    assert comment["from"] == {"name": "Other brand", "id": other}
    assert comment["permalink_url"].startswith(f"https://www.facebook.com/{other}/posts/")


async def test_simulator_expands_comments_inside_the_feed(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    empty = graph.add_post(created_time=at(-10), message="nobody commented")
    post = graph.add_post(created_time=at(-5), message="p")
    top = graph.add_comment(post_id=post, created_time=at(-4), message="top", author=ANN)
    graph.add_comment(post_id=post, created_time=at(-3), message="reply", parent_id=top)
    graph.add_comment(post_id=post, created_time=at(-2), message="late", author=ANN)
    url = f"{graph.base_url}/{graph.page_id}/feed"
    fields = "id,comments.filter(stream).order(chronological).limit(2){id,message,parent{id}}"
    status, body = await graph_get(session, url, fields=fields)

    assert status == 200
    by_post = {item["id"]: item for item in body["data"]}
    assert "comments" not in by_post[empty]  # an edge without items is left out
    edge = by_post[post]["comments"]
    assert [c["message"] for c in edge["data"]] == ["top", "reply"]
    assert edge["data"][1]["parent"] == {"id": top}
    assert set(edge["paging"]["cursors"]) == {"before", "after"}
    # [NESTED]: limit and cursor only, on the post's own comments edge.
    next_link = edge["paging"]["next"]
    assert next_link.startswith(f"{graph.base_url}/{post}/comments?")
    assert "filter" not in next_link and "limit=2" in next_link
    status, bad = await graph_get(session, url, fields="comments.bogus(1){id}")
    assert status == 400 and "Unknown modifier (bogus)" in bad["error"]["message"]


async def test_simulator_refuses_multi_id_reads_from_v26(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    posts = [graph.add_post(created_time=at(-5 - i), message=f"p{i}") for i in range(2)]
    status, body = await graph_get(
        session, f"{graph.base_url}/", ids=",".join(posts), fields="id,message"
    )
    assert status == 400
    assert body["error"]["code"] == 100
    assert "Root requests using GET /?ids=" in body["error"]["message"]


async def test_simulator_multi_id_read_before_v26(session: aiohttp.ClientSession) -> None:
    graph = FakeGraphApi("104857600", "Acme", TOKEN, version="v25.0")
    await graph.start()
    try:
        posts = [graph.add_post(created_time=at(-5 - i), message=f"p{i}") for i in range(2)]
        status, body = await graph_get(
            session, f"{graph.base_url}/", ids=",".join(posts), fields="id,message"
        )
        assert status == 200
        assert body == {
            posts[0]: {"id": posts[0], "message": "p0"},
            posts[1]: {"id": posts[1], "message": "p1"},
        }
        assert graph.graph_calls == 2  # one per id

        status, body = await graph_get(session, f"{graph.base_url}/", ids=f"{posts[0]},1_999")
        assert status == 400
        assert body["error"]["code"] == 100
        assert "Some of the aliases you requested do not exist: 1_999" in body["error"]["message"]
        many = ",".join(f"1_{n}" for n in range(51))
        status, body = await graph_get(session, f"{graph.base_url}/", ids=many)
        assert "Too many IDs. Maximum: 50. Provided: 51." in body["error"]["message"]
    finally:
        await graph.stop()


async def test_simulator_batch_wire_format(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    post = graph.add_post(created_time=at(-5), message="p")
    operations = [
        {"method": "GET", "relative_url": f"{post}?fields=id,message"},
        {"method": "GET", "relative_url": "1_999/comments"},
    ]
    headers = {"Authorization": f"Bearer {TOKEN}"}
    form = {"batch": orjson.dumps(operations).decode(), "include_headers": "false"}
    async with session.post(f"{graph.base_url}/", data=form, headers=headers) as response:
        assert response.status == 200
        answers = await response.json()
    assert answers[0] == {"code": 200, "body": orjson.dumps({"id": post, "message": "p"}).decode()}
    assert answers[1]["code"] == 400
    assert orjson.loads(answers[1]["body"])["error"]["error_subcode"] == 33
    assert (graph.http_requests, graph.graph_calls) == (1, 2)

    # include_headers defaults to true; a version in relative_url is accepted.
    form = {"batch": orjson.dumps([{"method": "GET", "relative_url": f"v26.0/{post}"}]).decode()}
    async with session.post(f"{graph.base_url}/", data=form, headers=headers) as response:
        (answer,) = await response.json()
    assert {"name": "Content-Type", "value": "text/javascript; charset=UTF-8"} in answer["headers"]

    too_many = [{"method": "GET", "relative_url": post}] * 51
    form = {"batch": orjson.dumps(too_many).decode()}
    async with session.post(f"{graph.base_url}/", data=form, headers=headers) as response:
        error = (await response.json())["error"]
    assert error["code"] == 1 and "Maximum batch size is 50" in error["message"]
    async with session.post(f"{graph.base_url}/", data=form) as response:
        assert (await response.json())["error"]["code"] == 104


async def test_simulator_debug_token(graph: FakeGraphApi, session: aiohttp.ClientSession) -> None:
    graph.token_expires_at = 1_767_225_600
    graph.data_access_expires_at = 1_774_915_200
    status, body = await graph_get(session, f"{graph.base_url}/debug_token", input_token=TOKEN)
    assert status == 200
    data = body["data"]
    assert data["type"] == "PAGE" and data["is_valid"] is True
    assert (data["expires_at"], data["data_access_expires_at"]) == (1_767_225_600, 1_774_915_200)
    assert {"app_id", "application", "scopes", "issued_at"} <= set(data)
    graph.token_valid = False
    _, body = await graph_get(session, f"{graph.base_url}/debug_token", input_token=TOKEN)
    assert body["data"]["is_valid"] is False
    _, body = await graph_get(session, f"{graph.base_url}/debug_token", input_token="EAAGother")
    assert body["data"]["is_valid"] is False and body["data"]["error"]["code"] == 190
