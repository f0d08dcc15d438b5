"""The fake Bluesky PDS over HTTP: sessions, the four reads, rate limits, faults."""

from __future__ import annotations

import base64
import math
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware

from monitor.clock import Clock, SystemClock
from monitor.simulator import base
from monitor.simulator.bluesky.model import (
    FakePost,
    Interaction,
    Network,
    cid_of,
    facets_of,
)
from monitor.simulator.bluesky.views import (
    AUTHOR_FILTERS,
    author_feed,
    notifications,
    post_view,
    search,
    thread_view,
)
from monitor.sources.wire import parse_time


@dataclass(frozen=True, kw_only=True)
class RateLimit:
    """A 429 RateLimitExceeded now, whatever the counters say; the window resets in `wait`."""

    wait_seconds: int = 60


@dataclass(frozen=True, kw_only=True)
class RecordedRequest:
    """One request as the fake saw it (never the Authorization header itself)."""

    nsid: str
    query: tuple[tuple[str, str], ...]
    authorized: bool
    status: int


Fault = (
    RateLimit
    | base.Delay
    | base.Disconnect
    | base.HttpStatus
    | base.MalformedJson
    | base.TruncatedBody
)


@dataclass(frozen=True, kw_only=True)
class _Token:
    did: str
    refresh: bool
    expires: datetime


_Handler = Callable[[web.Request], Awaitable[dict[str, Any]]]


class _Answer(Exception):
    """An XRPC error answer: {"error", "message"} with its status ([ERR])."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


class FakeBluesky(base.FakeServer[Fault]):
    """A scriptable fake of a Bluesky PDS proxying to the AppView, over real HTTP."""

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        rate_limit: int = 3000,
        rate_window: int = 300,
        access_ttl: timedelta = timedelta(hours=2),
        refresh_ttl: timedelta = timedelta(days=90),
    ) -> None:
        super().__init__()
        self.clock: Clock = clock or SystemClock()
        self.network = Network()
        self.requests: list[RecordedRequest] = []
        self.rate_limit = rate_limit  # [RATE]
        self.rate_window = rate_window
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self.sessions_created = 0
        self._tokens: dict[str, _Token] = {}
        self._window: tuple[int, int] = (0, 0)  # (window number, requests in it)

    # --- scripting ----------------------------------------------------------------------------

    def add_account(
        self, handle: str, *, password: str | None = None, display_name: str | None = None
    ) -> str:
        """An account (signing in with `password`, when given); returns its DID."""
        name = display_name or handle.split(".")[0].title()
        return self.network.add_account(handle, password=password, display_name=name).did

    def post(
        self,
        author: str,
        text: str,
        *,
        at: datetime,
        reply_to: str | None = None,
        quote: str | None = None,
        tags: Iterable[str] = (),
        indexed_at: datetime | None = None,
    ) -> str:
        """A post (a reply to `reply_to`, quoting `quote`); facets come from the text."""
        account = self.network.account(author)
        uri = self.network.new_uri(account.did, "app.bsky.feed.post", at)
        reply = None
        if reply_to is not None:
            parent = base.find(self.network.posts, reply_to, "post")
            root = parent.reply[0] if parent.reply is not None else parent
            reply = (root, parent)
        post = FakePost(
            uri=uri,
            cid=cid_of(uri, text),
            author=account,
            text=text,
            created_at=at,
            indexed_at=indexed_at or at,
            facets=facets_of(text, self.network),
            tags=list(tags),
            reply=reply,
            quote=base.find(self.network.posts, quote, "post") if quote is not None else None,
        )
        self.network.posts[uri] = post
        return uri

    def repost(self, author: str, uri: str, *, at: datetime) -> str:
        """A repost: notifies the post's author; not a post ([REPOST])."""
        return self._interact("repost", author, uri, at)

    def like(self, author: str, uri: str, *, at: datetime) -> str:
        """A like: notifies the post's author."""
        return self._interact("like", author, uri, at)

    def delete(self, uri: str) -> None:
        """The author deletes the post: it leaves search, notifications, feeds and threads.

        Its replies stay ([DELETE]): their records still name it as root and parent.
        """
        base.find(self.network.posts, uri, "post").deleted = True

    def expire_access_tokens(self) -> None:
        """Every access token issued so far has expired (refresh tokens still work)."""
        past = self.clock.now() - timedelta(seconds=1)
        for token, info in list(self._tokens.items()):
            if not info.refresh:
                self._tokens[token] = _Token(did=info.did, refresh=False, expires=past)

    def issued_tokens(self) -> list[str]:
        """Every token handed out (for tests that check none is ever logged)."""
        return list(self._tokens)

    def _interact(self, reason: str, author: str, uri: str, at: datetime) -> str:
        account = self.network.account(author)
        subject = base.find(self.network.posts, uri, "post")
        collection = f"app.bsky.feed.{reason}"
        done = Interaction(
            uri=self.network.new_uri(account.did, collection, at),
            reason=reason,
            author=account,
            subject=subject,
            target=subject.author,
            at=at,
        )
        self.network.interactions.append(done)
        return done.uri

    # --- server -------------------------------------------------------------------------------

    def _middlewares(self) -> list[Middleware]:
        return [self._serve]

    def _routes(self, router: web.UrlDispatcher) -> None:
        router.add_route("*", "/{tail:.*}", self._dispatch)

    def _handler(self, request: web.Request) -> _Handler:
        """The XRPC method a request calls; an unknown one is 501 MethodNotImplemented."""
        procedures: dict[str, _Handler] = {
            "com.atproto.server.createSession": self._create_session,
            "com.atproto.server.refreshSession": self._refresh_session,
        }
        queries: dict[str, _Handler] = {
            "app.bsky.feed.searchPosts": self._search,
            "app.bsky.notification.listNotifications": self._notifications,
            "app.bsky.feed.getPostThread": self._thread,
            "app.bsky.feed.getAuthorFeed": self._author_feed,
        }
        nsid = request.path.removeprefix("/xrpc/")
        table = procedures if request.method == "POST" else queries
        return table.get(nsid, self._unknown)

    @web.middleware
    async def _serve(self, request: web.Request, handler: Any) -> web.StreamResponse:
        status = 0
        try:
            with self._counted():
                response: web.StreamResponse = await handler(request)
            status = response.status
            return response
        finally:
            self.requests.append(
                RecordedRequest(
                    nsid=request.path.removeprefix("/xrpc/"),
                    query=tuple(request.query.items()),
                    authorized="Authorization" in request.headers,
                    status=status,
                )
            )

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        faulted = await self._faulted(request)
        if faulted is not None:
            return faulted
        headers = self._count_request()
        if self._window[1] > self.rate_limit:
            return _error(429, "RateLimitExceeded", "Rate Limit Exceeded", headers)
        try:
            body = await self._handler(request)(request)
        except _Answer as answer:
            return _error(answer.status, answer.error, answer.message, headers)
        return base.json_response(orjson.dumps(body), headers=headers)

    def _count_request(self) -> dict[str, str]:
        """Count the request in the fixed window; the headers every answer carries ([RATE])."""
        now = self.clock.now().timestamp()
        number = math.floor(now / self.rate_window)
        seen = self._window[1] + 1 if self._window[0] == number else 1
        self._window = (number, seen)
        reset = (number + 1) * self.rate_window
        return _limit_headers(self.rate_limit, max(self.rate_limit - seen, 0), reset, self)

    async def _platform_fault(self, fault: Fault, request: web.Request) -> web.StreamResponse:
        if isinstance(fault, RateLimit):
            reset = math.ceil(self.clock.now().timestamp()) + fault.wait_seconds
            headers = _limit_headers(self.rate_limit, 0, reset, self)
            return _error(429, "RateLimitExceeded", "Rate Limit Exceeded", headers)
        return base.json_response(b'{"posts": [{"uri": "at://x",}]}')

    def _truncated_sample(self, request: web.Request) -> tuple[bytes, str]:
        return orjson.dumps({"posts": [], "cursor": "x" * 400}), "application/json"

    # --- sessions ([AUTH]) --------------------------------------------------------------------

    async def _create_session(self, request: web.Request) -> dict[str, Any]:
        body = await _json_body(request)
        identifier, password = body.get("identifier"), body.get("password")
        if not isinstance(identifier, str) or not isinstance(password, str):
            raise _Answer(400, "InvalidRequest", 'Input must have the property "identifier"')
        try:
            account = self.network.account(identifier)
        except KeyError:
            account = None
        if account is None or account.password is None or account.password != password:
            raise _Answer(401, "AuthenticationRequired", "Invalid identifier or password")
        self.sessions_created += 1
        return self._session(account.did)

    async def _refresh_session(self, request: web.Request) -> dict[str, Any]:
        token = _bearer(request)
        info = self._tokens.get(token or "")
        if token is None or info is None:
            raise _Answer(401, "AuthMissing", "Authentication Required")
        if not info.refresh:
            raise _Answer(400, "InvalidToken", "Invalid token type")
        if info.expires <= self.clock.now():
            raise _Answer(400, "ExpiredToken", "Token has been revoked")
        # The used refresh token is revoked: a second use fails ([REFRESH]).
        self._tokens[token] = _Token(did=info.did, refresh=True, expires=self.clock.now())
        return self._session(info.did)

    def _session(self, did: str) -> dict[str, Any]:
        account = self.network.accounts[did]
        now = self.clock.now()
        access = self._issue(did, refresh=False, expires=now + self.access_ttl)
        refresh = self._issue(did, refresh=True, expires=now + self.refresh_ttl)
        return {
            "accessJwt": access,
            "refreshJwt": refresh,
            "handle": account.handle,
            "did": did,
            "active": True,
        }

    def _issue(self, did: str, *, refresh: bool, expires: datetime) -> str:
        """A JWT-shaped opaque token (header.payload.signature)."""
        scope = "com.atproto.refresh" if refresh else "com.atproto.appPass"
        payload = {
            "scope": scope,
            "sub": did,
            "exp": int(expires.timestamp()),
            "n": len(self._tokens),
        }
        parts = [{"typ": "at+jwt", "alg": "HS256"}, payload, {"sig": len(self._tokens) * 7919}]
        token = ".".join(
            base64.urlsafe_b64encode(orjson.dumps(p)).decode().rstrip("=") for p in parts
        )
        self._tokens[token] = _Token(did=did, refresh=refresh, expires=expires)
        return token

    def _viewer(self, request: web.Request, *, anonymous_status: int = 401) -> str:
        """The DID of the access token's account, or the XRPC error for a missing/bad one."""
        token = _bearer(request)
        if token is None:
            if anonymous_status == 403:
                raise _Answer(403, "Forbidden", "Request forbidden by administrative rules.")
            raise _Answer(401, "AuthMissing", "Authentication Required")
        info = self._tokens.get(token)
        if info is None or info.refresh:
            raise _Answer(401, "InvalidToken", "Token could not be verified")
        if info.expires <= self.clock.now():
            raise _Answer(400, "ExpiredToken", "Token has expired")
        return info.did

    # --- reads --------------------------------------------------------------------------------

    async def _search(self, request: web.Request) -> dict[str, Any]:
        # Without a session the AppView refuses post search since January 2025 ([SEARCH]).
        self._viewer(request, anonymous_status=403)
        q = request.query.get("q")
        if not q:
            raise _Answer(400, "InvalidRequest", 'Error: Params must have the property "q"')
        limit = _limit(request, default=25)
        offset = _offset(request.query.get("cursor"))
        found = search(
            self.network,
            q,
            _time_param(request, "since"),
            _time_param(request, "until"),
        )
        page = found[offset : offset + limit]
        body: dict[str, Any] = {
            "posts": [post_view(p, self.network) for p in page],
            "hitsTotal": len(found),
        }
        if offset + limit < len(found):
            body["cursor"] = str(offset + limit)  # an offset, as bsky.app's own requests show
        return body

    async def _notifications(self, request: web.Request) -> dict[str, Any]:
        did = self._viewer(request)
        limit = _limit(request, default=50)
        reasons = set(request.query.getall("reasons", []))
        items = [
            (at, entry)
            for at, entry in notifications(self.network, did)
            if not reasons or entry["reason"] in reasons
        ]
        after = request.query.get("cursor")
        if after is not None:
            items = [(at, e) for at, e in items if _keyset(at, e) < after]
        page = items[:limit]
        body: dict[str, Any] = {"notifications": [e for _, e in page], "priority": False}
        if len(items) > limit:
            body["cursor"] = _keyset(*page[-1])
        return body

    async def _thread(self, request: web.Request) -> dict[str, Any]:
        self._viewer(request)
        uri = request.query.get("uri")
        if not uri:
            raise _Answer(400, "InvalidRequest", 'Error: Params must have the property "uri"')
        depth = _int_param(request, "depth", 6, 1000)
        height = _int_param(request, "parentHeight", 80, 1000)
        post = self.network.posts.get(uri)
        if post is None or post.deleted:
            raise _Answer(400, "NotFound", f"Post not found: {uri}")  # [THREAD]
        return {"thread": thread_view(post, self.network, depth, height)}

    async def _author_feed(self, request: web.Request) -> dict[str, Any]:
        self._viewer(request)
        actor = request.query.get("actor")
        if not actor:
            raise _Answer(400, "InvalidRequest", 'Error: Params must have the property "actor"')
        feed_filter = request.query.get("filter", "posts_with_replies")  # the default ([AUTHOR])
        if feed_filter not in AUTHOR_FILTERS:
            # The lexicon's values are "known", not closed; the fake refuses others so that a
            # typo in our request shows in the tests.
            raise _Answer(400, "InvalidRequest", f"Error: unknown filter {feed_filter!r}")
        try:
            did = self.network.account(actor).did
        except KeyError as err:
            raise _Answer(400, "InvalidRequest", "Profile not found") from err  # [AUTHOR]
        limit = _limit(request, default=50)
        # The AppView's cursor is the last entry's sort time (atproto#2616 shows one); the fake's
        # adds the uri so that entries of the same millisecond are neither lost nor repeated.
        items = [(_key(at, uri), e) for at, uri, e in author_feed(self.network, did, feed_filter)]
        after = request.query.get("cursor")
        if after is not None:
            items = [(key, e) for key, e in items if key < after]
        page = items[:limit]
        body: dict[str, Any] = {"feed": [e for _, e in page]}
        if len(items) > limit:
            body["cursor"] = page[-1][0]
        return body

    async def _unknown(self, request: web.Request) -> dict[str, Any]:
        raise _Answer(501, "MethodNotImplemented", "Method Not Implemented")


def _error(status: int, error: str, message: str, headers: dict[str, str]) -> web.Response:
    return base.json_response(
        orjson.dumps({"error": error, "message": message}), status=status, headers=headers
    )


def _limit_headers(limit: int, remaining: int, reset: int, fake: FakeBluesky) -> dict[str, str]:
    return {
        "ratelimit-limit": str(limit),
        "ratelimit-remaining": str(remaining),
        "ratelimit-reset": str(reset),
        "ratelimit-policy": f"{limit};w={fake.rate_window}",
    }


def _bearer(request: web.Request) -> str | None:
    value = request.headers.get("Authorization", "")
    return value[len("Bearer ") :] if value.startswith("Bearer ") else None


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as err:
        raise _Answer(400, "InvalidRequest", "Request body is not JSON") from err
    if not isinstance(body, dict):
        raise _Answer(400, "InvalidRequest", "Input must be an object")
    return body


def _limit(request: web.Request, *, default: int) -> int:
    return _int_param(request, "limit", default, 100, least=1)


def _int_param(request: web.Request, name: str, default: int, most: int, *, least: int = 0) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as err:
        raise _Answer(400, "InvalidRequest", f"Error: {name} must be an integer") from err
    if value > most:
        raise _Answer(400, "InvalidRequest", f"Error: {name} can not be greater than {most}")
    if value < least:
        raise _Answer(400, "InvalidRequest", f"Error: {name} can not be less than {least}")
    return value


def _offset(cursor: str | None) -> int:
    if cursor is None:
        return 0
    if not cursor.isdigit():
        raise _Answer(400, "InvalidRequest", "Error: invalid cursor")
    return int(cursor)


def _time_param(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    moment = parse_time(raw)
    if moment is None:
        raise _Answer(400, "InvalidRequest", f"Error: {name} must be a valid datetime")
    return moment


def _keyset(at: datetime, entry: dict[str, Any]) -> str:
    return _key(at, entry["uri"])


def _key(at: datetime, uri: str) -> str:
    # Newest first by time, ties by uri: the cursor names the last one shown.
    return f"{at.timestamp():020.6f}::{uri}"
