"""The alert outbox and the record of which item was alerted for what.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "alert_outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("delivery_id", sa.String(200), nullable=False, unique=True),
        sa.Column("receiver", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("notification", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
    )
    op.create_index("ix_alert_outbox_receiver_state", "alert_outbox", ["receiver", "state", "id"])
    op.create_table(
        "item_alerts",
        sa.Column("item_id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(20), primary_key=True),
        sa.Column("notification_id", sa.String(100), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("item_alerts")
    op.drop_table("alert_outbox")
