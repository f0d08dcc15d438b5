"""Discourse JSON into our types: moderators, listed topics, post text and times, errors."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from monitor.sources.moderators import ModeratorEntries
from monitor.sources.wire import is_int, parse_time

# Post types (Post.types in Discourse's app/models/post.rb): only regular posts are messages;
# moderator actions, small actions ("closed this topic") and staff whispers never are.
REGULAR_POST = 1

# Discourse's automatic groups that stand for a user flag rather than a primary group.
_FLAG_GROUPS: Mapping[str, str] = MappingProxyType(
    {"staff": "staff", "admins": "admin", "moderators": "moderator"}
)

_CREDENTIALS_PROBLEM = "API username or key is invalid"

_TAG = re.compile(r"<[^>]+>")

_BREAK = re.compile(r"<br\s*/?>|</p>|</li>|</h\d>|</blockquote>", re.IGNORECASE)


@dataclass(frozen=True, kw_only=True)
class Moderators:
    """Who answers for the brand: usernames, user ids, primary groups and staff flags."""

    usernames: frozenset[str] = frozenset()
    user_ids: frozenset[int] = frozenset()
    groups: frozenset[str] = frozenset()
    flags: frozenset[str] = frozenset()  # "staff", "admin", "moderator"

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Moderators:
        """Read config entries: "alice", "id:42", "group:support", "group:staff"."""
        sorted_entries = ModeratorEntries.sort(entries, is_id=lambda v: v.lstrip("-").isdigit())
        groups = frozenset(group.lower() for group in sorted_entries.groups)
        return cls(
            # Discourse usernames are case-insensitive (users.username_lower).
            usernames=frozenset(name.lower() for name in sorted_entries.usernames),
            user_ids=frozenset(int(user_id) for user_id in sorted_entries.user_ids),
            groups=groups,
            flags=frozenset(_FLAG_GROUPS[group] for group in groups if group in _FLAG_GROUPS),
        )

    def match(self, post: Mapping[str, Any]) -> bool:
        """Whether a serialized post was written by one of the brand's moderators."""
        username = post.get("username")
        if isinstance(username, str) and username.lower() in self.usernames:
            return True
        user_id = post.get("user_id")
        if isinstance(user_id, int) and not isinstance(user_id, bool) and user_id in self.user_ids:
            return True
        group = post.get("primary_group_name")
        if isinstance(group, str) and group.lower() in self.groups:
            return True
        return any(post.get(flag) is True for flag in self.flags)


@dataclass(frozen=True, kw_only=True)
class ListedTopic:
    """One entry of a topic list."""

    id: str
    bumped_at: datetime
    pinned: bool


class Malformed(ValueError):
    """A post or list entry without a field we need (id, post_number, created_at, bumped_at)."""


def parse_discourse_time(value: str) -> datetime:
    """Parse a Discourse timestamp such as `2024-01-05T21:13:04.916Z` into aware UTC."""
    # ValueError if unreadable or without an offset: the caller skips that object.
    moment = parse_time(value)
    if moment is None:
        raise ValueError(f"unreadable timestamp or one without offset: {value!r}")
    return moment


def cooked_text(cooked: Any) -> str:
    """Plain text of a post's `cooked` HTML."""
    if not isinstance(cooked, str):
        return ""
    text = html.unescape(_TAG.sub("", _BREAK.sub("\n", cooked)))
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def wire_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def post_created_at(post: Mapping[str, Any], topic_id: str, post_id: str) -> datetime:
    value = post.get("created_at")
    try:
        if not isinstance(value, str):
            raise ValueError("not a string")
        return parse_discourse_time(value)
    except ValueError as err:
        raise Malformed(
            f"topic {topic_id}: post {post_id} without a readable created_at ({value!r})"
        ) from err


def listed_topic(raw: Mapping[str, Any]) -> ListedTopic:
    topic_id = raw.get("id")
    bumped = raw.get("bumped_at") or raw.get("last_posted_at") or raw.get("created_at")
    if not is_int(topic_id) or not isinstance(bumped, str):
        raise Malformed(f"Discourse listed a topic without id or bumped_at (id {topic_id!r})")
    try:
        bumped_at = parse_discourse_time(bumped)
    except ValueError as err:
        raise Malformed(f"Discourse listed topic {topic_id} with unreadable bumped_at") from err
    return ListedTopic(id=str(topic_id), bumped_at=bumped_at, pinned=raw.get("pinned") is True)


def post_list(stream: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    posts = stream.get("posts")
    return [p for p in posts if isinstance(p, dict)] if isinstance(posts, list) else []


def error_message(body: Any) -> str:
    """The message of a Discourse error body {"errors": [...], "error_type": ...}."""
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            return " ".join(str(e) for e in errors)[:300]
        if isinstance(body.get("message"), str):
            return str(body["message"])[:300]
    if isinstance(body, list) and body:
        return " ".join(str(e) for e in body)[:300]
    return "no message"


def bad_key(said: str) -> bool:
    return _CREDENTIALS_PROBLEM.lower() in said.lower()
