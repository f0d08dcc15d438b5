"""The three renderings of a notification: generic JSON (field by field), Slack, console line."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

import monitor.alerts
from monitor.alerts.formats import (
    SCHEMA,
    clean_text,
    console_line,
    generic_payload,
    slack_escape,
    slack_payload,
    summary,
)
from monitor.alerts.models import AlertItem, Duty, Kind, Notification

NOW = datetime(2024, 1, 8, 12, 0, tzinfo=UTC)
PERMALINK = "https://www.facebook.com/123_456?comment_id=789&reply=1"
DUTY = Duty(student="anna", backup="bob", lead="carol")
SCHEMA_DOC = Path(monitor.alerts.__file__).with_name("SCHEMA.md")
HOSTILE = (
    "<!channel> <!here|here> <@U012AB3CD> <#C024BE7LR> <https://evil.example/login|Reset password>"
    " @here @channel @everyone *bold* & more > quoted"
)


def _item(**overrides: Any) -> AlertItem:
    fields: dict[str, Any] = {
        "item_id": 1042,
        "permalink": PERMALINK,
        "author": "Jan Jansen",
        "excerpt": "Where is my order? I paid a week ago",
        "created_at": NOW - timedelta(minutes=22),
        "due_at": NOW + timedelta(minutes=8),
        "period": "after_hours",
        "state": "warning",
    }
    fields.update(overrides)
    return AlertItem(**fields)


def _notification(
    *items: AlertItem, kind: Kind = "warning", duty: Duty | None = DUTY
) -> Notification:
    return Notification(
        id="warning:acme-fb:1042",
        kind=kind,
        brand="Acme",
        source="acme-fb",
        platform="facebook",
        created_at=NOW,
        items=items or (_item(),),
        duty=duty,
    )


def _answered() -> AlertItem:
    return _item(
        item_id=7,
        state="answered_late",
        due_at=NOW - timedelta(minutes=30),
        created_at=NOW - timedelta(hours=1, minutes=10),
        responder="Bob (Acme)",
        responded_at=NOW - timedelta(minutes=5),
    )


def _mrkdwn_texts(payload: dict[str, Any]) -> list[str]:
    texts = [payload["text"]]
    for block in payload["blocks"]:
        if block["type"] == "section":
            texts.append(block["text"]["text"])
        elif block["type"] == "context":
            texts.extend(element["text"] for element in block["elements"])
    return texts


# ---- generic JSON -------------------------------------------------------------------------


def test_generic_payload_field_by_field() -> None:
    payload = generic_payload(_notification(), delivery_id="d-1")

    assert payload == {
        "schema": "webcare.alert.v1",
        "delivery_id": "d-1",
        "notification_id": "warning:acme-fb:1042",
        "kind": "warning",
        "brand": "Acme",
        "source": "acme-fb",
        "platform": "facebook",
        "created_at": "2024-01-08T12:00:00Z",
        "on_duty": {"student": "anna", "backup": "bob", "lead": "carol"},
        "items": [
            {
                "id": 1042,
                "permalink": PERMALINK,
                "author": "Jan Jansen",
                "excerpt": "Where is my order? I paid a week ago",
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
        ],
        "addressed_to": None,
        "step": None,
        "queue_url": None,
        "summary": "Warning: 1 consumer post waiting on acme-fb (Acme), the first due in 8 min;"
        " on duty: anna (backup bob, lead carol).",
    }
    assert SCHEMA == "webcare.alert.v1"
    # What goes on the wire is plain JSON, and the same notification always gives the same bytes.
    assert orjson.dumps(payload) == orjson.dumps(
        generic_payload(_notification(), delivery_id="d-1")
    )


def test_generic_payload_resolved_item_carries_responder_and_time() -> None:
    n = _notification(_answered(), _item(item_id=8, state="dismissed"), kind="resolved")

    payload = generic_payload(n, delivery_id="d-2")

    answered, dismissed = payload["items"]
    assert answered["state"] == "answered_late"
    assert answered["responder"] == "Bob (Acme)"
    assert answered["responded_at"] == "2024-01-08T11:55:00Z"
    assert answered["due_at"] == "2024-01-08T11:30:00Z"
    assert dismissed["state"] == "dismissed"
    assert dismissed["responder"] is None and dismissed["responded_at"] is None
    assert payload["kind"] == "resolved"
    assert payload["summary"] == (
        "Resolved: 2 consumer posts on acme-fb (Acme): 1 answered late, 1 dismissed;"
        " on duty: anna (backup bob, lead carol)."
    )


def test_roster_gap_gives_null_on_duty_and_says_nobody_is_on_duty() -> None:
    n = _notification(duty=None)

    payload = generic_payload(n, delivery_id="d-3")

    assert payload["on_duty"] is None
    assert payload["summary"].endswith("; nobody on duty (roster gap).")
    assert "nobody on duty (roster gap)" in console_line(n)
    duty_context = slack_payload(n)["blocks"][-1]
    assert duty_context["type"] == "context"
    assert duty_context["elements"][0]["text"] == "*Nobody is on duty* (roster gap)"


def test_partial_duty_leaves_missing_roles_null() -> None:
    n = _notification(duty=Duty(student="anna"))

    assert generic_payload(n, delivery_id="d")["on_duty"] == {
        "student": "anna",
        "backup": None,
        "lead": None,
    }
    assert summary(n).endswith("; on duty: anna.")
    assert slack_payload(n)["blocks"][-1]["elements"][0]["text"] == "On duty: *anna*"


def test_times_are_utc_with_z_whatever_zone_they_come_in() -> None:
    amsterdam = timezone(timedelta(hours=1))
    item = _item(
        created_at=datetime(2024, 1, 8, 12, 38, tzinfo=amsterdam),
        due_at=datetime(2024, 1, 8, 12, 8, 30, 250000),  # naive: UTC by convention
    )

    payload = generic_payload(_notification(item), delivery_id="d")

    assert payload["items"][0]["created_at"] == "2024-01-08T11:38:00Z"
    assert payload["items"][0]["due_at"] == "2024-01-08T12:08:30.250000Z"


def test_the_documented_example_has_exactly_the_fields_we_send() -> None:
    doc = SCHEMA_DOC.read_text(encoding="utf-8")
    (example,) = re.findall(r"```json\n(.*?)```", doc, re.S)
    documented = json.loads(example)
    n = _notification(_answered())

    sent = generic_payload(n, delivery_id="d")

    assert documented.keys() == sent.keys()
    assert documented["items"][0].keys() == sent["items"][0].keys()
    assert documented["schema"] == SCHEMA
    for field in [*sent, *(f"items[].{k}" for k in sent["items"][0])]:
        assert f"`{field}`" in doc or field in ("brand", "source", "platform"), field


# ---- excerpts and untrusted text ----------------------------------------------------------


def test_excerpt_is_one_line_without_control_characters() -> None:
    text = "Hello\r\nthere\tfriend\x1b[31m red\x07\u2028next\u202eevil\u2066 \ud800ok\u00a0 end"

    cleaned = clean_text(text)

    assert cleaned == "Hello there friend [31m red nextevil ok end"
    assert orjson.dumps(generic_payload(_notification(_item(excerpt=text)), delivery_id="d"))


def test_long_excerpt_is_cut_to_200_characters_on_a_word_boundary() -> None:
    words = " ".join(f"word{i:03d}" for i in range(60))  # 479 characters

    cleaned = clean_text(words)

    assert len(cleaned) <= 200
    assert cleaned.endswith("…")
    assert cleaned[:-1] in words and words.startswith(cleaned[:-1])
    assert cleaned[-2] != " " and words[len(cleaned) - 1] == " "  # cut between two words


def test_long_excerpt_without_spaces_is_cut_hard() -> None:
    cleaned = clean_text("x" * 500)

    assert cleaned == "x" * 199 + "…"
    excerpt = generic_payload(_notification(_item(excerpt="x" * 500)), delivery_id="d")
    assert len(excerpt["items"][0]["excerpt"]) == 200


def test_short_excerpt_is_untouched_and_exactly_200_is_not_cut() -> None:
    assert clean_text("Where is my order?") == "Where is my order?"
    assert clean_text("y" * 200) == "y" * 200
    assert clean_text(None) == "" and clean_text("  \n\t ") == ""


# ---- Slack ---------------------------------------------------------------------------------


def test_slack_payload_field_by_field() -> None:
    payload = slack_payload(_notification())

    assert payload["text"] == (
        "Warning: 1 consumer post waiting on acme-fb (Acme), the first due in 8 min;"
        " on duty: anna (backup bob, lead carol)."
    )
    assert payload["unfurl_links"] is False and payload["unfurl_media"] is False
    header, section, duty = payload["blocks"]
    assert header == {
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": "Warning: 1 consumer post due soon on acme-fb (Acme)",
            "emoji": False,
        },
    }
    created = int((NOW - timedelta(minutes=22)).timestamp())
    due = int((NOW + timedelta(minutes=8)).timestamp())
    assert section == {
        "type": "section",
        "text": {
            "type": "mrkdwn",
            "verbatim": True,
            "text": "*Jan Jansen* · <https://www.facebook.com/123_456?comment_id=789&amp;reply=1|open>\n"
            ">Where is my order? I paid a week ago\n"
            f"Waiting 22 min (since <!date^{created}^{{date_short_pretty}} {{time}}|11:38 UTC>)"
            f" · due in 8 min (<!date^{due}^{{date_short_pretty}} {{time}}|12:08 UTC>)",
        },
    }
    assert duty == {
        "type": "context",
        "elements": [
            {
                "type": "mrkdwn",
                "text": "On duty: *anna* · backup: bob · lead: carol",
                "verbatim": True,
            }
        ],
    }


def test_slack_breach_and_resolved_items() -> None:
    overdue = _item(
        state="breached",
        created_at=NOW - timedelta(days=1, hours=1),
        due_at=NOW - timedelta(hours=1, minutes=5),
    )
    breach = slack_payload(_notification(overdue, kind="breach"))
    resolved = slack_payload(
        _notification(_answered(), _item(item_id=9, state="dismissed"), kind="resolved")
    )

    assert (
        breach["blocks"][0]["text"]["text"]
        == "Breach: 1 consumer post past target on acme-fb (Acme)"
    )
    breach_text = breach["blocks"][1]["text"]["text"]
    assert "Waiting 1 d 1 h (since <!date^" in breach_text
    assert "|2024-01-07 11:00 UTC>)" in breach_text
    assert "past due by 1 h 5 min" in breach_text
    assert breach["text"].startswith(
        "Breach: 1 consumer post past target on acme-fb (Acme), the oldest waiting 1 d 1 h;"
    )
    assert resolved["blocks"][0]["text"]["text"] == "Resolved: 2 consumer posts on acme-fb (Acme)"
    answered_text = resolved["blocks"][1]["text"]["text"]
    assert "\nAnswered late by Bob (Acme) after 1 h 5 min (<!date^" in answered_text
    assert resolved["blocks"][2]["text"]["text"].endswith("\nDismissed")


def test_slack_shows_ten_items_then_and_n_more() -> None:
    items = tuple(_item(item_id=i) for i in range(13))

    blocks = slack_payload(_notification(*items))["blocks"]

    assert [b["type"] for b in blocks] == ["header", *["section"] * 10, "context", "context"]
    assert blocks[11]["elements"][0]["text"] == "and 3 more"
    assert blocks[0]["text"]["text"].startswith("Warning: 13 consumer posts due soon")


def test_hostile_consumer_text_cannot_inject_links_or_mentions_in_slack() -> None:
    n = _notification(
        _item(excerpt=HOSTILE, author="<!everyone> @here", responder="<@U1>"),
        replace(_answered(), responder="<!channel>"),
        duty=Duty(student="<!here> anna", backup="@channel"),
    )

    payload = slack_payload(n)

    # The only "<...>" left anywhere are our own date tokens and the permalink.
    allowed = re.compile(
        r"<(!date\^\d+\^\{date_short_pretty\} \{time\}\|[^<>]*|https://[^<>|]+\|open)>"
    )
    for text in _mrkdwn_texts(payload):
        assert "<" not in allowed.sub("", text), text
        assert ">" not in allowed.sub("", text).replace("\n>", "\n"), text
        assert not re.search(r"@(here|channel|everyone|U012AB3CD)\b", text), text
    section = payload["blocks"][1]["text"]["text"]
    assert "&lt;!channel&gt;" in section
    assert "&lt;https://evil.example/login|Reset password&gt;" in section
    assert "@\u200bhere @\u200bchannel @\u200beveryone" in section
    assert "&amp; more &gt; quoted" in section
    assert payload["blocks"][1]["text"]["verbatim"] is True


def test_slack_permalink_is_escaped_and_only_http() -> None:
    tricky = _item(permalink="https://forum.example/t/1?a=1&b=<x>|<!channel>")
    script = _item(permalink="javascript:alert(1)")
    missing = _item(permalink=None)

    texts = [
        slack_payload(_notification(i))["blocks"][1]["text"]["text"]
        for i in (tricky, script, missing)
    ]

    assert texts[0].startswith(
        "*Jan Jansen* · <https://forum.example/t/1?a=1&amp;b=&lt;x&gt;%7C&lt;!channel&gt;|open>\n"
    )
    assert texts[1].startswith("*Jan Jansen* · no link\n")
    assert texts[2].startswith("*Jan Jansen* · no link\n")


def test_slack_limits_hold_for_the_largest_inputs() -> None:
    big = _item(
        author="&" * 500,
        excerpt="<" * 1000,
        permalink="https://x.example/" + "&" * 190,
        responder="R" * 500,
    )
    n = replace(_notification(big), source="s" * 300, brand="b" * 300)

    payload = slack_payload(n)

    assert len(payload["blocks"][0]["text"]["text"]) <= 150
    assert all(len(text) <= 3000 for text in _mrkdwn_texts(payload))
    assert len(payload["blocks"]) <= 50


def test_slack_escape() -> None:
    assert slack_escape("a & b <c> @here x@y.z") == "a &amp; b &lt;c&gt; @\u200bhere x@\u200by.z"


# ---- console ------------------------------------------------------------------------------


def test_console_line_says_what_where_since_due_and_who() -> None:
    line = console_line(_notification(_item(excerpt="Where is\nmy order?\x1b[2J")))

    assert "\n" not in line and "\x1b" not in line
    assert line == (
        "2024-01-08 12:00 UTC WARNING Acme/acme-fb (facebook): 1 consumer post"
        " · on duty: anna (backup bob, lead carol)"
        ' · #1042 Jan Jansen: "Where is my order? [2J"'
        " waiting 22 min (since 11:38 UTC), due in 8 min (12:08 UTC) " + PERMALINK
    )


def test_console_line_resolved_and_many_items() -> None:
    items = (_answered(), *(_item(item_id=i, author=None, permalink=None) for i in range(6)))

    line = console_line(_notification(*items, kind="resolved", duty=None))

    assert line.startswith(
        "2024-01-08 12:00 UTC RESOLVED Acme/acme-fb (facebook): 7 consumer posts"
    )
    assert "nobody on duty (roster gap)" in line
    assert "#7 Jan Jansen: " in line and "answered late by Bob (Acme) after 1 h 5 min" in line
    assert "#0 a consumer: " in line and "no link" in line
    assert line.endswith(" · and 2 more")


@pytest.mark.parametrize(
    ("waited", "text"),
    [
        (timedelta(seconds=45), "waiting 45 s"),
        (timedelta(minutes=22, seconds=59), "waiting 22 min"),
        (timedelta(hours=1), "waiting 1 h (since 11:00 UTC)"),
        (timedelta(hours=5, minutes=10), "waiting 5 h 10 min"),
        (timedelta(days=2, hours=3, minutes=4), "waiting 2 d 3 h (since 2024-01-06 08:56 UTC)"),
    ],
)
def test_durations_are_human_and_relative_to_the_event(waited: timedelta, text: str) -> None:
    item = _item(created_at=NOW - waited)

    assert text in console_line(_notification(item))


@pytest.mark.parametrize(
    ("due_in", "text"),
    [
        (timedelta(minutes=8, seconds=30), "due in 8 min"),
        (timedelta(seconds=20), "due in 20 s"),
        (timedelta(0), "past due ("),
        (-timedelta(minutes=3), "past due by 3 min"),
    ],
)
def test_due_phrases(due_in: timedelta, text: str) -> None:
    assert text in console_line(_notification(_item(due_at=NOW + due_in)))


@pytest.mark.parametrize(
    ("now", "since", "due"),
    [
        # A winter evening: CET, +01:00. 23:40 local is what the student reads, not 22:40.
        (datetime(2026, 1, 14, 22, 40, tzinfo=UTC), "23:10 CET (+01:00)", "23:50 CET (+01:00)"),
        # The autumn night: the item came in summer time, falls due after the change.
        (datetime(2026, 10, 25, 1, 5, tzinfo=UTC), "02:35 CEST (+02:00)", "02:15 CET (+01:00)"),
    ],
    ids=["winter", "dst-night"],
)
def test_every_alert_format_speaks_the_rosters_local_time(
    now: datetime, since: str, due: str
) -> None:
    from monitor.alerts.channels import mattermost_payload, teams_payload

    item = _item(created_at=now - timedelta(minutes=30), due_at=now + timedelta(minutes=10))
    n = replace(_notification(item), created_at=now, timezone="Europe/Amsterdam")
    texts = {
        "console": console_line(n),
        "teams": json.dumps(teams_payload(n), ensure_ascii=False),
        "mattermost": json.dumps(mattermost_payload(n), ensure_ascii=False),
        "slack": json.dumps(slack_payload(n), ensure_ascii=False),
    }
    for name, text in texts.items():
        assert f"since {since}" in text or f"|{since}>" in text, name
        assert due in text, name
        assert "UTC" not in text, name
    local = now.astimezone(ZoneInfo("Europe/Amsterdam"))
    assert texts["console"].startswith(f"{local:%Y-%m-%d %H:%M}")


def test_a_taken_item_is_announced_by_every_format_with_who_and_when() -> None:
    """An ack is told where the alert was seen: who took it, at what local time."""
    from monitor.alerts.channels import mattermost_payload, teams_payload
    from monitor.alerts.formats import headline, phone_text

    item = _item(state="breached", acked_by="student-sam", due_at=NOW - timedelta(minutes=5))
    n = replace(_notification(item, kind="taken"), timezone="Europe/Amsterdam")
    assert headline(n) == "Taken: 1 consumer post taken by student-sam on acme-fb (Acme)"
    texts = {
        "console": console_line(n),
        "teams": json.dumps(teams_payload(n), ensure_ascii=False),
        "mattermost": json.dumps(mattermost_payload(n), ensure_ascii=False),
        "slack": json.dumps(slack_payload(n), ensure_ascii=False),
        "generic": json.dumps(generic_payload(n, delivery_id="d1")),
        "apprise": " ".join(phone_text(n)),
    }
    for name, text in texts.items():
        assert "student-sam" in text, name
    assert "taken by student-sam at 13:00 CET (+01:00)" in summary(n)  # 12:00 UTC
    assert (
        texts["console"].split(" · ")[0].endswith("TAKEN Acme/acme-fb (facebook): 1 consumer post")
    )
