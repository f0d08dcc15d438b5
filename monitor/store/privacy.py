"""Retention purges, and what we hold on one consumer: export and erasure (store side)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, case, delete, insert, null, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from monitor.store.identities import has_pseudonym, mask_people, names_people, people_named_by
from monitor.store.pseudonyms import Pseudonyms
from monitor.store.repository import UNANSWERED, Store, chunked
from monitor.store.tables import alert_outbox, items, messages, privacy_keys, sources

# Before this instant every outbox row of a purged source was scrubbed (a later purge starts
# there instead of reading the whole outbox again).
_OUTBOX_MARK = "outbox_scrubbed_before"
_ALERT_FIELDS = ("excerpt", "author", "permalink")


@dataclass(frozen=True, kw_only=True)
class Redacted:
    """What a purge or an erasure changed."""

    messages: int
    items: int
    alerts: int


# Runs inside an erasure's transaction with what it changed (writes its audit entry).
Recorder = Callable[[AsyncConnection, Redacted], Awaitable[object]]


def _consumer_only(column: Any) -> ColumnElement[Any]:
    """The column kept on brand messages (staff acting in their role), cleared on consumers'."""
    return case((messages.c.is_brand, column), else_=null())


def _scrubbed(notification: Mapping[str, Any], item_ids: Collection[int] | None) -> Any:
    """The notification without the excerpt, author and link of the given items (None: all),
    or None when there is nothing to remove."""
    changed = False
    kept = []
    for item in notification.get("items") or ():
        named = item_ids is None or item.get("item_id") in item_ids
        if named and any(item.get(k) for k in _ALERT_FIELDS):
            item = {**item, "excerpt": "", "author": None, "permalink": None}
            changed = True
        kept.append(item)
    return {**notification, "items": kept} if changed else None


async def _scrub_outbox(
    conn: AsyncConnection, rows: Any, cutoffs: Mapping[str, datetime] | None, ids: Any
) -> int:
    changed = 0
    for row in rows:
        notification = row.notification or {}
        cutoff = None if cutoffs is None else cutoffs.get(str(notification.get("source")))
        if cutoffs is not None and (cutoff is None or row.created_at >= cutoff):
            continue
        new = _scrubbed(notification, ids)
        if new is not None:
            await conn.execute(
                update(alert_outbox).where(alert_outbox.c.id == row.id).values(notification=new)
            )
            changed += 1
    return changed


async def _platforms(conn: AsyncConnection, names: Collection[str]) -> dict[str, str]:
    query = select(sources.c.name, sources.c.platform).where(sources.c.name.in_(sorted(names)))
    return {row.name: row.platform for row in await conn.execute(query)}


async def _mask_purged_threads(
    conn: AsyncConnection, source: str, platform: str, now: datetime, pseudonyms: Pseudonyms
) -> None:
    """Mask the people named by the ids of the threads this purge left with nothing unpurged
    (a younger message keeps its thread readable, so the ids stay until it is purged too)."""
    touched = select(messages.c.thread_id).where(
        messages.c.source == source, messages.c.redacted_at == now
    )
    threads = {t for (t,) in await conn.execute(touched.distinct()) if not has_pseudonym(t)}
    for chunk in chunked(sorted(threads)):
        kept = select(messages.c.thread_id).where(
            messages.c.source == source,
            messages.c.thread_id.in_(chunk),
            messages.c.redacted_at.is_(None),
        )
        threads -= {t for (t,) in await conn.execute(kept)}
    people: set[str] = set()
    for chunk in chunked(sorted(threads)):
        rows = select(messages.c.platform_id, messages.c.thread_id, messages.c.is_brand).where(
            messages.c.source == source, messages.c.thread_id.in_(chunk)
        )
        for row in await conn.execute(rows):
            people |= people_named_by(platform, row.platform_id, row.thread_id, row.is_brand)
    await mask_people(conn, source, platform, people, pseudonyms, threads=threads)


async def purge(
    store: Store, cutoffs: Mapping[str, datetime], now: datetime, pseudonyms: Pseudonyms
) -> Redacted:
    """Purge text and consumer identity of messages created before their source's cutoff, and
    the excerpts of alerts about them; items (the timing every figure needs) stay whole.
    Messages of items still waiting are kept until answered or dismissed; ids that name a
    person are masked once their whole thread is purged."""
    if not cutoffs:
        return Redacted(messages=0, items=0, alerts=0)
    waiting = select(items.c.message_id).where(items.c.state.in_(UNANSWERED))
    n_messages = n_items = 0
    async with store.engine.begin() as conn:
        platforms = await _platforms(conn, cutoffs)
        for source, cutoff in sorted(cutoffs.items()):
            result = await conn.execute(
                update(messages)
                .where(
                    messages.c.source == source,
                    messages.c.created_at < cutoff,
                    messages.c.redacted_at.is_(None),
                    messages.c.id.not_in(waiting),
                )
                .values(
                    text="",
                    author_id=_consumer_only(messages.c.author_id),
                    author_name=_consumer_only(messages.c.author_name),
                    permalink=_consumer_only(messages.c.permalink),
                    redacted_at=now,
                )
            )
            n_messages += result.rowcount
            result = await conn.execute(
                update(items)
                .where(
                    items.c.source == source,
                    items.c.created_at < cutoff,
                    items.c.author_name.is_not(None),
                    items.c.state.not_in(UNANSWERED),
                )
                .values(author_name=None)
            )
            n_items += result.rowcount
            platform = platforms.get(source, "")
            if names_people(platform):
                await _mask_purged_threads(conn, source, platform, now, pseudonyms)
        mark = (
            await conn.execute(
                select(privacy_keys.c.value).where(privacy_keys.c.name == _OUTBOX_MARK)
            )
        ).scalar_one_or_none()
        since = datetime.fromisoformat(mark) if mark else None
        query = select(alert_outbox).where(alert_outbox.c.created_at < max(cutoffs.values()))
        if since is not None:
            query = query.where(alert_outbox.c.created_at >= since)
        rows = (await conn.execute(query)).all()
        n_alerts = await _scrub_outbox(conn, rows, cutoffs, None)
        # Every row before the earliest cutoff is scrubbed now, whichever source it is of.
        await conn.execute(delete(privacy_keys).where(privacy_keys.c.name == _OUTBOX_MARK))
        await conn.execute(
            insert(privacy_keys).values(name=_OUTBOX_MARK, value=min(cutoffs.values()).isoformat())
        )
    return Redacted(messages=n_messages, items=n_items, alerts=n_alerts)


def _of_author(values: Collection[str]) -> ColumnElement[bool]:
    return or_(messages.c.author_id.in_(values), messages.c.author_name.in_(values))


async def _their_message_ids(conn: AsyncConnection, values: Collection[str]) -> list[int]:
    found = await conn.execute(select(messages.c.id).where(_of_author(values)))
    named = await conn.execute(select(items.c.message_id).where(items.c.author_name.in_(values)))
    return sorted({row[0] for row in found} | {row[0] for row in named})


async def _outbox_naming(conn: AsyncConnection, item_ids: Collection[int]) -> list[Any]:
    wanted = set(item_ids)
    rows = (await conn.execute(select(alert_outbox).order_by(alert_outbox.c.id))).all()
    return [
        row
        for row in rows
        if any(i.get("item_id") in wanted for i in (row.notification or {}).get("items") or ())
    ]


async def _mask_people_of(
    conn: AsyncConnection, message_ids: Collection[int], pseudonyms: Pseudonyms
) -> None:
    """Mask, in every id of their sources, the people these messages' ids name."""
    rows_of: dict[str, set[tuple[str, str, bool]]] = {}
    for chunk in chunked(sorted(message_ids)):
        query = select(
            messages.c.source, messages.c.platform_id, messages.c.thread_id, messages.c.is_brand
        ).where(messages.c.id.in_(chunk))
        for row in await conn.execute(query):
            rows_of.setdefault(row.source, set()).add(
                (row.platform_id, row.thread_id, row.is_brand)
            )
    platforms = await _platforms(conn, rows_of)
    for source, rows in sorted(rows_of.items()):
        platform = platforms.get(source, "")
        if names_people(platform):
            named = set().union(*(people_named_by(platform, *row) for row in rows))
            await mask_people(conn, source, platform, named, pseudonyms)


async def erase(
    store: Store,
    values: Collection[str],
    now: datetime,
    pseudonyms: Pseudonyms,
    then: Recorder | None = None,
) -> Redacted:
    """Remove the text and identity of everything the author (by any of `values`: id, name,
    pseudonym) wrote, from messages, items and the alert outbox, and mask the ids that name
    them (a Messenger conversation, a Bluesky post's address); the timing stays. `then` runs
    in the same transaction (the audit entry: no erasure without its record)."""
    async with store.engine.begin() as conn:
        ids = await _their_message_ids(conn, values)
        await _mask_people_of(conn, ids, pseudonyms)
        n_messages = n_items = 0
        for chunk in chunked(ids):
            result = await conn.execute(
                update(messages)
                .where(messages.c.id.in_(chunk))
                .values(text="", author_id=None, author_name=None, permalink=None, redacted_at=now)
            )
            n_messages += result.rowcount
            result = await conn.execute(
                update(items)
                .where(items.c.message_id.in_(chunk), items.c.author_name.is_not(None))
                .values(author_name=None)
            )
            n_items += result.rowcount
        rows = await _outbox_naming(conn, ids)
        n_alerts = await _scrub_outbox(conn, rows, None, set(ids))
        done = Redacted(messages=n_messages, items=n_items, alerts=n_alerts)
        if then is not None:
            await then(conn, done)
    return done


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


async def export(store: Store, values: Collection[str]) -> dict[str, Any]:
    """Everything held on the author (by id, name or pseudonym), JSON-ready."""
    async with store.engine.connect() as conn:
        ids = await _their_message_ids(conn, values)
        held: list[dict[str, Any]] = []
        their_items: list[dict[str, Any]] = []
        for chunk in chunked(ids):
            for row in await conn.execute(select(messages).where(messages.c.id.in_(chunk))):
                held.append(
                    {
                        "id": row.id,
                        "source": row.source,
                        "platform_id": row.platform_id,
                        "thread_id": row.thread_id,
                        "author_id": row.author_id,
                        "author_name": row.author_name,
                        "text": row.text if row.redacted_at is None else None,
                        "permalink": row.permalink,
                        "created_at": _time(row.created_at),
                        "detected_at": _time(row.detected_at),
                        "hidden": row.hidden,
                        "deleted": row.deleted,
                        "edited": row.edited,
                        "redacted_at": _time(row.redacted_at),
                    }
                )
            for row in await conn.execute(select(items).where(items.c.message_id.in_(chunk))):
                their_items.append(
                    {
                        "id": row.message_id,
                        "source": row.source,
                        "brand": row.brand,
                        "author_name": row.author_name,
                        "created_at": _time(row.created_at),
                        "period": row.period,
                        "state": row.state,
                        "dismissed_reason": row.dismissed_reason,
                        "due_at": _time(row.due_at),
                        "responded_at": _time(row.responded_at),
                        "response_seconds": row.response_seconds,
                        "response_sla_seconds": row.response_sla_seconds,
                    }
                )
        alerts = []
        for row in await _outbox_naming(conn, ids):
            named = [
                {k: i.get(k) for k in ("item_id", *_ALERT_FIELDS)}
                for i in (row.notification or {}).get("items") or ()
                if i.get("item_id") in set(ids)
            ]
            alerts.append(
                {
                    "id": row.id,
                    "receiver": row.receiver,
                    "kind": row.kind,
                    "created_at": _time(row.created_at),
                    "state": row.state,
                    "items": named,
                }
            )
    held.sort(key=lambda m: (m["created_at"], m["id"]))
    their_items.sort(key=lambda i: (i["created_at"], i["id"]))
    return {"messages": held, "items": their_items, "alerts": alerts}
