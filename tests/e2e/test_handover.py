"""Shift handover: at each shift start the incoming student gets what is waiting, once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from monitor.clock import FakeClock
from monitor.simulator.graph_api import FakeGraphApi
from monitor.web.keys import COORDINATOR
from tests.e2e.test_alerts import ANN, T0, Receiver, advance_to, receiver_url, settle
from tests.e2e.test_escalation import SECRET_BLOCK, start, stop

# Sunday 25 October 2026 (CET after 01:00 UTC): day shift from 08:00 = 07:00 UTC.
DAY_STARTS = datetime(2026, 10, 25, 7, 0, tzinfo=UTC)
NIGHT_STARTS = datetime(2026, 10, 25, 19, 0, tzinfo=UTC)
QUIET = """
[alerts]
escalate_to = []
remind_every = "off"
handover = "always"
"""


async def test_the_incoming_student_gets_what_waits_at_the_shift_start_once(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any, aiohttp_server: Any
) -> None:
    clock = FakeClock(T0 + timedelta(minutes=1))
    receiver = Receiver(clock)
    url = await receiver_url(aiohttp_server, receiver)
    hooks = SECRET_BLOCK.format(name="handovers", url=url) + 'kinds = ["handover"]\n'
    post = graph.add_post(created_time=T0 - timedelta(hours=1), message="Night deals")
    graph.add_comment(post_id=post, created_time=T0, message="Still waiting", author=ANN)
    graph.add_comment(
        post_id=post,
        created_time=DAY_STARTS - timedelta(minutes=10),
        message="Morning question",
        author=("9002", "Bob"),
    )
    app, _client = await start(graph, tmp_path, aiohttp_client, clock, hooks, alerts=QUIET)
    await app[COORDINATOR].poll_once("acme-fb")
    await advance_to(clock, DAY_STARTS - timedelta(minutes=5))
    await app[COORDINATOR].poll_once("acme-fb")
    await advance_to(clock, DAY_STARTS - timedelta(seconds=1))
    await asyncio.sleep(0.2)
    assert receiver.bodies == []
    await advance_to(clock, DAY_STARTS)
    await settle(lambda: len(receiver.bodies) == 1, "the morning handover")
    handover = receiver.bodies[0]
    assert handover["kind"] == "handover"
    assert handover["created_at"] == "2026-10-25T07:00:00Z"
    assert handover["addressed_to"] == {"role": "student", "name": "day-dirk"}
    assert handover["on_duty"]["student"] == "day-dirk"
    # Most urgent first, judged at the shift start.
    assert [(i["excerpt"], i["state"]) for i in handover["items"]] == [
        ("Still waiting", "breached"),
        ("Morning question", "open"),
    ]
    assert handover["items"][0]["ack_url"].startswith("https://webcare.test/act/")
    assert handover["summary"].startswith(
        "Handover to day-dirk on acme-fb (acme): 2 consumer posts waiting, 1 past target"
    )
    await stop(app)

    # A restart within the shift: the handover is not sent again.
    app, _client = await start(graph, tmp_path, aiohttp_client, clock, hooks, alerts=QUIET)
    await advance_to(clock, DAY_STARTS + timedelta(minutes=5))
    await asyncio.sleep(0.2)
    assert len(receiver.bodies) == 1
    # The evening shift, many hours later in one jump: exactly one more, at its instant.
    await advance_to(clock, NIGHT_STARTS + timedelta(hours=2))
    await settle(lambda: len(receiver.bodies) == 2, "the evening handover")
    evening = receiver.bodies[1]
    assert evening["created_at"] == "2026-10-25T19:00:00Z"
    assert evening["addressed_to"]["name"] == "night-nina"
    await asyncio.sleep(0.2)
    assert len(receiver.bodies) == 2
