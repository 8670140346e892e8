"""Who acted: the key and scopes that created a run, the key that decided an approval, and
server-side dashboard sessions (so logging out ends a session everywhere)

Revision ID: 0008
Revises: 0006
Create Date: 2026-11-30 22:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key_id", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("scopes", sa.JSON(), nullable=True))
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("decided_by_key", sa.String(length=40), nullable=True))
    op.create_table(
        "ui_sessions",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_ui_sessions")),
    )
    op.create_index(op.f("ix_ui_sessions_key_id"), "ui_sessions", ["key_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_ui_sessions_key_id"), table_name="ui_sessions")
    op.drop_table("ui_sessions")
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.drop_column("decided_by_key")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("scopes")
        batch_op.drop_column("key_id")
