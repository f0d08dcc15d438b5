"""FlarumSource: recently posted-in and still active discussions, each read in full."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from yarl import URL

from monitor.clock import Clock
from monitor.config import FlarumConfig
from monitor.domain import Batch, Message, Skipped
from monitor.sources.base import (
    AuthError,
    FatalError,
    FetchRequest,
    RateLimited,
    Refused,
    SourceError,
    TransientError,
    one_error,
)
from monitor.sources.flarum._jsonapi import (
    Group,
    Moderators,
    Thread,
    attributes_of,
    data_list,
    error_code,
    mentioned_post,
    new_thread,
    parse_flarum_time,
    post_text,
    relation_data,
)
from monitor.sources.flarum._state import FetchState, Listing, Todo, cursor_time, id_order
from monitor.sources.http import parse_retry_after, redact, request_json
from monitor.sources.wire import as_int, as_list

MAX_PAGE_SIZE = 50  # Flarum's $maxLimit for every list endpoint

THREAD_INCLUDE = "posts,posts.user,posts.user.groups"

POST_INCLUDE = "user,user.groups"

_NEW_KEY = (
    "create a new key in Flarum's api_keys table (for a moderator account, so hidden posts stay"
    " visible) and update api_key in the config"
)


class _NotFound(FatalError):
    """HTTP 404 not_found: the resource does not exist or the actor may not see it."""


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
        # A throttle or a transient failure in the middle keeps what came before: the list pages
        # read and the discussions read whole are in the batch, which is marked interrupted, and
        # the cursor's `resume` part says what is left (see Todo). A discussion Flarum refuses
        # (403, 400) or that fails twice in a row is skipped, not the poll.
        state = FetchState()
        now = self._clock.now()
        # Nothing older than the first poll's backfill start is ever read, so a reply to a
        # years-old discussion does not turn its ancient posts into items.
        horizon = cursor_time(request.cursor, "horizon") or now - timedelta(
            days=self._config.backfill_days
        )
        if not request.include_feed:
            return await self._reread(state, request, horizon)
        since = cursor_time(request.cursor, "last_posted_at") or horizon
        state.request = request
        todo = Todo.load(request.cursor)
        if todo is None:
            await self._check_identity(state)
            todo = Todo(listing=Listing())
        # An interrupted poll is finished first (its key check passed moments ago).
        listing = todo.listing
        if listing is not None:
            await self._read_listing(state, listing, since)
            if listing.done:
                self._plan_threads(todo, listing, request, since, horizon)
        if todo.listing is None:
            await self._read_threads(state, todo, horizon)
        stopped = state.stopped
        base = {k: v for k, v in request.cursor.items() if k != "resume"}
        if stopped is None:
            return self._batch(state, todo.advance or base)
        if not (state.finished or (listing is not None and listing.pages_read)):
            raise stopped  # nothing gained: the source's failure, the cursor stays as it was
        return self._batch(state, {**base, "resume": todo.to_json()})

    async def _reread(self, state: FetchState, request: FetchRequest, horizon: datetime) -> Batch:
        """A re-read before a breach: exactly the threads asked for, cursor untouched."""
        await self._check_identity(state)
        todo = Todo(listing=None, threads=sorted(request.active_threads, key=id_order))
        await self._read_threads(state, todo, horizon)
        if state.stopped is not None:
            raise state.stopped
        return self._batch(state, request.cursor)

    def _plan_threads(
        self,
        todo: Todo,
        listing: Listing,
        request: FetchRequest,
        since: datetime,
        horizon: datetime,
    ) -> None:
        """The list is read: its discussions, then the active ones, and the cursor after them."""
        threads = list(listing.found)
        threads.extend(sorted(request.active_threads - set(threads), key=id_order))
        newest = max([since, *listing.found.values()])
        todo.threads = threads
        todo.advance = {"last_posted_at": newest.isoformat(), "horizon": horizon.isoformat()}
        todo.listing = None

    def _batch(self, state: FetchState, cursor: Mapping[str, Any]) -> Batch:
        """What the fetch read, interrupted or not, with the cursor to go on from."""
        return state.batch(cursor, state.messages, state.complete, state.deleted)

    # --- requests -------------------------------------------------------------------------

    async def _check_identity(self, state: FetchState) -> None:
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

    def _list_params(self, limit: int) -> dict[str, str]:
        """The discussion list's query: newest post first, `limit` a page."""
        params: dict[str, str] = {
            "sort": "-lastPostedAt",
            "page[limit]": str(limit),
            # `user` is a default include, so asking for just it keeps every page small.
            "include": "user",
        }
        if self._config.tags:
            params["filter[tag]"] = ",".join(self._config.tags)
        return params

    async def _read_listing(self, state: FetchState, listing: Listing, since: datetime) -> None:
        """Discussions with a comment at or after `since`, newest first, page by page."""
        # A throttle or a transient failure stops it at the page refused (state.stopped), to go
        # on from there next time.
        endpoint = f"{self._api}/discussions"
        seen: set[str] = set()
        while not listing.done:
            url = endpoint if listing.next is None else f"{endpoint}?{listing.next}"
            query = self._list_params(self._page_size) if listing.next is None else None
            try:
                body = await self._get(state, url, query)
                data = data_list(body, url)
                next_url = self._next_url(endpoint, body, seen)
            except (RateLimited, TransientError) as err:
                state.stop(err)
                return
            listing.pages_read += 1
            page_end = self._listed_page(state, listing, data, since)
            # Judged by the page's last entry, so an old sticky pinned on top (as some
            # installs do) does not end the listing early.
            listing.done = (page_end is not None and page_end < since) or not data
            listing.done = listing.done or next_url is None
            listing.next = (
                None if next_url is None else URL(next_url, encoded=True).raw_query_string
            )

    @staticmethod
    def _listed_page(
        state: FetchState, listing: Listing, data: list[Any], since: datetime
    ) -> datetime | None:
        """Note a page's discussions posted in since `since`; return its last lastPostedAt."""
        page_end: datetime | None = None
        for resource in data:
            if not isinstance(resource, dict) or resource.get("type") != "discussions":
                continue
            ident = resource.get("id")
            last = parse_flarum_time(attributes_of(resource).get("lastPostedAt"))
            if not isinstance(ident, str | int) or not str(ident) or last is None:
                # One entry the list cannot place: skipped, the rest of the list is read.
                key = str(ident) if isinstance(ident, str | int) else "discussion list entry"
                state.skipped[key] = Skipped(
                    reason="malformed",
                    detail=f"the discussion list shows {key!r} without an id or lastPostedAt",
                )
                continue
            page_end = last
            if last >= since:
                listing.found[str(ident)] = max(last, listing.found.get(str(ident), last))
        return page_end

    async def _read_threads(self, state: FetchState, todo: Todo, horizon: datetime) -> None:
        """The queued discussions, a few at a time, until done or a refusal stops the fetch."""
        # One that failed last time is read first and alone, so that its second failure is told
        # apart from a forum in trouble.
        if todo.failed is not None and todo.failed in todo.threads:
            await self._read_one(state, todo, todo.failed, horizon)
        limiter = asyncio.Semaphore(self._concurrency)

        async def one(discussion_id: str) -> None:
            async with limiter:
                if state.stopped is None:  # the platform said stop: the rest waits
                    await self._read_one(state, todo, discussion_id, horizon)

        with one_error():
            async with asyncio.TaskGroup() as group:
                for discussion_id in list(todo.threads):
                    group.create_task(one(discussion_id))

    async def _read_one(
        self, state: FetchState, todo: Todo, discussion_id: str, horizon: datetime
    ) -> None:
        """One discussion: kept, gone, skipped, or left for the next fetch when throttled."""
        try:
            thread = await self._read_thread(state, discussion_id)
        except Refused as refused:
            if not await self._forum_answers(state):
                return  # maybe the forum refusing us, not this discussion: ask again later
            state.skipped[discussion_id] = refused.why
        except RateLimited as err:
            state.stop(err)
            return
        except TransientError as err:
            if not await self._gives_up_on(state, todo, discussion_id, err):
                state.stop(err)
                return
        else:
            self._keep(state, discussion_id, thread, horizon)
        todo.threads.remove(discussion_id)
        state.finished += 1
        if state.request is not None:
            left = len(todo.threads)
            state.request.progress(left, state.finished + left, "discussions")
        if todo.failed == discussion_id:
            todo.failed = None

    def _keep(
        self, state: FetchState, discussion_id: str, thread: Thread | None, horizon: datetime
    ) -> None:
        """A discussion read whole: its messages, its posts alive, its malformed posts."""
        if thread is None:
            state.deleted.add(discussion_id)
            return
        found, malformed = self._thread_messages(thread, horizon)
        state.messages.extend(found)
        state.skipped.update(malformed)
        # A malformed post still exists: listed by Flarum, it is not tombstoned.
        state.complete[discussion_id] = frozenset(thread.post_ids) | {m.platform_id for m in found}

    async def _gives_up_on(
        self, state: FetchState, todo: Todo, discussion_id: str, err: TransientError
    ) -> bool:
        """Whether a discussion that failed transiently is skipped (True), not the fetch stopped."""
        # The first failure is noted and the next fetch reads it first (a 5xx burst or a throttle
        # lets it through then); failing again while the forum answers, it is skipped: one
        # discussion that breaks a serializer must not stop every poll.
        if todo.failed != discussion_id:
            todo.failed = todo.failed or discussion_id
            return False
        if not await self._forum_answers(state):
            return False
        state.skipped[discussion_id] = Skipped(
            reason="bad_request",
            detail=f"discussion {discussion_id} failed twice in a row while the forum"
            f" answered: {err}",
        )
        return True

    async def _forum_answers(self, state: FetchState) -> bool:
        """Whether Flarum serves its discussion list now; a refusal stops the fetch."""
        # One small request if nothing else was answered yet; an auth failure is the source's.
        if state.documents:
            return True
        try:
            await self._get(state, f"{self._api}/discussions", self._list_params(1))
        except (RateLimited, TransientError) as err:
            state.stop(err)
            return False
        return True

    async def _read_thread(self, state: FetchState, discussion_id: str) -> Thread | None:
        """The discussion with its first page of posts and every post id, then the rest."""
        if not discussion_id.isdigit():
            return None  # not a Flarum discussion id: nothing to read, treat as gone
        params = {"include": THREAD_INCLUDE, "page[limit]": str(self._page_size)}
        url = f"{self._api}/discussions/{discussion_id}"
        try:
            body = await self._get(state, url, params, discussion=discussion_id)
        except _NotFound:
            return None
        thread = new_thread(discussion_id, body)
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
            found = await self._get(state, f"{self._api}/posts", params, discussion=discussion_id)
            thread.add(found, data_list(found, f"{self._api}/posts"))
        return thread

    async def _read_more_posts(self, state: FetchState, thread: Thread) -> None:
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
            body = await self._get(state, url, params, discussion=thread.discussion_id)
            data = data_list(body, url)
            thread.add(body, data)
            next_url = self._next_url(endpoint, body, seen)
            if not data or next_url is None:
                return
            url, params = next_url, None

    def _next_url(self, endpoint: str, body: Mapping[str, Any], seen: set[str]) -> str | None:
        """`links.next` with its query put on our own endpoint URL."""
        # Flarum builds links from its configured public URL, which often is not the address we
        # reach it at (a proxy, an internal name); the key must never go anywhere else.
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
        self,
        state: FetchState,
        url: str,
        params: Mapping[str, str] | None,
        *,
        discussion: str | None = None,
    ) -> Mapping[str, Any]:
        """One GET; `discussion`: the request is about that one discussion (its 4xx skip it)."""
        state.requests += 1
        response = await request_json(
            self._session,
            url,
            params=params,
            headers=self._headers,
            timeout=self._config.request_timeout,
            clock=self._clock,
            # A 5xx's JSON:API body and Retry-After are read here (Flarum's maintenance 503).
            accept_5xx_json=True,
        )
        where = f"GET {response.url}"
        body = response.body
        if response.status >= 500:
            raise self._server_error(response.status, response.headers, body, where)
        if response.status >= 400:
            raise self._api_error(body, response.status, where, discussion)
        if not isinstance(body, dict) or "data" not in body:
            raise TransientError(f"{where}: response is not a JSON:API document")
        state.documents += 1
        return body

    # --- mapping --------------------------------------------------------------------------

    def _server_error(
        self, status: int, headers: Mapping[str, str], body: Any, where: str
    ) -> SourceError:
        """A 5xx: a 503 that says when to come back is a throttle, the rest transient."""
        retry_after = parse_retry_after(headers.get("Retry-After"), self._clock.now())
        ident = f"HTTP {status} {error_code(body) or 'without an error code'}"
        if status == 503 and retry_after is not None:
            return RateLimited(
                f"Flarum is unavailable ({ident}) [{where}]", retry_after=retry_after
            )
        return TransientError(f"{where}: server error {ident}")

    def _api_error(
        self, body: Any, status: int, where: str, discussion: str | None = None
    ) -> Exception:
        """Translate a JSON:API `{"errors": [{"status", "code", "detail"}]}` response."""
        first = next(iter(as_list(body.get("errors") if isinstance(body, dict) else None)), None)
        code = error_code(body)
        detail = first.get("detail") if isinstance(first, dict) else None
        ident = f"HTTP {status} {code or 'without an error code'}"
        said = f": {redact(str(detail), self._key)[:200]!r}" if detail else ""
        if status == 401:
            return AuthError(f"Flarum did not accept the API key ({ident}) [{where}]; {_NEW_KEY}")
        if status == 404 and code != "route_not_found":
            return _NotFound(f"not found ({ident}) [{where}]")
        if status in (408, 425):
            return TransientError(f"{where}: {ident}")
        if discussion is not None and status != 404:
            # Flarum answered for this one discussion: it is skipped, the rest is read.
            reason = "forbidden" if status == 403 else "bad_request"
            detail_text = f"discussion {discussion}: Flarum refused it ({ident}{said}) [{where}]"
            return Refused(Skipped(reason=reason, detail=detail_text))
        if status == 403:
            return AuthError(
                f"permission denied ({ident}) [{where}]: the API key's user must be able to view"
                " the forum, the configured tags and hidden posts (a moderator account)"
            )
        if status == 404:
            return FatalError(
                f"no such API route ({ident}) [{where}]: base_url must be the forum's root URL,"
                " without /api"
            )
        return FatalError(f"Flarum rejected the request ({ident}{said}) [{where}]")

    def _thread_messages(
        self, thread: Thread, horizon: datetime
    ) -> tuple[list[Message], dict[str, Skipped]]:
        """The thread's comments as messages, and (by "post:{id}") the ones skipped as malformed."""
        # Event posts (renames, locks, ...) are left out; a post without the number, type or
        # creation time we need is skipped, the rest of its thread is read.
        comments: list[tuple[int, str, Mapping[str, Any], datetime]] = []
        skipped = self._unserved_posts(thread)
        for post_id, post in thread.posts.items():
            attributes = attributes_of(post)
            number = as_int(attributes.get("number"))
            created_at = parse_flarum_time(attributes.get("createdAt"))
            kind = attributes.get("contentType")
            if number is None or created_at is None or not isinstance(kind, str):
                skipped[f"post:{post_id}"] = Skipped(
                    reason="malformed",
                    detail=f"discussion {thread.discussion_id}: post {post_id} without a"
                    " number, contentType or readable createdAt",
                )
            elif kind == "comment":
                comments.append((number, post_id, post, created_at))
        comments.sort(key=lambda entry: entry[0])
        if not comments:
            return [], skipped
        first_id = comments[0][1]  # the discussion's opening post: what a plain reply answers
        known = set(thread.post_ids) | set(thread.posts)
        messages = [
            self._message(thread, number, post_id, post, created_at, first_id, known)
            for number, post_id, post, created_at in comments
            if created_at >= horizon
        ]
        return messages, skipped

    @staticmethod
    def _unserved_posts(thread: Thread) -> dict[str, Skipped]:
        """Posts the discussion lists that came without their id: skipped as malformed."""
        if not thread.without_id:
            return {}  # the rest vanished between two requests: nothing to report
        return {
            f"post:{post_id}": Skipped(
                reason="malformed",
                detail=f"discussion {thread.discussion_id}: post {post_id} served without its id",
            )
            for post_id in thread.post_ids
            if post_id not in thread.posts
        }

    def _message(
        self,
        thread: Thread,
        number: int,
        post_id: str,
        post: Mapping[str, Any],
        created_at: datetime,
        first_id: str,
        known: set[str],
    ) -> Message:
        attributes = attributes_of(post)
        parent: str | None = None
        if post_id != first_id:
            mentioned = mentioned_post(attributes)
            in_thread = mentioned is not None and mentioned in known and mentioned != post_id
            parent = mentioned if in_thread else first_id
        # A post without its `user` (a deleted author) is an unknown consumer, not an error.
        user_id, username, groups = self._author(thread, post)
        return Message(
            platform_id=post_id,
            thread_id=thread.discussion_id,
            parent_id=parent,
            author_id=user_id,
            author_name=username,
            text=post_text(attributes),
            created_at=created_at,
            seq=number,
            is_brand=self._moderators.match(user_id, username, groups),
            # A hidden discussion hides every post in it for the public.
            hidden=attributes.get("isHidden") is True or thread.hidden,
            permalink=f"{self._base}/d/{thread.slug or thread.discussion_id}/{number}",
        )

    def _author(
        self, thread: Thread, post: Mapping[str, Any]
    ) -> tuple[str | None, str | None, list[Group]]:
        """(user id, username, groups) of a post; all None for a deleted user."""
        user_ref = relation_data(post, "user")
        if not isinstance(user_ref, dict) or "id" not in user_ref:
            return None, None, []
        user_id = str(user_ref["id"])
        user = thread.resources.get(("users", user_id))
        if user is None:
            return user_id, None, []
        username = attributes_of(user).get("username")
        groups: list[Group] = []
        group_refs = relation_data(user, "groups")
        for ref in group_refs if isinstance(group_refs, list) else []:
            if not isinstance(ref, dict) or "id" not in ref:
                continue
            group_id = str(ref["id"])
            group = attributes_of(thread.resources.get(("groups", group_id)) or {})
            singular, plural = group.get("nameSingular"), group.get("namePlural")
            groups.append(
                Group(
                    id=group_id,
                    singular=singular if isinstance(singular, str) else None,
                    plural=plural if isinstance(plural, str) else None,
                )
            )
        return user_id, username if isinstance(username, str) else None, groups
