"""InstagramSource: the account's new media, then the comments and replies of each thread."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import aiohttp
from yarl import URL

from monitor.clock import Clock
from monitor.config import InstagramConfig
from monitor.domain import Batch, Message, Skipped
from monitor.sources.base import (
    AuthError,
    FatalError,
    FetchRequest,
    RateLimited,
    SourceError,
    TransientError,
    most_severe,
)
from monitor.sources.facebook import graph_object, parse_graph_time, parse_usage
from monitor.sources.graph_access import GraphAccess
from monitor.sources.http import without_query
from monitor.sources.instagram._wire import (
    COMMENT_FIELDS,
    INSTAGRAM,
    MEDIA_FIELDS,
    REPLY_FIELDS,
    Gone,
    Malformed,
    Raw,
    comment_message,
    media_message,
    next_link,
)


@dataclass(kw_only=True)
class _Fetch:
    """What one fetch accumulates across its requests (mutable on purpose)."""

    limiter: asyncio.Semaphore
    requests: int = 0
    usage_ratio: float | None = None
    regain_seconds: float | None = None
    errors: list[SourceError] = field(default_factory=list)  # throttles and transient failures
    skipped: dict[str, Skipped] = field(default_factory=dict)


class InstagramSource:
    """Polls one Instagram professional account: each media is a thread of comments."""

    def __init__(
        self,
        config: InstagramConfig,
        session: aiohttp.ClientSession,
        clock: Clock,
        *,
        page_size: int = 50,
        concurrency: int = 4,
    ) -> None:
        self._config = config
        self._session = session
        self._clock = clock
        self._page_size = page_size
        self._concurrency = concurrency
        self._graph = GraphAccess(config, session, clock)
        self._base = self._graph.base

    @property
    def ig_user_id(self) -> str:
        """The account's IG user id (webhook entries name the account by it)."""
        return self._config.ig_user_id

    async def fetch(self, request: FetchRequest) -> Batch:
        """New media since the cursor with their comments, plus the other active threads."""
        # A throttle part-way keeps what came before: unread threads stay active (their media
        # is stored) and are read by the next poll; the media list restarts from the cursor.
        state = _Fetch(limiter=asyncio.Semaphore(self._concurrency))
        since = self._since(request.cursor)
        listed: list[Raw] = []
        listed_all = True
        if request.include_feed:
            listed, listed_all = await self._list_media(state, since, request)
        messages: list[Message] = []
        complete: dict[str, frozenset[str]] = {}
        to_read = set(request.active_threads)
        newest = since
        for raw in listed:
            try:
                media = media_message(raw, self._config.ig_user_id, self._config.username)
            except Malformed as err:
                state.skipped[f"post:{raw.get('id') or 'unknown'}"] = Skipped(
                    reason="malformed", detail=str(err)
                )
                continue
            messages.append(media)
            newest = max(newest, int(media.created_at.timestamp()))
            if raw.get("comments_count") == 0:
                # Nothing to read: the listing says the thread has no comments.
                complete[media.platform_id] = frozenset({media.platform_id})
                to_read.discard(media.platform_id)
            else:
                to_read.add(media.platform_id)
        reads = await asyncio.gather(*(self._read_thread(state, m) for m in sorted(to_read)))
        deleted: set[str] = set()
        for media_id, thread in zip(sorted(to_read), reads, strict=True):
            if thread == "gone":
                deleted.add(media_id)
            elif isinstance(thread, list):
                messages.extend(thread)
                complete[media_id] = frozenset({media_id, *(m.platform_id for m in thread)})
        interrupted = bool(state.errors) or not listed_all
        if interrupted and not (messages or complete or deleted or state.skipped):
            raise most_severe(ExceptionGroup("no progress", state.errors)) or state.errors[0]
        cursor: Mapping[str, Any] = request.cursor
        if request.include_feed and listed_all:
            cursor = {"media_since": newest}
        waits = [
            e.retry_after for e in state.errors if isinstance(e, RateLimited) and e.retry_after
        ]
        if state.regain_seconds is not None:
            waits.append(state.regain_seconds)
        reason = None
        if interrupted and request.include_feed:
            throttled = any(isinstance(e, RateLimited) for e in state.errors)
            reason = RateLimited.reason if throttled else TransientError.reason
        return Batch(
            messages=tuple(messages),
            cursor=cursor,
            complete_threads=complete,
            deleted_threads=frozenset(deleted),
            api_usage_ratio=state.usage_ratio,
            requests=state.requests,
            api_calls=state.requests,
            wait_seconds=max(waits) if waits else None,
            interrupted=reason,
            skipped=dict(state.skipped),
        )

    def _since(self, cursor: Mapping[str, Any]) -> int:
        value = cursor.get("media_since")
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        start = self._clock.now() - timedelta(days=self._config.backfill_days)
        return int(start.timestamp())

    async def _list_media(
        self, state: _Fetch, since: int, request: FetchRequest
    ) -> tuple[list[Raw], bool]:
        """The account's media created since `since`, newest first; False: not read to the end."""
        # Cursor pagination, newest first: reading stops at the first media older than `since`.
        url = f"{self._base}/{self._config.ig_user_id}/media"
        params: Mapping[str, str] | None = {"fields": MEDIA_FIELDS, "limit": str(self._page_size)}
        total = max(self._clock.now().timestamp() - since, 0.0) / 86400
        found: list[Raw] = []
        seen: set[str] = set()
        while True:
            try:
                body = await self._get(state, url, params)
            except (RateLimited, TransientError) as err:
                if not found:
                    raise
                state.errors.append(err)
                return found, False
            data = [raw for raw in _data(body, url) if isinstance(raw, dict)]
            older = False
            for raw in data:
                try:
                    at = int(parse_graph_time(str(raw.get("timestamp"))).timestamp())
                except ValueError:
                    at = since  # kept: media_message skips it as malformed
                if at < since:
                    older = True
                    break
                found.append(raw)
                request.progress(max(at - since, 0) / 86400, total, "days")
            link = next_link(body)
            if older or link is None or not data:
                return found, True
            if link in seen:
                raise TransientError(f"GET {without_query(url)}: paging.next repeats itself")
            seen.add(link)
            url, params = self._checked(link), None

    async def _read_thread(self, state: _Fetch, media_id: str) -> list[Message] | str | None:
        """Every comment and reply of a media; "gone" when it was deleted, None if not read."""
        try:
            comments = await self._read_all(
                state,
                f"{self._base}/{media_id}/comments",
                {"fields": COMMENT_FIELDS, "limit": str(self._page_size)},
            )
            messages: list[Message] = []
            for raw in comments:
                messages.extend(await self._with_replies(state, media_id, raw, len(messages)))
        except Gone:
            return "gone"
        except (RateLimited, TransientError) as err:
            state.errors.append(err)
            return None
        except AuthError:
            raise  # the token or the app, not this thread
        except FatalError as err:
            state.skipped[media_id] = Skipped(reason="bad_request", detail=str(err))
            return None
        except Malformed as err:
            state.skipped[media_id] = Skipped(reason="malformed", detail=str(err))
            return None
        return messages

    async def _with_replies(
        self, state: _Fetch, media_id: str, raw: Raw, position: int
    ) -> list[Message]:
        """A comment with its replies (the nested edge, then /{comment-id}/replies for more)."""
        ig, own = self._config.ig_user_id, self._config.username
        comment = comment_message(raw, media_id, None, position + 1, ig, own)
        edge = raw.get("replies")
        replies: list[Raw] = []
        if isinstance(edge, dict):
            replies = [r for r in edge.get("data") or [] if isinstance(r, dict)]
            link = next_link(edge)
            if link is not None and replies:
                # A nested edge's `next` may carry only limit and cursor: re-state the fields,
                # or the rest of the replies would come without `username`.
                rest = URL(self._checked(link), encoded=True)
                if "fields" not in rest.query:
                    rest = rest.update_query({"fields": REPLY_FIELDS})
                try:
                    replies += await self._read_all(state, str(rest), None)
                except Gone:
                    return []  # deleted while we read it: its replies went with it
        return [
            comment,
            *(
                comment_message(reply, media_id, comment.platform_id, position + 2 + i, ig, own)
                for i, reply in enumerate(replies)
            ),
        ]

    async def _read_all(
        self, state: _Fetch, url: str, params: Mapping[str, str] | None
    ) -> list[Raw]:
        """Every item of an edge, following `paging.next` verbatim until there is none."""
        items: list[Raw] = []
        seen: set[str] = set()
        while True:
            body = await self._get(state, url, params)
            data = _data(body, url)
            items.extend(item for item in data if isinstance(item, dict))
            link = next_link(body)
            if link is None or not data:
                return items
            if link in seen:
                raise TransientError(f"GET {without_query(url)}: paging.next repeats itself")
            seen.add(link)
            url, params = self._checked(link), None

    def _checked(self, link: str) -> str:
        return self._graph.check_link(link)

    async def _get(
        self, state: _Fetch, url: str, params: Mapping[str, str] | None
    ) -> Mapping[str, Any]:
        """One Graph call; a Graph error body becomes our error tree."""
        state.requests += 1
        async with state.limiter:
            response = await self._graph.get(url, params)
        usage = parse_usage(response.headers)
        if usage.ratio is not None:
            state.usage_ratio = max(state.usage_ratio or 0.0, usage.ratio)
        if usage.regain_seconds is not None:
            state.regain_seconds = max(state.regain_seconds or 0.0, usage.regain_seconds)
        return graph_object(response, usage, self._graph.token, INSTAGRAM)


def _data(body: Mapping[str, Any], url: str) -> list[Any]:
    data = body.get("data")
    if not isinstance(data, list):
        raise TransientError(f"GET {without_query(url)}: Graph response without a data list")
    return data
