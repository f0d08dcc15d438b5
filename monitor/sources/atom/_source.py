"""PhpbbAtomSource: forum feeds for new posts, topic feeds for whole threads."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import aiohttp

from monitor.clock import Clock
from monitor.config import PhpbbAtomConfig
from monitor.domain import Batch, Message, Skipped
from monitor.logging import get_logger
from monitor.sources.atom._client import ACCEPT, FeedClient, Reply
from monitor.sources.atom._feed import FeedEntry, FeedError, html_to_text, parse_feed
from monitor.sources.atom._state import Cursor, Run, Todo, digits
from monitor.sources.base import (
    AuthError,
    FatalError,
    FetchRequest,
    RateLimited,
    TransientError,
    one_error,
)
from monitor.sources.http import safe_url

log = get_logger("monitor.sources.atom")

# viewtopic.php look-ups per poll for posts of unknown topics; the rest wait for the next poll.
MAX_LOOKUPS = 20

_CANONICAL = re.compile(
    r"""<link[^>]+rel=["']canonical["'][^>]*href=["']([^"']+)["']""", re.IGNORECASE
)

_TOPIC_LINK = re.compile(r"viewtopic\.php\?(?:[^\"'<>]*?[&;])?t=(\d+)")


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
        self._clock = clock
        self._base = config.base_url.rstrip("/")
        # The board's `feed_limit_post`, when the operator knows it; otherwise it is learned.
        self._feed_limit = feed_limit
        self._concurrency = concurrency
        self._client = FeedClient(config, session, clock)
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

    @property
    def not_modified_total(self) -> int:
        """Feed requests answered 304 Not Modified since the source was made."""
        return self._client.not_modified_total

    async def fetch(self, request: FetchRequest) -> Batch:
        """New posts from the forum feeds, then the topic feeds of new, listed and active topics."""
        # A throttle or a transient failure in the middle keeps what came before: the batch holds
        # the topics read whole, is marked interrupted, and the cursor's `resume` part says what
        # is left (see Todo). A topic the board refuses (403, 400) is skipped, not the poll.
        now = self._clock.now()
        self._client.refuse_while_throttled(now)
        default_since = now - timedelta(days=self._config.backfill_days)
        resumed = Todo.load(request.cursor) if request.include_feed else None
        run = Run(
            cursor=Cursor.load(request.cursor, default_since),
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

    def _fresh_todo(self, request: FetchRequest) -> Todo:
        """A new poll: every forum feed, then the topics; a re-read: just the threads asked."""
        if request.include_feed:
            return Todo(forums=list(self._config.forums), topics=[], new_topics=True)
        return Todo(forums=[], topics=[])

    async def _work(self, run: Run, request: FetchRequest) -> None:
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

    def _plan_topics(self, run: Run, request: FetchRequest) -> None:
        """Once every forum feed is read: the topics they listed, watched and active ones."""
        todo = run.todo
        discovered = set(todo.topics)
        wanted = {int(t) for t in request.active_threads if digits(t)}
        if request.include_feed:
            wanted |= set(self._config.topics)
        # A topic that answered 404 is gone for good (ids are never reused), unless a forum
        # feed shows it again (the forum was excluded from feeds for a while).
        wanted = {t for t in wanted if t not in run.cursor.gone} - discovered
        todo.topics = sorted(discovered | wanted)
        todo.planned = True

    async def _read_forum(self, run: Run, forum_id: int) -> None:
        try:
            reply = await self._client.get_feed(run, f"forum/{forum_id}")
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

    async def _read_topics(self, run: Run) -> None:
        """The queued topic feeds, a few at a time, until done or a refusal stops the fetch."""
        # A topic that failed last time is read first and alone, so that its second failure is
        # told apart from a board in trouble.
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

    async def _read_one(self, run: Run, topic_id: int) -> None:
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

    async def _gives_up_on(self, run: Run, topic_id: int, err: TransientError) -> bool:
        """Whether a topic that failed transiently is skipped (True), not the fetch stopped."""
        # The first failure is noted and the next fetch reads that topic first (a 5xx burst or a
        # busy board lets it through then); failing again while the board answers, it is
        # skipped: one topic that breaks phpBB (a General Error) must not stop every poll.
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

    async def _board_answers(self, run: Run) -> bool:
        """Whether the board serves feeds now: one conditional request if none answered yet."""
        # Its validators are not updated (its entries are not read here), so the next poll
        # still sees what changed in that feed.
        if run.board_answers:
            return True
        route = f"forum/{self._config.forums[0]}" if self._config.forums else ""
        try:
            reply = await self._client.get(
                run, self._client.feed_url(route), ACCEPT, self._client.conditional(run, route)
            )
        except (RateLimited, TransientError) as err:
            run.stop(err)
            return False
        run.board_answers = reply.status in (200, 304)
        return run.board_answers

    async def _read_topic(self, run: Run, topic_id: int) -> None:
        key = f"topic/{topic_id}"
        reply = await self._client.get_feed(run, key)
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
    def _refused(run: Run, topic_id: int, reply: Reply) -> None:
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

    def _complete_threads(self, run: Run) -> dict[int, frozenset[int]]:
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

    async def _read_new_topics(self, run: Run) -> None:
        """The "new topics" feed lists the first post of the newest topics: replies' parent."""
        # It is on by default (feed_topics_new) but optional, and only a hint: when it is
        # disabled or refused, first posts are learned from complete topic reads alone.
        try:
            reply = await self._client.get_feed(run, "topics")
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

    async def _resolve_unknown_topics(self, run: Run) -> None:
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

    async def _lookup_topic(self, run: Run, post_id: int) -> int | None:
        reply = await self._client.get(run, f"{self._base}/viewtopic.php?p={post_id}", "text/html")
        if reply.status != 200:
            return None  # gone again, or hidden from guests: nothing to report
        page = reply.body.decode("utf-8", "replace")
        canonical = _CANONICAL.search(page)
        match = _TOPIC_LINK.search(canonical.group(1) if canonical else page)
        return int(match.group(1)) if match else None

    async def _confirm_board_answers(self, run: Run) -> None:
        """Every feed we asked for answered 404/403: ask the board-wide feed whether it is us."""
        reply = await self._client.get_feed(run, "")
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

    # --- mapping --------------------------------------------------------------------------

    def _parse(
        self, run: Run, reply: Reply, key: str, *, learn_window: bool = True
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

    def _learn_window(self, run: Run, count: int) -> None:
        # Every post feed of a board is cut at the same `feed_limit_post`, so a feed with this
        # many entries proves the window is at least that wide.
        run.cursor.window = max(run.cursor.window, count)

    def _batch(self, run: Run, request: FetchRequest) -> Batch:
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

    def _next_cursor(self, run: Run, request: FetchRequest) -> Mapping[str, Any]:
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
        cursor.gone &= read_topics | {int(t) for t in request.active_threads if digits(t)}
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


def _fold(name: str) -> str:
    """phpBB compares user names case-insensitively (username_clean)."""
    return " ".join(name.split()).casefold()
