"""Alerts end to end: fake Facebook, the real service on a fake clock, real HTTP receivers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from monitor.alerts.signing import verify, verify_standard
from monitor.app import create_app
from monitor.clock import FakeClock
from monitor.config import ConfigError, load_config
from monitor.simulator.graph_api import FakeGraphApi
from monitor.web.keys import ALERTS, COORDINATOR
from tests.e2e.conftest import write_config

# A Standard Webhooks secret (whsec_ + base64 of 32 bytes); a legacy receiver may use it too.
SECRET = "whsec_d2ViY2FyZS1lMmUtcmVjZWl2ZXIta2V5LTMyYnl0ZXM="
ANN = ("9001", "Ann")
# Sunday 25 October 2026: Amsterdam falls back from 03:00 CEST to 02:00 CET at 01:00 UTC.
T0 = datetime(2026, 10, 25, 0, 50, tzinfo=UTC)  # 02:50 CEST, after hours: target 30 min
ROSTER = """
[roster]
timezone = "Europe/Amsterdam"
lead = "lead-lisa"
[[roster.shifts]]
when = "mon-sun 08:00-20:00"
student = "day-dirk"
[[roster.shifts]]
when = "mon-sun 20:00-08:00"
student = "night-nina"
backup = "night-bram"
"""


class Receiver:
    """A real webhook receiver on 127.0.0.1 that can be down, or hang, on demand."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.bodies: list[dict[str, Any]] = []
        self.attempts = 0
        self.down_until: datetime | None = None
        self.hang = False
        self.bad_signatures = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.attempts += 1
        if self.hang:
            await asyncio.sleep(3600)
        if self.down_until is not None and self.clock.now() < self.down_until:
            return web.Response(status=503)
        body = await request.read()
        now = int(self.clock.now().timestamp())
        if "webhook-signature" in request.headers:  # Standard Webhooks, the default
            ok = verify_standard(SECRET, body, request.headers, now=now)
            assert request.headers["webhook-id"] == request.headers["X-Webcare-Delivery"]
        else:  # signature = "legacy"
            ok = verify(SECRET, body, request.headers.get("X-Webcare-Signature", ""), now=now)
        if not ok:
            self.bad_signatures += 1
            return web.Response(status=401)
        payload = orjson.loads(body)
        assert payload["delivery_id"] == request.headers["X-Webcare-Delivery"]
        self.bodies.append(payload)
        return web.Response(text="ok")

    def kinds(self) -> list[str]:
        return [b["kind"] for b in self.bodies]


async def receiver_url(aiohttp_server: Any, receiver: Receiver) -> str:
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    server = await aiohttp_server(app)
    return str(server.make_url("/hook"))


def receiver_block(name: str, url: str, timeout: str = "5s") -> str:
    return (
        f'[[receivers]]\nname = "{name}"\ntype = "webhook"\nurl = "{url}"\n'
        f'secret = "{SECRET}"\ntimeout = "{timeout}"\n'
    )


async def settle(condition: Callable[[], bool], what: str, seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.01)


async def start(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any, clock: FakeClock, receivers: str
) -> Any:
    path = write_config(
        tmp_path / "c.toml",
        api_base_url=graph.base_url,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/a.db",
    )
    path.write_text(path.read_text() + ROSTER + receivers)
    app = create_app(load_config(path), clock=clock, start_polling=False)
    await aiohttp_client(app)
    return app


async def advance_to(clock: FakeClock, at: datetime) -> None:
    await clock.advance((at - clock.now()).total_seconds())


async def test_warning_breach_resolution_once_each_across_a_restart_and_the_dst_night(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any, aiohttp_server: Any
) -> None:
    clock = FakeClock(T0 + timedelta(minutes=1))
    receiver = Receiver(clock)
    hooks = receiver_block("team", await receiver_url(aiohttp_server, receiver))
    post = graph.add_post(created_time=T0 - timedelta(hours=1), message="Night deals")
    graph.add_comment(post_id=post, created_time=T0, message="Is my order lost?", author=ANN)

    first = await start(graph, tmp_path, aiohttp_client, clock, hooks)
    await first[COORDINATOR].poll_once("acme-fb")
    # Warning at 75% of 30 min = 01:12:30 UTC, i.e. 02:12:30 CET in the repeated hour.
    await advance_to(clock, T0 + timedelta(minutes=22, seconds=29))
    await asyncio.sleep(0.1)
    assert receiver.bodies == []
    await advance_to(clock, T0 + timedelta(minutes=22, seconds=30))
    await settle(lambda: receiver.kinds() == ["warning"], "the warning")
    warning = receiver.bodies[0]
    assert warning["on_duty"] == {
        "student": "night-nina",
        "backup": "night-bram",
        "lead": "lead-lisa",
    }
    assert warning["created_at"] == "2026-10-25T01:12:30Z"
    assert warning["items"][0]["excerpt"] == "Is my order lost?"
    assert warning["items"][0]["due_at"] == "2026-10-25T01:20:00Z"
    assert warning["schema"] == "webcare.alert.v1"
    await first.shutdown()
    await first.cleanup()

    # A restart between warning and due: nothing is sent again.
    second = await start(graph, tmp_path, aiohttp_client, clock, hooks)
    await asyncio.sleep(0.2)
    assert receiver.kinds() == ["warning"]
    await advance_to(clock, T0 + timedelta(minutes=30))
    await settle(lambda: receiver.kinds() == ["warning", "breach"], "the breach at due time")
    assert receiver.bodies[1]["created_at"] == "2026-10-25T01:20:00Z"

    graph.add_comment(post_id=post, created_time=T0 + timedelta(minutes=35), message="Found it!")
    await advance_to(clock, T0 + timedelta(minutes=36))
    await second[COORDINATOR].poll_once("acme-fb")
    await settle(lambda: len(receiver.bodies) == 3, "the resolution")
    resolved = receiver.bodies[2]
    assert resolved["kind"] == "resolved"
    assert resolved["items"][0]["state"] == "answered_late"
    assert resolved["items"][0]["responder"] == "Acme"
    await asyncio.sleep(0.2)
    assert receiver.kinds() == ["warning", "breach", "resolved"]
    assert len({b["delivery_id"] for b in receiver.bodies}) == 3
    assert receiver.bad_signatures == 0


async def test_receiver_down_for_ten_minutes_gets_everything_once_in_order(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any, aiohttp_server: Any
) -> None:
    clock = FakeClock(T0 + timedelta(minutes=1))
    receiver = Receiver(clock)
    receiver.down_until = T0 + timedelta(minutes=22, seconds=30) + timedelta(minutes=10)
    hooks = receiver_block("team", await receiver_url(aiohttp_server, receiver))
    post = graph.add_post(created_time=T0 - timedelta(hours=1), message="Night deals")
    graph.add_comment(post_id=post, created_time=T0, message="First?", author=ANN)
    graph.add_comment(
        post_id=post,
        created_time=T0 + timedelta(minutes=1),
        message="Second?",
        author=("9002", "Bob"),
    )
    app = await start(graph, tmp_path, aiohttp_client, clock, hooks)
    await app[COORDINATOR].poll_once("acme-fb")
    # Step the clock ten seconds at a time through the outage and on until all arrived
    # (retries back off to at most 5 minutes apart).
    end = T0 + timedelta(minutes=60)
    while clock.now() < end and len(receiver.bodies) < 4:
        await clock.advance(10)
        await asyncio.sleep(0.02)
    assert len(receiver.bodies) == 4, (receiver.attempts, receiver.bad_signatures, clock.now())
    assert clock.now() > receiver.down_until
    await asyncio.sleep(0.2)
    assert receiver.attempts > len(receiver.bodies)  # it really was down and retried
    assert len({b["delivery_id"] for b in receiver.bodies}) == 4  # exactly once each
    per_item: dict[str, list[str]] = {}
    for body in receiver.bodies:
        for item in body["items"]:
            per_item.setdefault(item["excerpt"], []).append(body["kind"])
    assert per_item == {"First?": ["warning", "breach"], "Second?": ["warning", "breach"]}
    pending = app[ALERTS].outbox
    assert (await pending.pending_counts()).get("team", 0) == 0


async def test_a_hanging_receiver_does_not_delay_another(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any, aiohttp_server: Any
) -> None:
    clock = FakeClock(T0 + timedelta(minutes=1))
    stuck, healthy = Receiver(clock), Receiver(clock)
    stuck.hang = True
    hooks = receiver_block(
        "stuck", await receiver_url(aiohttp_server, stuck), timeout="3s"
    ) + receiver_block("healthy", await receiver_url(aiohttp_server, healthy))
    post = graph.add_post(created_time=T0 - timedelta(hours=1), message="Night deals")
    graph.add_comment(post_id=post, created_time=T0, message="Hello?", author=ANN)
    app = await start(graph, tmp_path, aiohttp_client, clock, hooks)
    await app[COORDINATOR].poll_once("acme-fb")
    started = time.monotonic()
    await advance_to(clock, T0 + timedelta(minutes=22, seconds=30))
    await settle(lambda: healthy.kinds() == ["warning"], "the healthy receiver's warning")
    assert time.monotonic() - started < 2  # well below the stuck receiver's 3 s timeout
    await settle(lambda: stuck.attempts == 1, "the stuck receiver to be tried")
    assert stuck.bodies == []


def test_bad_receiver_and_roster_entries_are_config_errors_with_key_paths(
    tmp_path: Path,
) -> None:
    path = write_config(
        tmp_path / "c.toml",
        api_base_url="http://127.0.0.1:9/v26.0",
        database_url=f"sqlite+aiosqlite:///{tmp_path}/x.db",
    )
    path.write_text(
        path.read_text()
        + '[[receivers]]\nname = "x"\ntype = "webhook"\nurl = "not a url"\n'
        + '[[roster.shifts]]\nwhen = "someday 17:00-23:00"\nstudent = "a"\n'
    )
    try:
        load_config(path)
    except ConfigError as err:
        problems = "\n".join(err.problems)
    else:
        raise AssertionError("config accepted")
    assert "receivers[0].url: must be an http:// or https:// URL" in problems
    assert "roster.shifts[0].when:" in problems
