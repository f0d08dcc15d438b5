"""Bluesky's JSON into our types: AT URIs, post views, facets, record keys, XRPC errors.

Shapes follow the lexicons in bluesky-social/atproto (lexicons/app/bsky/feed/defs.json
`postView` and `threadViewPost`, app/bsky/feed/post.json, app/bsky/richtext/facet.json,
app/bsky/notification/listNotifications.json).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from monitor.sources.interaction import tag_key
from monitor.sources.wire import as_list, is_int, parse_time

Raw = Mapping[str, Any]

POST_COLLECTION = "app.bsky.feed.post"
MENTION = "app.bsky.richtext.facet#mention"
TAG = "app.bsky.richtext.facet#tag"
THREAD_VIEW = "app.bsky.feed.defs#threadViewPost"
NOT_FOUND_POST = "app.bsky.feed.defs#notFoundPost"
BLOCKED_POST = "app.bsky.feed.defs#blockedPost"
# Embeds that quote another record: a plain quote, and a quote with images or video.
_QUOTE_EMBEDS = ("app.bsky.embed.record", "app.bsky.embed.recordWithMedia")
# Record keys of posts are TIDs: 13 characters of base32-sortable (atproto.com/specs/tid).
_TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"


class Malformed(ValueError):
    """A post without a field we need (uri, author, a readable time)."""


@dataclass(frozen=True, kw_only=True)
class AtUri:
    """at://{did}/{collection}/{rkey}."""

    did: str
    collection: str
    rkey: str

    @classmethod
    def parse(cls, uri: str) -> AtUri:
        """Split an AT URI; Malformed if it is not one of a record."""
        if not uri.startswith("at://"):
            raise Malformed(f"not an AT URI: {uri[:80]!r}")
        parts = uri[len("at://") :].split("/")
        if len(parts) != 3 or not all(parts):
            raise Malformed(f"not the AT URI of a record: {uri[:80]!r}")
        return cls(did=parts[0], collection=parts[1], rkey=parts[2])


@dataclass(frozen=True, kw_only=True)
class PostView:
    """What we read of one post, from a post view, a thread node or a notification."""

    uri: str
    did: str  # the author's
    handle: str | None
    rkey: str
    text: str
    created_at: datetime
    root: str | None  # record.reply.root.uri: the thread, when the post is a reply
    parent: str | None  # record.reply.parent.uri
    quoted: str | None  # the post a quote embeds
    mentions: frozenset[str]  # DIDs of the mention facets
    tags: frozenset[str]  # tag facets and the record's own tags, as tag_key gives them

    @property
    def thread_id(self) -> str:
        """The thread: the reply's root, or the post itself when it starts one."""
        return self.root or self.uri


def tid_value(rkey: str) -> int | None:
    """A TID record key as its 64-bit integer (microseconds and clock id); None if not a TID."""
    if len(rkey) != 13:
        return None
    value = 0
    for char in rkey:
        digit = _TID_ALPHABET.find(char)
        if digit < 0:
            return None
        value = value * 32 + digit
    # The top bit is always 0, so the value fits the store's signed 64-bit seq column.
    return value if value < 2**63 else None


def wire_time(moment: datetime) -> str:
    """A datetime as atproto writes it: UTC, milliseconds, 'Z'."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{moment.microsecond // 1000:03d}Z"
    )


def xrpc_error(body: Any) -> tuple[str, str]:
    """The `error` name and `message` of an XRPC error body (atproto.com/specs/xrpc)."""
    if not isinstance(body, dict):
        return "", ""
    error, message = body.get("error"), body.get("message")
    return (
        error if isinstance(error, str) else "",
        message if isinstance(message, str) else "",
    )


def post_view(raw: Raw) -> PostView:
    """A postView or a notification (both carry uri, author, record and indexedAt)."""
    uri = raw.get("uri")
    if not isinstance(uri, str):
        raise Malformed("a post without a uri")
    at = AtUri.parse(uri)
    author = raw.get("author")
    if not isinstance(author, dict) or not isinstance(author.get("did"), str):
        raise Malformed(f"{uri} without an author")
    handle = author.get("handle")
    record = raw.get("record")
    if not isinstance(record, dict):
        raise Malformed(f"{uri} without a record")
    reply = record.get("reply")
    text = record.get("text")
    return PostView(
        uri=uri,
        did=author["did"],
        handle=handle if isinstance(handle, str) and handle else None,
        rkey=at.rkey,
        text=text.replace("\x00", "") if isinstance(text, str) else "",
        created_at=_sort_at(record.get("createdAt"), raw.get("indexedAt"), uri),
        root=_ref_uri(reply, "root"),
        parent=_ref_uri(reply, "parent"),
        quoted=_quoted(record.get("embed")),
        mentions=frozenset(_features(record, MENTION, "did")),
        tags=frozenset(
            tag_key(t)
            for t in [*_features(record, TAG, "tag"), *as_list(record.get("tags"))]
            if isinstance(t, str) and tag_key(t)
        ),
    )


def reply_count(raw: Raw) -> int:
    """The replies a post view says it has (0 when absent)."""
    value = raw.get("replyCount")
    return value if is_int(value) else 0


def permalink(handle: str | None, did: str, rkey: str) -> str:
    """The post's page in the Bluesky app (by handle, or by DID when the handle is unknown)."""
    return f"https://bsky.app/profile/{handle or did}/post/{rkey}"


def _sort_at(created: Any, indexed: Any, uri: str) -> datetime:
    # createdAt is set by the author's client and may lie (backdated imports, a skewed clock);
    # the AppView sorts by "sortAt", the earlier of createdAt and indexedAt (searchPosts'
    # `since` says so), and so do we: a post dated in the future would never be late.
    times = [t for t in (parse_time(created), parse_time(indexed)) if t is not None]
    if not times:
        raise Malformed(f"{uri} without a readable createdAt or indexedAt")
    return min(times)


def _ref_uri(reply: Any, key: str) -> str | None:
    ref = reply.get(key) if isinstance(reply, dict) else None
    uri = ref.get("uri") if isinstance(ref, dict) else None
    return uri if isinstance(uri, str) and uri else None


def _quoted(embed: Any) -> str | None:
    if not isinstance(embed, dict) or embed.get("$type") not in _QUOTE_EMBEDS:
        return None
    inner = embed.get("record")
    if isinstance(inner, dict) and isinstance(inner.get("record"), dict):
        inner = inner["record"]  # recordWithMedia: {record: {record: strongRef}, media}
    uri = inner.get("uri") if isinstance(inner, dict) else None
    return uri if isinstance(uri, str) else None


def _features(record: Raw, kind: str, key: str) -> list[str]:
    values: list[str] = []
    for facet in as_list(record.get("facets")):
        if not isinstance(facet, dict):
            continue
        for feature in as_list(facet.get("features")):
            if isinstance(feature, dict) and feature.get("$type") == kind:
                value = feature.get(key)
                if isinstance(value, str) and value:
                    values.append(value)
    return values
