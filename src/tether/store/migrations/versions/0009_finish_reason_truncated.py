"""steps.finish_reason and runs.truncated: an answer cut off at the output-token limit is visible

Revision ID: 0009
Revises: 0006
Create Date: 2026-11-30 22:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("steps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("finish_reason", sa.String(length=32), nullable=True))
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("truncated", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("truncated")
    with op.batch_alter_table("steps", schema=None) as batch_op:
        batch_op.drop_column("finish_reason")
