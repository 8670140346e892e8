"""runs.origin: where a run came from (api, cli, eval, drill; shadow and canary reserved)

Existing rows are classified as well as the stored data allows:
- `drill`: metadata names a readiness drill (`readiness_drill`);
- `eval`: metadata names an eval run (`eval_run`, seeded history turns included), or the run is
  pinned without drill metadata (only eval trials and drills were ever pinned);
- `api`: any other run of a tenant other than `default`, or of a user who has an API key in its
  tenant (the CLI only ever creates runs in tenant `default`);
- `cli`: the rest (tenant `default`, a user without an API key).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 22:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _has_key(key: str) -> str:
    """SQL: the run's JSON metadata has `key` (with a non-null value)."""
    if op.get_bind().dialect.name == "postgresql":
        return f"(metadata ->> '{key}') IS NOT NULL"
    return f"json_extract(metadata, '$.{key}') IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("origin", sa.String(length=16), server_default="api", nullable=False))
    op.execute(f"UPDATE runs SET origin = 'drill' WHERE {_has_key('readiness_drill')}")
    op.execute(f"UPDATE runs SET origin = 'eval' WHERE origin = 'api' AND ({_has_key('eval_run')} OR pinned)")
    op.execute(
        "UPDATE runs SET origin = 'cli' WHERE origin = 'api' AND tenant_id = 'default' AND NOT EXISTS "
        "(SELECT 1 FROM api_keys WHERE api_keys.user_id = runs.user_id "
        "AND api_keys.tenant_id = runs.tenant_id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("origin")
