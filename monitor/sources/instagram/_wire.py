"""Instagram Graph JSON into our types: errors, media and comments as messages."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from monitor.domain import Message
from monitor.sources.base import FatalError, SourceError
from monitor.sources.facebook import (
    GraphProduct,
    GraphUsage,
    graph_error,
    parse_graph_time,
)

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


# Graph's errors told in Instagram's words; a deleted object may also answer a bare 404.
INSTAGRAM = GraphProduct(
    name="Instagram", new_token=_NEW_TOKEN, permission=_NEW_TOKEN, missing=Gone, missing_on_404=True
)


def ig_error(error: Raw, status: int, usage: GraphUsage, where: str, token: str) -> SourceError:
    """Translate a Graph `{"error": {...}}` of an Instagram call into our error tree."""
    return graph_error(error, status, usage, where, token, INSTAGRAM)


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
