"""The fake Discourse over HTTP: routes, authentication, the admin API limit, faults."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware

from monitor.simulator import base
from monitor.simulator.discourse.errors import (
    INVALID_CREDENTIALS,
    NOT_FOUND,
    NOT_LOGGED_IN,
    DiscourseError,
    Fault,
    IpRateLimit,
    NginxRateLimit,
    RateLimit,
    _Answer,
    _error,
    _rate_limited,
    _RateLimited,
    _raw_json,
    _Reply,
)
from monitor.simulator.discourse.model import RecordedRequest
from monitor.simulator.discourse.topics import DiscourseTopics


class FakeDiscourse(DiscourseTopics, base.FakeServer[Fault]):
    """A scriptable fake of one Discourse site, served over real HTTP (`start()`, `base_url`)."""

    # Times come from `clock` (a FakeClock in tests) so request counts per minute and the
    # built-in admin API limit follow the fake clock.

    # --- server lifecycle ---------------------------------------------------------------------

    def _middlewares(self) -> list[Middleware]:
        """Every request is recorded with its answer's status."""
        return [self._record]

    def _routes(self, router: web.UrlDispatcher) -> None:
        """Topic lists, category lists, topics and their posts."""
        router.add_get("/latest", self._latest)
        router.add_get("/latest.json", self._latest)
        router.add_get("/c/{path:.+}", self._category)
        router.add_get("/t/{topic_id:\\d+}/posts.json", self._topic_posts)
        router.add_get("/t/{topic_id:\\d+}.json", self._topic_show)
        router.add_get("/t/{topic_id:\\d+}", self._topic_show)
        router.add_get("/t/{slug}/{topic_id:\\d+}.json", self._topic_show)
        router.add_get("/t/{slug}/{topic_id:\\d+}", self._topic_show)
        router.add_route("*", "/{tail:.*}", self._unknown)

    # --- request pipeline ---------------------------------------------------------------------

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        at = self.clock.now()
        status = 0
        try:
            with self._counted():
                response: web.StreamResponse = await self._serve(request, handler)
            status = response.status
            return response
        finally:
            query = tuple((k, v) for k, v in request.query.items())
            self.requests.append(RecordedRequest(request.path, query, at, status))

    async def _serve(self, request: web.Request, handler: Any) -> web.StreamResponse:
        response = await self._faulted(request)
        if response is not None:
            return response
        try:
            self._authenticate(request)
            result: web.StreamResponse = await handler(request)
        except _RateLimited as limited:
            return _rate_limited(limited.wait, header="seconds", code="admin_api_key_rate_limit")
        except _Answer as answer:
            return _error(answer.status, answer.error_type, answer.message)
        except _Reply as reply:
            return reply.response
        return result

    def _authenticate(self, request: web.Request) -> None:
        key = request.headers.get("Api-Key")
        if key is None:
            if self.login_required:
                raise _Answer(403, "not_logged_in", NOT_LOGGED_IN)  # [LOGIN]
            return  # an anonymous visitor; not subject to the admin API limit
        username = request.headers.get("Api-Username", "")
        user = self._user_by_name(username)
        if self.key_revoked or key != self.api_key or user is None:
            raise _Answer(403, "invalid_access", INVALID_CREDENTIALS)  # [AUTH]
        if self._limiter is not None:
            wait = self._limiter.wait_seconds(self.clock.now())
            if wait:
                raise _RateLimited(wait)

    async def _unknown(self, request: web.Request) -> web.StreamResponse:
        raise _Answer(404, "not_found", NOT_FOUND)

    # --- faults, delays and responses ---------------------------------------------------------

    async def _platform_fault(self, fault: Fault, request: web.Request) -> web.StreamResponse:
        """Discourse's and its proxies' rate limits, its JSON errors, broken JSON."""
        if isinstance(fault, RateLimit):
            return _rate_limited(
                fault.wait_seconds,
                header=fault.retry_after,
                code=fault.error_code,
                now=self.clock.now(),
            )
        if isinstance(fault, IpRateLimit):
            text = (
                "Slow down, too many requests from this IP address.\n"
                f"Please retry again in {fault.wait_seconds} seconds.\n"
                f"Error code: {fault.error_code}.\n"
            )
            headers = {
                "Retry-After": str(fault.wait_seconds),
                "Discourse-Rate-Limit-Error-Code": fault.error_code,
            }
            return web.Response(status=429, text=text, content_type="text/plain", headers=headers)
        if isinstance(fault, NginxRateLimit):
            html = (
                "<html>\r\n<head><title>429 Too Many Requests</title></head>\r\n<body>\r\n"
                "<center><h1>429 Too Many Requests</h1></center>\r\n<hr><center>nginx</center>\r\n"
                "</body>\r\n</html>\r\n"
            )
            return web.Response(status=429, text=html, content_type="text/html")
        if isinstance(fault, DiscourseError):
            return _error(fault.status, fault.error_type, fault.message)
        # A cut-and-pasted object with a trailing comma: what a broken proxy might send.
        return _raw_json(b'{"topic_list": {"topics": [{"id": 1,},]}}')

    def _truncated_sample(self, request: web.Request) -> tuple[bytes, str]:
        """A topic list to cut in half."""
        full = orjson.dumps({"topic_list": {"topics": [{"id": 1, "title": "x" * 300}]}})
        return full, "application/json"
