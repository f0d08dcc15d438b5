"""Privacy: purged messages are marked, open items keep their author's name, the pseudonym key.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        # When its text and author were purged or erased: later polls do not write them back.
        batch.add_column(sa.Column("redacted_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("items") as batch:
        # The consumer's name as the platform shows it, only while the item waits (queue page).
        batch.add_column(sa.Column("author_name", sa.String(500), nullable=True))
    op.create_table(
        "privacy_keys",
        sa.Column("name", sa.String(50), primary_key=True),
        # The pseudonym key generated when the config names none (hex).
        sa.Column("value", sa.String(200), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("privacy_keys")
    with op.batch_alter_table("items") as batch:
        batch.drop_column("author_name")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("redacted_at")
