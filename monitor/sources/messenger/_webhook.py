"""Messenger webhook deliveries (`messages`, `message_echoes`) into batches per Page.

Shape, from the Messenger Platform webhook reference ("messages" and "message_echoes"
events): `{"object": "page", "entry": [{"id": PAGE_ID, "time": ms, "messaging": [{"sender":
{"id"}, "recipient": {"id"}, "timestamp": ms, "message": {"mid", "text", "is_echo"}}]}]}`.
The person is named by their page-scoped id (PSID) only, never by name or conversation id;
the Page's own replies come as echoes (sender = the Page). An unsent message arrives as
`message: {"mid", "is_deleted": true}` (as documented for Instagram Messaging, which shares
the format). Delivery, read and postback events carry no message and are left out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from monitor.domain import Message
from monitor.sources.facebook_webhook import PageChanges

# Unix milliseconds inside this window (2004..2100); anything else is re-read by a poll.
_EARLIEST_MS = 1_072_915_200_000
_LATEST_MS = 4_102_444_800_000
_MAX_ID_CHARS = 200


def parse_messaging(body: bytes) -> dict[str, PageChanges]:
    """Messenger events of a Page delivery, per Page id; entries without `messaging` left out."""
    # The caller has checked the signature and parsed the feed part; bad JSON is theirs to
    # refuse, so it yields nothing here.
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    entries = document.get("entry") if isinstance(document, dict) else None
    pages: dict[str, PageChanges] = {}
    for entry in entries if isinstance(entries, list) else []:
        events = entry.get("messaging") if isinstance(entry, dict) else None
        page_id = _id(entry.get("id")) if isinstance(entry, dict) else None
        if not isinstance(events, list) or page_id is None:
            continue
        found = pages.setdefault(page_id, PageChanges())
        for event in events:
            if isinstance(event, dict):
                _apply(found, event, page_id)
    return pages


def _apply(found: PageChanges, event: Mapping[str, Any], page_id: str) -> None:
    message = event.get("message")
    sender = _id(_get(event, "sender"))
    recipient = _id(_get(event, "recipient"))
    if not isinstance(message, dict) or sender is None or recipient is None:
        return  # delivery, read, postback, reaction: no message
    mid = message.get("mid")
    if not isinstance(mid, str) or not mid or len(mid) > _MAX_ID_CHARS:
        return
    from_page = sender == page_id or message.get("is_echo") is True
    person = recipient if from_page else sender
    if message.get("is_deleted") is True:
        found.removed.add(mid)
        found.messages.pop(mid, None)
        return
    stamp = event.get("timestamp")
    if (
        isinstance(stamp, bool)
        or not isinstance(stamp, int | float)
        or not math.isfinite(stamp)
        or not _EARLIEST_MS <= stamp < _LATEST_MS
    ):
        found.reconcile.add(person)
        return
    millis = int(stamp)
    text = message.get("text")
    found.messages[mid] = Message(
        platform_id=mid,
        thread_id=person,
        parent_id=None,
        author_id=sender,
        author_name=None,  # deliveries never name the person; a poll fills it in
        text=text.replace("\x00", "") if isinstance(text, str) else "",
        # Graph's created_time has whole seconds: the same second here, the milliseconds
        # order messages within it.
        created_at=datetime.fromtimestamp(millis // 1000, UTC),
        seq=millis % 1000,
        is_brand=from_page,
    )


def _get(event: Mapping[str, Any], key: str) -> Any:
    part = event.get(key)
    return part.get("id") if isinstance(part, dict) else None


def _id(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value)
    return text if text.isdigit() and len(text) <= _MAX_ID_CHARS else None
