"""Persistence: SQLAlchemy 2 async tables, repository and Alembic migrations."""

from monitor.store.engine import StoreInUse, create_engine, one_instance, upgrade
from monitor.store.fencing import FencedOut
from monitor.store.repository import Store

__all__ = ["FencedOut", "Store", "StoreInUse", "create_engine", "one_instance", "upgrade"]
