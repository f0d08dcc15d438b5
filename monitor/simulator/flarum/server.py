"""The fake Flarum API over HTTP: routes, authentication ([AUTH]), endpoints, faults."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from monitor.simulator.base import FakeServer, Throttle, json_response
from monitor.simulator.flarum.document import _Document
from monitor.simulator.flarum.errors import _FAILURE_CODES, Fault, FlarumError, _ApiFailure
from monitor.simulator.flarum.model import JSON_API, RecordedRequest
from monitor.simulator.flarum.query import (
    _LIST_DISCUSSION_DEFAULT,
    _LIST_DISCUSSION_INCLUDES,
    _POST_DEFAULT,
    _POST_INCLUDES,
    _SHOW_DISCUSSION_DEFAULT,
    _SHOW_DISCUSSION_INCLUDES,
    _USER_INCLUDES,
    _includes,
    _nested_query,
    _page,
    _page_link,
    _sort,
)
from monitor.simulator.flarum.store import FlarumStore


class FakeFlarum(FlarumStore, FakeServer[Fault]):
    """A scriptable fake Flarum forum served over real HTTP (`base_url` is the forum root)."""

    # The API is under `/api`. `public_url` is the forum URL Flarum believes it has (its
    # config.php `url`), used in pagination links and mentions; by default the address the fake
    # listens on.

    # --- server lifecycle -----------------------------------------------------------------

    def _routes(self, router: web.UrlDispatcher) -> None:
        """The API's read endpoints; any other path is answered route_not_found."""
        router.add_get("/api/discussions", self._handle)
        router.add_get("/api/discussions/{id}", self._handle)
        router.add_get("/api/posts", self._handle)
        router.add_get("/api/users/{id}", self._handle)
        router.add_route("*", "/{tail:.*}", self._handle)

    @property
    def forum_url(self) -> str:
        """The URL the forum believes it has (links and mentions are built on it)."""
        return self.public_url or self.base_url

    # --- request handling -----------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(
            RecordedRequest(request.path, dict(request.query), "Authorization" in request.headers)
        )
        with self._counted():
            return await self._serve(request)

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        response = await self._faulted(request)
        if response is not None:
            return response
        try:
            actor = self._actor(request)
            body = self._route(request, actor)
        except _ApiFailure as failure:
            return self._error_response(failure.error)
        return self._json_response(body)

    def _route(self, request: web.Request, actor: int | None) -> dict[str, Any]:
        route = request.match_info.route.resource
        canonical = route.canonical if route is not None else ""
        if request.method != "GET":
            raise _ApiFailure(405, "method_not_allowed")  # this fake serves reads only
        query = _nested_query(request.query)
        if canonical == "/api/discussions":
            return self._list_discussions(query, actor)
        if canonical == "/api/discussions/{id}":
            return self._show_discussion(request.match_info["id"], query, actor)
        if canonical == "/api/posts":
            return self._list_posts(query, actor)
        if canonical == "/api/users/{id}":
            return self._show_user(request.match_info["id"], query, actor)
        raise _ApiFailure(404, "route_not_found")  # [ERR]

    def _actor(self, request: web.Request) -> int | None:
        """The user the request acts as, or None for a guest [AUTH]."""
        parts = request.headers.get("Authorization", "").split(";")
        if not parts[0].startswith("Token "):
            return None
        key = parts[0][len("Token ") :]
        if self.api_key is None or key != self.api_key or self._revoked == "guest":
            return None  # unknown keys are ignored, not rejected [AUTH]
        if self._revoked == "401":
            raise _ApiFailure(401, "not_authenticated")
        if self.key_user_id is not None:
            return self.key_user_id
        name, _, value = (parts[1] if len(parts) > 1 else "").strip().partition("=")
        if name == "userId" and value.strip().isdigit() and int(value) in self._users:
            return int(value)
        return None

    # --- endpoints ------------------------------------------------------------------------

    def _list_discussions(self, query: dict[str, Any], actor: int | None) -> dict[str, Any]:
        """GET /api/discussions [LIST-DISC]."""
        includes = _includes(query, _LIST_DISCUSSION_INCLUDES, _LIST_DISCUSSION_DEFAULT)
        field_name, descending = _sort(query, ("lastPostedAt", "commentCount", "createdAt"))
        limit, offset = _page(query)
        filters = query.get("filter")
        candidates = [d for d in self._discussions.values() if self._can_see_discussion(d, actor)]
        tag_filter = filters.get("tag") if isinstance(filters, dict) else None
        if isinstance(tag_filter, str) and tag_filter:
            # flarum/tags: comma-separated slugs, any of them matches.
            slugs = set(tag_filter.strip('"').split(","))
            wanted = {t.id for t in self._tags.values() if t.slug in slugs}
            candidates = [d for d in candidates if wanted & set(d.tag_ids)]
        if field_name is None:
            field_name, descending = "lastPostedAt", True
        candidates.sort(key=lambda d: (self._sort_value(d, field_name), d.id), reverse=descending)
        page = candidates[offset : offset + limit]
        doc = _Document(self, actor)
        data = [doc.discussion(d, includes) for d in page]
        more = offset + limit < len(candidates)
        return doc.finish(data, links=self._links("/api/discussions", query, offset, limit, more))

    def _show_discussion(
        self, raw_id: str, query: dict[str, Any], actor: int | None
    ) -> dict[str, Any]:
        """GET /api/discussions/{id} [SHOW-DISC]."""
        includes = _includes(query, _SHOW_DISCUSSION_INCLUDES, _SHOW_DISCUSSION_DEFAULT)
        limit, offset = _page(query)
        discussion = self._discussions.get(int(raw_id)) if raw_id.isdigit() else None
        if discussion is None or not self._can_see_discussion(discussion, actor):
            raise _ApiFailure(404, "not_found")
        self._fail_if_failing(discussion.id)
        doc = _Document(self, actor)
        data = doc.discussion(discussion, includes, posts_window=(offset, limit))
        return doc.finish(data)

    def _list_posts(self, query: dict[str, Any], actor: int | None) -> dict[str, Any]:
        """GET /api/posts [LIST-POST] with the filters of [VIS]'s ListTest."""
        includes = _includes(query, _POST_INCLUDES, _POST_DEFAULT)
        field_name, descending = _sort(query, ("number", "createdAt"))
        limit, offset = _page(query)
        filters = query.get("filter")
        posts = [p for p in self._posts.values() if self._can_see_post(p, actor)]
        if isinstance(filters, dict):
            posts = [p for p in posts if self._matches(p, filters)]
            wanted = filters.get("discussion")
            if isinstance(wanted, str) and wanted.isdigit():
                self._fail_if_failing(int(wanted))
        if field_name is None:
            posts.sort(key=lambda p: p.id)
        else:
            posts.sort(
                key=lambda p: (p.number if field_name == "number" else p.created_at, p.id),
                reverse=descending,
            )
        page = posts[offset : offset + limit]
        doc = _Document(self, actor)
        data = [doc.post(p, includes) for p in page]
        more = offset + limit < len(posts)
        return doc.finish(data, links=self._links("/api/posts", query, offset, limit, more))

    def _fail_if_failing(self, discussion_id: int) -> None:
        """[FAIL]: the JSON:API error of a discussion set to fail."""
        status = self._failing.get(discussion_id)
        if status is not None:
            raise _ApiFailure(status, _FAILURE_CODES[status])

    def _show_user(self, raw_id: str, query: dict[str, Any], actor: int | None) -> dict[str, Any]:
        """GET /api/users/{id}: UserSerializer [SER-USER]."""
        includes = _includes(query, _USER_INCLUDES, ("groups",))
        user = self._users.get(int(raw_id)) if raw_id.isdigit() else None
        if user is None or not self._can_view_forum(actor):
            raise _ApiFailure(404, "not_found")
        doc = _Document(self, actor)
        return doc.finish(doc.user(user, "groups" in includes))

    # --- links [PAGE] ---------------------------------------------------------------------

    def _links(
        self, path: str, query: dict[str, Any], offset: int, limit: int, more: bool
    ) -> dict[str, str]:
        url = f"{self.forum_url}{path}"
        links = {"first": _page_link(url, query, 0, limit)}
        if offset > 0:
            links["prev"] = _page_link(url, query, max(0, offset - limit), limit)
        if more:
            links["next"] = _page_link(url, query, offset + limit, limit)
        return links

    # --- faults, delays and responses -----------------------------------------------------

    async def _platform_fault(self, fault: Fault, request: web.Request) -> web.StreamResponse:
        """Flarum's JSON:API errors and throttles, or a PHP notice before the JSON."""
        if isinstance(fault, FlarumError):
            return self._error_response(fault)
        if isinstance(fault, Throttle):
            # [FLOOD] ThrottleApi's 429, [MAINT] the maintenance 503; Retry-After from a proxy.
            code = "too_many_requests" if fault.status == 429 else "maintenance"
            headers = fault.headers(self._now())
            return self._error_response(
                FlarumError(status=fault.status, code=code, headers=headers)
            )
        # A PHP notice printed before the JSON, as a misconfigured extension can cause.
        raw = b'<br />\n<b>Deprecated</b>: ...<br />\n{"data": []}'
        return web.Response(body=raw, content_type=JSON_API)

    def _truncated_sample(self, request: web.Request) -> tuple[bytes, str]:
        """A page of posts to cut in half."""
        full = orjson.dumps({"data": [{"type": "posts", "id": "1", "attributes": {}}] * 20})
        return full, JSON_API

    def _error_response(self, error: FlarumError) -> web.Response:
        entry: dict[str, str] = {"status": str(error.status), "code": error.code}  # [ERR]
        if error.detail is not None:
            entry["detail"] = error.detail
        return json_response(
            orjson.dumps({"errors": [entry]}),
            status=error.status,
            content_type=JSON_API,
            headers=error.headers,
        )

    def _json_response(self, body: Mapping[str, Any]) -> web.Response:
        return json_response(orjson.dumps(body), content_type=JSON_API)
