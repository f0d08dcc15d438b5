"""Engine creation (SQLite pragmas) and running Alembic migrations on it."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, event, make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from monitor.logging import get_logger

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class StoreInUse(Exception):
    """Another webcare-monitor serves from this SQLite file."""


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL (None: another database, or in memory)."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


@contextlib.contextmanager
def one_instance(url: str) -> Iterator[None]:
    """Hold a SQLite database file for this service while it runs: SQLite serves one instance,
    so a second one is refused with a clear message instead of two of them polling and
    alerting twice (PostgreSQL is for several; other readers, like `report`, are welcome)."""
    path = sqlite_file(url)
    if path is None:
        yield
        return
    # flock, not SQLite's own fcntl locks: independent of them, and gone when the process is.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreInUse(
            f"another webcare-monitor is running on {path}: SQLite serves one instance"
            " (stop the other one, or use PostgreSQL to run several)"
        ) from None
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def create_engine(url: str, *, pool_size: int | None = None) -> AsyncEngine:
    """Create an async engine; SQLite gets WAL and a busy timeout so readers never block writers.

    `pool_size` (PostgreSQL): connections kept, none beyond (default: SQLAlchemy's 5 + 10).
    """
    # hide_parameters: a failed statement's error text would otherwise end in
    # "[parameters: (...)]", the consumer's text and name of an insert, and that text reaches
    # log lines ("source down", tracebacks), which hold no consumer data
    # (docs/data-protection.md). The SQL itself is still shown.
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30}, hide_parameters=True)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    if pool_size is not None:
        return create_async_engine(
            url,
            pool_pre_ping=True,
            pool_size=pool_size,
            max_overflow=0,
            pool_timeout=10,
            hide_parameters=True,
        )
    return create_async_engine(url, pool_pre_ping=True, hide_parameters=True)


def _alembic_config(connection: Connection) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


log = get_logger("monitor.store")

# pg_advisory_xact_lock key held while migrating (any fixed number unique to this service).
MIGRATION_LOCK = 0x7765_6263_6172_65  # "webcare"


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Apply migrations up to `revision` inside one transaction; one log line if any ran."""
    # Alembic's own lines (one per step, "Context impl ...") are detail: debug only.
    alembic_log = logging.getLogger("alembic.runtime.migration")
    level = alembic_log.level
    verbose = logging.getLogger().isEnabledFor(logging.DEBUG)
    alembic_log.setLevel(logging.DEBUG if verbose else logging.WARNING)
    try:
        before = await current_revision(engine)
        async with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                # Instances starting together on one database migrate one after the other;
                # the lock ends with the transaction.
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
                )
            await conn.run_sync(
                lambda sync_conn: command.upgrade(_alembic_config(sync_conn), revision)
            )
        after = await current_revision(engine)
    finally:
        alembic_log.setLevel(level)
    if after != before:
        log.info(
            "database schema upgraded",
            from_revision=before or "empty database",
            to_revision=after,
        )


def head_revision() -> str | None:
    """The newest migration shipped with this version."""
    from alembic.script import ScriptDirectory

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(cfg).get_current_head()


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at, or None before the first migration."""
    from alembic.runtime.migration import MigrationContext

    async with engine.connect() as conn:
        return await conn.run_sync(
            lambda sync_conn: MigrationContext.configure(sync_conn).get_current_revision()
        )
