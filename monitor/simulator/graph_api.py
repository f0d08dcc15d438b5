"""A fake Facebook Graph API (Pages, feed, comments, batches, errors) on a real aiohttp server.

Wire formats are imitated from real payloads, not from our reading of the docs. Sources, cited
by tag next to the code that imitates them:
[FEED]   Graph API guide "Field Expansion", example response of GET /me/feed: time-based paging
         with absolute `previous`/`next` URLs carrying `since`/`until`, `__paging_token=enc_...`,
         `__previous`, and the caller's `access_token` when it was sent as a query parameter;
         default post fields created_time, message, id; `.limit(n)` on an edge named in `fields`.
         https://developers.facebook.com/docs/graph-api/guides/field-expansion
[CURSOR] Graph API "Paginated Results": `paging.cursors.{before,after}` (base64 strings), absolute
         `previous`/`next`; "use the absence of next" to detect the end.
         https://developers.facebook.com/docs/graph-api/results
[EDGE]   /{object-id}/comments reference: `filter` toplevel (default) or stream, `order`
         chronological / reverse_chronological, `summary` with total_count.
         https://developers.facebook.com/docs/graph-api/reference/object/comments
[NESTED] A captured `fields=comments` expansion: the nested edge is `{"data": [...], "paging":
         {"cursors": {"after", "before"}, "next": ".../{object-id}/comments?limit=25&after=..."}}`
         — the nested `next` carries limit and cursor only, not the nested modifiers or fields
         (https://facebook-docs.oklahome.net/archives/52092088.html); an edge without items is
         left out of the expansion.
[IDS]    Multiple-ID read `GET /?ids=A,B&fields=...`: an object keyed by the ids as requested
         (sammyk.me "Optimizing request queries to the Facebook Graph API"); when one id does not
         exist the whole call fails, "(#803) Some of the aliases you requested do not exist: X"
         (nov/fb_graph#286, mobolic/facebook-sdk#315) and, in current versions, code 100 with
         the same text; at most 50 ids per call.
[V26IDS] From v26.0 root multi-ID reads are refused: "Root requests using GET /?ids=... return
         an error. Use per-object requests or supported batching" (Meta's v26.0 changelog, quoted
         in restfb/restfb#1692). The fake refuses them (HTTP 400, code 100) from v26.0 on and
         still serves them to older versions.
[PROOF]  appsecret_proof = hex HMAC-SHA256(access token, app secret), a query parameter (batch:
         a top-level parameter). With "Require App Secret" on, a call without it fails with
         HTTP 400 GraphMethodException code 100 "API calls from the server require an
         appsecret_proof argument" (sromku/android-simple-facebook#160, dektrium/yii2-user#305);
         a wrong one fails with "Invalid appsecret_proof provided in the API argument"
         (node-facebook/facebook-node-sdk#111).
[BATCH]  Graph API "Batch Requests": POST with form field `batch` = JSON array of
         {"method", "relative_url"} (at most 50; each counts as one call for rate limiting) and
         `include_headers`; the answer is a JSON array in request order of {"code", "headers":
         [{"name", "value"}], "body": "<JSON string>"}, null for an operation that did not
         complete in time. https://developers.facebook.com/docs/graph-api/batch-requests,
         facebookarchive/php-graph-sdk#619 (null entries); sub-response headers such as
         `Content-Type: text/javascript; charset=UTF-8` and `WWW-Authenticate`: facebook-batch
         (npm) BatchRequestError tests.
[DEBUG]  GET /debug_token?input_token=: {"data": {app_id, type, application,
         data_access_expires_at, expires_at (0 = never), is_valid, issued_at, scopes, user_id}}.
         https://developers.facebook.com/docs/graph-api/reference/debug_token
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
import hashlib
import hmac
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
from yarl import URL

from monitor.simulator.base import (
    Delay,
    Disconnect,
    FakeServer,
    HttpStatus,
    MalformedJson,
    TruncatedBody,
    find,
    json_response,
)

__all__ = [
    "BATCH_LIMIT",
    "IDS_LIMIT",
    "WIRE_TIME_FORMAT",
    "Delay",
    "Disconnect",
    "FakeGraphApi",
    "Fault",
    "GraphError",
    "HttpStatus",
    "MalformedJson",
    "RecordedRequest",
    "TruncatedBody",
]

WIRE_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S+0000"  # [TIME]: no colon in the offset
_VERSION = re.compile(r"^v\d+\.\d+$")
BATCH_LIMIT = 50  # [BATCH]
IDS_LIMIT = 50  # [IDS]


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


Fault = GraphError | HttpStatus | Delay | MalformedJson | TruncatedBody | Disconnect
# Inside a batch a fault shapes one sub-response: GraphError, HttpStatus and MalformedJson become
# its code and body, Delay holds the whole batch answer back, and TruncatedBody or Disconnect
# give the null entry of an operation that did not complete in time ([BATCH]).

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
        # [IDS]; {id} is filled in with the ids that do not exist.
        (803, None): (
            "OAuthException",
            "(#803) Some of the aliases you requested do not exist: {id}",
            None,
        ),
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

_ROOT_IDS_REFUSED = GraphError(  # [V26IDS]
    code=100,
    message="(#100) Root requests using GET /?ids=... are not supported in this version. Use"
    " per-object requests or supported batching.",
)
_PROOF_REQUIRED = GraphError(  # [PROOF]
    code=100,
    type="GraphMethodException",
    message="API calls from the server require an appsecret_proof argument",
)
_PROOF_INVALID = GraphError(  # [PROOF]
    code=100,
    type="GraphMethodException",
    message="Invalid appsecret_proof provided in the API argument",
)

# Fields each node type knows; asking for anything else is an error, as on the real API, so a
# typo in an adapter's `fields=` fails in tests instead of silently returning nothing.
_KNOWN_FIELDS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "PagePost": frozenset(
            {
                "id",
                "created_time",
                "updated_time",
                "message",
                "from",
                "permalink_url",
                "is_hidden",
                "comments",
            }
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
# Edges that can be expanded inside `fields` ([FEED]): item type and the modifiers taken ([EDGE]).
_EDGE_FIELDS: Mapping[tuple[str, str], tuple[str, frozenset[str]]] = MappingProxyType(
    {("PagePost", "comments"): ("Comment", frozenset({"filter", "order", "limit", "summary"}))}
)
_MODIFIER = re.compile(r"\.(\w+)\(([^()]*)\)")
# A trailing comma: what a broken proxy or serializer might produce.
_MALFORMED = b'{"data": [{"id": "1_2", "message": "x"},]}'


@dataclass(frozen=True, kw_only=True)
class _Field:
    """One requested field: its nested fields (`from{id,name}`) and modifiers (`.limit(5)`)."""

    nested: FieldSpec | None = None
    args: Mapping[str, str] = field(default_factory=dict)


FieldSpec = dict[str, _Field]


class RecordedRequest(NamedTuple):
    """One request (or batch sub-request) the fake received: its path and query parameters."""

    path: str
    query: dict[str, str]


@dataclass(frozen=True, kw_only=True)
class _Page:
    """A Facebook Page served by the fake."""

    id: str
    name: str
    username: str | None


@dataclass(frozen=True, kw_only=True)
class _Node:
    """A post or comment as the fake stores it."""

    id: str
    page_id: str
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


@dataclass(frozen=True, kw_only=True)
class _Call:
    """One Graph call, from a plain HTTP request or from a batch sub-request."""

    url: URL  # absolute, as the caller would have asked for it: paging links are built from it
    path: str  # what faults, delays and holds match on
    version: str
    segments: tuple[str, ...]  # () for the root (multi-id reads), else (object_id[, edge])
    query: Mapping[str, str]
    token: str | None
    proof: str | None = None  # appsecret_proof ([PROOF])


class _GraphFailure(Exception):
    """Raised inside request handling to answer with a Graph error."""

    def __init__(self, error: GraphError, object_id: str = "") -> None:
        super().__init__(error.code)
        self.error = error
        self.object_id = object_id


class FakeGraphApi(FakeServer[Fault]):
    """A scriptable fake of Facebook Pages on the Graph API, served over real HTTP.

    `FakeGraphApi(page_id, page_name, token)` serves one page; `add_page` adds more, all on the
    same token. Use `await start()` / `await stop()` and `base_url`, or mount `make_app()` with
    pytest-aiohttp's `aiohttp_server` (base URL: `server.make_url("/v26.0")`).
    """

    def __init__(
        self,
        page_id: str | None = None,
        page_name: str | None = None,
        access_token: str = "fake-page-token",
        version: str = "v26.0",
        *,
        username: str | None = None,
        first_number: int = 1_000_001,
    ) -> None:
        super().__init__()
        self.access_token = access_token
        self.version = version
        # Usage headers sent on every response when set (percentages, [HDRS] / [BUC] / [E32]).
        self.app_usage: dict[str, int] | None = None
        self.business_usage: dict[str, list[dict[str, Any]]] | None = None
        self.page_usage: dict[str, int] | None = None
        # The real feed often ends with a `next` link that leads to an empty page.
        self.trailing_empty_page = False
        # What /debug_token says about `access_token` ([DEBUG]); 0 means "never".
        self.app_id = "1357924680135792"
        self.app_name = "webcare-monitor"
        self.token_expires_at = 0
        self.data_access_expires_at = 0
        self.token_issued_at = 1_700_000_000
        self.token_valid = True
        self.token_scopes = ["pages_read_engagement", "pages_read_user_content", "pages_show_list"]
        # The app's secret ([PROOF]): a given appsecret_proof is checked against it, and with
        # `require_app_secret` a call without one is refused.
        self.app_secret: str | None = None
        self.require_app_secret = False
        # A batch POST refused as a whole with this error (an app or endpoint that does not
        # take batches), so a client's per-object fallback can be tested.
        self.refuse_batches: GraphError | None = None
        # Every HTTP request received, and every Graph call (plain GETs and batch sub-requests).
        self.requests: list[RecordedRequest] = []
        self.calls: list[RecordedRequest] = []
        self.http_requests = 0
        # Calls as Facebook's rate limiting counts them: each batch sub-request and each id of
        # an `ids=` read is one call ([BATCH], [IDS]).
        self.graph_calls = 0
        self._pages: dict[str, _Page] = {}
        self._usernames: dict[str, str] = {}
        self._nodes: dict[str, _Node] = {}
        self._dropped: dict[str, tuple[str, ...]] = {}  # break_object()
        self._next_number = first_number
        if page_id is not None:
            self.add_page(page_id, page_name or page_id, username=username)

    # --- scripting ------------------------------------------------------------------------

    def add_page(self, page_id: str, name: str, *, username: str | None = None) -> str:
        """Serve one more Page (on the same token); `username` is its vanity name."""
        if page_id in self._pages or page_id in self._usernames:
            raise ValueError(f"page {page_id!r} exists already")
        self._pages[page_id] = _Page(id=page_id, name=name, username=username)
        if username is not None:
            # Accepted wherever the numeric id is, as on the real API.
            self._usernames[username] = page_id
        return page_id

    @property
    def page_ids(self) -> list[str]:
        """Every page served, in the order they were added."""
        return list(self._pages)

    @property
    def page_id(self) -> str:
        """The first page's id: the page `add_post` uses by default."""
        return self._default_page().id

    @property
    def page_name(self) -> str:
        """The first page's name."""
        return self._default_page().name

    @property
    def username(self) -> str | None:
        """The first page's vanity name."""
        return self._default_page().username

    def add_post(
        self,
        *,
        created_time: datetime,
        message: str,
        author: tuple[str, str] | None = None,
        anonymous: bool = False,
        page_id: str | None = None,
    ) -> str:
        """Publish a post on a page (default: the first); author (id, name), None = the page."""
        page = self._pages[page_id] if page_id is not None else self._default_page()
        number = self._take_number()
        post_id = f"{page.id}_{number}"
        created = _unix(created_time)
        self._nodes[post_id] = _Node(
            id=post_id,
            page_id=page.id,
            number=number,
            is_post=True,
            created=created,
            updated=created,
            message=message,
            author=None if anonymous else (author or (page.id, page.name)),
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
        page = self._pages[post.page_id]
        number = self._take_number()
        comment_id = f"{post.number}_{number}"
        created = _unix(created_time)
        self._nodes[comment_id] = _Node(
            id=comment_id,
            page_id=page.id,
            number=number,
            is_post=False,
            created=created,
            updated=created,
            message=message,
            author=None if anonymous else (author or (page.id, page.name)),
            post_id=post_id,
            parent_id=parent_id or post_id,
        )
        return comment_id

    def edit(self, object_id: str, message: str) -> None:
        """Change the text of a post or comment."""
        node = self._node(object_id)
        self._nodes[object_id] = replace(node, message=message)

    def break_object(self, object_id: str, *, drop: tuple[str, ...] = ("created_time",)) -> None:
        """Serve an object without some of its fields, as a broken or half-migrated object
        would come (a test mode: one unusable object among readable ones)."""
        self._node(object_id)
        self._dropped[object_id] = drop

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

    # --- server lifecycle -----------------------------------------------------------------

    def _url_suffix(self) -> str:
        """What follows host:port in base_url."""
        return f"/{self.version}"

    def _routes(self, router: web.UrlDispatcher) -> None:
        """Object reads, edges, the root and every unknown path."""
        router.add_get("/{version}/{object_id}/{edge}", self._handle)
        router.add_get("/{version}/{object_id}", self._handle)
        # The root serves multi-id reads (GET ?ids=) and batches (POST), with or without version.
        router.add_route("*", "/{version}/", self._handle)
        router.add_route("*", "/", self._handle)
        router.add_route("*", "/{tail:.*}", self._unknown_path)

    # --- request handling -----------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.http_requests += 1
        self.requests.append(RecordedRequest(request.path, dict(request.query)))
        with self._counted():
            if request.method == "POST" and "object_id" not in request.match_info:
                return await self._serve_batch(request)
            if request.method not in ("GET", "HEAD"):
                return self._error_response(_unknown_path_error(request.path).error)
            return await self._serve(request)

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        call = self._http_call(request)
        self._count(call)
        response = await self._faulted(request)
        if response is not None:
            return response
        try:
            body = self._dispatch(call)
        except _GraphFailure as failure:
            return self._error_response(failure.error, failure.object_id)
        return self._json_response(body)

    async def _unknown_path(self, request: web.Request) -> web.StreamResponse:
        self.http_requests += 1
        self.graph_calls += 1
        self.requests.append(RecordedRequest(request.path, dict(request.query)))
        return self._error_response(_unknown_path_error(request.path).error)

    def _http_call(self, request: web.Request) -> _Call:
        info = request.match_info
        segments = tuple(info[key] for key in ("object_id", "edge") if key in info)
        return _Call(
            url=request.url,
            path=request.path,
            version=info.get("version", self.version),
            segments=segments,
            query=request.query,
            token=_token(request.query, request.headers.get("Authorization", "")),
            proof=request.query.get("appsecret_proof"),
        )

    def _count(self, call: _Call) -> None:
        self.calls.append(RecordedRequest(call.path, dict(call.query)))
        if call.segments:
            self.graph_calls += 1
        else:
            self.graph_calls += max(1, len(_split_ids(call.query)))  # [IDS]

    def _dispatch(self, call: _Call) -> dict[str, Any]:
        """Answer one call (HTTP or batch sub-request) with its body, or raise _GraphFailure."""
        self._check_token(call.token)
        self._check_proof(call.token, call.proof)
        if not _VERSION.match(call.version) or len(call.segments) > 2:
            raise _unknown_path_error(call.path)
        if not call.segments:
            if _version_number(call.version) >= (26, 0):
                raise _GraphFailure(_ROOT_IDS_REFUSED)  # [V26IDS]
            return self._read_ids(call)
        object_id = self._usernames.get(call.segments[0], call.segments[0])
        if len(call.segments) == 1:
            if object_id == "debug_token":
                return self._debug_token(call)
            return self._read_node(call, object_id)
        edge = call.segments[1]
        if edge == "feed":
            return self._feed(call, object_id)
        if edge == "comments":
            return self._comments(call, object_id)
        raise self._no_such_field(object_id, edge)

    def _check_proof(self, token: str | None, proof: str | None) -> None:
        """[PROOF]: a wrong proof always fails; a missing one when the app requires it."""
        if self.app_secret is None or token is None:
            return
        if proof is None:
            if self.require_app_secret:
                raise _GraphFailure(_PROOF_REQUIRED)
            return
        expected = hmac.new(self.app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(proof, expected):
            raise _GraphFailure(_PROOF_INVALID)

    def _check_token(self, token: str | None) -> None:
        if not token:
            raise _GraphFailure(GraphError(code=104))  # [E104]
        if token != self.access_token:
            raise _GraphFailure(GraphError(code=190))  # [E190]

    # --- batches ([BATCH]) ----------------------------------------------------------------

    async def _serve_batch(self, request: web.Request) -> web.StreamResponse:
        # A throttle on every Nth call counts the calls inside, not the envelope.
        response = await self._faulted(request, periodic=False)
        if response is not None:
            return response
        form = await request.post()
        # The docs' curl example sends everything in the query string; SDKs send a form body.
        params: dict[str, str] = {
            key: value for key, value in request.query.items() if isinstance(value, str)
        }
        params.update((key, value) for key, value in form.items() if isinstance(value, str))
        version = request.match_info.get("version", self.version)
        token = params.get("access_token") or _token({}, request.headers.get("Authorization", ""))
        proof = params.get("appsecret_proof")
        try:
            self._check_token(token)
            self._check_proof(token, proof)
            if not _VERSION.match(version):
                raise _unknown_path_error(request.path)
            if self.refuse_batches is not None:
                raise _GraphFailure(self.refuse_batches)
            operations = _batch_operations(params.get("batch"))
        except _GraphFailure as failure:
            return self._error_response(failure.error)
        include_headers = params.get("include_headers", "true").lower() != "false"
        answers = await asyncio.gather(
            *(
                self._sub_request(request, version, operation, token, proof, include_headers)
                for operation in operations
            )
        )
        return self._raw_json_response(orjson.dumps(answers))

    async def _sub_request(
        self,
        request: web.Request,
        version: str,
        operation: Mapping[str, Any],
        token: str | None,
        proof: str | None,
        include_headers: bool,
    ) -> dict[str, Any] | None:
        """One operation of a batch: its {code, headers, body}, or None when it timed out."""
        relative = operation.get("relative_url")
        if not isinstance(relative, str):
            error = GraphError(code=100, message="(#100) Each batch operation needs relative_url")
            self.graph_calls += 1
            return self._sub_error(error, include_headers)
        call = _sub_call(request, version, relative, token, proof)
        self._count(call)
        method = operation.get("method", "GET")
        if not isinstance(method, str) or method.upper() != "GET":
            error = GraphError(code=100, message=f"(#100) This fake only serves GET, not {method}")
            return self._sub_error(error, include_headers)
        await self._wait_for_path(call.path)
        fault = self._take_fault(call.path)
        if isinstance(fault, TruncatedBody | Disconnect):
            return None
        if isinstance(fault, Delay):
            await self._pause(fault.seconds)
        elif isinstance(fault, GraphError):
            return self._sub_error(
                fault, include_headers, call.segments[0] if call.segments else ""
            )
        elif isinstance(fault, HttpStatus):
            headers = {"Content-Type": fault.content_type, **fault.headers}
            return self._sub_answer(fault.status, fault.body, include_headers, headers)
        elif isinstance(fault, MalformedJson):
            return self._sub_answer(200, _MALFORMED.decode(), include_headers)
        try:
            body = self._dispatch(call)
        except _GraphFailure as failure:
            return self._sub_error(failure.error, include_headers, failure.object_id)
        return self._sub_answer(200, orjson.dumps(body).decode(), include_headers)

    def _sub_answer(
        self,
        code: int,
        body: str,
        include_headers: bool,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        answer: dict[str, Any] = {"code": code}
        if include_headers:
            # Usage headers come on the batch response itself, not on each operation.
            merged = {
                "Content-Type": "text/javascript; charset=UTF-8",
                "facebook-api-version": self.version,
                **(headers or {}),
            }
            answer["headers"] = [{"name": name, "value": value} for name, value in merged.items()]
        answer["body"] = body
        return answer

    def _sub_error(
        self, error: GraphError, include_headers: bool, object_id: str = ""
    ) -> dict[str, Any]:
        status, raw, headers = self._error_parts(error, object_id)
        return self._sub_answer(status, raw.decode(), include_headers, headers)

    # --- reads ----------------------------------------------------------------------------

    def _read_ids(self, call: _Call) -> dict[str, Any]:
        """GET /?ids=A,B: each object under the id it was asked by ([IDS])."""
        ids = _split_ids(call.query)
        if not ids:
            raise _GraphFailure(GraphError(code=100, message="(#100) Missing or invalid ids"))
        if len(ids) > IDS_LIMIT:
            raise _GraphFailure(
                GraphError(
                    code=100,
                    message=f"(#100) Too many IDs. Maximum: {IDS_LIMIT}. Provided: {len(ids)}.",
                )
            )
        missing = [
            object_id
            for object_id in ids
            if self._usernames.get(object_id, object_id) not in self._pages
            and object_id not in self._nodes
        ]
        if missing:
            # One missing id fails the whole read.
            text = f"(#100) Some of the aliases you requested do not exist: {','.join(missing)}"
            raise _GraphFailure(GraphError(code=100, message=text))
        return {
            object_id: self._read_node(call, self._usernames.get(object_id, object_id))
            for object_id in ids
        }

    def _debug_token(self, call: _Call) -> dict[str, Any]:
        """GET /debug_token?input_token=: what the token is and when it stops working."""
        input_token = call.query.get("input_token")
        if not input_token:
            message = "(#100) The parameter input_token is required"
            raise _GraphFailure(GraphError(code=100, message=message))
        if input_token != self.access_token:
            # [DEBUG]: an unknown token is answered inside `data`, not as an error.
            error = {"code": 190, "message": "Invalid OAuth access token."}
            return {"data": {"error": error, "is_valid": False, "scopes": []}}
        data: dict[str, Any] = {
            "app_id": self.app_id,
            "type": "PAGE",
            "application": self.app_name,
            "data_access_expires_at": self.data_access_expires_at,
            "expires_at": self.token_expires_at,
            "is_valid": self.token_valid,
            "issued_at": self.token_issued_at,
            "scopes": list(self.token_scopes),
            "user_id": "10000000000001",
        }
        if self._pages:
            data["profile_id"] = self.page_id
        return {"data": data}

    def _feed(self, call: _Call, object_id: str) -> dict[str, Any]:
        if object_id not in self._pages:
            if object_id in self._nodes:
                raise self._no_such_field(object_id, "feed")
            raise _GraphFailure(GraphError(code=100, subcode=33), object_id)
        query = call.query
        fields = _fields(query, "PagePost")
        limit = _limit(query)
        since, until = _int_param(query, "since"), _int_param(query, "until")
        # [FEED] newest first, filtered on the post's creation time.
        candidates = sorted(
            (
                node
                for node in self._nodes.values()
                if node.is_post
                and node.page_id == object_id
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
        body: dict[str, Any] = {
            "data": [self._render(call, node, fields, "PagePost") for node in page]
        }
        if not page:
            return body
        first, last = page[0], page[-1]
        paging: dict[str, str] = {
            "previous": _link(
                call,
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
                call,
                # Our own `since` from a previous-page link would cut off older posts.
                drop=("__previous", "since") if backwards else ("__previous",),
                set_={
                    "until": str(last.created),
                    "__paging_token": _encode_mark(last, prefix="enc_"),
                },
            )
        body["paging"] = paging
        return body

    def _read_node(self, call: _Call, object_id: str) -> dict[str, Any]:
        """GET /{id}: a Page (id, name) or one post or comment."""
        page = self._pages.get(object_id)
        if page is not None:
            full = {"id": page.id, "name": page.name}
            return _project(full, _fields(call.query, "Page"), "Page")
        node = self._nodes.get(object_id)
        if node is None:
            raise _GraphFailure(GraphError(code=100, subcode=33), object_id)  # [E100]
        node_type = "PagePost" if node.is_post else "Comment"
        return self._render(call, node, _fields(call.query, node_type), node_type)

    def _comments(self, call: _Call, object_id: str) -> dict[str, Any]:
        node = self._nodes.get(object_id)
        if node is None:
            if object_id in self._pages:
                raise self._no_such_field(object_id, "comments")
            raise _GraphFailure(GraphError(code=100, subcode=33), object_id)  # [E100]
        query = call.query
        fields = _fields(query, "Comment")
        limit = _limit(query)
        stream = _choice(query, "filter", ("toplevel", "stream")) == "stream"  # [EDGE]
        order = _choice(query, "order", ("chronological", "reverse_chronological"))
        items = self._comment_list(node, stream=stream, order=order)
        after, before = query.get("after"), query.get("before")
        if after is not None:
            mark = _decode_mark(after)
            page = [item for item in items if _comes_after(item.key, mark, order)][:limit]
        elif before is not None:
            mark = _decode_mark(before)
            page = [item for item in items if _comes_after(mark, item.key, order)][-limit:]
        else:
            page = items[:limit]
        body: dict[str, Any] = {
            "data": [self._render(call, item, fields, "Comment") for item in page]
        }
        if page:
            # [CURSOR]: cursors always; `next`/`previous` only when more data exists that way.
            first, last = page[0], page[-1]
            paging: dict[str, Any] = {
                "cursors": {"before": _encode_mark(first), "after": _encode_mark(last)}
            }
            if items.index(first) > 0:
                paging["previous"] = _link(
                    call, drop=("after",), set_={"before": _encode_mark(first)}
                )
            if items.index(last) < len(items) - 1:
                paging["next"] = _link(call, drop=("before",), set_={"after": _encode_mark(last)})
            body["paging"] = paging
        if query.get("summary") in ("true", "1"):
            body["summary"] = {"order": order, "total_count": len(items), "can_comment": True}
        return body

    def _expand_comments(self, call: _Call, post: _Node, request: _Field) -> dict[str, Any] | None:
        """The `comments` edge expanded inside a post ([FEED], [NESTED]); None when empty."""
        args = request.args
        fields = request.nested if request.nested is not None else _default_spec("Comment")
        limit = _limit(args)
        stream = _choice(args, "filter", ("toplevel", "stream")) == "stream"
        order = _choice(args, "order", ("chronological", "reverse_chronological"))
        items = self._comment_list(post, stream=stream, order=order)
        if not items:
            return None
        page = items[:limit]
        edge: dict[str, Any] = {
            "data": [self._render(call, item, fields, "Comment") for item in page]
        }
        paging: dict[str, Any] = {
            "cursors": {"before": _encode_mark(page[0]), "after": _encode_mark(page[-1])}
        }
        if len(items) > limit:
            # [NESTED]: the link carries limit and cursor only (and a query-string token, as
            # [FEED] links do), so whoever follows it must re-state filter, order and fields.
            query: dict[str, str] = {}
            if "access_token" in call.query:
                query["access_token"] = call.query["access_token"]
            query.update(limit=str(limit), after=_encode_mark(page[-1]))
            link = call.url.with_path(f"/{call.version}/{post.id}/comments").with_query(query)
            paging["next"] = str(link)
        edge["paging"] = paging
        if args.get("summary") in ("true", "1"):
            edge["summary"] = {"order": order, "total_count": len(items), "can_comment": True}
        return edge

    def _comment_list(self, node: _Node, *, stream: bool, order: str) -> list[_Node]:
        members = [
            other
            for other in self._nodes.values()
            if not other.is_post and self._belongs(other, node, stream=stream)
        ]
        return sorted(members, key=lambda other: other.key, reverse=order != "chronological")

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

    def _render(
        self, call: _Call, node: _Node, fields: FieldSpec, node_type: str
    ) -> dict[str, Any]:
        out = _project(self._full(node, shallow=False), fields, node_type)
        if "comment_count" in fields and not node.is_post:
            out["comment_count"] = sum(
                1 for other in self._nodes.values() if other.parent_id == node.id
            )
        comments = fields.get("comments")
        if comments is not None and node.is_post:
            edge = self._expand_comments(call, node, comments)
            if edge is not None:
                out["comments"] = edge
        return out

    def _full(self, node: _Node, *, shallow: bool) -> dict[str, Any]:
        """Every plain field the fake knows for a node; fields without a value are left out."""
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
            full["permalink_url"] = f"https://www.facebook.com/{node.page_id}/posts/{node.number}"
            for name in self._dropped.get(node.id, ()):
                full.pop(name, None)
            return full
        post = self._nodes.get(node.post_id)
        post_number = post.number if post is not None else 0
        permalink = f"https://www.facebook.com/{node.page_id}/posts/{post_number}?comment_id="
        parent = self._nodes.get(node.parent_id or "")
        if parent is not None and not parent.is_post:
            permalink += f"{parent.number}&reply_comment_id={node.number}"
            if not shallow:
                full["parent"] = self._full(parent, shallow=True)
        else:
            permalink += str(node.number)
        full["permalink_url"] = permalink
        full["like_count"] = 0
        for name in self._dropped.get(node.id, ()):
            full.pop(name, None)
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

    async def _platform_fault(self, fault: Fault, request: web.Request) -> web.StreamResponse:
        """A Graph error body, or 200 with broken JSON."""
        if isinstance(fault, GraphError):
            return self._error_response(fault, request.match_info.get("object_id", ""))
        return self._raw_json_response(_MALFORMED)

    def _truncated_sample(self, request: web.Request) -> tuple[bytes, str]:
        """A feed page to cut in half."""
        full = orjson.dumps({"data": [{"id": f"{self.page_id}_1", "message": "x" * 200}]})
        return full, "application/json"

    def _fault_headers(self, headers: dict[str, str]) -> dict[str, str]:
        """Graph's version, trace and usage headers, which the fake sends on every answer."""
        return self._common_headers(headers)

    def _error_parts(self, error: GraphError, object_id: str) -> tuple[int, bytes, dict[str, str]]:
        """Status, body and headers of a Graph error answer."""
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
        return error.status, orjson.dumps({"error": payload}), headers

    def _error_response(self, error: GraphError, object_id: str = "") -> web.Response:
        status, raw, headers = self._error_parts(error, object_id)
        return self._raw_json_response(raw, status, headers)

    def _json_response(self, body: Mapping[str, Any]) -> web.Response:
        return self._raw_json_response(orjson.dumps(body))

    def _raw_json_response(
        self, raw: bytes, status: int = 200, headers: dict[str, str] | None = None
    ) -> web.Response:
        return json_response(
            raw, status=status, charset="UTF-8", headers=self._common_headers(headers or {})
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

    def _default_page(self) -> _Page:
        if not self._pages:
            raise RuntimeError("FakeGraphApi serves no page yet; call add_page() first")
        return next(iter(self._pages.values()))

    def _node(self, object_id: str) -> _Node:
        return find(self._nodes, object_id, "post or comment")


# --- helpers ------------------------------------------------------------------------------


def _unix(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("created_time must be timezone-aware")
    return int(moment.timestamp())


def _wire_time(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime(WIRE_TIME_FORMAT)


def _trace_id() -> str:
    return "A" + secrets.token_urlsafe(16)[:22]


def _token(query: Mapping[str, str], authorization: str) -> str | None:
    """The access token of a request: `access_token=` in the query, else the header."""
    token = query.get("access_token")
    if token is None:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() in ("bearer", "oauth") and value.strip():
            token = value.strip()
    return token


def _sub_call(
    request: web.Request, version: str, relative: str, token: str | None, proof: str | None
) -> _Call:
    """A batch operation's relative_url as a call ("PAGE/feed?...", "v26.0/ID", "?ids=...")."""
    target = URL("/" + relative.lstrip("/"))
    segments = [segment for segment in target.path.split("/") if segment]
    if segments and _VERSION.match(segments[0]):
        version = segments.pop(0)
    path = f"/{version}/" + "/".join(segments)
    return _Call(
        url=request.url.with_path(path).with_query(target.query),
        path=path,
        version=version,
        segments=tuple(segments),
        query=target.query,
        # An operation may carry its own token; otherwise the batch's applies.
        token=target.query.get("access_token", token),
        proof=target.query.get("appsecret_proof", proof),
    )


def _batch_operations(raw: str | None) -> list[Mapping[str, Any]]:
    if raw is None:
        raise _GraphFailure(GraphError(code=100, message="(#100) The parameter batch is required"))
    try:
        operations = orjson.loads(raw)
    except orjson.JSONDecodeError:
        operations = None
    if not isinstance(operations, list) or not all(isinstance(op, dict) for op in operations):
        message = "(#100) The parameter batch must be a JSON array of objects"
        raise _GraphFailure(GraphError(code=100, message=message))
    if len(operations) > BATCH_LIMIT:
        message = f"(#1) Too many requests in batch message. Maximum batch size is {BATCH_LIMIT}"
        raise _GraphFailure(GraphError(code=1, message=message))
    return operations


def _version_number(version: str) -> tuple[int, int]:
    major, _, minor = version.removeprefix("v").partition(".")
    return int(major), int(minor or 0)


def _split_ids(query: Mapping[str, str]) -> list[str]:
    return [part.strip() for part in query.get("ids", "").split(",") if part.strip()]


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


def _link(call: _Call, *, drop: tuple[str, ...], set_: Mapping[str, str]) -> str:
    """The absolute URL of this call with some parameters replaced, as Graph builds paging."""
    query: MultiDict[str] = MultiDict(
        (key, value) for key, value in call.query.items() if key not in drop and key not in set_
    )
    query.extend(set_)
    return str(call.url.with_query(query))


def _default_spec(node_type: str) -> FieldSpec:
    return {name: _Field() for name in _DEFAULT_FIELDS[node_type]}


def _fields(query: Mapping[str, str], node_type: str) -> FieldSpec:
    spec = query.get("fields")
    if not spec:
        return _default_spec(node_type)
    parsed, _ = _parse_fields(spec, 0)
    _check_fields(parsed, node_type)
    return parsed


def _check_fields(fields: FieldSpec, node_type: str) -> None:
    """Reject unknown fields and modifiers up front, as Graph does even for empty results."""
    known = _KNOWN_FIELDS[node_type]
    for name, requested in fields.items():
        if name not in known:
            raise _GraphFailure(
                GraphError(
                    code=100,
                    message=f"(#100) Tried accessing nonexisting field ({name}) on node type"
                    f" ({node_type})",
                )
            )
        edge = _EDGE_FIELDS.get((node_type, name))
        allowed = edge[1] if edge is not None else frozenset()
        for modifier in requested.args:
            if modifier not in allowed:
                message = f"(#100) Unknown modifier ({modifier}) on field ({name})"
                raise _GraphFailure(GraphError(code=100, message=message))
        if requested.nested is None:
            continue
        if edge is not None:
            _check_fields(requested.nested, edge[0])
        elif name in _NESTED_TYPE:
            _check_fields(requested.nested, _NESTED_TYPE[name])


def _parse_fields(spec: str, pos: int) -> tuple[FieldSpec, int]:
    """Parse `id,from{id,name},comments.limit(5){id}` into fields with nesting and modifiers."""
    fields: FieldSpec = {}
    token = ""
    nested: FieldSpec | None = None
    depth = 0  # inside a modifier's parentheses, commas and braces are plain characters
    while pos < len(spec):
        char = spec[pos]
        if depth:
            depth += (char == "(") - (char == ")")
            token += char
        elif char == "(":
            depth = 1
            token += char
        elif char == "{":
            nested, pos = _parse_fields(spec, pos + 1)
            continue
        elif char == "}":
            _add_field(fields, token, nested)
            return fields, pos + 1
        elif char == ",":
            _add_field(fields, token, nested)
            token, nested = "", None
        else:
            token += char
        pos += 1
    _add_field(fields, token, nested)
    return fields, pos


def _add_field(fields: FieldSpec, token: str, nested: FieldSpec | None) -> None:
    """Add `name.mod(arg).mod(arg)` (with its nested fields) to `fields`."""
    token = token.strip()
    if not token:
        return
    name, dot, rest = token.partition(".")
    args: dict[str, str] = {}
    position = 0
    chain = dot + rest
    for match in _MODIFIER.finditer(chain):
        if match.start() != position:
            break
        args[match.group(1)] = match.group(2).strip()
        position = match.end()
    if position != len(chain):
        message = f"(#100) Syntax error in fields at: {token}"
        raise _GraphFailure(GraphError(code=100, message=message))
    fields[name.strip()] = _Field(nested=nested, args=args)


def _project(full: Mapping[str, Any], fields: FieldSpec, node_type: str) -> dict[str, Any]:
    """Keep the requested (already checked) plain fields, and the id always, as Graph does."""
    out: dict[str, Any] = {}
    for name, requested in fields.items():
        if name not in full:
            continue
        value = full[name]
        if name in _NESTED_TYPE:
            nested_type = _NESTED_TYPE[name]
            spec = requested.nested if requested.nested is not None else _default_spec(nested_type)
            value = _project(value, spec, nested_type)
        out[name] = value
    if "id" in full:
        out.setdefault("id", full["id"])
    return out
