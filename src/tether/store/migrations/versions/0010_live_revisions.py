"""live_revisions: one revision counter per kind of live configuration (deployment, controls, flags)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 01:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "live_revisions",
        sa.Column("topic", sa.String(length=64), primary_key=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("live_revisions")
