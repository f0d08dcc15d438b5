"""MastodonSource: watched hashtags, mentions and the brand's statuses, then the open threads.

Thread model: a thread is a conversation, named by its root status (the first ancestor the
server shows us; a status that replies to nothing is its own root). A brand reply joins the
thread of the status it answers, so the pipeline finds it after the item it answers. Roots are
learned from the statuses read together, from the open threads' context and, for a reply
whose parent we have not seen, from that reply's own context (one request).

Each stream (a hashtag timeline, the mention notifications, an account's statuses) keeps its
own cursor: the first read pages back (Link rel="next") to backfill_days; after that the
stream reads forward from `min_id` (Link rel="prev"), oldest new page first, so a throttle
part-way keeps what was read and the next poll goes on from there. (`since_id` would return the
newest page only and leave a gap when more than a page arrived between polls.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import aiohttp
from yarl import URL

from monitor.clock import Clock
from monitor.config import MastodonConfig
from monitor.domain import Batch, Message, Skipped
from monitor.sources.base import (
    FatalError,
    FetchRecord,
    FetchRequest,
    RateLimited,
    TransientError,
)
from monitor.sources.interaction import InteractionRule, Post, account_key, tag_key
from monitor.sources.mastodon._client import Answer, Gone, MastodonClient
from monitor.sources.mastodon._stream import StreamListener
from monitor.sources.mastodon._wire import (
    Malformed,
    Raw,
    Status,
    id_order,
    original,
    parse_status,
    status_seq,
)
from monitor.sources.wire import as_list, parse_time

# Roots remembered between fetches (status id -> root id); beyond this the oldest are dropped
# and, if needed again, learned from a context read.
_ROOTS_KEPT = 50_000
# Statuses whose root could not be learned (throttled) are re-read by the next fetch.
_PENDING_KEPT = 500
# A poll re-reads an open thread (two requests) only if it was not read this long ago: the
# brand's and moderators' replies arrive through their own statuses every poll, so a re-read
# only finds deletions and edits. Re-reading every thread every poll spent most of Mastodon's
# 300 requests per 5 minutes on a handful of threads (the demo: 16 of a poll's 19 requests).
REREAD_SECONDS = 300.0


@dataclass(kw_only=True)
class _Run(FetchRecord):
    """What one fetch gathers (mutable on purpose)."""

    answered: int = 0  # requests the server answered with a body we used
    statuses: dict[str, Status] = field(default_factory=dict)
    complete: dict[str, frozenset[str]] = field(default_factory=dict)
    removed: set[str] = field(default_factory=set)  # statuses the server no longer has
    dropped: set[str] = field(default_factory=set)  # pending statuses that cannot be read
    pending: list[str] = field(default_factory=list)
    threads_from: str | None = None  # the first active thread left unread for lack of budget


@dataclass(frozen=True, kw_only=True)
class _Stream:
    """One list the source pages through, with its place in the cursor."""

    key: str
    path: str
    params: Mapping[str, str]
    page_size: int
    scope: str = "read:statuses"
    notifications: bool = False


class MastodonSource:
    """Polls one Mastodon server for the brand's account (see the module docstring)."""

    def __init__(
        self,
        config: MastodonConfig,
        session: aiohttp.ClientSession,
        clock: Clock,
        *,
        page_size: int = 40,
        notification_page_size: int = 80,
    ) -> None:
        self._config = config
        self._clock = clock
        self._client = MastodonClient(config, session, clock)
        self._listener = StreamListener(
            source=config.name,
            base_url=self._client.base,
            token=self._client.token,
            hashtags=[tag_key(t) for t in config.hashtags],
            session=session,
        )
        # The limits of methods/timelines (40) and methods/notifications (80).
        self._page_size = page_size
        self._notification_page_size = notification_page_size
        self._host = (URL(self._client.base).host or "").lower()
        self._read_at: dict[str, datetime] = {}  # open thread -> when a poll last re-read it
        self._ids: dict[str, str] = {}  # configured account -> its id on this server
        self._roots: dict[str, str] = {}
        self._brand = self._variants(config.account)
        brand_accounts = {
            v for a in (config.account, *config.moderators) for v in self._variants(a)
        }
        self._rule = InteractionRule(
            brand_accounts=brand_accounts,
            partners={v for p in config.partners for v in self._variants(p)},
            hashtags=config.hashtags,
            config=config.interaction,
        )

    @property
    def streaming(self) -> bool:
        """`streaming = true` in the config: follow the streaming API."""
        return self._config.streaming

    @property
    def streams_open(self) -> int:
        """Streams connected now."""
        return self._listener.open

    async def listen(self, on_news: Callable[[], None]) -> None:
        """Follow the streaming API and call `on_news` when it shows something new (the
        coordinator then polls at once); returns at once when streaming is off."""
        if self._config.streaming:
            await self._listener.listen(on_news)

    async def fetch(self, request: FetchRequest) -> Batch:
        """New statuses of every stream since the cursor, plus the active threads re-read."""
        run = _Run()
        streams: dict[str, Any] = dict(_mapping(request.cursor.get("streams")))
        pending = [str(p) for p in as_list(request.cursor.get("pending"))]
        brand_ids = await self._account_ids(run)
        try:
            if request.include_feed:
                await self._read_pending(run, pending)
                for stream in self._streams(brand_ids):
                    await self._read_stream(run, streams, stream, request)
            for thread in self._thread_order(request):
                if request.include_feed and not self._due(thread):
                    continue  # asked-for re-reads (include_feed False) always read
                if self._client.budget_low():
                    # Many open threads could eat the window: the rest waits for the next
                    # poll, read first then.
                    run.threads_from = thread
                    break
                await self._read_thread(run, thread)
                self._mark_read(thread)
        except (RateLimited, TransientError) as err:
            run.stop(err)
        await self._find_roots(run)
        if run.stopped is not None and run.answered == 0:
            raise run.stopped
        cursor: Mapping[str, Any] = request.cursor
        if request.include_feed:
            unread = [p for p in pending if p not in run.statuses and p not in run.dropped]
            cursor = {
                "streams": streams,
                "pending": (unread + run.pending)[-_PENDING_KEPT:],
                "threads_from": run.threads_from,
            }
        # No thread is ever deleted as a whole: a conversation outlives any of its statuses.
        batch = run.batch(cursor, self._messages(run, brand_ids), run.complete, ())
        return replace(
            batch, removed=frozenset(run.removed), api_usage_ratio=self._client.usage_ratio
        )

    # --- accounts -----------------------------------------------------------------------------

    def _variants(self, account: str) -> frozenset[str]:
        """An account as statuses may name it: "user" on this server, "user@host" anywhere."""
        key = account_key(account)
        user, _, domain = key.partition("@")
        if not domain or domain == self._host:
            return frozenset({user, f"{user}@{self._host}"})
        return frozenset({key})

    def _local_form(self, account: str) -> str:
        user, _, domain = account_key(account).partition("@")
        return user if not domain or domain == self._host else f"{user}@{domain}"

    async def _account_ids(self, run: _Run) -> frozenset[str]:
        """The ids of the brand's and the moderators' accounts (looked up once, then kept)."""
        wanted = [self._config.account, *self._config.moderators]
        for account in wanted:
            if account in self._ids:
                continue
            acct = self._local_form(account)
            try:
                # Without the token: the lookup is public, and a sent token would need
                # read:accounts too (authorize_if_got_token!).
                answer = await self._client.get(
                    run, "/api/v1/accounts/lookup", {"acct": acct}, auth=False
                )
            except Gone as err:
                if account == self._config.account:
                    raise FatalError(
                        f"the account {account!r} is not known on {self._client.base}: check"
                        f' `account` (as the server shows it, e.g. "acme" or'
                        f' "acme@other.example") [{err}]'
                    ) from err
                run.skipped[f"account:{account}"] = Skipped(
                    reason="not_found", detail=f"moderator account {account!r} not found: {err}"
                )
                continue
            found = answer.body.get("id") if isinstance(answer.body, dict) else None
            if not isinstance(found, str):
                raise TransientError(f"account lookup of {acct!r} answered without an id")
            run.answered += 1
            self._ids[account] = found
        return frozenset(self._ids[a] for a in wanted if a in self._ids)

    def _streams(self, brand_ids: frozenset[str]) -> list[_Stream]:
        streams = [
            _Stream(
                key=f"tag:{tag}",
                path=f"/api/v1/timelines/tag/{quote(tag, safe='')}",
                params={"limit": str(self._page_size)},
                page_size=self._page_size,
            )
            for tag in sorted(self._rule.hashtags)
        ]
        if self._client.token is not None:
            # Mentions (and replies, which mention their parent's author) of the brand.
            streams.append(
                _Stream(
                    key="mentions",
                    path="/api/v1/notifications",
                    params={"types[]": "mention", "limit": str(self._notification_page_size)},
                    page_size=self._notification_page_size,
                    scope="read:notifications",
                    notifications=True,
                )
            )
        # The brand's and moderators' own statuses: their replies, in threads not open yet too.
        streams.extend(
            _Stream(
                key=f"account:{account_id}",
                path=f"/api/v1/accounts/{account_id}/statuses",
                params={"limit": str(self._page_size)},
                page_size=self._page_size,
            )
            for account_id in sorted(brand_ids, key=id_order)
        )
        return streams

    # --- streams ------------------------------------------------------------------------------

    async def _read_stream(
        self, run: _Run, streams: dict[str, Any], stream: _Stream, request: FetchRequest
    ) -> None:
        """New entries of one stream since its cursor (backfill on the first read)."""
        state = _mapping(streams.get(stream.key))
        min_id = state.get("min_id")
        if isinstance(min_id, str):
            live: Mapping[str, str] | None = {**stream.params, "min_id": min_id}
            target = stream.path
            while True:
                answer = await self._get(run, target, live, stream.scope)
                entries = self._entries(run, answer, stream)
                if not entries:
                    return
                streams[stream.key] = {"min_id": max((e[0] for e in entries), key=id_order)}
                prev = answer.links.get("prev")
                if len(as_list(answer.body)) < stream.page_size or prev is None:
                    return
                target, live = prev, None
        start = self._clock.now() - timedelta(days=self._config.backfill_days)
        total = self._config.backfill_days
        newest = state.get("newest") if isinstance(state.get("newest"), str) else None
        resume = state.get("max_id")
        target = stream.path
        query: Mapping[str, str] | None = {
            **stream.params,
            **({"max_id": resume} if isinstance(resume, str) else {}),
        }
        while True:
            answer = await self._get(run, target, query, stream.scope)
            entries = self._entries(run, answer, stream, since=start)
            listed = len(as_list(answer.body))
            if newest is None and entries:
                newest = max((e[0] for e in entries), key=id_order)
            next_link = answer.links.get("next")
            reached = any(at < start for _, at in entries) or not entries
            if reached or listed < stream.page_size or next_link is None:
                streams[stream.key] = {"min_id": newest} if newest else {}
                return
            oldest = min(at for _, at in entries)
            request.progress((oldest - start).total_seconds() / 86400, total, "days")
            last = min((e[0] for e in entries), key=id_order)
            streams[stream.key] = {"newest": newest, "max_id": last}
            target, query = next_link, None

    def _entries(
        self, run: _Run, answer: Answer, stream: _Stream, since: datetime | None = None
    ) -> list[tuple[str, datetime]]:
        """(cursor id, time) of each entry of a page; statuses since `since` are kept."""
        entries: list[tuple[str, datetime]] = []
        for item in as_list(answer.body):
            if not isinstance(item, dict):
                continue
            raw: Any = item.get("status") if stream.notifications else item
            at = parse_time(item.get("created_at"))
            entry_id = item.get("id")
            if not isinstance(entry_id, str) or at is None or not isinstance(raw, dict):
                run.skipped[f"{stream.key}:{entry_id}"] = Skipped(
                    reason="malformed", detail=f"{stream.key}: an entry without id or time"
                )
                continue
            entries.append((entry_id, at))
            if since is None or at >= since:
                self._keep(run, raw, stream.key)
        return entries

    def _keep(self, run: _Run, raw: Raw, where: str) -> Status | None:
        """A status (a boost's original, never the boost) into this fetch's statuses."""
        try:
            status = parse_status(original(raw))
        except Malformed as err:
            run.skipped[f"{where}:{raw.get('id') or 'unknown'}"] = Skipped(
                reason="malformed", detail=str(err)
            )
            return None
        run.statuses[status.id] = status
        return status

    # --- threads ------------------------------------------------------------------------------

    def _due(self, thread: str) -> bool:
        """Whether a poll should re-read this open thread now."""
        last = self._read_at.get(thread)
        return last is None or (self._clock.now() - last).total_seconds() >= REREAD_SECONDS

    def _mark_read(self, thread: str) -> None:
        if len(self._read_at) > _ROOTS_KEPT:  # bounded: a forgotten thread is just read again
            self._read_at.clear()
        self._read_at[thread] = self._clock.now()

    def _thread_order(self, request: FetchRequest) -> list[str]:
        """Newest threads first, starting where the last poll ran out of budget."""
        threads = sorted(request.active_threads, key=id_order, reverse=True)
        start = request.cursor.get("threads_from")
        if isinstance(start, str) and start in threads:
            at = threads.index(start)
            threads = threads[at:] + threads[:at]
        return threads

    async def _read_thread(self, run: _Run, thread: str) -> None:
        """An open thread re-read whole: the root and its context; a 404 root is deleted."""
        try:
            root = await self._get(run, f"/api/v1/statuses/{thread}", None)
            context = await self._get(run, f"/api/v1/statuses/{thread}/context", None)
        except Gone:
            # Only the root is gone: Mastodon keeps the replies to a deleted status (app/models/
            # status.rb: has_many :replies ... dependent: nil), so the consumers' questions
            # under a deleted brand post still wait. The thread can no longer be read whole,
            # so it is not called complete; the brand's replies still come with its statuses.
            run.removed.add(thread)
            return
        except FatalError as err:
            run.skipped[thread] = Skipped(reason="bad_request", detail=str(err))
            return
        found = self._keep(run, root.body, thread) if isinstance(root.body, dict) else None
        if found is None:
            return
        members = {found.id}
        self._learn(found.id, thread)
        body = _mapping(context.body)
        for raw in as_list(body.get("descendants")):
            status = self._keep(run, raw, thread) if isinstance(raw, dict) else None
            if status is not None:
                members.add(status.id)
                self._learn(status.id, thread)
        run.complete[thread] = frozenset(members)

    async def _read_pending(self, run: _Run, pending: list[str]) -> None:
        """Statuses whose thread the last fetch could not learn: read them again."""
        for status_id in pending:
            try:
                answer = await self._get(run, f"/api/v1/statuses/{status_id}", None)
            except (Gone, FatalError):
                run.dropped.add(status_id)
                continue
            if isinstance(answer.body, dict):
                self._keep(run, answer.body, status_id)

    async def _find_roots(self, run: _Run) -> None:
        """Each status's root; a reply to an unseen status asks the server for its context."""
        for status in sorted(run.statuses.values(), key=lambda s: id_order(s.id)):
            if self._root(run, status) is not None:
                continue
            if run.stopped is not None:
                run.pending.append(status.id)
                continue
            try:
                answer = await self._get(run, f"/api/v1/statuses/{status.id}/context", None)
            except Gone:
                del run.statuses[status.id]  # deleted since it was listed
                continue
            except FatalError as err:
                run.skipped[status.id] = Skipped(reason="bad_request", detail=str(err))
                del run.statuses[status.id]
                continue
            except (RateLimited, TransientError) as err:
                run.stop(err)
                run.pending.append(status.id)
                continue
            ancestors = [
                a["id"]
                for a in as_list(_mapping(answer.body).get("ancestors"))
                if isinstance(a, dict) and isinstance(a.get("id"), str)
            ]
            # The oldest ancestor shown is the root as far as we can know it.
            root = ancestors[0] if ancestors else status.id
            for member in (*ancestors, status.id):
                self._learn(member, root)
        for status_id in run.pending:
            run.statuses.pop(status_id, None)

    def _root(self, run: _Run, status: Status) -> str | None:
        """The root from what is known already, None if a context read is needed."""
        chain: list[str] = []
        current: Status | None = status
        while current is not None:
            known = self._roots.get(current.id)
            if known is None and current.in_reply_to_id is None:
                known = current.id
            if known is None and current.in_reply_to_id in self._roots:
                known = self._roots[current.in_reply_to_id]
            if known is not None:
                for member in [*chain, current.id]:
                    self._learn(member, known)
                return known
            chain.append(current.id)
            parent = current.in_reply_to_id
            current = run.statuses.get(parent) if parent and parent not in chain else None
        return None

    def _learn(self, status_id: str, root: str) -> None:
        self._roots.pop(status_id, None)
        self._roots[status_id] = root
        while len(self._roots) > _ROOTS_KEPT:
            self._roots.pop(next(iter(self._roots)))

    # --- messages -----------------------------------------------------------------------------

    def _messages(self, run: _Run, brand_ids: frozenset[str]) -> list[Message]:
        brand_id = self._ids.get(self._config.account)
        messages: list[Message] = []
        for status in sorted(run.statuses.values(), key=lambda s: id_order(s.id)):
            root = self._roots.get(status.id)
            if root is None:
                continue
            verdict = self._rule.classify(
                Post(
                    author=status.acct,
                    text=status.text,
                    tags=status.tags,
                    mentions_brand=brand_id in status.mention_ids
                    or bool(status.mention_accts & self._brand),
                    replies_to_brand=status.in_reply_to_account_id in brand_ids,
                )
            )
            messages.append(
                Message(
                    platform_id=status.id,
                    thread_id=root,
                    parent_id=status.in_reply_to_id,
                    author_id=status.account_id,
                    author_name=status.acct,
                    text=status.text,
                    created_at=status.created_at,
                    seq=status_seq(status.id),
                    is_brand=verdict.is_brand,
                    permalink=status.url,
                    kind=verdict.kind,
                    tags=verdict.tags,
                )
            )
        return messages

    async def _get(
        self,
        run: _Run,
        target: str,
        params: Mapping[str, str] | None,
        scope: str = "read:statuses",
    ) -> Answer:
        answer = await self._client.get(run, target, params, scope=scope)
        run.answered += 1
        return answer


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}
