"""Facebook Page adapter: Graph API feed and comments into domain messages and our error tree.

Frugal by design: one feed call brings new posts with their comments (field expansion), the
other active threads are re-read in Graph batch requests of up to 50 reads per POST (multi-id
`GET /?ids=` reads are refused from v26.0), and pages on one token share those batches
(`GraphBatcher`). A throttle in the middle of a poll keeps what came before (see `fetch`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import aiohttp
import orjson
from yarl import URL

from monitor.clock import Clock
from monitor.config import FacebookPageConfig
from monitor.domain import Batch, Message, Skipped
from monitor.logging import get_logger
from monitor.sources.base import (
    AuthError,
    FatalError,
    FetchRequest,
    RateLimited,
    SourceError,
    TransientError,
    most_severe,
    one_error,
)
from monitor.sources.facebook_token import proof_params
from monitor.sources.graph_batch import BatchRefused, GraphBatcher
from monitor.sources.http import JsonResponse, redact, request_json, without_query
from monitor.sources.wire import as_int

log = get_logger("monitor.sources.facebook")

FEED_FIELDS = "id,from{id,name},message,created_time,permalink_url,is_hidden"
COMMENT_FIELDS = "id,from{id,name},message,created_time,parent{id},is_hidden,permalink_url"
GRAPH_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"  # "2024-01-05T21:13:04+0000"
THROTTLE_CODES = frozenset({4, 17, 32, 613, 80001})
# 102 session key invalid, 104 no token sent, 190 invalid/expired token.
TOKEN_CODES = frozenset({102, 104, 190})
PERMISSION_CODES = frozenset({10, *range(200, 300)})
TRANSIENT_CODES = frozenset({1, 2})
_TOKEN_PROBLEMS: Mapping[int, str] = MappingProxyType(
    {
        458: "the app is no longer authorised by the user who made the token",
        459: "the user who made the token must log in at facebook.com to pass a checkpoint",
        460: "access token invalidated (password change or security reset)",
        463: "access token expired",
        464: "the user who made the token is not confirmed",
        467: "access token invalid (the user logged out)",
    }
)
_NEW_TOKEN = (
    "generate a new Page access token (with pages_read_engagement and pages_read_user_content)"
    " and update access_token in the config"
)
USAGE_KEYS = ("call_count", "total_cputime", "total_time")

Raw = Mapping[str, Any]


class _ObjectMissing(FatalError):
    """Graph code 100/33: the object does not exist (or cannot be read)."""


@dataclass(kw_only=True)
class _FetchState:
    """What one fetch accumulates across its requests (mutable on purpose)."""

    # Bounds plain GETs in flight; batched ones need no bound (≤ 50 share one POST anyway).
    limiter: asyncio.Semaphore
    calls: int = 0  # Graph calls, as the rate limits count them (each batch entry is one)
    plain_requests: int = 0
    batches: set[int] = field(default_factory=set)  # the batch POSTs our calls travelled in
    usage_ratio: float | None = None
    regain_seconds: float | None = None
    skipped: dict[str, Skipped] = field(default_factory=dict)
    # Failures that ended a read part-way (what came before it is kept).
    partial_errors: list[SourceError] = field(default_factory=list)

    @property
    def http_requests(self) -> int:
        """HTTP requests: plain GETs plus the batch POSTs that carried our calls."""
        return self.plain_requests + len(self.batches)


@dataclass(frozen=True, kw_only=True)
class _EdgeRead:
    """Items of an edge as far as they could be read, and where the rest starts."""

    items: list[Raw]
    resume_at: str | None = None  # the page that could not be read now
    error: SourceError | None = None  # why not


@dataclass(frozen=True, kw_only=True)
class _Comments:
    """Comments of one thread as far as they could be read."""

    items: list[Raw]
    # The page that could not be read now (throttled, transient): the rest starts there.
    resume_at: str | None = None
    # False when the read began mid-thread (resumed): the items are not the whole thread.
    whole: bool = True

    @property
    def complete(self) -> bool:
        """Every comment of the thread is in `items` (so missing stored ones were deleted)."""
        return self.whole and self.resume_at is None


# A thread still to read, and the comments page to start at (None: its first page).
Pending = tuple[str, str | None]


@dataclass(kw_only=True)
class _FeedRead:
    """Feed posts read so far, each with its comments."""

    posts: list[tuple[Raw, _Comments | None]] = field(default_factory=list)
    next_url: str | None = None  # where the feed goes on, when a page could not be read now
    errors: list[SourceError] = field(default_factory=list)


@dataclass(kw_only=True)
class _ThreadsRead:
    """Threads read (None: gone), and the ones to read on once Graph lets us."""

    found: dict[str, _Comments | None] = field(default_factory=dict)
    not_started: list[Pending] = field(default_factory=list)
    errors: list[SourceError] = field(default_factory=list)

    def merge(self, other: _ThreadsRead) -> None:
        """Add another read's results to this one."""
        self.found.update(other.found)
        self.not_started.extend(other.not_started)
        self.errors.extend(other.errors)


@dataclass(frozen=True, kw_only=True)
class _Resume:
    """The rest of an interrupted poll, kept in the cursor: the next fetch does this first."""

    feed_next: str | None  # the feed page to read next (None: the feed was read to its end)
    threads: tuple[Pending, ...]  # threads still to read
    newest: int  # the newest post seen so far: the feed cursor once the rest is done
    newest_ids: tuple[str, ...]

    @classmethod
    def load(cls, cursor: Mapping[str, Any]) -> _Resume | None:
        """The saved rest of a poll, or None (none saved, or unreadable: start afresh)."""
        raw = cursor.get("resume")
        if not isinstance(raw, dict):
            return None
        feed_next = raw.get("feed_next")
        threads = raw.get("threads")
        newest = raw.get("newest")
        newest_ids = raw.get("newest_ids")
        if (
            not (feed_next is None or isinstance(feed_next, str))
            or not isinstance(threads, list)
            or not isinstance(newest, int)
            or not isinstance(newest_ids, list)
        ):
            return None
        return cls(
            feed_next=feed_next,
            threads=tuple(_pending(entry) for entry in threads),
            newest=newest,
            newest_ids=tuple(str(i) for i in newest_ids),
        )

    def to_json(self) -> dict[str, Any]:
        """The form the store keeps."""
        return {
            "feed_next": self.feed_next,
            "threads": [[post_id, url] for post_id, url in self.threads],
            "newest": self.newest,
            "newest_ids": list(self.newest_ids),
        }


@dataclass(frozen=True, kw_only=True)
class GraphUsage:
    """Usage reported by the Graph API headers of one response."""

    ratio: float | None  # highest percentage / 100 across all usage headers
    regain_seconds: float | None  # estimated_time_to_regain_access, in seconds


class FacebookPageSource:
    """Polls one Page: new posts with their comments from /feed, then the other active threads."""

    def __init__(
        self,
        config: FacebookPageConfig,
        session: aiohttp.ClientSession,
        clock: Clock,
        *,
        page_size: int = 100,
        concurrency: int = 4,
        batcher: GraphBatcher | None = None,
    ) -> None:
        self._config = config
        self._session = session
        self._clock = clock
        self._page_size = page_size
        self._concurrency = concurrency
        self._batcher = batcher
        self._base = config.api_base_url.rstrip("/")
        self._base_path = URL(self._base).raw_path.rstrip("/")
        self._origin = URL(self._base).origin()
        self._token = config.access_token.get_secret_value()
        # Header, never a query parameter: URLs end up in logs and exception messages.
        self._headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        # appsecret_proof on every call when the app secret is known (Meta's recommendation).
        self._proof = proof_params(config)
        # Several threads are read in Graph batch POSTs: pages sharing a token use the shared
        # batcher for everything; a lone page batches only its thread reads.
        self._thread_batcher = batcher or GraphBatcher(
            session,
            api_base_url=self._base,
            access_token=self._token,
            proof=self._proof,
            clock=clock,
        )
        self._batch_refusal_logged = False
        # `from.id` is always numeric; a page configured by its username is resolved once.
        self._page_numeric_id: str | None = config.page_id if config.page_id.isdigit() else None
        # filter(stream): the default `toplevel` leaves out replies, where brand answers live.
        self._comment_params = MappingProxyType(
            {
                "filter": "stream",
                "order": "chronological",
                "fields": COMMENT_FIELDS,
                "limit": str(page_size),
            }
        )
        self._comments_field = (
            f"comments.filter(stream).order(chronological).limit({page_size}){{{COMMENT_FIELDS}}}"
        )

    @property
    def page_numeric_id(self) -> str | None:
        """The page's numeric id once known (webhook entries name pages by it)."""
        return self._page_numeric_id

    async def fetch(self, request: FetchRequest) -> Batch:
        """New feed posts with their comments since the cursor, plus the other active threads.

        A throttle or a transient failure in the middle keeps what came before: the batch is
        marked interrupted and its cursor says what is left (the rest of the feed, the threads
        not read), which the next fetch finishes before anything else.
        """
        state = _FetchState(limiter=asyncio.Semaphore(self._concurrency))
        if self._batcher is not None and request.include_feed:
            # A poll cycle (not a re-read before a breach): the batcher expects this page.
            self._batcher.arrive(self._config.name)
        page_id = await self._numeric_page_id(state)
        since = self._since(request.cursor)
        resume = _Resume.load(request.cursor) if request.include_feed else None
        if resume is not None:
            feed_url: str | None = resume.feed_next
            at_since: frozenset[str] = frozenset()
            lookup: list[Pending] = list(resume.threads)
        else:
            feed_url = self._feed_url(since) if request.include_feed else None
            # `since` is inclusive: posts created at the cursor instant come back with the
            # feed, comments included, so only the other active threads need a read of their own.
            at_since = _since_ids(request.cursor) if request.include_feed else frozenset()
            lookup = [(post_id, None) for post_id in sorted(request.active_threads - at_since)]
        # Feed and thread reads together: with a batcher they travel in the same POSTs.
        with one_error():
            async with asyncio.TaskGroup() as group:
                feed_task = group.create_task(
                    self._fetch_feed(state, feed_url, self._days_left(request, since))
                )
                lookup_task = group.create_task(self._fetch_threads(state, lookup))
        feed, looked_up = feed_task.result(), lookup_task.result()
        messages: list[Message] = []
        threads: dict[str, _Comments | None] = {}
        created: dict[str, int] = {}
        for raw, comments in feed.posts:
            post = self._post_message(raw, page_id, state)
            if post is None or post.platform_id in threads:
                continue  # unusable, or a post on two feed pages
            messages.append(post)
            threads[post.platform_id] = comments
            created[post.platform_id] = int(post.created_at.timestamp())
        # A post expected back from the feed that did not come is gone (or hidden from us);
        # only a feed read to its end can tell.
        gone_or_late = sorted((request.active_threads & at_since) - threads.keys())
        expected: list[Pending] = [(post_id, None) for post_id in gone_or_late]
        if expected and feed.next_url is None:
            looked_up.merge(await self._fetch_threads(state, expected))
        else:
            looked_up.not_started.extend(expected)
        for post_id in sorted(looked_up.found):
            threads.setdefault(post_id, looked_up.found[post_id])

        complete: dict[str, frozenset[str]] = {}
        deleted: set[str] = set()
        pending = [entry for entry in looked_up.not_started if entry[0] not in threads]
        for post_id, comments in threads.items():
            if comments is None:
                deleted.add(post_id)
                continue
            in_thread = [
                message
                for position, raw in enumerate(comments.items, start=1)
                if (message := self._comment_message(raw, post_id, page_id, position, state))
            ]
            messages.extend(in_thread)
            if comments.complete:
                # The comments were read, so the post itself still exists.
                complete[post_id] = frozenset({post_id, *(c.platform_id for c in in_thread)})
            elif comments.resume_at is not None:
                pending.append((post_id, comments.resume_at))
        errors = [*feed.errors, *looked_up.errors, *state.partial_errors]
        interrupted = feed.next_url is not None or bool(pending)
        if interrupted and not (messages or complete or deleted or state.skipped):
            raise most_severe(ExceptionGroup("no progress", errors)) or errors[0]
        cursor = self._next_cursor(request, since, resume, created, feed, pending)
        return Batch(
            messages=tuple(messages),
            cursor=cursor,
            complete_threads=complete,
            deleted_threads=frozenset(deleted),
            api_usage_ratio=state.usage_ratio,
            requests=state.http_requests,
            api_calls=state.calls,
            wait_seconds=_wait(state, errors),
            interrupted=_reason(errors) if interrupted and request.include_feed else None,
            skipped=state.skipped,
        )

    def _next_cursor(
        self,
        request: FetchRequest,
        since: int,
        resume: _Resume | None,
        created: Mapping[str, int],
        feed: _FeedRead,
        pending: Sequence[Pending],
    ) -> Mapping[str, Any]:
        """Where the next fetch starts: after the feed's newest post, or where this one stopped."""
        if not request.include_feed:
            return request.cursor  # a re-read before a breach never moves the cursor
        newest = max([since, *created.values()])
        at_newest = {post_id for post_id, at in created.items() if at == newest}
        if resume is not None and resume.newest > newest:
            newest, at_newest = resume.newest, set(resume.newest_ids)
        elif resume is not None and resume.newest == newest:
            at_newest |= set(resume.newest_ids)
        if feed.next_url is None and not pending:
            return {"feed_since": newest, "feed_since_ids": sorted(at_newest)}
        return {
            "feed_since": since,
            "feed_since_ids": sorted(_since_ids(request.cursor)),
            "resume": _Resume(
                feed_next=_without_proof(feed.next_url),
                threads=tuple((p, _without_proof(url)) for p, url in sorted(pending, key=str)),
                newest=newest,
                newest_ids=tuple(sorted(at_newest)),
            ).to_json(),
        }

    # --- requests -------------------------------------------------------------------------

    async def _numeric_page_id(self, state: _FetchState) -> str:
        if self._page_numeric_id is None:
            body = await self._get(
                state, f"{self._base}/{self._config.page_id}", {"fields": "id,name"}
            )
            page_id = body.get("id")
            if not isinstance(page_id, str | int) or not str(page_id).isdigit():
                raise TransientError(f"page {self._config.page_id}: Graph returned no numeric id")
            self._page_numeric_id = str(page_id)
        return self._page_numeric_id

    def _since(self, cursor: Mapping[str, Any]) -> int:
        value = cursor.get("feed_since")
        if isinstance(value, int | float) and not isinstance(value, bool):
            return int(value)
        if isinstance(value, str) and value.isdigit():
            return int(value)
        start = self._clock.now() - timedelta(days=self._config.backfill_days)
        return int(start.timestamp())

    def _feed_url(self, since: int) -> str:
        """The first feed page: posts since `since`, each with its comments expanded."""
        params = {
            "fields": f"{FEED_FIELDS},{self._comments_field}",
            "limit": str(self._page_size),
            "since": str(since),
        }
        return str(URL(f"{self._base}/{self._config.page_id}/feed").with_query(params))

    def _days_left(self, request: FetchRequest, since: int) -> Callable[[list[Any]], None]:
        """Tells `request` how many days of the feed are left after a page (newest first)."""
        now = self._clock.now().timestamp()
        total = max(now - since, 0.0) / 86400

        def page_read(data: list[Any]) -> None:
            times = []
            for raw in data:
                with contextlib.suppress(KeyError, TypeError, ValueError):
                    times.append(parse_graph_time(raw["created_time"]).timestamp())
            if times:
                request.progress(min(max(min(times) - since, 0.0) / 86400, total), total, "days")

        return page_read

    async def _fetch_feed(
        self, state: _FetchState, url: str | None, page_read: Callable[[list[Any]], None]
    ) -> _FeedRead:
        """Feed pages from `url` on, each post with all its comments (None: not all read).

        Stops at the first page that cannot be read for now (throttled, transient) and says
        where to go on; what was read before it is kept. `page_read` sees each page's posts.
        """
        read = _FeedRead()
        seen: set[str] = set()
        while url is not None:
            try:
                body = await self._get(state, url, None)
            except (RateLimited, TransientError) as err:
                read.errors.append(err)
                read.next_url = url
                break
            data = body.get("data")
            if not isinstance(data, list):
                raise TransientError(
                    f"GET {without_query(url)}: Graph response without a data list"
                )
            read.posts.extend((raw, None) for raw in data if isinstance(raw, dict))
            page_read([raw for raw in data if isinstance(raw, dict)])
            next_url = _next_link(body)
            if next_url is None or not data:
                break
            if next_url in seen:
                raise TransientError(f"GET {without_query(url)}: paging.next repeats itself")
            self._check_link(next_url, f"GET {without_query(url)}")
            seen.add(next_url)
            url = next_url
        posts = [raw for raw, _ in read.posts]
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self._expanded_comments(state, raw)) for raw in posts]
        edges = [task.result() for task in tasks]
        read.posts = [
            (raw, _Comments(items=edge.items, resume_at=edge.resume_at))
            for raw, edge in zip(posts, edges, strict=True)
        ]
        read.errors.extend(edge.error for edge in edges if edge.error is not None)
        return read

    async def _fetch_threads(self, state: _FetchState, threads: Sequence[Pending]) -> _ThreadsRead:
        """Comments of each thread (None: the thread is gone), from its first page or from
        where an earlier read stopped; Graph's refusals of single threads are skipped.

        Several threads go out as Graph batch requests (≤ 50 reads per POST, each still one
        call): multi-id reads (`GET /?ids=`) are refused from Graph API v26.0.
        """
        read = _ThreadsRead()
        batched = len(threads) > 1
        async with asyncio.TaskGroup() as group:
            for post_id, start_at in threads:
                group.create_task(self._read_thread(state, post_id, start_at, read, batched))
        return read

    async def _read_thread(
        self,
        state: _FetchState,
        post_id: str,
        start_at: str | None,
        read: _ThreadsRead,
        batched: bool,
    ) -> None:
        try:
            if start_at is None:
                comments = await self._fetch_comments(state, post_id, batched=batched)
            else:
                rest = await self._read_all(state, start_at, None, batched=batched)
                comments = _Comments(items=rest.items, resume_at=rest.resume_at, whole=False)
                if rest.error is not None:
                    read.errors.append(rest.error)
        except (RateLimited, TransientError) as err:
            read.errors.append(err)
            read.not_started.append((post_id, start_at))
        except AuthError:
            raise  # the token or the app, not this thread
        except FatalError as err:
            # Graph refuses this one object (a bad id, a post type it will not serve): the
            # rest of the page is read, and the coordinator retries this one at a slower pace.
            state.skipped[post_id] = Skipped(reason="bad_request", detail=str(err))
        else:
            read.found[post_id] = comments

    async def _fetch_comments(
        self, state: _FetchState, post_id: str, *, batched: bool = False
    ) -> _Comments | None:
        """A thread's comments from its own edge; None when the post is gone."""
        try:
            edge = await self._read_all(
                state, f"{self._base}/{post_id}/comments", self._comment_params, batched=batched
            )
        except _ObjectMissing:
            return None
        if edge.error is not None:
            state.partial_errors.append(edge.error)
        return _Comments(items=edge.items, resume_at=edge.resume_at)

    async def _expanded_comments(self, state: _FetchState, raw: Raw) -> _EdgeRead:
        """A post's comments from its expanded `comments` edge, reading on if they did not fit."""
        edge = raw.get("comments")
        if edge is None:
            return _EdgeRead(items=[])  # Graph leaves out an edge without items
        data = edge.get("data") if isinstance(edge, dict) else None
        if not isinstance(edge, dict) or not isinstance(data, list):
            raise TransientError(f"Graph returned post {raw.get('id')} with unreadable comments")
        items: list[Raw] = [item for item in data if isinstance(item, dict)]
        next_url = _next_link(edge)
        if next_url is None or not items:
            return _EdgeRead(items=items)
        self._check_link(next_url, f"comments of post {raw.get('id')}")
        link = URL(next_url, encoded=True)
        # A nested edge's `next` may carry only limit and cursor: without filter=stream the
        # rest of the thread would come back without its replies.
        missing = {
            key: value for key, value in self._comment_params.items() if key not in link.query
        }
        if missing:
            next_url = str(link.update_query(missing))
        try:
            rest = await self._read_all(state, next_url, None)
        except (RateLimited, TransientError) as err:
            return _EdgeRead(items=items, resume_at=next_url, error=err)
        return _EdgeRead(items=items + rest.items, resume_at=rest.resume_at, error=rest.error)

    async def _get_all(
        self, state: _FetchState, url: str, params: Mapping[str, str] | None
    ) -> list[Raw]:
        """Every item of an edge; any failure on the way is raised."""
        edge = await self._read_all(state, url, params)
        if edge.error is not None:
            raise edge.error
        return edge.items

    async def _read_all(
        self,
        state: _FetchState,
        url: str,
        params: Mapping[str, str] | None,
        *,
        batched: bool = False,
    ) -> _EdgeRead:
        """Every item of an edge, following `paging.next` verbatim until there is none.

        A page after the first that cannot be read now (throttled, transient) ends the read
        with what came before and where to go on; a failing first page is raised.
        `batched`: the first page goes out in a Graph batch (several threads read at once).
        """
        items: list[Raw] = []
        seen: set[str] = set()
        next_params: Mapping[str, str] | None = params
        first = True
        while True:
            try:
                body = await self._get(state, url, next_params, batched=batched and first)
            except (RateLimited, TransientError) as err:
                if first:
                    raise
                return _EdgeRead(items=items, resume_at=url, error=err)
            first = False
            data = body.get("data")
            if not isinstance(data, list):
                raise TransientError(
                    f"GET {without_query(url)}: Graph response without a data list"
                )
            items.extend(item for item in data if isinstance(item, dict))
            next_url = _next_link(body)
            if next_url is None or not data:
                return _EdgeRead(items=items)
            if next_url in seen:
                raise TransientError(f"GET {without_query(url)}: paging.next repeats itself")
            self._check_link(next_url, f"GET {without_query(url)}")
            seen.add(next_url)
            url, next_params = next_url, None

    def _check_link(self, link: str, where: str) -> None:
        if URL(link, encoded=True).origin() != self._origin:
            # Never hand the token to a host the operator did not configure.
            raise FatalError(
                f"{where}: paging.next points at {URL(link).origin()},"
                f" not at the configured api_base_url {self._origin}"
            )

    async def _get(
        self,
        state: _FetchState,
        url: str,
        params: Mapping[str, str] | None,
        *,
        batched: bool = False,
    ) -> Mapping[str, Any]:
        """One Graph call: in a batch POST (shared batcher, or `batched`), else a plain GET."""
        state.calls += 1
        batcher = self._batcher or (self._thread_batcher if batched else None)
        response: JsonResponse | None = None
        if batcher is not None:
            try:
                response = await batcher.get(
                    self._relative(url, params),
                    timeout=self._config.request_timeout,
                    sent_in=state.batches,
                )
            except BatchRefused as refused:
                self._batch_refused(refused.response)  # throttled or a bad token: raised
        if response is None:
            # Plain GET, also when Graph refused a batch: read the object on its own.
            state.plain_requests += 1
            async with state.limiter:
                response = await request_json(
                    self._session,
                    url,
                    params={**(params or {}), **self._proof},
                    headers=self._headers,
                    timeout=self._config.request_timeout,
                    clock=self._clock,
                    # Graph 500s carry error codes too (e.g. code 2, is_transient).
                    accept_5xx_json=True,
                )
        usage = parse_usage(response.headers)
        if usage.ratio is not None:
            state.usage_ratio = max(state.usage_ratio or 0.0, usage.ratio)
        if usage.regain_seconds is not None:
            state.regain_seconds = max(state.regain_seconds or 0.0, usage.regain_seconds)
        body = response.body
        where = f"GET {response.url}"
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            raise self._graph_error(body["error"], response.status, usage, where)
        if response.status >= 500:
            raise TransientError(f"{where}: HTTP {response.status}")
        if response.status >= 400:
            raise FatalError(f"{where}: HTTP {response.status} without a Graph error body")
        if not isinstance(body, dict):
            raise TransientError(f"{where}: Graph response is not a JSON object")
        return body

    def _batch_refused(self, response: JsonResponse) -> None:
        """Raise what a refused batch means for every call in it, unless a plain GET may help."""
        body = response.body
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            mapped = self._graph_error(
                error, response.status, parse_usage(response.headers), f"POST {response.url}"
            )
            if isinstance(mapped, RateLimited | AuthError):
                raise mapped
        if not self._batch_refusal_logged:
            self._batch_refusal_logged = True
            log.info(
                "Graph refused a batch request; reading those objects one by one",
                source=self._config.name,
                status=response.status,
            )

    def _relative(self, url: str, params: Mapping[str, str] | None) -> str:
        """A batch operation's relative_url: the part after api_base_url (version included)."""
        full = URL(url, encoded=True)
        if params:
            full = full.update_query(params)
        raw = full.raw_path_qs
        prefix = self._base_path + "/"
        return raw[len(prefix) :] if raw.startswith(prefix) else raw.lstrip("/")

    # --- mapping --------------------------------------------------------------------------

    def _graph_error(
        self, error: Mapping[str, Any], status: int, usage: GraphUsage, where: str
    ) -> SourceError:
        """Translate a Graph `{"error": {...}}` into our error tree."""
        code = as_int(error.get("code"))
        subcode = as_int(error.get("error_subcode"))
        ident = f"code {code}" if subcode is None else f"code {code}/{subcode}"
        ident += f", fbtrace_id {error.get('fbtrace_id') or '-'}"
        said = redact(str(error.get("message") or "no message"), self._token)[:300]
        detail = f"Graph API said {said!r} [{where}]"
        if code in THROTTLE_CODES:
            return RateLimited(
                f"throttled by Facebook ({ident}): {detail}", retry_after=usage.regain_seconds
            )
        if code in TOKEN_CODES:
            problem = "no access token was sent" if code == 104 else "access token invalid"
            problem = _TOKEN_PROBLEMS.get(subcode or 0, problem)
            return AuthError(f"{problem} ({ident}): {_NEW_TOKEN}. {detail}")
        if code in PERMISSION_CODES:
            return AuthError(
                f"permission missing ({ident}): give the app pages_read_engagement and"
                f" pages_read_user_content and make sure the token's user can moderate the Page,"
                f" then {_NEW_TOKEN}. {detail}"
            )
        if code in TRANSIENT_CODES or error.get("is_transient") is True:
            return TransientError(f"temporary Graph API error ({ident}): {detail}")
        if code == 100 and "appsecret_proof" in said:
            return AuthError(
                f"Graph wants a valid appsecret_proof ({ident}): set app_secret on the source"
                f" (or in [facebook_webhook]) to the app's secret from the Meta app dashboard."
                f" {detail}"
            )
        if code == 100 and subcode == 33:
            return _ObjectMissing(
                f"object does not exist or the token cannot read it ({ident}): {detail}"
            )
        if status >= 500:
            return TransientError(f"Graph API server error HTTP {status} ({ident}): {detail}")
        return FatalError(f"Graph API rejected the request ({ident}): {detail}")

    def _post_message(self, raw: Raw, page_id: str, state: _FetchState) -> Message | None:
        """The post as a message; None (and skipped) when it lacks what we need."""
        try:
            post_id = _required_id(raw, "post")
            created_at = _created_at(raw, post_id)
        except _Malformed as err:
            _skip_malformed(state, raw, err)
            return None
        author_id, author_name = _author(raw)
        return Message(
            platform_id=post_id,
            thread_id=post_id,
            parent_id=None,
            author_id=author_id,
            author_name=author_name,
            text=_text(raw),
            created_at=created_at,
            seq=0,
            is_brand=author_id == page_id,
            hidden=raw.get("is_hidden") is True,
            permalink=_permalink(raw),
        )

    def _comment_message(
        self, raw: Raw, post_id: str, page_id: str, position: int, state: _FetchState
    ) -> Message | None:
        """The comment as a message; None (and skipped) when it lacks what we need."""
        try:
            comment_id = _required_id(raw, "comment")
            created_at = _created_at(raw, comment_id)
        except _Malformed as err:
            _skip_malformed(state, raw, err, f"{post_id}#{position}")
            return None
        parent = raw.get("parent")
        parent_id = parent.get("id") if isinstance(parent, dict) else None
        # A comment without `from` (its author hid it from apps) is an unknown consumer.
        author_id, author_name = _author(raw)
        return Message(
            platform_id=comment_id,
            thread_id=post_id,
            parent_id=str(parent_id) if parent_id else post_id,
            author_id=author_id,
            author_name=author_name,
            text=_text(raw),
            created_at=created_at,
            seq=comment_seq(comment_id, position),
            is_brand=author_id == page_id,
            hidden=raw.get("is_hidden") is True,
            permalink=_permalink(raw),
        )


def parse_graph_time(value: str) -> datetime:
    """Parse a Graph timestamp such as `2024-01-05T21:13:04+0000` into aware UTC."""
    return datetime.strptime(value, GRAPH_TIME_FORMAT).astimezone(UTC)


def comment_seq(comment_id: str, position: int) -> int:
    """Order inside a thread: the number after the last "_" of `{post}_{comment}` ids."""
    tail = comment_id.rpartition("_")[2]
    return int(tail) if tail.isdigit() else position


def parse_usage(headers: Mapping[str, str]) -> GraphUsage:
    """Highest usage fraction and regain time from x-app-usage, x-business-use-case-usage and
    x-page-usage; malformed headers are ignored."""
    highest: float | None = None
    regain: float | None = None
    for name in ("x-app-usage", "x-page-usage"):
        document = _json_header(headers.get(name))
        if isinstance(document, dict):
            highest = _max(highest, _usage_percent(document))
    business = _json_header(headers.get("x-business-use-case-usage"))
    if isinstance(business, dict):
        for entries in business.values():
            if not isinstance(entries, list):
                continue
            for entry in entries:
                if not isinstance(entry, dict):
                    continue
                highest = _max(highest, _usage_percent(entry))
                minutes = _as_number(entry.get("estimated_time_to_regain_access"))
                if minutes is not None and minutes > 0:
                    regain = _max(regain, minutes * 60.0)
    return GraphUsage(ratio=None if highest is None else highest / 100.0, regain_seconds=regain)


async def _no_posts() -> list[tuple[Raw, list[Raw]]]:
    return []


def _since_ids(cursor: Mapping[str, Any]) -> frozenset[str]:
    """Ids of the posts created at the cursor instant (the feed returns them again)."""
    value = cursor.get("feed_since_ids")
    if not isinstance(value, list):
        return frozenset()
    return frozenset(str(item) for item in value if isinstance(item, str | int))


def _json_header(value: str | None) -> Any:
    if not value:
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return None


def _usage_percent(document: Mapping[str, Any]) -> float | None:
    values = [_as_number(document.get(key)) for key in USAGE_KEYS]
    numbers = [value for value in values if value is not None]
    return max(numbers) if numbers else None


def _max(current: float | None, candidate: float | None) -> float | None:
    if candidate is None:
        return current
    return candidate if current is None else max(current, candidate)


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _next_link(body: Mapping[str, Any]) -> str | None:
    paging = body.get("paging")
    if not isinstance(paging, dict):
        return None
    link = paging.get("next")
    return link if isinstance(link, str) and link else None


class _Malformed(ValueError):
    """Graph returned an object without a field we need (id, created_time)."""


def _skip_malformed(
    state: _FetchState, raw: Raw, err: _Malformed, fallback_key: str | None = None
) -> None:
    value = raw.get("id")
    key = str(value) if isinstance(value, str | int) and str(value) else fallback_key
    # "post:" like every source: a post's id never rests a thread of the same number.
    state.skipped[f"post:{key or 'unknown'}"] = Skipped(reason="malformed", detail=str(err))


def _required_id(raw: Mapping[str, Any], kind: str) -> str:
    value = raw.get("id")
    if not isinstance(value, str | int) or not str(value):
        raise _Malformed(f"Graph returned a {kind} without an id")
    return str(value)


def _author(raw: Mapping[str, Any]) -> tuple[str | None, str | None]:
    # Graph leaves out `from` for people who did not authorise the app: an unknown consumer.
    author = raw.get("from")
    if not isinstance(author, dict):
        return None, None
    author_id = author.get("id")
    name = author.get("name")
    return (
        str(author_id) if author_id is not None else None,
        name if isinstance(name, str) else None,
    )


def _text(raw: Mapping[str, Any]) -> str:
    message = raw.get("message")
    return message if isinstance(message, str) else ""


def _permalink(raw: Mapping[str, Any]) -> str | None:
    link = raw.get("permalink_url")
    return link if isinstance(link, str) and link else None


def _created_at(raw: Mapping[str, Any], object_id: str) -> datetime:
    value = raw.get("created_time")
    try:
        if not isinstance(value, str):
            raise ValueError("not a string")
        return parse_graph_time(value)
    except ValueError as err:
        raise _Malformed(f"Graph returned {object_id} with unreadable created_time") from err


def _wait(state: _FetchState, errors: Sequence[SourceError]) -> float | None:
    """The longest wait Graph asked for: estimated_time_to_regain_access, or a Retry-After."""
    waits = [e.retry_after for e in errors if isinstance(e, RateLimited) and e.retry_after]
    if state.regain_seconds is not None:
        waits.append(state.regain_seconds)
    return max(waits) if waits else None


def _reason(errors: Sequence[SourceError]) -> str:
    """Why a fetch stopped early, as a poll-error reason."""
    return RateLimited.reason if any(isinstance(e, RateLimited) for e in errors) else "transient"


def _pending(entry: Any) -> Pending:
    """A saved pending thread: [post_id, url or None] (or a bare post id)."""
    if isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], str | None):
        return str(entry[0]), entry[1]
    return str(entry), None


def _without_proof(url: str | None) -> str | None:
    """A paging link fit to keep in the cursor: the proof (and any token) is added per call."""
    if url is None:
        return None
    link = URL(url, encoded=True)
    kept = {k: v for k, v in link.query.items() if k not in ("appsecret_proof", "access_token")}
    return str(link.with_query(kept)) if kept != dict(link.query) else url
