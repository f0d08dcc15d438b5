"""Messenger reply windows from the store: the messages they are made of, and whose they are."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime

from sqlalchemy import select

from monitor.domain.reply_window import WINDOWED_PLATFORMS, ReplyWindow, Said, reply_windows
from monitor.store.repository import Store
from monitor.store.tables import messages, sources


async def read_said(store: Store, source: str, since: datetime) -> list[Said]:
    """A source's messages created since `since`, in platform order (deleted ones left out)."""
    query = (
        select(messages.c.id, messages.c.thread_id, messages.c.created_at, messages.c.is_brand)
        .where(
            messages.c.source == source,
            messages.c.created_at >= since,
            messages.c.deleted.is_(False),
        )
        .order_by(messages.c.created_at, messages.c.seq, messages.c.id)
    )
    async with store.engine.connect() as conn:
        result = await conn.execute(query)
        return [Said(id=row[0], thread=row[1], at=row[2], by_page=bool(row[3])) for row in result]


async def windowed_sources(store: Store, names: Collection[str] | None = None) -> frozenset[str]:
    """The stored sources (of `names`, when given) whose platform's replies have a window."""
    query = select(sources.c.name).where(sources.c.platform.in_(sorted(WINDOWED_PLATFORMS)))
    if names is not None:
        query = query.where(sources.c.name.in_(sorted(names)))
    async with store.engine.connect() as conn:
        return frozenset((await conn.execute(query)).scalars())


async def message_windows(store: Store, since: Mapping[str, datetime]) -> dict[int, ReplyWindow]:
    """Per person's message of each source from `since[source]` on: the window it is in.

    Messages before `since` cannot move a later message's window (it closes after the last
    message before the reply), so reading from the earliest item asked about is enough.
    """
    found: dict[int, ReplyWindow] = {}
    for source, start in sorted(since.items()):
        for window in reply_windows(await read_said(store, source, start)):
            found.update((message_id, window) for message_id in window.asked)
    return found
