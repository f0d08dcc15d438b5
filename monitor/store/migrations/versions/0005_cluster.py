"""Several instances on one database: leases, live instances, and nudges between them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "cluster_leases",
        # "source:<name>", "receiver:<name>" or "leader".
        sa.Column("key", sa.String(250), primary_key=True),
        sa.Column("holder", sa.String(100), nullable=True),
        # Raised at every takeover, so a write by a former holder can be refused.
        sa.Column("fence", sa.BigInteger, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
    )
    op.create_table(
        "cluster_instances",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("seen_at", TS, nullable=False),
    )
    op.create_table(
        "cluster_nudges",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("cluster_nudges")
    op.drop_table("cluster_instances")
    op.drop_table("cluster_leases")
