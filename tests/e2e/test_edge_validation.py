"""Bad input at every endpoint is a counted, logged 4xx with a reason, never a 500 (issue 22).

The service is served the way `run` serves it (monitor/web/server.py on a real socket), and
requests are written as raw bytes, so header bytes that are not UTF-8 and protocol errors reach
the same code they would in production. One regression test per input that used to answer 500,
then a property-based test (hypothesis) that fuzzes every endpoint's parameters and bodies.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import orjson
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import monitor.web.edge
from monitor.app import create_app
from monitor.cli import main
from monitor.clock import FakeClock
from monitor.config import load_config
from monitor.logging import configure_logging
from monitor.simulator.graph_api import FakeGraphApi
from monitor.web.keys import ALERTS, COORDINATOR, METRICS, STORE
from monitor.web.queue import csrf_token
from monitor.web.server import make_runner, start_sites
from tests.e2e.conftest import PAGE_ID, write_config

SECRET = "edge-app-secret-31337"
VERIFY = "edge-verify-token"
TOKEN = "edge-api-token-7f2c9"
NOW = datetime(2026, 11, 20, 20, 0, tzinfo=UTC)
EXTRA = f"""
[facebook_webhook]
app_secret = "{SECRET}"
verify_token = "{VERIFY}"

[[http.api_tokens]]
token = "{TOKEN}"
name = "edge-tests"
scopes = ["read", "act", "admin"]  # admin: the privacy endpoints' checks are reached too
"""
BEARER = f"Bearer {TOKEN}".encode()
COOKIE = f"webcare_token={TOKEN}".encode()


@dataclass
class Response:
    status: int
    headers: bytes
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Edge:
    """The service on a real port, its item, and what it logged."""

    app: web.Application
    port: int
    item: int
    post: str
    logs: io.StringIO
    config: Path
    graph: FakeGraphApi
    sent: list[int] = field(default_factory=list)

    async def request(
        self,
        method: str,
        target: str | bytes,
        *,
        headers: dict[bytes, bytes] | None = None,
        body: bytes = b"",
    ) -> Response:
        """One request as raw bytes on its own connection."""
        path = target if isinstance(target, bytes) else target.encode()
        lines = [
            method.encode() + b" " + path + b" HTTP/1.1",
            b"Host: 127.0.0.1",
            b"Connection: close",
            b"Content-Length: %d" % len(body),
            *(name + b": " + value for name, value in (headers or {}).items()),
        ]
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
            await writer.drain()
            raw = await asyncio.wait_for(reader.read(), timeout=30)
        finally:
            writer.close()
        head, _, rest = raw.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        self.sent.append(status)
        return Response(status=status, headers=head, body=rest)

    def log_lines(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.logs.getvalue().splitlines() if line]

    def rejected(self, endpoint: str, reason: str) -> float:
        value: float = self.app[METRICS].http_rejected.labels(endpoint, reason)._value.get()
        return value

    def deliveries(self, outcome: str) -> float:
        value: float = self.app[METRICS].webhook_deliveries.labels("facebook", outcome)._value.get()
        return value

    def link(self, action: str, item_id: int) -> str:
        links = self.app[ALERTS].links
        assert links is not None
        url = links.action_url(action, item_id, NOW)  # type: ignore[arg-type]
        return url[url.index("/act/") :]

    def assert_refusals_logged_once(self) -> None:
        """Every 4xx has one warning line with its reason; nothing at error, no traceback."""
        lines = self.log_lines()
        refused = [line for line in lines if line.get("event") == "request refused"]
        assert len(refused) == sum(1 for s in self.sent if 400 <= s < 500), refused
        assert all(line["level"] == "warning" and line["detail"] for line in refused)
        assert not [line for line in lines if line["level"] in ("error", "critical")]
        assert not [line for line in lines if "exception" in line]


def _dumps(value: Any) -> bytes:
    """JSON as any client may send it (integers beyond 64 bits included)."""
    return json.dumps(value).encode()


def sign(body: bytes) -> dict[bytes, bytes]:
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {
        b"X-Hub-Signature-256": f"sha256={digest}".encode(),
        b"Content-Type": b"application/json",
    }


def delivery(*values: dict[str, Any], page: Any = PAGE_ID) -> bytes:
    changes = [{"field": "feed", "value": v} for v in values]
    return _dumps({"object": "page", "entry": [{"id": page, "changes": changes}]})


def auth(content_type: bytes | None = None) -> dict[bytes, bytes]:
    headers = {b"Authorization": BEARER}
    if content_type is not None:
        headers[b"Content-Type"] = content_type
    return headers


@pytest.fixture
async def edge(graph: FakeGraphApi, tmp_path: Path) -> AsyncIterator[Edge]:
    logs = io.StringIO()
    configure_logging(level="info", fmt="json", stream=logs)
    path = write_config(
        tmp_path / "c.toml",
        api_base_url=graph.base_url,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/edge.db",
    )
    path.write_text(path.read_text() + EXTRA)
    post = graph.add_post(created_time=NOW - timedelta(hours=1), message="Night deals")
    graph.add_comment(post_id=post, created_time=NOW, message="In stock?", author=("9001", "Ann"))
    app = create_app(load_config(path), clock=FakeClock(NOW + timedelta(seconds=2)))
    runner = make_runner(app)
    await runner.setup()
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    try:
        await start_sites(runner, sockets=[sock])
        await app[COORDINATOR].poll_once("acme-fb")
        (item,) = await app[STORE].unanswered_items()
        logs.truncate(0)
        logs.seek(0)
        yield Edge(
            app=app,
            port=port,
            item=item.message_id,
            post=post,
            logs=logs,
            config=path,
            graph=graph,
        )
    finally:
        await runner.cleanup()
        configure_logging()


# --- one regression test per input that answered 500 -----------------------------------------


async def test_signed_delivery_with_an_out_of_range_created_time_is_read_from_the_graph(
    edge: Edge,
) -> None:
    # Facebook redelivers anything but a 200 for 36 hours: the change is re-read instead.
    late = edge.graph.add_comment(
        post_id=edge.post,
        created_time=NOW - timedelta(minutes=1),
        message="Hello?",
        author=("9002", "Bob"),
    )
    for created in (10**15, -(10**15), 1e300, 2**63 - 1, 10**30, 0, 4102444800):
        body = delivery(
            {
                "item": "comment",
                "verb": "add",
                "post_id": edge.post,
                "comment_id": late,
                "from": {"id": "9002", "name": "Bob"},
                "created_time": created,
                "message": "bogus",
            }
        )
        response = await edge.request("POST", "/webhooks/facebook", headers=sign(body), body=body)
        assert (response.status, response.body) == (200, b"EVENT_RECEIVED")
    stored = {
        m.message.platform_id: m.message for m in await edge.app[STORE].all_messages("acme-fb")
    }
    # Stored as the Graph API has it, not with the delivery's impossible time.
    assert (stored[late].created_at, stored[late].text) == (NOW - timedelta(minutes=1), "Hello?")
    assert edge.deliveries("accepted") == 7
    # A delivery that is no delivery (changes that are no list) is malformed: a 400.
    body = _dumps({"object": "page", "entry": [{"id": PAGE_ID, "changes": 5}]})
    response = await edge.request("POST", "/webhooks/facebook", headers=sign(body), body=body)
    assert response.status == 400 and b"malformed delivery" in response.body
    assert edge.deliveries("malformed") == 1
    assert edge.rejected("/webhooks/facebook", "invalid") == 1
    edge.assert_refusals_logged_once()


@pytest.mark.parametrize(
    ("since", "until"),
    [
        ("0001-01-01T00:00:00+01:00", "2026-01-01"),
        ("2026-01-01", "9999-12-31T23:59:59-01:00"),
        ("0001-01-01T00:30:00+00:45", "9999-12-31T23:30:00-00:45"),
    ],
)
async def test_a_window_beyond_years_1_and_9999_in_utc_is_400(
    edge: Edge, since: str, until: str, capsys: pytest.CaptureFixture[str]
) -> None:
    query = urlencode({"since": since, "until": until, "tag": "jobs"})
    for path in ("/api/v1/report", "/api/v1/campaign", "/api/v1/items"):
        response = await edge.request("GET", f"{path}?{query}", headers=auth())
        assert response.status == 400
        assert "is out of range (years 1-9999 in UTC)" in response.json()["error"]
        assert edge.rejected(path, "invalid") == 1
    # The CLI says the same in one line and exits 2, no traceback.
    args = ["report", "-c", str(edge.config), "--since", since, "--until", until]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "out of range" in err and "Traceback" not in err
    edge.assert_refusals_logged_once()


async def test_the_widest_window_in_utc_is_served(edge: Edge) -> None:
    query = urlencode({"since": "0001-01-01T00:00:00Z", "until": "9999-12-31T23:59:59Z"})
    for path in ("/api/v1/report", "/api/v1/items"):
        response = await edge.request("GET", f"{path}?{query}", headers=auth())
        assert response.status == 200, response.body
    assert len(response.json()["rows"]) == 1


@pytest.mark.parametrize("item_id", [2**63, 2**64, 10**40])
async def test_an_item_id_beyond_64_bits_is_404_in_the_api_and_the_queue(
    edge: Edge, item_id: int
) -> None:
    form = {b"Cookie": COOKIE, b"Content-Type": b"application/x-www-form-urlencoded"}
    csrf = urlencode({"csrf": csrf_token(TOKEN), "reason": "spam"}).encode()
    reason = b'{"reason": "spam"}'
    cases: list[tuple[str, str, dict[bytes, bytes], bytes]] = [
        ("POST", f"/api/v1/items/{item_id}/ack", auth(), b""),
        ("POST", f"/api/v1/items/{item_id}/dismiss", auth(b"application/json"), reason),
        ("POST", f"/items/{item_id}/ack", form, csrf),
        ("POST", f"/items/{item_id}/dismiss", form, csrf),
        ("GET", f"/act/{item_id}/ack?exp=4102444800&sig=00ff", {}, b""),
        ("POST", f"/act/{item_id}/dismiss?exp=4102444800&sig=00ff", form, csrf),
    ]
    for method, path, headers, body in cases:
        response = await edge.request(method, path, headers=headers, body=body)
        assert response.status == 404, (path, response.body)
    assert edge.rejected("/api/v1/items/{item_id}/ack", "not_found") == 1
    assert edge.rejected("/items/{item_id}/{action}", "not_found") == 2
    edge.assert_refusals_logged_once()


async def test_deeply_nested_json_on_ack_and_dismiss_is_400(edge: Edge) -> None:
    bodies = [
        b"[" * 100_000,
        b'{"by": ' + b"[" * 5_000 + b"]" * 5_000 + b"}",
        b'{"reason": ' * 50_000,
    ]
    for action in ("ack", "dismiss"):
        for body in bodies:
            response = await edge.request(
                "POST",
                f"/api/v1/items/{edge.item}/{action}",
                headers=auth(b"application/json"),
                body=body,
            )
            assert response.status == 400
            assert response.json() == {"error": "the body is not valid JSON"}
    assert edge.rejected("/api/v1/items/{item_id}/dismiss", "invalid") == 3
    edge.assert_refusals_logged_once()


async def test_a_malformed_multipart_body_is_400_at_every_form(edge: Edge) -> None:
    multipart = b"multipart/form-data; boundary=xyz"
    cases = [
        ("/login", {b"Content-Type": multipart}),
        (f"/items/{edge.item}/ack", {b"Content-Type": multipart, b"Cookie": COOKIE}),
        (edge.link("dismiss", edge.item), {b"Content-Type": multipart}),
        (f"/api/v1/items/{edge.item}/ack", auth(multipart)),
    ]
    for path, headers in cases:
        for body in (b"garbage", b"--xyz\r\nContent-Disposition: form-data\r\n\r\nno end"):
            response = await edge.request("POST", path, headers=headers, body=body)
            assert response.status == 400, (path, response.body)
            assert b"the form cannot be read" in response.body
    assert edge.rejected("/login", "invalid") == 2
    edge.assert_refusals_logged_once()


async def test_token_bytes_that_are_not_utf8_are_refused_not_a_crash(edge: Edge) -> None:
    not_utf8 = b"\xff\xfe\x80\xc3("
    api = await edge.request(
        "GET", "/api/v1/items", headers={b"Authorization": b"Bearer " + not_utf8}
    )
    assert api.status == 401 and api.json()["error"].startswith("invalid token: send 'Author")
    cookie = await edge.request("GET", "/", headers={b"Cookie": b"webcare_token=" + not_utf8})
    assert cookie.status == 401 and b'id="login"' in cookie.body
    query = await edge.request("GET", "/?token=%FF%FE%80")
    assert query.status == 401
    handshake = await edge.request(
        "GET", "/webhooks/facebook?hub.mode=subscribe&hub.verify_token=%FF%FE&hub.challenge=1"
    )
    assert handshake.status == 403
    form = urlencode({"csrf": "é" * 64}).encode()
    headers = {b"Cookie": COOKIE, b"Content-Type": b"application/x-www-form-urlencoded"}
    stale = await edge.request("POST", f"/items/{edge.item}/ack", headers=headers, body=form)
    assert stale.status == 403
    assert edge.rejected("/api/v1/items", "unauthorized") == 1
    assert edge.rejected("/", "unauthorized") == 2
    edge.assert_refusals_logged_once()


async def test_an_oversized_webhook_body_is_counted_as_a_delivery_then_refused(edge: Edge) -> None:
    body = b"x" * (2 * 1024 * 1024)
    response = await edge.request("POST", "/webhooks/facebook", headers=sign(body), body=body)
    assert response.status == 413
    assert edge.deliveries("too_large") == 1
    assert edge.rejected("/webhooks/facebook", "too_large") == 1
    edge.assert_refusals_logged_once()


async def test_a_body_that_trickles_is_408_after_the_body_timeout(
    edge: Edge, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(monitor.web.edge, "BODY_TIMEOUT_SECONDS", 0.5)
    reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
    began = time.monotonic()
    writer.write(b"POST /webhooks/facebook HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    await writer.drain()
    status = await asyncio.wait_for(reader.readline(), timeout=10)
    writer.close()
    assert status.split(b" ")[1] == b"408" and time.monotonic() - began < 3
    assert edge.rejected("/webhooks/facebook", "timeout") == 1
    edge.sent.append(408)
    edge.assert_refusals_logged_once()


async def test_a_client_that_goes_away_mid_body_is_counted_not_a_traceback(edge: Edge) -> None:
    for path in ("/webhooks/facebook", f"/api/v1/items/{edge.item}/ack"):
        _reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n".encode()
            + b"Authorization: "
            + BEARER
            + b"\r\nContent-Length: 1000\r\n\r\n{}"
        )
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.close()
    for _ in range(100):
        if edge.rejected("/api/v1/items/{item_id}/ack", "aborted") == 1:
            break
        await asyncio.sleep(0.02)
    assert edge.rejected("/webhooks/facebook", "aborted") == 1
    assert edge.rejected("/api/v1/items/{item_id}/ack", "aborted") == 1
    lines = edge.log_lines()
    assert not [line for line in lines if line["level"] in ("error", "critical")]
    assert not [line for line in lines if "exception" in line]


async def test_a_request_line_aiohttp_cannot_parse_is_one_info_line(edge: Edge) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nBad Header\x00: y\r\n\r\n")
    await writer.drain()
    status = await asyncio.wait_for(reader.readline(), timeout=10)
    writer.close()
    assert status.split(b" ")[1] == b"400"
    lines = [line for line in edge.log_lines() if line.get("event") == "request not understood"]
    assert len(lines) == 1 and lines[0]["level"] == "info" and "exception" not in lines[0]
    assert edge.rejected("protocol", "malformed") == 1


# --- the fuzz test ------------------------------------------------------------------------------

_TEXT = st.text(max_size=40)
_EDGE_NUMBERS = st.sampled_from(
    ["0", "-1", "1", "9" * 19, "9" * 40, str(2**63), str(2**63 - 1), "١٢", "²", " 1", "1e3", ""]
)
# Values the endpoints accept, so the checks behind the first ones are reached too.
_WORDS = st.sampled_from(
    ["spam", "no_reply_needed", "duplicate", "moderator", "acme", "open,breached", "1", TOKEN]
)
_OFFSETS = st.integers(-1439, 1439).map(lambda m: timezone(timedelta(minutes=m)))
_INSTANTS = st.one_of(
    st.datetimes(timezones=st.none() | _OFFSETS).map(lambda d: d.isoformat()),
    st.dates().map(lambda d: d.isoformat()),
    _EDGE_NUMBERS,
    _TEXT,
)
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=12,
)
_HEADER_BYTES = st.binary(max_size=40).map(
    lambda b: b.replace(b"\r", b"").replace(b"\n", b"").strip()
)


def _segment(edge: Edge) -> st.SearchStrategy[str]:
    return st.one_of(
        st.just(str(edge.item)),
        st.integers(-(2**70), 2**70).map(str),
        _EDGE_NUMBERS,
        _TEXT,
    ).map(lambda s: quote(s, safe=""))


def _query(names: list[str]) -> st.SearchStrategy[str]:
    values = st.one_of(_INSTANTS, _JSON.map(json.dumps), _TEXT, _WORDS)
    keys = st.sampled_from(names) | _TEXT if names else _TEXT
    pairs = st.lists(st.tuples(keys, values), max_size=5)
    return pairs.map(lambda p: "?" + urlencode(p) if p else "")


def _body() -> st.SearchStrategy[tuple[bytes | None, bytes]]:
    names = st.sampled_from(["by", "reason", "token", "csrf"]) | _TEXT
    json_body = st.dictionaries(names, _JSON | _WORDS, max_size=4).map(_dumps)
    form = st.dictionaries(names, _TEXT | _WORDS, max_size=4).map(lambda d: urlencode(d).encode())
    nested = st.integers(1, 200_000).map(lambda n: b"[" * n)
    return st.one_of(
        st.tuples(st.just(b"application/json"), json_body | nested | st.binary(max_size=200)),
        st.tuples(st.just(b"application/x-www-form-urlencoded"), form | st.binary(max_size=200)),
        st.tuples(
            st.just(b"multipart/form-data; boundary=b0undary"),
            st.binary(max_size=200)
            | form.map(
                lambda f: (
                    b"--b0undary\r\nContent-Disposition: form-data; name=by\r\n\r\n"
                    + f
                    + b"\r\n--b0undary--\r\n"
                )
            ),
        ),
        st.tuples(st.none() | _HEADER_BYTES, st.binary(max_size=200)),
    )


def _credentials() -> st.SearchStrategy[dict[bytes, bytes]]:
    """Mostly the valid token (so the checks behind it are reached), else anything."""
    token = st.sampled_from([TOKEN.encode()] * 3 + [b""]) | _HEADER_BYTES
    authorization = st.sampled_from([BEARER] * 3 + [b"Basic x"]) | token.map(
        lambda t: b"Bearer " + t
    )
    cookie = st.sampled_from([COOKIE] * 3 + [b""]) | token.map(lambda t: b"webcare_token=" + t)
    return st.fixed_dictionaries(
        {b"Authorization": authorization, b"Cookie": cookie},
        optional={b"Accept": _HEADER_BYTES, b"X-Forwarded-Proto": _HEADER_BYTES},
    )


# Each endpoint with the query parameters it reads; {id} and {action} are filled in per example.
ENDPOINTS: dict[str, list[tuple[str, str, list[str]]]] = {
    "operations": [
        ("GET", "/metrics", []),
        ("GET", "/healthz", []),
        ("GET", "/readyz", []),
        ("GET", "/{id}", []),
    ],
    "api_reads": [
        ("GET", "/api/v1/report", ["since", "until", "brand", "by", "items"]),
        ("GET", "/api/v1/campaign", ["tag", "since", "until", "brand"]),
        ("GET", "/api/v1/items", ["since", "until", "brand", "state"]),
    ],
    "api_actions": [("POST", "/api/v1/items/{id}/{action}", ["by", "reason"])],
    "privacy": [
        ("POST", "/api/v1/privacy/export", ["author"]),
        ("POST", "/api/v1/privacy/erase", ["author"]),
    ],
    "queue": [
        ("GET", "/", ["token"]),
        ("POST", "/login", ["token"]),
        ("POST", "/logout", []),
        ("POST", "/items/{id}/{action}", []),
    ],
    "signed_links": [
        ("GET", "/act/{id}/{action}", ["exp", "sig"]),
        ("POST", "/act/{id}/{action}", ["exp", "sig"]),
    ],
    "webhook_handshake": [
        ("GET", "/webhooks/facebook", ["hub.mode", "hub.verify_token", "hub.challenge"])
    ],
}


@st.composite
def _requests(
    draw: st.DrawFn, edge: Edge, group: str
) -> tuple[str, str, dict[bytes, bytes], bytes]:
    method, template, names = draw(st.sampled_from(ENDPOINTS[group]))
    segment = draw(_segment(edge))
    action = draw(st.sampled_from(["ack", "dismiss"]))
    path = template.format(id=segment, action=action)
    method = draw(st.sampled_from([method] * 4 + ["PUT", "DELETE"]))
    if group == "signed_links" and draw(st.booleans()):
        # A genuinely signed link, so the checks behind the signature are fuzzed too.
        path = edge.link(action, edge.item)
    elif group == "webhook_handshake" and draw(st.booleans()):
        challenge = draw(_TEXT)
        path += "?" + urlencode(
            {"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": challenge}
        )
    else:
        path += draw(_query(names))
    headers = draw(_credentials())
    content_type, body = draw(_body())
    if content_type is not None:
        headers[b"Content-Type"] = content_type
    if group in ("queue", "signed_links", "privacy") and draw(st.booleans()):
        fields = {"csrf": csrf_token(TOKEN), "reason": draw(_TEXT), "token": draw(_TEXT)}
        fields["author"] = draw(_TEXT)
        body = urlencode(fields).encode()
        headers[b"Content-Type"] = b"application/x-www-form-urlencoded"
    return method, path, headers, body


@st.composite
def _deliveries(draw: st.DrawFn, edge: Edge) -> tuple[dict[bytes, bytes], bytes]:
    ids = st.sampled_from([edge.post, PAGE_ID, f"{edge.post.split('_')[1]}_7"]) | _JSON
    value = st.fixed_dictionaries(
        {
            "item": st.sampled_from(["comment", "status", "post", "photo", "reaction"]) | _JSON,
            "verb": st.sampled_from(["add", "edited", "remove", "hide", "unhide"]) | _JSON,
        },
        optional={
            "post_id": ids,
            "comment_id": ids,
            "parent_id": ids,
            "from": st.fixed_dictionaries({}, optional={"id": ids, "name": _JSON}) | _JSON,
            "sender_id": ids,
            "sender_name": _JSON,
            "created_time": st.one_of(
                st.integers(-(2**63), 2**64 - 1),
                st.floats(),
                st.integers(int(NOW.timestamp()) - 86400, int(NOW.timestamp())),
                _JSON,
            ),
            "message": _JSON,
        },
    )
    change = st.fixed_dictionaries({"field": st.just("feed"), "value": value}) | _JSON
    entry = st.fixed_dictionaries(
        {"id": st.sampled_from([PAGE_ID, "777"]) | _JSON},
        optional={"changes": st.lists(change, max_size=3) | _JSON, "time": _JSON},
    )
    structured = st.fixed_dictionaries(
        {"object": st.just("page"), "entry": st.lists(entry, min_size=1, max_size=3)}
    )
    kind = draw(st.sampled_from(["structured"] * 6 + ["json", "bytes"]))
    if kind == "structured":
        body = _dumps(draw(structured)).replace(b"NaN", b"1e999")
    elif kind == "json":
        body = _dumps(draw(_JSON))
    else:
        body = draw(st.binary(max_size=200))
    signed = draw(st.sampled_from([True] * 9 + [False]))
    return (sign(body) if signed else {b"X-Hub-Signature-256": b"sha256=00"}), body


_FUZZ = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.parametrize("group", sorted(ENDPOINTS))
@_FUZZ
@given(data=st.data())
async def test_no_input_at_any_endpoint_gets_a_5xx(
    edge: Edge, group: str, data: st.DataObject
) -> None:
    method, path, headers, body = data.draw(_requests(edge, group))
    response = await edge.request(method, path, headers=headers, body=body)
    assert response.status < 500, (method, path, headers, body[:200], response.body[:500])
    assert not [line for line in edge.log_lines() if line["level"] in ("error", "critical")]


@_FUZZ
@given(data=st.data())
async def test_no_signed_webhook_delivery_gets_a_5xx(edge: Edge, data: st.DataObject) -> None:
    headers, body = data.draw(_deliveries(edge))
    response = await edge.request("POST", "/webhooks/facebook", headers=headers, body=body)
    assert response.status < 500, (body[:500], response.body[:500])
    assert not [line for line in edge.log_lines() if line["level"] in ("error", "critical")]
