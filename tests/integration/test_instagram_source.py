"""InstagramSource against the fake Graph API over real loopback HTTP (no mocks)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from monitor.clock import FakeClock
from monitor.config import InstagramConfig
from monitor.domain import Batch, Message
from monitor.simulator.graph_api import FakeGraphApi, GraphError
from monitor.sources.base import AuthError, FetchRequest, RateLimited
from monitor.sources.instagram import InstagramSource

IG_ID = "17841405309211844"
USERNAME = "acme.nl"
TOKEN = "EAAGfake-ig-token-0cc175b9c0f1b6a8"
NOW = datetime(2024, 1, 8, 12, 0, tzinfo=UTC)
ANN = ("9001", "ann.consumer")
EMPTY = FetchRequest(cursor={}, active_threads=frozenset())


@pytest.fixture
async def graph() -> AsyncIterator[FakeGraphApi]:
    api = FakeGraphApi(access_token=TOKEN)
    api.add_ig_account(IG_ID, USERNAME)
    await api.start()
    yield api
    await api.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def make_source(
    graph: FakeGraphApi, session: aiohttp.ClientSession, *, page_size: int = 50
) -> InstagramSource:
    config = InstagramConfig.model_validate(
        {
            "type": "instagram",
            "name": "acme-ig",
            "brand": "acme",
            "ig_user_id": IG_ID,
            "username": USERNAME,
            "access_token": TOKEN,
            "api_base_url": graph.base_url,
            "request_timeout": 2.0,
            "backfill_days": 7,
        }
    )
    return InstagramSource(config, session, FakeClock(NOW), page_size=page_size)


def at(minutes: float) -> datetime:
    return NOW + timedelta(minutes=minutes)


def by_id(batch: Batch) -> dict[str, Message]:
    return {message.platform_id: message for message in batch.messages}


async def test_backfill_pages_media_comments_and_replies(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    old = graph.add_media(IG_ID, created_time=NOW - timedelta(days=9), caption="Too old")
    media = [
        graph.add_media(IG_ID, created_time=at(-600 + i), caption=f"Post {i}") for i in range(5)
    ]
    question = graph.add_ig_comment(media[0], created_time=at(-50), text="Size M?", author=ANN)
    answer = graph.add_ig_comment(media[0], created_time=at(-40), text="Yes!", parent_id=question)
    replies = [
        graph.add_ig_comment(media[1], created_time=at(-30), text=f"r{i}", author=ANN)
        for i in range(3)
    ]
    # 30 replies under one comment: more than the nested edge shows, read via /replies.
    popular = graph.add_ig_comment(media[2], created_time=at(-20), text="Restock?", author=ANN)
    thread = [
        graph.add_ig_comment(
            media[2], created_time=at(-10), text=f"me too {i}", author=ANN, parent_id=popular
        )
        for i in range(30)
    ]

    batch = await make_source(graph, session, page_size=2).fetch(EMPTY)
    messages = by_id(batch)

    assert old not in messages
    assert set(media) <= messages.keys()
    first = messages[media[0]]
    assert (first.is_brand, first.author_name, first.text, first.parent_id) == (
        True,
        USERNAME,
        "Post 0",
        None,
    )
    assert first.created_at == at(-600)
    assert first.permalink is not None and "instagram.com" in first.permalink
    q, a = messages[question], messages[answer]
    assert (q.thread_id, q.parent_id, q.author_id, q.author_name, q.is_brand) == (
        media[0],
        media[0],
        ANN[0],
        ANN[1],
        False,
    )
    # The account's reply is the brand's, a reply to the question.
    assert (a.is_brand, a.parent_id, a.author_name) == (True, question, USERNAME)
    assert q.seq < a.seq
    assert all(r in messages for r in replies)
    assert all(messages[r].parent_id == popular for r in thread)
    assert batch.complete_threads[media[2]] == frozenset({media[2], popular, *thread})
    # Media without comments are complete without a read of their comments.
    assert batch.complete_threads[media[4]] == frozenset({media[4]})
    comment_reads = [p for p, _ in graph.requests if p.endswith("/comments")]
    # (media[1]'s three comments take two pages of 2)
    assert sorted(p.split("/")[2] for p in comment_reads) == sorted([*media[:3], media[1]])
    assert any(p.endswith("/replies") for p, _ in graph.requests)
    assert batch.cursor == {"media_since": int(at(-596).timestamp())}
    assert batch.interrupted is None and not batch.skipped


async def test_live_poll_reads_new_media_and_active_threads(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    source = make_source(graph, session)
    media = graph.add_media(IG_ID, created_time=at(-60), caption="Sale")
    first = await source.fetch(EMPTY)
    question = graph.add_ig_comment(media, created_time=at(-5), text="Price?", author=ANN)
    newer = graph.add_media(IG_ID, created_time=at(-1), caption="New drop")
    second = await source.fetch(
        FetchRequest(cursor=first.cursor, active_threads=frozenset({media}))
    )
    assert {question, newer} <= by_id(second).keys()
    assert second.cursor == {"media_since": int(at(-1).timestamp())}


async def test_deleted_comment_and_media(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    source = make_source(graph, session)
    media = graph.add_media(IG_ID, created_time=at(-60), caption="Sale")
    gone_media = graph.add_media(IG_ID, created_time=at(-50), caption="Oops")
    question = graph.add_ig_comment(media, created_time=at(-5), text="Spam", author=ANN)
    graph.add_ig_comment(media, created_time=at(-4), text="reply", author=ANN, parent_id=question)
    first = await source.fetch(EMPTY)
    graph.delete_ig(question)
    graph.delete_ig(gone_media)
    request = FetchRequest(cursor=first.cursor, active_threads=frozenset({media, gone_media}))
    second = await source.fetch(request)
    # The comment vanished from a thread read whole: the pipeline marks it deleted.
    assert second.complete_threads[media] == frozenset({media})
    assert second.deleted_threads == frozenset({gone_media})


async def test_hidden_comment_is_flagged(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    media = graph.add_media(IG_ID, created_time=at(-60), caption="Sale")
    question = graph.add_ig_comment(media, created_time=at(-5), text="rude", author=ANN)
    graph.hide_ig_comment(question)
    batch = await make_source(graph, session).fetch(EMPTY)
    assert by_id(batch)[question].hidden is True


@pytest.mark.parametrize("scope", ["instagram_basic", "instagram_manage_comments"])
async def test_missing_permission_is_a_clear_auth_error(
    graph: FakeGraphApi, session: aiohttp.ClientSession, scope: str
) -> None:
    media = graph.add_media(IG_ID, created_time=at(-60), caption="Sale")
    graph.add_ig_comment(media, created_time=at(-5), text="?", author=ANN)
    graph.ig_scopes.discard(scope)
    source = make_source(graph, session)
    with pytest.raises(AuthError, match=r"permission missing.*instagram_manage_comments"):
        await source.fetch(EMPTY)


async def test_throttle_part_way_keeps_what_was_read(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    media = [graph.add_media(IG_ID, created_time=at(-60 + i), caption=str(i)) for i in range(2)]
    for m in media:
        graph.add_ig_comment(m, created_time=at(-5), text="?", author=ANN)
    first = await make_source(graph, session).fetch(EMPTY)
    graph.inject(GraphError(code=4), path_contains=f"{media[1]}/comments")
    batch = await make_source(graph, session).fetch(
        FetchRequest(cursor=first.cursor, active_threads=frozenset(media))
    )
    assert batch.interrupted == "rate_limited"
    assert media[0] in batch.complete_threads and media[1] not in batch.complete_threads
    graph.inject(GraphError(code=4), path_contains=f"{IG_ID}/media")
    with pytest.raises(RateLimited):
        await make_source(graph, session).fetch(EMPTY)
