"""handle_batch keeps threads in memory instead of re-reading them: what it evaluates must equal
what the store holds afterwards, on SQLite and PostgreSQL (issue 17, part 6)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError

from monitor.domain import Batch, Item, Message, StoredMessage
from monitor.pipeline import handle_batch
from monitor.sla.evaluate import SlaPolicy
from monitor.store import Store, create_engine, upgrade
from monitor.store.bulk import MAX_PARAMETERS
from tests.integration.test_store_pipeline import NOW, SETTINGS

SOURCE = SETTINGS.ref.name
CEST = timezone(timedelta(hours=2), "CEST")


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    engine = create_engine(database_url)
    await upgrade(engine)
    yield Store(engine)
    await engine.dispose()


def msg(thread: str, n: int, minutes: int, *, brand: bool = False, **kw: Any) -> Message:
    values: dict[str, Any] = {
        "platform_id": f"{thread}_{n}",
        "thread_id": thread,
        "parent_id": thread,
        "author_id": "page" if brand else f"u{n}",
        "author_name": "Acme" if brand else f"User {n}",
        "text": f"text {n}",
        # Offsets other than UTC: the store gives instants back in UTC.
        "created_at": (NOW - timedelta(minutes=minutes)).astimezone(CEST if n % 2 else UTC),
        "seq": n,
        "is_brand": brand,
    }
    values.update(kw)
    return Message(**values)


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[StoredMessage, ...]]]:
    """Every thread (its id, the messages handed over) handle_batch evaluates an item against."""
    threads: list[tuple[str, tuple[StoredMessage, ...]]] = []
    evaluate = SlaPolicy.evaluate

    def spy(self: SlaPolicy, item: Item, message: Message, thread: Sequence[StoredMessage]) -> Item:
        threads.append((message.thread_id, tuple(thread)))
        return evaluate(self, item, message, thread)

    monkeypatch.setattr(SlaPolicy, "evaluate", spy)
    return threads


async def stored_threads(store: Store) -> dict[str, tuple[StoredMessage, ...]]:
    by_thread: dict[str, list[StoredMessage]] = {}
    for stored in await store.all_messages(SOURCE):
        by_thread.setdefault(stored.message.thread_id, []).append(stored)
    return {thread: tuple(messages) for thread, messages in by_thread.items()}


async def test_evaluated_threads_equal_the_stored_ones(
    store: Store, seen: list[tuple[str, tuple[StoredMessage, ...]]]
) -> None:
    a = [msg("a", 1, 90), msg("a", 2, 80), msg("a", 3, 80, brand=True), msg("a", 4, 70)]
    b = [msg("b", 5, 60), msg("b", 6, 50, hidden=True)]
    early = msg("a", 7, 95)
    steps = [
        Batch(messages=(*a[:2], *b), cursor={}),
        # New reply, one older than those stored, an edit, a vanished comment.
        Batch(
            messages=(replace_text(a[0], "edited"), a[2], a[3], early),
            cursor={},
            complete_threads={"a": frozenset({"a_1", "a_3", "a_4", "a_7"})},
        ),
        # Push deliveries naming messages only: threads not in the batch must still be read.
        Batch(messages=(), cursor={}, removed=frozenset({"b_5"}), hidden_changes={"b_6": False}),
        Batch(
            messages=(a[1],), cursor={}, complete_threads={"a": frozenset(m.platform_id for m in a)}
        ),
        Batch(messages=(), cursor={}, deleted_threads=frozenset({"b"})),
    ]
    for number, batch in enumerate(steps):
        seen.clear()
        await handle_batch(store, SETTINGS, batch, NOW + timedelta(minutes=number))
        stored = await stored_threads(store)
        for thread_id, thread in seen:
            # Only the brand's messages can answer, so only those are handed over.
            answers = tuple(s for s in stored[thread_id] if s.message.is_brand)
            assert thread == answers, number
            # Same instants and the same UTC form as read back (events carry them on).
            assert all(s.message.created_at.tzinfo is UTC for s in thread)
            assert all(s.detected_at.tzinfo is UTC for s in thread)
    assert seen  # the last steps re-evaluated items too


def replace_text(message: Message, text: str) -> Message:
    return Message(**{**vars(message), "text": text})


async def test_a_batch_larger_than_one_insert_statement(store: Store) -> None:
    """More rows than one multi-row INSERT may bind: every id comes back to its message."""
    count = MAX_PARAMETERS // 16 + 7
    messages = tuple(msg(f"t{n // 50}", n, 600 - n % 500) for n in range(count))
    result = await handle_batch(store, SETTINGS, Batch(messages=messages, cursor={}), NOW)
    assert result.new_messages == count
    stored = await store.all_messages(SOURCE)
    assert {s.message.platform_id for s in stored} == {m.platform_id for m in messages}
    items = await store.items_by_id([s.id for s in stored])
    by_id = {s.id: s for s in stored}
    assert len(items) == count
    assert all(
        item.thread_id == by_id[item.message_id].message.thread_id for item in items.values()
    )
    assert all(
        item.created_at == by_id[item.message_id].message.created_at for item in items.values()
    )


def test_sqlite_instants_are_written_as_the_column_type_writes_them() -> None:
    from sqlalchemy.dialects.sqlite.aiosqlite import dialect

    from monitor.store.bulk import _converter
    from monitor.store.tables import messages

    sqlite = dialect()
    fast = _converter(messages, "created_at", sqlite)
    slow = messages.c.created_at.type.dialect_impl(sqlite).bind_processor(sqlite)
    assert fast is not None and slow is not None and fast is not slow
    for moment in (
        datetime(2026, 10, 25, 0, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 10, 25, 2, 30, tzinfo=CEST),
        datetime(1, 1, 2, tzinfo=UTC),
    ):
        assert fast(moment) == slow(moment)
    with pytest.raises(ValueError, match="naive"):
        fast(datetime(2026, 1, 1))


async def test_a_failed_bulk_insert_is_a_sqlalchemy_error_and_rolls_back(store: Store) -> None:
    """Below SQLAlchemy the driver's errors still arrive as SQLAlchemy's (callers catch those)."""
    first = Batch(messages=(msg("a", 1, 90),), cursor={})
    await handle_batch(store, SETTINGS, first, NOW)
    rows = [
        {
            "source": SOURCE,
            "platform_id": "a_1",
            "thread_id": "a",
            "parent_id": None,
            "seq": 1,
            "author_id": "u",
            "author_name": "U",
            "text": "again",
            "permalink": None,
            "created_at": NOW,
            "detected_at": NOW,
            "updated_at": NOW,
            "is_brand": False,
            "hidden": False,
            "deleted": False,
            "edited": False,
        }
    ]
    with pytest.raises(IntegrityError):
        async with store.transaction() as tx:
            await tx.insert_messages([{**rows[0], "platform_id": "a_2"}])
            await tx.insert_messages(rows)  # (source, platform_id) is taken
    assert await store.counts() == {"messages": 1, "items": 1}
