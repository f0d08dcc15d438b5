"""What the fake Discourse stores: users, categories, topics, posts, the admin API limiter."""

from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

# Post types (Post.types in app/models/post.rb).
REGULAR, MODERATOR_ACTION, SMALL_ACTION, WHISPER = 1, 2, 3, 4
CHUNK_SIZE = 20  # [VIEW] TopicView.chunk_size
TOPICS_PER_PAGE = 30  # SiteSetting.topics_per_page default
SYSTEM_USER_ID = -1
HIDDEN_TEXT = "This post was flagged by the community and is temporarily hidden."
WITHDRAWN = "(post withdrawn by author, will be automatically deleted in 24 hours unless flagged)"
_WINDOW = timedelta(minutes=1)


class RecordedRequest(NamedTuple):
    """One request the fake received: path, query pairs, fake-clock time, and its answer."""

    path: str
    query: tuple[tuple[str, str], ...]
    at: datetime
    status: int


@dataclass(frozen=True, kw_only=True)
class _User:
    id: int
    username: str
    name: str
    admin: bool = False
    moderator: bool = False
    primary_group: str | None = None
    trust_level: int = 1

    @property
    def staff(self) -> bool:
        return self.admin or self.moderator


@dataclass(frozen=True, kw_only=True)
class _Category:
    id: int
    slug: str
    name: str


@dataclass(frozen=True, kw_only=True)
class _Topic:
    id: int
    title: str
    slug: str
    category_id: int
    user_id: int
    created_at: datetime
    bumped_at: datetime
    pinned: bool = False
    closed: bool = False
    deleted_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class _Post:
    id: int
    topic_id: int
    post_number: int
    user_id: int
    raw: str
    created_at: datetime
    updated_at: datetime
    reply_to_post_number: int | None = None
    post_type: int = REGULAR
    action_code: str | None = None
    hidden: bool = False
    deleted_at: datetime | None = None
    user_deleted: bool = False
    version: int = 1


@dataclass(kw_only=True)
class _Limiter:
    """Discourse's RateLimiter: a sliding window of accepted requests per key [AUTH]."""

    per_minute: int
    accepted: deque[datetime] = field(default_factory=deque)

    def wait_seconds(self, now: datetime) -> int:
        """0 if a request may go through now (and count it), else whole seconds to wait."""
        while self.accepted and self.accepted[0] <= now - _WINDOW:
            self.accepted.popleft()
        if len(self.accepted) < self.per_minute:
            self.accepted.append(now)
            return 0
        return max(1, math.ceil((self.accepted[0] + _WINDOW - now).total_seconds()))


_ANONYMOUS = _User(id=0, username="", name="anonymous", trust_level=0)
# The post fields an author's deletion leaves null [ORPHAN].


# The post fields an author's deletion leaves null [ORPHAN].
_AUTHOR_FIELDS = (
    "user_id",
    "username",
    "name",
    "display_username",
    "avatar_template",
    "primary_group_name",
    "trust_level",
)


def _wire(moment: datetime) -> str:
    """[TIME] `2024-01-05T21:13:04.916Z`."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return moment.astimezone(UTC)


def _slugify(title: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return slug or "topic"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _basic_user(user: _User) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "name": user.name,
        "avatar_template": f"/letter_avatar_proxy/v4/letter/{user.username[0]}/{{size}}.png",
        "trust_level": user.trust_level,
        **({"admin": True} if user.admin else {}),
        **({"moderator": True} if user.moderator else {}),
    }
