"""Edge validation: every request's input is checked once, and every refusal is one log line.

Handlers read their input through the helpers here (path ids, bodies, forms, JSON, text and
token fields) and refuse with `Refusal`, or raise aiohttp's own 4xx exceptions. The `edge`
middleware is the one place that turns them into answers: each refusal becomes a 4xx with a
one-line reason, is counted in `webcare_http_rejected_total{endpoint,reason}` and is logged
once at warning, without a traceback. A client that goes away mid-request is one debug line.
Anything else escaping a handler is a bug of ours: logged with its traceback and answered 500.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Any, TypeVar

import orjson
from aiohttp import web
from multidict import MultiDictProxy

from monitor.logging import get_logger
from monitor.web.keys import METRICS

log = get_logger("monitor.web.edge")

# Item ids are SQL integers (64-bit, signed): anything larger names no item.
MAX_ITEM_ID = 2**63 - 1
# A client has this long to send a request body once its headers arrived (slow uploads hold a
# connection and a handler otherwise).
BODY_TIMEOUT_SECONDS = 30.0
# Names people type ("by", tokens shown back) fit a database column of 200 characters.
MAX_TEXT_CHARS = 200
# Log lines show at most this much of a refusal's reason.
_DETAIL_CHARS = 200

# The `reason` label by status when the refusal does not name one (a fixed, small set).
_REASONS = {
    400: "invalid",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "timeout",
    409: "conflict",
    411: "invalid",
    413: "too_large",
    415: "invalid",
    431: "too_large",
}
# Paths that answer HTML (the queue page, its forms and the signed links): refusals there
# are pages too; /api/ answers JSON and everything else plain text.
_HTML_PREFIXES = ("/items/", "/act/")
_HTML_PATHS = frozenset({"/", "/login", "/logout"})
_NO_STORE = {"Cache-Control": "no-store"}

_T = TypeVar("_T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Refusal(Exception):
    """A request refused at the edge: `status` (4xx), a one-line `message`, a `reason` label.

    `response`, when given, is sent instead of the default answer (the queue page answers
    with its own pages); the message is still what the log line says.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        reason: str | None = None,
        response: web.StreamResponse | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.reason = reason or _REASONS.get(status, "client_error")
        self.response = response


def item_id(text: str) -> int:
    """A path's item id: decimal digits naming a possible row, else 404 (no such item)."""
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or int(text) > MAX_ITEM_ID:
        raise Refusal("no such item", status=404)
    return int(text)


async def body(request: web.Request) -> bytes:
    """The raw body, within the size limit and the body timeout."""
    return await _read(request, request.read())


async def form(request: web.Request) -> MultiDictProxy[Any]:
    """A urlencoded or multipart form body (empty for other types), or 400."""
    try:
        return await _read(request, request.post())
    except (Refusal, web.HTTPException, ConnectionError):
        raise
    except Exception as err:
        # aiohttp's form and multipart parsers raise ValueError, LookupError (an unknown
        # charset), AssertionError...: whatever it is, the client's bytes caused it.
        raise Refusal(f"the form cannot be read ({type(err).__name__})") from err


async def _read(request: web.Request, reading: Awaitable[_T]) -> _T:
    seconds = BODY_TIMEOUT_SECONDS
    try:
        async with asyncio.timeout(seconds):
            return await reading
    except TimeoutError as err:
        raise Refusal(f"the body did not arrive within {seconds:g} s", status=408) from err
    except web.HTTPRequestEntityTooLarge as err:
        raise Refusal(
            f"the body is larger than {request.client_max_size} bytes", status=413
        ) from err
    except web.RequestPayloadError as err:
        raise Refusal("the body is incomplete or malformed") from err


def json_object(raw: bytes) -> dict[str, Any]:
    """A JSON object body (empty: {}); orjson bounds nesting and refuses lone surrogates."""
    try:
        data = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError as err:
        raise Refusal("the body is not valid JSON") from err
    if not isinstance(data, dict):
        raise Refusal("the body must be a JSON object")
    return data


def text_field(values: Mapping[str, Any], name: str) -> str | None:
    """An optional short text field: printable, at most MAX_TEXT_CHARS; None when empty."""
    value = values.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise Refusal(f"{name} must be a string")
    if len(value) > MAX_TEXT_CHARS:
        raise Refusal(f"{name} must be at most {MAX_TEXT_CHARS} characters")
    if not value.isprintable():
        raise Refusal(f"{name} must be printable text")
    return value


def secret_bytes(text: str) -> bytes:
    """A presented token or signature as bytes, whatever it holds.

    aiohttp decodes header bytes that are not UTF-8 into lone surrogates; they must compare
    unequal, not crash the comparison.
    """
    return text.encode("utf-8", "surrogatepass")


def endpoint(request: web.Request) -> str:
    """The route's pattern (`/api/v1/items/{item_id}/ack`), a bounded label; else 'unmatched'."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def count(request: web.Request, endpoint_label: str, reason: str) -> None:
    """Count one refusal (the app may have no metrics in a bare test app)."""
    metrics = request.app.get(METRICS)
    if metrics is not None:
        metrics.http_rejected.labels(endpoint_label, reason).inc()


def one_line(text: str) -> str:
    """Text squeezed onto one short line for a log field."""
    flat = " ".join(text.split())
    return flat if len(flat) <= _DETAIL_CHARS else flat[: _DETAIL_CHARS - 1] + "…"


def _detail(exc: web.HTTPException) -> str:
    text = exc.text or ""
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        text = parsed["error"]
    return one_line(text) or _phrase(exc.status)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def answer(request: web.Request, status: int, message: str) -> web.Response:
    """The default answer to a refusal, in the format of the path's family."""
    path = request.path
    if path.startswith("/api/"):
        return web.json_response({"error": message}, status=status, headers=_NO_STORE)
    if path in _HTML_PATHS or path.startswith(_HTML_PREFIXES):
        from monitor.web.queue_render import CSP, message_page

        return web.Response(
            text=message_page(_phrase(status), message),
            status=status,
            content_type="text/html",
            headers={
                **_NO_STORE,
                "Content-Security-Policy": CSP,
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
            },
        )
    return web.Response(text=f"{message}\n", status=status, headers=_NO_STORE)


def _refused(request: web.Request, status: int, reason: str, message: str) -> None:
    label = endpoint(request)
    count(request, label, reason)
    if status < 500:
        log.warning(
            "request refused",
            endpoint=label,
            method=request.method,
            status=status,
            reason=reason,
            detail=one_line(message),
            peer=request.remote,
        )


def _connection(request: web.Request) -> Any:
    """The connection guard's per-connection state (None outside a guarded server)."""
    transport = request.transport
    if transport is None:
        return None
    protocol = transport.get_protocol()
    return protocol if hasattr(protocol, "request_started") else None


@web.middleware
async def edge(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refusals become counted, logged 4xx answers; unexpected exceptions a logged 500."""
    connection = _connection(request)
    if connection is not None:
        connection.request_started()
    try:
        response = await handler(request)
    except Refusal as refusal:
        _refused(request, refusal.status, refusal.reason, refusal.message)
        if refusal.response is not None:
            return refusal.response
        return answer(request, refusal.status, refusal.message)
    except web.HTTPException as exc:
        if exc.status >= 400:
            reason = _REASONS.get(exc.status, "client_error" if exc.status < 500 else "error")
            _refused(request, exc.status, reason, _detail(exc))
        raise
    except ConnectionError as err:
        # The client went away (mid-body, mid-handler): nobody reads an answer, nothing to fix.
        count(request, endpoint(request), "aborted")
        log.debug("client went away", endpoint=endpoint(request), error=type(err).__name__)
        return web.Response(status=400, text="aborted\n")
    except Exception:
        count(request, endpoint(request), "error")
        log.exception("request failed: a bug", endpoint=endpoint(request), method=request.method)
        return answer(request, 500, "internal error; the service log has the details")
    finally:
        if connection is not None:
            connection.request_finished()
    if 400 <= response.status < 500:
        status = response.status
        _refused(request, status, _REASONS.get(status, "client_error"), _phrase(status))
    return response
