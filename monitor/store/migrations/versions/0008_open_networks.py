"""Open networks: each message's interaction verdict and the watched hashtags it carries.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        # "interaction", "broadcast" or "chatter" on Mastodon and Bluesky; NULL elsewhere.
        batch.add_column(sa.Column("kind", sa.String(20), nullable=True))
        # " tag1 tag2 ": the watched hashtags in the post, for the campaign report.
        batch.add_column(sa.Column("tags", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("tags")
        batch.drop_column("kind")
