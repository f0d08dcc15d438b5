"""FacebookPageSource: the feed with its comments, then the other active threads."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from types import MappingProxyType
from typing import Any

import aiohttp
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
    TransientError,
    most_severe,
    one_error,
)
from monitor.sources.facebook._graph import (
    COMMENT_FIELDS,
    FEED_FIELDS,
    Malformed,
    ObjectMissing,
    Raw,
    author_of,
    comment_seq,
    created_time,
    graph_error,
    graph_object,
    next_link,
    parse_graph_time,
    parse_usage,
    permalink_of,
    required_id,
    text_of,
)
from monitor.sources.facebook._state import (
    Comments,
    EdgeRead,
    FeedRead,
    FetchState,
    Pending,
    Resume,
    ThreadsRead,
    since_ids,
    skip_malformed,
    stop_reason,
    wait_seconds,
    without_proof,
)
from monitor.sources.graph_access import GraphAccess
from monitor.sources.graph_batch import BatchRefused, GraphBatcher
from monitor.sources.http import JsonResponse, without_query

log = get_logger("monitor.sources.facebook")


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
        self._graph = GraphAccess(config, session, clock)
        self._base = self._graph.base
        self._base_path = URL(self._base).raw_path.rstrip("/")
        self._token = self._graph.token
        self._proof = self._graph.proof
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
        """New feed posts with their comments since the cursor, plus the other active threads."""
        # A throttle or a transient failure in the middle keeps what came before: the batch is
        # marked interrupted and its cursor says what is left (the rest of the feed, the threads
        # not read), which the next fetch finishes before anything else.
        state = FetchState(limiter=asyncio.Semaphore(self._concurrency))
        if self._batcher is not None and request.include_feed:
            # A poll cycle (not a re-read before a breach): the batcher expects this page.
            self._batcher.arrive(self._config.name)
        page_id = await self._numeric_page_id(state)
        since = self._since(request.cursor)
        resume = Resume.load(request.cursor) if request.include_feed else None
        if resume is not None:
            feed_url: str | None = resume.feed_next
            at_since: frozenset[str] = frozenset()
            lookup: list[Pending] = list(resume.threads)
        else:
            feed_url = self._feed_url(since) if request.include_feed else None
            # `since` is inclusive: posts created at the cursor instant come back with the
            # feed, comments included, so only the other active threads need a read of their own.
            at_since = since_ids(request.cursor) if request.include_feed else frozenset()
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
        threads: dict[str, Comments | None] = {}
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
            wait_seconds=wait_seconds(state, errors),
            interrupted=stop_reason(errors) if interrupted and request.include_feed else None,
            skipped=state.skipped,
        )

    def _next_cursor(
        self,
        request: FetchRequest,
        since: int,
        resume: Resume | None,
        created: Mapping[str, int],
        feed: FeedRead,
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
            "feed_since_ids": sorted(since_ids(request.cursor)),
            "resume": Resume(
                feed_next=without_proof(feed.next_url),
                threads=tuple((p, without_proof(url)) for p, url in sorted(pending, key=str)),
                newest=newest,
                newest_ids=tuple(sorted(at_newest)),
            ).to_json(),
        }

    # --- requests -------------------------------------------------------------------------

    async def _numeric_page_id(self, state: FetchState) -> str:
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
        self, state: FetchState, url: str | None, page_read: Callable[[list[Any]], None]
    ) -> FeedRead:
        """Feed pages from `url` on, each post with all its comments (None: not all read)."""
        # Stops at the first page that cannot be read for now (throttled, transient) and says
        # where to go on; what was read before it is kept. `page_read` sees each page's posts.
        read = FeedRead()
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
            next_url = next_link(body)
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
            (raw, Comments(items=edge.items, resume_at=edge.resume_at))
            for raw, edge in zip(posts, edges, strict=True)
        ]
        read.errors.extend(edge.error for edge in edges if edge.error is not None)
        return read

    async def _fetch_threads(self, state: FetchState, threads: Sequence[Pending]) -> ThreadsRead:
        """Comments of each thread (None: the thread is gone); refused single threads skipped."""
        # Each from its first page or from where an earlier read stopped. Several threads go out
        # as Graph batch requests (≤ 50 reads per POST, each still one call): multi-id reads
        # (`GET /?ids=`) are refused from Graph API v26.0.
        read = ThreadsRead()
        batched = len(threads) > 1
        async with asyncio.TaskGroup() as group:
            for post_id, start_at in threads:
                group.create_task(self._read_thread(state, post_id, start_at, read, batched))
        return read

    async def _read_thread(
        self,
        state: FetchState,
        post_id: str,
        start_at: str | None,
        read: ThreadsRead,
        batched: bool,
    ) -> None:
        try:
            if start_at is None:
                comments = await self._fetch_comments(state, post_id, batched=batched)
            else:
                rest = await self._read_all(state, start_at, None, batched=batched)
                comments = Comments(items=rest.items, resume_at=rest.resume_at, whole=False)
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
        self, state: FetchState, post_id: str, *, batched: bool = False
    ) -> Comments | None:
        """A thread's comments from its own edge; None when the post is gone."""
        try:
            edge = await self._read_all(
                state, f"{self._base}/{post_id}/comments", self._comment_params, batched=batched
            )
        except ObjectMissing:
            return None
        if edge.error is not None:
            state.partial_errors.append(edge.error)
        return Comments(items=edge.items, resume_at=edge.resume_at)

    async def _expanded_comments(self, state: FetchState, raw: Raw) -> EdgeRead:
        """A post's comments from its expanded `comments` edge, reading on if they did not fit."""
        edge = raw.get("comments")
        if edge is None:
            return EdgeRead(items=[])  # Graph leaves out an edge without items
        data = edge.get("data") if isinstance(edge, dict) else None
        if not isinstance(edge, dict) or not isinstance(data, list):
            raise TransientError(f"Graph returned post {raw.get('id')} with unreadable comments")
        items: list[Raw] = [item for item in data if isinstance(item, dict)]
        next_url = next_link(edge)
        if next_url is None or not items:
            return EdgeRead(items=items)
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
            return EdgeRead(items=items, resume_at=next_url, error=err)
        return EdgeRead(items=items + rest.items, resume_at=rest.resume_at, error=rest.error)

    async def _get_all(
        self, state: FetchState, url: str, params: Mapping[str, str] | None
    ) -> list[Raw]:
        """Every item of an edge; any failure on the way is raised."""
        edge = await self._read_all(state, url, params)
        if edge.error is not None:
            raise edge.error
        return edge.items

    async def _read_all(
        self,
        state: FetchState,
        url: str,
        params: Mapping[str, str] | None,
        *,
        batched: bool = False,
    ) -> EdgeRead:
        """Every item of an edge, following `paging.next` verbatim until there is none."""
        # A page after the first that cannot be read now (throttled, transient) ends the read
        # with what came before and where to go on; a failing first page is raised.
        # `batched`: the first page goes out in a Graph batch (several threads read at once).
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
                return EdgeRead(items=items, resume_at=url, error=err)
            first = False
            data = body.get("data")
            if not isinstance(data, list):
                raise TransientError(
                    f"GET {without_query(url)}: Graph response without a data list"
                )
            items.extend(item for item in data if isinstance(item, dict))
            next_url = next_link(body)
            if next_url is None or not data:
                return EdgeRead(items=items)
            if next_url in seen:
                raise TransientError(f"GET {without_query(url)}: paging.next repeats itself")
            self._check_link(next_url, f"GET {without_query(url)}")
            seen.add(next_url)
            url, next_params = next_url, None

    def _check_link(self, link: str, where: str) -> None:
        self._graph.check_link(link, where)

    async def _get(
        self,
        state: FetchState,
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
                response = await self._graph.get(url, params)
        usage = parse_usage(response.headers)
        if usage.ratio is not None:
            state.usage_ratio = max(state.usage_ratio or 0.0, usage.ratio)
        if usage.regain_seconds is not None:
            state.regain_seconds = max(state.regain_seconds or 0.0, usage.regain_seconds)
        return graph_object(response, usage, self._token)

    def _batch_refused(self, response: JsonResponse) -> None:
        """Raise what a refused batch means for every call in it, unless a plain GET may help."""
        body = response.body
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            mapped = graph_error(
                error,
                response.status,
                parse_usage(response.headers),
                f"POST {response.url}",
                self._token,
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

    def _post_message(self, raw: Raw, page_id: str, state: FetchState) -> Message | None:
        """The post as a message; None (and skipped) when it lacks what we need."""
        try:
            post_id = required_id(raw, "post")
            created_at = created_time(raw, post_id)
        except Malformed as err:
            skip_malformed(state, raw, err)
            return None
        author_id, author_name = author_of(raw)
        return Message(
            platform_id=post_id,
            thread_id=post_id,
            parent_id=None,
            author_id=author_id,
            author_name=author_name,
            text=text_of(raw),
            created_at=created_at,
            seq=0,
            is_brand=author_id == page_id,
            hidden=raw.get("is_hidden") is True,
            permalink=permalink_of(raw),
        )

    def _comment_message(
        self, raw: Raw, post_id: str, page_id: str, position: int, state: FetchState
    ) -> Message | None:
        """The comment as a message; None (and skipped) when it lacks what we need."""
        try:
            comment_id = required_id(raw, "comment")
            created_at = created_time(raw, comment_id)
        except Malformed as err:
            skip_malformed(state, raw, err, f"{post_id}#{position}")
            return None
        parent = raw.get("parent")
        parent_id = parent.get("id") if isinstance(parent, dict) else None
        # A comment without `from` (its author hid it from apps) is an unknown consumer.
        author_id, author_name = author_of(raw)
        return Message(
            platform_id=comment_id,
            thread_id=post_id,
            parent_id=str(parent_id) if parent_id else post_id,
            author_id=author_id,
            author_name=author_name,
            text=text_of(raw),
            created_at=created_at,
            seq=comment_seq(comment_id, position),
            is_brand=author_id == page_id,
            hidden=raw.get("is_hidden") is True,
            permalink=permalink_of(raw),
        )
