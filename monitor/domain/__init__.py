"""Frozen domain objects shared by every layer."""

from monitor.domain.models import (
    Batch,
    Item,
    ItemState,
    Message,
    Outcome,
    Period,
    Skipped,
    SourceRef,
    StoredMessage,
    tag_key,
)

__all__ = [
    "Batch",
    "Item",
    "ItemState",
    "Message",
    "Outcome",
    "Period",
    "Skipped",
    "SourceRef",
    "StoredMessage",
    "tag_key",
]
