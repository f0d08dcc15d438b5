"""Persistence: SQLAlchemy 2 async tables, repository and Alembic migrations."""

from monitor.store.engine import create_engine, upgrade
from monitor.store.repository import Store

__all__ = ["Store", "create_engine", "upgrade"]
