"""The shared request helper against a real loopback server: decoding and failure mapping."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from monitor.clock import FakeClock
from monitor.sources.base import AuthError, FatalError, RateLimited, TransientError
from monitor.sources.http import parse_retry_after, request_json, safe_url, scrub

NOW = datetime(2024, 1, 5, 21, 13, 4, tzinfo=UTC)
SECRET = "s3cr3t-token-value"
ServerFactory = Callable[..., Awaitable[TestServer]]


def _json(body: bytes, status: int = 200, **headers: str) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json", headers=headers)


async def _ok(request: web.Request) -> web.Response:
    return _json(b'{"data": [1, 2], "echo": "%s"}' % request.query.get("q", "").encode())


async def _graph_400(request: web.Request) -> web.Response:
    return _json(b'{"error": {"message": "bad", "code": 100}}', status=400)


async def _graph_500(request: web.Request) -> web.Response:
    return _json(b'{"error": {"message": "oops", "code": 2}}', status=500)


async def _html_500(request: web.Request) -> web.Response:
    return web.Response(text="<h1>502 Bad Gateway</h1>", status=502, content_type="text/html")


async def _html_404(request: web.Request) -> web.Response:
    return web.Response(text="<h1>Not found</h1>", status=404, content_type="text/html")


async def _html_403(request: web.Request) -> web.Response:
    return web.Response(text="Forbidden", status=403)


async def _too_many_seconds(request: web.Request) -> web.Response:
    return _json(b"{}", status=429, **{"Retry-After": "120"})


async def _too_many_date(request: web.Request) -> web.Response:
    return _json(b"{}", status=429, **{"Retry-After": "Fri, 05 Jan 2024 21:15:04 GMT"})


async def _malformed(request: web.Request) -> web.Response:
    return _json(b'{"data": [1, 2,]}')


async def _truncated_json(request: web.Request) -> web.Response:
    # Complete at the HTTP level, but the JSON document stops half-way (a cut-off upstream).
    return _json(b'{"data": [{"id": "1", "message": "hel')


async def _truncated_transport(request: web.Request) -> web.StreamResponse:
    body = b'{"data": [{"id": "1", "message": "hello world"}]}'
    response = web.StreamResponse()
    response.content_type = "application/json"
    response.content_length = len(body)
    await response.prepare(request)
    await response.write(body[:10])
    assert request.transport is not None
    request.transport.close()
    return response


STOPPING = web.AppKey("stopping", asyncio.Event)


async def _slow(request: web.Request) -> web.Response:
    # Wakes at shutdown so the server's teardown never waits for the sleep.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(request.app[STOPPING].wait(), timeout=5)
    return _json(b"{}")


@pytest.fixture
async def server(aiohttp_server: ServerFactory) -> AsyncIterator[TestServer]:
    app = web.Application()
    app[STOPPING] = asyncio.Event()

    async def on_shutdown(app: web.Application) -> None:
        app[STOPPING].set()

    app.on_shutdown.append(on_shutdown)
    for path, handler in {
        "/ok": _ok,
        "/graph400": _graph_400,
        "/graph500": _graph_500,
        "/html500": _html_500,
        "/html404": _html_404,
        "/html403": _html_403,
        "/429s": _too_many_seconds,
        "/429d": _too_many_date,
        "/malformed": _malformed,
        "/truncated-json": _truncated_json,
        "/truncated": _truncated_transport,
        "/slow": _slow,
    }.items():
        app.router.add_get(path, handler)
    yield await aiohttp_server(app)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def url(server: TestServer, path: str) -> str:
    # A credential in the query string: it must never reach an exception message.
    return str(server.make_url(path)) + f"?access_token={SECRET}"


async def fetch(session: aiohttp.ClientSession, target: str, **kwargs: Any) -> Any:
    return await request_json(session, target, timeout=kwargs.pop("timeout", 2.0), **kwargs)


async def test_decodes_json_and_merges_params(
    server: TestServer, session: aiohttp.ClientSession
) -> None:
    response = await fetch(session, str(server.make_url("/ok")), params={"q": "hi"})
    assert response.status == 200
    assert response.body == {"data": [1, 2], "echo": "hi"}
    assert response.headers["content-type"].startswith("application/json")
    assert "?" not in response.url


async def test_4xx_json_is_returned_for_the_adapter_to_decode(
    server: TestServer, session: aiohttp.ClientSession
) -> None:
    response = await fetch(session, url(server, "/graph400"))
    assert response.status == 400
    assert response.body == {"error": {"message": "bad", "code": 100}}


async def test_5xx_is_transient_unless_the_caller_accepts_json_bodies(
    server: TestServer, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(TransientError, match="HTTP 500"):
        await fetch(session, url(server, "/graph500"))
    response = await fetch(session, url(server, "/graph500"), accept_5xx_json=True)
    assert response.status == 500
    assert response.body["error"]["code"] == 2
    # A non-JSON 5xx stays transient even when JSON bodies are accepted.
    with pytest.raises(TransientError, match="HTTP 502"):
        await fetch(session, url(server, "/html500"), accept_5xx_json=True)


async def test_429_retry_after_in_seconds(
    server: TestServer, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(RateLimited) as caught:
        await fetch(session, url(server, "/429s"))
    assert caught.value.retry_after == 120


async def test_429_retry_after_as_http_date(
    server: TestServer, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(RateLimited) as caught:
        await fetch(session, url(server, "/429d"), clock=FakeClock(NOW))
    assert caught.value.retry_after == 120


@pytest.mark.parametrize("path", ["/malformed", "/truncated-json"])
async def test_invalid_json_body_is_transient(
    server: TestServer, session: aiohttp.ClientSession, path: str
) -> None:
    with pytest.raises(TransientError, match="not valid JSON") as caught:
        await fetch(session, url(server, path))
    assert caught.value.__cause__ is not None


async def test_body_cut_off_at_transport_level_is_transient(
    server: TestServer, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(TransientError, match="truncated") as caught:
        await fetch(session, url(server, "/truncated"))
    assert isinstance(caught.value.__cause__, aiohttp.ClientPayloadError)


async def test_timeout_is_transient(server: TestServer, session: aiohttp.ClientSession) -> None:
    with pytest.raises(TransientError, match=r"timed out after 0\.1 s") as caught:
        await fetch(session, url(server, "/slow"), timeout=0.1)
    assert isinstance(caught.value.__cause__, TimeoutError)


async def test_connection_refused_is_transient(session: aiohttp.ClientSession) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(TransientError, match="request failed") as caught:
        await fetch(session, f"http://127.0.0.1:{port}/x?access_token={SECRET}")
    assert isinstance(caught.value.__cause__, aiohttp.ClientConnectionError)


async def test_non_json_4xx(server: TestServer, session: aiohttp.ClientSession) -> None:
    with pytest.raises(FatalError, match="HTTP 404"):
        await fetch(session, url(server, "/html404"))
    with pytest.raises(AuthError, match="HTTP 403"):
        await fetch(session, url(server, "/html403"))


@pytest.mark.parametrize(
    "path", ["/html500", "/429s", "/malformed", "/truncated", "/slow", "/html404"]
)
async def test_credentials_in_the_url_never_reach_messages(
    server: TestServer, session: aiohttp.ClientSession, path: str
) -> None:
    with pytest.raises(Exception) as caught:
        await fetch(session, url(server, path), timeout=0.1)
    assert SECRET not in str(caught.value)
    assert str(server.make_url(path)) in str(caught.value)


def test_parse_retry_after() -> None:
    assert parse_retry_after("30", NOW) == 30
    assert parse_retry_after(" 1.5 ", NOW) == 1.5
    assert parse_retry_after("Fri, 05 Jan 2024 21:14:04 GMT", NOW) == 60
    assert parse_retry_after("Fri, 05 Jan 2024 21:00:00 GMT", NOW) == 0  # already past
    assert parse_retry_after("-5", NOW) is None
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after("", NOW) is None
    assert parse_retry_after(None, NOW) is None


def test_safe_url_and_scrub_drop_query_strings_and_user_info() -> None:
    assert (
        safe_url("https://user:pw@graph.example/v1/x?access_token=abc#f")
        == "https://graph.example/v1/x"
    )
    text = "Cannot connect to https://graph.example/v1/x?access_token=abc&b=1 (refused)"
    assert scrub(text) == "Cannot connect to https://graph.example/v1/x (refused)"


# --- redirects: credentials never cross origins (issue 13, point 5) ----------------------------


async def _recording_server(seen: list[dict[str, str]]) -> TestServer:
    async def record(request: web.Request) -> web.Response:
        seen.append({"path": request.path, **dict(request.headers)})
        return _json(b'{"data": []}')

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    server = TestServer(app)
    await server.start_server()
    return server


async def test_same_origin_redirects_are_followed_with_their_headers() -> None:
    seen: list[dict[str, str]] = []

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/new/place?x=1")

    async def new_place(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return _json(b'{"data": ["here"]}')

    app = web.Application()
    app.router.add_get("/old", moved)
    app.router.add_get("/new/place", new_place)
    server = TestServer(app)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            response = await request_json(
                session, str(server.make_url("/old")), headers={"Api-Key": SECRET}, timeout=2
            )
        assert response.body == {"data": ["here"]}
        assert [headers.get("Api-Key") for headers in seen] == [SECRET]
    finally:
        await server.close()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_to_another_origin_is_refused_and_gets_no_credentials(
    status: int,
) -> None:
    seen: list[dict[str, str]] = []
    elsewhere = await _recording_server(seen)
    target = str(elsewhere.make_url("/collect"))

    async def moved(request: web.Request) -> web.Response:
        return web.Response(status=status, headers={"Location": target})

    app = web.Application()
    app.router.add_route("*", "/api", moved)
    server = TestServer(app)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(FatalError) as caught:
                await request_json(
                    session,
                    str(server.make_url("/api")),
                    headers={"Api-Key": SECRET, "Authorization": f"Token {SECRET}"},
                    timeout=2,
                )
        # The error names where it pointed; nothing reached the other origin.
        assert f"redirects to {target}" in str(caught.value)
        assert SECRET not in str(caught.value)
        assert seen == []
    finally:
        await server.close()
        await elsewhere.close()


async def test_a_redirect_loop_is_a_transient_error() -> None:
    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/again")

    app = web.Application()
    app.router.add_get("/again", loop)
    server = TestServer(app)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(TransientError, match="more than 5 redirects"):
                await request_json(session, str(server.make_url("/again")), timeout=2)
    finally:
        await server.close()
