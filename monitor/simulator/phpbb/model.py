"""What the fake board stores: forums, topics, posts, and the feeds rendered from them."""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

ANONYMOUS = 1  # phpBB's guest user id
LinkStyle = Literal["topic_and_post", "post_only"]
Visibility = Literal["approved", "unapproved", "deleted"]
# What an entry can be served without [BROKEN].
EntryField = Literal["published", "updated", "id", "link", "author"]

# English language strings of the error pages [FTEST] (wording as in phpBB's en pack; the
# adapter never depends on it).
NO_TOPIC = "The requested topic does not exist."
NO_FORUM = "The forum you selected does not exist."
NO_FEED = "The requested feed is not available."
NO_POST = "The requested post does not exist."
SORRY_AUTH_READ_TOPIC = "You are not authorised to read this topic."
SORRY_AUTH_READ = "You are not authorised to read this forum."
BOARD_UNAVAILABLE = (
    "Sorry but the board is temporarily unavailable, please try again in a few minutes."
)


@dataclass(kw_only=True)
class RecordedRequest:
    """One request the fake received; `status` is None when the connection was dropped."""

    path: str
    query: dict[str, str]
    if_none_match: str | None
    if_modified_since: str | None
    status: int | None = None


@dataclass(kw_only=True)
class _Forum:
    id: int
    name: str
    guest_readable: bool = True
    excluded_from_feeds: bool = False


@dataclass(kw_only=True)
class _Topic:
    id: int
    forum_id: int
    title: str
    visibility: Visibility = "approved"


@dataclass(kw_only=True)
class _Post:
    id: int
    topic_id: int
    author: str  # as phpBB stores it: HTML-escaped (request->variable applies htmlspecialchars)
    author_id: int
    subject: str
    html: str
    time: int  # unix seconds
    edit_time: int = 0
    visibility: Visibility = "approved"


@dataclass(frozen=True, kw_only=True)
class _Feed:
    """A rendered feed: the body and its validators."""

    body: bytes
    last_modified: datetime
    etag: str


def _render_text(text: str) -> str:
    """Plain text as phpBB renders it into a feed: escaped, line breaks as `<br>` [HELPER]."""
    return html.escape(text, quote=True).replace("\r\n", "\n").replace("\n", "<br>")


def _unix(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return int(moment.timestamp())
