"""Sending one notification to real HTTP receivers on 127.0.0.1 (no mocks)."""

from __future__ import annotations

import asyncio
import base64
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import standardwebhooks
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

import monitor.alerts
from monitor.alerts.formats import console_line, generic_payload, slack_payload
from monitor.alerts.models import AlertItem, Duty, Notification
from monitor.alerts.transport import SendResult, send
from monitor.config.alerts import ReceiverConfig

NOW = datetime(2024, 1, 8, 12, 0, tzinfo=UTC)
SECRET = "whsec-9d8c7b6a5f4e"
# A receiver that keeps today's X-Webcare-Signature (any text is a legacy secret).
LEGACY: dict[str, Any] = {"secret": SecretStr(SECRET), "signature": "legacy"}
# A Standard Webhooks secret: whsec_ + base64 of 32 bytes.
STANDARD = "whsec_d2ViY2FyZS10cmFuc3BvcnQtdGVzdC1rZXktMzJieXQ="
# Shaped like a Slack hook: the path is the credential and must never show up in an error.
SLACK_PATH = "/services/T0000CRED/B0000CRED/XXXXsecretTOKENXXXX"
SCHEMA_DOC = Path(monitor.alerts.__file__).with_name("SCHEMA.md")
ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


def _notification() -> Notification:
    item = AlertItem(
        item_id=1042,
        permalink="https://www.facebook.com/123_456?comment_id=789",
        author="Jan Jansen",
        excerpt="Where is my order? <!channel> @here",
        created_at=NOW - timedelta(minutes=22),
        due_at=NOW + timedelta(minutes=8),
        period="after_hours",
        state="warning",
    )
    return Notification(
        id="warning:acme-fb:1042",
        kind="warning",
        brand="Acme",
        source="acme-fb",
        platform="facebook",
        created_at=NOW,
        items=(item,),
        duty=Duty(student="anna", backup="bob", lead="carol"),
    )


def _documented_verifier() -> Callable[..., bool]:
    """The verification recipe from SCHEMA.md, exactly as a receiver would copy it."""
    blocks = re.findall(r"```python\n(.*?)```", SCHEMA_DOC.read_text(encoding="utf-8"), re.S)
    (snippet,) = [b for b in blocks if "def verify_webcare_signature(" in b]
    namespace: dict[str, Any] = {}
    exec(compile(snippet, str(SCHEMA_DOC), "exec"), namespace)
    verifier: Callable[..., bool] = namespace["verify_webcare_signature"]
    return verifier


def _documented_standard_reader() -> Callable[..., Any]:
    """The Standard Webhooks example from SCHEMA.md, exactly as a receiver would copy it."""
    blocks = re.findall(r"```python\n(.*?)```", SCHEMA_DOC.read_text(encoding="utf-8"), re.S)
    (snippet,) = [b for b in blocks if "def read_webcare_alert(" in b]
    namespace: dict[str, Any] = {}
    exec(compile(snippet, str(SCHEMA_DOC), "exec"), namespace)
    reader: Callable[..., Any] = namespace["read_webcare_alert"]
    return reader


def _receiver(name: str, url: str, **overrides: Any) -> ReceiverConfig:
    fields: dict[str, Any] = {"name": name, "type": "webhook", "url": SecretStr(url)}
    fields.update(overrides)
    return ReceiverConfig(**fields)


@dataclass
class Captured:
    """What a fake receiver saw."""

    bodies: list[bytes] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    verified: list[bool] = field(default_factory=list)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def release() -> asyncio.Event:
    """Set at the end of a test so a hanging handler returns and the server can stop."""
    return asyncio.Event()


@pytest.fixture
async def receivers(
    aiohttp_server: ServerFactory, release: asyncio.Event
) -> AsyncIterator[tuple[TestServer, Captured]]:
    """One server with a route per receiver behaviour."""
    captured = Captured()
    verify = _documented_verifier()

    async def webhook(request: web.Request) -> web.Response:
        raw = await request.read()
        captured.bodies.append(raw)
        captured.headers.append(dict(request.headers))
        signature = request.headers.get("X-Webcare-Signature")
        ok = signature is not None and verify(SECRET, raw, signature)
        captured.verified.append(ok)
        if signature is not None and not ok:
            return web.Response(status=401, text="bad signature")
        return web.Response(status=204)

    async def slack(request: web.Request) -> web.Response:
        captured.bodies.append(await request.read())
        captured.headers.append(dict(request.headers))
        return web.Response(text="ok")  # what Slack answers

    async def status(request: web.Request) -> web.Response:
        await request.read()
        code = int(request.match_info["code"])
        headers = (
            {"Retry-After": request.query["retry_after"]} if "retry_after" in request.query else {}
        )
        body = request.query.get("body", "error <html>\nbody")
        return web.Response(status=code, text=body, headers=headers)

    async def hang(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(status=204)

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("/webhook")

    app = web.Application()
    app.router.add_post("/webhook", webhook)
    app.router.add_post(SLACK_PATH, slack)
    app.router.add_post("/status/{code}", status)
    app.router.add_post("/hang", hang)
    app.router.add_post("/redirect", redirect)
    server = await aiohttp_server(app)
    try:
        yield server, captured
    finally:
        release.set()


def _assert_no_secret(result: SendResult) -> None:
    assert result.error is not None
    for secret in (SECRET, SLACK_PATH, "XXXXsecretTOKENXXXX", "http://"):
        assert secret not in result.error


async def test_webhook_delivers_the_generic_json_signed(
    receivers: tuple[TestServer, Captured], session: aiohttp.ClientSession
) -> None:
    server, captured = receivers
    receiver = _receiver("team", str(server.make_url("/webhook")), **LEGACY)
    n = _notification()

    # The signature timestamp is the attempt's time: the documented recipe checks it against
    # the receiver's real clock.
    result = await send(receiver, n, delivery_id="dlv-1", session=session, now=datetime.now(UTC))

    assert result == SendResult(ok=True, retryable=False, status=204)
    assert captured.verified == [True]
    headers = captured.headers[0]
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Webcare-Delivery"] == "dlv-1"
    assert headers["X-Webcare-Schema"] == "webcare.alert.v1"
    body = orjson.loads(captured.bodies[0])
    assert body == generic_payload(n, delivery_id="dlv-1")
    assert body["schema"] == "webcare.alert.v1"
    assert body["delivery_id"] == "dlv-1"
    assert body["notification_id"] == "warning:acme-fb:1042"
    assert body["kind"] == "warning"
    assert (body["brand"], body["source"], body["platform"]) == ("Acme", "acme-fb", "facebook")
    assert body["created_at"] == "2024-01-08T12:00:00Z"
    assert body["on_duty"] == {"student": "anna", "backup": "bob", "lead": "carol"}
    assert body["items"] == [
        {
            "id": 1042,
            "permalink": "https://www.facebook.com/123_456?comment_id=789",
            "author": "Jan Jansen",
            "excerpt": "Where is my order? <!channel> @here",
            "created_at": "2024-01-08T11:38:00Z",
            "due_at": "2024-01-08T12:08:00Z",
            "period": "after_hours",
            "state": "warning",
            "responder": None,
            "responded_at": None,
            "acked_by": None,
            "ack_url": None,
            "dismiss_url": None,
            "window_closes_at": None,
        }
    ]
    assert (body["addressed_to"], body["step"], body["queue_url"]) == (None, None, None)
    assert body["summary"].startswith("Warning: 1 consumer post waiting on acme-fb (Acme)")


async def test_a_retry_sends_the_same_body_with_a_fresh_signature(
    receivers: tuple[TestServer, Captured], session: aiohttp.ClientSession
) -> None:
    server, captured = receivers
    receiver = _receiver("team", str(server.make_url("/webhook")), **LEGACY)
    first = datetime.now(UTC)

    for now in (first - timedelta(seconds=120), first):
        result = await send(
            receiver, _notification(), delivery_id="dlv-1", session=session, now=now
        )
        assert result.ok

    assert captured.bodies[0] == captured.bodies[1]
    signatures = [h["X-Webcare-Signature"] for h in captured.headers]
    assert signatures[0] != signatures[1]
    assert [h["X-Webcare-Delivery"] for h in captured.headers] == ["dlv-1", "dlv-1"]


async def test_an_old_signature_is_rejected_by_the_documented_recipe(
    receivers: tuple[TestServer, Captured], session: aiohttp.ClientSession
) -> None:
    server, captured = receivers
    receiver = _receiver("team", str(server.make_url("/webhook")), **LEGACY)

    # Signed "as of" 2024: to the receiver's clock this is a replay.
    result = await send(receiver, _notification(), delivery_id="dlv-1", session=session, now=NOW)

    assert captured.verified == [False]
    assert result.ok is False and result.retryable is False and result.status == 401
    assert result.error == "receiver 'team' (webhook): HTTP 401: bad signature"


async def test_standard_webhooks_signature_verifies_with_the_standardwebhooks_package(
    receivers: tuple[TestServer, Captured], session: aiohttp.ClientSession
) -> None:
    server, captured = receivers
    receiver = _receiver("team", str(server.make_url("/webhook")), secret=SecretStr(STANDARD))
    assert receiver.signature == "standard"  # the default
    n = _notification()
    first = datetime.now(UTC)

    # The same notification twice: a retry 2 minutes later.
    for now in (first - timedelta(seconds=120), first):
        result = await send(receiver, n, delivery_id="dlv-7", session=session, now=now)
        assert result == SendResult(ok=True, retryable=False, status=204)

    webhook = standardwebhooks.Webhook(STANDARD)
    for body, headers in zip(captured.bodies, captured.headers, strict=True):
        assert webhook.verify(body, headers) == generic_payload(n, delivery_id="dlv-7")
        assert headers["webhook-id"] == headers["X-Webcare-Delivery"] == "dlv-7"
        assert headers["X-Webcare-Schema"] == "webcare.alert.v1"
        assert "X-Webcare-Signature" not in headers
    # Stable id (receivers drop replays on it), a fresh timestamp and signature per attempt.
    first_headers, retry_headers = captured.headers
    assert first_headers["webhook-id"] == retry_headers["webhook-id"]
    assert int(retry_headers["webhook-timestamp"]) == int(first.timestamp())
    assert first_headers["webhook-signature"] != retry_headers["webhook-signature"]
    assert captured.bodies[0] == captured.bodies[1]

    body, headers = captured.bodies[1], captured.headers[1]
    # The documented recipe (SCHEMA.md) accepts it and refuses what the package refuses.
    read_alert = _documented_standard_reader()
    assert read_alert(STANDARD, body, headers) == orjson.loads(body)
    assert read_alert(STANDARD, body.replace(b"Jan Jansen", b"Eve Evil"), headers) is None
    with pytest.raises(standardwebhooks.WebhookVerificationError, match="No matching"):
        webhook.verify(body.replace(b"Jan Jansen", b"Eve Evil"), headers)
    with pytest.raises(standardwebhooks.WebhookVerificationError, match="No matching"):
        standardwebhooks.Webhook(
            "whsec_" + base64.b64encode(b"another-key-of-thirty-two-bytes!").decode()
        ).verify(body, headers)
    # Moving the timestamp into the window breaks the signature: it is signed.
    moved = {**headers, "webhook-timestamp": str(int(first.timestamp()) + 60)}
    with pytest.raises(standardwebhooks.WebhookVerificationError, match="No matching"):
        webhook.verify(body, moved)


async def test_an_old_standard_webhooks_delivery_is_refused_as_a_replay(
    receivers: tuple[TestServer, Captured], session: aiohttp.ClientSession
) -> None:
    server, captured = receivers
    receiver = _receiver("team", str(server.make_url("/webhook")), secret=SecretStr(STANDARD))

    # Signed ten minutes ago: captured then, replayed now.
    then = datetime.now(UTC) - timedelta(minutes=10)
    assert (await send(receiver, _notification(), delivery_id="d", session=session, now=then)).ok

    body, headers = captured.bodies[0], captured.headers[0]
    with pytest.raises(standardwebhooks.WebhookVerificationError, match="too old"):
        standardwebhooks.Webhook(STANDARD).verify(body, headers)
    assert _documented_standard_reader()(STANDARD, body, headers) is None


async def test_webhook_without_secret_is_sent_unsigned(
    receivers: tuple[TestServer, Captured], session: aiohttp.ClientSession
) -> None:
    server, captured = receivers
    receiver = _receiver("open", str(server.make_url("/webhook")))

    result = await send(receiver, _notification(), delivery_id="dlv-2", session=session, now=NOW)

    assert result.ok
    assert "X-Webcare-Signature" not in captured.headers[0]
    assert "webhook-signature" not in captured.headers[0]
    assert captured.headers[0]["X-Webcare-Delivery"] == "dlv-2"
    assert captured.headers[0]["webhook-id"] == "dlv-2"


async def test_slack_receiver_gets_the_block_kit_message(
    receivers: tuple[TestServer, Captured], session: aiohttp.ClientSession
) -> None:
    server, captured = receivers
    receiver = _receiver("team-slack", str(server.make_url(SLACK_PATH)), type="slack")
    n = _notification()

    result = await send(receiver, n, delivery_id="dlv-3", session=session, now=NOW)

    assert result == SendResult(ok=True, retryable=False, status=200)
    assert captured.headers[0]["Content-Type"] == "application/json"
    assert not any(h.startswith("X-Webcare") for h in captured.headers[0])
    body = orjson.loads(captured.bodies[0])
    assert body == slack_payload(n)
    assert [b["type"] for b in body["blocks"]] == ["header", "section", "context"]
    section = body["blocks"][1]["text"]["text"]
    assert "&lt;!channel&gt; @\u200bhere" in section
    assert "<https://www.facebook.com/123_456?comment_id=789|open>" in section
    assert "Waiting 22 min" in section and "due in 8 min" in section
    assert body["blocks"][2]["elements"][0]["text"] == "On duty: *anna* · backup: bob · lead: carol"


@pytest.mark.parametrize(
    ("query", "retry_after"),
    [
        ("retry_after=30", 30.0),
        (f"retry_after={format_datetime(NOW + timedelta(seconds=120), usegmt=True)}", 120.0),
        ("", None),
    ],
)
async def test_429_is_retryable_and_honours_retry_after(
    receivers: tuple[TestServer, Captured],
    session: aiohttp.ClientSession,
    query: str,
    retry_after: float | None,
) -> None:
    server, _ = receivers
    url = (
        server.make_url("/status/429").with_query(query)
        if query
        else server.make_url("/status/429")
    )
    receiver = _receiver("busy", str(url), type="slack")

    result = await send(receiver, _notification(), delivery_id="d", session=session, now=NOW)

    assert (result.ok, result.retryable, result.status) == (False, True, 429)
    assert result.retry_after == retry_after
    assert result.error is not None and result.error.startswith("receiver 'busy' (slack): HTTP 429")
    _assert_no_secret(result)


@pytest.mark.parametrize(
    ("code", "retryable"), [(500, True), (502, True), (503, True), (408, True)]
)
async def test_server_errors_and_408_are_retryable(
    receivers: tuple[TestServer, Captured],
    session: aiohttp.ClientSession,
    code: int,
    retryable: bool,
) -> None:
    server, _ = receivers
    receiver = _receiver("flaky", str(server.make_url(f"/status/{code}")), **LEGACY)

    result = await send(receiver, _notification(), delivery_id="d", session=session, now=NOW)

    assert (result.ok, result.retryable, result.status) == (False, retryable, code)
    assert result.retry_after is None
    # The receiver's body is shown cleaned to one short line: it may explain the failure.
    assert result.error == f"receiver 'flaky' (webhook): HTTP {code}: error <html> body"
    _assert_no_secret(result)


async def test_503_with_retry_after_passes_it_on(
    receivers: tuple[TestServer, Captured], session: aiohttp.ClientSession
) -> None:
    server, _ = receivers
    url = server.make_url("/status/503").with_query("retry_after=7")

    result = await send(
        _receiver("m", str(url)), _notification(), delivery_id="d", session=session, now=NOW
    )

    assert (result.retryable, result.retry_after) == (True, 7.0)


@pytest.mark.parametrize("code", [400, 401, 403, 404, 410, 422])
async def test_other_4xx_are_permanent(
    receivers: tuple[TestServer, Captured], session: aiohttp.ClientSession, code: int
) -> None:
    server, _ = receivers
    url = server.make_url(f"/status/{code}").with_query("body=invalid_payload")
    receiver = _receiver("hook", str(url), type="slack")

    result = await send(receiver, _notification(), delivery_id="d", session=session, now=NOW)

    assert result == SendResult(
        ok=False,
        retryable=False,
        status=code,
        error=f"receiver 'hook' (slack): HTTP {code}: invalid_payload",
    )


async def test_a_redirect_is_not_followed(
    receivers: tuple[TestServer, Captured], session: aiohttp.ClientSession
) -> None:
    server, captured = receivers
    receiver = _receiver("moved", str(server.make_url("/redirect")), **LEGACY)

    result = await send(receiver, _notification(), delivery_id="d", session=session, now=NOW)

    assert (result.ok, result.retryable, result.status) == (False, False, 302)
    assert captured.bodies == []  # the signed body did not travel on to the redirect target


async def test_a_hanging_receiver_times_out_and_does_not_hold_up_another(
    receivers: tuple[TestServer, Captured], session: aiohttp.ClientSession
) -> None:
    server, captured = receivers
    hanging = _receiver("stuck", str(server.make_url("/hang")), timeout=0.5)
    fast = _receiver("fast", str(server.make_url("/webhook")))

    stuck = asyncio.create_task(
        send(hanging, _notification(), delivery_id="d1", session=session, now=NOW)
    )
    # Completes while the hanging delivery is still waiting on the same session.
    done = await send(fast, _notification(), delivery_id="d2", session=session, now=NOW)
    assert done.ok and not stuck.done()
    # The bound only guards against a hang in this test; the receiver's timeout is 0.5 s.
    result = await asyncio.wait_for(stuck, timeout=30)

    assert result == SendResult(
        ok=False, retryable=True, error="receiver 'stuck' (webhook): timed out after 0.5 s"
    )
    assert len(captured.bodies) == 1


async def test_connection_refused_is_retryable_and_names_the_receiver(
    session: aiohttp.ClientSession,
) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nobody listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    receiver = _receiver("down", f"http://127.0.0.1:{port}{SLACK_PATH}", type="slack")

    result = await send(receiver, _notification(), delivery_id="d", session=session, now=NOW)

    assert (result.ok, result.retryable, result.status, result.retry_after) == (
        False,
        True,
        None,
        None,
    )
    assert result.error is not None
    assert result.error.startswith("receiver 'down' (slack): request failed: ClientConnectorError")
    _assert_no_secret(result)


async def test_console_receiver_prints_one_line(
    session: aiohttp.ClientSession, capsys: pytest.CaptureFixture[str]
) -> None:
    receiver = ReceiverConfig(name="console", type="console")
    n = _notification()

    result = await send(receiver, n, delivery_id="d", session=session, now=NOW)

    assert result == SendResult(ok=True, retryable=False)
    assert capsys.readouterr().out == console_line(n) + "\n"
