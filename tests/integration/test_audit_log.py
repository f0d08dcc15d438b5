"""The audit trail on SQLite and PostgreSQL: append, filters, visibility by brand, order, and
the database refusing to change or delete an entry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import delete, text, update
from sqlalchemy.exc import DBAPIError

from monitor.audit import AuditLog
from monitor.store import Store, create_engine, upgrade
from monitor.store.engine import _alembic_config
from monitor.store.tables import audit_log

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


@pytest.fixture
async def audit(database_url: str) -> AsyncIterator[AuditLog]:
    engine = create_engine(database_url)
    await upgrade(engine)
    yield AuditLog(Store(engine))
    await engine.dispose()


async def test_entries_filter_and_come_newest_first(audit: AuditLog) -> None:
    await audit.record(at=T0, actor="anna", via="token", action="ack", item_id=1, brand="acme")
    await audit.record(
        at=T0 + timedelta(minutes=1),
        actor="ben",
        via="token",
        action="dismiss",
        item_id=2,
        source="acme-fb",
        brand="acme",
        reason="spam",
        origin="10.0.0.7",
    )
    await audit.record(
        at=T0 + timedelta(minutes=2),
        actor="operator",
        via="system",
        action="config_reload",
        detail={"changed": ["sources"]},
    )
    await audit.record(
        at=T0 + timedelta(minutes=3), actor="cleo", via="token", action="ack", brand="other"
    )

    every = await audit.entries()
    assert [e.actor for e in every] == ["cleo", "operator", "ben", "anna"]
    dismissed = (await audit.entries(action="dismiss"))[0]
    assert (dismissed.reason, dismissed.origin, dismissed.source) == ("spam", "10.0.0.7", "acme-fb")
    assert dismissed.at == T0 + timedelta(minutes=1)
    assert [e.actor for e in await audit.entries(brands=["acme"])] == ["ben", "anna"]
    assert [e.actor for e in await audit.entries(brands="*")] == ["cleo", "ben", "anna"]
    assert [e.actor for e in await audit.entries(actor="anna")] == ["anna"]
    assert [e.actor for e in await audit.entries(item_id=2)] == ["ben"]
    window = await audit.entries(since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=3))
    assert [e.actor for e in window] == ["operator", "ben"]
    assert [e.actor for e in await audit.entries(limit=1)] == ["cleo"]
    reload = (await audit.entries(action="config_reload"))[0]
    assert reload.detail == {"changed": ["sources"]} and reload.brand is None


async def test_record_in_commits_with_the_callers_transaction(audit: AuditLog) -> None:
    store = audit._store
    with pytest.raises(RuntimeError):
        async with store.engine.begin() as conn:
            await audit.record_in(conn, at=T0, actor="anna", via="cli", action="erase")
            raise RuntimeError("the action failed")
    assert await audit.entries() == []
    async with store.engine.begin() as conn:
        await audit.record_in(conn, at=T0, actor="anna", via="cli", action="erase")
    assert len(await audit.entries()) == 1


async def test_unknown_action_or_via_is_refused(audit: AuditLog) -> None:
    with pytest.raises(ValueError, match="unknown audit action"):
        await audit.record(at=T0, actor="anna", via="cli", action="delete_everything")
    with pytest.raises(ValueError, match="unknown audit via"):
        await audit.record(at=T0, actor="anna", via="email", action="ack")


async def test_the_database_refuses_to_update_or_delete_an_entry(audit: AuditLog) -> None:
    await audit.record(at=T0, actor="anna", via="token", action="dismiss", item_id=7, reason="spam")
    engine = audit._store.engine
    refused = [
        update(audit_log).values(actor="mallory", reason="no_reply_needed"),
        update(audit_log).where(audit_log.c.item_id == 7).values(at=T0 + timedelta(days=1)),
        delete(audit_log).where(audit_log.c.actor == "anna"),
        delete(audit_log),
    ]
    if engine.dialect.name == "postgresql":
        refused.append(text("TRUNCATE audit_log"))
    for statement in refused:
        with pytest.raises(DBAPIError, match="audit_log is append-only"):
            async with engine.begin() as conn:
                await conn.execute(statement)
    # The entry is as it was written, and appending still works.
    (entry,) = await audit.entries()
    assert (entry.actor, entry.reason, entry.item_id, entry.at) == ("anna", "spam", 7, T0)
    await audit.record(at=T0 + timedelta(minutes=1), actor="ben", via="cli", action="export")
    assert [e.actor for e in await audit.entries()] == ["ben", "anna"]


async def test_downgrading_drops_the_triggers_and_upgrading_restores_them(
    audit: AuditLog,
) -> None:
    engine = audit._store.engine
    await audit.record(at=T0, actor="anna", via="token", action="ack", item_id=1)
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: command.downgrade(_alembic_config(sync), "0008"))
    async with engine.begin() as conn:
        await conn.execute(update(audit_log).values(actor="changed"))
    assert [e.actor for e in await audit.entries()] == ["changed"]
    await upgrade(engine)
    with pytest.raises(DBAPIError, match="audit_log is append-only"):
        async with engine.begin() as conn:
            await conn.execute(delete(audit_log))
