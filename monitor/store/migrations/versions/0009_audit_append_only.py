"""The audit trail is append-only in the database itself: UPDATE, DELETE (and on PostgreSQL
TRUNCATE) on audit_log are refused by triggers.

Removing old entries takes a DBA who drops these triggers deliberately. A later migration
that rebuilds audit_log on SQLite (batch_alter_table copies the table) must create them again.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# One trigger per refused statement; the error names the table and that it is append-only.
_REFUSED = ("UPDATE", "DELETE")
_PG_FUNCTION = "audit_log_append_only"


def _trigger(statement: str) -> str:
    return f"audit_log_no_{statement.lower()}"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"""
            CREATE FUNCTION {_PG_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
                    USING ERRCODE = 'insufficient_privilege';
            END
            $$
            """
        )
        for statement in _REFUSED:
            op.execute(
                f"CREATE TRIGGER {_trigger(statement)} BEFORE {statement} ON audit_log"
                f" FOR EACH ROW EXECUTE FUNCTION {_PG_FUNCTION}()"
            )
        op.execute(
            f"CREATE TRIGGER {_trigger('TRUNCATE')} BEFORE TRUNCATE ON audit_log"
            f" FOR EACH STATEMENT EXECUTE FUNCTION {_PG_FUNCTION}()"
        )
        return
    # SQLite has no TRUNCATE; DELETE without WHERE fires the trigger (no truncate shortcut
    # is taken on a table with triggers).
    for statement in _REFUSED:
        op.execute(
            f"CREATE TRIGGER {_trigger(statement)} BEFORE {statement} ON audit_log"
            f" BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: {statement} refused'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in (*_REFUSED, "TRUNCATE"):
            op.execute(f"DROP TRIGGER IF EXISTS {_trigger(statement)} ON audit_log")
        op.execute(f"DROP FUNCTION IF EXISTS {_PG_FUNCTION}()")
        return
    for statement in _REFUSED:
        op.execute(f"DROP TRIGGER IF EXISTS {_trigger(statement)}")
