"""Instagram Graph JSON into our types: errors, media and comments as messages."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from monitor.domain import Message
from monitor.sources.base import AuthError, FatalError, RateLimited, SourceError, TransientError
from monitor.sources.facebook import (
    PERMISSION_CODES,
    THROTTLE_CODES,
    TOKEN_CODES,
    TRANSIENT_CODES,
    GraphUsage,
    parse_graph_time,
)
from monitor.sources.http import redact
from monitor.sources.wire import as_int

# IG Media and IG Comment references (developers.facebook.com/docs/instagram-platform/
# instagram-graph-api/reference/ig-media, .../ig-comment); `timestamp`, not `created_time`.
MEDIA_FIELDS = "id,caption,timestamp,permalink,comments_count"
_COMMENT = "id,text,timestamp,username,from,hidden"
REPLY_FIELDS = _COMMENT
COMMENT_FIELDS = f"{_COMMENT},replies{{{_COMMENT}}}"

_NEW_TOKEN = (
    "give the app instagram_basic and instagram_manage_comments (and pages_read_engagement),"
    " generate a new token of a user who can moderate the account and update access_token"
)

Raw = Mapping[str, Any]


class Gone(FatalError):
    """Graph code 100/33 (or HTTP 404): the media or comment was deleted."""


class Malformed(ValueError):
    """An object without a field we need (id, timestamp)."""


def ig_error(error: Raw, status: int, usage: GraphUsage, where: str, token: str) -> SourceError:
    """Translate a Graph `{"error": {...}}` of an Instagram call into our error tree."""
    code = as_int(error.get("code"))
    subcode = as_int(error.get("error_subcode"))
    ident = f"code {code}" if subcode is None else f"code {code}/{subcode}"
    said = redact(str(error.get("message") or "no message"), token)[:300]
    detail = f"Graph API said {said!r} [{where}]"
    if code in THROTTLE_CODES:
        return RateLimited(
            f"throttled by Instagram ({ident}): {detail}", retry_after=usage.regain_seconds
        )
    if code in TOKEN_CODES:
        return AuthError(f"access token invalid ({ident}): {_NEW_TOKEN}. {detail}")
    if code in PERMISSION_CODES:
        return AuthError(f"permission missing ({ident}): {_NEW_TOKEN}. {detail}")
    if code in TRANSIENT_CODES or error.get("is_transient") is True:
        return TransientError(f"temporary Graph API error ({ident}): {detail}")
    if code == 100 and "appsecret_proof" in said:
        return AuthError(f"Graph wants a valid appsecret_proof ({ident}): set app_secret. {detail}")
    # Deleted objects: code 100 subcode 33 "Unsupported get request" (HTTP 400, or 404).
    if code == 100 and (subcode == 33 or status == 404):
        return Gone(f"object deleted or unreadable ({ident}): {detail}")
    if status >= 500:
        return TransientError(f"Graph API server error HTTP {status} ({ident}): {detail}")
    return FatalError(f"Graph API rejected the request ({ident}): {detail}")


def next_link(body: Raw) -> str | None:
    """`paging.next`, followed verbatim; its absence ends the edge."""
    paging = body.get("paging")
    link = paging.get("next") if isinstance(paging, dict) else None
    return link if isinstance(link, str) and link else None


def _id(raw: Raw, kind: str) -> str:
    value = raw.get("id")
    if not isinstance(value, str | int) or not str(value):
        raise Malformed(f"Graph returned a {kind} without an id")
    return str(value)


def _time(raw: Raw, object_id: str) -> datetime:
    value = raw.get("timestamp")
    try:
        if not isinstance(value, str):
            raise ValueError("not a string")
        return parse_graph_time(value)
    except ValueError as err:
        raise Malformed(f"Graph returned {object_id} with unreadable timestamp") from err


def _text(raw: Raw, key: str) -> str:
    value = raw.get(key)
    return value.replace("\x00", "") if isinstance(value, str) else ""


def seq_of(comment_id: str, position: int) -> int:
    """Order inside a media's thread: IG ids are numbers that fit 64 bits, else the position."""
    if comment_id.isascii() and comment_id.isdigit() and len(comment_id) <= 18:
        return int(comment_id)
    return position


def media_message(raw: Raw, ig_user_id: str, username: str) -> Message:
    """The media (the account's own post) as the thread's first message."""
    media_id = _id(raw, "media")
    link = raw.get("permalink")
    return Message(
        platform_id=media_id,
        thread_id=media_id,
        parent_id=None,
        author_id=ig_user_id,
        author_name=username,
        text=_text(raw, "caption"),
        created_at=_time(raw, media_id),
        seq=0,
        is_brand=True,
        permalink=link if isinstance(link, str) and link else None,
    )


def comment_message(
    raw: Raw, media_id: str, parent_id: str | None, position: int, ig_user_id: str, username: str
) -> Message:
    """A comment (parent_id None) or a reply to one; the account's own are the brand's."""
    comment_id = _id(raw, "comment")
    author = raw.get("from")
    author_id = author.get("id") if isinstance(author, dict) else None
    name = raw.get("username")
    if not isinstance(name, str) and isinstance(author, dict):
        name = author.get("username")
    name = name if isinstance(name, str) and name else None
    # Replies by the account carry its username (its `from.id` is its IG user id).
    own = str(author_id) == ig_user_id or (name or "").lower() == username.lower()
    return Message(
        platform_id=comment_id,
        thread_id=media_id,
        parent_id=parent_id or media_id,
        author_id=str(author_id) if author_id is not None else None,
        author_name=name,
        text=_text(raw, "text"),
        created_at=_time(raw, comment_id),
        seq=seq_of(comment_id, position),
        is_brand=own,
        hidden=raw.get("hidden") is True,
    )
