"""Teams, Mattermost and Alertmanager-format receivers: the real service, real HTTP receivers.

The Alertmanager body is checked field by field against the webhook payload documented for
Alertmanager's webhook_config (version 4, prometheus.io/docs/alerting/latest/configuration/
#webhook_config), and against a body that a real Alertmanager 0.25 (Debian
prometheus-alertmanager) sent (tests/e2e/fixtures/alertmanager_v4_body.json: one alert
posted to its /api/v2/alerts, delivered to a webhook_config receiver;
tests/bench/bench_alert_latency.py --save-alertmanager-body FILE captures one the same way).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from monitor.alerts.channels import fingerprint
from monitor.clock import FakeClock
from monitor.simulator.graph_api import FakeGraphApi
from monitor.web.keys import COORDINATOR
from tests.e2e.test_alerts import ANN, T0, advance_to, settle
from tests.e2e.test_escalation import DUE, WARN, start

FIXTURE = Path(__file__).parent / "fixtures" / "alertmanager_v4_body.json"
NASTY = "Help!! @channel @all ~town-square **bold** [x](javascript:alert(1)) ![i](http://e/x.png)"

# The documented v4 body: every field, and what it holds.
AM_V4_FIELDS = {
    "version": str,
    "groupKey": str,
    "truncatedAlerts": int,
    "status": str,
    "receiver": str,
    "groupLabels": dict,
    "commonLabels": dict,
    "commonAnnotations": dict,
    "externalURL": str,
    "alerts": list,
}
AM_V4_ALERT_FIELDS = {
    "status": str,
    "labels": dict,
    "annotations": dict,
    "startsAt": str,
    "endsAt": str,
    "generatorURL": str,
    "fingerprint": str,
}
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class Sink:
    """Records every POST body per path, answering as the real services do."""

    def __init__(self) -> None:
        self.bodies: dict[str, list[dict[str, Any]]] = {}
        self.headers: dict[str, list[dict[str, str]]] = {}

    async def handle(self, request: web.Request) -> web.Response:
        path = request.match_info["name"]
        self.bodies.setdefault(path, []).append(orjson.loads(await request.read()))
        self.headers.setdefault(path, []).append(dict(request.headers))
        if path == "teams":
            return web.Response(status=202)  # Teams workflows answer 202 Accepted
        return web.Response(text="ok")

    def count(self, name: str) -> int:
        return len(self.bodies.get(name, []))


def rfc3339(text: str) -> datetime:
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$", text), text
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def check_alertmanager_v4(body: dict[str, Any]) -> None:
    """Field by field against the documented webhook payload (version 4)."""
    assert set(body) == set(AM_V4_FIELDS), set(body) ^ set(AM_V4_FIELDS)
    for field, kind in AM_V4_FIELDS.items():
        assert isinstance(body[field], kind), field
    assert body["version"] == "4"
    assert body["status"] in ("firing", "resolved")
    assert body["truncatedAlerts"] == 0
    for mapping in ("groupLabels", "commonLabels", "commonAnnotations"):
        assert all(isinstance(v, str) for v in body[mapping].values()), mapping
        assert all(LABEL_NAME.match(k) for k in body[mapping]), mapping
    # groupKey: the route's matchers, then the group labels as Alertmanager prints them.
    labels = ", ".join(f'{k}="{v}"' for k, v in sorted(body["groupLabels"].items()))
    assert body["groupKey"] == "{}:{" + labels + "}"
    assert body["alerts"]
    for alert in body["alerts"]:
        assert set(alert) == set(AM_V4_ALERT_FIELDS), set(alert) ^ set(AM_V4_ALERT_FIELDS)
        for field, kind in AM_V4_ALERT_FIELDS.items():
            assert isinstance(alert[field], kind), field
        assert alert["status"] in ("firing", "resolved")
        assert all(LABEL_NAME.match(k) and isinstance(v, str) for k, v in alert["labels"].items())
        assert all(isinstance(v, str) for v in alert["annotations"].values())
        assert alert["labels"]["alertname"]
        starts, ends = rfc3339(alert["startsAt"]), alert["endsAt"]
        if alert["status"] == "firing":
            assert ends == "0001-01-01T00:00:00Z"  # Go's zero time: no end yet
        else:
            assert rfc3339(ends) >= starts
        assert re.match(r"^[0-9a-f]{16}$", alert["fingerprint"])
        assert alert["fingerprint"] == fingerprint(alert["labels"])
        for key, value in body["commonLabels"].items():
            assert alert["labels"][key] == value
        for key, value in body["groupLabels"].items():
            assert alert["labels"][key] == value
    if body["status"] == "firing":
        assert any(a["status"] == "firing" for a in body["alerts"])


def test_a_real_alertmanager_body_passes_the_same_checks() -> None:
    """The checks match real Alertmanager output: keys, groupKey, fingerprint algorithm."""
    real = json.loads(FIXTURE.read_text(encoding="utf-8"))
    check_alertmanager_v4(real)
    assert real["alerts"][0]["fingerprint"] == "b8991309d05a1eea"


def receivers(base: str) -> str:
    return "".join(
        f'[[receivers]]\nname = "{name}"\ntype = "{name}"\nurl = "{base}/{name}"\n'
        for name in ("teams", "mattermost", "alertmanager")
    )


def card_runs(element: Any) -> list[str]:
    """Every TextRun text of a card, and no Markdown-rendering TextBlock holds consumer text."""
    found: list[str] = []
    if isinstance(element, dict):
        if element.get("type") == "TextRun":
            found.append(element["text"])
        for value in element.values():
            found.extend(card_runs(value))
    elif isinstance(element, list):
        for value in element:
            found.extend(card_runs(value))
    return found


def types(element: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(element, dict):
        if isinstance(element.get("type"), str):
            found.add(element["type"])
        for value in element.values():
            found |= types(value)
    elif isinstance(element, list):
        for value in element:
            found |= types(value)
    return found


async def test_teams_mattermost_and_alertmanager_receivers_get_their_formats(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any, aiohttp_server: Any
) -> None:
    sink = Sink()
    hooks = web.Application()
    hooks.router.add_post("/{name}", sink.handle)
    server = await aiohttp_server(hooks)
    base = str(server.make_url("")).rstrip("/")
    clock = FakeClock(T0 + timedelta(minutes=1))
    post = graph.add_post(created_time=T0 - timedelta(hours=1), message="Night deals")
    graph.add_comment(post_id=post, created_time=T0, message=NASTY, author=ANN)
    app, _client = await start(graph, tmp_path, aiohttp_client, clock, receivers(base))
    await app[COORDINATOR].poll_once("acme-fb")
    await advance_to(clock, WARN)
    await settle(lambda: all(sink.count(n) == 1 for n in sink_names()), "the warnings")
    await advance_to(clock, DUE)
    await settle(lambda: all(sink.count(n) == 2 for n in sink_names()), "the breaches")
    await advance_to(clock, DUE + timedelta(minutes=10))
    await settle(lambda: all(sink.count(n) == 4 for n in sink_names()), "reminder, escalation")
    graph.add_comment(post_id=post, created_time=DUE + timedelta(minutes=11), message="Here!")
    await advance_to(clock, DUE + timedelta(minutes=12))
    await app[COORDINATOR].poll_once("acme-fb")
    await settle(lambda: all(sink.count(n) == 5 for n in sink_names()), "the resolutions")

    # ---- Teams: a workflow message with one Adaptive Card --------------------------------
    warning, *_rest, resolved = sink.bodies["teams"]
    assert set(warning) == {"type", "summary", "attachments"}
    assert warning["type"] == "message"
    (attachment,) = warning["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert attachment["contentUrl"] is None
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    assert card["version"] == "1.4"
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert types(card) <= {
        "AdaptiveCard",
        "Container",
        "RichTextBlock",
        "TextRun",
        "ActionSet",
        "Action.OpenUrl",
    }
    runs = card_runs(card)
    assert runs[0] == "Warning: 1 consumer post due soon on acme-fb (acme)"
    assert NASTY in runs  # verbatim inside a TextRun, which renders no Markdown
    assert "Ann" in runs
    assert "On duty: night-nina (backup night-bram, lead lead-lisa)." in runs
    actions = [a for a in _walk(card) if a.get("type") == "Action.OpenUrl"]
    titles = [a["title"] for a in actions]
    assert titles == ["Open post", "Acknowledge", "Dismiss", "Open the queue"]
    ack = actions[1]["url"]
    assert re.match(r"^https://webcare\.test/act/\d+/ack\?exp=\d+&sig=[0-9a-f]{32}$", ack)
    assert card["actions"] == [
        {"type": "Action.OpenUrl", "title": "Open the queue", "url": "https://webcare.test/"}
    ]
    escalation = sink.bodies["teams"][3]["attachments"][0]["content"]
    assert card_runs(escalation)[0].startswith("Escalation to backup night-bram: 1 consumer post")
    assert "For backup night-bram." in card_runs(escalation)[1]
    resolved_card = resolved["attachments"][0]["content"]
    assert card_runs(resolved_card)[0] == "Resolved: 1 consumer post on acme-fb (acme)"
    assert "Acknowledge" not in [a["title"] for a in _walk(resolved_card) if "title" in a]

    # ---- Mattermost: Markdown text with nothing the consumer can inject -------------------
    mm_warning = sink.bodies["mattermost"][0]
    assert set(mm_warning) == {"text", "attachments"}
    heading = "#### Warning: 1 consumer post due soon on acme-fb (acme)\n"
    assert mm_warning["text"].startswith(heading)
    assert "For student @night-nina." in mm_warning["text"]
    (mm_attachment,) = mm_warning["attachments"]
    assert set(mm_attachment) == {"fallback", "color", "text"}
    assert mm_attachment["color"] == "#E8A317"
    text = mm_attachment["text"]
    assert "@\u200bchannel" in text and "@\u200ball" in text and "~\u200btown" in text
    assert "@channel" not in text and "@all" not in text
    assert "\\*\\*bold\\*\\*" in text
    assert "\\[x\\](javascript" in text and "\\!\\[i\\]" in text
    assert "[acknowledge](https://webcare.test/act/" in text
    assert "[Open the queue](https://webcare.test/)" in text
    mm_escalation = sink.bodies["mattermost"][3]
    assert "For backup @night-bram." in mm_escalation["text"]
    assert sink.bodies["mattermost"][4]["attachments"][0]["color"] == "#2E8540"

    # ---- Alertmanager v4 -------------------------------------------------------------------
    am = sink.bodies["alertmanager"]
    for body in am:
        check_alertmanager_v4(body)
    first = am[0]
    assert first["receiver"] == "alertmanager"
    assert first["status"] == "firing"
    assert first["externalURL"] == "https://webcare.test"
    assert first["groupLabels"] == {
        "alertname": "WebcareItemWaiting",
        "brand": "acme",
        "source": "acme-fb",
    }
    assert (
        first["groupKey"] == '{}:{alertname="WebcareItemWaiting", brand="acme", source="acme-fb"}'
    )
    (alert,) = first["alerts"]
    item = alert["labels"]["item"]
    assert alert["labels"] == {
        "alertname": "WebcareItemWaiting",
        "brand": "acme",
        "source": "acme-fb",
        "platform": "facebook_page",
        "period": "after_hours",
        "item": item,
        "severity": "warning",
    }
    assert first["commonLabels"] == alert["labels"]
    assert alert["annotations"]["description"] == NASTY
    assert alert["annotations"]["kind"] == "warning"
    assert alert["annotations"]["on_duty"] == "night-nina"
    assert alert["annotations"]["ack_url"].startswith(f"https://webcare.test/act/{item}/ack?")
    assert alert["startsAt"] == "2026-10-25T01:12:30Z"
    assert alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert alert["generatorURL"] == f"https://webcare.test/#item-{item}"
    breach = am[1]["alerts"][0]
    assert breach["labels"]["severity"] == "critical"
    assert breach["startsAt"] == "2026-10-25T01:20:00Z"
    done = am[4]
    assert done["status"] == "resolved"
    (resolved_alert,) = done["alerts"]
    # The resolution resolves the critical alert: same labels, same fingerprint.
    assert resolved_alert["fingerprint"] == breach["fingerprint"]
    assert resolved_alert["endsAt"] == "2026-10-25T01:31:00Z"
    assert [b["alerts"][0]["annotations"]["kind"] for b in am] == [
        "warning",
        "breach",
        "reminder",
        "escalation",
        "resolved",
    ]


def sink_names() -> tuple[str, ...]:
    return ("teams", "mattermost", "alertmanager")


def _walk(element: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(element, dict):
        found.append(element)
        for value in element.values():
            found.extend(_walk(value))
    elif isinstance(element, list):
        for value in element:
            found.extend(_walk(value))
    return found
