"""DiscourseSource: bumped topics from the topic lists, then whole topics, under the budget."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from yarl import URL

from monitor.clock import Clock
from monitor.config import DiscourseConfig
from monitor.domain import Batch, Message, Skipped
from monitor.sources.base import (
    AuthError,
    FatalError,
    FetchRequest,
    RateLimited,
    Refused,
    TransientError,
)
from monitor.sources.budget import RequestBudget
from monitor.sources.discourse._state import (
    FetchState,
    ListCursor,
    Listing,
    Plan,
    Resume,
    TopicRead,
    TopicsRun,
    Unfinished,
    without_resume,
)
from monitor.sources.discourse._wire import (
    REGULAR_POST,
    ListedTopic,
    Malformed,
    Moderators,
    bad_key,
    cooked_text,
    error_message,
    listed_topic,
    post_created_at,
    post_list,
)
from monitor.sources.http import redact, request_json, without_query
from monitor.sources.wire import is_int

# TopicView.chunk_size: /t/{id}.json carries this many posts, the web client asks for the rest
# of `post_stream.stream` in chunks of the same size.
POSTS_PER_REQUEST = 20

# A 429 without Retry-After (e.g. nginx's own page): wait out the whole admin API window.
DEFAULT_RATE_LIMIT_WAIT = 60.0

# A topic list that keeps offering `more_topics_url` is a server bug, not a reason to loop.
MAX_LIST_PAGES = 50

_NEW_KEY = (
    "create a new API key (Admin > API > New API Key, read access to topics and posts) for the"
    " configured api_username and update api_key in the config"
)


class _TopicGone(Exception):
    """The topic answered 404 or came back deleted: for us it no longer exists."""


class DiscourseSource:
    """Polls one Discourse site: bumped topics from the topic lists, then whole topics."""

    # Every request first takes a slot from the site's shared RequestBudget (the admin API allows
    # 60 requests a minute per site and key), and a 429 blocks the whole site for as long as the
    # server says. Requests are made one at a time: the budget, not latency, bounds a poll.

    def __init__(
        self,
        config: DiscourseConfig,
        session: aiohttp.ClientSession,
        clock: Clock,
        budget: RequestBudget,
        *,
        recheck_after: float = 600.0,
        recheck_share: float = 0.5,
        max_posts_per_topic: int = 200,
    ) -> None:
        self._config = config
        self._session = session
        self._clock = clock
        self._budget = budget
        self._recheck_after = recheck_after
        self._recheck_share = recheck_share
        self._max_posts = max_posts_per_topic
        self._base = config.base_url.rstrip("/")
        self._origin = URL(self._base).origin()
        self._base_path = URL(self._base).path.rstrip("/")
        self._key = config.api_key.get_secret_value()
        # Headers, never query parameters: URLs end up in logs and exception messages.
        self._headers = {
            "Api-Key": self._key,
            "Api-Username": config.api_username,
            "Accept": "application/json",
        }
        self._moderators = Moderators.parse(config.moderators)
        # When each topic was last read, to re-check the least recently read ones first.
        self._last_read: dict[str, datetime] = {}
        self._unfinished: Unfinished | None = None  # a topic a refusal cut short

    async def fetch(self, request: FetchRequest) -> Batch:
        """Topics bumped since the cursor, plus active topics (least recently read first)."""
        # A throttle or a transient failure in the middle keeps what came before: the topic-list
        # pages read and the whole topics read are in the batch, which is marked interrupted, and
        # the cursor's `resume` part says what is left; the next fetch does that first. A topic
        # the forum refuses (403, 400) or that fails twice in a row is skipped, not the poll.
        state = FetchState()
        if not request.include_feed:
            return await self._reread(state, request)
        resume = Resume.load(request.cursor)
        plan = await self._plan(state, request, resume)
        run = TopicsRun(
            left=list(plan.topics), request=request, failed=resume.failed if resume else None
        )
        if plan.listed:
            await self._read_topics(state, run, resumable=True)
        # Only a read that succeeded counts: a failed one is re-checked next time.
        self._last_read.update(run.read_at)
        stopped = state.stopped
        if stopped is None:
            return self._batch(state, run, plan.advance or without_resume(request.cursor))
        progress = run.read_at or run.struck or (plan.listing and plan.listing.pages_read)
        if not progress:
            raise stopped  # nothing gained: the source's failure, the cursor stays as it was
        rest = Resume(
            listing=None if plan.listed else plan.listing,
            topics=tuple(run.left),
            advance=plan.advance,
            failed=run.failed,
        )
        return self._batch(state, run, {**without_resume(request.cursor), "resume": rest.to_json()})

    async def _reread(self, state: FetchState, request: FetchRequest) -> Batch:
        """A re-read before a breach: exactly the threads asked for, cursor untouched."""
        run = TopicsRun(left=sorted(t for t in request.active_threads if t.isdigit()))
        await self._read_topics(state, run, resumable=False)
        self._last_read.update(run.read_at)
        if state.stopped is not None:
            raise state.stopped
        return self._batch(state, run, request.cursor)

    async def _plan(self, state: FetchState, request: FetchRequest, resume: Resume | None) -> Plan:
        """The topics to read: what an interrupted poll left, else the lists read anew."""
        if resume is not None and resume.listing is None:
            return Plan(topics=resume.topics, advance=resume.advance, listing=None)
        backfill = self._clock.now() - timedelta(days=self._config.backfill_days)
        current = ListCursor.parse(request.cursor, backfill)
        listing = (resume.listing if resume is not None else None) or self._new_listing()
        await self._read_lists(state, current.since, listing)
        if not listing.done:
            return Plan(topics=(), advance=None, listing=listing)
        listed = list(listing.found.values())
        topics = list(dict.fromkeys(t.id for t in listed if current.is_new(t)))
        topics += self._rechecks(request.active_threads - set(topics))
        return Plan(
            topics=tuple(topics), advance=current.advanced(listed).to_json(), listing=listing
        )

    @staticmethod
    def _batch(state: FetchState, run: TopicsRun, cursor: Mapping[str, Any]) -> Batch:
        """What the fetch read, interrupted or not, with the cursor to go on from."""
        return state.batch(cursor, run.messages, run.complete, run.deleted)

    def _new_listing(self) -> Listing:
        """The topic lists to read: /latest or each configured category's latest."""
        paths = [f"/c/{c}/l/latest.json" for c in self._config.categories] or ["/latest.json"]
        return Listing(paths=[self._base + path for path in paths])

    def _rechecks(self, active: Iterable[str]) -> list[str]:
        """Active topics to re-read for edits, hides and deletes, which do not bump a topic."""
        # Each at most once per `recheck_after`, least recently read first, and no more than a
        # share of one poll interval's budget, so a large backlog of active topics rotates
        # instead of starving the topic lists (or the other sources on the site).
        now = self._clock.now()
        due_before = now - timedelta(seconds=self._recheck_after)
        never = datetime.min.replace(tzinfo=UTC)
        due = [t for t in active if t.isdigit() and self._last_read.get(t, never) <= due_before]
        due.sort(key=lambda t: (self._last_read.get(t, never), int(t)))
        per_poll = self._budget.per_minute * max(self._config.poll_interval, 1.0) / 60.0
        return due[: max(1, int(per_poll * self._recheck_share))]

    # --- topic lists --------------------------------------------------------------------------

    async def _read_lists(self, state: FetchState, since: datetime, listing: Listing) -> None:
        """Every topic bumped at or after `since`, page by page into `listing`."""
        # A throttle or a transient failure stops it at the page refused (state.stopped), to go
        # on from there.
        while listing.paths:
            url: str | None = listing.paths[0]
            seen_urls: set[str] = set()
            for _ in range(MAX_LIST_PAGES):
                if url is None:
                    break
                seen_urls.add(url)
                try:
                    body = await self._get(state, url, what="topic list")
                except (RateLimited, TransientError) as err:
                    listing.paths[0] = url
                    state.stopped = err
                    return
                listing.pages_read += 1
                topic_list = body.get("topic_list")
                if not isinstance(topic_list, dict) or not isinstance(
                    topic_list.get("topics"), list
                ):
                    raise TransientError(
                        f"GET {without_query(url)}: response without topic_list.topics"
                    )
                page = self._listed_page(state, topic_list["topics"])
                for topic in page:
                    listing.found[topic.id] = topic
                # Pinned topics lead the first page whatever their age; the rest is newest first.
                unpinned = [t for t in page if not t.pinned]
                if unpinned and min(t.bumped_at for t in unpinned) < since:
                    break
                url = self._next_page(topic_list.get("more_topics_url"), url)
                if url in seen_urls:
                    raise TransientError(
                        f"GET {without_query(url)}: more_topics_url repeats itself"
                    )
            listing.paths.pop(0)

    @staticmethod
    def _listed_page(state: FetchState, entries: list[Any]) -> list[ListedTopic]:
        """A list page's topics; an entry without id or bump time is skipped, not the list."""
        page = []
        for raw in entries:
            if not isinstance(raw, dict):
                continue
            try:
                page.append(listed_topic(raw))
            except Malformed as err:
                # Not the topic's own id: the topic itself may well be readable.
                state.skipped[f"topic-list:{raw.get('id')}"] = Skipped(
                    reason="malformed", detail=str(err)
                )
        return page

    def _next_page(self, more: Any, current: str) -> str | None:
        """The JSON URL of `more_topics_url`, which Discourse sends as a path without .json."""
        if not isinstance(more, str) or not more:
            return None
        path, _, query = more.partition("?")
        if path.startswith(("http://", "https://")):
            absolute = URL(path, encoded=True)
            if absolute.origin() != self._origin:
                # Never hand the API key to a host the operator did not configure.
                raise FatalError(
                    f"GET {without_query(current)}: more_topics_url points at {absolute.origin()},"
                    f" not at the configured base_url {self._origin}"
                )
            path = absolute.raw_path
        elif self._base_path and not path.startswith(self._base_path + "/"):
            path = self._base_path + path  # a forum in a subfolder
        if not path.endswith(".json"):
            path += ".json"
        return f"{self._origin}{path}" + (f"?{query}" if query else "")

    # --- topics -------------------------------------------------------------------------------

    async def _read_topics(self, state: FetchState, run: TopicsRun, *, resumable: bool) -> None:
        """Read the queued topics in order until all are done or a refusal stops the fetch."""
        # A topic is delivered whole or not at all: one refused part-way stays at the head of the
        # queue, and the next fetch finishes it.
        while run.left and state.stopped is None:
            topic_id = run.left[0]
            try:
                read = await self._read_topic(state, topic_id)
            except _TopicGone:
                run.deleted.add(topic_id)
            except Refused as refused:
                state.skipped[topic_id] = refused.why
            except RateLimited as err:
                state.stopped = err
            except TransientError as err:
                if not (resumable and await self._gives_up_on(state, run, topic_id, err)):
                    state.stopped = state.stopped or err
            else:
                run.keep(topic_id, read)
                state.skipped.update(read.skipped)
            if state.stopped is None:
                run.finish(topic_id, self._clock.now())

    async def _gives_up_on(
        self, state: FetchState, run: TopicsRun, topic_id: str, err: TransientError
    ) -> bool:
        """Whether a topic that failed transiently is skipped (True), not the poll stopped."""
        # Only when the forum answers other requests does the failure count against the topic: the
        # first is noted and the next fetch retries it first (a 5xx burst or a throttle lets that
        # retry through); failing again, it is skipped. With nothing answered yet in this fetch,
        # one cheap request tells a broken topic from a forum in trouble.
        if not (state.answered or await self._forum_answers(state)):
            return False
        if run.failed == topic_id:
            state.skipped[topic_id] = Skipped(
                reason="bad_request",
                detail=f"topic {topic_id} failed twice in a row while the forum answered: {err}",
            )
            return True
        run.failed, run.struck = topic_id, True
        return False

    async def _forum_answers(self, state: FetchState) -> bool:
        """Whether the forum serves its first topic-list page now (else state.stopped says why)."""
        try:
            await self._get(state, self._new_listing().paths[0], what="topic list")
        except (RateLimited, TransientError) as err:
            state.stopped = err
            return False
        return True

    async def _read_topic(self, state: FetchState, topic_id: str) -> TopicRead:
        """A whole topic: its first chunk, then the rest of its stream."""
        # Raises _TopicGone or Refused for this topic alone, and RateLimited or
        # TransientError when a request of it could not be made now. In that last case what
        # came is kept in memory and the next fetch asks only for the rest (see Unfinished).
        carried, self._unfinished = self._unfinished, None
        fresh_since = self._clock.now() - timedelta(seconds=self._recheck_after)
        if carried is not None and carried.topic_id == topic_id and carried.at >= fresh_since:
            read = carried
        else:
            read = await self._first_chunk(state, topic_id)
        while read.chunks:
            try:
                await self._read_chunk(state, read)
            except (RateLimited, TransientError):
                self._unfinished = read
                raise
        return self._assembled(read)

    async def _first_chunk(self, state: FetchState, topic_id: str) -> Unfinished:
        """/t/{id}.json: the topic, its stream of post ids and the first 20 posts."""
        # A topic longer than `max_posts_per_topic` is read as its first chunk plus its newest
        # posts, where new questions and answers are, and is not reported complete: re-reading
        # a mega topic in full on every bump would eat the whole site budget.
        body = await self._get(state, f"{self._base}/t/{topic_id}.json", what="topic")
        if body.get("deleted_at"):
            raise _TopicGone  # staff still see a deleted topic; for us it is gone
        stream_body = body.get("post_stream")
        if not isinstance(stream_body, dict):
            raise TransientError(f"GET /t/{topic_id}.json: response without post_stream")
        slug = body.get("slug")
        read = Unfinished(
            topic_id=topic_id,
            at=self._clock.now(),
            slug=slug if isinstance(slug, str) else "topic",
            stream=[i for i in stream_body.get("stream") or [] if is_int(i)],
        )
        read.collect(post_list(stream_body))
        missing = [post_id for post_id in read.stream if post_id not in read.posts]
        room = max(0, self._max_posts - len(read.posts))
        missing = missing[len(missing) - room :] if len(missing) > room else missing
        read.chunks = [
            missing[start : start + POSTS_PER_REQUEST]
            for start in range(0, len(missing), POSTS_PER_REQUEST)
        ]
        return read

    async def _read_chunk(self, state: FetchState, read: Unfinished) -> None:
        """The next chunk of a topic's stream from /t/{id}/posts.json."""
        query = "&".join(f"post_ids%5B%5D={post_id}" for post_id in read.chunks[0])
        url = f"{self._base}/t/{read.topic_id}/posts.json?{query}"
        more = await self._get(state, url, what="topic")
        stream = more.get("post_stream")
        if not isinstance(stream, dict):
            raise TransientError(f"GET /t/{read.topic_id}/posts.json: response without post_stream")
        read.collect(post_list(stream))
        read.chunks.pop(0)

    def _assembled(self, read: Unfinished) -> TopicRead:
        """The topic's messages, its posts alive if the whole stream came, and what was skipped."""
        topic_id = read.topic_id
        ordered = [read.posts[i] for i in read.stream if i in read.posts]
        messages, malformed = self._messages(topic_id, read.slug, ordered)
        whole = not read.without_id and all(i in read.posts for i in read.stream)
        # A malformed post still exists: it counts as alive, so a stored copy is not tombstoned.
        alive = frozenset({m.platform_id for m in messages} | malformed.keys())
        skipped = {f"post:{post_id}": why for post_id, why in malformed.items()}
        for number, post in enumerate(read.without_id, start=1):
            where = post.get("post_number") if is_int(post.get("post_number")) else f"?{number}"
            skipped[f"post:{topic_id}#{where}"] = Skipped(
                reason="malformed", detail=f"topic {topic_id}: a post without an id"
            )
        return TopicRead(messages=messages, alive=alive if whole else None, skipped=skipped)

    def _messages(
        self, topic_id: str, slug: str, posts: Sequence[Mapping[str, Any]]
    ) -> tuple[list[Message], dict[str, Skipped]]:
        """The regular posts as messages, and (by post id) the ones skipped as malformed."""
        by_number = {p["post_number"]: str(p["id"]) for p in posts if is_int(p.get("post_number"))}
        messages: list[Message] = []
        skipped: dict[str, Skipped] = {}
        for post in posts:
            if post.get("post_type") != REGULAR_POST:
                continue  # whispers, small actions and moderator actions are neither
            if post.get("deleted_at") or post.get("user_deleted") is True:
                continue  # left out: the pipeline keeps a tombstone if we had stored it
            is_brand = self._moderators.match(post)
            user_id = post.get("user_id")
            if is_int(user_id) and user_id < 0 and not is_brand:
                continue  # system and bots (negative ids) are not consumers
            try:
                messages.append(self._message(topic_id, slug, post, by_number, is_brand))
            except Malformed as err:
                skipped[str(post["id"])] = Skipped(reason="malformed", detail=str(err))
        return messages, skipped

    def _message(
        self,
        topic_id: str,
        slug: str,
        post: Mapping[str, Any],
        by_number: Mapping[int, str],
        is_brand: bool,
    ) -> Message:
        post_id = str(post["id"])
        number = post.get("post_number")
        if not is_int(number):
            raise Malformed(f"topic {topic_id}: post {post_id} without a post_number")
        reply_to = post.get("reply_to_post_number")
        if number == 1:
            parent = None
        elif is_int(reply_to):
            # A reply to a post we cannot see (deleted) has no known parent.
            parent = by_number.get(reply_to)
        else:
            parent = by_number.get(1)  # a reply to the topic answers its first post
        # A post whose author was deleted has neither (discourse/discourse#4100, #28992): an
        # unknown consumer, not an error.
        user_id = post.get("user_id")
        username = post.get("username")
        return Message(
            platform_id=post_id,
            thread_id=topic_id,
            parent_id=parent,
            author_id=str(user_id) if is_int(user_id) else None,
            author_name=username if isinstance(username, str) else None,
            text=cooked_text(post.get("cooked")),
            created_at=post_created_at(post, topic_id, post_id),
            seq=number,
            is_brand=is_brand,
            hidden=post.get("hidden") is True,
            permalink=f"{self._base}/t/{slug}/{topic_id}/{number}",
        )

    # --- requests -----------------------------------------------------------------------------

    async def _get(self, state: FetchState, url: str, *, what: str) -> Mapping[str, Any]:
        """One GET under the site budget; _TopicGone or Refused when only that topic is refused."""
        await self._budget.acquire()
        state.requests += 1
        try:
            response = await request_json(
                self._session,
                url,
                headers=self._headers,
                timeout=self._config.request_timeout,
                clock=self._clock,
            )
        except RateLimited as err:
            wait = err.retry_after if err.retry_after is not None else DEFAULT_RATE_LIMIT_WAIT
            # Every source on this site waits: the limit is per site and key, not per source.
            self._budget.block_for(wait)
            raise RateLimited(
                f"rate limited by Discourse, waiting {wait:g} s: {err}", retry_after=wait
            ) from err
        body, status = response.body, response.status
        where = f"GET {response.url}"
        if 200 <= status < 300:
            if not isinstance(body, dict):
                raise TransientError(f"{where}: response is not a JSON object")
            state.answered += 1
            return body
        said = redact(error_message(body), self._key)
        error_type = body.get("error_type") if isinstance(body, dict) else None
        if status == 401 or (status == 403 and (bad_key(said) or error_type == "not_logged_in")):
            raise AuthError(
                f"Discourse refused the API key or Api-Username"
                f" {self._config.api_username!r} (HTTP {status} {error_type or '-'}):"
                f" {_NEW_KEY}. Discourse said {said!r} [{where}]"
            )
        if what == "topic" and status not in _RETRY_STATUSES:
            state.answered += 1
            raise _topic_refusal(status, error_type, said, where)
        if status == 403:
            raise AuthError(
                f"the API user {self._config.api_username!r} may not read this list (HTTP"
                f" {status} {error_type or '-'}): use an admin key or give the user access to"
                f" the configured categories. Discourse said {said!r} [{where}]"
            )
        if status in _RETRY_STATUSES:
            raise TransientError(f"{where}: HTTP {status}: Discourse said {said!r}")
        if status == 404:
            raise FatalError(
                f"{where}: not found: check base_url and categories. Discourse said {said!r}"
            )
        raise FatalError(f"{where}: HTTP {status} ({error_type or '-'}): Discourse said {said!r}")


# 4xx that say "not now" rather than "not this": Request Timeout, Too Early.
_RETRY_STATUSES = frozenset({408, 425})


def _topic_refusal(status: int, error_type: Any, said: str, where: str) -> Exception:
    """What a 4xx answer for one topic means: gone (404), or refused and to be skipped."""
    if status == 404:
        return _TopicGone()
    # 403 invalid_access: moved to a category the API user may not see (TopicView
    # check_and_raise_exceptions); 400 invalid_parameters and other 4xx: refused as asked.
    reason = "forbidden" if status == 403 else "bad_request"
    detail = f"{where}: HTTP {status} {error_type or '-'}: Discourse said {said!r}"
    return Refused(Skipped(reason=reason, detail=detail))
