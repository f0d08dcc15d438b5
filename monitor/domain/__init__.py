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
]
