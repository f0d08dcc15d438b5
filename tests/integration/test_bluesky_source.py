"""BlueskySource against the fake Bluesky PDS over real loopback HTTP (no mocks)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from monitor.clock import FakeClock
from monitor.config import BlueskyConfig
from monitor.domain import Batch, ItemState, Message
from monitor.pipeline import handle_batch
from monitor.simulator.bluesky import FakeBluesky, HttpStatus, RateLimit
from monitor.sources.base import AuthError, FetchRequest, RateLimited, TransientError
from monitor.sources.bluesky import BlueskySource
from monitor.store import Store, create_engine, upgrade
from tests.integration.open_network_settings import hour_target

NOW = datetime(2026, 3, 9, 12, 0, tzinfo=UTC)  # a Monday
BRAND = "acme.bsky.social"
PASSWORD = "abcd-efgh-ijkl-mnop"
EMPTY = FetchRequest(cursor={}, active_threads=frozenset())
SETTINGS = hour_target("acme-bsky", "bluesky")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
async def fake(clock: FakeClock) -> AsyncIterator[FakeBluesky]:
    server = FakeBluesky(clock=clock)
    server.add_account(BRAND, password=PASSWORD, display_name="Acme")
    for handle in ("ann.bsky.social", "bob.bsky.social", "mod.bsky.social", "jobs.partner.nl"):
        server.add_account(handle)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/bluesky.db")
    await upgrade(engine)
    yield Store(engine)
    await engine.dispose()


def make_source(
    fake: FakeBluesky,
    http: aiohttp.ClientSession,
    clock: FakeClock,
    *,
    password: str = PASSWORD,
    **kw: Any,
) -> BlueskySource:
    config = BlueskyConfig.model_validate(
        {
            "type": "bluesky",
            "name": "acme-bsky",
            "brand": "acme",
            "handle": BRAND,
            "app_password": password,
            "service_url": fake.base_url,
            "hashtags": ["JobsWeek"],
            "moderators": ["mod.bsky.social"],
            "partners": ["jobs.partner.nl"],
            "backfill_days": 7,
            "request_timeout": 2.0,
        }
    )
    return BlueskySource(config, http, clock, **kw)


def at(minutes: float) -> datetime:
    return NOW + timedelta(minutes=minutes)


def by_id(batch: Batch) -> dict[str, Message]:
    return {m.platform_id: m for m in batch.messages}


def calls(fake: FakeBluesky, nsid: str) -> list[dict[str, str]]:
    return [dict(r.query) for r in fake.requests if r.nsid == nsid]


async def test_signs_in_once_and_refreshes_an_expired_token(
    fake: FakeBluesky, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    fake.post("ann.bsky.social", "#JobsWeek what a fair", at=at(-30))
    source = make_source(fake, http, clock)
    first = await source.fetch(EMPTY)
    assert len(first.messages) == 1
    assert fake.sessions_created == 1
    assert all(r.authorized for r in fake.requests if r.nsid.startswith("app.bsky."))

    fake.expire_access_tokens()
    second = await source.fetch(FetchRequest(cursor=first.cursor, active_threads=frozenset()))

    assert fake.sessions_created == 1  # refreshed, not signed in again
    assert [r.status for r in fake.requests if r.nsid.endswith("refreshSession")] == [200]
    # The call refused for the expired token was made again with the new one.
    assert [r.status for r in fake.requests if r.nsid.endswith("searchPosts")] == [200, 400, 200]
    assert len(second.messages) == 1


async def test_backfill_pages_the_search_and_stops_at_backfill_days(
    fake: FakeBluesky, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    posts = [
        fake.post("bob.bsky.social", f"#jobsweek post {i}", at=at(-10 - 20 * i)) for i in range(250)
    ]
    old = fake.post("bob.bsky.social", "#jobsweek last year", at=NOW - timedelta(days=8))
    progress: list[tuple[float, float, str]] = []
    request = FetchRequest(
        cursor={}, active_threads=frozenset(), on_progress=lambda *a: progress.append(a)
    )

    batch = await make_source(fake, http, clock, page_size=100).fetch(request)

    messages = by_id(batch)
    assert set(messages) == set(posts) and old not in messages
    searches = calls(fake, "app.bsky.feed.searchPosts")
    assert [s.get("cursor") for s in searches] == [None, "100", "200"]
    assert searches[0]["q"] == "#jobsweek" and searches[0]["sort"] == "latest"
    assert searches[0]["since"] == "2026-03-02T12:00:00.000Z"
    assert all(m.kind == "chatter" and m.tags == ("jobsweek",) for m in messages.values())
    assert progress and progress[-1][2] == "days"
    assert batch.cursor["search"] == {"#jobsweek": "2026-03-09T11:50:00.000Z"}


async def test_live_poll_reads_from_the_newest_seen_post(
    fake: FakeBluesky, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    fake.post("bob.bsky.social", "#jobsweek one", at=at(-30))
    source = make_source(fake, http, clock)
    first = await source.fetch(EMPTY)
    await clock.advance(600)
    new = fake.post("bob.bsky.social", "#jobsweek two", at=at(5))

    second = await source.fetch(FetchRequest(cursor=first.cursor, active_threads=frozenset()))

    assert new in by_id(second)
    # From the newest seen, less a 10-minute overlap for the search index's lag.
    assert calls(fake, "app.bsky.feed.searchPosts")[-1]["since"] == "2026-03-09T11:20:00.000Z"
    assert second.cursor["search"]["#jobsweek"] == "2026-03-09T12:05:00.000Z"
    # A poll that finds nothing new leaves the cursor where it was (no drift backwards).
    third = await source.fetch(FetchRequest(cursor=second.cursor, active_threads=frozenset()))
    assert third.cursor == second.cursor and not [m for m in third.messages if m.platform_id != new]


async def test_rule_sorts_mentions_questions_partners_and_chatter(
    fake: FakeBluesky, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    mention = fake.post("ann.bsky.social", f"@{BRAND} my application vanished", at=at(-50))
    question = fake.post("bob.bsky.social", "Does #JobsWeek include part-time?", at=at(-40))
    chatter = fake.post("bob.bsky.social", "Great day at #jobsweek", at=at(-30))
    vacancy = fake.post("jobs.partner.nl", "#jobsweek Vacancy: who wants to weld?", at=at(-20))
    own = fake.post(BRAND, "#jobsweek starts today! Questions?", at=at(-60))
    unrelated = fake.post("ann.bsky.social", "lunch?", at=at(-10))

    batch = await make_source(fake, http, clock).fetch(EMPTY)

    messages = by_id(batch)
    kinds = {uri: (messages[uri].kind, messages[uri].is_brand) for uri in messages}
    assert kinds == {
        mention: ("interaction", False),
        question: ("interaction", False),
        chatter: ("chatter", False),
        vacancy: ("broadcast", False),
        own: ("brand", True),
    }
    assert unrelated not in messages
    assert [m.opens_item for m in (messages[mention], messages[vacancy])] == [True, False]
    m = messages[mention]
    assert (m.thread_id, m.parent_id, m.author_name) == (mention, None, "ann.bsky.social")
    assert m.permalink == f"https://bsky.app/profile/ann.bsky.social/post/{mention.rsplit('/')[-1]}"
    assert m.author_id is not None and m.author_id.startswith("did:plc:")
    assert messages[question].tags == ("jobsweek",)


async def test_brand_and_moderator_replies_answer_items(
    fake: FakeBluesky, http: aiohttp.ClientSession, clock: FakeClock, store: Store
) -> None:
    ask = fake.post("ann.bsky.social", f"@{BRAND} is the fair open on Sunday?", at=at(-50))
    other = fake.post("bob.bsky.social", "Anyone at #jobsweek hiring cooks?", at=at(-45))
    source = make_source(fake, http, clock)
    first = await source.fetch(EMPTY)
    created = await handle_batch(store, SETTINGS, first, NOW)
    assert len([e for e in created.events if type(e).__name__ == "ItemCreated"]) == 2

    reply = fake.post(BRAND, "No, Monday to Friday.", at=at(1), reply_to=ask)
    fake.post("mod.bsky.social", "@bob.bsky.social yes, hall B", at=at(2), reply_to=other)
    await clock.advance(180)
    active = await store.active_threads("acme-bsky", active_since=NOW - timedelta(days=14))
    assert {ask, other} <= active
    second = await source.fetch(FetchRequest(cursor=first.cursor, active_threads=active))
    await handle_batch(store, SETTINGS, second, clock.now())

    assert by_id(second)[reply].is_brand and by_id(second)[reply].thread_id == ask
    states = {i.thread_id: i.state for i in await store.items_between(NOW - timedelta(1), at(10))}
    assert states == {ask: ItemState.ANSWERED_IN_TIME, other: ItemState.ANSWERED_IN_TIME}
    threads = calls(fake, "app.bsky.feed.getPostThread")
    assert {t["uri"] for t in threads} >= {ask, other}
    assert second.complete_threads[ask] == frozenset({ask, reply})


async def test_reply_to_the_brand_is_an_interaction_and_counted_once(
    fake: FakeBluesky, http: aiohttp.ClientSession, clock: FakeClock, store: Store
) -> None:
    own = fake.post(BRAND, "#jobsweek: 300 vacancies this week", at=at(-60))
    reply = fake.post("ann.bsky.social", "in Utrecht too? #jobsweek", at=at(-5), reply_to=own)

    source = make_source(fake, http, clock)
    batch = await source.fetch(EMPTY)
    again = await source.fetch(EMPTY)

    # Found by the search and by the reply notification: still one message.
    assert [m.platform_id for m in batch.messages].count(reply) == 1
    r = by_id(batch)[reply]
    assert (r.kind, r.thread_id, r.parent_id) == ("interaction", own, own)
    # Posts cannot be edited: reading the same uri again changes nothing.
    await handle_batch(store, SETTINGS, batch, NOW)
    result = await handle_batch(store, SETTINGS, again, NOW + timedelta(minutes=2))
    assert (result.new_messages, result.changed_messages) == (0, 0)


async def test_reposts_and_likes_are_not_posts_a_quote_counts_once(
    fake: FakeBluesky, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    own = fake.post(BRAND, "#jobsweek opens Monday", at=at(-60))
    repost = fake.repost("ann.bsky.social", own, at=at(-50))
    like = fake.like("bob.bsky.social", own, at=at(-49))
    quote = fake.post("bob.bsky.social", "see you there #jobsweek", at=at(-40), quote=own)

    batch = await make_source(fake, http, clock).fetch(EMPTY)

    assert sorted(m.platform_id for m in batch.messages) == sorted([own, quote])
    assert repost not in by_id(batch) and like not in by_id(batch)
    assert by_id(batch)[quote].thread_id == quote  # a quote is its own thread
    reasons = calls(fake, "app.bsky.notification.listNotifications")[0]
    assert reasons["reasons"] in ("mention", "reply", "quote")


async def test_deleted_post_and_deleted_reply(
    fake: FakeBluesky, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    gone = fake.post("ann.bsky.social", f"@{BRAND} hello?", at=at(-50))
    kept = fake.post("bob.bsky.social", f"@{BRAND} where is hall B?", at=at(-40))
    retracted = fake.post("bob.bsky.social", "never mind", at=at(-30), reply_to=kept)
    source = make_source(fake, http, clock)
    await source.fetch(EMPTY)
    fake.delete(gone)
    fake.delete(retracted)

    batch = await source.fetch(
        FetchRequest(cursor={}, active_threads=frozenset({gone, kept}), include_feed=False)
    )

    # A deleted root is removed on its own; no thread is ever deleted as a whole.
    assert batch.removed == frozenset({gone})
    assert batch.deleted_threads == frozenset()
    assert gone not in batch.complete_threads
    # The reply vanished from a thread read whole: the pipeline marks it deleted.
    assert batch.complete_threads == {kept: frozenset({kept})}
    assert [r.status for r in fake.requests if r.nsid.endswith("getPostThread")] == [400, 200]


async def test_questions_under_a_deleted_brand_post_still_wait_and_get_answered(
    fake: FakeBluesky, http: aiohttp.ClientSession, clock: FakeClock, store: Store
) -> None:
    """Bluesky keeps the replies to a deleted post: deleting the brand's campaign post must not
    dismiss the consumers' questions under it, and a moderator's reply still answers one."""
    # Each question is answered by a reply to it, so the two items tell apart.
    settings = replace(SETTINGS, policy=replace(SETTINGS.policy, reply_match="direct"))
    post = fake.post(BRAND, "#jobsweek opens Monday! Questions?", at=at(-40))
    ask = fake.post("ann.bsky.social", "can I bring my CV on paper?", at=at(-30), reply_to=post)
    other = fake.post("bob.bsky.social", "is there parking?", at=at(-25), reply_to=post)
    source = make_source(fake, http, clock)
    first = await source.fetch(EMPTY)
    assert {by_id(first)[m].thread_id for m in (ask, other)} == {post}
    await handle_batch(store, settings, first, NOW)

    fake.delete(post)
    await clock.advance(180)
    active = await store.active_threads("acme-bsky", active_since=NOW - timedelta(days=14))
    assert post in active
    second = await source.fetch(FetchRequest(cursor=first.cursor, active_threads=active))
    result = await handle_batch(store, settings, second, clock.now())
    assert second.removed == frozenset({post})
    assert second.deleted_threads == frozenset() and post not in second.complete_threads
    assert not [e for e in result.events if e.item.state is ItemState.DISMISSED]
    stored = {s.message.platform_id: s for s in await store.all_messages("acme-bsky")}
    assert stored[post].message.deleted
    assert not stored[ask].message.deleted and not stored[other].message.deleted

    # The moderator's reply names the deleted post as its root; only its feed shows it (it
    # neither mentions nor replies to the brand, and the thread cannot be re-read).
    answer = fake.post("mod.bsky.social", "Paper is fine", at=at(4), reply_to=ask)
    await clock.advance(120)
    third = await source.fetch(FetchRequest(cursor=second.cursor, active_threads=active))
    assert by_id(third)[answer].thread_id == post and by_id(third)[answer].is_brand
    await handle_batch(store, settings, third, clock.now())
    states = {i.message_id: i.state for i in await store.items_between(at(-90), at(30))}
    assert states[stored[ask].id] is ItemState.ANSWERED_IN_TIME
    assert states[stored[other].id] is ItemState.OPEN


async def test_a_deleted_question_under_a_live_root_is_still_dismissed(
    fake: FakeBluesky, http: aiohttp.ClientSession, clock: FakeClock, store: Store
) -> None:
    post = fake.post(BRAND, "#jobsweek opens Monday! Questions?", at=at(-40))
    ask = fake.post("ann.bsky.social", "can I bring my CV on paper?", at=at(-30), reply_to=post)
    other = fake.post("bob.bsky.social", "is there parking?", at=at(-25), reply_to=post)
    source = make_source(fake, http, clock)
    first = await source.fetch(EMPTY)
    await handle_batch(store, SETTINGS, first, NOW)

    fake.delete(ask)
    await clock.advance(180)
    active = await store.active_threads("acme-bsky", active_since=NOW - timedelta(days=14))
    second = await source.fetch(FetchRequest(cursor=first.cursor, active_threads=active))
    await handle_batch(store, SETTINGS, second, clock.now())

    # The root exists, so the thread is read whole and the missing question is deleted.
    assert second.complete_threads[post] == frozenset({post, other})
    assert second.removed == frozenset()
    stored = {s.message.platform_id: s for s in await store.all_messages("acme-bsky")}
    assert stored[ask].message.deleted and not stored[other].message.deleted
    states = {i.message_id: i.state for i in await store.items_between(at(-90), at(30))}
    assert states[stored[ask].id] is ItemState.DISMISSED
    assert states[stored[other].id] is ItemState.OPEN


async def test_author_feeds_read_own_posts_not_reposts_and_page_forward(
    fake: FakeBluesky, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    brand_did = fake.network.account(BRAND).did
    ann = fake.post("ann.bsky.social", "lunch anyone?", at=at(-200))
    fake.repost(BRAND, ann, at=at(-20))
    own = [fake.post(BRAND, f"news {i}", at=at(-100 + 30 * i)) for i in range(3)]
    mod = fake.post("mod.bsky.social", "@bob.bsky.social see you there", at=at(-15), reply_to=ann)
    old = fake.post(BRAND, "last year's news", at=NOW - timedelta(days=8))
    source = make_source(fake, http, clock, page_size=2)

    first = await source.fetch(EMPTY)

    messages = by_id(first)
    assert set(own) | {mod} <= set(messages)
    assert ann not in messages and old not in messages  # a repost is not the brand's post
    assert messages[mod].is_brand and messages[mod].thread_id == ann
    feeds = calls(fake, "app.bsky.feed.getAuthorFeed")
    assert [(f["actor"], f.get("cursor") is not None) for f in feeds] == [
        (brand_did, False),
        (brand_did, True),
        (brand_did, True),
        ("mod.bsky.social", False),
    ]
    assert {f["filter"] for f in feeds} == {"posts_with_replies"}
    assert first.cursor["authors"] == {
        brand_did: "2026-03-09T11:20:00.000Z",
        "mod.bsky.social": "2026-03-09T11:45:00.000Z",
    }

    # The next poll reads each feed back to its newest post less the overlap: the brand's
    # first page holds the repost and news 2, its second starts with the older news 1.
    await clock.advance(120)
    second = await source.fetch(FetchRequest(cursor=first.cursor, active_threads=frozenset()))
    assert len(calls(fake, "app.bsky.feed.getAuthorFeed")) == len(feeds) + 3
    assert second.cursor["authors"] == first.cursor["authors"]


async def test_throttle_on_an_author_feed_keeps_what_was_read_and_the_cursor(
    fake: FakeBluesky, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    brand_did = fake.network.account(BRAND).did
    fake.post(BRAND, "#jobsweek day one", at=at(-30))
    fake.post("mod.bsky.social", "on duty today", at=at(-20))
    source = make_source(fake, http, clock)
    first = await source.fetch(EMPTY)
    saved = dict(first.cursor["authors"])
    assert set(saved) == {brand_did, "mod.bsky.social"}

    await clock.advance(600)
    brand_new = fake.post(BRAND, "day two", at=at(5))
    mod_new = fake.post("mod.bsky.social", "still on duty", at=at(6))
    fake.inject_every(RateLimit(wait_seconds=40), 2, path_contains="getAuthorFeed")
    second = await source.fetch(FetchRequest(cursor=first.cursor, active_threads=frozenset()))

    assert second.interrupted == "rate_limited"
    assert second.wait_seconds == pytest.approx(40, abs=1)
    assert brand_new in by_id(second) and mod_new not in by_id(second)
    # The brand's feed was read whole and moves on; the moderator's keeps its saved time.
    assert second.cursor["authors"] == {
        brand_did: "2026-03-09T12:05:00.000Z",
        **{"mod.bsky.social": saved["mod.bsky.social"]},
    }

    fake.clear_faults()
    third = await source.fetch(FetchRequest(cursor=second.cursor, active_threads=frozenset()))
    assert mod_new in by_id(third)
    assert third.cursor["authors"]["mod.bsky.social"] == "2026-03-09T12:06:00.000Z"


async def test_the_fake_keeps_the_replies_of_a_deleted_root(
    fake: FakeBluesky, http: aiohttp.ClientSession
) -> None:
    root = fake.post(BRAND, "#jobsweek opens Monday!", at=at(-40))
    ask = fake.post("ann.bsky.social", "can I bring my CV?", at=at(-30), reply_to=root)
    fake.delete(root)
    login = {"identifier": BRAND, "password": PASSWORD}
    async with http.post(f"{fake.base_url}/xrpc/com.atproto.server.createSession", json=login) as r:
        token = (await r.json())["accessJwt"]
    auth = {"Authorization": f"Bearer {token}"}
    base = f"{fake.base_url}/xrpc/app.bsky.feed"

    async with http.get(f"{base}.getPostThread", params={"uri": root}, headers=auth) as resp:
        assert resp.status == 400 and (await resp.json())["error"] == "NotFound"
    async with http.get(f"{base}.getPostThread", params={"uri": ask}, headers=auth) as resp:
        thread = (await resp.json())["thread"]
    assert thread["parent"] == {
        "$type": "app.bsky.feed.defs#notFoundPost",
        "uri": root,
        "notFound": True,
    }
    assert thread["post"]["record"]["reply"]["root"]["uri"] == root
    params = {"actor": "ann.bsky.social", "filter": "posts_no_replies"}
    async with http.get(f"{base}.getAuthorFeed", params=params, headers=auth) as resp:
        assert (await resp.json())["feed"] == []
    params["filter"] = "posts_with_replies"
    async with http.get(f"{base}.getAuthorFeed", params=params, headers=auth) as resp:
        (entry,) = (await resp.json())["feed"]
    assert entry["post"]["uri"] == ask
    assert entry["reply"]["root"]["$type"] == "app.bsky.feed.defs#notFoundPost"


async def test_thread_deeper_than_read_is_not_complete(
    fake: FakeBluesky, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    root = fake.post("ann.bsky.social", f"@{BRAND} question", at=at(-50))
    parent = root
    for i in range(4):
        parent = fake.post("bob.bsky.social", f"reply {i}", at=at(-40 + i), reply_to=parent)

    shallow = make_source(fake, http, clock, thread_depth=2)
    batch = await shallow.fetch(
        FetchRequest(cursor={}, active_threads=frozenset({root}), include_feed=False)
    )

    assert len(batch.messages) == 3
    assert batch.complete_threads == {} and batch.deleted_threads == frozenset()


async def test_throttle_mid_poll_keeps_what_was_read(
    fake: FakeBluesky, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    read = fake.post("bob.bsky.social", "#jobsweek day one", at=at(-30))
    fake.post("ann.bsky.social", f"@{BRAND} hi", at=at(-20))
    fake.inject(RateLimit(wait_seconds=45), path_contains="listNotifications")

    batch = await make_source(fake, http, clock).fetch(EMPTY)

    assert [m.platform_id for m in batch.messages] == [read]
    assert batch.interrupted == "rate_limited"
    assert batch.wait_seconds == pytest.approx(45, abs=1)
    assert "#jobsweek" in batch.cursor["search"] and "notifications" not in batch.cursor


async def test_the_fakes_own_window_limit_gives_the_reset_time(
    fake: FakeBluesky, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    fake.rate_limit = 2  # createSession and one search; the notifications are refused
    fake.post("bob.bsky.social", "#jobsweek day one", at=at(-30))

    batch = await make_source(fake, http, clock).fetch(EMPTY)

    assert batch.interrupted == "rate_limited"
    assert batch.wait_seconds == 300 - NOW.timestamp() % 300  # until the window ends
    assert batch.api_usage_ratio == 1.0


async def test_throttle_before_anything_is_read_raises(
    fake: FakeBluesky, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    fake.inject(RateLimit(wait_seconds=30), path_contains="searchPosts")
    with pytest.raises(RateLimited) as caught:
        await make_source(fake, http, clock).fetch(EMPTY)
    assert caught.value.retry_after == pytest.approx(30, abs=1)


async def test_server_error_is_transient(
    fake: FakeBluesky, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    fake.inject(HttpStatus(status=502), path_contains="searchPosts")
    with pytest.raises(TransientError):
        await make_source(fake, http, clock).fetch(EMPTY)


async def test_wrong_password_is_a_clear_auth_error_without_the_password(
    fake: FakeBluesky, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    wrong = "wxyz-wxyz-wxyz-wxyz"
    with pytest.raises(AuthError) as caught:
        await make_source(fake, http, clock, password=wrong).fetch(EMPTY)
    text = str(caught.value)
    assert "Invalid identifier or password" in text and BRAND in text
    assert "app password" in text
    assert wrong not in text and PASSWORD not in text
    assert not any(r.nsid.startswith("app.bsky.") for r in fake.requests)


async def test_no_secret_in_any_error_or_message(
    fake: FakeBluesky,
    http: aiohttp.ClientSession,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake.post("ann.bsky.social", f"@{BRAND} hi #jobsweek", at=at(-20))
    source = make_source(fake, http, clock)
    texts: list[str] = []
    batch = await source.fetch(EMPTY)
    texts += [repr(batch)]
    fake.expire_access_tokens()
    for fault in (RateLimit(wait_seconds=5), HttpStatus(status=500)):
        fake.inject(fault, path_contains="searchPosts")
        try:
            await source.fetch(EMPTY)
        except (RateLimited, TransientError) as err:
            texts.append(f"{err!r} {err} {err.__cause__!r}")
    texts.append(caplog.text)

    secrets = [PASSWORD, *fake.issued_tokens()]
    assert len(secrets) >= 3  # the password, the first pair and the refreshed pair
    assert not [s for s in secrets if any(s in t for t in texts)]


async def test_search_without_a_session_is_refused_by_the_fake(fake: FakeBluesky) -> None:
    async with (
        aiohttp.ClientSession() as client,
        client.get(f"{fake.base_url}/xrpc/app.bsky.feed.searchPosts?q=x") as resp,
    ):
        assert resp.status == 403
        assert (await resp.json())["message"] == "Request forbidden by administrative rules."
