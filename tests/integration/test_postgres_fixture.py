"""The shared database fixtures work: both URLs accept connections and PostgreSQL is fresh."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

if TYPE_CHECKING:
    from tests.conftest import PostgresServer


async def test_database_url_accepts_select_1(database_url: str) -> None:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
            # Both backends start empty: no tables left over from other tests.
            if engine.dialect.name == "postgresql":
                query = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
            else:
                query = "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
            assert (await conn.execute(text(query))).scalar_one() == 0
    finally:
        await engine.dispose()


def test_database_url_drivers(database_url: str) -> None:
    url = make_url(database_url)
    assert url.drivername in {"sqlite+aiosqlite", "postgresql+asyncpg"}
    if url.drivername == "postgresql+asyncpg":
        assert url.host == "127.0.0.1"
        assert url.username == "postgres"
        assert url.database and url.database.startswith("webcare_test_")


@pytest.mark.postgres
async def test_postgres_database_is_its_own_and_is_dropped(
    postgres_server: PostgresServer,
) -> None:
    name = postgres_server.create_database()
    engine = create_async_engine(postgres_server.database_url(name))
    try:
        async with engine.begin() as conn:
            assert (await conn.execute(text("SELECT current_database()"))).scalar_one() == name
            await conn.execute(text("CREATE TABLE t (id integer primary key)"))
        # A test that leaves a connection open must not make the drop fail (WITH (FORCE)).
        leftover = await engine.connect()
        postgres_server.drop_database(name)
        await leftover.invalidate()
    finally:
        await engine.dispose()
    assert name not in postgres_server.list_databases()
