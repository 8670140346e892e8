"""redteam_runs: results of `tether redteam`, read by the gate's require_redteam

Revision ID: 0018_redteam
Revises: 0016
Create Date: 2026-12-01 01:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018_redteam"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "redteam_runs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("release_id", sa.String(length=40), nullable=False),
        sa.Column("model", sa.String(length=20), nullable=False),
        sa.Column("cases", sa.Integer(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("outcomes", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["release_id"], ["releases.id"], name=op.f("fk_redteam_runs_release_id_releases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_redteam_runs")),
    )
    with op.batch_alter_table("redteam_runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_redteam_runs_release_model_created", ["release_id", "model", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("redteam_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_redteam_runs_release_model_created")
    op.drop_table("redteam_runs")
