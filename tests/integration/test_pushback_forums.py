"""Issue 13 on phpBB (Atom feeds) and Flarum: the sources keep reading when the forum pushes back.

Against the fakes over real HTTP, with the real service (coordinator, pipeline, SQLite store) on
a fake clock: a year's backfill under a throttle on every 5th request (429 with Retry-After in
seconds, as an HTTP-date or none; 503 with and without Retry-After) completes with every post
stored once, for at most 1.3x the requests of the unthrottled run; one refused or broken topic
/ discussion, or one malformed post, is skipped while the rest is stored; cut-off bodies resume;
a redirect to another host is refused before anything goes there.

`pytest -s -k backfill tests/integration/test_pushback_forums.py` prints the request counts.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pytest
from aiohttp import web

from monitor.app import create_app
from monitor.clock import FakeClock
from monitor.config import load_config
from monitor.logging import configure_logging
from monitor.simulator import flarum as fl
from monitor.simulator import phpbb as bb
from monitor.simulator.base import TruncatedBody
from monitor.web.keys import COORDINATOR
from tests.integration.pushback_harness import NAME, Recording, Service, service_toml

KEY = "pushback-flarum-key-0f1e2d3c4b5a"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday
THREADS = 150  # a year of questions: 10 phpBB forums of 15 topics, 3 Flarum list pages
MAX_RATIO = 1.3
THROTTLES = [
    pytest.param(bb.Throttle(status=429, retry_after="seconds"), id="429-seconds"),
    pytest.param(bb.Throttle(status=429, retry_after="http-date"), id="429-http-date"),
    pytest.param(bb.Throttle(status=429, retry_after="none"), id="429-no-retry-after"),
    pytest.param(bb.Throttle(status=503, retry_after="seconds"), id="503-seconds"),
    pytest.param(bb.Throttle(status=503, retry_after="none"), id="503-no-retry-after"),
]

Client = Callable[[web.Application], Awaitable[Any]]


# --- the two forums behind one face -----------------------------------------------------------


class Forum:
    """What a test does with a fake forum, whichever platform it is."""

    platform: ClassVar[str]
    fake: bb.FakePhpbbBoard | fl.FakeFlarum

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    def source_toml(self, backfill_days: int) -> str:
        """The [[sources]] entry for this forum."""
        raise NotImplementedError

    def question(self, title: str, at: datetime) -> tuple[str, list[str]]:
        """A consumer's question; returns (thread id, [post id])."""
        raise NotImplementedError

    def reply(self, thread: str, at: datetime, *, moderator: bool, text: str = "...") -> str:
        """A post in a thread; returns its id."""
        raise NotImplementedError

    def fail(self, thread: str, status: int) -> None:
        """Every read of this thread answers `status`."""
        raise NotImplementedError

    def heal(self, thread: str) -> None:
        """Undo `fail`."""
        raise NotImplementedError

    def thread_path(self, thread: str) -> str:
        """The path of the request that reads this thread."""
        raise NotImplementedError

    def request_keys(self) -> list[str]:
        """Every request the fake got, as path and query (to find repeated ones)."""
        raise NotImplementedError

    def page(self, status: int, headers: dict[str, str] | None = None) -> Any:
        """A plain (non-API) answer with this status, as a proxy in front would send."""
        raise NotImplementedError

    def answered(self, title: str, minutes_ago: float) -> tuple[str, list[str]]:
        """A question and the moderator's answer, `minutes_ago` before now."""
        at = self.clock.now() - timedelta(minutes=minutes_ago)
        thread, posts = self.question(title, at)
        posts.append(self.reply(thread, at + timedelta(minutes=1), moderator=True, text="Yes."))
        return thread, posts

    def seed_year(self) -> set[str]:
        """150 threads over a year: a question, a follow-up and the moderator's answer each.

        Every question is answered (the moderator comes last), so no breach re-read adds
        requests.
        """
        posts: set[str] = set()
        for number in range(THREADS):
            at = NOW - timedelta(days=360 * (THREADS - number) / THREADS)
            thread, first = self.question(f"Question {number}", at)
            posts.update(first)
            posts.add(self.reply(thread, at + timedelta(minutes=3), moderator=False))
            posts.add(self.reply(thread, at + timedelta(minutes=5), moderator=True))
        return posts

    def reads_of(self, thread: str) -> int:
        """How often the thread's own request was made."""
        path = self.thread_path(thread)
        return sum(1 for key in self.request_keys() if key.split("?")[0] == path)


class PhpbbForum(Forum):
    """A phpBB 3.3 board, 10 forums, posts-per-feed 50 (so a forum feed lists its 15 topics)."""

    platform = "phpbb_atom"
    FORUMS = tuple(range(2, 12))

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.fake = self.board = bb.FakePhpbbBoard(feed_limit=50, now=clock.now)
        for forum_id in self.FORUMS:
            self.board.add_forum(forum_id, f"Forum {forum_id}")
        self._topics = 0

    def source_toml(self, backfill_days: int) -> str:
        return f"""
type = "phpbb_atom"
base_url = "{self.board.base_url}"
moderators = ["acme_support"]
forums = {list(self.FORUMS)}
backfill_days = {backfill_days}
"""

    def question(self, title: str, at: datetime) -> tuple[str, list[str]]:
        forum = self.FORUMS[self._topics % len(self.FORUMS)]
        self._topics += 1
        topic, post = self.board.add_topic(
            forum_id=forum, title=title, author="ann", created_at=at, text=f"{title}?"
        )
        return str(topic), [str(post)]

    def reply(self, thread: str, at: datetime, *, moderator: bool, text: str = "...") -> str:
        author = "Acme_Support" if moderator else "ann"
        return str(
            self.board.add_post(topic_id=int(thread), author=author, created_at=at, text=text)
        )

    def fail(self, thread: str, status: int) -> None:
        self.board.fail_topic(int(thread), status)

    def heal(self, thread: str) -> None:
        self.board.heal_topic(int(thread))

    def thread_path(self, thread: str) -> str:
        return f"/forum/app.php/feed/topic/{thread}"

    def request_keys(self) -> list[str]:
        return [r.path for r in self.board.requests]

    def page(self, status: int, headers: dict[str, str] | None = None) -> Any:
        return bb.HttpStatus(status=status, body="", headers=headers or {})


class FlarumForum(Forum):
    """A Flarum forum with an admin key; discussions are listed 50 a page."""

    platform = "flarum"

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        # Post ids apart from discussion ids, as on a forum with history. (The coordinator
        # takes any delivered message id for a read object: post 2 would clear a skipped
        # discussion 2. See the report on issue 13.)
        self.fake = self.forum = fl.FakeFlarum(api_key=KEY, now=clock.now, first_post_id=1001)
        self.ann = self.forum.add_user("ann", display_name="Ann Consumer")
        self.sam = self.forum.add_user("support_sam", display_name="Sam (Acme)")

    def source_toml(self, backfill_days: int) -> str:
        return f"""
type = "flarum"
base_url = "{self.forum.base_url}"
api_key = "{KEY}"
user_id = {fl.ADMIN_USER}
moderators = ["support_sam"]
backfill_days = {backfill_days}
"""

    def question(self, title: str, at: datetime) -> tuple[str, list[str]]:
        discussion, post = self.forum.add_discussion(
            title=title, author=self.ann, created_at=at, content=f"{title}?"
        )
        return str(discussion), [str(post)]

    def reply(self, thread: str, at: datetime, *, moderator: bool, text: str = "...") -> str:
        author = self.sam if moderator else self.ann
        return str(self.forum.add_post(int(thread), author=author, created_at=at, content=text))

    def fail(self, thread: str, status: int) -> None:
        self.forum.fail_discussion(int(thread), status)

    def heal(self, thread: str) -> None:
        self.forum.heal_discussion(int(thread))

    def thread_path(self, thread: str) -> str:
        return f"/api/discussions/{thread}"

    def request_keys(self) -> list[str]:
        return [
            r.path + "?" + "&".join(f"{k}={v}" for k, v in sorted(r.query.items()))
            for r in self.forum.requests
        ]

    def page(self, status: int, headers: dict[str, str] | None = None) -> Any:
        return fl.HttpStatus(status=status, body="", headers=headers or {})


FORUMS: dict[str, type[Forum]] = {"phpbb": PhpbbForum, "flarum": FlarumForum}


# --- the service around it --------------------------------------------------------------------


def write_config(path: Path, forum: Forum, *, backfill_days: int) -> Path:
    """One forum source; the clock is fake, so a poll a minute costs no real time."""
    path.write_text(
        service_toml(path)
        + f"""[[sources]]
name = "{NAME}"
brand = "acme"
request_timeout = "2s"
poll_interval = "60s"
{forum.source_toml(backfill_days)}
""",
        encoding="utf-8",
    )
    return path


Start = Callable[..., Awaitable[Service]]


@pytest.fixture(params=sorted(FORUMS))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
async def forum(kind: str, clock: FakeClock) -> AsyncIterator[Forum]:
    made = FORUMS[kind](clock)
    await made.fake.start()
    yield made
    await made.fake.stop()


@pytest.fixture
def start(tmp_path: Path, aiohttp_client: Client) -> Start:
    async def started(forum: Forum, *, label: str = "s", backfill_days: int = 30) -> Service:
        logs = io.StringIO()
        configure_logging(level="info", fmt="json", secrets=[KEY], stream=logs)
        path = write_config(tmp_path / f"{label}.toml", forum, backfill_days=backfill_days)
        app = create_app(load_config(path), clock=forum.clock, start_polling=False)
        client = await aiohttp_client(app)
        entry = app[COORDINATOR].sources[NAME]
        recording = Recording(entry.source)
        entry.source = recording
        return Service(
            app=app,
            clock=forum.clock,
            platform=forum.platform,
            recording=recording,
            logs=logs,
            client=client,
        )

    return started


# --- a year's backfill under a throttle -------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Backfill:
    requests: int  # at the fake, refused ones included
    repeated: int  # requests made again (same path and query)
    polls: int


async def backfill(start: Start, kind: str, fault: Any, every: int = 5) -> Backfill:
    """A 365-day backfill of a year's forum; asserts every post is stored and delivered once."""
    forum = FORUMS[kind](FakeClock(NOW))
    expected = forum.seed_year()
    await forum.fake.start()
    try:
        if fault is not None:
            forum.fake.inject_every(fault, every)
        label = "calm" if fault is None else "throttled"
        service = await start(forum, label=label, backfill_days=365)
        await service.poll_until_complete()
        stored = [m.message.platform_id for m in await service.store.all_messages(NAME)]
        assert sorted(stored) == sorted(expected)  # every post, none twice
        delivered = service.delivered()
        assert set(delivered) == expected and max(delivered.values()) == 1
        assert all(up == 1 for up in service.ups)  # never down: it only slowed down
        assert not any(b.skipped for b in service.recording.batches)
        assert "resume" not in service.entry.cursor
        keys = forum.request_keys()
        return Backfill(
            requests=len(keys), repeated=len(keys) - len(set(keys)), polls=service.polls
        )
    finally:
        await forum.fake.stop()


_CALM: dict[str, Backfill] = {}


async def calm_backfill(start: Start, kind: str) -> Backfill:
    """The unthrottled run (the same for every throttle: measured once per worker)."""
    if kind not in _CALM:
        _CALM[kind] = await backfill(start, kind, None)
    return _CALM[kind]


@pytest.mark.parametrize("fault", THROTTLES)
async def test_a_year_backfill_under_a_throttle_on_every_5th_request_stores_every_post_once(
    start: Start, kind: str, fault: bb.Throttle
) -> None:
    calm = await calm_backfill(start, kind)
    throttled = await backfill(start, kind, fault)
    refused = throttled.requests // 5
    ratio = throttled.requests / calm.requests
    print(
        f"\n{kind} {fault.status} Retry-After {fault.retry_after}: {throttled.requests} requests"
        f" ({refused} refused) in {throttled.polls} polls vs {calm.requests} unthrottled in"
        f" {calm.polls}: {ratio:.3f}x"
    )
    assert calm.polls == 1 and calm.repeated == 0
    assert refused // 2 < throttled.polls <= refused + 1  # stopped, often, and resumed
    # Nothing the stopped polls had read is asked for again: only the refused requests are.
    assert throttled.repeated == refused
    assert ratio <= MAX_RATIO


async def test_a_long_first_backfill_tells_how_far_it_is(start: Start, kind: str) -> None:
    """/readyz and the log say how many topics of how many are done, never going back, while
    a throttled year's backfill resumes poll after poll; the last log line says it is done."""
    forum = FORUMS[kind](FakeClock(NOW))
    forum.seed_year()
    await forum.fake.start()
    try:
        forum.fake.inject_every(bb.Throttle(status=429, retry_after="seconds"), 5)
        service = await start(forum, label="progress", backfill_days=365)
        said: list[tuple[int, int]] = []
        for _ in range(500):
            delay = await service.poll()
            if service.entry.last_success is not None:
                break
            response = await service.client.get("/readyz")
            problem = (await response.json())["problems"][0]
            found = re.search(r"backfilling: (\d+) of (\d+) (topics|discussions)", problem)
            if found:  # once the lists are read (the first polls read topic lists)
                said.append((int(found.group(1)), int(found.group(2))))
            await service.clock.advance(delay)
        assert service.entry.backfill is None  # done: /readyz is about freshness again
        assert len(said) > 10
        done, totals = [d for d, _ in said], {t for _, t in said}
        assert done == sorted(done) and len(totals) == 1  # forward only, one total
        assert service.logged("backfill done", source=NAME) == 1
        assert service.logged("backfill progress", source=NAME) >= 1
        # A poll's lines share one poll_id: the finishing poll's "backfill done" and "poll".
        lines = [orjson.loads(line) for line in service.logs.getvalue().splitlines()]
        ids = {line["event"]: line.get("poll_id") for line in lines}
        assert re.fullmatch(r"[0-9a-f]{12}", ids["poll"] or "")
        assert ids["backfill done"] == ids["poll"]
        polls = [line["poll_id"] for line in lines if line["event"] == "poll interrupted, resuming"]
        assert ids["poll"] not in polls and len(set(polls)) == len(polls)
    finally:
        await forum.fake.stop()


async def test_cut_off_bodies_in_the_middle_of_a_backfill_resume_the_same_way(
    start: Start, kind: str
) -> None:
    throttled = await backfill(start, kind, TruncatedBody(), every=7)
    calm = await calm_backfill(start, kind)
    refused = throttled.requests // 7
    assert throttled.polls > refused // 2 and throttled.repeated == refused
    assert throttled.requests / calm.requests <= MAX_RATIO


async def test_the_wait_comes_from_retry_after_in_either_form(
    start: Start, forum: Forum, clock: FakeClock
) -> None:
    threads = [forum.answered(f"Q{n}", minutes_ago=100 - n)[0] for n in range(3)]
    service = await start(forum)
    await service.poll_until_complete()
    waits = []
    for fault in (
        bb.Throttle(status=429, wait_seconds=42, retry_after="seconds"),
        bb.Throttle(status=429, wait_seconds=42, retry_after="http-date"),
        bb.Throttle(status=503, wait_seconds=42, retry_after="seconds"),
    ):
        # New posts bump every thread; the read of the second one is refused.
        for thread in threads:
            forum.reply(thread, clock.now(), moderator=True)
        forum.fake.inject(fault, path_contains=forum.thread_path(threads[1]))
        await clock.advance(60)
        waits.append(await service.poll())
        assert service.entry.interruptions == 1 and service.ups[-1] == 1
        await clock.advance(waits[-1])
        await service.poll_until_complete()
    # The poll stopped, and the next waited as long as the forum said.
    assert all(wait >= 42 for wait in waits)
    interrupted = [b for b in service.recording.batches if b.interrupted]
    assert [(b.interrupted, round(b.wait_seconds or 0)) for b in interrupted] == [
        ("rate_limited", 42)
    ] * 3
    assert service.metric("poll_errors", "acme", NAME, "rate_limited") == 3


# --- one bad object ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason", "reads_per_try"),
    [(403, "forbidden", 1), (400, "bad_request", 1), (500, "bad_request", 2)],
)
async def test_one_bad_thread_is_skipped_counted_once_and_retried_at_a_slower_pace(
    start: Start, forum: Forum, clock: FakeClock, status: int, reason: str, reads_per_try: int
) -> None:
    threads = [forum.answered(f"Thread {n}", minutes_ago=300 - n)[0] for n in range(4)]
    bad, busy = threads[1], threads[2]
    service = await start(forum)
    await service.poll_until_complete()
    before = await service.stored()
    assert len(before) == 8

    # Refused (403 out of sight, 400) or broken on the server (500 on every read).
    forum.fail(bad, status)
    await clock.advance(60)
    await service.poll_until_complete()
    skipped = [b.skipped[bad] for b in service.recording.batches if bad in b.skipped]
    assert [s.reason for s in skipped] == [reason]
    assert str(status) in skipped[0].detail

    # Half an hour of polls a minute; the other threads go on being read.
    reads = forum.reads_of(bad)
    new_posts = []
    for minute in range(30):
        if minute % 10 == 0:
            new_posts.append(forum.reply(busy, clock.now(), moderator=False, text=f"{minute}"))
        await service.poll_every_minute(1)
    retries = (forum.reads_of(bad) - reads) // reads_per_try

    stored = await service.stored()
    assert set(new_posts) <= set(stored)
    # Its stored posts are not tombstoned: out of reach is not deleted.
    assert not any(m.message.deleted for m in stored.values())
    assert all(up == 1 for up in service.ups)
    assert service.metric("source_skipped", "acme", NAME, reason) == 1
    assert service.logged("object skipped, polling the rest", object=bad) == 1
    # Tried again now and then (its slower retries, a forum feed that lists it), not every poll.
    assert 1 <= retries <= 6

    forum.heal(bad)  # readable again: read at its next try, and forgotten
    await service.poll_every_minute(45)
    assert bad not in service.entry.skips
    assert service.logged("skipped object readable again", object=bad) == 1
    assert service.metric("source_skipped", "acme", NAME, reason) == 1


async def test_a_forum_failing_altogether_is_the_sources_failure_not_a_skipped_thread(
    start: Start, forum: Forum, clock: FakeClock
) -> None:
    threads = [forum.answered(f"Thread {n}", minutes_ago=300 - n)[0] for n in range(6)]
    service = await start(forum)
    await service.poll_until_complete()
    for thread in threads:
        forum.reply(thread, clock.now(), moderator=True)
    forum.fake.inject(bb.Throttle(status=429), path_contains=forum.thread_path(threads[2]))
    await clock.advance(60)
    await service.poll()  # stops at that thread
    assert service.entry.interruptions == 1 and "resume" in service.entry.cursor

    # Then every request fails: not held against the thread, the forum answers nothing else.
    forum.fake.inject(forum.page(502), times=None)
    await clock.advance(30)
    await service.poll()
    assert service.entry.failures == 1 and service.ups[-1] == 0
    assert service.metric("poll_errors", "acme", NAME, "transient") == 1

    forum.fake.clear_faults()
    await clock.advance(60)
    await service.poll_until_complete()
    assert len(await service.stored()) == 18
    assert not any(b.skipped for b in service.recording.batches)
    assert service.ups[-1] == 1


# --- malformed posts --------------------------------------------------------------------------


def break_post(forum: Forum, post: str, how: str) -> None:
    """Serve one post without what `how` names."""
    if isinstance(forum, PhpbbForum):
        fields: dict[str, tuple[bb.EntryField, ...]] = {
            "no date": ("published", "updated"),
            "no id": ("id", "link"),
            "no author": ("author",),
        }
        forum.board.drop_entry_fields(int(post), *fields[how])
    elif isinstance(forum, FlarumForum):
        dropped: dict[str, tuple[fl.PostField, ...]] = {
            "no date": ("createdAt",),
            "no id": ("id",),
            "no author": ("user",),
        }
        forum.forum.drop_post_fields(int(post), *dropped[how])


@pytest.mark.parametrize("how", ["no date", "no id"])
async def test_a_malformed_post_is_skipped_and_the_rest_of_its_thread_stored(
    start: Start, forum: Forum, clock: FakeClock, how: str
) -> None:
    thread, posts = forum.answered("Q", minutes_ago=180)
    service = await start(forum)
    await service.poll_until_complete()

    # A stored post now comes without the field; a new thread has one from the start.
    break_post(forum, posts[0], how)
    later, _ = forum.question("Later", clock.now() - timedelta(minutes=30))
    broken = forum.reply(later, clock.now() - timedelta(minutes=20), moderator=False)
    break_post(forum, broken, how)
    after = forum.reply(later, clock.now() - timedelta(minutes=10), moderator=True)
    forum.reply(thread, clock.now(), moderator=False, text="bump")
    await clock.advance(60)
    await service.poll_until_complete()
    await service.poll_every_minute(12)  # later polls find the same posts again

    stored = await service.stored()
    assert broken not in stored and after in stored
    assert len(stored) == 3 + 2  # the first thread's three, the new thread's two good posts
    assert stored[posts[0]].message.deleted is False  # skipped is not deleted
    assert all(up == 1 for up in service.ups)
    assert service.metric("source_skipped", "acme", NAME, "malformed") == 2
    assert service.logged("object skipped, polling the rest") == 2


async def test_a_post_without_its_author_is_an_unknown_consumer(
    start: Start, forum: Forum, clock: FakeClock
) -> None:
    thread, _ = forum.question("Q", clock.now() - timedelta(hours=2))
    nobody = forum.reply(thread, clock.now() - timedelta(hours=1), moderator=False, text="me?")
    break_post(forum, nobody, "no author")
    service = await start(forum)
    await service.poll_until_complete()

    stored = await service.stored()
    message = stored[nobody].message
    assert (message.author_id, message.author_name, message.is_brand) == (None, None, False)
    items = await service.store.items_between(NOW - timedelta(days=1), NOW)
    assert len(items) == 2  # the question and the anonymous follow-up both wait for an answer
    assert not any(b.skipped for b in service.recording.batches)


# --- resuming, and cursors from before it -----------------------------------------------------


async def test_a_cursor_without_a_resume_part_still_loads(
    start: Start, forum: Forum, clock: FakeClock
) -> None:
    forum.answered("Q", minutes_ago=30)
    service = await start(forum)
    await service.poll_until_complete()
    cursor = service.entry.cursor
    assert "resume" not in cursor  # what the code before resuming wrote, too
    forum.answered("R", minutes_ago=1)
    await clock.advance(60)
    await service.poll_until_complete()
    assert len(await service.stored()) == 4


async def test_an_earlier_flarum_resume_part_still_loads(start: Start, clock: FakeClock) -> None:
    forum = FlarumForum(clock)
    await forum.fake.start()
    try:
        threads = [forum.answered(f"Q{n}", minutes_ago=30 - n)[0] for n in range(3)]
        service = await start(forum)
        await service.poll_until_complete()
        forum.reply(threads[2], clock.now(), moderator=False, text="again")
        # A stopped poll's rest as the first resuming version wrote it: no listing, no failed.
        advance = dict(service.entry.cursor)
        service.entry.cursor = {**advance, "resume": {"threads": [threads[2]], "advance": advance}}
        seen = len(forum.forum.requests)
        await service.poll_until_complete()
        # Only the discussion left is read: no key check, no listing.
        assert [r.path for r in forum.forum.requests[seen:]] == [forum.thread_path(threads[2])]
        assert len(await service.stored()) == 7
    finally:
        await forum.fake.stop()


async def test_the_flarum_discussion_list_resumes_at_the_page_refused(
    start: Start, clock: FakeClock
) -> None:
    forum = FlarumForum(clock)
    expected = forum.seed_year()
    await forum.fake.start()
    try:
        # Every 3rd request to the list or a discussion: the list's 3rd page is the first.
        forum.fake.inject_every(bb.Throttle(status=429), 3, path_contains="/api/discussions")
        service = await start(forum, backfill_days=365)
        await service.poll()
        resume = service.entry.cursor["resume"]
        assert resume["threads"] == [] and len(resume["listing"]["found"]) == 100
        assert "page%5Boffset%5D=100" in resume["listing"]["next"]
        assert forum.forum.base_url not in orjson.dumps(resume).decode()  # no host kept
        await clock.advance(30)
        await service.poll_until_complete()
        stored = [m.message.platform_id for m in await service.store.all_messages(NAME)]
        assert sorted(stored) == sorted(expected)
        pages = Counter(
            r.query.get("page[offset]", "0")
            for r in forum.forum.requests
            if r.path == "/api/discussions" and r.query.get("page[limit]") == "50"
        )
        assert pages == {"0": 1, "50": 1, "100": 2}  # only the refused page twice
        assert [r.path for r in forum.forum.requests].count("/api/users/1") == 1
        assert all(up == 1 for up in service.ups)
    finally:
        await forum.fake.stop()


# --- redirects --------------------------------------------------------------------------------


async def test_a_redirect_to_another_host_is_refused_before_anything_goes_there(
    start: Start, forum: Forum, aiohttp_client: Client
) -> None:
    seen: list[dict[str, str]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.Response(text="{}", content_type="application/json")

    other = web.Application()
    other.router.add_route("*", "/{tail:.*}", record)
    elsewhere = await aiohttp_client(other)
    target = f"http://{elsewhere.host}:{elsewhere.port}/moved"
    forum.answered("Q", minutes_ago=30)
    forum.fake.inject(forum.page(302, {"Location": target}), times=None)
    service = await start(forum)
    await service.poll()

    entry = service.entry
    assert entry.failures == 1 and service.ups == [0]
    assert (entry.last_error or "").startswith("fatal: ")
    assert f"{elsewhere.host}:{elsewhere.port}/moved" in (entry.last_error or "")
    assert seen == []  # not followed at all: no key, cookie or validator reached it
    assert KEY not in service.logs.getvalue()
    assert service.metric("poll_errors", "acme", NAME, "fatal") == 1


async def test_a_phpbb_redirect_within_the_board_is_followed(
    start: Start, clock: FakeClock
) -> None:
    forum = PhpbbForum(clock)
    await forum.fake.start()
    try:
        forum.answered("Q", minutes_ago=30)
        # The 3.0-era URL phpBB 3.1+ redirects to [COMPAT], as a board behind a rewrite might.
        moved = forum.page(301, {"Location": "/forum/feed.php?f=2"})
        forum.board.inject(moved, path_contains="/app.php/feed/forum/2")
        service = await start(forum)
        await service.poll_until_complete()
        assert len(await service.stored()) == 2 and service.ups == [1]
        paths = [r.path for r in forum.board.requests[:3]]
        assert paths == [
            "/forum/app.php/feed/forum/2",
            "/forum/feed.php",
            "/forum/app.php/feed/forum/2",
        ]
    finally:
        await forum.fake.stop()
