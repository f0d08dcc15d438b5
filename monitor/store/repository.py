"""The repository: every query the service runs, in one place."""

from __future__ import annotations

from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Iterator,
    Mapping,
)
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from itertools import zip_longest
from typing import Any, TypeVar

from sqlalchemy import and_, bindparam, case, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from monitor.domain import (
    KIND_BRAND,
    KIND_BROADCAST,
    KIND_CHATTER,
    Item,
    ItemState,
    Message,
    Period,
    SourceRef,
    StoredMessage,
)
from monitor.store.bulk import binder, fetch, insert_many, insert_returning, placeholders
from monitor.store.tables import items, messages, sources

UNANSWERED = [s.value for s in ItemState if s.is_unanswered]
T = TypeVar("T", str, int)
# Keep IN (...) lists well below PostgreSQL's 32,767 bind-parameter limit.
_CHUNK = 1000
_ITEM_FIELDS = tuple(Item.__dataclass_fields__)
# Every column a StoredMessage needs (updated_at is bookkeeping: not read back).
_MESSAGE_COLUMNS = tuple(c for c in messages.c if c.name != "updated_at")
_MESSAGE_KEYS = tuple(c.name for c in _MESSAGE_COLUMNS)
_MESSAGE_NAMES = ", ".join(_MESSAGE_KEYS)


@dataclass(frozen=True, kw_only=True)
class SourceState:
    """What the store remembers about a source between polls and restarts."""

    name: str
    cursor: Mapping[str, Any]
    tracking_start: datetime | None
    last_success_at: datetime | None


def chunked(values: Iterable[T]) -> Iterator[list[T]]:
    """The values sorted and cut into IN (...) lists of at most _CHUNK."""
    ordered = sorted(values)
    for start in range(0, len(ordered), _CHUNK):
        yield ordered[start : start + _CHUNK]


def _message_row(row: Row[Any]) -> StoredMessage:
    return _stored_message(row._mapping)


def _stored_message(m: Mapping[Any, Any]) -> StoredMessage:
    return StoredMessage(
        id=m["id"],
        source=m["source"],
        detected_at=m["detected_at"],
        edited=m["edited"],
        redacted=m["redacted_at"] is not None,
        message=Message(
            platform_id=m["platform_id"],
            thread_id=m["thread_id"],
            parent_id=m["parent_id"],
            author_id=m["author_id"],
            author_name=m["author_name"],
            text=m["text"],
            created_at=m["created_at"],
            seq=m["seq"],
            is_brand=m["is_brand"],
            hidden=m["hidden"],
            deleted=m["deleted"],
            permalink=m["permalink"],
            kind=m["kind"],
            tags=m["tags"],
        ),
    )


def _platform_order(stored: StoredMessage) -> tuple[datetime, int, int]:
    return (stored.message.created_at, stored.message.seq, stored.id)


def _item_row(row: Row[Any]) -> Item:
    m = dict(row._mapping)
    m["period"] = Period(m["period"])
    m["state"] = ItemState(m["state"])
    return Item(**{k: m[k] for k in _ITEM_FIELDS})


def item_values(item: Item) -> dict[str, Any]:
    """Column values of an item, enums as their string values."""
    # Not dataclasses.asdict: its deep copy of every field was most of an ingest's CPU time.
    values = {name: getattr(item, name) for name in _ITEM_FIELDS}
    values["period"] = item.period.value
    values["state"] = item.state.value
    return values


class Tx:
    """Queries and writes inside one transaction (one batch is stored atomically)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def ensure_source(self, ref: SourceRef) -> SourceState:
        """Load a source's state, creating its row on first sight."""
        row = (await self.conn.execute(select(sources).where(sources.c.name == ref.name))).first()
        if row is None:
            # Another instance may create it at the same moment (a takeover): keep theirs.
            insert = postgresql_insert if self.conn.dialect.name == "postgresql" else sqlite_insert
            await self.conn.execute(
                insert(sources)
                .values(name=ref.name, platform=ref.platform, brand=ref.brand, cursor={})
                .on_conflict_do_nothing(index_elements=["name"])
            )
            return SourceState(name=ref.name, cursor={}, tracking_start=None, last_success_at=None)
        if row.brand != ref.brand or row.platform != ref.platform:
            await self.conn.execute(
                update(sources)
                .where(sources.c.name == ref.name)
                .values(brand=ref.brand, platform=ref.platform)
            )
        return SourceState(
            name=row.name,
            cursor=row.cursor or {},
            tracking_start=row.tracking_start,
            last_success_at=row.last_success_at,
        )

    async def start_batch(
        self, ref: SourceRef, *, cursor: Mapping[str, Any], now: datetime
    ) -> datetime:
        """Save a batch's source state (cursor, last success) in its transaction; the source's
        tracking start (now on first sight). What ensure_source and save_source do, in one
        statement while the source exists: the transaction makes its place in the batch moot."""
        # At driver level (bulk.fetch), as messages_around.
        c = sources.c
        dialect = self.conn.dialect
        marks = placeholders(dialect, 6).split(", ")
        sql = (
            f"UPDATE sources SET brand = {marks[0]}, platform = {marks[1]}, cursor = {marks[2]},"
            f" tracking_start = COALESCE(tracking_start, {marks[3]}), last_success_at = {marks[4]}"
            f" WHERE name = {marks[5]} RETURNING tracking_start"
        )
        instant = binder(c.tracking_start, dialect)(now)
        params = (ref.brand, ref.platform, binder(c.cursor, dialect)(dict(cursor)), instant)
        found = await fetch(self.conn, sql, (*params, instant, ref.name), [c.tracking_start])
        tracking_start: datetime | None = found[0][0] if found else None
        if tracking_start is None:
            await self.ensure_source(ref)
            await self.save_source(ref.name, cursor=cursor, tracking_start=now, success_at=now)
            tracking_start = now
        return tracking_start

    async def save_source(
        self,
        name: str,
        *,
        cursor: Mapping[str, Any],
        tracking_start: datetime,
        success_at: datetime,
    ) -> None:
        """Persist the cursor together with the batch it belongs to."""
        await self.conn.execute(
            update(sources)
            .where(sources.c.name == name)
            .values(cursor=dict(cursor), tracking_start=tracking_start, last_success_at=success_at)
        )

    async def messages_around(
        self, source: str, platform_ids: Collection[str], thread_ids: Collection[str]
    ) -> list[StoredMessage]:
        """Stored messages of a source with one of the platform ids or in one of the threads
        (one statement where a batch used to need two), in no particular order."""
        found: dict[int, StoredMessage] = {}
        dialect = self.conn.dialect
        for ids, threads in zip_longest(chunked(platform_ids), chunked(thread_ids)):
            # The source inside each branch: so SQLite searches both unique/thread indexes
            # (MULTI-INDEX OR) instead of walking all of the source's messages. Written at
            # driver level (bulk.fetch): SQLAlchemy's statement cost more than SQLite's work.
            either: list[str] = []
            params: list[str] = []
            for column, values in (("platform_id", ids), ("thread_id", threads)):
                if values:
                    mark = placeholders(dialect, 1, len(params) + 1)
                    marks = placeholders(dialect, len(values), len(params) + 2)
                    either.append(f"(source = {mark} AND {column} IN ({marks}))")
                    params += [source, *values]
            sql = f"SELECT {_MESSAGE_NAMES} FROM messages WHERE {' OR '.join(either)}"
            for row in await fetch(self.conn, sql, params, _MESSAGE_COLUMNS):
                stored = _stored_message(dict(zip(_MESSAGE_KEYS, row, strict=True)))
                found[stored.id] = stored
        return list(found.values())

    async def thread_messages(
        self, source: str, thread_ids: Collection[str]
    ) -> dict[str, list[StoredMessage]]:
        """All stored messages of the given threads, in platform order."""
        threads: dict[str, list[StoredMessage]] = {t: [] for t in thread_ids}
        for chunk in chunked(thread_ids):
            # Sorted here, not by ORDER BY: with it SQLite's planner walks the source's whole
            # (source, created_at) index instead of (source, thread_id), so each batch cost
            # grew with every message the source ever had.
            result = await self.conn.execute(
                select(*_MESSAGE_COLUMNS).where(
                    messages.c.source == source, messages.c.thread_id.in_(chunk)
                )
            )
            for row in result:
                stored = _message_row(row)
                threads[stored.message.thread_id].append(stored)
        for stored_list in threads.values():
            stored_list.sort(key=_platform_order)
        return threads

    async def insert_messages(self, rows: list[dict[str, Any]]) -> dict[str, int]:
        """Insert new messages of one source; their ids by platform id."""
        if not rows:
            return {}
        if self.conn.dialect.name != "sqlite":
            found = await insert_returning(self.conn, messages, rows, "id, platform_id")
            return {platform_id: message_id for message_id, platform_id in found}
        # An executemany and a read of the new ids cost SQLite less than one multi-row INSERT
        # ... RETURNING, which it parses anew for every batch's length.
        await insert_many(self.conn, messages, rows)
        ids: dict[str, int] = {}
        columns = (messages.c.platform_id, messages.c.id)
        for chunk in chunked(row["platform_id"] for row in rows):
            marks = placeholders(self.conn.dialect, len(chunk))
            where = f"source = ? AND platform_id IN ({marks})"
            sql = f"SELECT platform_id, id FROM messages WHERE {where}"
            ids.update(await fetch(self.conn, sql, (rows[0]["source"], *chunk), columns))
        return ids

    async def update_message(self, message_id: int, values: Mapping[str, Any]) -> None:
        """Update mutable fields of one message (never created_at)."""
        await self.conn.execute(
            update(messages).where(messages.c.id == message_id).values(**values)
        )

    async def update_messages(self, changes: Mapping[int, Mapping[str, Any]]) -> None:
        """Updates of several messages (id -> values): one executemany per set of columns."""
        groups: dict[frozenset[str], list[dict[str, Any]]] = {}
        for message_id, values in changes.items():
            groups.setdefault(frozenset(values), []).append({**values, "key_id": message_id})
        for rows in groups.values():
            await self.conn.execute(
                update(messages).where(messages.c.id == bindparam("key_id")), rows
            )

    async def thread_items(self, source: str, thread_ids: Collection[str]) -> dict[int, Item]:
        """Items of the given threads, keyed by message id."""
        found: dict[int, Item] = {}
        for chunk in chunked(thread_ids):
            result = await self.conn.execute(
                select(items).where(items.c.source == source, items.c.thread_id.in_(chunk))
            )
            for row in result:
                item = _item_row(row)
                found[item.message_id] = item
        return found

    async def insert_items(self, new_items: list[Item]) -> None:
        """Bulk insert new items."""
        if new_items:
            await insert_many(self.conn, items, [item_values(i) for i in new_items])

    async def update_item(self, item: Item) -> None:
        """Write an item's current state and response."""
        await self.update_items([item])

    async def update_items(self, changed: list[Item]) -> None:
        """Write the current state and response of several items in one executemany."""
        if not changed:
            return
        rows = []
        for item in changed:
            values = item_values(item)
            values["key_message_id"] = values.pop("message_id")
            rows.append(values)
        await self.conn.execute(
            update(items).where(items.c.message_id == bindparam("key_message_id")), rows
        )


class Store:
    """Opens transactions and runs the read-only queries of the service."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """One atomic unit of work: committed on success, rolled back on any error."""
        async with self.engine.begin() as conn:
            yield Tx(conn)

    async def ping(self) -> None:
        """Raise if the database cannot be reached."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def source_states(self) -> dict[str, SourceState]:
        """State of every known source."""
        async with self.engine.connect() as conn:
            result = await conn.execute(select(sources))
            return {
                row.name: SourceState(
                    name=row.name,
                    cursor=row.cursor or {},
                    tracking_start=row.tracking_start,
                    last_success_at=row.last_success_at,
                )
                for row in result
            }

    async def unanswered_items(self) -> list[Item]:
        """Every item still waiting for a reply (rebuilds the in-memory snapshot at start)."""
        async with self.engine.connect() as conn:
            result = await conn.execute(select(items).where(items.c.state.in_(UNANSWERED)))
            return [_item_row(row) for row in result]

    async def items_by_id(self, message_ids: Collection[int]) -> dict[int, Item]:
        """Current rows of the given items."""
        found: dict[int, Item] = {}
        async with self.engine.connect() as conn:
            for chunk in chunked(message_ids):
                result = await conn.execute(select(items).where(items.c.message_id.in_(chunk)))
                found.update((row.message_id, _item_row(row)) for row in result)
        return found

    async def messages_by_id(self, message_ids: Collection[int]) -> dict[int, StoredMessage]:
        """Stored messages by our own id."""
        found: dict[int, StoredMessage] = {}
        async with self.engine.connect() as conn:
            for chunk in chunked(message_ids):
                result = await conn.execute(select(messages).where(messages.c.id.in_(chunk)))
                found.update((row.id, _message_row(row)) for row in result)
        return found

    async def transition(
        self, message_id: int, *, from_states: Collection[ItemState], to: ItemState
    ) -> Item | None:
        """Move an item to `to` only if it is still in one of `from_states`.

        The conditional update makes warning and breach fire exactly once, even across
        restarts and against a poll that answers the item at the same moment.
        """
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(items)
                .where(
                    items.c.message_id == message_id,
                    items.c.state.in_([s.value for s in from_states]),
                )
                .values(state=to.value)
            )
            if result.rowcount != 1:
                return None
            row = (await conn.execute(select(items).where(items.c.message_id == message_id))).one()
            return _item_row(row)

    async def dismiss(
        self,
        message_id: int,
        *,
        reason: str,
        from_states: Collection[ItemState],
        then: Callable[[AsyncConnection], Awaitable[None]] | None = None,
    ) -> tuple[Item, Item] | None:
        """Mark an item dismissed with `reason` if it is in one of `from_states`.

        Returns (before, after), or None when the item does not exist or is in another state.
        `then` runs in the same transaction once it is dismissed (the audit entry).
        """
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(select(items).where(items.c.message_id == message_id))
            ).first()
            if row is None:
                return None
            before = _item_row(row)
            result = await conn.execute(
                update(items)
                .where(
                    items.c.message_id == message_id,
                    items.c.state.in_([s.value for s in from_states]),
                )
                .values(state=ItemState.DISMISSED.value, dismissed_reason=reason, author_name=None)
            )
            if result.rowcount != 1:
                return None
            after = _item_row(
                (await conn.execute(select(items).where(items.c.message_id == message_id))).one()
            )
            if then is not None:
                await then(conn)
            return before, after

    async def active_threads(self, source: str, *, active_since: datetime) -> frozenset[str]:
        """Threads to keep re-polling: an unanswered item, or any message since `active_since`
        (on open networks: any interaction, not the posts that are only counted)."""
        async with self.engine.connect() as conn:
            # A busy hashtag's chatter would otherwise be re-read, thread by thread, every poll.
            counted_only = messages.c.kind.in_((KIND_BRAND, KIND_BROADCAST, KIND_CHATTER))
            recent = select(messages.c.thread_id).where(
                messages.c.source == source,
                messages.c.created_at >= active_since,
                or_(messages.c.kind.is_(None), ~counted_only),
            )
            waiting = select(items.c.thread_id).where(
                items.c.source == source, items.c.state.in_(UNANSWERED)
            )
            result = await conn.execute(recent.union(waiting))
            return frozenset(row[0] for row in result)

    async def compliance_counts(
        self, since: datetime, now: datetime
    ) -> dict[tuple[str, str], tuple[int, int, int]]:
        """(in_time, late, breached_open) per (source, period) for items created since `since`."""
        unanswered = items.c.state.in_(UNANSWERED)
        query = (
            select(
                items.c.source,
                items.c.period,
                func.sum(case((items.c.state == ItemState.ANSWERED_IN_TIME.value, 1), else_=0)),
                func.sum(case((items.c.state == ItemState.ANSWERED_LATE.value, 1), else_=0)),
                func.sum(case((and_(unanswered, items.c.due_at <= now), 1), else_=0)),
            )
            .where(items.c.created_at >= since, items.c.created_at < now)
            .group_by(items.c.source, items.c.period)
        )
        async with self.engine.connect() as conn:
            result = await conn.execute(query)
            return {
                (row[0], row[1]): (int(row[2] or 0), int(row[3] or 0), int(row[4] or 0))
                for row in result
            }

    async def items_between(
        self, since: datetime, until: datetime, *, source: str | None = None
    ) -> list[Item]:
        """Items created in [since, until), optionally of one source."""
        conditions = [items.c.created_at >= since, items.c.created_at < until]
        if source is not None:
            conditions.append(items.c.source == source)
        async with self.engine.connect() as conn:
            result = await conn.execute(
                select(items).where(and_(*conditions)).order_by(items.c.created_at)
            )
            return [_item_row(row) for row in result]

    async def all_messages(self, source: str) -> list[StoredMessage]:
        """Every stored message of a source (tests and reports)."""
        async with self.engine.connect() as conn:
            result = await conn.execute(
                select(messages)
                .where(messages.c.source == source)
                .order_by(messages.c.created_at, messages.c.seq, messages.c.id)
            )
            return [_message_row(row) for row in result]

    async def counts(self) -> dict[str, int]:
        """Row counts, for health output and tests."""
        async with self.engine.connect() as conn:
            n_messages = (
                await conn.execute(select(func.count()).select_from(messages))
            ).scalar_one()
            n_items = (await conn.execute(select(func.count()).select_from(items))).scalar_one()
        return {"messages": int(n_messages), "items": int(n_items)}


__all__ = ["SourceState", "Store", "Tx", "item_values"]
