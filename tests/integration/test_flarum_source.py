"""FlarumSource against the fake Flarum over real loopback HTTP (no mocks)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from monitor.clock import FakeClock
from monitor.config import FlarumConfig
from monitor.domain import Batch, Message
from monitor.simulator.flarum import (
    ADMIN_USER,
    MOD_GROUP,
    Delay,
    Disconnect,
    FakeFlarum,
    Fault,
    FlarumError,
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
from monitor.sources.flarum import (
    FlarumSource,
    Moderators,
    html_to_text,
    mentioned_post_id,
    parse_flarum_time,
)

KEY = "flarum-test-key-0123456789abcdefghijklmnop"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
EMPTY = FetchRequest(cursor={}, active_threads=frozenset())


@pytest.fixture
async def forum() -> AsyncIterator[FakeFlarum]:
    fake = FakeFlarum(api_key=KEY)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def make_source(
    forum: FakeFlarum,
    session: aiohttp.ClientSession,
    *,
    key: str | None = KEY,
    user_id: int | None = ADMIN_USER,
    moderators: list[str] | None = None,
    tags: list[str] | None = None,
    page_size: int = 50,
    timeout: float = 2.0,
    base_url: str | None = None,
) -> FlarumSource:
    settings: dict[str, Any] = {
        "type": "flarum",
        "name": "acme-forum",
        "brand": "acme",
        "base_url": base_url or forum.base_url,
        "moderators": moderators or ["support_sam", "group:staff"],
        "tags": tags or [],
        "request_timeout": timeout,
        "backfill_days": 7,
    }
    if key is not None:
        settings["api_key"] = key
    if user_id is not None:
        settings["user_id"] = user_id
    config = FlarumConfig.model_validate(settings)
    return FlarumSource(config, session, FakeClock(NOW), page_size=page_size)


def at(minutes: float) -> datetime:
    """An instant relative to NOW."""
    return NOW + timedelta(minutes=minutes)


def by_id(batch: Batch) -> dict[str, Message]:
    return {message.platform_id: message for message in batch.messages}


def start(
    forum: FakeFlarum, title: str, author: int, minutes: float, tags: tuple[int, ...] = ()
) -> int:
    """Open a discussion `minutes` from NOW; returns its id."""
    return forum.add_discussion(
        title=title, author=author, created_at=at(minutes), content="?", tags=tags
    )[0]


def paths(forum: FakeFlarum, path: str) -> list[dict[str, str]]:
    return [r.query for r in forum.requests if r.path == path]


class People:
    """The users of most tests: two consumers, a moderator by username and one by group."""

    def __init__(self, forum: FakeFlarum) -> None:
        self.ann = forum.add_user("ann", display_name="Ann Consumer")
        self.bob = forum.add_user("bob")
        self.sam = forum.add_user("support_sam", display_name="Sam (Acme)")
        self.mia = forum.add_user("mia", groups=[MOD_GROUP])


# --- mapping --------------------------------------------------------------------------------


async def test_maps_posts_authors_and_leaves_event_posts_out(
    forum: FakeFlarum, session: aiohttp.ClientSession
) -> None:
    people = People(forum)
    did, first = forum.add_discussion(
        title="Do you ship to Belgium?", author=people.ann, created_at=at(-60), content="Hi!"
    )
    renamed = forum.rename(did, "Shipping to Belgium", at=at(-55))
    answer = forum.add_post(did, author=people.sam, created_at=at(-50), content="Yes we do")
    staff = forum.add_post(did, author=people.mia, created_at=at(-40), content="And to NL")
    locked = forum.event_post(
        did, type="discussionLocked", content={"locked": True}, created_at=at(-30)
    )

    batch = await make_source(forum, session).fetch(EMPTY)
    messages = by_id(batch)

    assert messages[str(first)] == Message(
        platform_id=str(first),
        thread_id=str(did),
        parent_id=None,
        author_id=str(people.ann),
        author_name="ann",
        text="Hi!",
        created_at=datetime(2026, 11, 22, 11, 0, tzinfo=UTC),
        seq=1,
        is_brand=False,
        hidden=False,
        permalink=f"{forum.base_url}/d/{did}-shipping-to-belgium/1",
    )
    reply = messages[str(answer)]
    assert (reply.parent_id, reply.seq, reply.is_brand, reply.author_name) == (
        str(first),
        3,  # the rename event took number 2
        True,  # by username
        "support_sam",
    )
    assert messages[str(staff)].is_brand is True  # Mods group, via "group:staff"
    # Event posts are neither items nor responses: not in the batch at all...
    assert str(renamed) not in messages and str(locked) not in messages
    assert len(batch.messages) == 3
    # ...but they exist, so the complete set may name them (they are never stored).
    assert batch.complete_threads == {
        str(did): frozenset(str(p) for p in (first, renamed, answer, staff, locked))
    }
    assert batch.deleted_threads == frozenset()
    assert batch.cursor == {
        "last_posted_at": "2026-11-22T11:20:00+00:00",  # the last comment, not the lock event
        "horizon": (NOW - timedelta(days=7)).isoformat(),
    }
    assert batch.requests == 3  # identity check, one discussions page, one discussion
    listing = paths(forum, "/api/discussions")[0]
    assert listing["sort"] == "-lastPostedAt"
    assert "filter[tag]" not in listing
    assert all(r.authorized for r in forum.requests)


async def test_mentions_give_the_parent_and_plain_replies_answer_the_first_post(
    forum: FakeFlarum, session: aiohttp.ClientSession
) -> None:
    people = People(forum)
    did, first = forum.add_discussion(
        title="Order", author=people.ann, created_at=at(-60), content="Where is it?"
    )
    question = forum.add_post(did, author=people.bob, created_at=at(-50), content="Mine too")
    direct = forum.add_post(
        did, author=people.sam, created_at=at(-40), content="Checking", reply_to=question
    )
    other, elsewhere = forum.add_discussion(
        title="Other", author=people.bob, created_at=at(-35), content="x"
    )
    cross = forum.add_post(
        did, author=people.ann, created_at=at(-30), content="see there", reply_to=elsewhere
    )
    gone = forum.add_post(did, author=people.bob, created_at=at(-25), content="oops")
    to_gone = forum.add_post(
        did, author=people.sam, created_at=at(-20), content="answer", reply_to=gone
    )
    forum.delete(gone)

    messages = by_id(await make_source(forum, session).fetch(EMPTY))

    assert messages[str(question)].parent_id == str(first)
    assert messages[str(direct)].parent_id == str(question)
    assert messages[str(direct)].text == "bob Checking"  # the mention renders the name
    assert messages[str(cross)].parent_id == str(first)  # a post of another discussion
    # The mentioned post is gone (rendered as a PostMention--deleted span): the topic.
    assert messages[str(to_gone)].parent_id == str(first)
    assert messages[str(elsewhere)].thread_id == str(other)


async def test_long_discussion_is_read_in_pages_following_links_next(
    forum: FakeFlarum, session: aiohttp.ClientSession
) -> None:
    people = People(forum)
    did, first = forum.add_discussion(
        title="Long", author=people.ann, created_at=at(-300), content="start"
    )
    posts = [
        forum.add_post(did, author=people.bob, created_at=at(-299 + i), content=f"#{i}")
        for i in range(119)
    ]

    batch = await make_source(forum, session, page_size=50).fetch(EMPTY)

    assert set(by_id(batch)) == {str(first), *(str(p) for p in posts)}
    assert sorted(m.seq for m in batch.messages) == list(range(1, 121))
    assert batch.complete_threads[str(did)] == frozenset(by_id(batch))
    # 50 posts with the discussion, then /api/posts at offset 50 and its links.next (100).
    post_pages = paths(forum, "/api/posts")
    assert [q.get("page[offset]") for q in post_pages] == ["50", "100"]
    assert post_pages[0]["filter[discussion]"] == str(did)
    assert post_pages[0]["sort"] == "number"
    assert batch.requests == 1 + 1 + 1 + 2


async def test_discussion_listing_stops_at_the_cursor(
    forum: FakeFlarum, session: aiohttp.ClientSession
) -> None:
    people = People(forum)
    ids = [start(forum, f"d{i}", people.ann, -70 + 10 * i) for i in range(7)]
    source = make_source(forum, session, page_size=2)
    first = await source.fetch(EMPTY)
    assert set(first.complete_threads) == {str(i) for i in ids}
    assert len(paths(forum, "/api/discussions")) == 4  # 2 + 2 + 2 + 1

    forum.requests.clear()
    forum.add_post(ids[1], author=people.bob, created_at=at(1), content="bump")
    second = await source.fetch(FetchRequest(cursor=first.cursor, active_threads=frozenset()))
    # The bumped discussion and the newest one (posted at the cursor instant) are read; the
    # second page reaches older discussions, so no third page is asked for.
    assert set(second.complete_threads) == {str(ids[1]), str(ids[6])}
    assert len(paths(forum, "/api/discussions")) == 2
    assert second.cursor["last_posted_at"] == at(1).isoformat()


async def test_links_are_rebased_on_the_configured_url(
    session: aiohttp.ClientSession,
) -> None:
    # Flarum builds links from its own configured URL, here one we cannot (and must not) reach.
    forum = FakeFlarum(api_key=KEY, public_url="https://forum.example.invalid")
    await forum.start()
    try:
        people = People(forum)
        did, _ = forum.add_discussion(
            title="t", author=people.ann, created_at=at(-100), content="a"
        )
        for i in range(6):
            forum.add_post(did, author=people.bob, created_at=at(-90 + i), content=str(i))
        for i in range(4):
            start(forum, f"x{i}", people.bob, -80 + i)
        batch = await make_source(forum, session, page_size=2).fetch(EMPTY)
    finally:
        await forum.stop()
    assert len(by_id(batch)) == 1 + 6 + 4
    assert any(q.get("page[offset]") == "4" for q in paths(forum, "/api/discussions"))
    assert any(q.get("page[offset]") == "4" for q in paths(forum, "/api/posts"))


async def test_tags_filter_the_listing(forum: FakeFlarum, session: aiohttp.ClientSession) -> None:
    people = People(forum)
    support, billing = forum.add_tag("support"), forum.add_tag("billing")
    offtopic = forum.add_tag("offtopic")
    wanted = [
        start(forum, "s", people.ann, -30, (support,)),
        start(forum, "b", people.ann, -20, (billing,)),
    ]
    forum.add_discussion(
        title="o", author=people.bob, created_at=at(-10), content="!", tags=[offtopic]
    )

    batch = await make_source(forum, session, tags=["support", "billing"]).fetch(EMPTY)

    assert set(batch.complete_threads) == {str(d) for d in wanted}
    assert paths(forum, "/api/discussions")[0]["filter[tag]"] == "support,billing"


@pytest.mark.parametrize(
    ("moderators", "brand"),
    [
        (["support_sam"], {"support_sam"}),
        (["SUPPORT_SAM"], {"support_sam"}),  # Flarum usernames are case-insensitive
        (["id:{sam}"], {"support_sam"}),
        (["group:Support"], {"sue"}),  # a custom group, by its singular name
        (["group:supporters"], {"sue"}),  # ... or its plural name
        (["group:{support}"], {"sue"}),  # ... or its id
        (["group:staff"], {"mia", "admin"}),  # Mods (4) and Admins (1)
        (["group:mods"], {"mia"}),
        (["ann"], {"ann"}),
    ],
)
async def test_moderators_by_username_id_group_and_staff(
    forum: FakeFlarum, session: aiohttp.ClientSession, moderators: list[str], brand: set[str]
) -> None:
    people = People(forum)
    support = forum.add_group("Support", "Supporters")
    sue = forum.add_user("sue", groups=[support])
    did, _ = forum.add_discussion(title="q", author=people.ann, created_at=at(-60), content="?")
    for minute, author in enumerate((people.sam, sue, people.mia, ADMIN_USER, people.bob)):
        forum.add_post(did, author=author, created_at=at(-50 + minute), content="a")
    entries = [m.format(sam=people.sam, support=support) for m in moderators]

    batch = await make_source(forum, session, moderators=entries).fetch(EMPTY)

    assert {m.author_name for m in batch.messages if m.is_brand} == brand


async def test_deleted_user_is_an_anonymous_consumer(
    forum: FakeFlarum, session: aiohttp.ClientSession
) -> None:
    people = People(forum)
    _, first = forum.add_discussion(title="q", author=people.bob, created_at=at(-60), content="?")
    forum.delete_user(people.bob)
    message = by_id(await make_source(forum, session).fetch(EMPTY))[str(first)]
    assert (message.author_id, message.author_name, message.is_brand) == (None, None, False)


async def test_hidden_posts_and_hidden_discussions_are_flagged(
    forum: FakeFlarum, session: aiohttp.ClientSession
) -> None:
    people = People(forum)
    did, first = forum.add_discussion(title="q", author=people.ann, created_at=at(-60), content="?")
    spam = forum.add_post(did, author=people.bob, created_at=at(-50), content="buy pills")
    forum.hide(spam, at=at(-45))
    other, opener = forum.add_discussion(
        title="r", author=people.bob, created_at=at(-40), content="!"
    )
    source = make_source(forum, session)

    first_batch = by_id(await source.fetch(EMPTY))
    assert first_batch[str(spam)].hidden is True
    assert first_batch[str(first)].hidden is False
    assert first_batch[str(opener)].hidden is False

    forum.unhide(spam)
    forum.hide_discussion(other, at=at(-1))
    active = FetchRequest(cursor={}, active_threads=frozenset({str(did), str(other)}))
    second = by_id(await source.fetch(active))
    assert second[str(spam)].hidden is False
    assert second[str(opener)].hidden is True  # the whole discussion is hidden


async def test_deleted_posts_and_discussions(
    forum: FakeFlarum, session: aiohttp.ClientSession
) -> None:
    people = People(forum)
    did, first = forum.add_discussion(title="q", author=people.ann, created_at=at(-60), content="?")
    doomed = forum.add_post(did, author=people.bob, created_at=at(-50), content="oops")
    kept = forum.add_post(did, author=people.sam, created_at=at(-40), content="a")
    gone, _ = forum.add_discussion(title="r", author=people.bob, created_at=at(-30), content="!")
    source = make_source(forum, session)
    first_batch = await source.fetch(EMPTY)
    assert str(doomed) in by_id(first_batch)

    forum.delete(doomed)
    forum.delete_discussion(gone)
    active = frozenset({str(did), str(gone)})
    second = await source.fetch(FetchRequest(cursor=first_batch.cursor, active_threads=active))
    assert second.complete_threads == {str(did): frozenset({str(first), str(kept)})}
    assert second.deleted_threads == frozenset({str(gone)})


async def test_an_edit_changes_the_text_but_not_created_at(
    forum: FakeFlarum, session: aiohttp.ClientSession
) -> None:
    people = People(forum)
    did, first = forum.add_discussion(
        title="q", author=people.ann, created_at=at(-60), content="Do you ship?"
    )
    reply = forum.add_post(
        did, author=people.bob, created_at=at(-50), content="me too", reply_to=first
    )
    source = make_source(forum, session)
    before = by_id(await source.fetch(EMPTY))
    forum.edit(first, "Do you ship to Belgium?", at=at(-1))
    forum.edit(reply, "me too, to NL", at=at(-1))
    after = by_id(await source.fetch(FetchRequest(cursor={}, active_threads=frozenset())))
    assert after[str(first)].text == "Do you ship to Belgium?"
    assert after[str(first)].created_at == before[str(first)].created_at
    assert after[str(reply)].parent_id == str(first)  # still a reply after the edit


async def test_active_threads_and_a_thread_only_refetch(
    forum: FakeFlarum, session: aiohttp.ClientSession
) -> None:
    people = People(forum)
    old = start(forum, "old", people.ann, -600)
    forum.add_discussion(title="new", author=people.bob, created_at=at(-60), content="!")
    source = make_source(forum, session)
    first = await source.fetch(EMPTY)

    forum.requests.clear()
    refetch = FetchRequest(
        cursor=first.cursor, active_threads=frozenset({str(old)}), include_feed=False
    )
    again = await source.fetch(refetch)
    assert again.cursor == first.cursor  # left as it was
    assert set(again.complete_threads) == {str(old)}
    assert paths(forum, "/api/discussions") == []  # no listing
    assert again.requests == 2  # identity check and the one discussion


async def test_posts_before_the_backfill_horizon_are_never_read(
    forum: FakeFlarum, session: aiohttp.ClientSession
) -> None:
    people = People(forum)
    did, ancient = forum.add_discussion(
        title="2019", author=people.ann, created_at=NOW - timedelta(days=400), content="?"
    )
    source = make_source(forum, session)
    first = await source.fetch(EMPTY)
    assert first.messages == ()

    revived = forum.add_post(did, author=people.bob, created_at=at(5), content="still?")
    second = await source.fetch(FetchRequest(cursor=first.cursor, active_threads=frozenset()))
    assert set(by_id(second)) == {str(revived)}  # the ancient opening post stays out
    assert by_id(second)[str(revived)].parent_id == str(ancient)
    assert second.complete_threads[str(did)] == frozenset({str(ancient), str(revived)})


async def test_posts_that_slip_between_offset_pages_are_fetched_by_id(
    forum: FakeFlarum, session: aiohttp.ClientSession
) -> None:
    people = People(forum)
    did, first = forum.add_discussion(
        title="t", author=people.ann, created_at=at(-300), content="a"
    )
    posts = [
        forum.add_post(did, author=people.bob, created_at=at(-200 + i), content=str(i))
        for i in range(69)
    ]
    release = forum.hold("/api/posts")
    task = asyncio.create_task(make_source(forum, session, page_size=50).fetch(EMPTY))
    async with asyncio.timeout(5):
        while not paths(forum, "/api/posts"):  # noqa: ASYNC110 - the fake has no event for it
            await asyncio.sleep(0.01)
    # A moderator deletes an early post while the second page is on its way: offsets shift.
    forum.delete(posts[3])
    release.set()
    batch = await task

    # Everything, including the deleted post (read with the first page, before it went).
    assert set(by_id(batch)) == {str(first), *(str(p) for p in posts)}
    straggler = posts[49]  # was number 51, first of page 2; now the 50th post
    id_queries = [q for q in paths(forum, "/api/posts") if "filter[id]" in q]
    assert [q["filter[id]"] for q in id_queries] == [str(straggler)]
    # The deleted post was in the snapshot of ids, so it is not tombstoned before next time.
    assert str(posts[3]) in batch.complete_threads[str(did)]


async def test_threads_are_read_with_bounded_concurrency(
    forum: FakeFlarum, session: aiohttp.ClientSession
) -> None:
    people = People(forum)
    for i in range(10):
        start(forum, f"t{i}", people.ann, -60 + i)
    forum.delay_path("/api/discussions/", 0.05)
    batch = await make_source(forum, session).fetch(EMPTY)
    assert len(batch.complete_threads) == 10
    assert 2 <= forum.peak_concurrency <= 4


async def test_public_forum_without_a_key(session: aiohttp.ClientSession) -> None:
    forum = FakeFlarum()
    await forum.start()
    try:
        people = People(forum)
        did, first = forum.add_discussion(
            title="q", author=people.ann, created_at=at(-60), content="?"
        )
        hidden = forum.add_post(did, author=people.bob, created_at=at(-50), content="spam")
        forum.hide(hidden, at=at(-40))
        batch = await make_source(forum, session, key=None, user_id=None).fetch(EMPTY)
    finally:
        await forum.stop()
    # A guest never sees hidden posts: to us they look deleted (dismissed either way).
    assert set(by_id(batch)) == {str(first)}
    assert not any(r.authorized for r in forum.requests)
    assert batch.requests == 2  # no identity check without a key


# --- errors -----------------------------------------------------------------------------------


async def fetch_error(forum: FakeFlarum, session: aiohttp.ClientSession, **kw: Any) -> Any:
    with pytest.raises(SourceError) as caught:
        await make_source(forum, session, **kw).fetch(EMPTY)
    error = caught.value
    chained: BaseException | None = error
    while chained is not None:  # no message anywhere in the chain may carry the key
        assert KEY not in str(chained)
        chained = chained.__cause__ or chained.__context__
    return error


@pytest.mark.parametrize(
    ("fault", "retry_after"),
    [
        # Flarum's own throttle (ThrottleApi / FloodingException): no Retry-After.
        (FlarumError(status=429, code="too_many_requests"), None),
        # The same behind a proxy or CDN that adds Retry-After (seconds or an HTTP-date).
        (FlarumError(status=429, code="too_many_requests", headers={"Retry-After": "120"}), 120),
        (
            HttpStatus(
                status=429,
                body="<html><body><h1>429 Too Many Requests</h1></body></html>",
                headers={"Retry-After": "Sun, 22 Nov 2026 12:05:00 GMT"},
            ),
            300,
        ),
        # Unavailable, saying for how long (a proxy in front of maintenance mode): a throttle.
        (FlarumError(status=503, code="maintenance", headers={"Retry-After": "60"}), 60),
    ],
)
async def test_rate_limits_are_rate_limited(
    forum: FakeFlarum, session: aiohttp.ClientSession, fault: Fault, retry_after: float | None
) -> None:
    forum.inject(fault)
    error = await fetch_error(forum, session)
    assert type(error) is RateLimited
    assert error.retry_after == retry_after
    assert len(forum.requests) == 1  # no retries inside the adapter: the poller backs off


async def test_revoked_key_answered_with_401_is_an_auth_error(
    forum: FakeFlarum, session: aiohttp.ClientSession
) -> None:
    forum.revoke_api_key()
    error = await fetch_error(forum, session)
    assert type(error) is AuthError
    assert "HTTP 401 not_authenticated" in str(error)
    assert "api_keys" in str(error)


@pytest.mark.parametrize("public", [True, False])
async def test_revoked_key_served_as_a_guest_is_an_auth_error(
    session: aiohttp.ClientSession, public: bool
) -> None:
    # What Flarum core really does with an unknown key: carries on as a guest.
    forum = FakeFlarum(api_key=KEY, public=public)
    await forum.start()
    try:
        forum.add_discussion(title="q", author=ADMIN_USER, created_at=at(-5), content="?")
        forum.revoke_api_key(as_guest=True)
        error = await fetch_error(forum, session)
    finally:
        await forum.stop()
    assert type(error) is AuthError
    assert "as a guest" in str(error)
    # Stopped before reading anything that would make hidden posts look deleted.
    assert [r.path for r in forum.requests] == [f"/api/users/{ADMIN_USER}"]


async def test_wrong_key_is_an_auth_error(
    forum: FakeFlarum, session: aiohttp.ClientSession
) -> None:
    error = await fetch_error(forum, session, key="another-key-that-flarum-does-not-know")
    assert type(error) is AuthError
    assert "another-key" not in str(error)


async def test_permission_denied_is_an_auth_error(
    forum: FakeFlarum, session: aiohttp.ClientSession
) -> None:
    forum.inject(FlarumError(status=403, code="permission_denied"), path_contains="/discussions")
    error = await fetch_error(forum, session)
    assert type(error) is AuthError
    assert "permission_denied" in str(error)


async def test_wrong_base_url_is_fatal(forum: FakeFlarum, session: aiohttp.ClientSession) -> None:
    error = await fetch_error(forum, session, base_url=f"{forum.base_url}/forum", user_id=None)
    assert type(error) is FatalError
    assert "route_not_found" in str(error) and "base_url" in str(error)


async def test_invalid_parameter_is_fatal(
    forum: FakeFlarum, session: aiohttp.ClientSession
) -> None:
    forum.inject(
        FlarumError(status=400, code="invalid_parameter", detail="Invalid sort field [x]"),
        path_contains="/discussions",
    )
    error = await fetch_error(forum, session)
    assert type(error) is FatalError
    assert "invalid_parameter" in str(error) and "Invalid sort field" in str(error)


@pytest.mark.parametrize(
    "fault",
    [
        FlarumError(status=500, code="unknown"),
        FlarumError(status=503, code="maintenance"),  # maintenance mode: no Retry-After
        HttpStatus(status=502, body="<html><body>502 Bad Gateway</body></html>"),
        MalformedJson(),
        TruncatedBody(),
        Disconnect(),
    ],
)
async def test_transient_failures(
    forum: FakeFlarum, session: aiohttp.ClientSession, fault: Fault
) -> None:
    forum.inject(fault)
    assert type(await fetch_error(forum, session)) is TransientError


async def test_timeout_is_transient(forum: FakeFlarum, session: aiohttp.ClientSession) -> None:
    forum.inject(Delay(seconds=5))  # cut short when the fixture stops the server
    error = await fetch_error(forum, session, timeout=0.2)
    assert type(error) is TransientError
    assert "timed out" in str(error)


async def test_a_throttled_thread_keeps_the_others_and_is_read_next_time(
    forum: FakeFlarum, session: aiohttp.ClientSession
) -> None:
    people = People(forum)
    for i in range(3):
        start(forum, f"t{i}", people.ann, -30 + i)
    forum.inject(FlarumError(status=429, code="too_many_requests"), path_contains="/2")
    source = make_source(forum, session)
    first = await source.fetch(EMPTY)
    # Only threads read in full are reported: the throttled one is left for the next fetch.
    assert first.interrupted == "rate_limited"
    assert set(first.complete_threads) == {"1", "3"}
    assert first.cursor["resume"]["threads"] == ["2"]
    second = await source.fetch(FetchRequest(cursor=first.cursor, active_threads=frozenset()))
    assert second.interrupted is None and set(second.complete_threads) == {"2"}
    assert "resume" not in second.cursor and "last_posted_at" in second.cursor


async def test_a_page_that_is_not_json_api_is_transient(
    forum: FakeFlarum, session: aiohttp.ClientSession
) -> None:
    forum.inject(HttpStatus(status=200, body='{"ok": true}', content_type="application/json"))
    error = await fetch_error(forum, session)
    assert type(error) is TransientError
    assert "not a JSON:API document" in str(error)


# --- pure helpers ---------------------------------------------------------------------------


def test_html_to_text() -> None:
    markup = (
        '<p><a href="https://f.example/d/9/2" class="PostMention" data-id="2">Ann</a>'
        " thanks &amp; <strong>bye</strong></p><blockquote><p>quoted</p></blockquote><p>a<br>b</p>"
    )
    assert html_to_text(markup) == "Ann thanks & bye\nquoted\na\nb"


@pytest.mark.parametrize(
    ("content_html", "content", "expected"),
    [
        ('<p><a href="x/d/1/2" class="PostMention" data-id="12">A</a> hi</p>', None, "12"),
        ('<p><span class="PostMention PostMention--deleted" data-id="7">A</span></p>', None, "7"),
        ('<p><a class="UserMention" href="u/ann">@ann</a></p>', None, None),
        (None, '@"Ann Consumer"#p34 thanks', "34"),
        (None, "@ann#56 legacy format", "56"),
        ("<p>no mention</p>", "no mention", None),
    ],
)
def test_mentioned_post_id(content_html: str | None, content: str | None, expected: str) -> None:
    assert mentioned_post_id(content_html, content) == expected


def test_moderator_entries() -> None:
    parsed = Moderators.parse(["Alice", "id:42", "group:Support", "group:7", "group:staff"])
    assert parsed == Moderators(
        usernames=frozenset({"alice"}),
        user_ids=frozenset({"42"}),
        group_names=frozenset({"support"}),
        group_ids=frozenset({"7", "1", "4"}),
    )


def test_parse_flarum_time() -> None:
    assert parse_flarum_time("2022-01-01T10:20:30+00:00") == datetime(
        2022, 1, 1, 10, 20, 30, tzinfo=UTC
    )
    assert parse_flarum_time("2022-01-01T11:20:30+01:00") == datetime(
        2022, 1, 1, 10, 20, 30, tzinfo=UTC
    )
    assert parse_flarum_time("yesterday") is None
    assert parse_flarum_time(None) is None


# --- the simulator itself -------------------------------------------------------------------


async def get(session: aiohttp.ClientSession, url: str, **params: str) -> tuple[int, Any]:
    headers = {"Authorization": f"Token {KEY}; userId={ADMIN_USER}"}
    async with session.get(url, params=params, headers=headers) as response:
        assert response.content_type == "application/vnd.api+json"
        return response.status, await response.json(content_type=None)


async def test_simulator_pages_like_flarum(
    forum: FakeFlarum, session: aiohttp.ClientSession
) -> None:
    people = People(forum)
    for i in range(60):
        start(forum, f"t{i}", people.ann, -100 + i)
    url = f"{forum.base_url}/api/discussions"
    status, body = await get(session, url)
    assert status == 200
    assert len(body["data"]) == 20  # default limit
    # As in flarum/docs' example: `first`, and `next` with an encoded page[offset].
    assert body["links"] == {"first": url, "next": f"{url}?page%5Boffset%5D=20"}
    assert body["data"][0]["attributes"]["title"] == "t59"  # newest first by default
    _, body = await get(session, url, **{"page[limit]": "500", "page[offset]": "40"})
    assert len(body["data"]) == 20  # 60 - 40; the limit is capped at 50
    assert body["links"] == {
        "first": f"{url}?page%5Blimit%5D=50",
        "prev": f"{url}?page%5Blimit%5D=50",
    }
    _, body = await get(session, url, sort="createdAt", **{"page[limit]": "50"})
    assert body["data"][0]["attributes"]["title"] == "t0"
    assert body["links"]["next"] == f"{url}?sort=createdAt&page%5Blimit%5D=50&page%5Boffset%5D=50"


async def test_simulator_rejects_what_flarum_rejects(
    forum: FakeFlarum, session: aiohttp.ClientSession
) -> None:
    api = f"{forum.base_url}/api"
    status, body = await get(session, f"{api}/discussions", include="bogus")
    assert (status, body["errors"][0]["code"]) == (400, "invalid_parameter")
    status, body = await get(session, f"{api}/posts", sort="-likes")
    assert (status, body["errors"][0]["code"]) == (400, "invalid_parameter")
    status, body = await get(session, f"{api}/discussions/999")
    assert body == {"errors": [{"status": "404", "code": "not_found"}]}
    status, body = await get(session, f"{api}/nothing-here")
    assert body == {"errors": [{"status": "404", "code": "route_not_found"}]}
    async with session.post(f"{api}/posts") as response:
        assert response.status == 405


async def test_simulator_visibility_and_serializers(
    session: aiohttp.ClientSession,
) -> None:
    forum = FakeFlarum(api_key=KEY, public=False)
    await forum.start()
    try:
        people = People(forum)
        did, first = forum.add_discussion(
            title="Hello World", author=people.ann, created_at=at(-60), content="Hi"
        )
        hidden = forum.add_post(
            did, author=people.bob, created_at=at(-50), content="spam", reply_to=first
        )
        forum.hide(hidden, at=at(-40))
        api = f"{forum.base_url}/api"
        # A guest on a private forum sees nothing, with HTTP 200 (Flarum's posts ListTest).
        async with session.get(f"{api}/posts") as response:
            assert (response.status, (await response.json(content_type=None))["data"]) == (
                200,
                [],
            )
        async with session.get(f"{api}/discussions/{did}") as response:
            assert response.status == 404
        query = {"include": "posts,posts.user,posts.user.groups", "page[limit]": "1"}
        status, body = await get(session, f"{api}/discussions/{did}", **query)
    finally:
        await forum.stop()
    assert status == 200
    discussion = body["data"]
    assert discussion["attributes"]["slug"] == f"{did}-hello-world"
    assert discussion["attributes"]["commentCount"] == 1  # the hidden post does not count
    # Every post id is listed, but only page[limit] of them are serialized.
    assert discussion["relationships"]["posts"]["data"] == [
        {"type": "posts", "id": str(first)},
        {"type": "posts", "id": str(hidden)},
    ]
    posts = [r for r in body["included"] if r["type"] == "posts"]
    assert [p["id"] for p in posts] == [str(first)]
    attributes = posts[0]["attributes"]
    assert attributes["contentHtml"] == "<p>Hi</p>"
    assert attributes["content"] == "Hi"  # the admin can edit it
    assert attributes["createdAt"] == "2026-11-22T11:00:00+00:00"
    assert "isHidden" not in attributes


async def test_simulator_renders_mentions_and_hidden_posts_for_moderators(
    forum: FakeFlarum, session: aiohttp.ClientSession
) -> None:
    people = People(forum)
    did, first = forum.add_discussion(
        title="q", author=people.ann, created_at=at(-60), content="Hi"
    )
    reply = forum.add_post(
        did, author=people.bob, created_at=at(-50), content="<b>me</b> too", reply_to=first
    )
    forum.hide(reply, at=at(-40))
    query = {"include": "user,user.groups", "filter[discussion]": str(did), "sort": "number"}
    _, body = await get(session, f"{forum.base_url}/api/posts", **query)
    post = body["data"][1]["attributes"]
    assert post["contentHtml"] == (
        f'<p><a href="{forum.base_url}/d/{did}/1" class="PostMention" data-id="{first}">'
        "Ann Consumer</a> &lt;b&gt;me&lt;/b&gt; too</p>"
    )
    assert post["content"] == f'@"Ann Consumer"#p{first} <b>me</b> too'
    assert (post["isHidden"], post["hiddenAt"]) == (True, "2026-11-22T11:20:00+00:00")
    assert "links" in body and "next" not in body["links"]


async def test_simulator_stop_cuts_delayed_and_held_requests_short(
    session: aiohttp.ClientSession,
) -> None:
    forum = FakeFlarum(api_key=KEY)
    await forum.start()
    forum.delay_path("/api/discussions", 30)
    forum.hold("/api/posts")

    async def call(url: str) -> int:
        async with session.get(url) as response:
            return response.status

    calls = [
        asyncio.create_task(call(f"{forum.base_url}/api/discussions")),
        asyncio.create_task(call(f"{forum.base_url}/api/posts")),
    ]
    async with asyncio.timeout(5):
        while len(forum.requests) < 2:  # noqa: ASYNC110 - the fake has no "request seen" event
            await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await forum.stop()
    for task in calls:
        with contextlib.suppress(aiohttp.ClientError):
            await asyncio.wait_for(task, timeout=5)
    assert loop.time() - started < 5
