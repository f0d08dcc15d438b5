"""The fake Mastodon over HTTP: routes, tokens and scopes, the rate limit, Link headers, faults."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from monitor.simulator import base
from monitor.simulator.base import Delay, Disconnect, HttpStatus, MalformedJson, TruncatedBody
from monitor.simulator.mastodon.model import (
    NOTIFICATIONS_LIMIT,
    STATUSES_LIMIT,
    Account,
    Notification,
    RecordedRequest,
    Status,
)
from monitor.simulator.mastodon.store import MastodonStore
from monitor.simulator.mastodon.streaming import StreamingApi

T = TypeVar("T")

# [ERRORS] The JSON bodies of Api::BaseController's rescues and Doorkeeper's renders.
INVALID_TOKEN = "The access token is invalid"
OUTSIDE_SCOPES = "This action is outside the authorized scopes"
NOT_FOUND = "Record not found"
NO_ROUTE = "The page you are looking for isn't here."
TOO_MANY = "Too many requests"


@dataclass(frozen=True, kw_only=True)
class Throttled:
    """[429] Rack::Attack's throttled_responder: the window's headers, no Retry-After."""


Fault = Throttled | HttpStatus | Delay | MalformedJson | TruncatedBody | Disconnect


class _Answer(Exception):
    """Raised inside a handler to answer `{"error": message}` with a status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class FakeMastodon(MastodonStore, base.FakeServer[Fault]):
    """A scriptable fake of one Mastodon server, served over real HTTP (`start()`, `base_url`)."""

    def __init__(self, **store: Any) -> None:
        super().__init__(**store)
        # [STREAM] `streaming.enabled = False` answers 404, as a server without streaming.
        self.streaming = StreamingApi(lambda: self.base_url)

    def _published(self, event: str, subject: Status | Notification) -> None:
        self.streaming.publish(event, subject)

    async def _on_shutdown(self, app: web.Application) -> None:
        self.streaming.drop_all()  # open streams end now, not after the shutdown timeout
        await super()._on_shutdown(app)

    # Times come from `clock` (a FakeClock in tests): the rate-limit window and its reset follow
    # the fake clock, as the source's own clock does.

    def _middlewares(self) -> list[Middleware]:
        return [self._serve]

    def _routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/api/v1/accounts/lookup", self._get_lookup)
        router.add_get("/api/v1/accounts/{id}/statuses", self._get_account_statuses)
        router.add_get("/api/v1/timelines/tag/{hashtag}", self._get_tag_timeline)
        router.add_get("/api/v1/notifications", self._get_notifications)
        router.add_get("/api/v1/statuses/{id}/context", self._get_context)
        router.add_get("/api/v1/statuses/{id}", self._get_status)
        router.add_get("/api/v1/instance", self._get_instance)
        router.add_get("/api/v2/instance", self._get_instance_v2)
        router.add_get("/api/v1/streaming/health", self.streaming.health)
        router.add_get("/api/v1/streaming/hashtag", self._get_hashtag_stream)
        router.add_get("/api/v1/streaming/user/notification", self._get_notification_stream)
        router.add_route("*", "/{tail:.*}", self._unknown)

    # --- request pipeline ---------------------------------------------------------------------

    @web.middleware
    async def _serve(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        at = self.clock.now()
        status = 0
        token = _bearer(request)
        if request.path.startswith("/api/v1/streaming"):
            # [STREAM] The streaming server: no request limit, no faults; recorded all the same.
            self.requests.append(RecordedRequest(request.path, (), at, 200, token))
            try:
                return await handler(request)
            except _Answer as answer:
                return _error(answer.status, answer.message, {})
        try:
            with self._counted():
                response = await self._answer(request, handler, token)
            status = response.status
            return response
        finally:
            query = tuple((k, v) for k, v in request.query.items())
            self.requests.append(RecordedRequest(request.path, query, at, status, token))

    async def _answer(
        self, request: web.Request, handler: Handler, token: str | None
    ) -> web.StreamResponse:
        limit_headers, over = self._count(token)
        fault = await self._faulted(request)
        if fault is not None:
            return fault
        if over:
            return _error(429, TOO_MANY, limit_headers)
        try:
            response = await handler(request)
        except _Answer as answer:
            return _error(answer.status, answer.message, limit_headers)
        response.headers.update(limit_headers)
        return response

    def _count(self, token: str | None) -> tuple[dict[str, str], bool]:
        """[RATE] One more request in this window for the token (or the address)."""
        now = self.clock.now()
        epoch = int(now.timestamp())
        window = epoch // self.rate_period
        key = (f"token:{token}" if token else "ip", window)
        self.rate_windows[key] = count = self.rate_windows.get(key, 0) + 1
        return self._limit_headers(now, self.rate_limit - count), count > self.rate_limit

    def _limit_headers(self, now: datetime, remaining: int) -> dict[str, str]:
        """[RATE] X-RateLimit-Limit, -Remaining and -Reset (the window's end, iso8601(6))."""
        epoch = int(now.timestamp())
        reset = datetime.fromtimestamp(epoch - epoch % self.rate_period, UTC) + timedelta(
            seconds=self.rate_period
        )
        return {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(max(remaining, 0)),
            "X-RateLimit-Reset": reset.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }

    def _viewer(self, request: web.Request, scope: str | None, *, required: bool) -> Account | None:
        """[AUTH] The token's account; 401 for a bad token, 403 for a missing scope."""
        token = _bearer(request)
        if token is None:
            if required:
                raise _Answer(401, INVALID_TOKEN)  # doorkeeper_authorize! without a token
            return None
        if self.token_revoked or token != self.access_token:
            raise _Answer(401, INVALID_TOKEN)
        # [SCOPES] authorize_if_got_token!: a token, when sent, must carry the scope (or "read").
        if scope is not None and not ({scope, "read"} & self.scopes):
            raise _Answer(403, OUTSIDE_SCOPES)
        return self.owner

    # --- handlers -----------------------------------------------------------------------------

    async def _get_lookup(self, request: web.Request) -> web.StreamResponse:
        """[LOOKUP] GET /api/v1/accounts/lookup?acct=: the Account, or 404."""
        self._viewer(request, "read:accounts", required=False)
        account = self.find_account(request.query.get("acct", ""))
        if account is None:
            raise _Answer(404, NOT_FOUND)
        return _json(account.to_json(self._base(request)))

    async def _get_account_statuses(self, request: web.Request) -> web.StreamResponse:
        """[ACCOUNT_STATUSES] GET /api/v1/accounts/:id/statuses, boosts included by default."""
        viewer = self._viewer(request, "read:statuses", required=False)
        account = self.account_by_id(request.match_info["id"])
        if account is None:
            raise _Answer(404, NOT_FOUND)
        q = request.query
        statuses = self.account_statuses(
            account,
            viewer,
            replies=not _truthy(q.get("exclude_replies")),
            reblogs=not _truthy(q.get("exclude_reblogs")),
        )
        rows, limit = _paginate(statuses, q, STATUSES_LIMIT)
        keep = _kept(q, ("limit", "only_media", "exclude_replies", "exclude_reblogs"))
        # records_continue?: a next link only after a full page.
        return self._statuses_page(request, rows, keep, more=len(rows) == limit)

    async def _get_tag_timeline(self, request: web.Request) -> web.StreamResponse:
        """[TAG] GET /api/v1/timelines/tag/:hashtag; Link headers unless the page is empty."""
        self._viewer(request, "read:statuses", required=False)
        statuses = self.tag_timeline(request.match_info["hashtag"])
        rows, _ = _paginate(statuses, request.query, STATUSES_LIMIT)
        keep = _kept(request.query, ("local", "limit", "only_media"))
        return self._statuses_page(request, rows, keep, more=True)

    async def _get_notifications(self, request: web.Request) -> web.StreamResponse:
        """[NOTE] GET /api/v1/notifications, `types[]` and `exclude_types[]` filters."""
        self._viewer(request, "read:notifications", required=True)
        q = request.query
        found = self.notifications(
            set(q.getall("types[]", [])), set(q.getall("exclude_types[]", []))
        )
        rows, _ = _paginate(found, q, NOTIFICATIONS_LIMIT, ident=lambda n: int(n.id))
        base_url = self._base(request)
        response = _json([n.to_json(base_url) for n in rows])
        keep = _kept(q, ("limit", "types[]", "exclude_types[]", "account_id"))
        link = _link(request, [n.id for n in rows], keep, more=True)
        if link:
            response.headers["Link"] = link
        return response

    async def _get_status(self, request: web.Request) -> web.StreamResponse:
        """[STATUS] GET /api/v1/statuses/:id: 404 once deleted."""
        viewer = self._viewer(request, "read:statuses", required=False)
        status = self.status(request.match_info["id"], viewer)
        if status is None:
            raise _Answer(404, NOT_FOUND)
        return _json(status.to_json(self._base(request)))

    async def _get_context(self, request: web.Request) -> web.StreamResponse:
        """[CONTEXT] GET /api/v1/statuses/:id/context: {"ancestors", "descendants"}."""
        viewer = self._viewer(request, "read:statuses", required=False)
        status = self.status(request.match_info["id"], viewer)
        if status is None:
            raise _Answer(404, NOT_FOUND)
        ancestors, descendants = self.context(status, viewer)
        base_url = self._base(request)
        return _json(
            {
                "ancestors": [s.to_json(base_url) for s in ancestors],
                "descendants": [s.to_json(base_url) for s in descendants],
            }
        )

    async def _get_instance(self, request: web.Request) -> web.StreamResponse:
        """[INSTANCE] GET /api/v1/instance: the server, and where its streaming API is."""
        origin = request.url.origin()
        return _json(
            {
                "uri": origin.host,
                "title": "Fake Mastodon",
                "version": "4.3.0",
                "urls": {"streaming_api": str(origin.with_scheme("ws"))},
            }
        )

    async def _get_instance_v2(self, request: web.Request) -> web.StreamResponse:
        """[INSTANCE] GET /api/v2/instance (4.0+): the streaming server under configuration."""
        if not self.streaming.instance_v2:
            raise _Answer(404, NO_ROUTE)
        origin = request.url.origin()
        return _json(
            {
                "domain": origin.host,
                "title": "Fake Mastodon",
                "version": "4.3.0",
                "configuration": {"urls": {"streaming": str(origin.with_scheme("ws"))}},
            }
        )

    async def _get_hashtag_stream(self, request: web.Request) -> web.StreamResponse:
        """[STREAM] GET /api/v1/streaming/hashtag?tag=: public statuses with the tag."""
        if not self.streaming.enabled:
            raise _Answer(404, NO_ROUTE)
        self._viewer(request, "read:statuses", required=False)
        tag = request.query.get("tag", "").strip()
        if not tag:
            raise _Answer(400, "No tag for stream provided")
        return await self.streaming.serve(request, "hashtag", tag)

    async def _get_notification_stream(self, request: web.Request) -> web.StreamResponse:
        """[STREAM] GET /api/v1/streaming/user/notification: the token owner's notifications."""
        if not self.streaming.enabled:
            raise _Answer(404, NO_ROUTE)
        self._viewer(request, "read:notifications", required=True)
        return await self.streaming.serve(request, "user/notification", None)

    async def _unknown(self, request: web.Request) -> web.StreamResponse:
        raise _Answer(404, NO_ROUTE)

    # --- responses ----------------------------------------------------------------------------

    def _statuses_page(
        self, request: web.Request, rows: list[Status], keep: list[tuple[str, str]], *, more: bool
    ) -> web.Response:
        response = _json([s.to_json(self._base(request)) for s in rows])
        link = _link(request, [s.id for s in rows], keep, more=more)
        if link:
            response.headers["Link"] = link
        return response

    def _base(self, request: web.Request) -> str:
        return str(request.url.origin())

    async def _platform_fault(self, fault: Fault, request: web.Request) -> web.StreamResponse:
        """[429] a throttle whatever the count: remaining 0 until the window's end."""
        return _error(429, TOO_MANY, self._limit_headers(self.clock.now(), 0))

    def _truncated_sample(self, request: web.Request) -> tuple[bytes, str]:
        return orjson.dumps([{"id": "1", "content": "x" * 300}]), "application/json"


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    return header[7:] if header.startswith("Bearer ") else None


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "t", "on")


def _paginate(
    items: Sequence[T],
    query: Any,
    default: int,
    ident: Callable[[T], int] = lambda s: int(s.id),  # type: ignore[attr-defined]
) -> tuple[list[T], int]:
    """[PAGE] paginate_by_id: max_id/since_id bound the page; min_id takes the oldest after it."""
    raw_limit = query.get("limit")
    # [LIMIT] limit_param: the default without one, else at most twice the default.
    limit = (
        min(abs(int(raw_limit)), default * 2)
        if raw_limit and raw_limit.lstrip("-").isdigit()
        else default
    )
    bounds = {
        key: int(query[key])
        for key in ("max_id", "since_id", "min_id")
        if query.get(key, "").isdigit()
    }
    rows = [
        item
        for item in items
        if ("max_id" not in bounds or ident(item) < bounds["max_id"])
        and ("since_id" not in bounds or ident(item) > bounds["since_id"])
        and ("min_id" not in bounds or ident(item) > bounds["min_id"])
    ]
    # min_id pages upward from it (the oldest newer ones), still sent newest first.
    page = rows[-limit:] if "min_id" in bounds else rows[:limit]
    return (page if limit else []), limit


def _kept(query: Any, names: Sequence[str]) -> list[tuple[str, str]]:
    """[LINK] pagination_params: the parameters a Link repeats besides the ids."""
    return [(name, value) for name in names for value in query.getall(name, [])]


def _link(request: web.Request, ids: list[str], keep: list[tuple[str, str]], *, more: bool) -> str:
    """[LINK] `<...max_id=last>; rel="next", <...min_id=first>; rel="prev"`; none when empty."""
    if not ids:
        return ""
    here = request.url.with_query(None)
    links = []
    if more:
        links.append(f'<{here.with_query([*keep, ("max_id", ids[-1])])}>; rel="next"')
    links.append(f'<{here.with_query([*keep, ("min_id", ids[0])])}>; rel="prev"')
    return ", ".join(links)


def _json(body: Any) -> web.Response:
    return base.json_response(orjson.dumps(body), charset="utf-8")


def _error(status: int, message: str, headers: dict[str, str]) -> web.Response:
    return base.json_response(
        orjson.dumps({"error": message}), status=status, charset="utf-8", headers=headers
    )
