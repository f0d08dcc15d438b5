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
    """Every thread (its id, the messages handed over) handle_batch evaluates an item against,
    new (first_item) or stored (evaluate)."""
    threads: list[tuple[str, tuple[StoredMessage, ...]]] = []
    evaluate, first_item = SlaPolicy.evaluate, SlaPolicy.first_item

    def spy(self: SlaPolicy, item: Item, message: Message, thread: Sequence[StoredMessage]) -> Item:
        threads.append((message.thread_id, tuple(thread)))
        return evaluate(self, item, message, thread)

    def spy_first(self: SlaPolicy, **kw: Any) -> Item:
        threads.append((kw["message"].thread_id, tuple(kw["thread"])))
        return first_item(self, **kw)

    monkeypatch.setattr(SlaPolicy, "evaluate", spy)
    monkeypatch.setattr(SlaPolicy, "first_item", spy_first)
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


async def test_the_driver_level_read_equals_sqlalchemy_s(store: Store) -> None:
    """messages_around (driver-level SQL, values converted by the column types) gives what a
    SQLAlchemy select of the same rows gives, over more ids than one IN list takes."""
    from sqlalchemy import or_, select, update

    from monitor.store.repository import _CHUNK, _MESSAGE_COLUMNS, _message_row
    from monitor.store.tables import messages

    many = tuple(msg(f"t{n % 3}", n, 300 - n % 200) for n in range(_CHUNK + 20))
    odd = (
        msg("x", 1, 10, tags=("fiets", "e_bike"), kind="interaction"),
        msg("x", 2, 9, brand=True, hidden=True, parent_id=None, permalink="https://e.x/2"),
        msg("y", 3, 8, deleted=True, author_id=None, author_name=None),
    )
    await handle_batch(store, SETTINGS, Batch(messages=many + odd, cursor={}), NOW)
    edit = Batch(messages=(replace_text(odd[0], "edited"),), cursor={})
    await handle_batch(store, SETTINGS, edit, NOW)
    async with store.transaction() as tx:
        await tx.conn.execute(
            update(messages).where(messages.c.platform_id == "y_3").values(redacted_at=NOW)
        )
    ids = [m.platform_id for m in many[: _CHUNK + 10]] + ["y_3", "missing"]
    for platform_ids, thread_ids in ((ids, ["x"]), ([], ["t1", "x", "y"]), (["x_1"], [])):
        async with store.transaction() as tx:
            fast = await tx.messages_around(SOURCE, platform_ids, thread_ids)
            either = [
                messages.c.platform_id.in_(platform_ids),
                messages.c.thread_id.in_(thread_ids),
            ]
            rows = await tx.conn.execute(
                select(*_MESSAGE_COLUMNS).where(messages.c.source == SOURCE, or_(*either))
            )
            slow = [_message_row(row) for row in rows]
        assert slow
        assert sorted(fast, key=lambda s: s.id) == sorted(slow, key=lambda s: s.id)
    found = {s.message.platform_id: s for s in fast + slow}
    assert found["x_1"].edited and found["x_1"].message.tags == ("fiets", "e_bike")
    assert found["x_1"].message.created_at.tzinfo is UTC


async def test_start_batch_saves_what_ensure_source_and_save_source_saved(store: Store) -> None:
    """One statement (start_batch) leaves a source as the read at a batch's start and the write
    at its end left it: first sight, a later batch, the source moved to another brand."""
    from sqlalchemy import select

    from monitor.domain import SourceRef
    from monitor.store.tables import sources

    steps: list[tuple[dict[str, Any], datetime, str]] = [
        ({"since": "1"}, NOW.astimezone(CEST), "b"),
        ({"since": "2", "pages": [1, 2]}, NOW + timedelta(minutes=5), "b"),
        ({}, NOW + timedelta(hours=1), "other brand"),
    ]
    for cursor, now, brand in steps:
        old = SourceRef(name="old", brand=brand, platform="p")
        async with store.transaction() as tx:
            state = await tx.ensure_source(old)
            before = state.tracking_start or now
            await tx.save_source(old.name, cursor=cursor, tracking_start=before, success_at=now)
        async with store.transaction() as tx:
            after = await tx.start_batch(
                SourceRef(name="new", brand=brand, platform="p"), cursor=cursor, now=now
            )
            rows = {r.name: r._asdict() for r in await tx.conn.execute(select(sources))}
        assert after == before
        assert rows["new"] == {**rows["old"], "name": "new"}
        assert rows["new"]["cursor"] == cursor and rows["new"]["brand"] == brand
        assert rows["new"]["last_success_at"] == now


async def test_new_message_ids_are_the_ids_the_rows_got(store: Store) -> None:
    """insert_messages' ids (SQLite: an executemany and a read of the ids; PostgreSQL: INSERT ...
    RETURNING) are the stored rows' ids, as INSERT ... RETURNING gives them, over more rows than
    one statement or IN list takes; another source's same platform ids are not taken for them."""
    from sqlalchemy import select

    from monitor.pipeline import _row
    from monitor.store.bulk import insert_returning
    from monitor.store.tables import messages

    made = [msg(f"t{n // 40}", n, 600 - n % 500) for n in range(MAX_PARAMETERS // 16 + 7)]
    async with store.transaction() as tx:
        await tx.start_batch(SETTINGS.ref, cursor={}, now=NOW)
        other = [_row("other", m, NOW) for m in made]
        returned = await insert_returning(tx.conn, messages, other, "id, platform_id")
        ids = await tx.insert_messages([_row(SOURCE, m, NOW) for m in reversed(made)])
        query = select(messages.c.source, messages.c.platform_id, messages.c.id)
        stored = {(r.source, r.platform_id): r.id for r in await tx.conn.execute(query)}
    assert ids == {m.platform_id: stored[SOURCE, m.platform_id] for m in made}
    assert {p: i for i, p in returned} == {
        m.platform_id: stored["other", m.platform_id] for m in made
    }


def test_remembered_instant_texts_are_what_the_column_type_writes() -> None:
    """The SQLite instant converter remembers recent UTC instants' texts: every answer, first or
    remembered, past the memo's limit, for UTC and other zones' equal wall times (the autumn
    hour twice), is what the type writes."""
    import random
    from zoneinfo import ZoneInfo

    from sqlalchemy.dialects.sqlite.aiosqlite import dialect

    from monitor.store import bulk
    from monitor.store.tables import items

    sqlite = dialect()
    fast = bulk._converter(items, "due_at", sqlite)
    slow = items.c.due_at.type.dialect_impl(sqlite).bind_processor(sqlite)
    assert fast is not None and slow is not None
    amsterdam = ZoneInfo("Europe/Amsterdam")
    rng = random.Random(3)
    start = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 local, twice
    moments = [start + timedelta(microseconds=rng.randrange(10**11)) for _ in range(2000)]
    moments += [start, start + timedelta(hours=1)]
    for fold in (0, 1):
        moments.append(datetime(2026, 10, 25, 2, 30, fold=fold, tzinfo=amsterdam))
    for moment in moments * 2 + moments[::-1]:
        for form in (moment, moment.astimezone(UTC), moment.astimezone(amsterdam)):
            assert fast(form) == slow(form)
    filled = [start + timedelta(seconds=n) for n in range(bulk._TEXTS_LIMIT + 10)]
    assert [fast(m) for m in filled] == [slow(m) for m in filled]
    assert len(bulk._TEXTS) <= bulk._TEXTS_LIMIT
