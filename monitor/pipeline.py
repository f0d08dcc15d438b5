"""handle_batch: upsert messages, match responses, update item states, emit events."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from monitor.domain import Batch, Item, ItemState, Message, SourceRef, StoredMessage
from monitor.domain.events import Event, ItemAnswered, ItemCreated, ItemDismissed, ItemReopened
from monitor.sla.evaluate import SlaPolicy
from monitor.store.identities import mask_known, names_people
from monitor.store.pseudonyms import MessagePrivacy
from monitor.store.repository import Store, Tx

# Fields a platform may change after the fact; created_at is deliberately not among them.
# Checks, inside a batch's transaction, that this instance may still write for the source.
Guard = Callable[[AsyncConnection], Awaitable[None]]

_MUTABLE = ("text", "hidden", "deleted", "author_name", "permalink", "parent_id", "kind", "tags")
# What a purge or an erasure removed is not written back by a later poll of the thread.
_REDACTED = frozenset({"text", "author_name", "permalink"})


@dataclass(frozen=True, kw_only=True)
class SourceSettings:
    """Everything the pipeline needs to know about one source."""

    ref: SourceRef
    policy: SlaPolicy
    ignore_authors: frozenset[str]  # as configured, and their pseudonyms
    active_days: float
    # Pseudonyms and store_text; None stores messages as the platform gives them (tests).
    privacy: MessagePrivacy | None = None

    @property
    def max_target(self) -> float:
        """The largest target: items older than tracking start minus this are historic."""
        return max(self.policy.targets.values())

    def is_item(self, message: Message) -> bool:
        """Consumer messages are items (open networks: interactions), except ignored authors."""
        if not message.opens_item:
            return False
        return not (
            (message.author_id and message.author_id in self.ignore_authors)
            or (message.author_name and message.author_name in self.ignore_authors)
        )


@dataclass(frozen=True, kw_only=True)
class BatchResult:
    """What storing a batch did."""

    events: list[Event]
    new_messages: int
    changed_messages: int
    tracking_start: datetime


def _row(source: str, message: Message, now: datetime) -> dict[str, Any]:
    return {
        "source": source,
        "platform_id": message.platform_id,
        "thread_id": message.thread_id,
        "parent_id": message.parent_id,
        "seq": message.seq,
        "author_id": message.author_id,
        "author_name": message.author_name,
        "text": message.text,
        "permalink": message.permalink,
        "created_at": message.created_at,
        "detected_at": now,
        "updated_at": now,
        "is_brand": message.is_brand,
        "hidden": message.hidden,
        "deleted": message.deleted,
        "edited": False,
        "kind": message.kind,
        "tags": message.tags,
    }


def _changes(stored: StoredMessage, incoming: Message, *, partial: bool) -> dict[str, Any]:
    """Column updates needed to bring a stored message in line with the platform."""
    values: dict[str, Any] = {}
    for name in ("text",) if partial else _MUTABLE:
        if stored.redacted and name in _REDACTED:
            continue
        new = getattr(incoming, name)
        if name == "deleted":
            new = False  # the platform returned it, so it exists (again)
        if getattr(stored.message, name) != new:
            values[name] = new
    if "text" in values:
        values["edited"] = True
    return values


def _as_stored(message: Message) -> Message:
    """The message as the store gives it back: created_at in UTC."""
    created = message.created_at.astimezone(UTC)
    return (
        message
        if created.tzinfo is message.created_at.tzinfo
        else replace(message, created_at=created)
    )


def _in_platform_order(stored: StoredMessage) -> tuple[datetime, int, int]:
    return (stored.message.created_at, stored.message.seq, stored.id)


async def _upsert(
    tx: Tx, source: str, batch: Batch, now: datetime
) -> tuple[set[str], set[str], dict[str, list[StoredMessage]], set[str]]:
    """Insert new messages, update changed ones, tombstone vanished ones.

    Returns (new platform ids, changed platform ids, stored messages of each affected thread,
    the affected threads that had messages stored before this batch).
    """
    incoming = {m.platform_id: m for m in batch.messages}
    wanted = set(incoming) | set(batch.removed) | set(batch.hidden_changes)
    checked = set(batch.complete_threads) | set(batch.deleted_threads)
    # One read, before the writes, finds the stored versions and the threads the batch touches;
    # the writes are applied to it as they are made, so it ends as a read after them would.
    around = {m.thread_id for m in incoming.values()} | checked
    found = await tx.messages_around(source, wanted, around)
    stored_threads: dict[str, list[StoredMessage]] = {t: [] for t in around}
    for stored in found:
        if stored.message.thread_id in stored_threads:
            stored_threads[stored.message.thread_id].append(stored)
    # In platform id order, as the store used to return them.
    existing = {
        s.message.platform_id: s
        for s in sorted(found, key=lambda s: s.message.platform_id)
        if s.message.platform_id in wanted
    }
    new_ids = set(incoming) - set(existing)
    changed: set[str] = set()
    threads = {incoming[pid].thread_id for pid in new_ids}
    writes: dict[int, dict[str, Any]] = {}
    for pid, stored in existing.items():
        values = _changes(stored, incoming[pid], partial=batch.partial) if pid in incoming else {}
        if pid in batch.hidden_changes and stored.message.hidden != batch.hidden_changes[pid]:
            values["hidden"] = batch.hidden_changes[pid]
        if pid in batch.removed and not stored.message.deleted:
            values["deleted"] = True
        if values:
            writes[stored.id] = {**values, "updated_at": now}
            changed.add(pid)
            threads.add(stored.message.thread_id)
    # A changed message stored under a thread the batch does not name (a push delivery's).
    missing = threads - around
    if missing:
        stored_threads.update(await tx.thread_messages(source, missing))
    known = {t for t in threads | checked if stored_threads[t]}
    ids = await tx.insert_messages([_row(source, incoming[pid], now) for pid in sorted(new_ids)])
    detected = now.astimezone(UTC)
    for pid in new_ids:
        message = _as_stored(incoming[pid])
        stored_threads[message.thread_id].append(
            StoredMessage(id=ids[pid], source=source, message=message, detected_at=detected)
        )
    for stored_list in stored_threads.values():
        for n, stored in enumerate(stored_list):
            written = writes.get(stored.id)
            if written is not None:
                fields = {k: v for k, v in written.items() if k not in ("edited", "updated_at")}
                stored_list[n] = replace(
                    stored,
                    message=replace(stored.message, **fields),
                    edited=written.get("edited", stored.edited),
                )
        stored_list.sort(key=_in_platform_order)
    # Tombstones: kept forever, only flagged (DESIGN.md section 2).
    for thread_id in checked:
        alive = batch.complete_threads.get(thread_id, frozenset())
        stored_list = stored_threads[thread_id]
        for n, stored in enumerate(stored_list):
            if stored.message.platform_id not in alive and not stored.message.deleted:
                writes[stored.id] = {
                    **writes.get(stored.id, {}),
                    "deleted": True,
                    "updated_at": now,
                }
                stored_list[n] = replace(stored, message=replace(stored.message, deleted=True))
                changed.add(stored.message.platform_id)
                threads.add(thread_id)
    await tx.update_messages(writes)
    affected = {thread_id: stored_threads[thread_id] for thread_id in threads}
    return new_ids, changed, affected, known & threads


def _events_for(settings: SourceSettings, before: Item | None, after: Item) -> list[Event]:
    """Transitions between two versions of an item (before is None for a new item)."""
    ref = settings.ref
    events: list[Event] = []
    was_dismissed = before is not None and before.state is ItemState.DISMISSED
    if was_dismissed and after.state is not ItemState.DISMISSED:
        events.append(ItemReopened(source=ref, item=after))
    if after.state is ItemState.DISMISSED and not was_dismissed:
        events.append(ItemDismissed(source=ref, item=after, previous=before))
    if (
        after.response_message_id is not None
        and (before is None or before.response_message_id is None)
        and after.state is not ItemState.DISMISSED
    ):
        events.append(ItemAnswered(source=ref, item=after, responder_name=after.responder))
    return events


async def handle_batch(
    store: Store,
    settings: SourceSettings,
    batch: Batch,
    now: datetime,
    *,
    guard: Guard | None = None,
) -> BatchResult:
    """Store one batch atomically (with its cursor) and return the resulting events.

    `guard` runs first inside the transaction and may refuse the whole write (FencedOut:
    another instance holds the source now).
    """
    source = settings.ref.name
    events: list[Event] = []
    given = batch.messages
    if settings.privacy is not None:
        batch = replace(batch, messages=tuple(map(settings.privacy.apply, batch.messages)))
    async with store.transaction() as tx:
        if guard is not None:
            await guard(tx.conn)
        if settings.privacy is not None and names_people(settings.ref.platform):
            batch = await mask_known(
                tx.conn, source, settings.ref.platform, batch, settings.privacy.pseudonyms
            )
        # The queue page shows a waiting item's author by name: kept on the item, not the
        # message (under the id as stored: masking keeps the order of the messages).
        names = {
            m.platform_id: g.author_name
            for g, m in zip(given, batch.messages, strict=True)
            if not g.is_brand
        }
        tracking_start = await tx.start_batch(settings.ref, cursor=batch.cursor, now=now)
        historic_before = tracking_start - timedelta(seconds=settings.max_target)
        new_ids, changed, thread_msgs, known = await _upsert(tx, source, batch, now)
        # Items belong to stored messages: a thread first seen in this batch has none yet.
        items = await tx.thread_items(source, known) if known else {}
        created: list[Item] = []
        # Only the brand's messages can answer: each item looks among those, not the thread.
        replies = {
            thread_id: [s for s in thread if s.message.is_brand]
            for thread_id, thread in thread_msgs.items()
        }
        for thread_id, thread in thread_msgs.items():
            for stored in thread:
                message = stored.message
                # A redacted message without an item was never one (an ignored author's).
                if stored.id in items or stored.redacted or not settings.is_item(message):
                    continue
                evaluated = settings.policy.first_item(
                    message_id=stored.id,
                    source=source,
                    message=message,
                    brand=settings.ref.brand,
                    thread=replies[thread_id],
                    author_name=names.get(message.platform_id),
                )
                created.append(evaluated)
                historic = message.created_at < historic_before
                events.append(
                    ItemCreated(
                        source=settings.ref,
                        item=evaluated,
                        historic=historic,
                        detection_lag_seconds=(
                            stored.detected_at - message.created_at
                        ).total_seconds(),
                    )
                )
                events.extend(_events_for(settings, None, evaluated))
        await tx.insert_items(created)
        updated: list[Item] = []
        for thread_id, thread in thread_msgs.items():
            for stored in thread:
                before = items.get(stored.id)
                if before is None:
                    continue
                after = settings.policy.evaluate(before, stored.message, replies[thread_id])
                if after != before:
                    updated.append(after)
                    events.extend(_events_for(settings, before, after))
        await tx.update_items(updated)
    return BatchResult(
        events=events,
        new_messages=len(new_ids),
        changed_messages=len(changed),
        tracking_start=tracking_start,
    )
