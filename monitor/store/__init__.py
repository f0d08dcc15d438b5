"""Persistence: SQLAlchemy 2 async tables, repository and Alembic migrations."""

from monitor.store.engine import StoreInUse, create_engine, one_instance, upgrade
from monitor.store.repository import Store

__all__ = ["Store", "StoreInUse", "create_engine", "one_instance", "upgrade"]
