"""Render a notification: the versioned generic JSON, a Slack Block Kit message, a console line."""

# Every rendering is a pure function of the notification: relative durations ("waiting 22 min,
# due in 8 min") are measured from `n.created_at` (the warning or due instant), never from the
# wall clock, so a retried delivery sends byte-identical content.

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from monitor.alerts.models import AlertItem, Duty, Notification
from monitor.durations import spoken_duration
from monitor.words import counted

SCHEMA = "webcare.alert.v1"
EXCERPT_LIMIT = 200
NAME_LIMIT = 100
# Slack allows 50 blocks per message; ten items stay readable on a phone.
SLACK_MAX_ITEMS = 10
SLACK_HEADER_LIMIT = 150  # Slack rejects a longer plain_text header
# Slack rejects a section text over 3,000 characters: 100-char author and 200-char excerpt
# (up to 5× when escaped), this URL and the status line stay below it.
SLACK_URL_LIMIT = 1000
CONSOLE_MAX_ITEMS = 5
CONSOLE_EXCERPT_LIMIT = 80

_RESOLVED = frozenset({"answered_in_time", "answered_late", "dismissed"})
_KIND_TITLE = {
    "warning": "Warning",
    "breach": "Breach",
    "resolved": "Resolved",
    "escalation": "Escalation",
    "reminder": "Reminder",
    "handover": "Handover",
    "taken": "Taken",
    "window": "Reply window closes",
}
# Bidi overrides and isolates let a consumer make text read differently than it is stored.
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# "@here", "@channel", "@someone": a zero-width space after "@" keeps Slack from linking it.
_AT_WORD = re.compile(r"@(?=\w)")


def generic_payload(n: Notification, *, delivery_id: str) -> dict[str, Any]:
    """The generic webhook body, schema `webcare.alert.v1` (see monitor/alerts/SCHEMA.md)."""
    return {
        "schema": SCHEMA,
        "delivery_id": delivery_id,
        "notification_id": n.id,
        "kind": n.kind,
        "brand": n.brand,
        "source": n.source,
        "platform": n.platform,
        "created_at": iso_utc(n.created_at),
        "on_duty": _duty_json(n.duty),
        "addressed_to": (
            None
            if n.addressed_to is None
            else {"role": n.addressed_to.role, "name": clean_text(n.addressed_to.name, NAME_LIMIT)}
        ),
        "step": n.step,
        "queue_url": n.queue_url,
        "items": [_item_json(item) for item in n.items],
        "summary": summary(n),
    }


def slack_payload(n: Notification) -> dict[str, Any]:
    """A Slack incoming-webhook message: fallback `text` plus Block Kit `blocks`."""
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _slack_header(n), "emoji": False},
        }
    ]
    for item in n.items[:SLACK_MAX_ITEMS]:
        blocks.append(
            {
                "type": "section",
                # verbatim: Slack must not auto-link URLs, channels or mentions in consumer text.
                "text": {"type": "mrkdwn", "text": _slack_item(n, item), "verbatim": True},
            }
        )
    hidden = len(n.items) - SLACK_MAX_ITEMS
    if hidden > 0:
        blocks.append(_slack_context(f"and {hidden} more"))
    blocks.append(_slack_context(_slack_duty(n.duty)))
    mention = _slack_mention(n)
    if mention:
        # Not verbatim: Slack turns <@U…> into a mention and notifies that person.
        blocks.insert(1, {"type": "section", "text": {"type": "mrkdwn", "text": mention}})
    return {
        "text": (mention + ": " if mention else "") + slack_escape(summary(n)),
        "blocks": blocks,
        # A preview of a consumer's post (or a link inside it) has no place in the alert.
        "unfurl_links": False,
        "unfurl_media": False,
    }


def _slack_mention(n: Notification) -> str:
    """ "For student <@U024BE7LH>" when [roster.people] gives their Slack member id."""
    to = n.addressed_to
    member = to.handles.get("slack") if to is not None else None
    return f"For {to.role} <@{member}>" if to is not None and member else ""


def console_line(n: Notification) -> str:
    """One readable line for the console receiver (the demo prints these)."""
    ref = n.created_at
    parts = [
        f"{local_time(ref, ref, zone_of(n), with_date=True)} {_title(n).upper()}"
        f" {clean_text(n.brand, NAME_LIMIT)}"
        f"/{clean_text(n.source, NAME_LIMIT)} ({clean_text(n.platform, NAME_LIMIT)}):"
        f" {_count(len(n.items))}",
        plain_duty(n.duty),
    ]
    for item in n.items[:CONSOLE_MAX_ITEMS]:
        author = clean_text(item.author, NAME_LIMIT) or "a consumer"
        excerpt = clean_text(item.excerpt, CONSOLE_EXCERPT_LIMIT)
        link = clean_text(item.permalink, 500) or "no link"
        ack = f" ack: {item.ack_url}" if item.ack_url else ""
        status = item_status(item, ref, zone_of(n))
        if item.acked_by:
            status += f", acknowledged by {clean_text(item.acked_by, NAME_LIMIT)}"
        parts.append(f'#{item.item_id} {author}: "{excerpt}" {status} {link}{ack}')
    hidden = len(n.items) - CONSOLE_MAX_ITEMS
    if hidden > 0:
        parts.append(f"and {hidden} more")
    return " · ".join(parts)


def summary(n: Notification) -> str:
    """A one-line sentence saying what happened, where, and who is on duty."""
    ref = n.created_at
    where = f"on {clean_text(n.source, NAME_LIMIT)} ({clean_text(n.brand, NAME_LIMIT)})"
    count = _count(len(n.items))
    waiting = [item for item in n.items if item.state not in _RESOLVED] or list(n.items)
    if n.kind == "handover":
        to = clean_text(n.addressed_to.name, NAME_LIMIT) if n.addressed_to else "the next shift"
        if not n.items:
            return f"Handover to {to} {where}: nothing is waiting; {plain_duty(n.duty)}."
        late = sum(1 for item in n.items if item.due_at <= ref)
        first_due = min(item.due_at for item in n.items)
        past = f", {late} past target" if late else ""
        return (
            f"Handover to {to} {where}: {count} waiting{past}, the first"
            f" {_due_phrase(first_due, ref)}; {plain_duty(n.duty)}."
        )
    if not n.items:
        what = f"{count} {where}"
    elif n.kind == "warning":
        first_due = min(item.due_at for item in waiting)
        what = f"{count} waiting {where}, the first {_due_phrase(first_due, ref)}"
    elif n.kind == "window":
        closes = [item.window_closes_at for item in n.items if item.window_closes_at]
        conversations = counted(len(n.items), "Messenger conversation")
        when = f" closes at {local_time(min(closes), ref, zone_of(n))}" if closes else ""
        what = f"{conversations} {where}{when}, unanswered"
    elif n.kind == "taken":
        when = local_time(n.created_at, ref, zone_of(n))
        what = f"{count} {where} taken by {_taker(n)} at {when}; reminders and escalation stop"
    elif n.kind in ("breach", "escalation", "reminder"):
        oldest = min(item.created_at for item in waiting)
        still = "still " if n.kind != "breach" else ""
        waited = spoken_duration(ref - oldest)
        what = f"{count} {still}past target {where}, the oldest waiting {waited}"
    else:
        what = f"{count} {where}: {_resolutions(n.items)}"
    return f"{_title(n)}: {what}; {plain_duty(n.duty)}."


def _taker(n: Notification) -> str:
    """Who acknowledged the items of a `taken` notification."""
    names = dict.fromkeys(clean_text(i.acked_by, NAME_LIMIT) for i in n.items if i.acked_by)
    return ", ".join(names) or "somebody"


def _title(n: Notification) -> str:
    """ "Breach", "Escalation to backup night-bram", "Reminder 2"."""
    title = _KIND_TITLE[n.kind]
    if n.kind == "escalation" and n.addressed_to is not None:
        name = clean_text(n.addressed_to.name, NAME_LIMIT)
        return f"{title} to {n.addressed_to.role} {name}"
    if n.kind == "reminder" and n.step is not None:
        return f"{title} {n.step}"
    return title


def iso_utc(moment: datetime) -> str:
    """RFC 3339 in UTC with a `Z`; a naive datetime is taken as UTC (DESIGN.md section 2)."""
    return _utc(moment).isoformat().replace("+00:00", "Z")


def clean_text(text: str | None, limit: int = EXCERPT_LIMIT) -> str:
    """Single line, no control or bidi characters, at most `limit` characters (… when cut)."""
    if not text:
        return ""
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if category in ("Cc", "Zl", "Zp"):
            kept.append(" ")  # newlines and tabs separate words; keep them apart
        elif category != "Cs" and char not in _BIDI:  # lone surrogates cannot be encoded
            kept.append(char)
    flat = " ".join("".join(kept).split())
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit - 30:  # end on a word boundary when one is near
        cut = cut[:space]
    return cut.rstrip() + "…"


def slack_escape(text: str) -> str:
    """Escape user text for Slack mrkdwn: no links, mentions or `<!channel>` can be injected."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _AT_WORD.sub("@\u200b", escaped)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _duty_json(duty: Duty | None) -> dict[str, str | None] | None:
    if duty is None:
        return None
    return {"student": duty.student, "backup": duty.backup, "lead": duty.lead}


def _item_json(item: AlertItem) -> dict[str, Any]:
    return {
        "id": item.item_id,
        "permalink": item.permalink,
        "author": clean_text(item.author, NAME_LIMIT) or None,
        "excerpt": clean_text(item.excerpt),
        "created_at": iso_utc(item.created_at),
        "due_at": iso_utc(item.due_at),
        "period": item.period,
        "state": item.state,
        "responder": clean_text(item.responder, NAME_LIMIT) or None,
        "responded_at": iso_utc(item.responded_at) if item.responded_at is not None else None,
        "acked_by": clean_text(item.acked_by, NAME_LIMIT) or None,
        "ack_url": item.ack_url,
        "dismiss_url": item.dismiss_url,
        "window_closes_at": (
            iso_utc(item.window_closes_at) if item.window_closes_at is not None else None
        ),
    }


def _count(number: int) -> str:
    return counted(number, "consumer post")


def zone_of(n: Notification) -> ZoneInfo:
    """The time zone people reading `n` live in (the roster's); UTC for an unknown name."""
    try:
        return ZoneInfo(n.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_time(moment: datetime, ref: datetime, zone: ZoneInfo, *, with_date: bool = False) -> str:
    """ "23:40 CET (+01:00)", with the date when it is not the local day of `ref`."""
    when = _utc(moment).astimezone(zone)
    offset = when.strftime("%z")
    name = when.tzname()
    # "UTC" says its offset; "CET" or "-03" alone do not.
    suffix = "UTC" if name == "UTC" else f"{name} ({offset[:3]}:{offset[3:]})"
    stamp = f"{when:%H:%M} {suffix}"
    if with_date or when.date() != _utc(ref).astimezone(zone).date():
        return f"{when:%Y-%m-%d} {stamp}"
    return stamp


def waiting_text(item: AlertItem, ref: datetime, zone: ZoneInfo) -> str:
    """How long an unanswered item waits, since when, and when it is (was) due."""
    return (
        f"waiting {spoken_duration(ref - item.created_at)}"
        f" (since {local_time(item.created_at, ref, zone)}),"
        f" {_due_phrase(item.due_at, ref)} ({local_time(item.due_at, ref, zone)})"
    )


def _due_phrase(due_at: datetime, ref: datetime) -> str:
    delta = _utc(due_at) - _utc(ref)
    if delta > timedelta(0):
        return f"due in {spoken_duration(delta)}"
    if delta > timedelta(seconds=-1):
        return "past due"
    return f"past due by {spoken_duration(-delta)}"


def item_status(item: AlertItem, ref: datetime, zone: ZoneInfo) -> str:
    """Where an item stands at `ref`: waiting and due, or how it was resolved."""
    if item.state == "dismissed":
        return "dismissed"
    if item.state in ("answered_in_time", "answered_late"):
        how = "answered in time" if item.state == "answered_in_time" else "answered late"
        by = clean_text(item.responder, NAME_LIMIT)
        after = (
            f" after {spoken_duration(item.responded_at - item.created_at)}"
            if item.responded_at is not None
            else ""
        )
        return how + (f" by {by}" if by else "") + after
    return waiting_text(item, ref, zone)


def _resolutions(items: Iterable[AlertItem]) -> str:
    counts: dict[str, int] = {}
    labels = {
        "answered_in_time": "answered in time",
        "answered_late": "answered late",
        "dismissed": "dismissed",
    }
    for item in items:
        label = labels.get(item.state, item.state.replace("_", " "))
        counts[label] = counts.get(label, 0) + 1
    return ", ".join(f"{number} {label}" for label, number in counts.items())


def plain_duty(duty: Duty | None) -> str:
    if duty is None:
        return "nobody on duty (roster gap)"
    extra = [
        f"{role} {clean_text(name, NAME_LIMIT)}"
        for role, name in (("backup", duty.backup), ("lead", duty.lead))
        if name
    ]
    student = clean_text(duty.student, NAME_LIMIT)
    return f"on duty: {student}" + (f" ({', '.join(extra)})" if extra else "")


def _slack_header(n: Notification) -> str:
    return clean_text(headline(n), SLACK_HEADER_LIMIT)


def headline(n: Notification) -> str:
    """A short title: "Breach: 2 consumer posts past target on acme-fb (acme)"."""
    count = _count(len(n.items))
    text = {
        "warning": f"{count} due soon",
        "breach": f"{count} past target",
        "resolved": count,
        "escalation": f"{count} past target",
        "reminder": f"{count} still past target",
        "handover": f"{count} waiting" if n.items else "nothing waiting",
        "taken": f"{count} taken by {_taker(n)}",
        "window": counted(len(n.items), "Messenger conversation") + " unanswered",
    }[n.kind]
    where = f" on {clean_text(n.source, NAME_LIMIT)} ({clean_text(n.brand, NAME_LIMIT)})"
    return f"{_title(n)}: {text}{where}"


def _slack_date(moment: datetime, ref: datetime, zone: ZoneInfo) -> str:
    """A Slack date token: each reader sees their own time zone; the fallback is the roster's."""
    when = _utc(moment)
    fallback = local_time(when, ref, zone)
    return f"<!date^{int(when.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def _slack_link(permalink: str | None) -> str:
    if not permalink:
        return "no link"
    try:
        scheme = urlsplit(permalink).scheme.lower()
    except ValueError:
        return "no link"
    if scheme not in ("http", "https"):  # a javascript: or slack: link is not a permalink
        return "no link"
    # "|" ends the URL part of a Slack link and "<>&" are its delimiters: escape them.
    url = clean_text(permalink, 2000).replace(" ", "%20").replace("|", "%7C")
    # Only the delimiters: an "@" inside a link is not a mention, and a URL must stay intact.
    url = url.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if len(url) > SLACK_URL_LIMIT:  # a cut URL is a wrong URL; keep the section under its limit
        return "no link"
    return f"<{url}|open>"


def _slack_item(n: Notification, item: AlertItem) -> str:
    ref, zone = n.created_at, zone_of(n)
    author = slack_escape(clean_text(item.author, NAME_LIMIT)) or "A consumer"
    excerpt = slack_escape(clean_text(item.excerpt)) or "(no text)"
    head = f"*{author}* · {_slack_link(item.permalink)}"
    if item.state in _RESOLVED:
        status = slack_escape(item_status(item, ref, zone))
        status = status[:1].upper() + status[1:]
        if item.responded_at is not None:
            status += f" ({_slack_date(item.responded_at, ref, zone)})"
    else:
        status = (
            f"Waiting {spoken_duration(ref - item.created_at)}"
            f" (since {_slack_date(item.created_at, ref, zone)})"
            f" · {_due_phrase(item.due_at, ref)} ({_slack_date(item.due_at, ref, zone)})"
        )
    actions = " · ".join(
        f"<{_slack_url(url)}|{label}>"
        for label, url in (("Acknowledge", item.ack_url), ("Dismiss", item.dismiss_url))
        if url
    )
    if item.acked_by:
        status += f" · acknowledged by {slack_escape(clean_text(item.acked_by, NAME_LIMIT))}"
    return f"{head}\n>{excerpt}\n{status}" + (f"\n{actions}" if actions else "")


def _slack_url(url: str) -> str:
    """Our own link, with Slack's delimiters escaped."""
    return url.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "%7C")


def _slack_duty(duty: Duty | None) -> str:
    if duty is None:
        return "*Nobody is on duty* (roster gap)"
    text = f"On duty: *{slack_escape(clean_text(duty.student, NAME_LIMIT))}*"
    for role, name in (("backup", duty.backup), ("lead", duty.lead)):
        if name:
            text += f" · {role}: {slack_escape(clean_text(name, NAME_LIMIT))}"
    return text


def _slack_context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text, "verbatim": True}]}


# ---- A short text for phones (Apprise: e-mail, SMS, Telegram, ntfy, ...) -------------------

PHONE_MAX_ITEMS = 3
PHONE_EXCERPT_LIMIT = 80
_PLATFORM_NAME = {
    "facebook_page": "Facebook",
    "messenger": "Messenger",
    "instagram": "Instagram",
    "discourse": "Discourse",
    "phpbb": "phpBB",
    "atom": "phpBB",
    "flarum": "Flarum",
    "mastodon": "Mastodon",
    "bluesky": "Bluesky",
}


def phone_text(n: Notification) -> tuple[str, str]:
    """(title, body): plain text, short lines, readable on a lock screen or in an SMS.

    The body starts with the brand, platform and local time (with its offset), then per item
    (at most three) who wrote what, how long it waits and when it is due, and its links.
    """
    ref, zone = n.created_at, zone_of(n)
    platform = _PLATFORM_NAME.get(n.platform, clean_text(n.platform, NAME_LIMIT).replace("_", " "))
    lines = [
        f"{clean_text(n.brand, NAME_LIMIT)} · {platform} · {local_time(ref, ref, zone)}",
    ]
    if n.addressed_to is not None and n.kind in ("escalation", "handover"):
        lines.append(f"For {n.addressed_to.role} {clean_text(n.addressed_to.name, NAME_LIMIT)}.")
    for item in n.items[:PHONE_MAX_ITEMS]:
        author = clean_text(item.author, NAME_LIMIT) or "A consumer"
        excerpt = clean_text(item.excerpt, PHONE_EXCERPT_LIMIT)
        lines.append("")
        lines.append(f'{author}: "{excerpt}"' if excerpt else author)
        lines.append(_phone_status(item, ref, zone))
        link = clean_text(item.permalink, 2000)
        if link.startswith(("https://", "http://")):
            lines.append(link)
        if item.ack_url:
            lines.append(f"Ack: {item.ack_url}")
    hidden = len(n.items) - PHONE_MAX_ITEMS
    if hidden > 0:
        lines.append(f"and {hidden} more")
    lines.append("")
    duty = plain_duty(n.duty)
    lines.append(duty[:1].upper() + duty[1:] + ".")
    if n.queue_url:
        lines.append(f"Queue: {n.queue_url}")
    return clean_text(headline(n), 150), "\n".join(lines)


def _phone_status(item: AlertItem, ref: datetime, zone: ZoneInfo) -> str:
    if item.state in _RESOLVED:
        status = item_status(item, ref, zone)
        return status[:1].upper() + status[1:]
    return (
        f"Waiting {spoken_duration(ref - item.created_at)},"
        f" {_due_phrase(item.due_at, ref)} ({local_time(item.due_at, ref, zone)})"
    )
