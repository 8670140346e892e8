"""Red-team results: one row per `tether redteam` run, read back by the gate and the CLI.

The summary (counts per oracle, category and vector, utility) is what the gate needs; the
outcomes (one dict per case, with its run id) are the evidence behind it. `Store.redteam`
hands one out.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from tether.store.aggregate import Aggregate
from tether.store.tables import RedteamRunRow


class RedteamRunRecord(BaseModel):
    model_config = ConfigDict(from_attributes=True, frozen=True)

    id: str
    release_id: str
    model: str
    """`compromised` or `configured`: which model the attacks ran against."""
    cases: int
    summary: dict[str, Any]
    outcomes: list[dict[str, Any]]
    created_at: datetime


class RedteamStore(Aggregate):
    async def add(
        self, *, release_id: str, model: str, summary: dict[str, Any], outcomes: list[dict[str, Any]]
    ) -> RedteamRunRecord:
        row = RedteamRunRow(
            id=f"rt_{uuid.uuid4().hex}",
            release_id=release_id,
            model=model,
            cases=len(outcomes),
            summary=summary,
            outcomes=outcomes,
            created_at=self._now(),
        )
        async with self._writes.begin() as session:
            session.add(row)
        return RedteamRunRecord.model_validate(row)

    async def latest(self, release_id: str, *, model: str = "compromised") -> RedteamRunRecord | None:
        """The newest red-team run of the release against that model, or None."""
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(RedteamRunRow)
                    .where(RedteamRunRow.release_id == release_id, RedteamRunRow.model == model)
                    .order_by(RedteamRunRow.created_at.desc())
                    .limit(1)
                )
            ).scalar_one_or_none()
        return RedteamRunRecord.model_validate(row) if row is not None else None
