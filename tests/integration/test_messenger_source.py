"""MessengerSource against the fake Graph API's conversations over real loopback HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from monitor.clock import FakeClock
from monitor.config import MessengerConfig, parse_config
from monitor.domain import Batch, Message
from monitor.simulator.graph_api import FakeGraphApi, GraphError
from monitor.sources.base import AuthError, FetchRequest, RateLimited
from monitor.sources.messenger import MessengerSource

PAGE_ID = "104857600"
TOKEN = "EAAGfake-page-token-d41d8cd98f00b204"
NOW = datetime(2024, 1, 8, 12, 0, tzinfo=UTC)
ANN = ("24000000000001", "Ann Consumer")
BOB = ("24000000000002", "Bob Consumer")
EMPTY = FetchRequest(cursor={}, active_threads=frozenset())


@pytest.fixture
async def graph() -> AsyncIterator[FakeGraphApi]:
    api = FakeGraphApi(PAGE_ID, "Acme", TOKEN)
    await api.start()
    yield api
    await api.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def make_source(
    graph: FakeGraphApi, session: aiohttp.ClientSession, *, page_size: int = 25
) -> MessengerSource:
    config = MessengerConfig.model_validate(
        {
            "type": "messenger",
            "name": "acme-messenger",
            "brand": "acme",
            "page_id": PAGE_ID,
            "access_token": TOKEN,
            "api_base_url": graph.base_url,
            "request_timeout": 2.0,
            "backfill_days": 7,
        }
    )
    return MessengerSource(config, session, FakeClock(NOW), page_size=page_size)


def at(minutes: float) -> datetime:
    return NOW + timedelta(minutes=minutes)


def by_id(batch: Batch) -> dict[str, Message]:
    return {message.platform_id: message for message in batch.messages}


def say(graph: FakeGraphApi, conversation: str, minutes: float, text: str, page: bool) -> str:
    return graph.add_message(conversation, created_time=at(minutes), message=text, from_page=page)


async def test_backfill_maps_a_conversation_to_a_thread_of_the_person(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    ann = graph.add_conversation(ANN)
    question = say(graph, ann, -60, "Where is my order?", False)
    answer = say(graph, ann, -50, "Let me check!", True)
    old = graph.add_conversation(BOB)
    say(graph, old, -60 * 24 * 30, "A month ago", False)  # before the backfill: not read
    batch = await make_source(graph, session).fetch(EMPTY)
    messages = by_id(batch)
    assert set(messages) == {question, answer}
    assert messages[question].thread_id == ANN[0]
    assert (messages[question].is_brand, messages[answer].is_brand) == (False, True)
    assert messages[question].author_name == "Ann Consumer"
    assert messages[question].created_at == at(-60)
    assert batch.complete_threads == {ANN[0]: frozenset({question, answer})}
    assert batch.cursor["updated_since"] == at(-50).isoformat()
    listed = [q for path, q in graph.requests if path.endswith("/conversations")]
    assert listed[0]["platform"] == "messenger"


async def test_live_poll_reads_only_conversations_updated_since_the_cursor(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    carl = graph.add_conversation(("24000000000003", "Carl"))
    say(graph, carl, -120, "Older", False)
    ann = graph.add_conversation(ANN)
    again = say(graph, ann, -60, "Hello?", False)
    source = make_source(graph, session)
    first = await source.fetch(EMPTY)
    bob = graph.add_conversation(BOB)
    new = say(graph, bob, -5, "Is the shop open on Sunday?", False)
    second = await source.fetch(FetchRequest(cursor=first.cursor, active_threads=frozenset()))
    # The cursor's second is read again (inclusive), an older conversation is not.
    assert set(by_id(second)) == {new, again}


async def test_long_conversations_and_lists_are_paged_with_their_fields(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    sent = []
    for n in range(5):
        conversation = graph.add_conversation((f"2400000000010{n}", f"Person {n}"))
        sent += [say(graph, conversation, -100 + n * 10 + k, f"m{k}", False) for k in range(5)]
    batch = await make_source(graph, session, page_size=2).fetch(EMPTY)
    assert set(by_id(batch)) == set(sent)
    assert all(m.text for m in batch.messages)  # the nested edge's next lacks the fields
    assert len(batch.complete_threads) == 5


async def test_active_thread_is_reread_and_an_unsent_message_is_gone(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    ann = graph.add_conversation(ANN)
    first = say(graph, ann, -60, "Wrong chat, sorry", False)
    second = say(graph, ann, -59, "Do you deliver?", False)
    source = make_source(graph, session)
    start = await source.fetch(EMPTY)
    graph.unsend(first)
    # A re-read (as before a breach): the person's conversation only, found by user_id.
    request = FetchRequest(
        cursor=start.cursor, active_threads=frozenset({ANN[0]}), include_feed=False
    )
    batch = await source.fetch(request)
    assert batch.complete_threads == {ANN[0]: frozenset({second})}
    users = [q.get("user_id") for path, q in graph.requests if path.endswith("/conversations")]
    assert users[-1] == ANN[0]
    graph.unsend(second)
    gone = await source.fetch(request)
    assert gone.deleted_threads == frozenset({ANN[0]})


async def test_missing_pages_messaging_is_a_clear_auth_error(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    graph.token_scopes = [s for s in graph.token_scopes if s != "pages_messaging"]
    with pytest.raises(AuthError, match="pages_messaging") as raised:
        await make_source(graph, session).fetch(EMPTY)
    assert "code 230" in str(raised.value)


async def test_throttle_after_progress_keeps_what_was_read(
    graph: FakeGraphApi, session: aiohttp.ClientSession
) -> None:
    for n in range(3):
        conversation = graph.add_conversation((f"2400000000020{n}", f"Person {n}"))
        say(graph, conversation, -30 + n, "hi", False)
    source = make_source(graph, session, page_size=1)
    graph.inject_every(GraphError(code=613), 2, path_contains="/conversations")
    batch = await source.fetch(EMPTY)
    assert len(batch.messages) == 1
    assert batch.interrupted == "rate_limited"
    assert batch.cursor == {}  # read again next time
    graph.clear_faults()
    graph.inject(GraphError(code=613), path_contains="/conversations")
    with pytest.raises(RateLimited):
        await source.fetch(EMPTY)


def test_store_text_is_off_by_default_for_messenger() -> None:
    raw = {
        "sources": [
            {
                "type": "messenger",
                "name": "m",
                "brand": "acme",
                "page_id": PAGE_ID,
                "access_token": TOKEN,
            }
        ]
    }
    config = parse_config(raw)
    assert config.source_privacy("m").store_text is False
