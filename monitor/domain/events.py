"""Events the pipeline emits after a batch is committed; metrics and alerts subscribe."""

from __future__ import annotations

from dataclasses import dataclass

from monitor.domain.models import Item, SourceRef


@dataclass(frozen=True, kw_only=True)
class ItemCreated:
    """A consumer item was stored for the first time by this process."""

    source: SourceRef
    item: Item
    # Older than tracking start minus the largest target: never alerted, no detection lag.
    historic: bool
    detection_lag_seconds: float


@dataclass(frozen=True, kw_only=True)
class ItemAnswered:
    """An item received its first brand response."""

    source: SourceRef
    item: Item
    responder_name: str | None


@dataclass(frozen=True, kw_only=True)
class ItemDismissed:
    """An item left the figures: hidden, deleted, or marked as needing no reply."""

    source: SourceRef
    item: Item
    previous: Item | None  # None when the item was already hidden when first seen


@dataclass(frozen=True, kw_only=True)
class ItemReopened:
    """A dismissed item came back (un-hidden) with its original clock."""

    source: SourceRef
    item: Item


@dataclass(frozen=True, kw_only=True)
class ItemWarned:
    """An unanswered item reached its warning time (warn_at × target of SLA time)."""

    source: SourceRef
    item: Item


@dataclass(frozen=True, kw_only=True)
class ItemBreached:
    """An item was still unanswered, as known after a re-fetch, at its due time."""

    source: SourceRef
    item: Item


@dataclass(frozen=True, kw_only=True)
class ItemAcknowledged:
    """Somebody took an unanswered item (ack): escalation and reminders for it have stopped."""

    source: SourceRef
    item: Item
    by: str


Event = (
    ItemCreated
    | ItemAnswered
    | ItemDismissed
    | ItemReopened
    | ItemWarned
    | ItemBreached
    | ItemAcknowledged
)
