"""People, not names: [roster.people] handles turn the addressee into a real mention in Slack,
Teams and Mattermost; the real service, a fake Facebook page and real HTTP receivers."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from monitor.clock import FakeClock
from monitor.simulator.graph_api import FakeGraphApi
from monitor.web.keys import COORDINATOR
from tests.e2e.test_alert_channels import Sink
from tests.e2e.test_alerts import ANN, T0, advance_to, settle
from tests.e2e.test_escalation import DUE, WARN, start

PEOPLE = """
[roster.people.night-nina]
slack = "U024BE7LH"
teams = "nina@acme.example"
mattermost = "nina.v"
[roster.people.night-bram]
slack = "W0BRAM42"
mattermost = "bram"
[roster.people.day-dirk]
[roster.people.lead-lisa]
"""
NAMES = ("slack", "teams", "mattermost")


async def test_the_addressee_is_mentioned_with_their_handle_on_each_platform(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any, aiohttp_server: Any
) -> None:
    sink = Sink()
    hooks = web.Application()
    hooks.router.add_post("/{name}", sink.handle)
    server = await aiohttp_server(hooks)
    base = str(server.make_url("")).rstrip("/")
    receivers = "".join(
        f'[[receivers]]\nname = "{n}"\ntype = "{n}"\nurl = "{base}/{n}"\n' for n in NAMES
    )
    clock = FakeClock(T0 + timedelta(minutes=1))
    post = graph.add_post(created_time=T0 - timedelta(hours=1), message="Night deals")
    graph.add_comment(post_id=post, created_time=T0, message="Parcel?", author=ANN)
    app, _client = await start(graph, tmp_path, aiohttp_client, clock, receivers + PEOPLE)
    await app[COORDINATOR].poll_once("acme-fb")
    await advance_to(clock, WARN)
    await settle(lambda: all(sink.count(n) == 1 for n in NAMES), "the warnings")
    await advance_to(clock, DUE + timedelta(minutes=10))  # breach, reminder 1, escalation 1
    await settle(lambda: all(sink.count(n) == 4 for n in NAMES), "up to the escalation")

    warning, escalation = sink.bodies["slack"][0], sink.bodies["slack"][3]
    assert warning["text"].startswith("For student <@U024BE7LH>: Warning:")
    assert warning["blocks"][1]["text"] == {"type": "mrkdwn", "text": "For student <@U024BE7LH>"}
    assert escalation["text"].startswith("For backup <@W0BRAM42>: Escalation to backup")

    card = sink.bodies["teams"][0]["attachments"][0]["content"]
    assert card["msteams"]["entities"] == [
        {
            "type": "mention",
            "text": "<at>night-nina</at>",
            "mentioned": {"id": "nina@acme.example", "name": "night-nina"},
        }
    ]
    assert {"type": "TextBlock", "text": "For student <at>night-nina</at>", "wrap": True} in (
        card["body"]
    )
    backup_card = sink.bodies["teams"][3]["attachments"][0]["content"]
    assert "entities" not in backup_card["msteams"]  # night-bram has no Teams address

    assert "For student @nina.v." in sink.bodies["mattermost"][0]["text"]
    assert "For backup @bram." in sink.bodies["mattermost"][3]["text"]
