"""Spending less and failing softly: shared circuit-breaker states; cache entries; per step:
prompt-cache tokens, routing tier and why, which cache answered and what it saved

Revision ID: 0016
Revises: 0010
Create Date: 2026-12-01 01:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "circuit_breakers",
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_circuit_breakers")),
    )
    op.create_table(
        "cache_entries",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_cache_entries")),
    )
    op.create_index(
        "ix_cache_entries_kind_scope_created", "cache_entries", ["kind", "scope", "created_at"], unique=False
    )
    op.create_index(op.f("ix_cache_entries_expires_at"), "cache_entries", ["expires_at"], unique=False)
    with op.batch_alter_table("steps", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("cached_input_tokens", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("tier", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("route", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("cache", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("saved_cost_usd", sa.Float(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("saved_latency_ms", sa.Float(), server_default="0", nullable=False))


def downgrade() -> None:
    op.drop_index(op.f("ix_cache_entries_expires_at"), table_name="cache_entries")
    op.drop_index("ix_cache_entries_kind_scope_created", table_name="cache_entries")
    op.drop_table("cache_entries")
    with op.batch_alter_table("steps", schema=None) as batch_op:
        for column in ("saved_latency_ms", "saved_cost_usd", "cache", "route", "tier", "cached_input_tokens"):
            batch_op.drop_column(column)
    op.drop_table("circuit_breakers")
