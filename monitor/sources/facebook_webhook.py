"""Facebook Page webhooks (`feed` field): signature check and translation into batches.

Payload shape, from the Graph API Webhooks reference for Page `feed` and bottender's typed
copy of it (bottender/packages/bottender-facebook FacebookTypes: FeedStatus, FeedPost,
FeedComment): `{"object": "page", "entry": [{"id": PAGE_ID, "time": UNIX, "changes": [{"field":
"feed", "value": {"item": "comment" | "status" | "post" | "photo" | "video" | "share",
"verb": "add" | "edited" | "remove" | "hide" | "unhide", "post_id", "comment_id",
"parent_id", "from": {"id", "name"}, "created_time": UNIX, "message"}}]}]}`. Older deliveries
name the author with `sender_id` / `sender_name` instead of `from`; `remove` often has no
`created_time` and no `from`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from monitor.domain import Batch, Message
from monitor.sources.facebook import comment_seq

POST_ITEMS = frozenset({"status", "post", "photo", "video", "share", "link", "event"})


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
        page_id = str(entry["id"])
        changes = pages.setdefault(page_id, PageChanges())
        for change in entry.get("changes") or []:
            if isinstance(change, dict) and change.get("field") == "feed":
                value = change.get("value")
                if not isinstance(value, dict):
                    raise MalformedDelivery("a feed change without a value")
                _apply(changes, value, page_id)
    return pages


def _apply(changes: PageChanges, value: Mapping[str, Any], page_id: str) -> None:
    item, verb = value.get("item"), value.get("verb")
    post_id = _id(value.get("post_id"))
    if item == "comment":
        target = _id(value.get("comment_id"))
    elif item in POST_ITEMS:
        target = post_id
    else:
        return  # reactions, likes, ratings...: not messages
    if target is None or post_id is None:
        raise MalformedDelivery(f"{item} {verb} without its ids")
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
    created = value.get("created_time")
    if isinstance(created, bool) or not isinstance(created, int | float):
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
        author_name=author_name if isinstance(author_name, str) else None,
        text=str(value.get("message") or ""),
        created_at=datetime.fromtimestamp(created, tz=UTC),
        seq=comment_seq(target, 0) if is_comment else 0,
        is_brand=author_id == page_id,
    )


def _id(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    text = str(value)
    return text or None
