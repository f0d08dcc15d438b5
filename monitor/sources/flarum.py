"""Flarum adapter: JSON:API discussions and posts into domain messages and our error tree."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import aiohttp
from yarl import URL

from monitor.clock import Clock
from monitor.config import FlarumConfig
from monitor.domain import Batch, Message
from monitor.sources.base import (
    AuthError,
    FatalError,
    FetchRequest,
    RateLimited,
    SourceError,
    TransientError,
)
from monitor.sources.http import request_json

# Flarum's built-in Admins (1) and Mods (4) groups: what "group:staff" means on Flarum, which
# has no staff flag of its own.
STAFF_GROUP_IDS = frozenset({"1", "4"})
MAX_PAGE_SIZE = 50  # Flarum's $maxLimit for every list endpoint
THREAD_INCLUDE = "posts,posts.user,posts.user.groups"
POST_INCLUDE = "user,user.groups"
_NEW_KEY = (
    "create a new key in Flarum's api_keys table (for a moderator account, so hidden posts stay"
    " visible) and update api_key in the config"
)
# A post mention: `<a href=... class="PostMention" data-id="123">`, or a <span> once the
# mentioned post is gone (flarum/mentions ConfigureMentions).
_TAG = re.compile(r"<(?:a|span)\b[^>]*>", re.IGNORECASE)
_MENTION_CLASS = re.compile(r'\bclass="[^"]*\bPostMention\b')
_DATA_ID = re.compile(r'\bdata-id="(\d+)"')
# The source form (`content`, shown to editors): `@"Name"#p123`; older installs `@name#123`.
_SOURCE_MENTION = re.compile(r'@["“][^"”]*["”]#p(\d+)|\B@[A-Za-z0-9_-]+#(\d+)')


class _NotFound(FatalError):
    """HTTP 404 not_found: the resource does not exist or the actor may not see it."""


@dataclass(kw_only=True)
class _FetchState:
    """What one fetch accumulates across its requests (mutable on purpose)."""

    requests: int = 0
    # The first throttle or transient failure of a thread read: the poll stops early.
    stopped: RateLimited | TransientError | None = None
    pending: list[str] = field(default_factory=list)  # threads not read because of it


@dataclass(frozen=True, kw_only=True)
class Moderators:
    """Who answers for the brand, parsed from the `moderators` config entries."""

    usernames: frozenset[str] = frozenset()
    user_ids: frozenset[str] = frozenset()
    group_names: frozenset[str] = frozenset()
    group_ids: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Moderators:
        """ "alice" (username), "id:42" (user id), "group:support" / "group:4" / "group:staff"."""
        usernames: set[str] = set()
        user_ids: set[str] = set()
        group_names: set[str] = set()
        group_ids: set[str] = set()
        for entry in entries:
            kind, _, value = entry.partition(":")
            value = value.strip()
            if kind == "id" and value:
                user_ids.add(value)
            elif kind == "group" and value:
                if value.isdigit():
                    group_ids.add(value)
                elif value.casefold() == "staff":
                    group_ids.update(STAFF_GROUP_IDS)
                else:
                    group_names.add(value.casefold())
            else:
                usernames.add(entry.strip().casefold())
        return cls(
            usernames=frozenset(usernames),
            user_ids=frozenset(user_ids),
            group_names=frozenset(group_names),
            group_ids=frozenset(group_ids),
        )

    def match(self, user_id: str | None, username: str | None, groups: Iterable[_Group]) -> bool:
        """Whether an author is one of the brand's moderators."""
        if user_id is not None and user_id in self.user_ids:
            return True
        if username is not None and username.casefold() in self.usernames:
            return True
        for group in groups:
            if group.id in self.group_ids:
                return True
            if any(n and n.casefold() in self.group_names for n in (group.singular, group.plural)):
                return True
        return False


@dataclass(frozen=True, kw_only=True)
class _Group:
    id: str
    singular: str | None
    plural: str | None


@dataclass(kw_only=True)
class _Thread:
    """One discussion as read: its posts and the users and groups they reference."""

    discussion_id: str
    slug: str | None
    hidden: bool
    # Ids of every post the actor may see, from one query: what "complete" is checked against.
    post_ids: list[str]
    posts: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    resources: dict[tuple[str, str], Mapping[str, Any]] = field(default_factory=dict)

    def add(self, body: Mapping[str, Any], data: Iterable[Any] = ()) -> None:
        """Index the posts of `data` and the `included` resources of a document."""
        for resource in [*data, *_as_list(body.get("included"))]:
            if not isinstance(resource, dict):
                continue
            kind, ident = resource.get("type"), resource.get("id")
            if not isinstance(kind, str) or not isinstance(ident, str | int):
                continue
            self.resources.setdefault((kind, str(ident)), resource)
            if kind == "posts":
                self.posts.setdefault(str(ident), resource)


class FlarumSource:
    """Polls one Flarum forum: recently posted-in and still active discussions, read in full."""

    def __init__(
        self,
        config: FlarumConfig,
        session: aiohttp.ClientSession,
        clock: Clock,
        *,
        page_size: int = MAX_PAGE_SIZE,
        concurrency: int = 4,
    ) -> None:
        self._config = config
        self._session = session
        self._clock = clock
        self._page_size = max(1, min(page_size, MAX_PAGE_SIZE))
        self._concurrency = concurrency
        self._base = config.base_url.rstrip("/")
        self._api = f"{self._base}/api"
        self._moderators = Moderators.parse(config.moderators)
        self._key = config.api_key.get_secret_value() if config.api_key is not None else None
        self._headers = {"Accept": "application/vnd.api+json, application/json"}
        if self._key is not None:
            # Header, never a query parameter: URLs end up in logs and exception messages.
            suffix = f"; userId={config.user_id}" if config.user_id is not None else ""
            self._headers["Authorization"] = f"Token {self._key}{suffix}"

    async def fetch(self, request: FetchRequest) -> Batch:
        """Discussions posted in since the cursor plus the active ones, each read in full."""
        state = _FetchState()
        now = self._clock.now()
        # Nothing older than the first poll's backfill start is ever read, so a reply to a
        # years-old discussion does not turn its ancient posts into items.
        horizon = _cursor_time(request.cursor, "horizon") or now - timedelta(
            days=self._config.backfill_days
        )
        since = _cursor_time(request.cursor, "last_posted_at") or horizon
        resume = request.cursor.get("resume") if request.include_feed else None
        advance: Mapping[str, Any] | None = None
        if isinstance(resume, dict) and isinstance(resume.get("threads"), list):
            # Finish an interrupted poll first (its identity check passed moments ago).
            thread_ids = [str(t) for t in resume["threads"]]
            advance = resume.get("advance") if isinstance(resume.get("advance"), dict) else None
        else:
            await self._check_identity(state)
            feed = await self._recent_discussions(state, since) if request.include_feed else {}
            thread_ids = list(feed)
            thread_ids.extend(sorted(request.active_threads - set(feed), key=_id_order))
            if request.include_feed:
                newest = max([since, *feed.values()])
                advance = {"last_posted_at": newest.isoformat(), "horizon": horizon.isoformat()}
        threads = await self._read_threads(state, thread_ids)

        messages: list[Message] = []
        complete: dict[str, frozenset[str]] = {}
        deleted: set[str] = set()
        for thread_id in thread_ids:
            if thread_id not in threads:
                continue  # not read: throttled (state.pending)
            thread = threads[thread_id]
            if thread is None:
                deleted.add(thread_id)
                continue
            found = self._thread_messages(thread, horizon)
            messages.extend(found)
            complete[thread_id] = frozenset(thread.post_ids) | {m.platform_id for m in found}
        stopped = state.stopped
        cursor: Mapping[str, Any] = request.cursor
        if stopped is not None:
            if not (complete or deleted) or not request.include_feed:
                raise stopped
            base = {k: v for k, v in request.cursor.items() if k != "resume"}
            pending = sorted(state.pending, key=_id_order)
            cursor = {**base, "resume": {"threads": pending, "advance": advance}}
        elif request.include_feed and advance is not None:
            cursor = dict(advance)
        return Batch(
            messages=tuple(messages),
            cursor=cursor,
            complete_threads=complete,
            deleted_threads=frozenset(deleted),
            requests=state.requests,
            wait_seconds=stopped.retry_after if isinstance(stopped, RateLimited) else None,
            interrupted=stopped.reason if stopped is not None else None,
        )

    # --- requests -------------------------------------------------------------------------

    async def _check_identity(self, state: _FetchState) -> None:
        """Fail unless Flarum still knows the key (it serves unknown keys as a guest)."""
        # As a guest, hidden posts and private tags would vanish and look deleted to us.
        if self._key is None or self._config.user_id is None:
            return
        user_id = self._config.user_id
        try:
            body = await self._get(state, f"{self._api}/users/{user_id}", None)
        except _NotFound as err:
            raise AuthError(
                f"Flarum does not show user {user_id} to us: the API key is not accepted (Flarum"
                f" then answers as a guest) or user_id is wrong; {_NEW_KEY}"
            ) from err
        data = body.get("data")
        attributes = data.get("attributes") if isinstance(data, dict) else None
        if not isinstance(attributes, dict) or "email" not in attributes:
            raise AuthError(
                f"Flarum answers as a guest instead of as user {user_id}: the API key was revoked"
                f" or is wrong (Flarum ignores unknown keys rather than rejecting them); {_NEW_KEY}"
            )

    async def _recent_discussions(self, state: _FetchState, since: datetime) -> dict[str, datetime]:
        """Discussions with a comment at or after `since`, newest first."""
        endpoint = f"{self._api}/discussions"
        params: dict[str, str] = {
            "sort": "-lastPostedAt",
            "page[limit]": str(self._page_size),
            # `user` is a default include, so asking for just it keeps every page small.
            "include": "user",
        }
        if self._config.tags:
            params["filter[tag]"] = ",".join(self._config.tags)
        found: dict[str, datetime] = {}
        url = endpoint
        query: Mapping[str, str] | None = params
        seen: set[str] = set()
        while True:
            body = await self._get(state, url, query)
            data = _data_list(body, url)
            page_end: datetime | None = None
            for resource in data:
                if not isinstance(resource, dict) or resource.get("type") != "discussions":
                    continue
                last = _parse_time(_attributes(resource).get("lastPostedAt"))
                if last is None:
                    continue
                page_end = last
                if last >= since:
                    discussion_id = _resource_id(resource, "discussion")
                    found[discussion_id] = max(last, found.get(discussion_id, last))
            next_url = self._next_url(endpoint, body, seen)
            # Judged by the page's last entry, so an old sticky pinned on top (as some
            # installs do) does not end the listing early.
            if (page_end is not None and page_end < since) or not data or next_url is None:
                return found
            url, query = next_url, None

    async def _read_threads(
        self, state: _FetchState, thread_ids: Sequence[str]
    ) -> dict[str, _Thread | None]:
        """Every thread, a few at a time; None for a discussion that no longer exists."""
        results: dict[str, _Thread | None] = {}
        limiter = asyncio.Semaphore(self._concurrency)

        async def one(discussion_id: str) -> None:
            async with limiter:
                if state.stopped is not None:
                    state.pending.append(discussion_id)  # the platform said stop: later
                    return
                try:
                    results[discussion_id] = await self._read_thread(state, discussion_id)
                except (RateLimited, TransientError) as err:
                    # Keep the threads read so far; this one and the rest come next time.
                    state.stopped = state.stopped or err
                    state.pending.append(discussion_id)

        try:
            async with asyncio.TaskGroup() as group:
                for discussion_id in thread_ids:
                    group.create_task(one(discussion_id))
        except ExceptionGroup as failures:
            chosen = _most_severe(failures)
            if chosen is None:
                raise
            raise chosen from chosen.__cause__
        return results

    async def _read_thread(self, state: _FetchState, discussion_id: str) -> _Thread | None:
        """The discussion with its first page of posts and every post id, then the rest."""
        if not discussion_id.isdigit():
            return None  # not a Flarum discussion id: nothing to read, treat as gone
        params = {"include": THREAD_INCLUDE, "page[limit]": str(self._page_size)}
        try:
            body = await self._get(state, f"{self._api}/discussions/{discussion_id}", params)
        except _NotFound:
            return None
        data = body.get("data")
        if not isinstance(data, dict) or data.get("type") != "discussions":
            raise TransientError(f"discussion {discussion_id}: response without a discussion")
        attributes = _attributes(data)
        relationships = data.get("relationships")
        posts_rel = relationships.get("posts") if isinstance(relationships, dict) else None
        post_refs = posts_rel.get("data") if isinstance(posts_rel, dict) else None
        if not isinstance(post_refs, list):
            raise TransientError(f"discussion {discussion_id}: response without its post ids")
        slug = attributes.get("slug")
        thread = _Thread(
            discussion_id=discussion_id,
            slug=slug if isinstance(slug, str) and slug else None,
            hidden=attributes.get("isHidden") is True,
            post_ids=[str(r["id"]) for r in post_refs if isinstance(r, dict) and "id" in r],
        )
        thread.add(body)
        if len(thread.post_ids) > self._page_size:
            await self._read_more_posts(state, thread)
        missing = [pid for pid in thread.post_ids if pid not in thread.posts]
        for start in range(0, len(missing), self._page_size):
            # Offset pages shift when posts come or go while we read; fetch stragglers by id.
            chunk = missing[start : start + self._page_size]
            params = {
                "filter[id]": ",".join(chunk),
                "page[limit]": str(self._page_size),
                "include": POST_INCLUDE,
            }
            found = await self._get(state, f"{self._api}/posts", params)
            thread.add(found, _data_list(found, f"{self._api}/posts"))
        return thread

    async def _read_more_posts(self, state: _FetchState, thread: _Thread) -> None:
        """Posts after the first page: /api/posts?filter[discussion]=, following links.next."""
        endpoint = f"{self._api}/posts"
        params: dict[str, str] | None = {
            "filter[discussion]": thread.discussion_id,
            "sort": "number",
            "page[offset]": str(self._page_size),
            "page[limit]": str(self._page_size),
            "include": POST_INCLUDE,
        }
        url = endpoint
        seen: set[str] = set()
        while True:
            body = await self._get(state, url, params)
            data = _data_list(body, url)
            thread.add(body, data)
            next_url = self._next_url(endpoint, body, seen)
            if not data or next_url is None:
                return
            url, params = next_url, None

    def _next_url(self, endpoint: str, body: Mapping[str, Any], seen: set[str]) -> str | None:
        """`links.next` with its query put on our own endpoint URL.

        Flarum builds links from its configured public URL, which often is not the address we
        reach it at (a proxy, an internal name); the key must never go anywhere else.
        """
        links = body.get("links")
        link = links.get("next") if isinstance(links, dict) else None
        if not isinstance(link, str) or not link:
            return None
        parsed = URL(link, encoded=True)
        suffix = URL(endpoint).path.removeprefix(URL(self._base).path.rstrip("/"))
        if not parsed.path.rstrip("/").endswith(suffix):
            raise TransientError(f"GET {endpoint}: links.next leads to another endpoint")
        query = parsed.raw_query_string
        if query in seen:
            raise TransientError(f"GET {endpoint}: links.next repeats itself")
        seen.add(query)
        return f"{endpoint}?{query}" if query else endpoint

    async def _get(
        self, state: _FetchState, url: str, params: Mapping[str, str] | None
    ) -> Mapping[str, Any]:
        state.requests += 1
        response = await request_json(
            self._session,
            url,
            params=params,
            headers=self._headers,
            timeout=self._config.request_timeout,
            clock=self._clock,
        )
        where = f"GET {response.url}"
        body = response.body
        if response.status >= 400:
            raise self._api_error(body, response.status, where)
        if not isinstance(body, dict) or "data" not in body:
            raise TransientError(f"{where}: response is not a JSON:API document")
        return body

    # --- mapping --------------------------------------------------------------------------

    def _api_error(self, body: Any, status: int, where: str) -> SourceError:
        """Translate a JSON:API `{"errors": [{"status", "code", "detail"}]}` response."""
        first = next(iter(_as_list(body.get("errors") if isinstance(body, dict) else None)), None)
        code = str(first.get("code") or "") if isinstance(first, dict) else ""
        detail = first.get("detail") if isinstance(first, dict) else None
        ident = f"HTTP {status} {code or 'without an error code'}"
        said = f": {self._redact(str(detail))[:200]!r}" if detail else ""
        if status == 401:
            return AuthError(f"Flarum did not accept the API key ({ident}) [{where}]; {_NEW_KEY}")
        if status == 403:
            return AuthError(
                f"permission denied ({ident}) [{where}]: the API key's user must be able to view"
                " the forum, the configured tags and hidden posts (a moderator account)"
            )
        if status == 404 and code != "route_not_found":
            return _NotFound(f"not found ({ident}) [{where}]")
        if status == 404:
            return FatalError(
                f"no such API route ({ident}) [{where}]: base_url must be the forum's root URL,"
                " without /api"
            )
        if status == 429:
            return RateLimited(f"throttled by Flarum ({ident}) [{where}]")
        return FatalError(f"Flarum rejected the request ({ident}{said}) [{where}]")

    def _redact(self, text: str) -> str:
        if self._key is not None and len(self._key) >= 4:
            text = text.replace(self._key, "***")
        return text

    def _thread_messages(self, thread: _Thread, horizon: datetime) -> list[Message]:
        """The thread's comments as messages; event posts (renames, locks, ...) are left out."""
        comments = sorted(
            (
                (number, post_id, post)
                for post_id, post in thread.posts.items()
                if _attributes(post).get("contentType") == "comment"
                for number in [_as_int(_attributes(post).get("number"))]
                if number is not None
            ),
            key=lambda entry: entry[0],
        )
        if not comments:
            return []
        first_id = comments[0][1]  # the discussion's opening post: what a plain reply answers
        known = set(thread.post_ids) | set(thread.posts)
        messages: list[Message] = []
        for number, post_id, post in comments:
            attributes = _attributes(post)
            created_at = _parse_time(attributes.get("createdAt"))
            if created_at is None:
                raise TransientError(f"post {post_id}: createdAt missing or unreadable")
            if created_at < horizon:
                continue
            parent: str | None = None
            if post_id != first_id:
                mentioned = _mentioned_post(attributes)
                in_thread = mentioned is not None and mentioned in known and mentioned != post_id
                parent = mentioned if in_thread else first_id
            user_id, username, groups = self._author(thread, post)
            messages.append(
                Message(
                    platform_id=post_id,
                    thread_id=thread.discussion_id,
                    parent_id=parent,
                    author_id=user_id,
                    author_name=username,
                    text=_post_text(attributes),
                    created_at=created_at,
                    seq=number,
                    is_brand=self._moderators.match(user_id, username, groups),
                    # A hidden discussion hides every post in it for the public.
                    hidden=attributes.get("isHidden") is True or thread.hidden,
                    permalink=f"{self._base}/d/{thread.slug or thread.discussion_id}/{number}",
                )
            )
        return messages

    def _author(
        self, thread: _Thread, post: Mapping[str, Any]
    ) -> tuple[str | None, str | None, list[_Group]]:
        """(user id, username, groups) of a post; all None for a deleted user."""
        user_ref = _relation(post, "user")
        if not isinstance(user_ref, dict) or "id" not in user_ref:
            return None, None, []
        user_id = str(user_ref["id"])
        user = thread.resources.get(("users", user_id))
        if user is None:
            return user_id, None, []
        username = _attributes(user).get("username")
        groups: list[_Group] = []
        group_refs = _relation(user, "groups")
        for ref in group_refs if isinstance(group_refs, list) else []:
            if not isinstance(ref, dict) or "id" not in ref:
                continue
            group_id = str(ref["id"])
            group = _attributes(thread.resources.get(("groups", group_id)) or {})
            singular, plural = group.get("nameSingular"), group.get("namePlural")
            groups.append(
                _Group(
                    id=group_id,
                    singular=singular if isinstance(singular, str) else None,
                    plural=plural if isinstance(plural, str) else None,
                )
            )
        return user_id, username if isinstance(username, str) else None, groups


class _TextExtractor(HTMLParser):
    """The text of rendered post HTML, one line per block element."""

    _BLOCKS = frozenset(
        {"p", "br", "div", "li", "blockquote", "pre", "tr", "h1", "h2", "h3", "h4", "h5", "h6"}
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """A block element starts a new line."""
        if tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        """A block element ends its line."""
        if tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        """Text between tags."""
        self.parts.append(data)


def html_to_text(markup: str) -> str:
    """Plain text of a post's contentHtml (tags dropped, entities decoded, blank lines gone)."""
    extractor = _TextExtractor()
    extractor.feed(markup)
    extractor.close()
    lines = (" ".join(line.split()) for line in "".join(extractor.parts).splitlines())
    return "\n".join(line for line in lines if line)


def mentioned_post_id(content_html: str | None, content: str | None) -> str | None:
    """The id of the first post a comment mentions (its reply target), if any."""
    if isinstance(content_html, str):
        for tag in _TAG.finditer(content_html):
            if _MENTION_CLASS.search(tag[0]):
                found = _DATA_ID.search(tag[0])
                if found:
                    return found[1]
    if isinstance(content, str):
        source = _SOURCE_MENTION.search(content)
        if source:
            return source[1] or source[2]
    return None


def _mentioned_post(attributes: Mapping[str, Any]) -> str | None:
    return mentioned_post_id(attributes.get("contentHtml"), attributes.get("content"))


def _post_text(attributes: Mapping[str, Any]) -> str:
    markup, source = attributes.get("contentHtml"), attributes.get("content")
    if attributes.get("renderFailed") is True and isinstance(source, str):
        return source  # contentHtml then holds Flarum's "render failed" message
    if isinstance(markup, str):
        return html_to_text(markup)
    return source if isinstance(source, str) else ""


def parse_flarum_time(value: Any) -> datetime | None:
    """Parse a Flarum date (`2022-01-01T10:20:30+00:00`, RFC 3339) into aware UTC."""
    return _parse_time(value)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _cursor_time(cursor: Mapping[str, Any], key: str) -> datetime | None:
    return _parse_time(cursor.get(key))


def _id_order(value: str) -> tuple[int, str]:
    return (int(value), "") if value.isdigit() else (0, value)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _attributes(resource: Mapping[str, Any]) -> Mapping[str, Any]:
    attributes = resource.get("attributes")
    return attributes if isinstance(attributes, dict) else {}


def _relation(resource: Mapping[str, Any], name: str) -> Any:
    relationships = resource.get("relationships")
    relation = relationships.get(name) if isinstance(relationships, dict) else None
    return relation.get("data") if isinstance(relation, dict) else None


def _resource_id(resource: Mapping[str, Any], kind: str) -> str:
    value = resource.get("id")
    if not isinstance(value, str | int) or not str(value):
        raise TransientError(f"Flarum returned a {kind} without an id")
    return str(value)


def _data_list(body: Mapping[str, Any], url: str) -> list[Any]:
    data = body.get("data")
    if not isinstance(data, list):
        raise TransientError(f"GET {URL(url).with_query(None)}: response without a data list")
    return data


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
