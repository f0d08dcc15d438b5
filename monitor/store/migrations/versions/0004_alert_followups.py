"""Escalation and reminder progress per breached item, acknowledgements, shift handovers.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "alert_followups",
        sa.Column("item_id", sa.Integer, primary_key=True),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("breached_at", TS, nullable=True),
        sa.Column("escalations_sent", sa.Integer, nullable=False),
        sa.Column("reminders_sent", sa.Integer, nullable=False),
        sa.Column("next_at", TS, nullable=True),
        sa.Column("acked_at", TS, nullable=True),
        sa.Column("acked_by", sa.String(200), nullable=True),
        sa.Column("stopped_at", TS, nullable=True),
        sa.Column("stop_reason", sa.String(20), nullable=True),
    )
    op.create_index("ix_alert_followups_next_at", "alert_followups", ["next_at"])
    op.create_table(
        "alert_handovers",
        sa.Column("source", sa.String(200), primary_key=True),
        sa.Column("starts_at", TS, primary_key=True),
        sa.Column("student", sa.String(200), nullable=False),
        sa.Column("notification_id", sa.String(100), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("alert_handovers")
    op.drop_index("ix_alert_followups_next_at", table_name="alert_followups")
    op.drop_table("alert_followups")
