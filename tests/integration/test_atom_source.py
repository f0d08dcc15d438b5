"""PhpbbAtomSource against the fake phpBB board over real loopback HTTP (no mocks)."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import aiohttp
import orjson
import pytest

from monitor.clock import FakeClock
from monitor.config import PhpbbAtomConfig
from monitor.domain import Batch, Message
from monitor.logging import configure_logging
from monitor.simulator.phpbb import (
    CutFeed,
    Delay,
    Disconnect,
    EntityExpansion,
    FakePhpbbBoard,
    Fault,
    HtmlPage,
    HttpStatus,
    MalformedXml,
    Throttle,
    TruncatedBody,
    rate_limited,
)
from monitor.sources.atom import PhpbbAtomSource, html_to_text, parse_feed
from monitor.sources.base import (
    AuthError,
    FatalError,
    FetchRequest,
    RateLimited,
    SourceError,
    TransientError,
)

NOW = datetime(2026, 11, 16, 12, 0, tzinfo=UTC)
FORUM = 2
MOD = "Acme_Support"
EMPTY = FetchRequest(cursor={}, active_threads=frozenset())


@pytest.fixture
async def board() -> AsyncIterator[FakePhpbbBoard]:
    fake = FakePhpbbBoard(now=lambda: NOW)
    fake.add_forum(FORUM, "Support")
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def make_source(
    board: FakePhpbbBoard,
    session: aiohttp.ClientSession,
    *,
    forums: list[int] | None = None,
    topics: list[int] | None = None,
    moderators: list[str] | None = None,
    clock: FakeClock | None = None,
    feed_limit: int | None = 15,
    timeout: float = 2.0,
) -> PhpbbAtomSource:
    config = PhpbbAtomConfig.model_validate(
        {
            "type": "phpbb_atom",
            "name": "acme-board",
            "brand": "acme",
            "base_url": board.base_url,
            "moderators": moderators or ["acme_support"],
            "forums": [FORUM] if forums is None else forums,
            "topics": topics or [],
            "request_timeout": timeout,
            "backfill_days": 7,
        }
    )
    return PhpbbAtomSource(config, session, clock or FakeClock(NOW), feed_limit=feed_limit)


def at(minutes: float) -> datetime:
    """An instant relative to NOW."""
    return NOW + timedelta(minutes=minutes)


def by_id(batch: Batch) -> dict[str, Message]:
    return {message.platform_id: message for message in batch.messages}


def again(batch: Batch, active: set[int] | None = None) -> FetchRequest:
    """The next poll's request: the saved cursor plus the active topics."""
    return FetchRequest(
        cursor=orjson.loads(orjson.dumps(batch.cursor)),  # stored as JSON in between
        active_threads=frozenset(str(t) for t in active or set()),
    )


def statuses(board: FakePhpbbBoard, since: int = 0) -> list[tuple[str, int | None]]:
    return [(r.path.removeprefix("/forum"), r.status) for r in board.requests[since:]]


# --- mapping ------------------------------------------------------------------------------


async def test_maps_entries_to_messages(
    board: FakePhpbbBoard, session: aiohttp.ClientSession
) -> None:
    topic, first = board.add_topic(
        forum_id=FORUM,
        title="Where is my order?",
        author="Tom & Jerry",
        created_at=at(-60),
        text="Ordered last week.\nStill nothing <sigh>",
    )
    answer = board.add_post(topic_id=topic, author=MOD, created_at=at(-35), text="Checking!")
    rich = board.add_post(
        topic_id=topic,
        author=None,  # a guest
        created_at=at(-30),
        text="",
        html_body="<blockquote><div><cite>Acme_Support wrote:</cite>Checking!</div></blockquote>"
        'Thanks <img class="smilies" src="./images/smilies/icon_e_smile.gif" alt=":)">',
    )
    board.edit(first, "Ordered last week, order #123.", edited_at=at(-20))

    batch = await make_source(board, session).fetch(EMPTY)
    messages = by_id(batch)

    assert messages[str(first)] == Message(
        platform_id=str(first),
        thread_id=str(topic),
        parent_id=None,
        author_id=None,
        author_name="Tom & Jerry",  # phpBB prints the stored, HTML-escaped name
        text="Ordered last week, order #123.",
        created_at=at(-60),  # <published>; the edit moved only <updated>
        seq=first,
        is_brand=False,
        permalink=f"{board.base_url}/viewtopic.php?t={topic}&p={first}#p{first}",
    )
    reply = messages[str(answer)]
    assert (reply.is_brand, reply.parent_id, reply.seq, reply.author_name) == (
        True,  # "acme_support" in the config matches "Acme_Support" (phpBB ignores case)
        str(first),
        answer,
        MOD,
    )
    guest = messages[str(rich)]
    assert guest.author_name == "Anonymous"
    assert guest.text == "Acme_Support wrote:\nChecking!\n\nThanks :)"
    assert batch.complete_threads == {str(topic): frozenset({str(first), str(answer), str(rich)})}
    assert batch.deleted_threads == frozenset()
    # The forum feed, the topic it revealed, the new topics (first posts: replies' parent).
    assert batch.requests == 3
    assert statuses(board) == [
        (f"/app.php/feed/forum/{FORUM}", 200),
        (f"/app.php/feed/topic/{topic}", 200),
        ("/app.php/feed/topics", 200),
    ]


async def test_unapproved_posts_stay_out_until_approved(
    board: FakePhpbbBoard, session: aiohttp.ClientSession
) -> None:
    topic, first = board.add_topic(
        forum_id=FORUM, title="Q", author="ann", created_at=at(-30), text="?"
    )
    queued = board.add_post(
        topic_id=topic, author="spammer", created_at=at(-20), text="cheap pills", approved=False
    )
    source = make_source(board, session)
    first_batch = await source.fetch(EMPTY)
    assert set(by_id(first_batch)) == {str(first)}

    board.approve(queued)
    second = await source.fetch(again(first_batch, {topic}))
    assert by_id(second)[str(queued)].created_at == at(-20)  # its post time, not the approval


async def test_backfill_leaves_out_older_posts_but_counts_them_as_existing(
    board: FakePhpbbBoard, session: aiohttp.ClientSession
) -> None:
    topic, old = board.add_topic(
        forum_id=FORUM, title="Old", author="ann", created_at=NOW - timedelta(days=9), text="?"
    )
    new = board.add_post(topic_id=topic, author="bob", created_at=at(-5), text="bump")
    batch = await make_source(board, session).fetch(EMPTY)
    assert set(by_id(batch)) == {str(new)}
    assert batch.complete_threads[str(topic)] == frozenset({str(old), str(new)})
    assert batch.cursor["since"] == (NOW - timedelta(days=7)).isoformat()


async def test_a_board_without_statistics_and_a_junk_cursor(
    session: aiohttp.ClientSession,
) -> None:
    board = FakePhpbbBoard(statistics=False, now=lambda: NOW)
    board.add_forum(FORUM, "Support")
    topic, first = board.add_topic(
        forum_id=FORUM, title="Q", author="ann", created_at=at(-5), text="Plain — text"
    )
    await board.start()
    try:
        junk = {"since": 5, "window": True, "validators": "x", "gone": "12", "new_topics": [[1]]}
        batch = await make_source(board, session).fetch(
            FetchRequest(cursor=junk, active_threads=frozenset({"not-a-topic"}))
        )
        assert by_id(batch)[str(first)].text == "Plain — text"
        assert batch.cursor["window"] == 1 and batch.cursor["gone"] == []
        assert str(topic) in batch.complete_threads  # feed_limit=15 given: 1 < 15
    finally:
        await board.stop()


# --- conditional requests ----------------------------------------------------------------


async def test_an_unchanged_board_answers_304_everywhere(
    board: FakePhpbbBoard, session: aiohttp.ClientSession
) -> None:
    topic, _ = board.add_topic(
        forum_id=FORUM, title="Q", author="ann", created_at=at(-30), text="?"
    )
    listed, _ = board.add_topic(
        forum_id=FORUM, title="FAQ", author=MOD, created_at=at(-90), text="Read me"
    )
    source = make_source(board, session, topics=[listed])
    first = await source.fetch(EMPTY)
    seen = len(board.requests)

    second = await source.fetch(again(first, {topic}))
    assert second.messages == ()
    assert second.complete_threads == {}
    assert statuses(board, seen) == [
        (f"/app.php/feed/forum/{FORUM}", 304),
        (f"/app.php/feed/topic/{topic}", 304),
        (f"/app.php/feed/topic/{listed}", 304),
        ("/app.php/feed/topics", 304),
    ]
    assert all(r.if_none_match for r in board.requests[seen:])
    assert source.not_modified_total == 4
    assert second.cursor == first.cursor

    # A new reply changes the topic feed (and the forum feed) only.
    reply = board.add_post(topic_id=topic, author=MOD, created_at=at(-1), text="Answer")
    seen = len(board.requests)
    third = await source.fetch(again(second, {topic, listed}))
    assert str(reply) in by_id(third)  # with the posts of the re-read feeds
    # The new-topics feed changes too: its statistics count the replies (topic_base.php).
    assert [status for _, status in statuses(board, seen)] == [200, 200, 304, 200]


async def test_without_etag_if_modified_since_is_used_and_a_full_read_follows_later(
    session: aiohttp.ClientSession,
) -> None:
    board = FakePhpbbBoard(etag=False, now=lambda: NOW)
    board.add_forum(FORUM, "Support")
    topic, first = board.add_topic(
        forum_id=FORUM, title="Q", author="ann", created_at=at(-30), text="?"
    )
    spam = board.add_post(topic_id=topic, author="eve", created_at=at(-20), text="spam")
    last = board.add_post(topic_id=topic, author=MOD, created_at=at(-10), text="hi")
    await board.start()
    try:
        clock = FakeClock(NOW)
        source = make_source(board, session, clock=clock)
        first_batch = await source.fetch(EMPTY)
        board.soft_delete(spam)  # an older post: Last-Modified stays the same
        seen = len(board.requests)
        second = await source.fetch(again(first_batch, {topic}))
        sent = board.requests[seen:]
        assert [r.status for r in sent] == [304, 304, 304]
        assert all(r.if_modified_since and r.if_none_match is None for r in sent)
        assert second.complete_threads == {}

        await clock.advance(3601)  # past FULL_READ_AFTER: ask without validators once
        seen = len(board.requests)
        third = await source.fetch(again(second, {topic}))
        assert [r.status for r in board.requests[seen:]] == [200, 200, 200]
        assert third.complete_threads[str(topic)] == frozenset({str(first), str(last)})
    finally:
        await board.stop()


async def test_a_bare_board_without_conditionals_still_works(
    session: aiohttp.ClientSession,
) -> None:
    board = FakePhpbbBoard(etag=False, honour_conditionals=False, now=lambda: NOW)
    board.add_forum(FORUM, "Support")
    topic, first = board.add_topic(
        forum_id=FORUM, title="Q", author="ann", created_at=at(-30), text="?"
    )
    await board.start()
    try:
        source = make_source(board, session)
        batch = await source.fetch(EMPTY)
        batch = await source.fetch(again(batch, {topic}))
        assert set(by_id(batch)) == {str(first)}
        assert [r.status for r in board.requests] == [200] * 6
    finally:
        await board.stop()


# --- completeness, deletions --------------------------------------------------------------


async def test_deleted_post_of_a_short_topic_is_left_out_of_the_complete_thread(
    board: FakePhpbbBoard, session: aiohttp.ClientSession
) -> None:
    topic, first = board.add_topic(
        forum_id=FORUM, title="Q", author="ann", created_at=at(-30), text="?"
    )
    spam = board.add_post(topic_id=topic, author="eve", created_at=at(-20), text="spam")
    gone = board.add_post(topic_id=topic, author="bob", created_at=at(-10), text="oops")
    source = make_source(board, session)
    first_batch = await source.fetch(EMPTY)
    board.soft_delete(spam)
    board.delete(gone)
    second = await source.fetch(again(first_batch, {topic}))
    assert second.complete_threads == {str(topic): frozenset({str(first)})}


async def test_a_topic_longer_than_the_feed_window_is_never_reported_complete(
    board: FakePhpbbBoard, session: aiohttp.ClientSession
) -> None:
    board.feed_limit = 5
    topic, first = board.add_topic(
        forum_id=FORUM, title="Long", author="ann", created_at=at(-100), text="0"
    )
    posts = [first]

    def reply(i: int) -> None:
        posts.append(
            board.add_post(topic_id=topic, author="bob", created_at=at(-100 + i), text="+")
        )

    for i in range(1, 3):
        reply(i)
    source = make_source(board, session, feed_limit=5)
    batch = await source.fetch(EMPTY)
    assert batch.complete_threads[str(topic)] == frozenset(str(p) for p in posts)
    for i in range(3, 5):
        reply(i)
    batch = await source.fetch(again(batch, {topic}))
    # Exactly 5 = the window, but the first post (learned above) is there: still complete.
    assert batch.complete_threads[str(topic)] == frozenset(str(p) for p in posts)
    for i in range(5, 12):
        reply(i)
    batch = await source.fetch(again(batch, {topic}))
    assert str(topic) not in batch.complete_threads
    assert set(by_id(batch)) == {str(p) for p in posts[-5:]}
    # Replies still point at the first post learned earlier (phpBB has no reply-to).
    assert {m.parent_id for m in batch.messages} == {str(first)}


async def test_without_a_known_limit_completeness_waits_for_a_wider_feed(
    board: FakePhpbbBoard, session: aiohttp.ClientSession
) -> None:
    small, small_first = board.add_topic(
        forum_id=FORUM, title="Small", author="ann", created_at=at(-50), text="?"
    )
    big, _ = board.add_topic(
        forum_id=FORUM, title="Big", author="bob", created_at=at(-40), text="!"
    )
    for i in range(3):
        board.add_post(topic_id=big, author="cat", created_at=at(-30 + i), text=f"{i}")
    board.new_topics_feed = False  # no first posts from phpBB: only the window can tell
    source = make_source(board, session, forums=[], topics=[small, big], feed_limit=None)
    batch = await source.fetch(EMPTY)
    # The big topic's 4 entries prove the board shows at least 4: the 1-post topic is whole,
    # the 4-post topic might be cut, so it is not claimed.
    assert batch.complete_threads == {str(small): frozenset({str(small_first)})}
    assert batch.cursor["window"] == 4


async def test_deleted_topic_becomes_a_deleted_thread_and_is_not_asked_again(
    board: FakePhpbbBoard, session: aiohttp.ClientSession
) -> None:
    kept, _ = board.add_topic(forum_id=FORUM, title="K", author="ann", created_at=at(-9), text="k")
    doomed, _ = board.add_topic(
        forum_id=FORUM, title="D", author="bob", created_at=at(-5), text="d"
    )
    source = make_source(board, session)
    first = await source.fetch(EMPTY)
    board.delete_topic(doomed)
    second = await source.fetch(again(first, {kept, doomed}))
    assert second.deleted_threads == frozenset({str(doomed)})
    assert second.cursor["gone"] == [doomed]
    seen = len(board.requests)
    third = await source.fetch(again(second, {kept, doomed}))
    assert third.deleted_threads == frozenset()
    assert f"/app.php/feed/topic/{doomed}" not in [path for path, _ in statuses(board, seen)]


async def test_soft_deleted_topic_is_skipped_as_forbidden_until_restored(
    board: FakePhpbbBoard, session: aiohttp.ClientSession
) -> None:
    topic, first = board.add_topic(
        forum_id=FORUM, title="Q", author="ann", created_at=at(-9), text="?"
    )
    other, _ = board.add_topic(forum_id=FORUM, title="O", author="bob", created_at=at(-5), text="o")
    source = make_source(board, session, forums=[])  # topic feeds only
    first_batch = await source.fetch(
        FetchRequest(cursor={}, active_threads=frozenset({str(topic), str(other)}))
    )
    board.soft_delete_topic(topic)
    hidden = await source.fetch(again(first_batch, {topic, other}))
    # 403 while the board answers: out of guests' sight, which is not deleted.
    assert hidden.deleted_threads == frozenset()
    assert [(k, s.reason) for k, s in hidden.skipped.items()] == [(str(topic), "forbidden")]
    assert "gone" not in hidden.cursor or topic not in hidden.cursor["gone"]
    board.restore_topic(topic)
    back = await source.fetch(again(hidden, {topic, other}))
    assert str(first) in by_id(back)


async def test_only_topic_feeds_all_404_asks_the_board_feed_then_reports_deletion(
    board: FakePhpbbBoard, session: aiohttp.ClientSession
) -> None:
    topic, _ = board.add_topic(forum_id=FORUM, title="Q", author="ann", created_at=at(-9), text="?")
    source = make_source(board, session, forums=[])
    board.delete_topic(topic)
    board.new_topics_feed = False
    batch = await source.fetch(FetchRequest(cursor={}, active_threads=frozenset({str(topic)})))
    assert batch.deleted_threads == frozenset({str(topic)})
    assert statuses(board) == [
        (f"/app.php/feed/topic/{topic}", 404),
        ("/app.php/feed/topics", 404),  # disabled: it cannot vouch for the board
        ("/app.php/feed", 200),
    ]


async def test_feeds_disabled_is_fatal_not_a_mass_deletion(
    board: FakePhpbbBoard, session: aiohttp.ClientSession
) -> None:
    topic, _ = board.add_topic(forum_id=FORUM, title="Q", author="ann", created_at=at(-9), text="?")
    board.feeds_enabled = False
    source = make_source(board, session, forums=[])
    with pytest.raises(FatalError, match="feeds disabled"):
        await source.fetch(FetchRequest(cursor={}, active_threads=frozenset({str(topic)})))


async def test_pre_breach_reread_ignores_validators_and_keeps_the_cursor(
    board: FakePhpbbBoard, session: aiohttp.ClientSession
) -> None:
    topic, _ = board.add_topic(forum_id=FORUM, title="Q", author="ann", created_at=at(-9), text="?")
    source = make_source(board, session)
    first = await source.fetch(EMPTY)
    answer = board.add_post(topic_id=topic, author=MOD, created_at=at(-1), text="Answer")
    seen = len(board.requests)
    cursor = orjson.loads(orjson.dumps(first.cursor))
    batch = await source.fetch(
        FetchRequest(cursor=cursor, active_threads=frozenset({str(topic)}), include_feed=False)
    )
    assert str(answer) in by_id(batch)
    assert batch.cursor == cursor
    sent = board.requests[seen:]
    assert [(r.path.endswith(f"/topic/{topic}"), r.if_none_match) for r in sent] == [(True, None)]


# --- boards that link posts without the topic id --------------------------------------------


async def test_post_only_links_resolve_topics_once(session: aiohttp.ClientSession) -> None:
    board = FakePhpbbBoard(link_style="post_only", now=lambda: NOW)
    board.add_forum(FORUM, "Support")
    known, _ = board.add_topic(
        forum_id=FORUM, title="K", author="ann", created_at=at(-50), text="k"
    )
    await board.start()
    try:
        source = make_source(board, session, forums=[FORUM], topics=[known])
        first = await source.fetch(EMPTY)
        assert [path for path, _ in statuses(board)] == [
            f"/app.php/feed/forum/{FORUM}",
            f"/app.php/feed/topic/{known}",  # known: the topic feed names the post's topic
            "/app.php/feed/topics",
        ]
        fresh, post = board.add_topic(
            forum_id=FORUM, title="New", author="bob", created_at=at(-5), text="new?"
        )
        seen = len(board.requests)
        second = await source.fetch(again(first, {known}))
        assert by_id(second)[str(post)].thread_id == str(fresh)
        assert [path for path, _ in statuses(board, seen)] == [
            f"/app.php/feed/forum/{FORUM}",
            f"/app.php/feed/topic/{known}",
            "/viewtopic.php",  # the canonical link tells the topic of a post of a new topic
            f"/app.php/feed/topic/{fresh}",
            "/app.php/feed/topics",
        ]
        board.add_post(topic_id=fresh, author="cat", created_at=at(-1), text="same")
        seen = len(board.requests)
        await source.fetch(again(second, {known, fresh}))
        assert "/viewtopic.php" not in [path for path, _ in statuses(board, seen)]
    finally:
        await board.stop()


async def test_a_throttled_look_up_is_resumed_with_the_topics_it_leads_to(
    session: aiohttp.ClientSession,
) -> None:
    board = FakePhpbbBoard(link_style="post_only", now=lambda: NOW)
    board.add_forum(FORUM, "Support")
    topics = [
        board.add_topic(
            forum_id=FORUM, title=f"T{n}", author="ann", created_at=at(-9 + n), text="?"
        )
        for n in range(3)
    ]
    await board.start()
    try:
        clock = FakeClock(NOW)
        source = make_source(board, session, forums=[FORUM], clock=clock)
        board.inject(Throttle(status=429, wait_seconds=30), path_contains="/viewtopic.php")
        stopped = await source.fetch(EMPTY)
        assert stopped.interrupted == "rate_limited" and stopped.wait_seconds == 30
        assert stopped.messages == ()  # no topic read whole yet
        resume = stopped.cursor["resume"]
        assert resume["forums"] == [] and resume["new_topics"] is True
        assert resume["lookups"] == sorted(post for _, post in topics)
        seen = len(board.requests)
        await clock.advance(30)  # as the coordinator waits
        finished = await source.fetch(again(stopped))
        assert finished.interrupted is None and "resume" not in finished.cursor
        assert {m.platform_id: m.thread_id for m in finished.messages} == {
            str(post): str(topic) for topic, post in topics
        }
        # The refused look-up and the rest, then the topics found: no forum feed again.
        paths = [path for path, _ in statuses(board, seen)]
        assert paths == ["/viewtopic.php"] * 3 + [
            f"/app.php/feed/topic/{topic}" for topic, _ in topics
        ] + ["/app.php/feed/topics"]
    finally:
        await board.stop()


# --- moderators -----------------------------------------------------------------------------


async def test_moderator_ids_and_groups_are_ignored_with_one_warning(
    board: FakePhpbbBoard, session: aiohttp.ClientSession
) -> None:
    logs = io.StringIO()
    configure_logging(level="debug", fmt="json", stream=logs)
    topic, _ = board.add_topic(forum_id=FORUM, title="Q", author="ann", created_at=at(-9), text="?")
    board.add_post(topic_id=topic, author="Staffer", created_at=at(-5), text="hi")
    source = make_source(board, session, moderators=["id:54", "group:staff", "nobody"])
    batch = await source.fetch(EMPTY)
    await source.fetch(again(batch, {topic}))
    assert not any(m.is_brand for m in batch.messages)
    warnings = [
        line
        for line in map(orjson.loads, logs.getvalue().splitlines())
        if "moderator ids and groups are ignored" in line["event"]
    ]
    assert len(warnings) == 1
    assert warnings[0]["ignored"] == ["id:54", "group:staff"]


# --- errors -----------------------------------------------------------------------------------


async def fetch_error(source: PhpbbAtomSource, request: FetchRequest = EMPTY) -> SourceError:
    with pytest.raises(SourceError) as caught:
        await source.fetch(request)
    return caught.value


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (HttpStatus(status=500), "server error HTTP 500"),
        (HttpStatus(status=502), "server error HTTP 502"),
        (rate_limited(status=503, retry_after=""), "server error HTTP 503"),
        (MalformedXml(), "not well-formed XML"),
        (TruncatedBody(), "truncated"),
        (CutFeed(), "not well-formed XML"),
        (HtmlPage(), "DOCTYPE"),
        (EntityExpansion(), "DOCTYPE/ENTITY"),
        (Disconnect(), "request failed"),
        (Delay(seconds=5), "timed out"),
    ],
)
async def test_transient_failures(
    board: FakePhpbbBoard, session: aiohttp.ClientSession, fault: Fault, expected: str
) -> None:
    board.add_topic(forum_id=FORUM, title="Q", author="ann", created_at=at(-9), text="?")
    board.inject(fault)
    error = await fetch_error(make_source(board, session, timeout=0.3))
    assert type(error) is TransientError
    assert expected in str(error)


async def test_a_failing_topic_feed_interrupts_the_poll_and_the_next_fetch_finishes_it(
    board: FakePhpbbBoard, session: aiohttp.ClientSession
) -> None:
    topic, first = board.add_topic(
        forum_id=FORUM, title="Q", author="ann", created_at=at(-9), text="?"
    )
    source = make_source(board, session)
    board.inject(CutFeed(), path_contains="/topic/")
    stopped = await source.fetch(EMPTY)
    # The forum feed was read: kept (its validators too), the topic is what is left.
    assert stopped.interrupted == "transient" and stopped.messages == ()
    assert stopped.cursor["resume"]["topics"] == [topic]
    assert stopped.cursor["resume"]["failed"] == topic
    assert "forum/2" in stopped.cursor["validators"]
    seen = len(board.requests)
    finished = await source.fetch(again(stopped))
    assert finished.interrupted is None and str(first) in by_id(finished)
    assert "resume" not in finished.cursor
    # Only what was left: the topic feed and the "new topics" feed, not the forum feed again.
    assert statuses(board, seen) == [
        (f"/app.php/feed/topic/{topic}", 200),
        ("/app.php/feed/topics", 200),
    ]


@pytest.mark.parametrize("status", [401, 403])
async def test_a_board_that_blocks_us_is_an_auth_error(
    board: FakePhpbbBoard, session: aiohttp.ClientSession, status: int
) -> None:
    board.inject(HttpStatus(status=status, body="<h1>Banned</h1>"), times=None)
    error = await fetch_error(make_source(board, session))
    assert type(error) is AuthError
    # Topic feeds only: every feed refuses, so no topic is taken for deleted.
    topic_only = make_source(board, session, forums=[])
    active = FetchRequest(cursor={}, active_threads=frozenset({"101"}))
    assert type(await fetch_error(topic_only, active)) is AuthError


async def test_missing_forum_is_fatal(
    board: FakePhpbbBoard, session: aiohttp.ClientSession
) -> None:
    error = await fetch_error(make_source(board, session, forums=[99]))
    assert type(error) is FatalError
    assert "forum feed 99" in str(error)


async def test_429_retry_after_is_honoured_without_asking_again(
    board: FakePhpbbBoard, session: aiohttp.ClientSession
) -> None:
    clock = FakeClock(NOW)
    source = make_source(board, session, clock=clock)
    board.inject(rate_limited(429, "120"), times=None)
    error = await fetch_error(source)
    assert isinstance(error, RateLimited) and error.retry_after == 120
    assert len(board.requests) == 1
    await clock.advance(60)
    error = await fetch_error(source)  # still inside the window: not even one request
    assert isinstance(error, RateLimited) and error.retry_after == 60
    assert len(board.requests) == 1
    board.clear_faults()
    await clock.advance(61)
    await source.fetch(EMPTY)
    assert len(board.requests) == 3


async def test_503_with_an_http_date_retry_after_is_a_rate_limit(
    board: FakePhpbbBoard, session: aiohttp.ClientSession
) -> None:
    when = format_datetime(NOW + timedelta(minutes=5), usegmt=True)
    board.inject(rate_limited(503, when))
    error = await fetch_error(make_source(board, session))
    assert isinstance(error, RateLimited) and error.retry_after == 300


async def test_topic_feeds_are_read_with_bounded_concurrency(
    board: FakePhpbbBoard, session: aiohttp.ClientSession
) -> None:
    topics = [
        board.add_topic(forum_id=FORUM, title=f"T{i}", author="ann", created_at=at(-i), text="?")[0]
        for i in range(10)
    ]
    board.delay_path("/topic/", 0.05)
    batch = await make_source(board, session, forums=[], topics=topics).fetch(EMPTY)
    assert len(batch.complete_threads) == 10
    assert 2 <= board.peak_concurrency <= 4


async def test_throttled_topic_feed_stops_the_poll_early(
    board: FakePhpbbBoard, session: aiohttp.ClientSession
) -> None:
    topics = [
        board.add_topic(forum_id=FORUM, title=f"T{i}", author="ann", created_at=at(-i), text="?")[0]
        for i in range(12)
    ]
    board.inject(rate_limited(429, "30"), times=None, path_contains="/topic/")
    source = make_source(board, session, forums=[], topics=topics)
    assert isinstance(await fetch_error(source), RateLimited)
    assert len(board.requests) <= 4  # at most one round of concurrent requests


# --- parsing helpers and the simulator's wire format -------------------------------------------

# A slice of a real phpBB 3.0 topic feed (coddec/Classic-Shell,
# www.classicshell.net/forum/feed*.php): offset -07:00, statistics footer, smilie <img>.
REAL_FEED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en-gb">\n'
    b'<link rel="self" type="application/atom+xml"'
    b' href="http://www.classicshell.net/forum/feed.php?f=7&amp;t=1404" />\n'
    b"<title>Classic Shell</title>\n"
    b"<updated>2013-10-14T11:45:02-07:00</updated>\n"
    b"<author><name><![CDATA[Classic Shell]]></name></author>\n"
    b"<id>http://www.classicshell.net/forum/feed.php?f=7&amp;t=1404</id>\n"
    b"<entry>\n"
    b"<author><name><![CDATA[MainTrane]]></name></author>\n"
    b"<updated>2013-10-12T10:55:02-07:00</updated>\n"
    b"<published>2013-10-12T10:55:02-07:00</published>\n"
    b"<id>http://www.classicshell.net/forum/viewtopic.php?t=1404&amp;p=7248#p7248</id>\n"
    b'<link href="http://www.classicshell.net/forum/viewtopic.php?t=1404&amp;p=7248#p7248"/>\n'
    b"<title type=\"html\"><![CDATA[Persistent 'remove from this list']]></title>\n"
    b'<content type="html"'
    b' xml:base="http://www.classicshell.net/forum/viewtopic.php?t=1404&amp;p=7248#p7248">'
    b"<![CDATA[\nItems constantly reappear"
    b' <img src="http://www.classicshell.net/forum/images/smilies/icon_e_surprised.gif"'
    b' alt=":o" title="Surprised" /> .<br /><br />- jermain<p>Statistics: Posted by'
    b' <a href="http://www.classicshell.net/forum/memberlist.php?mode=viewprofile&amp;u=1804">'
    b"MainTrane</a> \xe2\x80\x94 Sat Oct 12, 2013 10:55 am</p><hr />\n]]></content>\n"
    b"</entry>\n"
    b"</feed>"
)


def test_parses_a_real_phpbb_feed() -> None:
    (entry,) = parse_feed(REAL_FEED)
    assert (entry.post_id, entry.topic_id, entry.author) == (7248, 1404, "MainTrane")
    assert entry.published == datetime(2013, 10, 12, 17, 55, 2, tzinfo=UTC)
    assert html_to_text(entry.html) == "Items constantly reappear :o .\n\n- jermain"


def test_parse_feed_rejects_what_is_not_a_feed() -> None:
    for body, message in [
        (b'<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY a "b">]><feed/>', "DOCTYPE"),
        (b"<!-- hi -->\n<!doctype html><html></html>", "DOCTYPE"),
        (b"<rss><channel/></rss>", "not an Atom feed"),
        (REAL_FEED[: len(REAL_FEED) // 2], "not well-formed"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_feed(body)


def test_html_to_text_drops_the_statistics_footer_only() -> None:
    assert html_to_text("Line one<br>Line two<hr />") == "Line one\nLine two"
    assert html_to_text("Wait — what?<p>Statistics: Posted by Guest — Sun</p><hr />") == (
        "Wait — what?"
    )
    assert html_to_text("<b>x</b> &amp; <script>alert(1)</script>y") == "x & y"


async def test_simulator_follows_phpbbs_template_and_headers(
    board: FakePhpbbBoard, session: aiohttp.ClientSession
) -> None:
    topic, first = board.add_topic(
        forum_id=FORUM, title="Q", author="ann", created_at=at(-60), text="a\nb"
    )
    board.edit(first, "a\nb!", edited_at=at(-30))
    async with session.get(f"{board.base_url}/app.php/feed/topic/{topic}") as response:
        body = await response.text()
        assert response.headers["Content-Type"] == "application/atom+xml; charset=UTF-8"
        assert response.headers["Last-Modified"] == "Mon, 16 Nov 2026 11:30:00 GMT"
        assert response.headers["ETag"].startswith('"')
    assert "<updated>2026-11-16T12:30:00+01:00 </updated>" in body  # the template's stray space
    assert "<published>2026-11-16T12:00:00+01:00</published>" in body
    assert "a<br>b!<p>Statistics: Posted by <a href=" in body
    assert "<category" not in body  # only feeds with a forum name have one
    async with session.get(f"{board.base_url}/app.php/feed/forum/{FORUM}") as response:
        assert '<category term="Support"' in await response.text()
    async with session.get(f"{board.base_url}/feed.php", params={"t": str(topic)}) as response:
        assert response.status == 200
        assert response.history[0].status == 301
        assert str(response.url).endswith(f"/app.php/feed/topic/{topic}")
    empty = FakePhpbbBoard(now=lambda: NOW)
    empty.add_forum(9, "Empty")
    await empty.start()
    try:
        async with session.get(f"{empty.base_url}/app.php/feed/forum/9") as response:
            # phpBB: no entries -> "sending the current time is better than sending no time".
            assert response.headers["Last-Modified"] == format_datetime(NOW, usegmt=True)
    finally:
        await empty.stop()


async def test_simulator_stop_cuts_held_requests_short(session: aiohttp.ClientSession) -> None:
    board = FakePhpbbBoard()
    board.add_forum(FORUM, "Support")
    await board.start()
    board.hold("/feed")
    task = asyncio.create_task(session.get(f"{board.base_url}/app.php/feed/forum/{FORUM}"))
    async with asyncio.timeout(5):
        while not board.requests:  # noqa: ASYNC110 - the fake has no "request seen" event
            await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await board.stop()
    with contextlib.suppress(aiohttp.ClientError):
        response: Any = await asyncio.wait_for(task, timeout=5)
        response.release()
    assert loop.time() - started < 5
