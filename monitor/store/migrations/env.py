"""Alembic environment: runs on the connection handed over by monitor.store.engine.upgrade."""

from alembic import context

from monitor.store.tables import metadata

connection = context.config.attributes["connection"]
# render_as_batch lets later migrations alter columns on SQLite too.
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
