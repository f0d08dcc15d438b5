"""Store + pipeline against SQLite and a real PostgreSQL: idempotency, edits, tombstones."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from monitor.domain import Batch, ItemState, Message, Period, SourceRef
from monitor.domain.events import ItemAnswered, ItemCreated, ItemDismissed
from monitor.pipeline import SourceSettings, handle_batch
from monitor.sla.calendar import ALWAYS, WeeklyCalendar, parse_hours
from monitor.sla.evaluate import SlaPolicy
from monitor.store import Store, create_engine, upgrade
from monitor.store.engine import current_revision, head_revision

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SETTINGS = SourceSettings(
    ref=SourceRef(name="acme-fb", brand="acme", platform="facebook_page"),
    policy=SlaPolicy(
        office=WeeklyCalendar(
            name="office",
            timezone=ZoneInfo("Europe/Amsterdam"),
            intervals=tuple(parse_hours("mon-fri 09:00-17:00")),
        ),
        coverage=ALWAYS,
        targets={Period.OFFICE_HOURS: 3600.0, Period.AFTER_HOURS: 1800.0},
        warn_at=0.75,
        reply_match="thread",
    ),
    ignore_authors=frozenset({"spam-bot"}),
    active_days=14,
)


def message(pid: str, at: datetime, *, brand: bool = False, **kw: object) -> Message:
    seq = int(pid.rsplit("_", 1)[-1]) if "_" in pid else 0
    values: dict[str, object] = {
        "platform_id": pid,
        "thread_id": "p_1",
        "parent_id": None if pid == "p_1" else "p_1",
        "author_id": "page" if brand else "u1",
        "author_name": "Acme" if brand else "Ann",
        "text": f"text of {pid}",
        "created_at": at,
        "seq": seq,
        "is_brand": brand,
    }
    values.update(kw)
    return Message(**values)  # type: ignore[arg-type]


POST = message("p_1", NOW - timedelta(hours=5), brand=True)
C1 = message("c_2", NOW - timedelta(hours=4))  # Friday 09:00 local: office hours
C2 = message("c_3", NOW - timedelta(hours=3, minutes=50))
REPLY = message("c_4", NOW - timedelta(hours=3, minutes=30), brand=True, parent_id="c_3")
BOT = message("c_5", NOW - timedelta(hours=3), author_id="spam-bot")


def batch(*messages: Message, complete: bool = True, cursor: int = 1) -> Batch:
    return Batch(
        messages=tuple(messages),
        cursor={"feed_since": cursor},
        complete_threads={"p_1": frozenset(m.platform_id for m in messages)} if complete else {},
    )


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    engine = create_engine(database_url)
    await upgrade(engine)
    yield Store(engine)
    await engine.dispose()


async def test_migrations_are_applied_and_repeatable(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await upgrade(engine)
        await upgrade(engine)
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()


async def test_batch_creates_items_and_matches_one_reply_to_two_items(store: Store) -> None:
    result = await handle_batch(store, SETTINGS, batch(POST, C1, C2, REPLY, BOT), NOW)
    created = [e for e in result.events if isinstance(e, ItemCreated)]
    answered = [e for e in result.events if isinstance(e, ItemAnswered)]
    assert sorted(e.item.created_at for e in created) == [C1.created_at, C2.created_at]
    assert {e.item.response_seconds for e in answered} == {30 * 60.0, 20 * 60.0}
    assert all(e.item.state is ItemState.ANSWERED_IN_TIME for e in answered)
    assert {e.item.period for e in created} == {Period.OFFICE_HOURS}
    states = await store.source_states()
    assert states["acme-fb"].cursor == {"feed_since": 1}
    assert states["acme-fb"].tracking_start == NOW


async def test_same_batch_twice_changes_nothing(store: Store) -> None:
    await handle_batch(store, SETTINGS, batch(POST, C1, C2, REPLY), NOW)
    again = await handle_batch(
        store, SETTINGS, batch(POST, C1, C2, REPLY), NOW + timedelta(minutes=1)
    )
    assert again.events == []
    assert (again.new_messages, again.changed_messages) == (0, 0)
    assert await store.counts() == {"messages": 4, "items": 2}


async def test_edit_updates_text_but_never_created_at(store: Store) -> None:
    await handle_batch(store, SETTINGS, batch(POST, C1), NOW)
    edited = replace(C1, text="edited text", created_at=C1.created_at + timedelta(hours=1))
    result = await handle_batch(store, SETTINGS, batch(POST, edited), NOW + timedelta(minutes=1))
    assert result.changed_messages == 1
    stored = {m.message.platform_id: m for m in await store.all_messages("acme-fb")}
    assert stored["c_2"].message.text == "edited text"
    assert stored["c_2"].edited
    assert stored["c_2"].message.created_at == C1.created_at


async def test_deleted_comment_leaves_a_tombstone_and_dismisses_its_item(store: Store) -> None:
    await handle_batch(store, SETTINGS, batch(POST, C1, C2), NOW)
    result = await handle_batch(store, SETTINGS, batch(POST, C2), NOW + timedelta(minutes=1))
    dismissed = [e for e in result.events if isinstance(e, ItemDismissed)]
    assert [e.item.dismissed_reason for e in dismissed] == ["deleted"]
    stored = {m.message.platform_id: m for m in await store.all_messages("acme-fb")}
    assert stored["c_2"].message.deleted
    assert stored["c_2"].message.text == "text of c_2"  # the tombstone keeps its content


async def test_deleted_thread_tombstones_every_message(store: Store) -> None:
    await handle_batch(store, SETTINGS, batch(POST, C1), NOW)
    gone = Batch(messages=(), cursor={}, deleted_threads=frozenset({"p_1"}))
    await handle_batch(store, SETTINGS, gone, NOW + timedelta(minutes=1))
    assert all(m.message.deleted for m in await store.all_messages("acme-fb"))
    assert await store.unanswered_items() == []


async def test_partial_batch_does_not_tombstone(store: Store) -> None:
    await handle_batch(store, SETTINGS, batch(POST, C1, C2), NOW)
    await handle_batch(store, SETTINGS, batch(C2, complete=False), NOW + timedelta(minutes=1))
    assert not any(m.message.deleted for m in await store.all_messages("acme-fb"))


async def test_active_threads_and_unanswered_items(store: Store) -> None:
    await handle_batch(store, SETTINGS, batch(POST, C1), NOW)
    assert await store.active_threads("acme-fb", active_since=NOW) == {"p_1"}  # open item
    items = await store.unanswered_items()
    assert [(i.state, i.period) for i in items] == [(ItemState.OPEN, Period.OFFICE_HOURS)]
    assert items[0].due_at == C1.created_at + timedelta(hours=1)
    await handle_batch(store, SETTINGS, batch(POST, C1, REPLY), NOW)
    assert await store.active_threads("acme-fb", active_since=NOW) == frozenset()
    assert await store.active_threads("acme-fb", active_since=NOW - timedelta(days=1)) == {"p_1"}


async def test_open_networks_re_read_only_the_threads_of_interactions(store: Store) -> None:
    """A hashtag's chatter, vacancies and the brand's own posts are counted, never re-read."""
    counted = [
        replace(message(f"t{n}", NOW - timedelta(minutes=n)), thread_id=f"t{n}", kind=kind)
        for n, kind in enumerate(("chatter", "broadcast"), start=1)
    ]
    own = replace(message("t3", NOW, brand=True), thread_id="t3", kind="brand")
    asked = replace(message("t4", NOW, tags=("jobs",)), thread_id="t4", kind="interaction")
    await handle_batch(store, SETTINGS, batch(*counted, own, asked), NOW)
    assert await store.active_threads("acme-fb", active_since=NOW - timedelta(days=1)) == {"t4"}
    stored = {m.message.platform_id: m.message for m in await store.all_messages("acme-fb")}
    assert stored["t4"].tags == ("jobs",) and stored["t1"].tags == ()
    assert [i.message_id for i in await store.unanswered_items()] == [
        next(m.id for m in await store.all_messages("acme-fb") if m.message.platform_id == "t4")
    ]


async def test_failed_batch_rolls_back_everything(store: Store) -> None:
    broken = batch(POST, C1, replace(C2, text=None))  # NOT NULL violation on the 3rd row
    with pytest.raises(Exception):  # noqa: B017 - any database error is fine here
        await handle_batch(store, SETTINGS, broken, NOW)
    assert await store.counts() == {"messages": 0, "items": 0}
