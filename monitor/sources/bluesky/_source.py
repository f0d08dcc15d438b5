"""BlueskySource: watched hashtags and terms, notifications, the brand's posts, active threads."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import aiohttp

from monitor.clock import Clock
from monitor.config import BlueskyConfig
from monitor.domain import Batch, Message, Skipped
from monitor.sources.base import FatalError, FetchRequest, RateLimited, TransientError
from monitor.sources.bluesky._wire import (
    BLOCKED_POST,
    NOT_FOUND_POST,
    THREAD_VIEW,
    Malformed,
    PostView,
    Raw,
    permalink,
    post_view,
    reply_count,
    tid_value,
    wire_time,
)
from monitor.sources.bluesky._xrpc import Calls, NotFound, Params, Xrpc
from monitor.sources.interaction import InteractionRule, Post, account_key, tag_key
from monitor.sources.wire import as_list, parse_time

SEARCH = "app.bsky.feed.searchPosts"
NOTIFICATIONS = "app.bsky.notification.listNotifications"
THREAD = "app.bsky.feed.getPostThread"
AUTHOR_FEED = "app.bsky.feed.getAuthorFeed"
# Notifications that are posts addressed to the account. Likes, reposts and follows are not
# posts: a repost is the same post again, never counted twice.
POST_REASONS = ("mention", "reply", "quote")
# Search, notifications and author feeds are re-read this far back: a post reaches the search
# index a little after its sortAt, and reading one twice costs nothing (its uri is its identity).
OVERLAP = timedelta(minutes=10)


@dataclass(kw_only=True)
class _Run:
    """What one fetch found: posts by uri (each once), and what it learned of threads."""

    calls: Calls = field(default_factory=Calls)
    posts: dict[str, PostView] = field(default_factory=dict)
    mentioned: set[str] = field(default_factory=set)  # uris a "mention" notification named
    complete: dict[str, frozenset[str]] = field(default_factory=dict)
    removed: set[str] = field(default_factory=set)  # thread roots that were deleted

    def add(self, view: PostView) -> None:
        """Keep a post; read again (by search and a notification) it is still one post."""
        # Bluesky posts cannot be edited (a record is deleted and re-created under a new uri),
        # so a post read twice is the same post: the first reading is as good as the second.
        self.posts.setdefault(view.uri, view)


class BlueskySource:
    """Polls one Bluesky account's notifications, its watched hashtags and its open threads."""

    def __init__(
        self,
        config: BlueskyConfig,
        session: aiohttp.ClientSession,
        clock: Clock,
        *,
        page_size: int = 100,
        thread_depth: int = 50,
        concurrency: int = 4,
    ) -> None:
        self._config = config
        self._clock = clock
        self._page_size = page_size
        self._concurrency = concurrency
        # Replies deeper than this below a thread's root are not read; such a thread is never
        # called complete, so nothing in it is taken for deleted.
        self._thread_depth = thread_depth
        handle = config.handle.lstrip("@")
        self._xrpc = Xrpc(
            session,
            clock,
            service_url=str(config.service_url),
            identifier=handle,
            password=config.app_password.get_secret_value(),
            timeout=config.request_timeout,
        )
        self._rule = InteractionRule(
            brand_accounts=[handle, *config.moderators],
            partners=config.partners,
            hashtags=config.hashtags,
            config=config.interaction,
        )
        # Moderators are configured by handle (or DID); a reply names its parent by DID only,
        # so the DIDs of moderators are learned from the posts they write.
        self._moderator_dids = {m for m in map(account_key, config.moderators) if _is_did(m)}
        # Whose own posts are read each poll: the brand's (by DID, see _authors) and these.
        self._moderators = [m.strip().lstrip("@") for m in config.moderators if m.strip()]
        self._queries = [f"#{tag_key(t)}" for t in config.hashtags] + [
            t.strip() for t in config.terms if t.strip()
        ]

    async def fetch(self, request: FetchRequest) -> Batch:
        """New posts of the searches, notifications and author feeds, plus the active threads."""
        run = _Run()
        # Signing in first: a refusal here (a wrong app password) is the source's failure.
        session = await self._xrpc.session(run.calls)
        cursor: dict[str, Any] = dict(request.cursor)
        if request.include_feed:
            searched = dict(cursor.get("search") or {})
            for query in self._queries:
                if run.calls.stopped is not None:
                    break
                whole, newest = await self._search(
                    run, query, self._since(searched.get(query)), request
                )
                if whole and newest is not None:
                    searched[query] = wire_time(newest)
            cursor["search"] = searched
            if run.calls.stopped is None:
                whole, seen = await self._notifications(
                    run, self._since(cursor.get("notifications"))
                )
                if whole and seen is not None:
                    cursor["notifications"] = wire_time(seen)
            cursor["authors"] = await self._authors(run, cursor.get("authors"), session.did)
        limiter = asyncio.Semaphore(self._concurrency)
        await asyncio.gather(
            *(self._thread(run, thread, limiter) for thread in sorted(request.active_threads))
        )
        if run.calls.stopped is not None and not (run.posts or run.complete or run.removed):
            raise run.calls.stopped  # nothing gained: the cursor stays as it was
        messages = [self._message(view, session.did, run) for view in run.posts.values()]
        # No thread is deleted as a whole: on Bluesky the replies outlive a deleted root.
        batch = run.calls.batch(cursor, messages, run.complete, ())
        return replace(batch, api_usage_ratio=run.calls.usage_ratio, removed=frozenset(run.removed))

    def _since(self, saved: Any) -> datetime:
        moment = parse_time(saved)
        if moment is None:
            return self._clock.now() - timedelta(days=self._config.backfill_days)
        return moment - OVERLAP

    async def _search(
        self, run: _Run, query: str, since: datetime, request: FetchRequest
    ) -> tuple[bool, datetime | None]:
        """Every post of a search since `since`: (read to the end, the newest post's time)."""
        # The search index pages with an opaque cursor that "may not necessarily allow scrolling
        # through the entire result set" (the lexicon), so `since` bounds the backfill too.
        params: list[tuple[str, str]] = [
            ("q", query),
            ("sort", "latest"),
            ("limit", str(self._page_size)),
            ("since", wire_time(since)),
        ]
        total = max((self._clock.now() - since).total_seconds(), 0.0) / 86400
        # Only a post seen moves the cursor: `since` itself is the saved one less the overlap.
        newest: datetime | None = None
        what = f"search:{query}"
        async for posts in self._pages(run, SEARCH, params, what, "posts"):
            for raw in posts:
                view = self._view(run, raw)
                if view is None or view.created_at < since:
                    continue
                run.add(view)
                newest = max(newest or view.created_at, view.created_at)
                left = (view.created_at - since).total_seconds() / 86400
                request.progress(max(left, 0.0), total, "days")
        return _whole(run, what), newest

    async def _notifications(self, run: _Run, since: datetime) -> tuple[bool, datetime | None]:
        """Mentions, replies and quotes since `since`: (read to the end, the newest one's time)."""
        # `reasons` filters on the server (newer AppViews); older ones ignore it, so the
        # reason is checked here as well.
        params: list[tuple[str, str]] = [("limit", str(self._page_size))]
        params += [("reasons", reason) for reason in POST_REASONS]
        newest: datetime | None = None
        async with aclosing(
            self._pages(run, NOTIFICATIONS, params, "notifications", "notifications")
        ) as pages:
            async for items in pages:
                older = False
                for raw in items:
                    indexed = parse_time(raw.get("indexedAt"))
                    if indexed is not None and indexed < since:
                        older = True  # newest first: the rest was read by an earlier poll
                        break
                    if indexed is not None:
                        newest = max(newest or indexed, indexed)
                    if raw.get("reason") not in POST_REASONS:
                        continue
                    view = self._view(run, raw)
                    if view is not None:
                        run.add(view)
                        if raw.get("reason") == "mention":
                            run.mentioned.add(view.uri)
                if older:
                    break
        return _whole(run, "notifications"), newest

    async def _authors(self, run: _Run, saved: Any, brand_did: str) -> dict[str, Any]:
        """Each answering account's feed read on from its saved time; the times to save."""
        # The brand's and moderators' replies are read from their own posts, not only from
        # thread re-reads: a thread whose root was deleted cannot be re-read, and the answers
        # in it must still be seen. The brand is read by DID: it outlives a change of handle.
        authored = dict(saved) if isinstance(saved, dict) else {}
        for actor in [brand_did, *self._moderators]:
            if run.calls.stopped is not None:
                break  # throttled: the rest keep their times and are read next poll
            whole, newest = await self._author_feed(run, actor, self._since(authored.get(actor)))
            if whole and newest is not None:
                authored[actor] = wire_time(newest)
        return authored

    async def _author_feed(
        self, run: _Run, actor: str, since: datetime
    ) -> tuple[bool, datetime | None]:
        """The actor's posts and replies since `since`: (read to the end, the newest one's time)."""
        params: list[tuple[str, str]] = [
            ("actor", actor),
            ("filter", "posts_with_replies"),
            ("limit", str(self._page_size)),
        ]
        newest: datetime | None = None
        what = f"author:{actor}"
        async with aclosing(self._pages(run, AUTHOR_FEED, params, what, "feed")) as pages:
            async for items in pages:
                older = False
                for item in items:
                    post = item.get("post")
                    # A repost (reason #reasonRepost) is someone else's post, and out of time
                    # order; pins (#reasonPin) are not asked for (no includePins) but would be
                    # the same.
                    if item.get("reason") is not None or not isinstance(post, dict):
                        continue
                    view = self._view(run, post)
                    if view is None:
                        continue
                    if view.created_at < since:
                        older = True  # newest first: the rest was read by an earlier poll
                        break
                    run.add(view)
                    newest = max(newest or view.created_at, view.created_at)
                if older:
                    break
        return _whole(run, what), newest

    async def _thread(self, run: _Run, thread: str, limiter: asyncio.Semaphore) -> None:
        """Every post of an active thread, to see the brand's answers and deletions."""
        params = [("uri", thread), ("depth", str(self._thread_depth)), ("parentHeight", "0")]
        try:
            async with limiter:
                if run.calls.stopped is not None:
                    return  # unread threads stay active: the next poll reads them
                body = await self._xrpc.query(run.calls, THREAD, params)
        except NotFound:  # 400 NotFound "Post not found: at://..."
            self._root_gone(run, thread)
            return
        except (RateLimited, TransientError) as err:
            run.calls.stop(err)
            return
        except FatalError as err:
            run.calls.skipped[thread] = Skipped(reason="bad_request", detail=str(err))
            return
        root = body.get("thread")
        kind = root.get("$type") if isinstance(root, dict) else None
        if kind == NOT_FOUND_POST:
            self._root_gone(run, thread)
            return
        if kind != THREAD_VIEW or not isinstance(root, dict):
            why = "forbidden" if kind == BLOCKED_POST else "malformed"
            run.calls.skipped[thread] = Skipped(reason=why, detail=f"{thread}: thread is {kind}")
            return
        seen: set[str] = set()
        whole = True
        stack: list[Raw] = [root]
        while stack:
            node = stack.pop()
            post = node.get("post")
            view = self._view(run, post) if isinstance(post, dict) else None
            if view is None:
                whole = False
                continue
            run.add(view)
            seen.add(view.uri)
            replies = node.get("replies")
            if replies is None and reply_count(post or {}) > 0:
                whole = False  # below the depth read: not seen, so not known to be deleted
            # Deleted replies are left out; blocked and not-found nodes are not posts we read.
            stack.extend(
                r for r in as_list(replies) if isinstance(r, dict) and r.get("$type") == THREAD_VIEW
            )
        if whole:
            run.complete[thread] = frozenset(seen)

    def _root_gone(self, run: _Run, thread: str) -> None:
        """A deleted root is removed on its own; the thread under it stays."""
        # Bluesky deletes the root's record only: the replies stay, still naming it as root and
        # parent (bluesky-social/atproto#1103), so the questions under a deleted brand post still
        # wait. The thread can no longer be read whole, so it is not called complete (nothing in
        # it is taken for deleted); the brand's answers in it come with its author feed.
        run.removed.add(thread)

    async def _pages(
        self, run: _Run, nsid: str, params: Params, what: str, key: str
    ) -> AsyncGenerator[list[Raw], None]:
        """The `key` list of each page in turn, to the last page; it ends early when a page
        fails (the fetch stops, or `what` is skipped) or the cursor comes round again."""
        page: str | None = None
        seen: set[str] = set()
        while True:
            body = await self._page(run, nsid, [*params, *_cursor(page)], what)
            if body is None:
                return
            items: list[Raw] = [raw for raw in as_list(body.get(key)) if isinstance(raw, dict)]
            yield items
            page = body.get("cursor") if isinstance(body.get("cursor"), str) else None
            if not items or not page:
                return
            if page in seen:
                run.calls.stop(TransientError(f"GET {nsid}: the cursor repeats itself"))
                return
            seen.add(page)

    async def _page(self, run: _Run, nsid: str, params: Params, what: str) -> Raw | None:
        """One page; a throttle or a failure stops the fetch (None), a refusal skips `what`."""
        try:
            return await self._xrpc.query(run.calls, nsid, params)
        except (RateLimited, TransientError) as err:
            run.calls.stop(err)
        except FatalError as err:  # e.g. 400 BadQueryString for one search
            run.calls.skipped[what] = Skipped(reason="bad_request", detail=str(err))
        return None

    def _view(self, run: _Run, raw: Raw) -> PostView | None:
        try:
            view = post_view(raw)
        except Malformed as err:
            uri = raw.get("uri")
            key = uri if isinstance(uri, str) else "post:unknown"
            run.calls.skipped[key] = Skipped(reason="malformed", detail=str(err))
            return None
        if view.handle is not None and account_key(view.handle) in self._rule.brand_accounts:
            self._moderator_dids.add(view.did)
        return view

    def _message(self, view: PostView, brand_did: str, run: _Run) -> Message:
        """A post as a message, sorted by the interaction rule."""
        answering = {brand_did, *self._moderator_dids}
        verdict = self._rule.classify(
            Post(
                author=self._account(view, brand_did),
                text=view.text,
                tags=view.tags,
                mentions_brand=brand_did in view.mentions or view.uri in run.mentioned,
                replies_to_brand=view.parent is not None and _did_of(view.parent) in answering,
            )
        )
        return Message(
            platform_id=view.uri,
            thread_id=view.thread_id,
            parent_id=view.parent,
            author_id=view.did,
            author_name=view.handle,
            text=view.text,
            created_at=view.created_at,
            seq=tid_value(view.rkey) or 0,
            is_brand=verdict.is_brand,
            permalink=permalink(view.handle, view.did, view.rkey),
            kind=verdict.kind,
            tags=verdict.tags,
        )

    def _account(self, view: PostView, brand_did: str) -> str:
        """The author as the rule knows it: its handle, or its DID where config lists that."""
        if view.did == brand_did:
            return self._config.handle  # even after a change of handle
        if account_key(view.did) in self._rule.brand_accounts | self._rule.partners:
            return view.did
        return view.handle or view.did


def _whole(run: _Run, what: str) -> bool:
    """Whether a paged read ended at its last page (or at posts read before), not cut short."""
    return run.calls.stopped is None and what not in run.calls.skipped


def _cursor(page: str | None) -> list[tuple[str, str]]:
    return [("cursor", page)] if page else []


def _is_did(account: str) -> bool:
    return account.startswith("did:")


def _did_of(uri: str) -> str:
    return uri.removeprefix("at://").split("/", 1)[0]
