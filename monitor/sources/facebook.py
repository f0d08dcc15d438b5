"""Facebook Page adapter: Graph API feed and comments into domain messages and our error tree.

Frugal by design: one feed call brings new posts with their comments (field expansion), the
other active threads are re-read with multi-id lookups of up to 50 posts per call, and pages on
one token can share Graph batch requests (`GraphBatcher`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import aiohttp
import orjson
from yarl import URL

from monitor.clock import Clock
from monitor.config import FacebookPageConfig
from monitor.domain import Batch, Message
from monitor.sources.base import (
    AuthError,
    FatalError,
    FetchRequest,
    RateLimited,
    SourceError,
    TransientError,
)
from monitor.sources.graph_batch import GraphBatcher
from monitor.sources.http import request_json

FEED_FIELDS = "id,from{id,name},message,created_time,permalink_url,is_hidden"
COMMENT_FIELDS = "id,from{id,name},message,created_time,parent{id},is_hidden,permalink_url"
GRAPH_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"  # "2024-01-05T21:13:04+0000"
# Graph's cap on the ids of one multi-id read (`GET /?ids=`).
IDS_PER_LOOKUP = 50

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


class _AliasMissing(_ObjectMissing):
    """Graph code 803 (100 in newer versions): an id of a multi-id read does not exist."""


@dataclass(kw_only=True)
class _FetchState:
    """What one fetch accumulates across its requests (mutable on purpose)."""

    # Bounds plain GETs in flight; batched ones need no bound (≤ 50 share one POST anyway).
    limiter: asyncio.Semaphore
    requests: int = 0
    usage_ratio: float | None = None
    regain_seconds: float | None = None


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
        state = _FetchState(limiter=asyncio.Semaphore(self._concurrency))
        if self._batcher is not None and request.include_feed:
            # A poll cycle (not a re-read before a breach): the batcher expects this page.
            self._batcher.arrive(self._config.name)
        page_id = await self._numeric_page_id(state)
        since = self._since(request.cursor)
        # `since` is inclusive: posts created at the cursor instant come back with the feed,
        # comments included, so only the other active threads need a lookup of their own.
        at_since = _since_ids(request.cursor) if request.include_feed else frozenset()
        lookup = sorted(request.active_threads - at_since)
        # Feed and lookups together: with a shared batcher they travel in the same POSTs.
        with _one_error():
            async with asyncio.TaskGroup() as group:
                feed_task = group.create_task(
                    self._fetch_feed(state, since) if request.include_feed else _no_posts()
                )
                lookup_task = group.create_task(self._fetch_threads(state, lookup))
        messages: list[Message] = []
        threads: dict[str, list[Raw] | None] = {}
        created: dict[str, int] = {}
        for raw, comments in feed_task.result():
            post = self._post_message(raw, page_id)
            if post.platform_id in threads:
                continue  # a post on two feed pages
            messages.append(post)
            threads[post.platform_id] = comments
            created[post.platform_id] = int(post.created_at.timestamp())
        looked_up = lookup_task.result()
        # A post expected back from the feed that did not come is gone (or hidden from us).
        expected = sorted((request.active_threads & at_since) - threads.keys())
        if expected:
            looked_up.update(await self._fetch_threads(state, expected))
        for post_id in sorted(looked_up):
            threads.setdefault(post_id, looked_up[post_id])

        complete: dict[str, frozenset[str]] = {}
        deleted: set[str] = set()
        for post_id, raw_comments in threads.items():
            if raw_comments is None:
                deleted.add(post_id)
                continue
            in_thread = [
                self._comment_message(raw, post_id, page_id, position)
                for position, raw in enumerate(raw_comments, start=1)
            ]
            messages.extend(in_thread)
            # The comments were read, so the post itself still exists.
            complete[post_id] = frozenset({post_id, *(c.platform_id for c in in_thread)})
        newest = max([since, *created.values()])
        cursor: Mapping[str, Any] = request.cursor
        if request.include_feed:
            at_newest = sorted(post_id for post_id, at in created.items() if at == newest)
            cursor = {"feed_since": newest, "feed_since_ids": at_newest}
        return Batch(
            messages=tuple(messages),
            cursor=cursor,
            complete_threads=complete,
            deleted_threads=frozenset(deleted),
            api_usage_ratio=state.usage_ratio,
            requests=state.requests,
            wait_seconds=state.regain_seconds,
        )

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

    async def _fetch_feed(self, state: _FetchState, since: int) -> list[tuple[Raw, list[Raw]]]:
        """Posts since `since`, each with all its comments (expanded in the same call)."""
        params = {
            "fields": f"{FEED_FIELDS},{self._comments_field}",
            "limit": str(self._page_size),
            "since": str(since),
        }
        posts = await self._get_all(state, f"{self._base}/{self._config.page_id}/feed", params)
        with _one_error():
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._expanded_comments(state, raw)) for raw in posts]
        return [(raw, task.result()) for raw, task in zip(posts, tasks, strict=True)]

    async def _fetch_threads(
        self, state: _FetchState, thread_ids: Sequence[str]
    ) -> dict[str, list[Raw] | None]:
        """Comments of each thread, None for a thread that no longer exists."""
        if not thread_ids:
            return {}
        if len(thread_ids) == 1:
            # One thread: its own edge costs the same single call and says directly if it is
            # gone, where a failed multi-id read would need a second call to tell.
            return {thread_ids[0]: await self._fetch_comments(state, thread_ids[0])}
        chunks = [
            thread_ids[start : start + IDS_PER_LOOKUP]
            for start in range(0, len(thread_ids), IDS_PER_LOOKUP)
        ]
        with _one_error():
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._lookup(state, chunk)) for chunk in chunks]
        results: dict[str, list[Raw] | None] = {}
        for task in tasks:
            results.update(task.result())
        return results

    async def _lookup(
        self, state: _FetchState, thread_ids: Sequence[str]
    ) -> dict[str, list[Raw] | None]:
        """Up to 50 threads in one multi-id read (`GET /?ids=...&fields=comments...`)."""
        params = {"ids": ",".join(thread_ids), "fields": self._comments_field}
        try:
            body = await self._get(state, f"{self._base}/", params)
        except _ObjectMissing:
            # Graph refuses the whole read when one post is gone; reading each tells which.
            return await self._each(state, thread_ids)
        found = {post_id: body.get(post_id) for post_id in thread_ids}
        unanswered = [post_id for post_id, raw in found.items() if not isinstance(raw, dict)]
        with _one_error():
            async with asyncio.TaskGroup() as group:
                tasks = {
                    post_id: group.create_task(self._expanded_comments(state, raw))
                    for post_id, raw in found.items()
                    if isinstance(raw, dict)
                }
                rest = group.create_task(self._each(state, unanswered))
        results: dict[str, list[Raw] | None] = {
            post_id: task.result() for post_id, task in tasks.items()
        }
        results.update(rest.result())
        return results

    async def _each(
        self, state: _FetchState, thread_ids: Sequence[str]
    ) -> dict[str, list[Raw] | None]:
        """Threads read one by one, concurrently (a batcher folds them into one POST)."""
        with _one_error():
            async with asyncio.TaskGroup() as group:
                tasks = {
                    post_id: group.create_task(self._fetch_comments(state, post_id))
                    for post_id in thread_ids
                }
        return {post_id: task.result() for post_id, task in tasks.items()}

    async def _fetch_comments(self, state: _FetchState, post_id: str) -> list[Raw] | None:
        try:
            return await self._get_all(
                state, f"{self._base}/{post_id}/comments", self._comment_params
            )
        except _ObjectMissing:
            return None

    async def _expanded_comments(self, state: _FetchState, raw: Raw) -> list[Raw]:
        """A post's comments from its expanded `comments` edge, reading on if they did not fit."""
        edge = raw.get("comments")
        if edge is None:
            return []  # Graph leaves out an edge without items
        data = edge.get("data") if isinstance(edge, dict) else None
        if not isinstance(edge, dict) or not isinstance(data, list):
            raise TransientError(f"Graph returned post {raw.get('id')} with unreadable comments")
        items: list[Raw] = [item for item in data if isinstance(item, dict)]
        next_url = _next_link(edge)
        if next_url is None or not items:
            return items
        self._check_link(next_url, f"comments of post {raw.get('id')}")
        link = URL(next_url, encoded=True)
        # A nested edge's `next` may carry only limit and cursor: without filter=stream the
        # rest of the thread would come back without its replies.
        missing = {
            key: value for key, value in self._comment_params.items() if key not in link.query
        }
        if missing:
            next_url = str(link.update_query(missing))
        return items + await self._get_all(state, next_url, None)

    async def _get_all(
        self, state: _FetchState, url: str, params: Mapping[str, str] | None
    ) -> list[Raw]:
        """Every item of an edge, following `paging.next` verbatim until there is none."""
        items: list[Raw] = []
        seen: set[str] = set()
        next_params: Mapping[str, str] | None = params
        while True:
            body = await self._get(state, url, next_params)
            data = body.get("data")
            if not isinstance(data, list):
                raise TransientError(f"GET {_path(url)}: Graph response without a data list")
            items.extend(item for item in data if isinstance(item, dict))
            next_url = _next_link(body)
            if next_url is None or not data:
                return items
            if next_url in seen:
                raise TransientError(f"GET {_path(url)}: paging.next repeats itself")
            self._check_link(next_url, f"GET {_path(url)}")
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
        self, state: _FetchState, url: str, params: Mapping[str, str] | None
    ) -> Mapping[str, Any]:
        state.requests += 1
        if self._batcher is not None:
            response = await self._batcher.get(
                self._relative(url, params), timeout=self._config.request_timeout
            )
        else:
            async with state.limiter:
                response = await request_json(
                    self._session,
                    url,
                    params=params,
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
        code = _as_int(error.get("code"))
        subcode = _as_int(error.get("error_subcode"))
        ident = f"code {code}" if subcode is None else f"code {code}/{subcode}"
        ident += f", fbtrace_id {error.get('fbtrace_id') or '-'}"
        said = self._redact(str(error.get("message") or "no message"))[:300]
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
        if code == 803 or (code == 100 and subcode is None and "aliases" in said.lower()):
            return _AliasMissing(f"some requested ids do not exist ({ident}): {detail}")
        if code == 100 and subcode == 33:
            return _ObjectMissing(
                f"object does not exist or the token cannot read it ({ident}): {detail}"
            )
        if status >= 500:
            return TransientError(f"Graph API server error HTTP {status} ({ident}): {detail}")
        return FatalError(f"Graph API rejected the request ({ident}): {detail}")

    def _redact(self, text: str) -> str:
        if len(self._token) >= 4:
            text = text.replace(self._token, "***")
        return text

    def _post_message(self, raw: Mapping[str, Any], page_id: str) -> Message:
        post_id = _required_id(raw, "post")
        author_id, author_name = _author(raw)
        return Message(
            platform_id=post_id,
            thread_id=post_id,
            parent_id=None,
            author_id=author_id,
            author_name=author_name,
            text=_text(raw),
            created_at=_created_at(raw, post_id),
            seq=0,
            is_brand=author_id == page_id,
            hidden=raw.get("is_hidden") is True,
            permalink=_permalink(raw),
        )

    def _comment_message(
        self, raw: Mapping[str, Any], post_id: str, page_id: str, position: int
    ) -> Message:
        comment_id = _required_id(raw, "comment")
        parent = raw.get("parent")
        parent_id = parent.get("id") if isinstance(parent, dict) else None
        author_id, author_name = _author(raw)
        return Message(
            platform_id=comment_id,
            thread_id=post_id,
            parent_id=str(parent_id) if parent_id else post_id,
            author_id=author_id,
            author_name=author_name,
            text=_text(raw),
            created_at=_created_at(raw, comment_id),
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


@contextlib.contextmanager
def _one_error() -> Iterator[None]:
    """Turn a TaskGroup's ExceptionGroup into the one error the operator most needs to see."""
    try:
        yield
    except ExceptionGroup as failures:
        chosen = _most_severe(failures)
        if chosen is None:
            raise
        raise chosen from chosen.__cause__


async def _no_posts() -> list[tuple[Raw, list[Raw]]]:
    return []


def _since_ids(cursor: Mapping[str, Any]) -> frozenset[str]:
    """Ids of the posts created at the cursor instant (the feed returns them again)."""
    value = cursor.get("feed_since_ids")
    if not isinstance(value, list):
        return frozenset()
    return frozenset(str(item) for item in value if isinstance(item, str | int))


def _most_severe(failures: BaseExceptionGroup[Any]) -> SourceError | None:
    """The error the operator most needs to see; None if a non-SourceError (a bug) is inside."""
    flat: list[BaseException] = []
    stack: list[BaseException] = [failures]
    while stack:
        current = stack.pop()
        if isinstance(current, BaseExceptionGroup):
            stack.extend(current.exceptions)
        else:
            flat.append(current)
    errors = [error for error in flat if isinstance(error, SourceError)]
    if not errors or len(errors) != len(flat):
        return None
    for kind in (AuthError, FatalError, RateLimited, TransientError):
        for error in errors:
            if isinstance(error, kind):
                return error
    return errors[0]


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


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _next_link(body: Mapping[str, Any]) -> str | None:
    paging = body.get("paging")
    if not isinstance(paging, dict):
        return None
    link = paging.get("next")
    return link if isinstance(link, str) and link else None


def _path(url: str) -> str:
    return str(URL(url, encoded=True).with_query(None))


def _required_id(raw: Mapping[str, Any], kind: str) -> str:
    value = raw.get("id")
    if not isinstance(value, str | int) or not str(value):
        raise TransientError(f"Graph returned a {kind} without an id")
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
        raise TransientError(f"Graph returned {object_id} with unreadable created_time") from err
