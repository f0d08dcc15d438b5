"""Frozen domain objects shared by every layer."""

from monitor.domain.models import (
    KIND_BRAND,
    KIND_BROADCAST,
    KIND_CHATTER,
    KIND_INTERACTION,
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
    "KIND_BRAND",
    "KIND_BROADCAST",
    "KIND_CHATTER",
    "KIND_INTERACTION",
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
