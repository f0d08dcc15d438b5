"""Escalation, reminders, ack and dismiss end to end: fake Facebook, a fake clock, real HTTP.

Night shift: night-nina on duty, night-bram backup, lead-lisa lead. The item is posted at T0
(after hours, 30 min target), so it breaches at D = T0 + 30 min. With escalate_after 10 min
and remind_every 7 min: reminders at D+7, D+14, D+21, ...; the backup at D+10, the lead at
D+20. Each must fire at its instant, exactly once, across a restart, and stop on ack, reply
or dismissal.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from monitor.app import create_app
from monitor.clock import FakeClock
from monitor.config import load_config
from monitor.simulator.graph_api import FakeGraphApi
from monitor.web.keys import COORDINATOR, STORE
from tests.e2e.conftest import write_config
from tests.e2e.test_alerts import (
    ANN,
    ROSTER,
    SECRET,
    T0,
    Receiver,
    advance_to,
    receiver_block,
    receiver_url,
    settle,
)

DUE = T0 + timedelta(minutes=30)
WARN = T0 + timedelta(minutes=22, seconds=30)
API_TOKEN = "escalation-test-token"
ALERTS = """
[alerts]
escalate_after = "10m"
remind_every = "7m"
handover = "off"
"""
HTTP = f"""
[[http.api_tokens]]
token = "{API_TOKEN}"
name = "nina-phone"
"""
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
# A receiver that keeps the legacy X-Webcare-Signature header.
SECRET_BLOCK = (
    '[[receivers]]\nname = "{name}"\ntype = "webhook"\nurl = "{url}"\n'
    f'secret = "{SECRET}"\nsignature = "legacy"\n'
)


def steps(receiver: Receiver) -> list[tuple[str, int | None, str | None, str]]:
    """(kind, step, addressed to, created_at) of every delivery, in order."""
    return [
        (
            b["kind"],
            b.get("step"),
            (b.get("addressed_to") or {}).get("name"),
            b["created_at"],
        )
        for b in receiver.bodies
    ]


def z(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


async def start(
    graph: FakeGraphApi,
    tmp_path: Path,
    aiohttp_client: Any,
    clock: FakeClock,
    receivers: str,
    alerts: str = ALERTS,
) -> tuple[web.Application, Any]:
    path = write_config(
        tmp_path / "c.toml",
        api_base_url=graph.base_url,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/a.db",
    )
    text = path.read_text().replace("[http]\n", "[http]\npublic_url = 'https://webcare.test'\n")
    path.write_text(text + HTTP + ROSTER + alerts + receivers)
    app = create_app(load_config(path), clock=clock, start_polling=False)
    client = await aiohttp_client(app)
    return app, client


async def stop(app: web.Application) -> None:
    await app.shutdown()
    await app.cleanup()


async def nothing_new(receiver: Receiver, count: int) -> None:
    await asyncio.sleep(0.15)
    assert len(receiver.bodies) == count, steps(receiver)[count:]


async def step_to(clock: FakeClock, receiver: Receiver, at: datetime, expected: int) -> None:
    """One second before `at` nothing new arrives; at `at` exactly `expected` bodies."""
    before = len(receiver.bodies)
    await advance_to(clock, at - timedelta(seconds=1))
    await nothing_new(receiver, before)
    await advance_to(clock, at)
    await settle(lambda: len(receiver.bodies) >= expected, f"{expected} deliveries at {at}")
    await nothing_new(receiver, expected)


async def item_id(app: web.Application) -> int:
    (item,) = await app[STORE].unanswered_items()
    return item.message_id


async def test_each_step_fires_once_at_its_instant_across_a_restart_and_ack_stops_them(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any, aiohttp_server: Any
) -> None:
    clock = FakeClock(T0 + timedelta(minutes=1))
    receiver = Receiver(clock)
    hooks = receiver_block("team", await receiver_url(aiohttp_server, receiver))
    post = graph.add_post(created_time=T0 - timedelta(hours=1), message="Night deals")
    graph.add_comment(post_id=post, created_time=T0, message="Where is my parcel?", author=ANN)

    app, _client = await start(graph, tmp_path, aiohttp_client, clock, hooks)
    await app[COORDINATOR].poll_once("acme-fb")
    await advance_to(clock, WARN)
    await settle(lambda: receiver.kinds() == ["warning"], "the warning")
    await advance_to(clock, DUE)
    await settle(lambda: receiver.kinds() == ["warning", "breach"], "warning and breach")
    await step_to(clock, receiver, DUE + timedelta(minutes=7), 3)  # reminder 1
    await step_to(clock, receiver, DUE + timedelta(minutes=10), 4)  # backup
    await stop(app)

    # A restart between the steps: nothing is sent again, and the plan goes on.
    app, client = await start(graph, tmp_path, aiohttp_client, clock, hooks)
    await nothing_new(receiver, 4)
    await step_to(clock, receiver, DUE + timedelta(minutes=14), 5)  # reminder 2
    await step_to(clock, receiver, DUE + timedelta(minutes=20), 6)  # lead
    await step_to(clock, receiver, DUE + timedelta(minutes=21), 7)  # reminder 3
    assert steps(receiver)[1:] == [
        ("breach", None, "night-nina", z(DUE)),
        ("reminder", 1, "night-nina", z(DUE + timedelta(minutes=7))),
        ("escalation", 1, "night-bram", z(DUE + timedelta(minutes=10))),
        ("reminder", 2, "night-nina", z(DUE + timedelta(minutes=14))),
        ("escalation", 2, "lead-lisa", z(DUE + timedelta(minutes=20))),
        ("reminder", 3, "night-nina", z(DUE + timedelta(minutes=21))),
    ]
    escalation = receiver.bodies[3]
    assert escalation["addressed_to"] == {"role": "backup", "name": "night-bram"}
    assert escalation["items"][0]["excerpt"] == "Where is my parcel?"
    assert escalation["items"][0]["ack_url"].startswith("https://webcare.test/act/")

    # Ack: no more reminders, and no response is faked: the item is still breached. Where the
    # alerts were seen, the ack is announced within a second, so the backup leaves it be.
    ident = await item_id(app)
    acked_at = time.monotonic()
    response = await client.post(f"/api/v1/items/{ident}/ack", headers=AUTH)
    assert response.status == 200, await response.text()
    await settle(lambda: len(receiver.bodies) == 8, "the ack announced")
    assert time.monotonic() - acked_at < 1.0
    taken = receiver.bodies[7]
    assert (taken["kind"], taken["addressed_to"]) == ("taken", None)
    assert taken["items"][0]["acked_by"] == "nina-phone"
    assert taken["items"][0]["state"] == "breached"
    acked = await response.json()
    assert acked["state"] == "breached"
    assert acked["acked_by"] == "nina-phone"
    assert acked["changed"] is True
    again = await client.post(f"/api/v1/items/{ident}/ack", json={"by": "x"}, headers=AUTH)
    assert (await again.json())["changed"] is False
    for minutes in (28, 30, 35, 60, 120):
        await advance_to(clock, DUE + timedelta(minutes=minutes))
    await nothing_new(receiver, 8)
    listed = await client.get("/api/v1/items?state=breached", headers=AUTH)
    (row,) = (await listed.json())["rows"]
    assert row["state"] == "breached"
    assert row["responded_at"] is None
    await stop(app)
    app, _client = await start(graph, tmp_path, aiohttp_client, clock, hooks)
    await advance_to(clock, DUE + timedelta(hours=3))
    await nothing_new(receiver, 8)  # the ack holds across a restart
    assert len({b["delivery_id"] for b in receiver.bodies}) == 8
    assert receiver.bad_signatures == 0


async def test_a_reply_stops_escalation_and_reminders(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any, aiohttp_server: Any
) -> None:
    clock = FakeClock(T0 + timedelta(minutes=1))
    receiver = Receiver(clock)
    hooks = receiver_block("team", await receiver_url(aiohttp_server, receiver))
    post = graph.add_post(created_time=T0 - timedelta(hours=1), message="Night deals")
    graph.add_comment(post_id=post, created_time=T0, message="Anyone there?", author=ANN)
    app, _client = await start(graph, tmp_path, aiohttp_client, clock, hooks)
    await app[COORDINATOR].poll_once("acme-fb")
    await advance_to(clock, WARN)
    await settle(lambda: receiver.kinds() == ["warning"], "the warning")
    await advance_to(clock, DUE)
    await settle(lambda: len(receiver.bodies) == 2, "the breach")
    await advance_to(clock, DUE + timedelta(minutes=7))
    await settle(lambda: len(receiver.bodies) == 3, "warning, breach, reminder")
    graph.add_comment(post_id=post, created_time=DUE + timedelta(minutes=8), message="Yes!")
    await advance_to(clock, DUE + timedelta(minutes=9))
    await app[COORDINATOR].poll_once("acme-fb")
    await settle(lambda: receiver.kinds()[-1:] == ["resolved"], "the resolution")
    for minutes in (10, 14, 20, 21, 60):
        await advance_to(clock, DUE + timedelta(minutes=minutes))
    await nothing_new(receiver, 4)
    assert receiver.kinds() == ["warning", "breach", "reminder", "resolved"]


async def test_dismiss_stops_escalation_leaves_the_figures_and_survives_later_polls(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any, aiohttp_server: Any
) -> None:
    clock = FakeClock(T0 + timedelta(minutes=1))
    receiver = Receiver(clock)
    hooks = receiver_block("team", await receiver_url(aiohttp_server, receiver))
    post = graph.add_post(created_time=T0 - timedelta(hours=1), message="Night deals")
    comment = graph.add_comment(post_id=post, created_time=T0, message="BUY CHEAP", author=ANN)
    app, client = await start(graph, tmp_path, aiohttp_client, clock, hooks)
    await app[COORDINATOR].poll_once("acme-fb")
    await advance_to(clock, WARN)
    await settle(lambda: receiver.kinds() == ["warning"], "the warning")
    await advance_to(clock, DUE + timedelta(minutes=2))
    await settle(lambda: receiver.kinds() == ["warning", "breach"], "warning and breach")
    ident = await item_id(app)

    bad = await client.post(
        f"/api/v1/items/{ident}/dismiss", json={"reason": "bored"}, headers=AUTH
    )
    assert bad.status == 400
    assert (await client.post(f"/api/v1/items/{ident}/dismiss")).status == 401
    response = await client.post(
        f"/api/v1/items/{ident}/dismiss", json={"reason": "spam"}, headers=AUTH
    )
    assert response.status == 200, await response.text()
    assert (await response.json())["state"] == "dismissed"
    await settle(lambda: receiver.kinds()[-1:] == ["resolved"], "the resolution")
    assert receiver.bodies[-1]["items"][0]["state"] == "dismissed"
    conflict = await client.post(f"/api/v1/items/{ident}/ack", headers=AUTH)
    assert conflict.status == 409

    # Later polls: a brand reply, hiding and un-hiding: the moderator's decision stands.
    graph.add_comment(post_id=post, created_time=DUE + timedelta(minutes=3), message="Hi")
    await advance_to(clock, DUE + timedelta(minutes=4))
    await app[COORDINATOR].poll_once("acme-fb")
    graph.hide(comment)
    await app[COORDINATOR].poll_once("acme-fb")
    graph.unhide(comment)
    await app[COORDINATOR].poll_once("acme-fb")
    for minutes in (7, 10, 20, 60):
        await advance_to(clock, DUE + timedelta(minutes=minutes))
    await nothing_new(receiver, 3)
    (item,) = (await app[STORE].items_by_id([ident])).values()
    assert (item.state.value, item.dismissed_reason) == ("dismissed", "spam")
    report = await client.get(
        "/api/v1/report?since=2026-10-24T00:00:00Z&until=2026-10-26T00:00:00Z", headers=AUTH
    )
    rows = (await report.json())["rows"]
    (overall,) = [r for r in rows if r["brand"] == "*" and r["period"] == "all"]
    assert (overall["items"], overall["dismissed"], overall["breached_open"]) == (1, 1, 0)
    assert overall["compliance"] is None
    metrics = await (await client.get("/metrics")).text()
    assert 'webcare_items_dismissed_total{brand="acme",reason="spam",source="acme-fb"} 1.0' in (
        metrics
    )


async def test_steps_missed_while_down_fire_once_each_and_reminders_collapse(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any, aiohttp_server: Any
) -> None:
    clock = FakeClock(T0 + timedelta(minutes=1))
    receiver = Receiver(clock)
    hooks = receiver_block("team", await receiver_url(aiohttp_server, receiver))
    post = graph.add_post(created_time=T0 - timedelta(hours=1), message="Night deals")
    graph.add_comment(post_id=post, created_time=T0, message="Hello?", author=ANN)
    app, _client = await start(graph, tmp_path, aiohttp_client, clock, hooks)
    await app[COORDINATOR].poll_once("acme-fb")
    await advance_to(clock, WARN)
    await settle(lambda: receiver.kinds() == ["warning"], "the warning")
    await advance_to(clock, DUE + timedelta(minutes=1))
    await settle(lambda: len(receiver.bodies) == 2, "warning and breach")
    await stop(app)
    await advance_to(clock, DUE + timedelta(minutes=25))  # down through D+7 .. D+21
    app, _client = await start(graph, tmp_path, aiohttp_client, clock, hooks)
    await settle(lambda: len(receiver.bodies) == 5, "the missed steps")
    await nothing_new(receiver, 5)
    assert steps(receiver)[2:] == [
        ("escalation", 1, "night-bram", z(DUE + timedelta(minutes=10))),
        ("escalation", 2, "lead-lisa", z(DUE + timedelta(minutes=20))),
        ("reminder", 3, "night-nina", z(DUE + timedelta(minutes=21))),
    ]
    await step_to(clock, receiver, DUE + timedelta(minutes=28), 6)
    assert steps(receiver)[-1][:2] == ("reminder", 4)
