"""Facebook Page webhooks (`feed` field): signature check and translation into batches.

Payload shape, from the Graph API Webhooks reference for Page `feed` and bottender's typed
copy of it (bottender/packages/bottender-facebook FacebookTypes: FeedStatus, FeedPost,
FeedComment): `{"object": "page", "entry": [{"id": PAGE_ID, "time": UNIX, "changes": [{"field":
"feed", "value": {"item": "comment" | "status" | "post" | "photo" | "video" | "share",
"verb": "add" | "edited" | "remove" | "hide" | "unhide", "post_id", "comment_id",
"parent_id", "from": {"id", "name"}, "created_time": UNIX, "message"}}]}]}`. Older deliveries
name the author with `sender_id` / `sender_name` instead of `from`; `remove` often has no
`created_time` and no `from`.

A signed delivery comes from Facebook, which redelivers anything not answered 200 for up to
36 hours: a change we cannot take at its word (no usable `created_time`, one outside
2004..2100) is not refused but re-read from the Graph API by the next poll of its thread.
Values that cannot be stored at all (ids that are no Graph ids, a body that is no delivery)
make the delivery malformed (400).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from monitor.domain import Batch, Message
from monitor.sources.facebook import comment_seq

POST_ITEMS = frozenset({"status", "post", "photo", "video", "share", "link", "event"})
# Graph ids: digits, "{page}_{post}" or "{post}_{comment}"; letters too in some object types.
_GRAPH_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z_.:-]{0,199}")
# created_time outside this window is no time Facebook could mean (it opened in 2004); such a
# change is re-read by a poll instead (and the calendar arithmetic stays far from year 9999).
EARLIEST = datetime(2004, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
_MAX_NAME_CHARS = 500
_MAX_SEQ_DIGITS = 18  # the comment's position fits a 64-bit column


class MalformedDelivery(ValueError):
    """The body is not a Page webhook delivery we can read."""


def signature_valid(app_secret: str, body: bytes, header: str | None) -> bool:
    """True iff `X-Hub-Signature-256` is `sha256=<hex HMAC-SHA256 of the raw body>`."""
    if not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header.removeprefix("sha256=").strip().lower())


@dataclass(kw_only=True)
class PageChanges:
    """Everything one delivery said about one page."""

    messages: dict[str, Message] = field(default_factory=dict)
    removed: set[str] = field(default_factory=set)
    hidden: dict[str, bool] = field(default_factory=dict)
    removed_threads: set[str] = field(default_factory=set)
    # Changes we cannot apply from the delivery alone: re-read these threads.
    reconcile: set[str] = field(default_factory=set)

    def batch(self, cursor: Mapping[str, Any]) -> Batch:
        """The changes as a partial batch for the pipeline (the cursor stays where it is)."""
        return Batch(
            messages=tuple(self.messages.values()),
            cursor=cursor,
            removed=frozenset(self.removed),
            hidden_changes=dict(self.hidden),
            deleted_threads=frozenset(self.removed_threads),
            partial=True,
        )


def parse_delivery(body: bytes) -> dict[str, PageChanges]:
    """Translate a delivery into changes per page id; unknown items and fields are skipped."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise MalformedDelivery(f"body is not JSON: {err}") from err
    if not isinstance(document, dict) or not isinstance(document.get("entry"), list):
        raise MalformedDelivery("no entry list")
    pages: dict[str, PageChanges] = {}
    for entry in document["entry"]:
        if not isinstance(entry, dict) or entry.get("id") is None:
            raise MalformedDelivery("an entry without a page id")
        page_id = _id(entry["id"])
        if page_id is None:
            raise MalformedDelivery("an entry whose id is no Graph id")
        changes = pages.setdefault(page_id, PageChanges())
        listed = entry.get("changes") or []
        if not isinstance(listed, list):
            raise MalformedDelivery("an entry whose changes are no list")
        for change in listed:
            if isinstance(change, dict) and change.get("field") == "feed":
                value = change.get("value")
                if not isinstance(value, dict):
                    raise MalformedDelivery("a feed change without a value")
                _apply(changes, value, page_id)
    return pages


def _apply(changes: PageChanges, value: Mapping[str, Any], page_id: str) -> None:
    item, verb = value.get("item"), value.get("verb")
    if item != "comment" and not (isinstance(item, str) and item in POST_ITEMS):
        return  # reactions, likes, ratings...: not messages
    post_id = _id(value.get("post_id"))
    target = _id(value.get("comment_id")) if item == "comment" else post_id
    if target is None or post_id is None:
        raise MalformedDelivery(f"a {item} change without its ids")
    if verb == "remove":
        if item == "comment":
            changes.removed.add(target)
        else:
            changes.removed_threads.add(target)
        changes.messages.pop(target, None)
    elif verb in ("hide", "unhide"):
        changes.hidden[target] = verb == "hide"
    elif verb in ("add", "edited"):
        message = _message(value, item == "comment", target, post_id, page_id)
        if message is None:
            changes.reconcile.add(post_id)  # e.g. an edit without created_time
        else:
            changes.messages[target] = message


def _message(
    value: Mapping[str, Any], is_comment: bool, target: str, post_id: str, page_id: str
) -> Message | None:
    created_at = _instant(value.get("created_time"))
    if created_at is None:
        return None
    sender = value.get("from")
    if isinstance(sender, dict):
        author_id, author_name = _id(sender.get("id")), sender.get("name")
    else:  # the older form
        author_id, author_name = _id(value.get("sender_id")), value.get("sender_name")
    parent = _id(value.get("parent_id")) if is_comment else None
    return Message(
        platform_id=target,
        thread_id=post_id,
        parent_id=(parent or post_id) if is_comment else None,
        author_id=author_id,
        author_name=author_name[:_MAX_NAME_CHARS] if isinstance(author_name, str) else None,
        # PostgreSQL cannot store NUL in text; Facebook never sends one.
        text=str(value.get("message") or "").replace("\x00", ""),
        created_at=created_at,
        seq=_seq(target) if is_comment else 0,
        is_brand=author_id == page_id,
    )


def _instant(value: Any) -> datetime | None:
    """A Unix `created_time` inside [EARLIEST, LATEST), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or not EARLIEST.timestamp() <= value < LATEST.timestamp():
        return None
    return datetime.fromtimestamp(value, tz=UTC)


def _seq(comment_id: str) -> int:
    """As the poller orders comments (comment_seq), for ids whose number fits the column."""
    tail = comment_id.rpartition("_")[2]
    if tail.isascii() and tail.isdigit() and len(tail) <= _MAX_SEQ_DIGITS:
        return comment_seq(comment_id, 0)
    return 0


def _id(value: Any) -> str | None:
    """A Graph id (numbers arrive as JSON numbers in some deliveries), None when absent."""
    if isinstance(value, bool) or value is None:
        return None
    text = str(value)
    if not text:
        return None
    if not _GRAPH_ID.fullmatch(text):
        # Not quoted: the field may be a sender's, and logs hold no consumer data.
        raise MalformedDelivery(f"an id of {len(text)} characters that is no Graph id")
    return text
