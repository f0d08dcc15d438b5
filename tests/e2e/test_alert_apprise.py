"""Apprise receivers end to end: the real service on a fake clock, a real SMTP server
(aiosmtpd on loopback) and a real JSON endpoint, reached through Apprise's mailto:// and
json:// URLs. Every alert kind arrives once, as a short text; an outage and a restart repeat
nothing and lose nothing; no password or token of an Apprise URL reaches a log line.
"""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import io
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from monitor.clock import FakeClock
from monitor.logging import configure_logging
from monitor.simulator.graph_api import FakeGraphApi
from monitor.web.keys import ALERTS, COORDINATOR
from tests.e2e.conftest import settle
from tests.e2e.test_alerts import ANN, T0, advance_to
from tests.e2e.test_escalation import DUE, WARN, start, stop

MAIL_USER = "webcare-alerts"
MAIL_PASSWORD = "Mail-pw-7c1e9a"
JSON_USER = "hookuser"
JSON_PASSWORD = "Json-pw-2b8d4f"
JSON_TOKEN = "hook-9f8e7d6c5b4a3210"  # a token-shaped path segment, as many services use
SECRETS = (MAIL_PASSWORD, JSON_PASSWORD, JSON_TOKEN)
# Sunday 25 October 2026 (CET after 01:00 UTC): the day shift starts at 08:00 = 07:00 UTC.
DAY_STARTS = datetime(2026, 10, 25, 7, 0, tzinfo=UTC)
ALERTS_ALL = """
[alerts]
escalate_after = "10m"
remind_every = "7m"
handover = "always"
"""
ALERTS_QUIET = """
[alerts]
escalate_to = []
remind_every = "off"
handover = "off"
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Mailbox:
    """What the SMTP server accepted, and the logins it saw."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.logins: list[tuple[str, str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 OK"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False)
        login, password = data.login.decode(), data.password.decode()
        self.logins.append((login, password))
        return AuthResult(success=(login, password) == (MAIL_USER, MAIL_PASSWORD))

    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in self.messages]

    def text(self, number: int) -> str:
        part = self.messages[number].get_body(preferencelist=("plain",))
        assert part is not None
        content: str = part.get_content()
        return content


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=port,
        authenticator=box.authenticate,
        auth_require_tls=False,  # loopback only; real relays get mailtos://
    )
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


class JsonEndpoint:
    """Apprise's json:// target: records each POST; down (503) until an instant, on demand."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.bodies: list[dict[str, Any]] = []
        self.attempts = 0
        self.down_until: datetime | None = None
        self.unauthorised = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.attempts += 1
        if self.down_until is not None and self.clock.now() < self.down_until:
            return web.Response(status=503)
        expected = base64.b64encode(f"{JSON_USER}:{JSON_PASSWORD}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}":
            self.unauthorised += 1
            return web.Response(status=401)
        self.bodies.append(orjson.loads(await request.read()))
        return web.Response(text="ok")

    def titles(self) -> list[str]:
        return [b["title"] for b in self.bodies]


async def json_port(aiohttp_server: Any, endpoint: JsonEndpoint) -> int:
    app = web.Application()
    app.router.add_post(f"/alerts/{JSON_TOKEN}", endpoint.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    port: int = server.port
    return port


def receivers(smtp_port: int | None, http_port: int) -> str:
    blocks = ""
    if smtp_port is not None:
        mail = (
            f"mailto://{MAIL_USER}:{MAIL_PASSWORD}@127.0.0.1:{smtp_port}"
            "?from=webcare@example.org&to=night-nina@example.org&mode=insecure"
        )
        blocks += f'[[receivers]]\nname = "phone-mail"\ntype = "apprise"\nurls = ["{mail}"]\n'
    hook = f"json://{JSON_USER}:{JSON_PASSWORD}@127.0.0.1:{http_port}/alerts/{JSON_TOKEN}"
    blocks += (
        f'[[receivers]]\nname = "phone-json"\ntype = "apprise"\nurls = ["{hook}"]\ntimeout = "3s"\n'
    )
    return blocks


def logs_to(buffer: io.StringIO, app: web.Application) -> None:
    """Debug-level JSON logs, redacted as the service redacts them (its config's secrets)."""
    from monitor.web.keys import CONFIG

    configure_logging(level="debug", fmt="json", secrets=app[CONFIG].secrets(), stream=buffer)


def assert_no_secret(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} in {where}"


async def test_every_kind_arrives_once_by_mail_and_json_as_a_short_text(
    graph: FakeGraphApi,
    tmp_path: Path,
    aiohttp_client: Any,
    aiohttp_server: Any,
    mailbox: tuple[Mailbox, int],
) -> None:
    box, smtp_port = mailbox
    clock = FakeClock(T0 + timedelta(minutes=1))
    endpoint = JsonEndpoint(clock)
    hooks = receivers(smtp_port, await json_port(aiohttp_server, endpoint))
    post = graph.add_post(created_time=T0 - timedelta(hours=1), message="Night deals")
    graph.add_comment(post_id=post, created_time=T0, message="Is my order lost?", author=ANN)
    app, _client = await start(graph, tmp_path, aiohttp_client, clock, hooks, alerts=ALERTS_ALL)
    buffer = io.StringIO()
    logs_to(buffer, app)
    await app[COORDINATOR].poll_once("acme-fb")

    def both(count: int) -> bool:
        return len(box.messages) == count and len(endpoint.bodies) == count

    await advance_to(clock, WARN)
    await settle(lambda: both(1), "the warnings")
    await advance_to(clock, DUE)
    await settle(lambda: both(2), "the breaches")
    await advance_to(clock, DUE + timedelta(minutes=10))
    await settle(lambda: both(4), "the reminder and the escalation")
    graph.add_comment(post_id=post, created_time=DUE + timedelta(minutes=11), message="Here!")
    await advance_to(clock, DUE + timedelta(minutes=12))
    await app[COORDINATOR].poll_once("acme-fb")
    await settle(lambda: both(5), "the resolutions")
    await advance_to(clock, DAY_STARTS)
    await settle(lambda: both(6), "the morning handover")
    await asyncio.sleep(0.3)
    assert both(6)  # once each

    titles = [
        "Warning: 1 consumer post due soon on acme-fb (acme)",
        "Breach: 1 consumer post past target on acme-fb (acme)",
        "Reminder 1: 1 consumer post still past target on acme-fb (acme)",
        "Escalation to backup night-bram: 1 consumer post past target on acme-fb (acme)",
        "Resolved: 1 consumer post on acme-fb (acme)",
        "Handover: nothing waiting on acme-fb (acme)",
    ]
    assert endpoint.titles() == titles
    assert box.subjects() == titles
    assert [b["type"] for b in endpoint.bodies] == [
        "warning",
        "failure",
        "failure",
        "failure",
        "success",
        "info",
    ]
    assert all(set(b) >= {"version", "title", "message", "type"} for b in endpoint.bodies)
    assert endpoint.unauthorised == 0
    assert box.logins and all(login == (MAIL_USER, MAIL_PASSWORD) for login in box.logins)
    assert all(str(m["To"]) == "night-nina@example.org" for m in box.messages)
    assert all(str(m["From"]) == "webcare@example.org" for m in box.messages)

    # The warning, as a phone shows it: brand, platform, local time with its offset (the
    # night the clocks went back: 02:12 CET, +01:00), what was asked, how long it waits,
    # the post and the acknowledge link.
    warning = endpoint.bodies[0]["message"]
    lines = warning.splitlines()
    assert lines[0] == "acme · Facebook · 02:12 CET (+01:00)"
    assert 'Ann: "Is my order lost?"' in lines
    assert "Waiting 22 min, due in 7 min (02:20 CET (+01:00))" in lines
    assert any(line.startswith("https://www.facebook.com/") for line in lines)
    assert any(line.startswith("Ack: https://webcare.test/act/") for line in lines)
    assert lines[-2] == "On duty: night-nina (backup night-bram, lead lead-lisa)."
    assert lines[-1] == "Queue: https://webcare.test/"
    assert max(len(line) for line in lines if "://" not in line) <= 100
    assert [line.rstrip() for line in box.text(0).strip().splitlines()] == lines
    breach = endpoint.bodies[1]["message"]
    assert "Waiting 30 min, past due (02:20 CET (+01:00))" in breach
    assert "For backup night-bram." in endpoint.bodies[3]["message"]
    resolved = endpoint.bodies[4]["message"]
    assert "Answered late by Acme after 41 min" in resolved
    assert "Ack:" not in resolved
    handover = endpoint.bodies[5]["message"]
    assert handover.splitlines()[0] == "acme · Facebook · 08:00 CET (+01:00)"
    assert "For student day-dirk." in handover

    await stop(app)
    output = buffer.getvalue()
    assert '"logger":"apprise"' in output  # Apprise's own debug lines went through the logger
    assert_no_secret(output, "the logs")


async def test_an_outage_then_a_restart_deliver_each_once(
    graph: FakeGraphApi,
    tmp_path: Path,
    aiohttp_client: Any,
    aiohttp_server: Any,
    mailbox: tuple[Mailbox, int],
) -> None:
    box, smtp_port = mailbox
    clock = FakeClock(T0 + timedelta(minutes=1))
    endpoint = JsonEndpoint(clock)
    endpoint.down_until = WARN + timedelta(minutes=5)  # back before the breach
    hooks = receivers(smtp_port, await json_port(aiohttp_server, endpoint))
    post = graph.add_post(created_time=T0 - timedelta(hours=1), message="Night deals")
    graph.add_comment(post_id=post, created_time=T0, message="Is my order lost?", author=ANN)
    first, _client = await start(graph, tmp_path, aiohttp_client, clock, hooks, alerts=ALERTS_QUIET)
    buffer = io.StringIO()
    logs_to(buffer, first)
    await first[COORDINATOR].poll_once("acme-fb")

    # The warning: the mail goes out, the JSON endpoint answers 503 and is retried.
    await advance_to(clock, WARN)
    await settle(lambda: len(box.messages) == 1, "the warning by mail")
    await settle(lambda: endpoint.attempts >= 1, "a first try of the JSON endpoint")
    for _ in range(6):  # a minute of retries while it is down
        await clock.advance(10)
        await asyncio.sleep(0.05)
    assert endpoint.bodies == []
    tried = endpoint.attempts
    assert tried >= 2
    (row,) = await first[ALERTS].outbox.rows("phone-json")
    assert row["state"] == "pending"
    assert row["last_error"].startswith("receiver 'phone-json' (apprise): URL 1 of 1 (json):")
    assert_no_secret(row["last_error"], "the outbox's last_error")
    await stop(first)

    # A restart while the notification waits; the endpoint comes back meanwhile.
    second, _client = await start(
        graph, tmp_path, aiohttp_client, clock, hooks, alerts=ALERTS_QUIET
    )
    logs_to(buffer, second)
    await advance_to(clock, endpoint.down_until + timedelta(seconds=1))
    while clock.now() < DUE - timedelta(seconds=10) and not endpoint.bodies:
        await clock.advance(10)
        await asyncio.sleep(0.05)
    await settle(lambda: len(endpoint.bodies) == 1, "the warning, once, after the outage")
    assert endpoint.attempts > tried  # retried after the restart
    await asyncio.sleep(0.3)
    assert len(box.messages) == 1  # the mail it had before the restart is not sent again
    assert endpoint.titles() == ["Warning: 1 consumer post due soon on acme-fb (acme)"]

    await advance_to(clock, DUE)
    await settle(lambda: len(box.messages) == 2 and len(endpoint.bodies) == 2, "the breaches")
    await asyncio.sleep(0.3)
    assert [s.split(":")[0] for s in box.subjects()] == ["Warning", "Breach"]
    assert [t.split(":")[0] for t in endpoint.titles()] == ["Warning", "Breach"]
    assert (await second[ALERTS].outbox.pending_counts()).get("phone-json", 0) == 0
    rows = await second[ALERTS].outbox.rows()
    assert {r["state"] for r in rows} == {"delivered"}
    for r in rows:
        assert_no_secret(str(r["last_error"]), "the outbox")
    await stop(second)
    assert_no_secret(buffer.getvalue(), "the logs")
    assert "alert receiver failing; will retry" in buffer.getvalue()
