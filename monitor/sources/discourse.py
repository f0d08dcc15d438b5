"""Discourse adapter: topic lists, topics and posts into domain messages and our error tree."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, TypeGuard

import aiohttp
from yarl import URL

from monitor.clock import Clock
from monitor.config import DiscourseConfig
from monitor.domain import Batch, Message
from monitor.sources.base import (
    AuthError,
    FatalError,
    FetchRequest,
    RateLimited,
    TransientError,
)
from monitor.sources.budget import RequestBudget
from monitor.sources.http import request_json

# Post types (Post.types in Discourse's app/models/post.rb): only regular posts are messages;
# moderator actions, small actions ("closed this topic") and staff whispers never are.
REGULAR_POST = 1
# TopicView.chunk_size: /t/{id}.json carries this many posts, the web client asks for the rest
# of `post_stream.stream` in chunks of the same size.
POSTS_PER_REQUEST = 20
# A 429 without Retry-After (e.g. nginx's own page): wait out the whole admin API window.
DEFAULT_RATE_LIMIT_WAIT = 60.0
# A topic list that keeps offering `more_topics_url` is a server bug, not a reason to loop.
MAX_LIST_PAGES = 50
# Discourse's automatic groups that stand for a user flag rather than a primary group.
_FLAG_GROUPS: Mapping[str, str] = MappingProxyType(
    {"staff": "staff", "admins": "admin", "moderators": "moderator"}
)
_CREDENTIALS_PROBLEM = "API username or key is invalid"
_NEW_KEY = (
    "create a new API key (Admin > API > New API Key, read access to topics and posts) for the"
    " configured api_username and update api_key in the config"
)
_TAG = re.compile(r"<[^>]+>")
_BREAK = re.compile(r"<br\s*/?>|</p>|</li>|</h\d>|</blockquote>", re.IGNORECASE)


@dataclass(frozen=True, kw_only=True)
class Moderators:
    """Who answers for the brand: usernames, user ids, primary groups and staff flags."""

    usernames: frozenset[str] = frozenset()
    user_ids: frozenset[int] = frozenset()
    groups: frozenset[str] = frozenset()
    flags: frozenset[str] = frozenset()  # "staff", "admin", "moderator"

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Moderators:
        """Read config entries: "alice", "id:42", "group:support", "group:staff"."""
        usernames: set[str] = set()
        user_ids: set[int] = set()
        groups: set[str] = set()
        flags: set[str] = set()
        for entry in entries:
            kind, _, value = entry.partition(":")
            if kind == "id" and value.strip().lstrip("-").isdigit():
                user_ids.add(int(value.strip()))
            elif kind == "group" and value.strip():
                group = value.strip().lower()
                groups.add(group)
                if group in _FLAG_GROUPS:
                    flags.add(_FLAG_GROUPS[group])
            else:
                # Discourse usernames are case-insensitive (users.username_lower).
                usernames.add(entry.strip().lower())
        return cls(
            usernames=frozenset(usernames),
            user_ids=frozenset(user_ids),
            groups=frozenset(groups),
            flags=frozenset(flags),
        )

    def match(self, post: Mapping[str, Any]) -> bool:
        """Whether a serialized post was written by one of the brand's moderators."""
        username = post.get("username")
        if isinstance(username, str) and username.lower() in self.usernames:
            return True
        user_id = post.get("user_id")
        if isinstance(user_id, int) and not isinstance(user_id, bool) and user_id in self.user_ids:
            return True
        group = post.get("primary_group_name")
        if isinstance(group, str) and group.lower() in self.groups:
            return True
        return any(post.get(flag) is True for flag in self.flags)


@dataclass(frozen=True, kw_only=True)
class ListCursor:
    """How far the topic lists were read: the newest `bumped_at` and the topics bumped then."""

    since: datetime
    at_since: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, raw: Mapping[str, Any], default: datetime) -> ListCursor:
        """The saved cursor, or one starting at `default` (the backfill start)."""
        value = raw.get("bumped_since")
        ids = raw.get("bumped_ids")
        try:
            since = _parse_time(value) if isinstance(value, str) else None
        except ValueError:
            since = None
        if since is None:
            return cls(since=default)
        at_since = frozenset(str(i) for i in ids) if isinstance(ids, list) else frozenset()
        return cls(since=since, at_since=at_since)

    def is_new(self, topic: ListedTopic) -> bool:
        """Bumped after the cursor (a tie counts unless that topic was seen at that instant)."""
        return topic.bumped_at > self.since or (
            topic.bumped_at == self.since and topic.id not in self.at_since
        )

    def advanced(self, topics: Iterable[ListedTopic]) -> ListCursor:
        """The cursor after reading `topics`."""
        listed = list(topics)
        newest = max((t.bumped_at for t in listed), default=self.since)
        if newest < self.since:
            return self
        at_newest = {t.id for t in listed if t.bumped_at == newest}
        if newest == self.since:
            return ListCursor(since=newest, at_since=self.at_since | at_newest)
        return ListCursor(since=newest, at_since=frozenset(at_newest))

    def to_json(self) -> dict[str, Any]:
        """The cursor as the store keeps it."""
        return {"bumped_since": _wire_time(self.since), "bumped_ids": sorted(self.at_since)}


@dataclass(frozen=True, kw_only=True)
class ListedTopic:
    """One entry of a topic list."""

    id: str
    bumped_at: datetime
    pinned: bool


@dataclass(kw_only=True)
class _FetchState:
    """What one fetch accumulates across its requests (mutable on purpose)."""

    requests: int = 0
    # The refusal that ended the fetch early (what came before it is kept).
    stopped: RateLimited | TransientError | None = None


@dataclass(kw_only=True)
class _Listing:
    """Reading the topic lists: the list URLs still to read (the first is where to go on) and
    the topics listed so far."""

    paths: list[str]
    found: dict[str, ListedTopic] = field(default_factory=dict)
    pages_read: int = 0

    @property
    def done(self) -> bool:
        """Every list read to `since`."""
        return not self.paths

    def to_json(self) -> dict[str, Any]:
        """The form the cursor keeps."""
        return {
            "paths": list(self.paths),
            "found": [[t.id, _wire_time(t.bumped_at), t.pinned] for t in self.found.values()],
        }

    @classmethod
    def load(cls, raw: Any) -> _Listing | None:
        """A saved listing, or None when absent or unreadable."""
        if not isinstance(raw, dict) or not isinstance(raw.get("paths"), list):
            return None
        found: dict[str, ListedTopic] = {}
        for entry in raw.get("found") or []:
            try:
                topic_id, bumped, pinned = entry
                found[str(topic_id)] = ListedTopic(
                    id=str(topic_id), bumped_at=_parse_time(str(bumped)), pinned=bool(pinned)
                )
            except (TypeError, ValueError):
                return None
        # pages_read > 0: a resumed listing has made progress before.
        return cls(paths=[str(p) for p in raw["paths"]], found=found, pages_read=1)


@dataclass(frozen=True, kw_only=True)
class _Resume:
    """The rest of an interrupted poll, kept in the cursor: the next fetch does it first."""

    listing: _Listing | None  # topic lists not read to the end yet
    topics: tuple[str, ...]  # listed topics (and rechecks) not read yet
    advance: dict[str, Any] | None  # the list cursor to apply once the topics are read
    # A topic read part-way: the post ids already returned.
    partial: Mapping[str, list[int]] = field(default_factory=dict)

    @classmethod
    def load(cls, cursor: Mapping[str, Any]) -> _Resume | None:
        """The saved rest of a poll, or None (none, or unreadable: start afresh)."""
        raw = cursor.get("resume")
        if not isinstance(raw, dict) or not isinstance(raw.get("topics"), list):
            return None
        listing = _Listing.load(raw.get("listing"))
        advance = raw.get("advance")
        if listing is None and not isinstance(advance, dict):
            return None
        partial = raw.get("partial")
        return cls(
            listing=listing,
            topics=tuple(str(t) for t in raw["topics"]),
            advance=advance if isinstance(advance, dict) else None,
            partial={
                str(topic): [int(i) for i in ids if _is_int(i)]
                for topic, ids in (partial.items() if isinstance(partial, dict) else [])
                if isinstance(ids, list)
            },
        )

    def to_json(self) -> dict[str, Any]:
        """The form the cursor keeps."""
        return {
            "listing": None if self.listing is None else self.listing.to_json(),
            "topics": list(self.topics),
            "advance": self.advance,
            "partial": dict(self.partial),
        }


@dataclass(frozen=True, kw_only=True)
class _TopicRead:
    """A topic's messages, and whether every post of its stream came back."""

    messages: list[Message]
    complete: bool
    loaded: frozenset[int] = frozenset()  # post ids read (with those known before)


class DiscourseSource:
    """Polls one Discourse site: bumped topics from the topic lists, then whole topics.

    Every request first takes a slot from the site's shared RequestBudget (the admin API allows
    60 requests a minute per site and key), and a 429 blocks the whole site for as long as the
    server says. Requests are made one at a time: the budget, not latency, bounds a poll.
    """

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

    async def fetch(self, request: FetchRequest) -> Batch:
        """Topics bumped since the cursor, plus active topics (least recently read first).

        A throttle or a transient failure in the middle keeps what came before: the topic-list
        pages read and the topics read are in the batch, which is marked interrupted, and the
        cursor's `resume` part says what is left; the next fetch does that first.
        """
        state = _FetchState()
        cursor: Mapping[str, Any] = request.cursor
        resume = _Resume.load(request.cursor) if request.include_feed else None
        advance: dict[str, Any] | None = None
        listing: _Listing | None = None
        topic_ids: list[str] = []
        if request.include_feed:
            backfill = self._clock.now() - timedelta(days=self._config.backfill_days)
            current = ListCursor.parse(request.cursor, backfill)
            if resume is not None and resume.listing is None:
                topic_ids, advance = list(resume.topics), resume.advance
            else:
                listing = (resume.listing if resume is not None else None) or self._new_listing()
                await self._read_lists(state, current.since, listing)
                if listing.done:
                    listed = list(listing.found.values())
                    topic_ids = list(dict.fromkeys(t.id for t in listed if current.is_new(t)))
                    topic_ids += self._rechecks(request.active_threads - set(topic_ids))
                    advance = current.advanced(listed).to_json()
        else:
            # A re-read before a breach: exactly the threads asked for, cursor untouched.
            topic_ids = sorted(t for t in request.active_threads if t.isdigit())
        messages: list[Message] = []
        complete: dict[str, frozenset[str]] = {}
        deleted: set[str] = set()
        read_at: dict[str, datetime] = {}
        left = list(topic_ids)
        partial: dict[str, list[int]] = {}
        while left and state.stopped is None:
            topic_id = left[0]
            known = frozenset(resume.partial.get(topic_id, ())) if resume else frozenset()
            try:
                read = await self._read_topic(state, topic_id, known)
            except (RateLimited, TransientError) as err:
                state.stopped = err
                break
            if read is not None and state.stopped is not None:
                # Refused part-way: keep its posts; the rest of it is read next time.
                messages.extend(read.messages)
                partial[topic_id] = sorted(read.loaded)
                break
            left.pop(0)
            read_at[topic_id] = self._clock.now()
            if read is None:
                deleted.add(topic_id)
                continue
            messages.extend(read.messages)
            if read.complete:
                complete[topic_id] = frozenset(m.platform_id for m in read.messages)
        # Only a fetch that succeeded counts as a read: a failed one is re-checked next time.
        self._last_read.update(read_at)
        stopped = state.stopped
        if stopped is not None:
            progress = messages or deleted or read_at or (listing and listing.pages_read)
            if not progress or not request.include_feed:
                raise stopped
            base = {k: v for k, v in request.cursor.items() if k != "resume"}
            unfinished = listing if listing is not None and not listing.done else None
            rest = _Resume(listing=unfinished, topics=tuple(left), advance=advance, partial=partial)
            cursor = {**base, "resume": rest.to_json()}
        elif request.include_feed and advance is not None:
            cursor = advance
        return Batch(
            messages=tuple(messages),
            cursor=cursor,
            complete_threads=complete,
            deleted_threads=frozenset(deleted),
            requests=state.requests,
            wait_seconds=stopped.retry_after if isinstance(stopped, RateLimited) else None,
            interrupted=stopped.reason if stopped is not None else None,
        )

    def _new_listing(self) -> _Listing:
        """The topic lists to read: /latest or each configured category's latest."""
        paths = [f"/c/{c}/l/latest.json" for c in self._config.categories] or ["/latest.json"]
        return _Listing(paths=[self._base + path for path in paths])

    def _rechecks(self, active: Iterable[str]) -> list[str]:
        """Active topics to re-read for edits, hides and deletes, which do not bump a topic.

        Each at most once per `recheck_after`, least recently read first, and no more than a
        share of one poll interval's budget, so a large backlog of active topics rotates
        instead of starving the topic lists (or the other sources on the site).
        """
        now = self._clock.now()
        due_before = now - timedelta(seconds=self._recheck_after)
        never = datetime.min.replace(tzinfo=UTC)
        due = [t for t in active if t.isdigit() and self._last_read.get(t, never) <= due_before]
        due.sort(key=lambda t: (self._last_read.get(t, never), int(t)))
        per_poll = self._budget.per_minute * max(self._config.poll_interval, 1.0) / 60.0
        return due[: max(1, int(per_poll * self._recheck_share))]

    # --- topic lists --------------------------------------------------------------------------

    async def _read_lists(self, state: _FetchState, since: datetime, listing: _Listing) -> None:
        """Every topic bumped at or after `since`, page by page into `listing`; a throttle or a
        transient failure after the first page stops it where it is (state.stopped)."""
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
                    if not listing.pages_read:
                        raise  # nothing read yet: the source's own failure
                    listing.paths[0] = url
                    state.stopped = err
                    return
                listing.pages_read += 1
                if body is None:  # only topic reads answer None
                    raise FatalError(f"GET {_path(url)}: topic list not available")
                topic_list = body.get("topic_list")
                if not isinstance(topic_list, dict) or not isinstance(
                    topic_list.get("topics"), list
                ):
                    raise TransientError(f"GET {_path(url)}: response without topic_list.topics")
                page = [_listed(raw) for raw in topic_list["topics"] if isinstance(raw, dict)]
                for topic in page:
                    listing.found[topic.id] = topic
                # Pinned topics lead the first page whatever their age; the rest is newest first.
                unpinned = [t for t in page if not t.pinned]
                if unpinned and min(t.bumped_at for t in unpinned) < since:
                    break
                url = self._next_page(topic_list.get("more_topics_url"), url)
                if url in seen_urls:
                    raise TransientError(f"GET {_path(url)}: more_topics_url repeats itself")
            listing.paths.pop(0)

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
                    f"GET {_path(current)}: more_topics_url points at {absolute.origin()},"
                    f" not at the configured base_url {self._origin}"
                )
            path = absolute.raw_path
        elif self._base_path and not path.startswith(self._base_path + "/"):
            path = self._base_path + path  # a forum in a subfolder
        if not path.endswith(".json"):
            path += ".json"
        return f"{self._origin}{path}" + (f"?{query}" if query else "")

    # --- topics -------------------------------------------------------------------------------

    async def _read_topic(
        self, state: _FetchState, topic_id: str, known: frozenset[int] = frozenset()
    ) -> _TopicRead | None:
        """A topic (first chunk, then the rest of its stream); None if it is gone.

        `known`: posts an interrupted read already returned; their chunks are not fetched
        again and they are not returned twice. A chunk refused after the first request ends
        the read (state.stopped) with the posts so far; `loaded` says which those are.

        A topic longer than `max_posts_per_topic` is read as its first chunk plus its newest
        posts, where new questions and answers are, and is not reported complete: re-reading
        a mega topic in full on every bump would eat the whole site budget.
        """
        body = await self._get(state, f"{self._base}/t/{topic_id}.json", what="topic")
        if body is None:
            return None
        if body.get("deleted_at"):
            return None  # staff still see a deleted topic; for us it is gone
        stream_body = body.get("post_stream")
        if not isinstance(stream_body, dict):
            raise TransientError(f"GET /t/{topic_id}.json: response without post_stream")
        stream = [i for i in stream_body.get("stream") or [] if _is_int(i)]
        posts = {p["id"]: p for p in _post_list(stream_body) if _is_int(p.get("id"))}
        missing = [post_id for post_id in stream if post_id not in posts and post_id not in known]
        room = max(0, self._max_posts - len(posts) - len(known))
        missing = missing[len(missing) - room :] if len(missing) > room else missing
        for start in range(0, len(missing), POSTS_PER_REQUEST):
            chunk = missing[start : start + POSTS_PER_REQUEST]
            query = "&".join(f"post_ids%5B%5D={post_id}" for post_id in chunk)
            url = f"{self._base}/t/{topic_id}/posts.json?{query}"
            try:
                more = await self._get(state, url, what="topic")
            except (RateLimited, TransientError) as err:
                state.stopped = err  # keep what was read; the rest comes next time
                break
            if more is None:
                return None  # the topic vanished between the two requests
            more_stream = more.get("post_stream")
            if not isinstance(more_stream, dict):
                raise TransientError(f"GET /t/{topic_id}/posts.json: response without post_stream")
            for post in _post_list(more_stream):
                if _is_int(post.get("id")):
                    posts[post["id"]] = post
        ordered = [posts[i] for i in stream if i in posts]
        slug = body.get("slug") if isinstance(body.get("slug"), str) else "topic"
        messages = [
            m
            for m in self._messages(topic_id, str(slug), ordered)
            if int(m.platform_id) not in known
        ]
        return _TopicRead(
            messages=messages,
            complete=not known and all(i in posts for i in stream),
            loaded=frozenset(posts) | known,
        )

    def _messages(
        self, topic_id: str, slug: str, posts: Sequence[Mapping[str, Any]]
    ) -> list[Message]:
        by_number = {p["post_number"]: str(p["id"]) for p in posts if _is_int(p.get("post_number"))}
        first_id = by_number.get(1)
        messages = []
        for post in posts:
            if post.get("post_type") != REGULAR_POST:
                continue  # whispers, small actions and moderator actions are neither
            if post.get("deleted_at") or post.get("user_deleted") is True:
                continue  # left out: the pipeline keeps a tombstone if we had stored it
            is_brand = self._moderators.match(post)
            user_id = post.get("user_id")
            if _is_int(user_id) and user_id < 0 and not is_brand:
                continue  # system and bots (negative ids) are not consumers
            messages.append(self._message(topic_id, slug, post, by_number, first_id, is_brand))
        return messages

    def _message(
        self,
        topic_id: str,
        slug: str,
        post: Mapping[str, Any],
        by_number: Mapping[int, str],
        first_id: str | None,
        is_brand: bool,
    ) -> Message:
        post_id = str(post["id"])
        number = post.get("post_number")
        if not _is_int(number):
            raise TransientError(f"topic {topic_id}: post {post_id} without a post_number")
        reply_to = post.get("reply_to_post_number")
        if number == 1:
            parent = None
        elif _is_int(reply_to):
            # A reply to a post we cannot see (deleted) has no known parent.
            parent = by_number.get(reply_to)
        else:
            parent = first_id  # a reply to the topic answers its first post
        user_id = post.get("user_id")
        username = post.get("username")
        return Message(
            platform_id=post_id,
            thread_id=topic_id,
            parent_id=parent,
            author_id=str(user_id) if _is_int(user_id) else None,
            author_name=username if isinstance(username, str) else None,
            text=cooked_text(post.get("cooked")),
            created_at=_created_at(post, post_id),
            seq=number,
            is_brand=is_brand,
            hidden=post.get("hidden") is True,
            permalink=f"{self._base}/t/{slug}/{topic_id}/{number}",
        )

    # --- requests -----------------------------------------------------------------------------

    async def _get(self, state: _FetchState, url: str, *, what: str) -> Mapping[str, Any] | None:
        """One GET under the site budget; None for a topic that is gone or out of sight."""
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
            return body
        said = self._redact(_said(body))
        error_type = body.get("error_type") if isinstance(body, dict) else None
        if status in (401, 403):
            if _bad_key(said) or error_type == "not_logged_in" or status == 401:
                raise AuthError(
                    f"Discourse refused the API key or Api-Username"
                    f" {self._config.api_username!r} (HTTP {status} {error_type or '-'}):"
                    f" {_NEW_KEY}. Discourse said {said!r} [{where}]"
                )
            if what == "topic":
                return None  # the API user may not see this topic (moved to a private category)
            raise AuthError(
                f"the API user {self._config.api_username!r} may not read this list (HTTP"
                f" {status} {error_type or '-'}): use an admin key or give the user access to"
                f" the configured categories. Discourse said {said!r} [{where}]"
            )
        if status == 404 and what == "topic":
            return None
        if status == 404:
            raise FatalError(
                f"{where}: not found: check base_url and categories. Discourse said {said!r}"
            )
        raise FatalError(f"{where}: HTTP {status} ({error_type or '-'}): Discourse said {said!r}")

    def _redact(self, text: str) -> str:
        if len(self._key) >= 4:
            text = text.replace(self._key, "***")
        return text


# --- wire helpers -----------------------------------------------------------------------------


def parse_discourse_time(value: str) -> datetime:
    """Parse a Discourse timestamp such as `2024-01-05T21:13:04.916Z` into aware UTC."""
    return _parse_time(value)


def cooked_text(cooked: Any) -> str:
    """Plain text of a post's `cooked` HTML."""
    if not isinstance(cooked, str):
        return ""
    text = html.unescape(_TAG.sub("", _BREAK.sub("\n", cooked)))
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def _parse_time(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp without offset: {value!r}")
    return moment.astimezone(UTC)


def _wire_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _created_at(post: Mapping[str, Any], post_id: str) -> datetime:
    value = post.get("created_at")
    try:
        if not isinstance(value, str):
            raise ValueError("not a string")
        return _parse_time(value)
    except ValueError as err:
        raise TransientError(
            f"Discourse returned post {post_id} with unreadable created_at"
        ) from err


def _listed(raw: Mapping[str, Any]) -> ListedTopic:
    topic_id = raw.get("id")
    bumped = raw.get("bumped_at") or raw.get("last_posted_at") or raw.get("created_at")
    if not _is_int(topic_id) or not isinstance(bumped, str):
        raise TransientError("Discourse listed a topic without id or bumped_at")
    try:
        bumped_at = _parse_time(bumped)
    except ValueError as err:
        raise TransientError(
            f"Discourse listed topic {topic_id} with unreadable bumped_at"
        ) from err
    return ListedTopic(id=str(topic_id), bumped_at=bumped_at, pinned=raw.get("pinned") is True)


def _post_list(stream: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    posts = stream.get("posts")
    return [p for p in posts if isinstance(p, dict)] if isinstance(posts, list) else []


def _said(body: Any) -> str:
    """The message of a Discourse error body {"errors": [...], "error_type": ...}."""
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            return " ".join(str(e) for e in errors)[:300]
        if isinstance(body.get("message"), str):
            return str(body["message"])[:300]
    if isinstance(body, list) and body:
        return " ".join(str(e) for e in body)[:300]
    return "no message"


def _bad_key(said: str) -> bool:
    return _CREDENTIALS_PROBLEM.lower() in said.lower()


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _path(url: str) -> str:
    return str(URL(url, encoded=True).with_query(None))
