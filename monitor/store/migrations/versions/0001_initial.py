"""Sources, messages and items.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sources",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("platform", sa.String(50), nullable=False),
        sa.Column("brand", sa.String(200), nullable=False),
        sa.Column("cursor", sa.JSON, nullable=False),
        sa.Column("tracking_start", TS, nullable=True),
        sa.Column("last_success_at", TS, nullable=True),
    )
    op.create_table(
        "messages",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("platform_id", sa.String(200), nullable=False),
        sa.Column("thread_id", sa.String(200), nullable=False),
        sa.Column("parent_id", sa.String(200), nullable=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("author_id", sa.String(200), nullable=True),
        sa.Column("author_name", sa.String(500), nullable=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("permalink", sa.Text, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("detected_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("is_brand", sa.Boolean, nullable=False),
        sa.Column("hidden", sa.Boolean, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("edited", sa.Boolean, nullable=False),
        sa.UniqueConstraint("source", "platform_id", name="uq_messages_source_platform_id"),
    )
    op.create_index("ix_messages_source_thread", "messages", ["source", "thread_id"])
    op.create_index("ix_messages_source_created", "messages", ["source", "created_at"])
    op.create_table(
        "items",
        sa.Column("message_id", sa.Integer, sa.ForeignKey("messages.id"), primary_key=True),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("brand", sa.String(200), nullable=False),
        sa.Column("thread_id", sa.String(200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("period", sa.String(20), nullable=False),
        sa.Column("weekend", sa.Boolean, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("dismissed_reason", sa.String(50), nullable=True),
        sa.Column("target_seconds", sa.Float, nullable=False),
        sa.Column("warning_at", TS, nullable=False),
        sa.Column("due_at", TS, nullable=False),
        sa.Column("response_message_id", sa.Integer, sa.ForeignKey("messages.id"), nullable=True),
        sa.Column("responder", sa.String(500), nullable=True),
        sa.Column("responded_at", TS, nullable=True),
        sa.Column("response_seconds", sa.Float, nullable=True),
        sa.Column("response_sla_seconds", sa.Float, nullable=True),
    )
    op.create_index("ix_items_source_state", "items", ["source", "state"])
    op.create_index("ix_items_source_thread", "items", ["source", "thread_id"])
    op.create_index("ix_items_created", "items", ["created_at"])


def downgrade() -> None:
    op.drop_table("items")
    op.drop_table("messages")
    op.drop_table("sources")
