"""The fake Graph API over HTTP: routes, request counting, faults and Graph-shaped responses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from monitor.simulator.base import FakeServer, json_response
from monitor.simulator.graph_api.errors import (
    _MALFORMED,
    _REAL_ERRORS,
    Fault,
    GraphError,
    _GraphFailure,
    _trace_id,
    _unknown_path_error,
)
from monitor.simulator.graph_api.model import RecordedRequest, _Call, _split_ids, _token
from monitor.simulator.graph_api.reads import GraphReads


class GraphServer(GraphReads, FakeServer[Fault]):
    """GET reads on a real aiohttp server, with Graph's headers on every answer."""

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

    async def _serve_batch(self, request: web.Request) -> web.StreamResponse:
        """A batch POST ([BATCH]): see GraphBatches."""
        raise NotImplementedError

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
