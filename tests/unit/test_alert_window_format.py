"""The `window` notification (a Messenger reply window closes soon) in every rendering."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from monitor.alerts.channels import alertmanager_payload, mattermost_payload, teams_payload
from monitor.alerts.formats import (
    console_line,
    generic_payload,
    headline,
    phone_text,
    slack_payload,
    summary,
)
from monitor.alerts.models import (
    AlertItem,
    Duty,
    Notification,
    notification_from_json,
    notification_to_json,
)
from monitor.config.alerts import ALL_KINDS, ReceiverConfig

AT = datetime(2026, 11, 21, 17, 0, tzinfo=UTC)  # 18:00 CET
CLOSES = AT + timedelta(hours=2)


def _window(count: int = 1) -> Notification:
    items = tuple(
        AlertItem(
            item_id=10 + i,
            permalink=None,
            author="Ann",
            excerpt="",
            created_at=CLOSES - timedelta(hours=24, minutes=i),
            due_at=CLOSES - timedelta(hours=23, minutes=30),
            period="after_hours",
            state="breached",
            window_closes_at=CLOSES + timedelta(minutes=i),
        )
        for i in range(count)
    )
    return Notification(
        id="w",
        kind="window",
        brand="acme",
        source="acme-messenger",
        platform="messenger",
        created_at=AT,
        items=items,
        duty=Duty(student="anna"),
        timezone="Europe/Amsterdam",
    )


def test_the_summary_says_when_the_first_window_closes_in_local_time() -> None:
    assert summary(_window()) == (
        "Reply window closes: 1 Messenger conversation on acme-messenger (acme) closes at"
        " 20:00 CET (+01:00), unanswered; on duty: anna."
    )
    assert summary(_window(2)).startswith(
        "Reply window closes: 2 Messenger conversations on acme-messenger (acme) closes at 20:00"
    )
    assert headline(_window()) == (
        "Reply window closes: 1 Messenger conversation unanswered on acme-messenger (acme)"
    )


def test_every_rendering_takes_the_window_kind_and_json_round_trips() -> None:
    n = _window(2)
    payload = generic_payload(n, delivery_id="d")
    assert payload["kind"] == "window"
    assert [i["window_closes_at"] for i in payload["items"]] == [
        "2026-11-21T19:00:00Z",
        "2026-11-21T19:01:00Z",
    ]
    assert notification_from_json(orjson.loads(orjson.dumps(notification_to_json(n)))) == n
    assert slack_payload(n)["text"].startswith("Reply window closes")
    assert "REPLY WINDOW CLOSES" in console_line(n)
    assert phone_text(n)[0].startswith("Reply window closes")
    assert teams_payload(n) and mattermost_payload(n)
    [alert, _] = alertmanager_payload(n, receiver="am")["alerts"]
    assert alert["labels"]["alertname"] == "WebcareReplyWindowClosing"
    assert alert["labels"]["severity"] == "warning"
    assert (alert["startsAt"], alert["endsAt"]) == ("2026-11-21T17:00:00Z", "2026-11-21T19:00:00Z")


def test_receivers_take_window_by_default_and_can_filter_on_it() -> None:
    assert "window" in ALL_KINDS
    receiver = ReceiverConfig(name="r", type="console")
    assert "window" in receiver.kinds
    only = ReceiverConfig(name="r", type="console", kinds=["window"])
    assert only.kinds == ["window"]
