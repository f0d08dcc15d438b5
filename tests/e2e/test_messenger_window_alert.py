"""Messenger reply windows: the on-duty student is warned 2 h before a window closes, once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from monitor.app import create_app
from monitor.clock import FakeClock
from monitor.config import load_config
from monitor.simulator.graph_api import FakeGraphApi
from monitor.web.keys import COORDINATOR
from tests.e2e.conftest import PAGE_ID, TOKEN, write_config
from tests.e2e.test_alerts import ROSTER, SECRET, Receiver, advance_to, receiver_url, settle

T0 = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)  # Friday 19:00 CET
ANN = ("24000000000001", "Ann")
BOB = ("24000000000002", "Bob")


async def start(graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any, url: str) -> Any:
    extra = f"""
[[sources]]
type = "messenger"
name = "acme-messenger"
brand = "acme"
page_id = "{PAGE_ID}"
access_token = "{TOKEN}"
api_base_url = "{graph.base_url}"
"""
    path = write_config(
        tmp_path / "c.toml",
        api_base_url=graph.base_url,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/w.db",
        extra=extra,
    )
    receivers = (
        f'[[receivers]]\nname = "windows"\ntype = "webhook"\nurl = "{url}"\n'
        f'secret = "{SECRET}"\nkinds = ["window"]\n'
    )
    path.write_text(path.read_text() + ROSTER + receivers)
    clock = FakeClock(T0 + timedelta(hours=2))
    app = create_app(load_config(path), clock=clock, start_polling=False)
    await aiohttp_client(app)
    return app, clock


async def test_a_closing_window_is_warned_once_and_only_for_unanswered_messenger_items(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any, aiohttp_server: Any
) -> None:
    ann = graph.add_conversation(ANN)
    graph.add_message(ann, created_time=T0, message="Order 42?", from_page=False)
    # Her last message: the window closes 24 h after it (T0 + 25 h), the warning at T0 + 23 h.
    graph.add_message(ann, created_time=T0 + timedelta(hours=1), message="Hello?", from_page=False)
    bob = graph.add_conversation(BOB)
    graph.add_message(bob, created_time=T0, message="Where is my parcel?", from_page=False)
    graph.add_message(bob, created_time=T0 + timedelta(minutes=9), message="Here", from_page=True)
    # An unanswered wall comment: warnings and breaches, never a window alert.
    post = graph.add_post(created_time=T0 - timedelta(hours=1), message="Deals")
    graph.add_comment(post_id=post, created_time=T0, message="Price?", author=("9001", "Cy"))

    receiver = Receiver(FakeClock(T0))
    app, clock = await start(
        graph, tmp_path, aiohttp_client, await receiver_url(aiohttp_server, receiver)
    )
    receiver.clock = clock  # signatures are checked against the service's fake time
    for source in ("acme-messenger", "acme-fb"):
        await app[COORDINATOR].poll_once(source)

    await advance_to(clock, T0 + timedelta(hours=22, minutes=59))
    await asyncio.sleep(0.2)
    assert receiver.bodies == []
    await advance_to(clock, T0 + timedelta(hours=23, minutes=1))
    await settle(lambda: len(receiver.bodies) == 1, "the window alert")
    [body] = receiver.bodies
    assert (body["kind"], body["source"], body["platform"]) == (
        "window",
        "acme-messenger",
        "messenger",
    )
    assert body["created_at"] == "2026-11-21T17:00:00Z"
    assert body["addressed_to"]["role"] == "student"
    [item] = body["items"]  # Ann's conversation; Bob was answered
    assert item["window_closes_at"] == "2026-11-21T19:00:00Z"
    assert body["summary"] == (
        "Reply window closes: 1 Messenger conversation on acme-messenger (acme) closes at"
        " 20:00 CET (+01:00), unanswered; on duty: day-dirk (lead lead-lisa)."
    )

    # Later checks (every minute, and past the close) send nothing again.
    for minutes in (30, 90, 150):
        await advance_to(clock, T0 + timedelta(hours=23, minutes=minutes))
        await asyncio.sleep(0.1)
    assert len(receiver.bodies) == 1
