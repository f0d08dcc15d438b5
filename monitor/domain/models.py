"""Messages as the platforms give them, and the batches a source returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Period(StrEnum):
    """Whether an item arrived inside the source's office calendar."""

    OFFICE_HOURS = "office_hours"
    AFTER_HOURS = "after_hours"


class ItemState(StrEnum):
    """Lifecycle of an item (DESIGN.md section 2)."""

    OPEN = "open"
    WARNING = "warning"
    BREACHED = "breached"
    ANSWERED_IN_TIME = "answered_in_time"
    ANSWERED_LATE = "answered_late"
    DISMISSED = "dismissed"

    @property
    def is_unanswered(self) -> bool:
        """True while the item still waits for a reply."""
        return self in (ItemState.OPEN, ItemState.WARNING, ItemState.BREACHED)


class Outcome(StrEnum):
    """Outcome label of an answered item."""

    IN_TIME = "in_time"
    LATE = "late"


@dataclass(frozen=True, kw_only=True)
class SourceRef:
    """The labels that identify a configured source."""

    name: str
    brand: str
    platform: str


# What the interaction rule of open networks (monitor/sources/interaction.py) makes of a post:
# the brand's own, a partner's broadcast, an interaction (an item), or chatter (counted only).
KIND_BRAND = "brand"
KIND_BROADCAST = "broadcast"
KIND_INTERACTION = "interaction"
KIND_CHATTER = "chatter"


def tag_key(tag: str) -> str:
    """A hashtag as compared and stored: without '#', lower case."""
    return tag.strip().lstrip("#").lower()


@dataclass(frozen=True, kw_only=True)
class Message:
    """One post or comment, normalised from a platform's wire format."""

    platform_id: str
    thread_id: str
    parent_id: str | None
    author_id: str | None
    author_name: str | None
    text: str
    created_at: datetime  # platform time, timezone-aware UTC
    # Order inside the thread for messages with equal created_at (1-second resolution).
    seq: int
    is_brand: bool
    hidden: bool = False
    deleted: bool = False
    permalink: str | None = None
    # Open networks only (Mastodon, Bluesky), where a source also sees posts nobody asked the
    # brand: what the interaction rule made of a consumer post ("interaction" opens an item;
    # "broadcast" and "chatter" are counted but are not items). None on owned channels, where
    # every consumer message is an item.
    kind: str | None = None
    # The watched hashtags the post carries (lower case, without '#'): the campaign report's key.
    tags: tuple[str, ...] = ()

    @property
    def opens_item(self) -> bool:
        """A consumer message that waits for the brand (the ignore list aside)."""
        return not self.is_brand and self.kind in (None, KIND_INTERACTION)


@dataclass(frozen=True, kw_only=True)
class Skipped:
    """Why one object (a thread, a post) was left out of a fetch."""

    # The reason label of webcare_source_skipped_total: forbidden, not_found, bad_request,
    # malformed (the platform answered, but without the fields we need).
    reason: str
    detail: str  # in the operator's words, for the one log line


@dataclass(frozen=True, kw_only=True)
class Batch:
    """What one fetch returned: messages plus what the source learned about deletions."""

    messages: tuple[Message, ...]
    # Opaque source state to hand back on the next fetch (e.g. the feed's `since`).
    cursor: Mapping[str, Any]
    # Threads whose full message list was fetched: stored messages missing from it were deleted.
    complete_threads: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # Threads the platform says no longer exist.
    deleted_threads: frozenset[str] = frozenset()
    # Highest API usage fraction the platform reported (0..1), if any.
    api_usage_ratio: float | None = None
    requests: int = 0  # HTTP requests
    # Calls as the platform's rate limit counts them, when that differs from HTTP requests
    # (each entry of a Graph batch POST is one call).
    api_calls: int | None = None
    # Push deliveries (webhooks) name single changes instead of re-reading whole threads:
    removed: frozenset[str] = frozenset()  # platform ids that were deleted
    hidden_changes: Mapping[str, bool] = field(default_factory=dict)  # platform id -> hidden
    # True when `messages` carry only what a delivery said (no hidden flag, no permalink):
    # stored messages then take only their new text from them.
    partial: bool = False
    # The platform asked us not to call again for this long (e.g. Graph's regain time).
    wait_seconds: float | None = None
    # Set when the fetch stopped early (the platform throttled it mid-poll, or a transient
    # failure): `messages` hold what came before and `cursor` says where the next fetch resumes.
    # The value is the reason label of webcare_poll_errors_total ("rate_limited", "transient").
    interrupted: str | None = None
    # Objects that could not be read or used (platform id -> why); the rest was read as usual.
    skipped: Mapping[str, Skipped] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class StoredMessage:
    """A message as kept in the store, with our own id and detection time."""

    id: int
    source: str
    message: Message
    detected_at: datetime
    edited: bool = False
    # Its text and author were purged or erased: a later poll does not write them back.
    redacted: bool = False


@dataclass(frozen=True, kw_only=True)
class Item:
    """A consumer message we measure: its period, deadlines, state and response."""

    message_id: int
    source: str
    brand: str
    thread_id: str
    created_at: datetime
    period: Period
    weekend: bool
    state: ItemState
    target_seconds: float
    holiday: str | None = None
    warning_at: datetime
    due_at: datetime
    dismissed_reason: str | None = None
    response_message_id: int | None = None
    responder: str | None = None
    responded_at: datetime | None = None
    response_seconds: float | None = None
    response_sla_seconds: float | None = None
    # The consumer's name as the platform shows it, only while the item waits (queue page).
    author_name: str | None = None
