"""phpBB Atom feeds: forum and topic feeds into domain messages, with conditional requests.

Feeds live at `{base_url}/app.php/feed/forum/{id}` and `/app.php/feed/topic/{id}`; boards before
phpBB 3.1 serve them as `/feed.php?f={id}` and `?t={id}` (3.1+ answers those with a 301 to the
app.php form, which is followed: redirects within the board's origin only). Only the app.php
form is built here.

What a feed can and cannot tell, and what we do about it:
- Entries carry an author *name* only: moderators match by username (case-insensitively, as
  phpBB compares usernames); "id:"/"group:" moderator entries cannot match and are ignored.
- A topic feed holds only the newest `feed_limit_post` posts (15 by default, 10 on some
  boards). A thread is reported complete (so missing posts become tombstones) only when the
  feed proves it: fewer entries than a feed of this board has ever shown (that many fit in the
  board's window; or the limit given to the constructor), or the topic's first post is there.
  A 404 topic feed means the topic was deleted (a deleted thread); a 403 that it is out of
  guests' sight (soft deleted, unapproved, moved to a private forum): skipped, not deleted;
  both only while some other feed of the board answers (otherwise it is the board refusing
  us: AuthError / FatalError). Another 4xx skips the topic; one failing twice in a row (a
  5xx, an unreadable feed) while the board answers is skipped too, and so is an entry
  without a post id or a date.
- A throttle (429, 503 + Retry-After) or a transient failure in the middle of a poll keeps what
  was read: the batch is marked interrupted and the cursor's `resume` part lists what is left.
- phpBB has no reply-to: every post's parent is the topic's first post, once known: from the
  board's "new topics" feed (`/app.php/feed/topics`, first posts of the newest topics) or
  from a complete read of the topic.
- Newer 3.3 boards link entries as `viewtopic.php?p=N` without the topic id; such forum-feed
  entries get their topic from the topic feeds read in the same poll, from the cursor's
  post -> topic map, or, last, from the canonical link of `viewtopic.php?p=N`.
- Unchanged feeds cost a 304: ETag / Last-Modified per feed are kept in the cursor.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from html import unescape
from html.parser import HTMLParser
from typing import Any, ClassVar, TypeGuard
from urllib.parse import parse_qs, urlsplit

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from monitor.clock import Clock
from monitor.config import PhpbbAtomConfig
from monitor.domain import Batch, Message, Skipped
from monitor.logging import get_logger
from monitor.sources.base import (
    AuthError,
    FatalError,
    FetchRecord,
    FetchRequest,
    RateLimited,
    TransientError,
    one_error,
)
from monitor.sources.http import (
    MAX_REDIRECTS,
    REDIRECTS,
    describe,
    parse_retry_after,
    redirect_target,
    safe_url,
)
from monitor.sources.wire import as_list, parse_time

log = get_logger("monitor.sources.atom")

ATOM = "{http://www.w3.org/2005/Atom}"
ACCEPT = "application/atom+xml, application/xml;q=0.9, */*;q=0.1"
# A phpBB feed is a few dozen KB; anything far larger is not a feed we want to hold in memory.
MAX_FEED_BYTES = 8 * 1024 * 1024
# Without an ETag a 304 rests on Last-Modified, which phpBB derives from the newest post time:
# deleting an older post does not change it. Re-read such feeds in full now and then.
FULL_READ_AFTER = timedelta(hours=1)
# Post -> topic entries kept for boards whose links carry no topic id (newest posts win).
TOPIC_MAP_LIMIT = 2000
# viewtopic.php look-ups per poll for posts of unknown topics; the rest wait for the next poll.
MAX_LOOKUPS = 20

_DOCTYPE = re.compile(rb"<!(?:DOCTYPE|ENTITY)", re.IGNORECASE)
# What may precede the root element: a BOM, white space, the XML declaration, PIs, comments.
_PROLOG = re.compile(rb"^(?:\xef\xbb\xbf)?(?:\s+|<\?.*?\?>|<!--.*?-->)*", re.DOTALL)
# phpBB appends "<p>Statistics: Posted by ... — date</p><hr />" (the label is translated, the
# U+2014 separator is not) to every entry's content; it is not part of the post.
_STATISTICS = re.compile(
    r"(?:<p>(?:(?!</?p[\s>]).)*\u2014(?:(?!</?p[\s>]).)*</p>)?\s*<hr\s*/?>\s*$",
    re.DOTALL | re.IGNORECASE,
)
_FRAGMENT_POST = re.compile(r"^p(\d+)$")
_CANONICAL = re.compile(
    r"""<link[^>]+rel=["']canonical["'][^>]*href=["']([^"']+)["']""", re.IGNORECASE
)
_TOPIC_LINK = re.compile(r"viewtopic\.php\?(?:[^\"'<>]*?[&;])?t=(\d+)")


class FeedError(ValueError):
    """A response body that is not a usable Atom feed."""


@dataclass(frozen=True, kw_only=True)
class FeedEntry:
    """One `<entry>` of a phpBB post feed, as far as it could be read."""

    post_id: int | None
    topic_id: int | None
    author: str | None
    html: str
    published: datetime | None
    updated: datetime | None
    link: str | None


@dataclass(frozen=True, kw_only=True)
class _Reply:
    """A feed response the caller decides about (200, 304, 401/403, 404/410)."""

    status: int
    body: bytes
    headers: CIMultiDictProxy[str]
    url: str


@dataclass(kw_only=True)
class _Cursor:
    """What survives between polls (JSON-safe when dumped); tolerant of junk when loaded."""

    since: datetime
    window: int = 0  # the most entries any post feed of the board has shown
    validators: dict[str, dict[str, str]] = field(default_factory=dict)
    first_post: dict[int, int] = field(default_factory=dict)
    topic_of: dict[int, int] = field(default_factory=dict)
    gone: set[int] = field(default_factory=set)
    # (first post, topic or None) of the newest topics, from the board's "new topics" feed.
    new_topics: list[tuple[int, int | None]] = field(default_factory=list)

    @classmethod
    def load(cls, raw: Mapping[str, Any], default_since: datetime) -> _Cursor:
        """Read a saved cursor; anything unreadable falls back to a fresh start for that part."""
        since = _parse_time(raw.get("since")) if isinstance(raw.get("since"), str) else None
        window = raw.get("window")
        validators = raw.get("validators")
        return cls(
            since=since or default_since,
            window=window if _digits(window) and isinstance(window, int) else 0,
            validators={
                str(key): {k: v for k, v in value.items() if isinstance(v, str)}
                for key, value in (validators.items() if isinstance(validators, dict) else [])
                if isinstance(value, dict)
            },
            first_post=_int_map(raw.get("first_post")),
            topic_of=_int_map(raw.get("topic_of")),
            gone={int(t) for t in as_list(raw.get("gone")) if _digits(t)},
            new_topics=[
                (int(pair[0]), int(pair[1]) if _digits(pair[1]) else None)
                for pair in as_list(raw.get("new_topics"))
                if isinstance(pair, list) and len(pair) == 2 and _digits(pair[0])
            ],
        )

    def dump(self) -> dict[str, Any]:
        """The JSON form stored with the batch."""
        newest = sorted(self.topic_of, reverse=True)[:TOPIC_MAP_LIMIT]
        return {
            "since": self.since.isoformat(),
            "window": self.window,
            "validators": self.validators,
            "first_post": {str(t): p for t, p in sorted(self.first_post.items())},
            "topic_of": {str(p): self.topic_of[p] for p in sorted(newest)},
            "gone": sorted(self.gone),
            "new_topics": [list(pair) for pair in self.new_topics],
        }


@dataclass(kw_only=True)
class _Todo:
    """What a poll still has to read; kept in the cursor's `resume` part when it stops early.

    A poll reads the forum feeds, then the topic feeds of what they listed (plus the watched
    and active topics), then looks up posts linked without a topic id, then the "new topics"
    feed. A throttle or transient failure stops it where it is; the next fetch finishes the
    rest before starting a new poll, and asks for nothing the stopped one already read.
    """

    forums: list[int]  # forum feeds not read yet
    topics: list[int]  # topic feeds not read yet, in order
    planned: bool = False  # `topics` holds every topic of the poll (all forum feeds were read)
    lookups: list[int] = field(default_factory=list)  # posts whose topic is still unknown
    new_topics: bool = False  # the "new topics" feed is still to be read
    read: set[str] = field(default_factory=set)  # feeds read by the poll's earlier fetches
    # The topic whose read failed transiently last time (5xx, cut-off or unparseable feed):
    # read first and alone; failing again while the board answers, it is skipped.
    failed: int | None = None

    @classmethod
    def load(cls, cursor: Mapping[str, Any]) -> _Todo | None:
        """The rest of an interrupted poll, or None (none, or unreadable: start afresh)."""
        raw = cursor.get("resume")
        if not isinstance(raw, dict):
            return None
        failed = raw.get("failed")
        return cls(
            forums=_ints(raw.get("forums")),
            topics=_ints(raw.get("topics")),
            planned=raw.get("planned") is True,
            lookups=_ints(raw.get("lookups")),
            new_topics=raw.get("new_topics") is True,
            read={str(key) for key in as_list(raw.get("read"))},
            failed=int(failed) if _digits(failed) else None,
        )

    def dump(self, read_now: Iterable[str]) -> dict[str, Any]:
        """The JSON form, the failed topic first; `read_now`: feeds this fetch read."""
        first = [self.failed] if self.failed in self.topics else []
        return {
            "forums": self.forums,
            "topics": first + [t for t in self.topics if t != self.failed],
            "planned": self.planned,
            "lookups": self.lookups,
            "new_topics": self.new_topics,
            "read": sorted(self.read | set(read_now)),
            "failed": self.failed,
        }


@dataclass(kw_only=True)
class _Run(FetchRecord):
    """What one fetch accumulates across its requests (mutable on purpose)."""

    cursor: _Cursor
    todo: _Todo
    conditional: bool
    now: datetime
    request: FetchRequest | None = None  # told how many topics are left (progress)
    topics_done: int = 0
    not_modified: int = 0
    # A feed of this board answered 200/304: a 404/403 elsewhere is about that topic only,
    # and what this fetch read is worth keeping if a throttle stops it.
    board_answers: bool = False
    entries: dict[int, tuple[int, FeedEntry]] = field(default_factory=dict)
    unresolved: dict[int, FeedEntry] = field(default_factory=dict)
    # Topic feeds read in full (every entry had a post id): their post ids and entry count.
    topic_reads: dict[int, tuple[frozenset[int], int]] = field(default_factory=dict)
    topic_feeds: set[int] = field(default_factory=set)  # topics whose feed answered 200
    missing: set[int] = field(default_factory=set)
    forbidden: set[int] = field(default_factory=set)
    read_feeds: set[str] = field(default_factory=set)
    # Each topic's first post (parent of every reply), once known.
    first_posts: dict[int, int] = field(default_factory=dict)

    def skip_entry(self, where: str, entry: FeedEntry) -> None:
        """An entry without a post id (or a post without a date) cannot be used: skipped."""
        if entry.post_id is None:
            key = f"entry:{_entry_digest(entry)}"
            detail = f"{where}: an entry without a post id (link {entry.link!r})"
        else:
            key = f"post:{entry.post_id}"
            detail = f"{where}: post {entry.post_id} without <published> or <updated>"
        self.skipped.setdefault(key, Skipped(reason="malformed", detail=detail))


class PhpbbAtomSource:
    """Polls a phpBB board's forum feeds for new posts and topic feeds for whole threads."""

    def __init__(
        self,
        config: PhpbbAtomConfig,
        session: aiohttp.ClientSession,
        clock: Clock,
        *,
        feed_limit: int | None = None,
        concurrency: int = 4,
    ) -> None:
        self._config = config
        self._session = session
        self._clock = clock
        self._base = config.base_url.rstrip("/")
        # The board's `feed_limit_post`, when the operator knows it; otherwise it is learned.
        self._feed_limit = feed_limit
        self._concurrency = concurrency
        self._blocked_until: datetime | None = None
        self.not_modified_total = 0
        usernames = [m for m in config.moderators if not m.startswith(("id:", "group:"))]
        ignored = [m for m in config.moderators if m.startswith(("id:", "group:"))]
        self._moderators = frozenset(_fold(name) for name in usernames)
        if ignored:
            # Atom entries name the author and nothing else: ids and groups cannot match.
            log.warning(
                "phpBB feeds carry author names only; moderator ids and groups are ignored",
                source=config.name,
                ignored=ignored,
            )

    async def fetch(self, request: FetchRequest) -> Batch:
        """New posts from the forum feeds, then the topic feeds of new, listed and active topics.

        A throttle or a transient failure in the middle keeps what came before: the batch holds
        the topics read whole, is marked interrupted, and the cursor's `resume` part says what
        is left (see _Todo). A topic the board refuses (403, 400) is skipped, not the poll.
        """
        now = self._clock.now()
        self._refuse_while_throttled(now)
        default_since = now - timedelta(days=self._config.backfill_days)
        resumed = _Todo.load(request.cursor) if request.include_feed else None
        run = _Run(
            cursor=_Cursor.load(request.cursor, default_since),
            todo=resumed or self._fresh_todo(request),
            conditional=request.include_feed,
            now=now,
            request=request,
        )
        await self._work(run, request)
        stopped = run.stopped
        if stopped is not None and not (request.include_feed and run.board_answers):
            raise stopped  # nothing gained (or a re-read): the cursor stays as it was
        batch = self._batch(run, request)
        log.debug(
            "phpbb fetch",
            source=self._config.name,
            requests=run.requests,
            not_modified=run.not_modified,
            topics=len(run.topic_feeds),
            resumed=resumed is not None,
            interrupted=batch.interrupted,
        )
        return batch

    # --- what to read ---------------------------------------------------------------------

    def _fresh_todo(self, request: FetchRequest) -> _Todo:
        """A new poll: every forum feed, then the topics; a re-read: just the threads asked."""
        if request.include_feed:
            return _Todo(forums=list(self._config.forums), topics=[], new_topics=True)
        return _Todo(forums=[], topics=[])

    async def _work(self, run: _Run, request: FetchRequest) -> None:
        """Do what the poll has left, in order, until done or a refusal stops it."""
        todo = run.todo
        while todo.forums and run.stopped is None:
            await self._read_forum(run, todo.forums[0])
        if run.stopped is not None:
            return
        if not todo.planned:
            self._plan_topics(run, request)
        await self._read_topics(run)
        if run.stopped is None and todo.lookups:
            await self._resolve_unknown_topics(run)
            await self._read_topics(run)
        if run.stopped is None and todo.new_topics:
            await self._read_new_topics(run)
        if run.stopped is None and (run.missing or run.forbidden) and not run.board_answers:
            await self._confirm_board_answers(run)

    def _plan_topics(self, run: _Run, request: FetchRequest) -> None:
        """Once every forum feed is read: the topics they listed, watched and active ones."""
        todo = run.todo
        discovered = set(todo.topics)
        wanted = {int(t) for t in request.active_threads if _digits(t)}
        if request.include_feed:
            wanted |= set(self._config.topics)
        # A topic that answered 404 is gone for good (ids are never reused), unless a forum
        # feed shows it again (the forum was excluded from feeds for a while).
        wanted = {t for t in wanted if t not in run.cursor.gone} - discovered
        todo.topics = sorted(discovered | wanted)
        todo.planned = True

    async def _read_forum(self, run: _Run, forum_id: int) -> None:
        try:
            reply = await self._get_feed(run, f"forum/{forum_id}")
        except (RateLimited, TransientError) as err:
            run.stop(err)
            return
        where = f"forum feed {forum_id}"
        if reply.status in (401, 403):
            raise AuthError(
                f"GET {reply.url}: HTTP {reply.status}: guests may not read forum {forum_id}"
                " (forum permissions, a ban or a proxy blocking us)"
            )
        if reply.status in (404, 410):
            raise FatalError(
                f"GET {reply.url}: HTTP {reply.status}: no {where}: the forum does not exist,"
                " is excluded from feeds, or feeds are disabled (ACP > Board features > Feeds);"
                " phpBB 3.0 boards only serve feed.php, which is not supported"
            )
        if reply.status not in (200, 304):
            raise FatalError(f"GET {reply.url}: unexpected HTTP {reply.status} for the {where}")
        try:
            entries = self._parse(run, reply, f"forum/{forum_id}") if reply.status == 200 else []
        except TransientError as err:
            run.stop(err)  # read again next time
            return
        # Only a usable answer shows the board answers (a proxy's page with 200 does not).
        run.board_answers = True
        run.todo.forums.remove(forum_id)
        for entry in entries:
            if entry.post_id is None:
                run.skip_entry(where, entry)
                continue
            topic = entry.topic_id or run.cursor.topic_of.get(entry.post_id)
            if topic is None:
                run.unresolved[entry.post_id] = entry
                if entry.post_id not in run.todo.lookups:
                    run.todo.lookups.append(entry.post_id)
            elif entry.post_id not in run.entries:
                run.entries[entry.post_id] = (topic, entry)
                if topic not in run.todo.topics:
                    run.todo.topics.append(topic)

    async def _read_topics(self, run: _Run) -> None:
        """The queued topic feeds, a few at a time, until done or a refusal stops the fetch.

        A topic that failed last time is read first and alone, so that its second failure is
        told apart from a board in trouble.
        """
        todo = run.todo
        if todo.failed is not None and todo.failed in todo.topics:
            await self._read_one(run, todo.failed)
        limiter = asyncio.Semaphore(self._concurrency)

        async def one(topic_id: int) -> None:
            async with limiter:
                if run.stopped is None:  # the board said stop: the rest waits
                    await self._read_one(run, topic_id)

        with one_error():
            async with asyncio.TaskGroup() as group:
                for topic_id in list(todo.topics):
                    group.create_task(one(topic_id))

    async def _read_one(self, run: _Run, topic_id: int) -> None:
        """One topic feed; a throttle stops the fetch, a topic failing twice is skipped."""
        try:
            await self._read_topic(run, topic_id)
        except RateLimited as err:
            run.stop(err)
            return
        except TransientError as err:
            if not await self._gives_up_on(run, topic_id, err):
                run.stop(err)
                return
        run.todo.topics.remove(topic_id)
        if run.todo.failed == topic_id:
            run.todo.failed = None
        run.topics_done += 1
        if run.request is not None:
            left = len(run.todo.topics)
            run.request.progress(left, run.topics_done + left, "topics")

    async def _gives_up_on(self, run: _Run, topic_id: int, err: TransientError) -> bool:
        """Whether a topic that failed transiently is skipped (True) rather than the fetch stopped.

        The first failure is noted and the next fetch reads that topic first (a 5xx burst or a
        busy board lets it through then); failing again while the board answers, it is
        skipped: one topic that breaks phpBB (a General Error) must not stop every poll.
        """
        # The topic's validators go: when it is readable again, it is read in full.
        run.cursor.validators.pop(f"topic/{topic_id}", None)
        if run.todo.failed != topic_id:
            run.todo.failed = run.todo.failed or topic_id
            return False
        if not await self._board_answers(run):
            return False
        reason = "malformed" if isinstance(err.__cause__, FeedError) else "bad_request"
        run.skipped[str(topic_id)] = Skipped(
            reason=reason,
            detail=f"topic {topic_id} failed twice in a row while the board answered: {err}",
        )
        return True

    async def _board_answers(self, run: _Run) -> bool:
        """Whether the board serves feeds now: one conditional request if none answered yet.

        Its validators are not updated (its entries are not read here), so the next poll
        still sees what changed in that feed.
        """
        if run.board_answers:
            return True
        route = f"forum/{self._config.forums[0]}" if self._config.forums else ""
        try:
            reply = await self._get(
                run, self._feed_url(route), ACCEPT, self._conditional(run, route)
            )
        except (RateLimited, TransientError) as err:
            run.stop(err)
            return False
        run.board_answers = reply.status in (200, 304)
        return run.board_answers

    async def _read_topic(self, run: _Run, topic_id: int) -> None:
        key = f"topic/{topic_id}"
        reply = await self._get_feed(run, key)
        if 400 <= reply.status < 500:
            # The thread will be tombstoned or skipped: when it is back, read it in full.
            run.cursor.validators.pop(key, None)
            self._refused(run, topic_id, reply)
            return
        run.cursor.gone.discard(topic_id)
        entries = self._parse(run, reply, key) if reply.status == 200 else []
        run.board_answers = True
        if reply.status == 304:
            return
        run.topic_feeds.add(topic_id)
        ids = frozenset(e.post_id for e in entries if e.post_id is not None)
        for entry in entries:
            if entry.post_id is None:
                run.skip_entry(f"topic {topic_id}", entry)
                continue
            run.entries[entry.post_id] = (topic_id, entry)
            run.cursor.topic_of[entry.post_id] = topic_id
        if len(ids) == len(entries):  # else an entry without a post id: contents unknown
            run.topic_reads[topic_id] = (ids, len(entries))

    @staticmethod
    def _refused(run: _Run, topic_id: int, reply: _Reply) -> None:
        """A topic feed's 4xx: gone (404, 410), out of sight (401, 403) or refused (the rest)."""
        if reply.status in (404, 410):
            run.missing.add(topic_id)
        elif reply.status in (401, 403):
            # Soft-deleted, unapproved or moved to a forum guests may not read (phpBB's feed
            # tests): out of reach is not deleted. Skipped, while the board answers.
            run.forbidden.add(topic_id)
        else:
            run.skipped[str(topic_id)] = Skipped(
                reason="bad_request", detail=f"GET {reply.url}: HTTP {reply.status}"
            )

    def _complete_threads(self, run: _Run) -> dict[int, frozenset[int]]:
        """Topics whose feed provably holds every visible post; learns their first posts."""
        cursor = run.cursor
        # Decided after every feed of the poll was read: each one may widen the known window.
        window = self._feed_limit or cursor.window
        complete: dict[int, frozenset[int]] = {}
        for topic_id, (ids, count) in run.topic_reads.items():
            if count < window and ids:
                # Fewer entries than the board's window: the whole topic, oldest post first.
                cursor.first_post[topic_id] = min(ids)
        first = dict(cursor.first_post)
        for post_id, listed_topic in cursor.new_topics:
            topic = listed_topic or cursor.topic_of.get(post_id)
            if topic is not None:
                first[topic] = post_id  # phpBB's own topic_first_post_id
        run.first_posts = first
        for topic_id, (ids, count) in run.topic_reads.items():
            if count < window or first.get(topic_id) in ids:
                complete[topic_id] = ids
        return complete

    async def _read_new_topics(self, run: _Run) -> None:
        """The "new topics" feed lists the first post of the newest topics: replies' parent.

        It is on by default (feed_topics_new) but optional, and only a hint: when it is
        disabled or refused, first posts are learned from complete topic reads alone.
        """
        try:
            reply = await self._get_feed(run, "topics")
            # Cut at feed_limit_topic, not at the post window: it proves nothing about it.
            ok = reply.status == 200
            entries = self._parse(run, reply, "topics", learn_window=False) if ok else []
        except (RateLimited, TransientError) as err:
            run.stop(err)
            return
        run.todo.new_topics = False
        if reply.status in (200, 304):
            run.board_answers = True
        if reply.status == 304:
            return
        if reply.status != 200:
            run.cursor.validators.pop("topics", None)
            run.cursor.new_topics = []
            return
        run.cursor.new_topics = [
            (entry.post_id, entry.topic_id) for entry in entries if entry.post_id is not None
        ]

    async def _resolve_unknown_topics(self, run: _Run) -> None:
        """Topics of forum-feed posts linked without a topic id (newer phpBB 3.3 boards)."""
        todo = run.todo
        # Topic feeds read since may have shown where they belong.
        todo.lookups = sorted(p for p in todo.lookups if p not in run.cursor.topic_of)
        if len(todo.lookups) > MAX_LOOKUPS:
            # The rest waits for the next poll: make sure the forum feeds are not a 304 then.
            for key in [k for k in run.cursor.validators if k.startswith("forum/")]:
                del run.cursor.validators[key]
            todo.lookups = todo.lookups[:MAX_LOOKUPS]
        while todo.lookups and run.stopped is None:
            post_id = todo.lookups[0]
            try:
                topic = await self._lookup_topic(run, post_id)
            except (RateLimited, TransientError) as err:
                run.stop(err)
                return
            todo.lookups.pop(0)
            if topic is None:
                continue
            run.cursor.topic_of[post_id] = topic
            if post_id in run.unresolved:
                run.entries.setdefault(post_id, (topic, run.unresolved[post_id]))
            if topic not in run.topic_feeds and f"topic/{topic}" not in todo.read:
                todo.topics.append(topic)

    async def _lookup_topic(self, run: _Run, post_id: int) -> int | None:
        reply = await self._get(run, f"{self._base}/viewtopic.php?p={post_id}", "text/html")
        if reply.status != 200:
            return None  # gone again, or hidden from guests: nothing to report
        page = reply.body.decode("utf-8", "replace")
        canonical = _CANONICAL.search(page)
        match = _TOPIC_LINK.search(canonical.group(1) if canonical else page)
        return int(match.group(1)) if match else None

    async def _confirm_board_answers(self, run: _Run) -> None:
        """Every feed we asked for answered 404/403: ask the board-wide feed whether it is us."""
        reply = await self._get_feed(run, "")
        if reply.status in (401, 403):
            raise AuthError(
                f"GET {reply.url}: HTTP {reply.status}: the board refuses its feeds to us"
                " (a ban, a proxy or guest permissions)"
            )
        if reply.status in (404, 410):
            if run.forbidden:
                raise AuthError(
                    f"topic feeds answer 403 and the board-wide feed {reply.url} 404: cannot"
                    " tell hidden topics from a board that blocks us"
                )
            raise FatalError(
                f"GET {reply.url}: HTTP {reply.status}: no feeds at {safe_url(self._base)}:"
                " wrong base_url, feeds disabled (ACP > Board features > Feeds), or a phpBB"
                " 3.0 board (feed.php only, not supported)"
            )
        if reply.status not in (200, 304):
            raise FatalError(f"GET {reply.url}: unexpected HTTP {reply.status}")
        run.board_answers = True

    # --- HTTP -----------------------------------------------------------------------------

    def _feed_url(self, route: str) -> str:
        """The URL of a feed route ("" is the board-wide feed)."""
        return f"{self._base}/app.php/feed" + (f"/{route}" if route else "")

    @staticmethod
    def _conditional(run: _Run, route: str) -> dict[str, str]:
        """If-None-Match / If-Modified-Since from the feed's saved validators (polls only)."""
        saved = run.cursor.validators.get(route or "overall", {})
        headers: dict[str, str] = {}
        if run.conditional:
            if "etag" in saved:
                headers["If-None-Match"] = saved["etag"]
            read_at = _parse_time(saved.get("read_at"))
            fresh = read_at is not None and run.now - read_at < FULL_READ_AFTER
            if "last_modified" in saved and ("etag" in saved or fresh):
                headers["If-Modified-Since"] = saved["last_modified"]
        return headers

    async def _get_feed(self, run: _Run, route: str) -> _Reply:
        """GET one feed, conditionally when the cursor has validators for it."""
        key = route or "overall"
        reply = await self._get(run, self._feed_url(route), ACCEPT, self._conditional(run, route))
        run.read_feeds.add(key)
        if reply.status == 304:
            run.not_modified += 1
            self.not_modified_total += 1
        elif reply.status == 200:
            fresh_validators = {"read_at": run.now.isoformat()}
            if etag := reply.headers.get("ETag"):
                fresh_validators["etag"] = etag
            if last_modified := reply.headers.get("Last-Modified"):
                fresh_validators["last_modified"] = last_modified
            run.cursor.validators[key] = fresh_validators
        return reply

    async def _get(
        self, run: _Run, url: str, accept: str, headers: Mapping[str, str] | None = None
    ) -> _Reply:
        """One GET; transport failures, throttling and server errors become our error tree.

        Redirects are followed here, within the board's origin only (as request_json does):
        a feed moved to another host is refused with where it pointed, before anything (a
        cookie, a conditional header) is sent there.
        """
        where = f"GET {safe_url(url)}"
        timeout = self._config.request_timeout
        target = URL(url, encoded=True)
        try:
            for _ in range(MAX_REDIRECTS + 1):
                run.requests += 1
                async with self._session.get(
                    target,
                    headers={"Accept": accept, **(headers or {})},
                    timeout=aiohttp.ClientTimeout(total=timeout),
                    allow_redirects=False,
                ) as resp:
                    status = resp.status
                    body = await _read_capped(resp, where) if status == 200 else b""
                    reply_headers = CIMultiDictProxy(resp.headers.copy())
                location = reply_headers.get("Location") if status in REDIRECTS else None
                if location is None:
                    break
                target = redirect_target(target, None, location, where)
            else:
                raise TransientError(f"{where}: more than {MAX_REDIRECTS} redirects")
        except TimeoutError as err:
            raise TransientError(f"{where}: timed out after {timeout:g} s") from err
        except aiohttp.ClientPayloadError as err:
            raise TransientError(f"{where}: response body truncated: {describe(err)}") from err
        except aiohttp.ClientError as err:
            raise TransientError(f"{where}: request failed: {describe(err)}") from err
        except OSError as err:
            raise TransientError(f"{where}: network error: {describe(err)}") from err
        self._check_status(where, status, reply_headers)
        return _Reply(status=status, body=body, headers=reply_headers, url=safe_url(url))

    def _check_status(self, where: str, status: int, headers: CIMultiDictProxy[str]) -> None:
        """Raise for a throttle or a server error; 200, 304 and 4xx are the caller's to judge."""
        retry_after = parse_retry_after(headers.get("Retry-After"), self._clock.now())
        # phpBB has no rate limit of its own: these come from a proxy or host in front of it.
        if status == 429 or (status == 503 and retry_after is not None):
            self._block(retry_after)
            raise RateLimited(f"{where}: HTTP {status}, throttled", retry_after=retry_after)
        if status >= 500:
            raise TransientError(f"{where}: server error HTTP {status}")
        if status in (408, 425):
            raise TransientError(f"{where}: HTTP {status}")
        if status not in (200, 304) and not 400 <= status < 500:
            raise FatalError(f"{where}: unexpected HTTP {status}")

    def _block(self, retry_after: float | None) -> None:
        if retry_after is not None and retry_after > 0:
            until = self._clock.now() + timedelta(seconds=retry_after)
            self._blocked_until = max(self._blocked_until or until, until)

    def _refuse_while_throttled(self, now: datetime) -> None:
        """Send nothing before the proxy's Retry-After has passed (e.g. a pre-breach re-read)."""
        if self._blocked_until is not None and now < self._blocked_until:
            wait = (self._blocked_until - now).total_seconds()
            raise RateLimited(
                f"{safe_url(self._base)}: still throttled for {wait:g} s", retry_after=wait
            )

    # --- mapping --------------------------------------------------------------------------

    def _parse(
        self, run: _Run, reply: _Reply, key: str, *, learn_window: bool = True
    ) -> list[FeedEntry]:
        try:
            entries = parse_feed(reply.body)
        except FeedError as err:
            # Not a 304 next time: the feed is read again in full.
            run.cursor.validators.pop(key, None)
            raise TransientError(f"GET {reply.url}: {err}") from err
        if learn_window:
            self._learn_window(run, len(entries))
        return entries

    def _learn_window(self, run: _Run, count: int) -> None:
        # Every post feed of a board is cut at the same `feed_limit_post`, so a feed with this
        # many entries proves the window is at least that wide.
        run.cursor.window = max(run.cursor.window, count)

    def _batch(self, run: _Run, request: FetchRequest) -> Batch:
        """What the fetch read (whole topics only when it stopped early), and what it skipped."""
        cursor = run.cursor
        stopped = run.stopped
        deleted: set[int] = set()
        if run.board_answers:
            deleted = set(run.missing)
            cursor.gone |= run.missing
            for topic_id in run.forbidden:
                run.skipped[str(topic_id)] = Skipped(
                    reason="forbidden",
                    detail=f"topic {topic_id}: its feed answers 403 to guests (soft-deleted,"
                    " unapproved, or in a forum guests may not read)",
                )
        found_complete = self._complete_threads(run)
        messages: list[Message] = []
        for post_id, (topic_id, entry) in sorted(run.entries.items(), key=lambda kv: kv[0]):
            if topic_id in deleted or (stopped is not None and topic_id not in run.topic_feeds):
                continue  # gone; or, stopped early, a topic not read whole yet (read next time)
            message = self._message(post_id, topic_id, entry, run.first_posts.get(topic_id))
            if message is None:
                run.skip_entry(f"topic {topic_id}", entry)
            elif message.created_at >= cursor.since:
                messages.append(message)
        complete = {
            str(topic): frozenset(str(p) for p in ids)
            for topic, ids in found_complete.items()
            if topic not in deleted
        }
        return run.batch(
            self._next_cursor(run, request), messages, complete, (str(t) for t in deleted)
        )

    def _next_cursor(self, run: _Run, request: FetchRequest) -> Mapping[str, Any]:
        """Where the next fetch goes on: the rest of this poll, or the next poll."""
        if not request.include_feed:
            return request.cursor  # a re-read before a breach leaves the cursor alone
        cursor = run.cursor
        if run.stopped is not None:
            return {**cursor.dump(), "resume": run.todo.dump(run.read_feeds)}
        # The poll is complete: forget what it (and its interrupted fetches) did not read.
        keep = run.read_feeds | run.todo.read
        cursor.validators = {k: v for k, v in cursor.validators.items() if k in keep}
        read_topics = {int(k.split("/")[1]) for k in keep if k.startswith("topic/")}
        cursor.first_post = {t: p for t, p in cursor.first_post.items() if t in read_topics}
        cursor.gone &= read_topics | {int(t) for t in request.active_threads if _digits(t)}
        return cursor.dump()

    def _message(
        self, post_id: int, topic_id: int, entry: FeedEntry, first: int | None
    ) -> Message | None:
        created = entry.published or entry.updated
        if created is None:
            return None
        return Message(
            platform_id=str(post_id),
            thread_id=str(topic_id),
            parent_id=str(first) if first is not None and first != post_id else None,
            # A missing author (a deleted user, an extension that drops it) is an unknown
            # consumer, not an error.
            author_id=None,
            author_name=entry.author,
            text=html_to_text(entry.html),
            created_at=created,
            seq=post_id,
            is_brand=entry.author is not None and _fold(entry.author) in self._moderators,
            permalink=entry.link,
        )


# --- parsing --------------------------------------------------------------------------------


def parse_feed(raw: bytes) -> list[FeedEntry]:
    """The entries of a phpBB Atom feed; FeedError for anything that is not one."""
    # xml.etree expands internal entities (defusedxml is not available): a document with a
    # DOCTYPE or ENTITY declaration is refused before parsing, so no "billion laughs" can
    # expand. phpBB never sends one; an HTML page (proxy, captive portal) usually does.
    prolog = _PROLOG.match(raw)
    if _DOCTYPE.match(raw, prolog.end() if prolog else 0):
        raise FeedError("refusing a document with a DOCTYPE/ENTITY declaration (not a feed)")
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as err:
        raise FeedError(f"not well-formed XML (malformed or truncated): {err}") from err
    if root.tag != f"{ATOM}feed":
        raise FeedError(f"not an Atom feed (root element {root.tag!r})")
    return [_entry(element) for element in root.iter(f"{ATOM}entry")]


def _entry(element: ET.Element) -> FeedEntry:
    link_element = element.find(f"{ATOM}link")
    link = link_element.get("href") if link_element is not None else None
    post_id, topic_id = _post_and_topic(link)
    if post_id is None:
        post_id, topic_id = _post_and_topic(element.findtext(f"{ATOM}id"))
    content = element.find(f"{ATOM}content")
    if content is None:
        content = element.find(f"{ATOM}summary")
    author = element.findtext(f"{ATOM}author/{ATOM}name")
    return FeedEntry(
        post_id=post_id,
        topic_id=topic_id,
        # phpBB stores user names HTML-escaped ("Tom &amp; Jerry") and prints them raw.
        author=unescape(author.strip()) if author and author.strip() else None,
        html=(content.text or "") if content is not None else "",
        published=_parse_time(element.findtext(f"{ATOM}published")),
        updated=_parse_time(element.findtext(f"{ATOM}updated")),
        link=link,
    )


def _post_and_topic(url: str | None) -> tuple[int | None, int | None]:
    """(post id, topic id) from `viewtopic.php?t=1&p=2#p2`, `?p=2#p2` or a `#p2` fragment."""
    if not url:
        return None, None
    parts = urlsplit(url.strip())
    query = parse_qs(parts.query)
    post = _first_int(query.get("p"))
    if post is None and (match := _FRAGMENT_POST.match(parts.fragment)):
        post = int(match.group(1))
    return post, _first_int(query.get("t"))


def _parse_time(value: object) -> datetime | None:
    """An RFC 3339 time in any offset ("2026-11-16T20:05:00+01:00", phpBB may add a space)."""
    return parse_time(value.strip() if isinstance(value, str) else value)


class _TextExtractor(HTMLParser):
    """Plain text of a post: line breaks for <br> and blocks, smilies as their alt text."""

    BLOCKS: ClassVar[frozenset[str]] = frozenset(
        {"p", "div", "blockquote", "li", "ul", "ol", "tr", "table", "pre", "dd", "dt", "dl"}
        | {"h1", "h2", "h3", "h4", "h5", "h6", "cite", "hr"}
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag == "br" or tag in self.BLOCKS:
            self.parts.append("\n")
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt:
                self.parts.append(alt)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(fragment: str) -> str:
    """A feed entry's HTML content as plain text, without phpBB's statistics footer."""
    extractor = _TextExtractor()
    extractor.feed(_STATISTICS.sub("", fragment))
    extractor.close()
    lines = [" ".join(line.split()) for line in "".join(extractor.parts).split("\n")]
    text: list[str] = []
    for line in lines:
        if line or (text and text[-1]):
            text.append(line)
    return "\n".join(text).strip()


# --- helpers --------------------------------------------------------------------------------


async def _read_capped(resp: aiohttp.ClientResponse, where: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(65536):
        size += len(chunk)
        if size > MAX_FEED_BYTES:
            raise TransientError(f"{where}: response larger than {MAX_FEED_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _fold(name: str) -> str:
    """phpBB compares user names case-insensitively (username_clean)."""
    return " ".join(name.split()).casefold()


def _first_int(values: list[str] | None) -> int | None:
    if values and values[0].isdigit():
        return int(values[0])
    return None


def _digits(value: object) -> TypeGuard[int | str]:
    """An int, or a string of digits (ids come as both from JSON and the store)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, str) and value.isdigit())


def _ints(raw: object) -> list[int]:
    return [int(value) for value in as_list(raw) if _digits(value)]


def _entry_digest(entry: FeedEntry) -> str:
    """A stable name for an entry without a post id: the same in every feed that shows it."""
    seen = f"{entry.author}\n{entry.published or entry.updated}\n{entry.html}"
    return hashlib.sha1(seen.encode("utf-8"), usedforsecurity=False).hexdigest()[:12]


def _int_map(raw: object) -> dict[int, int]:
    if not isinstance(raw, dict):
        return {}
    return {
        int(key): int(value)
        for key, value in raw.items()
        if _digits(key) and isinstance(value, int) and not isinstance(value, bool)
    }
