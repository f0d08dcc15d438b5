"""MastodonSource against the fake Mastodon server over real loopback HTTP (no mocks)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from monitor.clock import FakeClock
from monitor.config import MastodonConfig
from monitor.domain import Batch, ItemState, Message
from monitor.domain.events import ItemCreated
from monitor.pipeline import handle_batch
from monitor.simulator.mastodon import FakeMastodon, Throttled
from monitor.sources.base import AuthError, FetchRequest, RateLimited
from monitor.sources.mastodon import MastodonSource
from monitor.store import Store, create_engine, upgrade
from tests.integration.open_network_settings import hour_target

NOW = datetime(2024, 1, 8, 12, 0, tzinfo=UTC)  # a Monday; the rate window ends 12:05
TOKEN = "ZA-Yj3aBD8U8Cm7lKUp-lm9O9BmDgdhHzDeqsY8tlL0"
ANN = "ann@other.example"
EMPTY = FetchRequest(cursor={}, active_threads=frozenset())
SETTINGS = hour_target("acme-masto", "mastodon")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
async def fake(clock: FakeClock) -> AsyncIterator[FakeMastodon]:
    server = FakeMastodon(owner="acme", access_token=TOKEN, clock=clock)
    for acct in (ANN, "bob", "carl", "mod", "jobs@partner.example"):
        server.add_account(acct)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/mastodon.db")
    await upgrade(engine)
    yield Store(engine)
    await engine.dispose()


def make_source(
    fake: FakeMastodon,
    http: aiohttp.ClientSession,
    clock: FakeClock,
    *,
    token: str | None = TOKEN,
    **kw: Any,
) -> MastodonSource:
    config = MastodonConfig.model_validate(
        {
            "type": "mastodon",
            "name": "acme-masto",
            "brand": "acme",
            "base_url": fake.base_url,
            "account": "acme",
            "access_token": token,
            "hashtags": ["#JobFair"],
            # The moderator as written on another server's form: user@this-host.
            "moderators": [f"mod@{fake.base_url.split('//')[1].split(':')[0]}"],
            "partners": ["jobs@partner.example"],
            "backfill_days": 7,
            "request_timeout": 2.0,
        }
    )
    return MastodonSource(config, http, clock, **kw)


def at(minutes: float) -> datetime:
    return NOW + timedelta(minutes=minutes)


def by_id(batch: Batch) -> dict[str, Message]:
    return {m.platform_id: m for m in batch.messages}


def calls(fake: FakeMastodon, path_part: str) -> list[dict[str, str]]:
    return [dict(r.query) for r in fake.requests if path_part in r.path]


async def test_backfill_pages_back_through_link_headers_to_backfill_days(
    fake: FakeMastodon, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    too_old = fake.post("bob", "#jobfair last month", at=NOW - timedelta(days=9))
    posts = [fake.post("bob", f"#JobFair stand {i} is ready", at=at(-600 + i)) for i in range(5)]
    question = fake.post(ANN, "Is the #JobFair open at 9? Asking for a friend", at=at(-30))

    batch = await make_source(fake, http, clock, page_size=2).fetch(EMPTY)

    messages = by_id(batch)
    assert too_old not in messages
    assert set(posts) | {question} <= messages.keys()
    q = messages[question]
    assert (q.thread_id, q.parent_id, q.author_name, q.kind, q.tags) == (
        question,
        None,
        ANN,
        "interaction",
        ("jobfair",),
    )
    assert q.text == "Is the #JobFair open at 9? Asking for a friend"
    assert q.created_at == at(-30)
    assert q.permalink == f"https://other.example/@ann/{question}"
    assert messages[posts[0]].kind == "chatter"
    pages = calls(fake, "/timelines/tag/jobfair")
    # Newest page first, then the Link's max_id, until a status older than 7 days shows.
    assert [p.get("max_id") for p in pages] == [None, posts[4], posts[2], posts[0]]
    assert batch.cursor["streams"]["tag:jobfair"] == {"min_id": question}
    assert batch.interrupted is None and not batch.skipped


async def test_live_polls_read_forward_from_min_id_without_a_gap(
    fake: FakeMastodon, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    source = make_source(fake, http, clock, page_size=2)
    first = await source.fetch(EMPTY)
    assert first.cursor["streams"]["tag:jobfair"] == {}  # nothing yet: backfill again next time
    seed = fake.post("bob", "#jobfair day one", at=at(-20))
    second = await source.fetch(FetchRequest(cursor=first.cursor, active_threads=frozenset()))
    assert seed in by_id(second)
    # Five new statuses between polls, more than a page of 2: all read, oldest page first.
    new = [fake.post("carl", f"#jobfair photo {i}", at=at(i)) for i in range(5)]
    fake.requests.clear()
    third = await source.fetch(FetchRequest(cursor=second.cursor, active_threads=frozenset()))
    assert set(new) <= by_id(third).keys() and seed not in by_id(third)
    assert [p.get("min_id") for p in calls(fake, "/timelines/tag/")] == [seed, new[1], new[3]]
    assert third.cursor["streams"]["tag:jobfair"] == {"min_id": new[4]}


async def test_interactions_open_items_and_brand_and_moderator_replies_answer_them(
    fake: FakeMastodon, http: aiohttp.ClientSession, clock: FakeClock, store: Store
) -> None:
    mention = fake.post(ANN, "@acme my application got lost, what now", at=at(-50))
    question = fake.post("bob", "Which hall is the #jobfair in?", at=at(-45))
    chatter = fake.post("carl", "Great day at the #jobfair", at=at(-40))
    vacancy = fake.post("jobs@partner.example", "#jobfair: cooks wanted, are you one?", at=at(-35))
    source = make_source(fake, http, clock)
    first = await source.fetch(EMPTY)
    messages = by_id(first)
    kinds = {i: messages[i].kind for i in (mention, question, chatter, vacancy)}
    assert kinds == {
        mention: "interaction",
        question: "interaction",
        chatter: "chatter",
        vacancy: "broadcast",
    }
    created = await handle_batch(store, SETTINGS, first, NOW)
    opened = {e.item.thread_id for e in created.events if isinstance(e, ItemCreated)}
    assert opened == {mention, question}

    reply = fake.post(
        "acme", "Sorry! Send it again to jobs@acme.example", at=at(1), reply_to=mention
    )
    answer = fake.post("mod", "Hall B", at=at(2), reply_to=question)
    await clock.advance(180)
    active = await store.active_threads("acme-masto", active_since=NOW - timedelta(days=14))
    assert {mention, question} <= active  # chatter threads stay active for active_days too
    second = await source.fetch(FetchRequest(cursor=first.cursor, active_threads=active))
    await handle_batch(store, SETTINGS, second, clock.now())

    r, a = by_id(second)[reply], by_id(second)[answer]
    assert (r.is_brand, r.thread_id, r.parent_id, r.kind) == (True, mention, mention, "brand")
    assert (a.is_brand, a.thread_id, a.author_name) == (True, question, "mod")
    assert second.complete_threads[mention] == frozenset({mention, reply})
    states = {i.thread_id: i.state for i in await store.items_between(NOW - timedelta(1), at(10))}
    assert states == {mention: ItemState.ANSWERED_IN_TIME, question: ItemState.ANSWERED_IN_TIME}


async def test_reply_to_an_unseen_status_joins_its_root_thread(
    fake: FakeMastodon, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    root = fake.post("carl", "Who is going tomorrow?", at=at(-60))  # no tag: never listed
    middle = fake.post("bob", "me", at=at(-55), reply_to=root)
    ask = fake.post(ANN, "Does the #jobfair have parking?", at=at(-50), reply_to=middle)
    source = make_source(fake, http, clock)
    batch = await source.fetch(EMPTY)
    m = by_id(batch)[ask]
    # Its root is two hops up: learned from the reply's context (one request).
    assert (m.thread_id, m.parent_id, m.kind) == (root, middle, "interaction")
    assert len(calls(fake, f"/statuses/{ask}/context")) == 1
    # The brand's reply joins the same thread without another context read.
    reply = fake.post("acme", "Yes, 300 places", at=at(1), reply_to=ask)
    again = await source.fetch(FetchRequest(cursor=batch.cursor, active_threads=frozenset()))
    assert by_id(again)[reply].thread_id == root
    assert not calls(fake, f"/statuses/{reply}/context")


async def test_a_boost_counts_the_original_once_never_the_boost(
    fake: FakeMastodon, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    post = fake.post("bob", "Our #jobfair stand is up", at=at(-30))
    boost = fake.boost("acme", post, at=at(-20))
    batch = await make_source(fake, http, clock).fetch(EMPTY)
    # In the tag timeline and, as a boost, in the brand's statuses: one message, bob's.
    assert [m.platform_id for m in batch.messages] == [post]
    assert boost not in by_id(batch)
    assert (by_id(batch)[post].author_name, by_id(batch)[post].is_brand) == ("bob", False)


async def test_an_edit_updates_the_text(
    fake: FakeMastodon, http: aiohttp.ClientSession, clock: FakeClock, store: Store
) -> None:
    mention = fake.post(ANN, "@acme when does the fair open", at=at(-30))
    source = make_source(fake, http, clock)
    first = await source.fetch(EMPTY)
    await handle_batch(store, SETTINGS, first, NOW)
    fake.edit(mention, "@acme when does the fair open on Sunday?", at=at(1))
    await clock.advance(120)
    second = await source.fetch(
        FetchRequest(cursor=first.cursor, active_threads=frozenset({mention}))
    )
    assert by_id(second)[mention].text == "@acme when does the fair open on Sunday?"
    result = await handle_batch(store, SETTINGS, second, clock.now())
    assert result.changed_messages == 1


async def test_a_deleted_status_is_removed_and_its_thread_stays(
    fake: FakeMastodon, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    gone = fake.post(ANN, "@acme spam spam", at=at(-30))
    kept = fake.post("bob", "@acme is it free?", at=at(-20))
    follow_up = fake.post("bob", "@acme and parking?", at=at(-10), reply_to=kept)
    source = make_source(fake, http, clock)
    first = await source.fetch(EMPTY)
    assert {gone, kept, follow_up} <= by_id(first).keys()
    fake.delete(gone)
    fake.delete(follow_up)
    second = await source.fetch(
        FetchRequest(cursor=first.cursor, active_threads=frozenset({gone, kept}))
    )
    # A deleted root is removed on its own; no conversation is ever deleted as a whole.
    assert second.removed == frozenset({gone})
    assert second.deleted_threads == frozenset()
    assert gone not in second.complete_threads
    # The reply vanished from a thread read whole: the pipeline marks it deleted.
    assert second.complete_threads[kept] == frozenset({kept})


async def test_questions_under_a_deleted_brand_post_still_wait_and_get_answered(
    fake: FakeMastodon, http: aiohttp.ClientSession, clock: FakeClock, store: Store
) -> None:
    """Mastodon keeps the replies to a deleted status: deleting the brand's post (a campaign
    that ended) must not dismiss the consumers' questions under it."""
    # Each question is answered by a reply to it, so the two items tell apart.
    settings = replace(SETTINGS, policy=replace(SETTINGS.policy, reply_match="direct"))
    post = fake.post("acme", "Our #jobfair opens Monday!", at=at(-40))
    ask = fake.post(ANN, "@acme can I bring my CV on paper?", at=at(-30), reply_to=post)
    other = fake.post("bob", "@acme is there parking?", at=at(-25), reply_to=post)
    source = make_source(fake, http, clock)
    first = await source.fetch(EMPTY)
    assert {by_id(first)[m].thread_id for m in (ask, other)} == {post}
    await handle_batch(store, settings, first, NOW)

    fake.delete(post)
    await clock.advance(600)  # past the 5-minute pace of thread re-reads
    active = await store.active_threads("acme-masto", active_since=NOW - timedelta(days=14))
    second = await source.fetch(FetchRequest(cursor=first.cursor, active_threads=active))
    result = await handle_batch(store, settings, second, clock.now())
    assert second.removed == frozenset({post})
    assert not [e for e in result.events if e.item.state is ItemState.DISMISSED]
    stored = {s.message.platform_id: s for s in await store.all_messages("acme-masto")}
    assert stored[post].message.deleted
    assert not stored[ask].message.deleted and not stored[other].message.deleted

    answer = fake.post("mod", "Paper is fine", at=at(12), reply_to=ask)
    await clock.advance(120)
    third = await source.fetch(FetchRequest(cursor=second.cursor, active_threads=active))
    assert by_id(third)[answer].thread_id == post
    await handle_batch(store, settings, third, clock.now())
    states = {i.message_id: i.state for i in await store.items_between(at(-90), at(30))}
    assert states[stored[ask].id] is ItemState.ANSWERED_IN_TIME
    assert states[stored[other].id] is ItemState.OPEN


async def test_a_429_part_way_keeps_what_was_read_and_waits_for_the_reset(
    fake: FakeMastodon, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    tagged = fake.post("bob", "Where is the #jobfair?", at=at(-30))
    mention = fake.post(ANN, "@acme hello?", at=at(-20))
    fake.inject(Throttled(), path_contains="/notifications")
    source = make_source(fake, http, clock)
    batch = await source.fetch(EMPTY)
    assert batch.interrupted == "rate_limited"
    assert batch.wait_seconds == 300.0  # until the window's end at 12:05
    assert tagged in by_id(batch) and mention not in by_id(batch)
    assert batch.cursor["streams"]["tag:jobfair"] == {"min_id": tagged}
    assert "mentions" not in batch.cursor["streams"]
    # The next poll (after the reset) goes on with the mentions only.
    await clock.advance(300)
    fake.requests.clear()
    again = await source.fetch(FetchRequest(cursor=batch.cursor, active_threads=frozenset()))
    assert mention in by_id(again) and tagged not in by_id(again)
    # Nothing was read at all: the throttle is the fetch's error.
    fake.inject(Throttled())
    with pytest.raises(RateLimited) as caught:
        await make_source(fake, http, clock).fetch(EMPTY)
    assert caught.value.retry_after == 300.0


async def test_remaining_zero_stops_before_the_server_refuses(
    fake: FakeMastodon, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    fake.post("bob", "Where is the #jobfair?", at=at(-30))
    fake.rate_limit = 2  # the lookup and the tag timeline
    source = make_source(fake, http, clock)
    batch = await source.fetch(EMPTY)
    assert batch.interrupted == "rate_limited" and batch.wait_seconds == 300.0
    assert [r.status for r in fake.requests] == [200, 200]  # never a 429
    assert batch.api_usage_ratio == 1.0


async def test_an_invalid_token_is_a_clear_auth_error(
    fake: FakeMastodon, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    fake.token_revoked = True
    with pytest.raises(AuthError, match=r"refused the access token.*read:statuses read:notif"):
        await make_source(fake, http, clock).fetch(EMPTY)


async def test_a_token_without_read_notifications_names_the_scope(
    fake: FakeMastodon, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    fake.scopes.discard("read:notifications")
    with pytest.raises(AuthError, match=r"lacks the scope read:notifications"):
        await make_source(fake, http, clock).fetch(EMPTY)


async def test_without_a_token_only_public_timelines_are_read(
    fake: FakeMastodon, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    tagged = fake.post("bob", "Where is the #jobfair?", at=at(-30))
    batch = await make_source(fake, http, clock, token=None).fetch(EMPTY)
    assert tagged in by_id(batch)
    assert not calls(fake, "/notifications")
    assert all(r.token is None for r in fake.requests)


async def test_open_threads_leave_a_quarter_of_the_window_and_resume_next_poll(
    fake: FakeMastodon, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    threads = [fake.post("carl", f"#jobfair hall {i}", at=at(-60 + i)) for i in range(10)]
    source = make_source(fake, http, clock)
    first = await source.fetch(EMPTY)
    await clock.advance(300)  # a fresh window of 20
    fake.rate_limit = 20
    fake.requests.clear()
    request = FetchRequest(cursor=first.cursor, active_threads=frozenset(threads))
    second = await source.fetch(request)
    assert second.interrupted is None
    left = second.cursor["threads_from"]
    read = {p.split("/")[4] for p in (r.path for r in fake.requests) if "/context" in p}
    assert left in threads and left not in read and read
    # Newest first: what was read is newer than what waits.
    assert min(int(t) for t in read) > int(left)
    assert len(fake.requests) < 20  # the server never had to refuse one
    await clock.advance(300)
    fake.requests.clear()
    third = await source.fetch(
        FetchRequest(cursor=second.cursor, active_threads=frozenset(threads))
    )
    first_thread = next(r.path for r in fake.requests if r.path.startswith("/api/v1/statuses/"))
    assert first_thread == f"/api/v1/statuses/{left}"
    assert third.complete_threads.keys() >= {left}


async def test_a_poll_re_reads_an_open_thread_at_most_every_five_minutes(
    fake: FakeMastodon, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    asked = fake.post(ANN, "@acme is the fair free?", at=at(-10))
    source = make_source(fake, http, clock)
    open_threads = frozenset({asked})
    cursor = (await source.fetch(EMPTY)).cursor

    async def poll(*, include_feed: bool = True) -> list[str]:
        nonlocal cursor
        fake.requests.clear()
        request = FetchRequest(
            cursor=cursor, active_threads=open_threads, include_feed=include_feed
        )
        batch = await source.fetch(request)
        if include_feed:
            cursor = batch.cursor
        return [r.path for r in fake.requests if r.path.startswith("/api/v1/statuses/")]

    assert await poll() == [f"/api/v1/statuses/{asked}", f"/api/v1/statuses/{asked}/context"]
    await clock.advance(60)
    assert await poll() == []  # read a minute ago: the brand's replies come by its statuses
    # A re-read asked for (before a breach, a push delivery) reads at once.
    assert len(await poll(include_feed=False)) == 2
    await clock.advance(300)
    assert len(await poll()) == 2
