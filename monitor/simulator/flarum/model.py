"""What the fake Flarum stores: groups, users, tags, discussions and posts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

# Flarum's built-in groups (Flarum\Group\Group::ADMINISTRATOR_ID etc.) and the install's admin.
ADMIN_GROUP, GUEST_GROUP, MEMBER_GROUP, MOD_GROUP = 1, 2, 3, 4
ADMIN_USER = 1
DEFAULT_LIMIT, MAX_LIMIT = 20, 50  # [LIMIT]
JSON_API = "application/vnd.api+json"
_MENTION_SOURCE = re.compile(r'@"(?P<name>[^"]*)"#p(?P<id>\d+)')
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
# What a post can be served without [BROKEN]: attributes, the `user` relationship, its id.
PostField = Literal["createdAt", "number", "contentType", "user", "id"]


class RecordedRequest(NamedTuple):
    """One request the fake received: path, query and whether it carried an Authorization."""

    path: str
    query: dict[str, str]
    authorized: bool


@dataclass(frozen=True, kw_only=True)
class _Group:
    id: int
    singular: str
    plural: str
    color: str | None = None
    icon: str | None = None


@dataclass(kw_only=True)
class _User:
    id: int
    username: str
    display_name: str
    groups: tuple[int, ...]
    joined_at: datetime


@dataclass(kw_only=True)
class _Tag:
    id: int
    name: str
    slug: str


@dataclass(kw_only=True)
class _Discussion:
    id: int
    title: str
    user_id: int | None
    created_at: datetime
    tag_ids: tuple[int, ...]
    hidden_at: datetime | None = None
    next_number: int = 1


@dataclass(kw_only=True)
class _Post:
    id: int
    discussion_id: int
    number: int
    user_id: int | None
    created_at: datetime
    type: str  # "comment" or an event type such as "discussionRenamed"
    content: Any  # comments: the source text; event posts: their JSON content
    edited_at: datetime | None = None
    hidden_at: datetime | None = None


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return moment


def _date(moment: datetime) -> str:
    """DateTime::RFC3339 in UTC, as Flarum stores and formats dates [DATE]."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _slugify(title: str) -> str:
    return _NOT_SLUG.sub("-", title.lower()).strip("-")


def _builtin_groups() -> dict[int, _Group]:
    """The groups of a fresh install, with their colours and icons."""
    return {
        ADMIN_GROUP: _Group(id=ADMIN_GROUP, singular="Admin", plural="Admins",
                            color="#B72A2A", icon="fas fa-wrench"),
        GUEST_GROUP: _Group(id=GUEST_GROUP, singular="Guest", plural="Guests"),
        MEMBER_GROUP: _Group(id=MEMBER_GROUP, singular="Member", plural="Members"),
        MOD_GROUP: _Group(id=MOD_GROUP, singular="Mod", plural="Mods",
                          color="#80349E", icon="fas fa-bolt"),
    }  # fmt: skip
