"""A fake Facebook Graph API (Page feed, comments, errors, usage headers) on a real aiohttp server.

Wire formats are imitated from real payloads, not from our reading of the docs. Sources, cited
by tag next to the code that imitates them:
[FEED]   Graph API guide "Field Expansion", example response of GET /me/feed: time-based paging
         with absolute `previous`/`next` URLs carrying `since`/`until`, `__paging_token=enc_...`,
         `__previous`, and the caller's `access_token` when it was sent as a query parameter;
         default post fields created_time, message, id.
         https://developers.facebook.com/docs/graph-api/guides/field-expansion
[CURSOR] Graph API "Paginated Results": `paging.cursors.{before,after}` (base64 strings), absolute
         `previous`/`next`; "use the absence of next" to detect the end.
         https://developers.facebook.com/docs/graph-api/results
[EDGE]   /{object-id}/comments reference: `filter` toplevel (default) or stream, `order`
         chronological / reverse_chronological, `summary` with total_count.
         https://developers.facebook.com/docs/graph-api/reference/object/comments
[TIME]   `"created_time": "2014-03-10T18:20:00+0000"` in a captured page feed,
         sdsdsxcxc/facebook-showposts test_tools/facebook_api_data.py.
[E100]   HTTP 400, GraphMethodException code 100 subcode 33 "Unsupported get request. Object with
         ID '...' does not exist, ...": facebook/facebook-python-business-sdk#239,
         roughike/flutter_facebook_login#44.
[E190]   OAuthException 190 "Invalid OAuth access token data.": home-assistant/core#152416;
         190/463 "Error validating access token: Session has expired on ...", with fbtrace_id:
         snarfed/bridgy#59, staciax/valorant-discord-bot#105; 190/460 "... invalidated because
         the user changed their password ...": roughike/flutter_facebook_login#151.
[E104]   OAuthException 104 "An access token is required to request this resource.":
         node-facebook/facebook-node-sdk#105, spring-guides/gs-consuming-rest#10.
[E4]     `{"message": "(#4) Application request limit reached", "type": "OAuthException",
         "is_transient": true, "code": 4, "fbtrace_id": ...}`:
         facebook/facebook-nodejs-business-sdk#97.
[E32]    "(#32) Page request limit reached" and the `X-Page-Usage` JSON header
         ({'call_count', 'total_cputime', 'total_time'}): facebookarchive/php-graph-sdk#634.
[HDRS]   Real response headers of an error: `x-app-usage: {"call_count":0,"total_cputime":0,
         "total_time":0}`, `WWW-Authenticate: OAuth "Facebook Platform" "invalid_request" "..."`,
         `facebook-api-version`, `x-fb-request-id`, `x-fb-trace-id`,
         `Content-Type: application/json; charset=UTF-8`: daroczig/fbRads#141.
[BUC]    `x-business-use-case-usage`: {business_id: [{type, call_count, total_cputime,
         total_time, estimated_time_to_regain_access}]}: leapforce-dev/lib-go-facebook
         RateLimit.go; Graph API "Rate Limits" overview.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, NamedTuple

import orjson
from aiohttp import web
from multidict import MultiDict

WIRE_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S+0000"  # [TIME]: no colon in the offset
_VERSION = re.compile(r"^v\d+\.\d+$")


# --- faults -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class GraphError:
    """Answer with a Graph error body `{"error": {...}}`; message/type default to the real ones."""

    code: int
    subcode: int | None = None
    message: str | None = None
    type: str | None = None
    status: int = 400
    is_transient: bool | None = None


@dataclass(frozen=True, kw_only=True)
class HttpStatus:
    """Answer with a plain, non-Graph HTTP error, as a load balancer in front of Graph would."""

    status: int = 500
    body: str = "<html><body><h1>500 Internal Server Error</h1></body></html>"
    content_type: str = "text/html"
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Delay:
    """Wait before answering normally (provokes client timeouts; cut short on shutdown)."""

    seconds: float


@dataclass(frozen=True, kw_only=True)
class MalformedJson:
    """Answer 200 with a JSON content type and a body that is not valid JSON."""


@dataclass(frozen=True, kw_only=True)
class TruncatedBody:
    """Announce the full Content-Length, send half the body, then drop the connection."""


@dataclass(frozen=True, kw_only=True)
class Disconnect:
    """Close the connection without answering.

    aiohttp (like most clients) silently retries an idempotent request once after a
    disconnect, so by default the retry of the same path is dropped too and the caller sees
    the failure; `retries_too=False` drops one connection only (a blip the client absorbs).
    """

    retries_too: bool = True


Fault = GraphError | HttpStatus | Delay | MalformedJson | TruncatedBody | Disconnect

# (code, subcode) -> (type, message, is_transient); subcode None is the code's fallback.
_REAL_ERRORS: Mapping[tuple[int, int | None], tuple[str, str, bool | None]] = MappingProxyType(
    {
        (1, None): ("OAuthException", "An unknown error occurred", None),
        (2, None): (
            "OAuthException",
            "An unexpected error has occurred. Please retry your request later.",
            True,
        ),
        (4, None): ("OAuthException", "(#4) Application request limit reached", True),  # [E4]
        (10, None): (
            "OAuthException",
            "(#10) Application does not have permission for this action",
            None,
        ),
        (17, None): ("OAuthException", "(#17) User request limit reached", None),
        (32, None): ("OAuthException", "(#32) Page request limit reached", None),  # [E32]
        # [E100]; {id} is filled in with the object id of the request.
        (100, 33): (
            "GraphMethodException",
            "Unsupported get request. Object with ID '{id}' does not exist, cannot be loaded due"
            " to missing permissions, or does not support this operation. Please read the Graph"
            " API documentation at https://developers.facebook.com/docs/graph-api",
            None,
        ),
        (100, None): ("OAuthException", "(#100) Invalid parameter", None),
        # [E104]
        (104, None): (
            "OAuthException",
            "An access token is required to request this resource.",
            None,
        ),
        (190, None): ("OAuthException", "Invalid OAuth access token data.", None),  # [E190]
        (190, 460): (
            "OAuthException",
            "Error validating access token: The session has been invalidated because the user"
            " changed their password or Facebook has changed the session for security reasons.",
            None,
        ),
        (190, 463): (
            "OAuthException",
            "Error validating access token: Session has expired on Friday, 05-Jan-24 13:00:00"
            " PST. The current time is Saturday, 06-Jan-24 02:11:32 PST.",
            None,
        ),
        (190, 467): (
            "OAuthException",
            "Error validating access token: The session is invalid because the user logged out.",
            None,
        ),
        (200, None): ("OAuthException", "(#200) Permissions error", None),
        (613, None): (
            "OAuthException",
            "(#613) Calls to this api have exceeded the rate limit.",
            None,
        ),
        (80001, None): (
            "OAuthException",
            "(#80001) There have been too many calls to this Page account. Wait a bit and try"
            " again. For more info, please refer to"
            " https://developers.facebook.com/docs/graph-api/overview/rate-limiting.",
            None,
        ),
    }
)

# Fields each node type knows; asking for anything else is an error, as on the real API, so a
# typo in an adapter's `fields=` fails in tests instead of silently returning nothing.
_KNOWN_FIELDS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "PagePost": frozenset(
            {"id", "created_time", "updated_time", "message", "from", "permalink_url", "is_hidden"}
        ),
        "Comment": frozenset(
            {
                "id",
                "created_time",
                "message",
                "from",
                "parent",
                "is_hidden",
                "permalink_url",
                "comment_count",
                "like_count",
            }
        ),
        "Profile": frozenset({"id", "name"}),
        "Page": frozenset({"id", "name"}),
    }
)
# Defaults when no `fields` (or a bare nested field) is given: [FEED] for posts; comments and
# profiles per the comment and user references.
_DEFAULT_FIELDS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "PagePost": ("created_time", "message", "id"),
        "Comment": ("created_time", "from", "message", "id"),
        "Profile": ("name", "id"),
        "Page": ("name", "id"),
    }
)
_NESTED_TYPE: Mapping[str, str] = MappingProxyType({"from": "Profile", "parent": "Comment"})

FieldSpec = dict[str, "FieldSpec | None"]


class RecordedRequest(NamedTuple):
    """One request the fake received: its path and query parameters."""

    path: str
    query: dict[str, str]


@dataclass(frozen=True, kw_only=True)
class _Node:
    """A post or comment as the fake stores it."""

    id: str
    number: int  # the globally increasing part of the id; orders items created in one second
    is_post: bool
    created: int  # unix seconds: Graph times have 1-second resolution
    updated: int
    message: str
    author: tuple[str, str] | None  # None: `from` is withheld (user did not authorise the app)
    post_id: str
    parent_id: str | None  # comments only: the post or the comment replied to
    hidden: bool = False

    @property
    def key(self) -> tuple[int, int]:
        """Chronological sort key."""
        return (self.created, self.number)


@dataclass(kw_only=True)
class _Injected:
    """An injected fault and how many more requests it applies to (None: until cleared)."""

    fault: Fault
    remaining: int | None
    path_contains: str | None


class _GraphFailure(Exception):
    """Raised inside request handling to answer with a Graph error."""

    def __init__(self, error: GraphError, object_id: str = "") -> None:
        super().__init__(error.code)
        self.error = error
        self.object_id = object_id


class FakeGraphApi:
    """A scriptable fake of one Facebook Page on the Graph API, served over real HTTP.

    Use `await start()` / `await stop()` and `base_url`, or mount `make_app()` with
    pytest-aiohttp's `aiohttp_server` (base URL: `server.make_url("/v26.0")`).
    """

    def __init__(
        self,
        page_id: str,
        page_name: str,
        access_token: str,
        version: str = "v26.0",
        *,
        username: str | None = None,
        first_number: int = 1_000_001,
    ) -> None:
        self.page_id = page_id
        # The Page's vanity name, accepted wherever the numeric id is (as on the real API).
        self.username = username
        self.page_name = page_name
        self.access_token = access_token
        self.version = version
        # Usage headers sent on every response when set (percentages, [HDRS] / [BUC] / [E32]).
        self.app_usage: dict[str, int] | None = None
        self.business_usage: dict[str, list[dict[str, Any]]] | None = None
        self.page_usage: dict[str, int] | None = None
        # The real feed often ends with a `next` link that leads to an empty page.
        self.trailing_empty_page = False
        self.requests: list[RecordedRequest] = []
        self.peak_concurrency = 0
        self._in_flight = 0
        self._nodes: dict[str, _Node] = {}
        self._next_number = first_number
        self._faults: list[_Injected] = []
        self._delays: dict[str, float] = {}
        self._holds: dict[str, asyncio.Event] = {}
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None

    # --- scripting ------------------------------------------------------------------------

    def add_post(
        self,
        *,
        created_time: datetime,
        message: str,
        author: tuple[str, str] | None = None,
        anonymous: bool = False,
    ) -> str:
        """Publish a post on the page; author (id, name), None = the page itself."""
        number = self._take_number()
        post_id = f"{self.page_id}_{number}"
        created = _unix(created_time)
        self._nodes[post_id] = _Node(
            id=post_id,
            number=number,
            is_post=True,
            created=created,
            updated=created,
            message=message,
            author=None if anonymous else (author or (self.page_id, self.page_name)),
            post_id=post_id,
            parent_id=None,
        )
        return post_id

    def add_comment(
        self,
        *,
        post_id: str,
        created_time: datetime,
        message: str,
        author: tuple[str, str] | None = None,
        parent_id: str | None = None,
        anonymous: bool = False,
    ) -> str:
        """Comment on a post (or reply to `parent_id`); author None = the page replying."""
        post = self._nodes.get(post_id)
        if post is None or not post.is_post:
            raise KeyError(f"no post {post_id!r}")
        if parent_id is not None:
            parent = self._nodes.get(parent_id)
            if parent is None or parent.is_post or parent.post_id != post_id:
                raise KeyError(f"no comment {parent_id!r} on post {post_id!r}")
        number = self._take_number()
        comment_id = f"{post.number}_{number}"
        created = _unix(created_time)
        self._nodes[comment_id] = _Node(
            id=comment_id,
            number=number,
            is_post=False,
            created=created,
            updated=created,
            message=message,
            author=None if anonymous else (author or (self.page_id, self.page_name)),
            post_id=post_id,
            parent_id=parent_id or post_id,
        )
        return comment_id

    def edit(self, object_id: str, message: str) -> None:
        """Change the text of a post or comment."""
        node = self._node(object_id)
        self._nodes[object_id] = replace(node, message=message)

    def hide(self, object_id: str) -> None:
        """Hide a post or comment (still returned, with `is_hidden: true`)."""
        self._nodes[object_id] = replace(self._node(object_id), hidden=True)

    def unhide(self, object_id: str) -> None:
        """Make a hidden post or comment visible again."""
        self._nodes[object_id] = replace(self._node(object_id), hidden=False)

    def delete(self, object_id: str) -> None:
        """Delete a post (with its comments) or a comment (with its replies)."""
        self._node(object_id)
        doomed = {object_id}
        changed = True
        while changed:
            changed = False
            for node in self._nodes.values():
                if node.id not in doomed and (node.parent_id in doomed or node.post_id in doomed):
                    doomed.add(node.id)
                    changed = True
        for node_id in doomed:
            del self._nodes[node_id]

    def exists(self, object_id: str) -> bool:
        """Whether a post or comment exists (not deleted)."""
        return object_id in self._nodes

    def inject(
        self, fault: Fault, *, times: int | None = 1, path_contains: str | None = None
    ) -> None:
        """Answer the next `times` matching requests (None: until cleared) with `fault`."""
        self._faults.append(_Injected(fault=fault, remaining=times, path_contains=path_contains))

    @property
    def pending_faults(self) -> int:
        """Injected faults not yet used up."""
        return len(self._faults)

    def clear_faults(self) -> None:
        """Forget every injected fault."""
        self._faults.clear()

    def delay_path(self, path_contains: str, seconds: float) -> None:
        """Delay every request whose path contains the substring (0 removes the delay)."""
        if seconds > 0:
            self._delays[path_contains] = seconds
        else:
            self._delays.pop(path_contains, None)

    def hold(self, path_contains: str) -> asyncio.Event:
        """Hold requests whose path contains the substring until the returned event is set."""
        event = self._holds.get(path_contains)
        if event is None or event.is_set():
            event = asyncio.Event()
            self._holds[path_contains] = event
        return event

    def release_all(self) -> None:
        """Release every held request and remove all holds and delays."""
        for event in self._holds.values():
            event.set()
        self._holds.clear()
        self._delays.clear()

    # --- server lifecycle -----------------------------------------------------------------

    def make_app(self) -> web.Application:
        """A fresh aiohttp application serving this fake."""
        self._closing = asyncio.Event()
        app = web.Application()
        app.router.add_get("/{version}/{object_id}/{edge}", self._handle)
        app.router.add_get("/{version}/{object_id}", self._handle)
        app.router.add_route("*", "/{tail:.*}", self._unknown_path)
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Serve on host:port (0 = any free port); see `base_url`."""
        if self._runner is not None:
            raise RuntimeError("FakeGraphApi is already running")
        # A short shutdown_timeout: a held request must not keep stop() waiting for a minute.
        runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        bound_port = runner.addresses[0][1]
        self._runner = runner
        self._base_url = f"http://{host}:{bound_port}/{self.version}"

    async def stop(self) -> None:
        """Stop serving; delayed and held requests are cut short."""
        runner, self._runner = self._runner, None
        self._base_url = None
        if runner is not None:
            self._closing.set()
            await runner.cleanup()

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT/v26.0` once started."""
        if self._base_url is None:
            raise RuntimeError("FakeGraphApi is not running; await start() first")
        return self._base_url

    async def _on_shutdown(self, app: web.Application) -> None:
        self._closing.set()
        for event in self._holds.values():
            event.set()

    # --- request handling -----------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(RecordedRequest(request.path, dict(request.query)))
        self._in_flight += 1
        self.peak_concurrency = max(self.peak_concurrency, self._in_flight)
        try:
            return await self._serve(request)
        finally:
            self._in_flight -= 1

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        await self._wait_for_path(request.path)
        fault = self._take_fault(request.path)
        if fault is not None:
            response = await self._apply_fault(fault, request)
            if response is not None:
                return response
        object_id = request.match_info["object_id"]
        if object_id == self.username:
            object_id = self.page_id
        try:
            self._check_token(request)
            if not _VERSION.match(request.match_info["version"]):
                raise _unknown_path_error(request.path)
            edge = request.match_info.get("edge")
            if edge is None:
                body = self._read_node(request, object_id)
            elif edge == "feed":
                body = self._feed(request, object_id)
            elif edge == "comments":
                body = self._comments(request, object_id)
            else:
                raise self._no_such_field(object_id, edge)
        except _GraphFailure as failure:
            return self._error_response(failure.error, failure.object_id)
        return self._json_response(body)

    async def _unknown_path(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(RecordedRequest(request.path, dict(request.query)))
        return self._error_response(_unknown_path_error(request.path).error)

    def _check_token(self, request: web.Request) -> None:
        token = request.query.get("access_token")
        if token is None:
            scheme, _, value = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() in ("bearer", "oauth") and value.strip():
                token = value.strip()
        if not token:
            raise _GraphFailure(GraphError(code=104))  # [E104]
        if token != self.access_token:
            raise _GraphFailure(GraphError(code=190))  # [E190]

    def _feed(self, request: web.Request, object_id: str) -> dict[str, Any]:
        if object_id != self.page_id:
            if object_id in self._nodes:
                raise self._no_such_field(object_id, "feed")
            raise _GraphFailure(GraphError(code=100, subcode=33), object_id)
        query = request.query
        fields = _fields(query, "PagePost")
        limit = _limit(query)
        since, until = _int_param(query, "since"), _int_param(query, "until")
        # [FEED] newest first, filtered on the post's creation time.
        candidates = sorted(
            (
                node
                for node in self._nodes.values()
                if node.is_post
                and (since is None or node.created >= since)
                and (until is None or node.created <= until)
            ),
            key=lambda node: node.key,
            reverse=True,
        )
        token = query.get("__paging_token")
        backwards = "__previous" in query
        if token is None:
            page = candidates[:limit]
        else:
            mark = _decode_mark(token, prefix="enc_")
            if backwards:
                page = [node for node in candidates if node.key > mark][-limit:]
            else:
                page = [node for node in candidates if node.key < mark][:limit]
        body: dict[str, Any] = {"data": [self._render(node, fields, "PagePost") for node in page]}
        if not page:
            return body
        first, last = page[0], page[-1]
        paging: dict[str, str] = {
            "previous": _link(
                request,
                drop=("until",),
                set_={
                    "since": str(first.created),
                    "__paging_token": _encode_mark(first, prefix="enc_"),
                    "__previous": "1",
                },
            )
        }
        if self.trailing_empty_page or any(node.key < last.key for node in candidates):
            paging["next"] = _link(
                request,
                # Our own `since` from a previous-page link would cut off older posts.
                drop=("__previous", "since") if backwards else ("__previous",),
                set_={
                    "until": str(last.created),
                    "__paging_token": _encode_mark(last, prefix="enc_"),
                },
            )
        body["paging"] = paging
        return body

    def _read_node(self, request: web.Request, object_id: str) -> dict[str, Any]:
        """GET /{id}: the Page (id, name) or one post or comment."""
        if object_id == self.page_id:
            page = {"id": self.page_id, "name": self.page_name}
            return _project(page, _fields(request.query, "Page"), "Page")
        node = self._nodes.get(object_id)
        if node is None:
            raise _GraphFailure(GraphError(code=100, subcode=33), object_id)  # [E100]
        node_type = "PagePost" if node.is_post else "Comment"
        return self._render(node, _fields(request.query, node_type), node_type)

    def _comments(self, request: web.Request, object_id: str) -> dict[str, Any]:
        node = self._nodes.get(object_id)
        if node is None:
            if object_id == self.page_id:
                raise self._no_such_field(object_id, "comments")
            raise _GraphFailure(GraphError(code=100, subcode=33), object_id)  # [E100]
        query = request.query
        fields = _fields(query, "Comment")
        limit = _limit(query)
        stream = _choice(query, "filter", ("toplevel", "stream")) == "stream"  # [EDGE]
        order = _choice(query, "order", ("chronological", "reverse_chronological"))
        members = [
            other
            for other in self._nodes.values()
            if not other.is_post and self._belongs(other, node, stream=stream)
        ]
        items = sorted(members, key=lambda other: other.key, reverse=order != "chronological")
        after, before = query.get("after"), query.get("before")
        if after is not None:
            mark = _decode_mark(after)
            page = [item for item in items if _comes_after(item.key, mark, order)][:limit]
        elif before is not None:
            mark = _decode_mark(before)
            page = [item for item in items if _comes_after(mark, item.key, order)][-limit:]
        else:
            page = items[:limit]
        body: dict[str, Any] = {"data": [self._render(item, fields, "Comment") for item in page]}
        if page:
            # [CURSOR]: cursors always; `next`/`previous` only when more data exists that way.
            first, last = page[0], page[-1]
            paging: dict[str, Any] = {
                "cursors": {"before": _encode_mark(first), "after": _encode_mark(last)}
            }
            if items.index(first) > 0:
                paging["previous"] = _link(
                    request, drop=("after",), set_={"before": _encode_mark(first)}
                )
            if items.index(last) < len(items) - 1:
                paging["next"] = _link(
                    request, drop=("before",), set_={"after": _encode_mark(last)}
                )
            body["paging"] = paging
        if query.get("summary") in ("true", "1"):
            body["summary"] = {"order": order, "total_count": len(items), "can_comment": True}
        return body

    def _belongs(self, comment: _Node, node: _Node, *, stream: bool) -> bool:
        """Whether `comment` is listed on `node`'s comments edge."""
        if not stream:
            return comment.parent_id == node.id
        if node.is_post:
            return comment.post_id == node.id
        parent_id = comment.parent_id
        while parent_id is not None and parent_id != comment.post_id:
            if parent_id == node.id:
                return True
            parent = self._nodes.get(parent_id)
            parent_id = parent.parent_id if parent is not None else None
        return False

    def _render(self, node: _Node, fields: FieldSpec, node_type: str) -> dict[str, Any]:
        return _project(self._full(node, shallow=False), fields, node_type)

    def _full(self, node: _Node, *, shallow: bool) -> dict[str, Any]:
        """Every field the fake knows for a node; fields without a value are left out."""
        post_number = self._nodes[node.post_id].number if node.post_id in self._nodes else 0
        full: dict[str, Any] = {
            "id": node.id,
            "created_time": _wire_time(node.created),
            "is_hidden": node.hidden,
        }
        # The real API leaves out empty fields, e.g. `message` of a photo-only post.
        if node.message or not node.is_post:
            full["message"] = node.message
        if node.author is not None:
            full["from"] = {"name": node.author[1], "id": node.author[0]}
        if node.is_post:
            full["updated_time"] = _wire_time(node.updated)
            full["permalink_url"] = f"https://www.facebook.com/{self.page_id}/posts/{node.number}"
            return full
        permalink = f"https://www.facebook.com/{self.page_id}/posts/{post_number}?comment_id="
        parent = self._nodes.get(node.parent_id or "")
        if parent is not None and not parent.is_post:
            permalink += f"{parent.number}&reply_comment_id={node.number}"
            if not shallow:
                full["parent"] = self._full(parent, shallow=True)
        else:
            permalink += str(node.number)
        full["permalink_url"] = permalink
        full["like_count"] = 0
        full["comment_count"] = sum(
            1 for other in self._nodes.values() if other.parent_id == node.id
        )
        return full

    def _no_such_field(self, object_id: str, name: str) -> _GraphFailure:
        node = self._nodes.get(object_id)
        node_type = "Page" if node is None else "PagePost" if node.is_post else "Comment"
        return _GraphFailure(
            GraphError(
                code=100,
                message=f"(#100) Tried accessing nonexisting field ({name}) on node type"
                f" ({node_type})",
            )
        )

    # --- faults, delays and responses -----------------------------------------------------

    async def _wait_for_path(self, path: str) -> None:
        delay = max((s for sub, s in self._delays.items() if sub in path), default=0.0)
        if delay > 0:
            await self._pause(delay)
        for substring, event in list(self._holds.items()):
            if substring in path and not event.is_set():
                await self._wait_either(event)

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake up at once when the server shuts down."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), timeout=seconds)

    async def _wait_either(self, event: asyncio.Event) -> None:
        waiters = [
            asyncio.ensure_future(event.wait()),
            asyncio.ensure_future(self._closing.wait()),
        ]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    def _take_fault(self, path: str) -> Fault | None:
        for injected in self._faults:
            if injected.path_contains is None or injected.path_contains in path:
                if injected.remaining is not None:
                    injected.remaining -= 1
                    if injected.remaining <= 0:
                        self._faults.remove(injected)
                return injected.fault
        return None

    async def _apply_fault(self, fault: Fault, request: web.Request) -> web.StreamResponse | None:
        """Answer with the fault, or return None to carry on normally (after a Delay)."""
        if isinstance(fault, Delay):
            await self._pause(fault.seconds)
            return None
        if isinstance(fault, GraphError):
            return self._error_response(fault, request.match_info.get("object_id", ""))
        if isinstance(fault, HttpStatus):
            return web.Response(
                status=fault.status,
                text=fault.body,
                content_type=fault.content_type,
                headers=self._common_headers(dict(fault.headers)),
            )
        if isinstance(fault, MalformedJson):
            # A trailing comma: what a broken proxy or serializer might produce.
            return self._raw_json_response(b'{"data": [{"id": "1_2", "message": "x"},]}')
        if isinstance(fault, TruncatedBody):
            full = orjson.dumps({"data": [{"id": f"{self.page_id}_1", "message": "x" * 200}]})
            response = web.StreamResponse(status=200, headers=self._common_headers({}))
            response.content_type = "application/json"
            response.content_length = len(full)
            await response.prepare(request)
            await response.write(full[: len(full) // 2])
            _close_transport(request)
            return response
        if fault.retries_too:
            again = _Injected(
                fault=Disconnect(retries_too=False), remaining=1, path_contains=request.path
            )
            self._faults.insert(0, again)
        _close_transport(request)
        return web.Response(status=500)

    def _error_response(self, error: GraphError, object_id: str = "") -> web.Response:
        real_type, real_message, real_transient = _REAL_ERRORS.get(
            (error.code, error.subcode),
            _REAL_ERRORS.get((error.code, None), ("OAuthException", "An error occurred", None)),
        )
        message = error.message or real_message.replace("{id}", object_id)
        payload: dict[str, Any] = {
            "message": message,
            "type": error.type or real_type,
            "code": error.code,
        }
        if error.subcode is not None:
            payload["error_subcode"] = error.subcode
        is_transient = error.is_transient if error.is_transient is not None else real_transient
        if is_transient is not None:
            payload["is_transient"] = is_transient
        payload["fbtrace_id"] = _trace_id()
        # [HDRS] errors also carry WWW-Authenticate with the message.
        kind = "invalid_token" if error.code == 190 else "invalid_request"
        headers = {"WWW-Authenticate": f'OAuth "Facebook Platform" "{kind}" "{message}"'}
        return self._raw_json_response(orjson.dumps({"error": payload}), error.status, headers)

    def _json_response(self, body: Mapping[str, Any]) -> web.Response:
        return self._raw_json_response(orjson.dumps(body))

    def _raw_json_response(
        self, raw: bytes, status: int = 200, headers: dict[str, str] | None = None
    ) -> web.Response:
        return web.Response(
            body=raw,
            status=status,
            content_type="application/json",
            charset="UTF-8",
            headers=self._common_headers(headers or {}),
        )

    def _common_headers(self, headers: dict[str, str]) -> dict[str, str]:
        headers["facebook-api-version"] = self.version  # [HDRS]
        headers["x-fb-request-id"] = _trace_id()
        headers["x-fb-trace-id"] = _trace_id()
        if self.app_usage is not None:
            headers["x-app-usage"] = orjson.dumps(self.app_usage).decode()
        if self.business_usage is not None:
            headers["x-business-use-case-usage"] = orjson.dumps(self.business_usage).decode()
        if self.page_usage is not None:
            headers["x-page-usage"] = orjson.dumps(self.page_usage).decode()
        return headers

    def _take_number(self) -> int:
        number = self._next_number
        self._next_number += 1
        return number

    def _node(self, object_id: str) -> _Node:
        node = self._nodes.get(object_id)
        if node is None:
            raise KeyError(f"no post or comment {object_id!r}")
        return node


# --- helpers ------------------------------------------------------------------------------


def _unix(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("created_time must be timezone-aware")
    return int(moment.timestamp())


def _wire_time(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime(WIRE_TIME_FORMAT)


def _trace_id() -> str:
    return "A" + secrets.token_urlsafe(16)[:22]


def _unknown_path_error(path: str) -> _GraphFailure:
    return _GraphFailure(
        GraphError(code=2500, message=f"Unknown path components: {path}", type="OAuthException")
    )


def _invalid_parameter() -> _GraphFailure:
    return _GraphFailure(GraphError(code=100))


def _int_param(query: Mapping[str, str], name: str) -> int | None:
    value = query.get(name)
    if value is None or value == "":
        return None
    try:
        return int(float(value))
    except ValueError as err:
        raise _invalid_parameter() from err


def _limit(query: Mapping[str, str]) -> int:
    limit = _int_param(query, "limit")
    return 25 if limit is None else max(1, min(limit, 100))


def _choice(query: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str:
    value = query.get(name, allowed[0]).lower()
    if value not in allowed:
        raise _invalid_parameter()
    return value


def _comes_after(key: tuple[int, int], mark: tuple[int, int], order: str) -> bool:
    return key > mark if order == "chronological" else key < mark


def _encode_mark(node: _Node, prefix: str = "") -> str:
    raw = f"{node.created}:{node.number}".encode()
    return prefix + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_mark(token: str, prefix: str = "") -> tuple[int, int]:
    try:
        encoded = token.removeprefix(prefix)
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        created, number = raw.split(":")
        return int(created), int(number)
    except (binascii.Error, UnicodeDecodeError, ValueError) as err:
        raise _invalid_parameter() from err


def _link(request: web.Request, *, drop: tuple[str, ...], set_: Mapping[str, str]) -> str:
    """The absolute URL of this request with some parameters replaced, as Graph builds paging."""
    query: MultiDict[str] = MultiDict(
        (key, value) for key, value in request.query.items() if key not in drop and key not in set_
    )
    query.extend(set_)
    return str(request.url.with_query(query))


def _fields(query: Mapping[str, str], node_type: str) -> FieldSpec:
    spec = query.get("fields")
    if not spec:
        return dict.fromkeys(_DEFAULT_FIELDS[node_type])
    parsed, _ = _parse_fields(spec, 0)
    _check_fields(parsed, node_type)
    return parsed


def _check_fields(fields: FieldSpec, node_type: str) -> None:
    """Reject unknown field names up front, as Graph does even when the result is empty."""
    known = _KNOWN_FIELDS[node_type]
    for name, nested in fields.items():
        if name not in known:
            raise _GraphFailure(
                GraphError(
                    code=100,
                    message=f"(#100) Tried accessing nonexisting field ({name}) on node type"
                    f" ({node_type})",
                )
            )
        if nested is not None and name in _NESTED_TYPE:
            _check_fields(nested, _NESTED_TYPE[name])


def _parse_fields(spec: str, pos: int) -> tuple[FieldSpec, int]:
    """Parse `id,from{id,name},message` into {"id": None, "from": {...}, "message": None}."""
    fields: FieldSpec = {}
    name = ""
    while pos < len(spec):
        char = spec[pos]
        if char == "{":
            nested, pos = _parse_fields(spec, pos + 1)
            fields[name.strip()] = nested
            name = ""
            continue
        if char == "}":
            if name.strip():
                fields[name.strip()] = None
            return fields, pos + 1
        if char == ",":
            if name.strip():
                fields[name.strip()] = None
            name = ""
        else:
            name += char
        pos += 1
    if name.strip():
        fields[name.strip()] = None
    return fields, pos


def _project(full: Mapping[str, Any], fields: FieldSpec, node_type: str) -> dict[str, Any]:
    """Keep the requested (already checked) fields, and the id always, as Graph does."""
    out: dict[str, Any] = {}
    for name, nested in fields.items():
        if name not in full:
            continue
        value = full[name]
        if name in _NESTED_TYPE:
            nested_type = _NESTED_TYPE[name]
            spec = nested if nested is not None else dict.fromkeys(_DEFAULT_FIELDS[nested_type])
            value = _project(value, spec, nested_type)
        out[name] = value
    if "id" in full:
        out.setdefault("id", full["id"])
    return out


def _close_transport(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.close()
