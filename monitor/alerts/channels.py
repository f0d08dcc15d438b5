"""More receiver formats: a Teams Adaptive Card, a Mattermost message, Alertmanager's webhook.

Like formats.py, each rendering is a pure function of the notification (a retry sends the same
bytes). Consumer text is untrusted everywhere: in Teams it goes into `TextRun`s, which render
no Markdown at all; in Mattermost it is Markdown-escaped and mentions are broken; in the
Alertmanager body it is plain JSON strings in annotations.
"""

from __future__ import annotations

import re
from typing import Any

from monitor.alerts.formats import (
    NAME_LIMIT,
    clean_text,
    headline,
    iso_utc,
    item_status,
    plain_duty,
    summary,
    waiting_text,
    zone_of,
)
from monitor.alerts.models import AlertItem, Notification

# Teams and Mattermost show at most this many items; the rest is "and N more".
CHAT_MAX_ITEMS = 10
# Adaptive Card schema version: Teams renders up to 1.5 in channels; 1.4 is what the Teams
# "Post to a channel when a webhook request is received" workflow templates use.
ADAPTIVE_CARD_VERSION = "1.4"
ALERTMANAGER_VERSION = "4"
# Go's zero time: what Alertmanager sends as endsAt for an alert without an end.
GO_ZERO_TIME = "0001-01-01T00:00:00Z"

_RESOLVED = frozenset({"answered_in_time", "answered_late", "dismissed"})
_COLOR = {
    "warning": "#E8A317",
    "breach": "#D0312D",
    "escalation": "#8B0000",
    "reminder": "#D0312D",
    "resolved": "#2E8540",
    "handover": "#1F6FB2",
    "taken": "#1F6FB2",
    "window": "#E8A317",
}
_CARD_STYLE = {
    "warning": "warning",
    "breach": "attention",
    "escalation": "attention",
    "reminder": "attention",
    "resolved": "good",
    "handover": "accent",
    "taken": "accent",
    "window": "warning",
}
# Markdown that Mattermost renders: escaped with a backslash in consumer text.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]!#|<>~])")
_MENTION = re.compile(r"([@~])(?=\w)")
_USERNAME = re.compile(r"^[a-z0-9._-]{1,64}$")


# ---- Microsoft Teams (workflow webhook, Adaptive Card) -------------------------------------


def _run(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextRun", "text": text, **style}


def _rich(*runs: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A RichTextBlock: its TextRuns show text as is (no Markdown, no card functions)."""
    return {"type": "RichTextBlock", "inlines": list(runs), **extra}


def _open_url(title: str, url: str) -> dict[str, Any]:
    return {"type": "Action.OpenUrl", "title": title, "url": url}


def _teams_item(n: Notification, item: AlertItem) -> dict[str, Any]:
    author = clean_text(item.author, NAME_LIMIT) or "A consumer"
    excerpt = clean_text(item.excerpt) or "(no text)"
    status = item_status(item, n.created_at, zone_of(n))
    if item.acked_by:
        status += f" · acknowledged by {clean_text(item.acked_by, NAME_LIMIT)}"
    body: list[dict[str, Any]] = [
        _rich(_run(author, weight="Bolder"), _run(f" · {status}", isSubtle=True)),
        _rich(_run(excerpt, italic=True)),
    ]
    actions = [
        _open_url(title, url)
        for title, url in (
            ("Open post", _http(item.permalink)),
            ("Acknowledge", item.ack_url),
            ("Dismiss", item.dismiss_url),
        )
        if url
    ]
    if actions:
        body.append({"type": "ActionSet", "actions": actions})
    return {"type": "Container", "separator": True, "spacing": "Medium", "items": body}


def teams_payload(n: Notification) -> dict[str, Any]:
    """A Teams workflow-webhook message: one Adaptive Card attachment."""
    body: list[dict[str, Any]] = [
        {
            "type": "Container",
            "style": _CARD_STYLE[n.kind],
            "bleed": True,
            "items": [_rich(_run(headline(n), weight="Bolder", size="Medium"))],
        },
        _rich(_run(_duty_line(n))),
    ]
    mention = _teams_mention(n)
    if mention is not None:
        # A mention is a TextBlock naming <at>...</at> plus its entity (Teams' own format).
        body.insert(1, {"type": "TextBlock", "text": mention["text"], "wrap": True})
    body.extend(_teams_item(n, item) for item in n.items[:CHAT_MAX_ITEMS])
    hidden = len(n.items) - CHAT_MAX_ITEMS
    if hidden > 0:
        body.append(_rich(_run(f"and {hidden} more", isSubtle=True)))
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": ADAPTIVE_CARD_VERSION,
        # The plain-text summary for notifications and screen readers.
        "fallbackText": summary(n),
        "speak": summary(n),
        "msteams": {"width": "Full"},
        "body": body,
    }
    if mention is not None:
        card["msteams"]["entities"] = [mention["entity"]]
    if n.queue_url:
        card["actions"] = [_open_url("Open the queue", n.queue_url)]
    return {
        "type": "message",
        "summary": clean_text(summary(n), 250),
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": card,
            }
        ],
    }


def _teams_mention(n: Notification) -> dict[str, Any] | None:
    """The card's mention of whom it is for, when [roster.people] gives their Teams address."""
    to = n.addressed_to
    handle = to.handles.get("teams") if to is not None else None
    if to is None or handle is None:
        return None
    # Teams shows the text between <at> and </at>; no markup of ours reaches the name.
    name = clean_text(to.name, NAME_LIMIT).replace("<", "").replace(">", "")
    tag = f"<at>{name}</at>"
    return {
        "text": f"For {to.role} {tag}",
        "entity": {"type": "mention", "text": tag, "mentioned": {"id": handle, "name": name}},
    }


def _duty_line(n: Notification) -> str:
    line = plain_duty(n.duty)
    line = line[:1].upper() + line[1:]
    if n.addressed_to is not None and n.kind in ("escalation", "handover"):
        who = clean_text(n.addressed_to.name, NAME_LIMIT)
        line = f"For {n.addressed_to.role} {who}. {line}"
    return line + "."


def _http(url: str | None) -> str | None:
    """A permalink only when it is an http(s) URL (no javascript: in a button)."""
    if url and url.lower().startswith(("http://", "https://")):
        return clean_text(url, 2000).replace(" ", "%20")
    return None


# ---- Mattermost (incoming webhook, Markdown) -----------------------------------------------


def mattermost_escape(text: str) -> str:
    """Consumer text for Mattermost Markdown: no formatting, links, images or mentions."""
    escaped = _MD_SPECIAL.sub(r"\\\1", text)
    # "@channel", "@all", "@here", "@someone", "~town-square": a zero-width space after the
    # sign keeps Mattermost from notifying anyone or linking a channel.
    return _MENTION.sub("\\1\u200b", escaped)


def _mm_link(label: str, url: str | None) -> str | None:
    if not url:
        return None
    # Our own URLs and http(s) permalinks only; ")" and spaces would end the link early.
    return f"[{label}]({url.replace(' ', '%20').replace(')', '%29')})"


def _mm_item(n: Notification, item: AlertItem) -> str:
    ref = n.created_at
    author = mattermost_escape(clean_text(item.author, NAME_LIMIT)) or "A consumer"
    excerpt = mattermost_escape(clean_text(item.excerpt)) or "(no text)"
    if item.state in _RESOLVED:
        status = mattermost_escape(item_status(item, ref, zone_of(n)))
    else:
        status = waiting_text(item, ref, zone_of(n))
    if item.acked_by:
        status += f", acknowledged by {mattermost_escape(clean_text(item.acked_by, NAME_LIMIT))}"
    links = [
        link
        for link in (
            _mm_link("open", _http(item.permalink)),
            _mm_link("acknowledge", item.ack_url),
            _mm_link("dismiss", item.dismiss_url),
        )
        if link
    ]
    tail = f" · {' · '.join(links)}" if links else ""
    return f"**{author}** · {status}{tail}\n> {excerpt}"


def _mention(name: str) -> str:
    """`@name` when the roster name can be a Mattermost username (so they are notified)."""
    if _USERNAME.match(name):
        return f"@{name}"
    return f"**{mattermost_escape(clean_text(name, NAME_LIMIT))}**"


def mattermost_payload(n: Notification) -> dict[str, Any]:
    """A Mattermost incoming-webhook message: Markdown `text` plus a colored attachment."""
    title = mattermost_escape(headline(n))
    lines = [f"#### {title}"]
    if n.addressed_to is not None:
        to = n.addressed_to
        lines.append(f"For {to.role} {_mention(to.handles.get('mattermost') or to.name)}.")
    lines.append(mattermost_escape(plain_duty(n.duty)[:1].upper() + plain_duty(n.duty)[1:]))
    items = [_mm_item(n, item) for item in n.items[:CHAT_MAX_ITEMS]]
    hidden = len(n.items) - CHAT_MAX_ITEMS
    if hidden > 0:
        items.append(f"and {hidden} more")
    if n.queue_url:
        items.append(f"[Open the queue]({n.queue_url})")
    return {
        "text": "\n".join(lines),
        "attachments": [
            {
                "fallback": summary(n),
                "color": _COLOR[n.kind],
                "text": "\n\n".join(items) if items else "Nothing is waiting.",
            }
        ],
    }


# ---- Alertmanager webhook (version 4) ------------------------------------------------------

_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_SEPARATOR = 0xFF


def fingerprint(labels: dict[str, str]) -> str:
    """Prometheus' label-set fingerprint (FNV-1a 64 over sorted name/value pairs), as hex."""
    h = _FNV_OFFSET
    for name in sorted(labels):
        for part in (name.encode(), labels[name].encode()):
            for byte in (*part, _SEPARATOR):
                h ^= byte
                h = (h * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def _label_string(labels: dict[str, str]) -> str:
    """A label set as Alertmanager prints it in groupKey: {a="1", b="2"}."""
    inner = ", ".join(f"{name}={_go_quote(labels[name])}" for name in sorted(labels))
    return "{" + inner + "}"


def _go_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _severity(n: Notification, item: AlertItem) -> str:
    if n.kind in ("warning", "window"):
        return "warning"
    if n.kind == "resolved":
        # The alert this resolves: critical if the item had come due before the resolution.
        return "critical" if item.due_at <= n.created_at else "warning"
    if n.kind == "handover":
        return "critical" if item.due_at <= n.created_at else "warning"
    return "critical"


ALERTNAME = {
    "warning": "WebcareItemWaiting",
    "breach": "WebcareItemWaiting",
    "escalation": "WebcareItemWaiting",
    "reminder": "WebcareItemWaiting",
    "resolved": "WebcareItemWaiting",
    "handover": "WebcareShiftHandover",
    "taken": "WebcareItemWaiting",
    "window": "WebcareReplyWindowClosing",
}


def _alert(n: Notification, item: AlertItem, external_url: str) -> dict[str, Any]:
    labels = {
        "alertname": ALERTNAME[n.kind],
        "brand": n.brand,
        "source": n.source,
        "platform": n.platform,
        "period": item.period,
        "item": str(item.item_id),
        "severity": _severity(n, item),
    }
    annotations = {
        "summary": summary(n),
        "description": clean_text(item.excerpt),
        "author": clean_text(item.author, NAME_LIMIT),
        "permalink": _http(item.permalink) or "",
        "kind": n.kind,
        "state": item.state,
        "due_at": iso_utc(item.due_at),
        "on_duty": n.duty.student if n.duty is not None else "",
        "addressed_to": n.addressed_to.name if n.addressed_to is not None else "",
        "ack_url": item.ack_url or "",
        "dismiss_url": item.dismiss_url or "",
    }
    annotations = {k: v for k, v in annotations.items() if v}
    resolved = n.kind == "resolved"
    # When the alert began: the warning instant, or the due time once it is critical.
    if n.kind in ("warning", "window"):
        started = n.created_at
    elif labels["severity"] == "critical" and n.kind != "handover":
        started = item.due_at
    else:
        started = item.created_at
    ended = (item.responded_at or n.created_at) if resolved else None
    if n.kind == "window":
        ended = item.window_closes_at  # nothing to do about it after the window closed
    return {
        "status": "resolved" if resolved else "firing",
        "labels": labels,
        "annotations": annotations,
        "startsAt": iso_utc(started),
        "endsAt": iso_utc(ended) if ended is not None else GO_ZERO_TIME,
        "generatorURL": f"{external_url}/#item-{item.item_id}" if external_url else "",
        "fingerprint": fingerprint(labels),
    }


def _common(maps: list[dict[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    first = maps[0]
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in maps[1:])}


def alertmanager_payload(n: Notification, *, receiver: str) -> dict[str, Any]:
    """The body Alertmanager's webhook_config sends (version 4), one alert per item."""
    external_url = (n.queue_url or "").rstrip("/")
    alerts = [_alert(n, item, external_url) for item in n.items]
    group_labels = {"alertname": ALERTNAME[n.kind], "brand": n.brand, "source": n.source}
    return {
        "version": ALERTMANAGER_VERSION,
        "groupKey": "{}:" + _label_string(group_labels),
        "truncatedAlerts": 0,
        "status": "resolved" if n.kind == "resolved" else "firing",
        "receiver": receiver,
        "groupLabels": group_labels,
        "commonLabels": _common([a["labels"] for a in alerts]),
        "commonAnnotations": _common([a["annotations"] for a in alerts]),
        "externalURL": external_url,
        "alerts": alerts,
    }
