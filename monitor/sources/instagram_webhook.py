"""Instagram webhooks (object `instagram`, fields `comments` and `mentions`) into media to re-read.

Payload, from the Webhooks reference for Instagram (`comments`: value `{"from": {"id",
"username"}, "media": {"id", "media_product_type"}, "id", "parent_id", "text"}`; `mentions`:
value `{"media_id", "comment_id"}`), entries keyed by the IG user id. A comment change carries
no timestamp, so its media is re-read from the Graph API (one call), which gives the comment
with its platform time, as a Page comment without `created_time` is. A mention of the account
in a comment on its own media also arrives as a `comments` change; mentions on other accounts'
media are not threads of this source and are left alone.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from monitor.sources.facebook_webhook import MalformedDelivery

# IG ids are numeric strings (sent as JSON numbers by some deliveries).
_IG_ID = re.compile(r"[0-9]{1,30}")


def is_instagram(body: bytes) -> bool:
    """True for a delivery of the `instagram` object (anything else is the Page's)."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(document, dict) and document.get("object") == "instagram"


def media_to_reread(body: bytes) -> dict[str, set[str]]:
    """IG user id -> the ids of its media whose comments changed."""
    document = orjson.loads(body)
    entries = document.get("entry") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise MalformedDelivery("no entry list")
    accounts: dict[str, set[str]] = {}
    for entry in entries:
        account = _id(entry.get("id") if isinstance(entry, dict) else None)
        if account is None:
            raise MalformedDelivery("an entry without an IG user id")
        media = accounts.setdefault(account, set())
        changes = entry.get("changes") or []
        if not isinstance(changes, list):
            raise MalformedDelivery("an entry whose changes are no list")
        for change in changes:
            if not isinstance(change, dict) or change.get("field") != "comments":
                continue  # mentions, story insights, live comments...: not threads we keep
            value = change.get("value")
            target = value.get("media") if isinstance(value, dict) else None
            media_id = _id(target.get("id") if isinstance(target, dict) else None)
            if media_id is None:
                raise MalformedDelivery("a comments change without its media id")
            media.add(media_id)
    return accounts


def _id(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    text = str(value)
    if not _IG_ID.fullmatch(text):
        raise MalformedDelivery(f"an id of {len(text)} characters that is no IG id")
    return text
