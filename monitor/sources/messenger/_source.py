"""MessengerSource: a Page's conversations updated since the last poll, and the active ones."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from yarl import URL

from monitor.clock import Clock
from monitor.config import MessengerConfig
from monitor.domain import Batch, Message, Skipped
from monitor.sources.base import (
    FatalError,
    FetchRequest,
    RateLimited,
    TransientError,
    most_severe,
)
from monitor.sources.facebook import graph_object, parse_usage
from monitor.sources.graph_access import GraphAccess
from monitor.sources.http import without_query
from monitor.sources.messenger._wire import (
    MESSAGE_FIELDS,
    MESSENGER,
    ConversationGone,
    message_of,
    person_of,
    updated_of,
)

Raw = Mapping[str, Any]


@dataclass(kw_only=True)
class _Read:
    """What one fetch gathered (mutable on purpose)."""

    messages: list[Message] = field(default_factory=list)
    complete: dict[str, frozenset[str]] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    skipped: dict[str, Skipped] = field(default_factory=dict)
    errors: list[RateLimited | TransientError] = field(default_factory=list)
    requests: int = 0
    usage: float | None = None
    regain: float | None = None
    newest: int = 0


class MessengerSource:
    """Polls one Page's Messenger inbox: a conversation is a thread, keyed by the person's PSID."""

    def __init__(
        self,
        config: MessengerConfig,
        session: aiohttp.ClientSession,
        clock: Clock,
        *,
        page_size: int = 25,
        concurrency: int = 4,
    ) -> None:
        self._config = config
        self._session = session
        self._clock = clock
        self._page_size = page_size
        self._limiter = asyncio.Semaphore(concurrency)
        self._graph = GraphAccess(config, session, clock)
        self._base = self._graph.base
        self._fields = f"participants,updated_time,messages.limit({page_size}){{{MESSAGE_FIELDS}}}"

    @property
    def page_numeric_id(self) -> str:
        """The Page's id (Messenger deliveries name the Page by it)."""
        return self._config.page_id

    async def fetch(self, request: FetchRequest) -> Batch:
        """Conversations updated since the cursor, then the active ones not among them."""
        # Webhooks carry the person's PSID, not the conversation id, so the PSID is the thread
        # id and an active thread is read with `user_id=` ([CONV] in the fake).
        now = self._clock.now()
        horizon = _instant(request.cursor.get("horizon")) or now - timedelta(
            days=self._config.backfill_days
        )
        since = _instant(request.cursor.get("updated_since")) or horizon
        read = _Read(newest=int(since.timestamp()))
        seen: set[str] = set()
        if request.include_feed:
            await self._list(read, since, horizon, seen)
        rest = sorted(request.active_threads - seen)
        await asyncio.gather(*(self._one_person(read, psid, horizon) for psid in rest))
        progress = read.messages or read.complete or read.deleted or read.skipped
        if read.errors and not progress:
            raise most_severe(ExceptionGroup("no progress", read.errors)) or read.errors[0]
        cursor: Mapping[str, Any] = request.cursor
        if request.include_feed and not read.errors:
            # `updated_time` is inclusive at the cursor instant: a conversation updated in that
            # very second is read again, never missed.
            newest = datetime.fromtimestamp(read.newest, UTC)
            cursor = {"updated_since": newest.isoformat(), "horizon": horizon.isoformat()}
        stopped = read.errors[0] if read.errors else None
        return Batch(
            messages=tuple(read.messages),
            cursor=cursor,
            complete_threads=read.complete,
            deleted_threads=frozenset(read.deleted),
            api_usage_ratio=read.usage,
            requests=read.requests,
            wait_seconds=stopped.retry_after if isinstance(stopped, RateLimited) else None,
            interrupted=stopped.reason if stopped is not None and request.include_feed else None,
            skipped=read.skipped,
        )

    async def _list(self, read: _Read, since: datetime, horizon: datetime, seen: set[str]) -> None:
        """Conversations newest-updated first, until one older than `since`."""
        url: str | None = f"{self._base}/{self._config.page_id}/conversations"
        params: Mapping[str, str] | None = {
            "platform": "messenger",
            "fields": self._fields,
            "limit": str(self._page_size),
        }
        while url is not None:
            try:
                body = await self._get(read, url, params)
            except (RateLimited, TransientError) as err:
                read.errors.append(err)
                return  # what was read is kept; the cursor stays, so the next poll reads it again
            data = [raw for raw in _data(body, url) if isinstance(raw, dict)]
            for raw in data:
                updated = updated_of(raw)
                if updated is not None and updated < since:
                    return
                psid = await self._conversation(read, raw, horizon)
                if psid is not None:
                    seen.add(psid)
            url, params = self._next(body, url), None

    async def _one_person(self, read: _Read, psid: str, horizon: datetime) -> None:
        """Re-read the conversation of one person; gone when Graph no longer lists it."""
        url = f"{self._base}/{self._config.page_id}/conversations"
        params = {"platform": "messenger", "user_id": psid, "fields": self._fields}
        try:
            body = await self._get(read, url, params)
        except (RateLimited, TransientError) as err:
            read.errors.append(err)
            return
        except ConversationGone:
            read.deleted.add(psid)
            return
        except FatalError as err:
            read.skipped[psid] = Skipped(reason="bad_request", detail=str(err))
            return
        data = [raw for raw in _data(body, url) if isinstance(raw, dict)]
        if not data:
            read.deleted.add(psid)  # every message of it was unsent or the person left
            return
        await self._conversation(read, data[0], horizon)

    async def _conversation(self, read: _Read, raw: Raw, horizon: datetime) -> str | None:
        """One conversation's messages back to `horizon`; its PSID, None when unusable."""
        psid = person_of(raw, self._config.page_id)
        updated = updated_of(raw)
        if psid is None or updated is None:
            key = str(raw.get("id") or "conversation")
            detail = "Graph returned a conversation without its person or updated_time"
            read.skipped[key] = Skipped(reason="malformed", detail=detail)
            return None
        read.newest = max(read.newest, int(updated.timestamp()))
        edge = raw.get("messages")
        items: list[Raw] = []
        next_url: str | None = None
        if isinstance(edge, dict):
            items = [m for m in edge.get("data") or [] if isinstance(m, dict)]
            next_url = self._next(edge, "messages edge")
        floor = horizon.timestamp()
        while next_url is not None and not _older(items, floor):
            # A nested edge's `next` carries limit and cursor only ([NESTED]): ask the fields.
            link = URL(next_url, encoded=True)
            if "fields" not in link.query:
                next_url = str(link.update_query({"fields": MESSAGE_FIELDS}))
            try:
                body = await self._get(read, next_url, None)
            except (RateLimited, TransientError) as err:
                read.errors.append(err)
                return psid  # incomplete: stored as far as read, re-read by the next poll
            items.extend(m for m in _data(body, next_url) if isinstance(m, dict))
            next_url = self._next(body, next_url)
        messages = self._messages(items, psid, floor)
        read.messages.extend(messages)
        read.complete[psid] = frozenset(m.platform_id for m in messages)
        return psid

    def _messages(self, items: list[Raw], psid: str, floor: float) -> list[Message]:
        """Oldest first; equal seconds ordered as Graph listed them (newest first)."""
        found: list[Message] = []
        per_second: dict[str, int] = {}
        for raw in reversed(items):
            second = str(raw.get("created_time"))
            seq = per_second.get(second, 0)
            message = message_of(raw, psid, self._config.page_id, seq)
            if message is None or message.created_at.timestamp() < floor:
                continue
            per_second[second] = seq + 1
            found.append(message)
        return found

    def _next(self, body: Raw, where: str) -> str | None:
        paging = body.get("paging")
        link = paging.get("next") if isinstance(paging, dict) else None
        if not isinstance(link, str) or not link:
            return None
        return self._graph.check_link(link, without_query(where))

    async def _get(self, read: _Read, url: str, params: Mapping[str, str] | None) -> Raw:
        """One Graph GET; Graph's errors mapped into our tree, usage headers noted."""
        read.requests += 1
        async with self._limiter:
            response = await self._graph.get(url, params)
        usage = parse_usage(response.headers)
        if usage.ratio is not None:
            read.usage = max(read.usage or 0.0, usage.ratio)
        return graph_object(response, usage, self._graph.token, MESSENGER)


def _data(body: Raw, url: str) -> list[Any]:
    data = body.get("data")
    if not isinstance(data, list):
        raise TransientError(f"GET {without_query(url)}: Graph response without a data list")
    return data


def _older(items: list[Raw], floor: float) -> bool:
    """Whether the oldest listed message (the last, newest first) is before `floor`."""
    if not items:
        return False
    message = message_of(items[-1], "", "", 0)
    return message is not None and message.created_at.timestamp() < floor


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None
