"""The batch endpoint ([BATCH]): many Graph calls in one POST, answered in request order."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web
from yarl import URL

from monitor.simulator.base import Delay, Disconnect, HttpStatus, MalformedJson, TruncatedBody
from monitor.simulator.graph_api.errors import (
    _MALFORMED,
    GraphError,
    _GraphFailure,
    _unknown_path_error,
)
from monitor.simulator.graph_api.model import _VERSION, BATCH_LIMIT, _Call, _token
from monitor.simulator.graph_api.server import GraphServer


class GraphBatches(GraphServer):
    """Batch POSTs: each operation is a call of its own, with its own faults and errors."""

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
