"""Incidents as stored: the incident row, and the notes and linked runs people add to it.

The rest of an incident's timeline (alerts, control changes, releases) is not copied here: it is
read from where it is already recorded when the timeline is assembled (`tether.incidents`).
An incident opened automatically carries a unique `source_key`, so two API processes that see the
same firing alert open it once. `Store.incidents` hands one out.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from tether.store.aggregate import Aggregate
from tether.store.repository import ConflictError, NotFoundError
from tether.store.tables import IncidentEntryRow, IncidentRow
from tether.store.webhooks import record_event

SEVERITIES = ("critical", "high", "medium", "low")


class IncidentRecord(BaseModel):
    model_config = ConfigDict(from_attributes=True, frozen=True)

    id: str
    title: str
    severity: str
    status: str
    tenant_id: str | None
    source: str
    source_key: str | None
    opened_by: str
    opened_at: datetime
    closed_by: str | None
    closed_at: datetime | None
    resolution: str | None


class IncidentEntryRecord(BaseModel):
    model_config = ConfigDict(from_attributes=True, frozen=True)

    id: int
    incident_id: str
    kind: str
    """`note` or `run` (a run linked to the incident)."""
    author: str
    text: str
    run_id: str | None
    created_at: datetime


class IncidentStore(Aggregate):
    async def open(
        self,
        *,
        title: str,
        severity: str,
        opened_by: str,
        source: str = "manual",
        source_key: str | None = None,
        tenant_id: str | None = None,
    ) -> IncidentRecord | None:
        """Open an incident; None when one with this `source_key` exists already (opened elsewhere)."""
        if severity not in SEVERITIES:
            raise ValueError(f"unknown severity {severity!r}; choose from {', '.join(SEVERITIES)}")
        if not title.strip():
            raise ValueError("an incident needs a title")
        row = IncidentRow(
            id=f"inc_{uuid.uuid4().hex[:16]}",
            title=title.strip(),
            severity=severity,
            status="open",
            tenant_id=tenant_id,
            source=source,
            source_key=source_key,
            opened_by=opened_by,
            opened_at=self._now(),
        )
        try:
            async with self._writes.begin() as session:
                session.add(row)
                await session.flush()  # a duplicate source_key fails here, before anything else is written
                # Subscribers hear of it from the outbox, in this transaction (a platform-wide incident
                # goes to the default tenant's endpoints: the operators' own).
                await record_event(
                    session,
                    type="incident.opened",
                    tenant_id=tenant_id or "default",
                    data={
                        "incident_id": row.id,
                        "title": row.title,
                        "severity": severity,
                        "source": source,
                        "opened_by": opened_by,
                        "opened_at": row.opened_at.isoformat(),
                    },
                    now=row.opened_at,
                )
        except IntegrityError:
            if source_key is None:
                raise
            return None
        return IncidentRecord.model_validate(row)

    async def add_entry(
        self, incident_id: str, *, kind: str, author: str, text: str = "", run_id: str | None = None
    ) -> IncidentEntryRecord:
        async with self._writes.begin() as session:
            if await session.get(IncidentRow, incident_id) is None:
                raise NotFoundError(f"no incident {incident_id!r}")
            row = IncidentEntryRow(
                incident_id=incident_id,
                kind=kind,
                author=author,
                text=text,
                run_id=run_id,
                created_at=self._now(),
            )
            session.add(row)
        return IncidentEntryRecord.model_validate(row)

    async def close(self, incident_id: str, *, closed_by: str, resolution: str) -> IncidentRecord:
        async with self._writes.begin() as session:
            row = await session.get(IncidentRow, incident_id)
            if row is None:
                raise NotFoundError(f"no incident {incident_id!r}")
            if row.status == "closed":
                raise ConflictError(f"incident {incident_id} is already closed")
            row.status, row.closed_by, row.closed_at, row.resolution = (
                "closed",
                closed_by,
                self._now(),
                resolution,
            )
        return IncidentRecord.model_validate(row)

    async def get(self, incident_id: str) -> IncidentRecord:
        async with self._sessions() as session:
            row = await session.get(IncidentRow, incident_id)
        if row is None:
            raise NotFoundError(f"no incident {incident_id!r}")
        return IncidentRecord.model_validate(row)

    async def recent(self, *, status: str | None = None, limit: int = 50) -> list[IncidentRecord]:
        query = select(IncidentRow).order_by(IncidentRow.opened_at.desc(), IncidentRow.id).limit(limit)
        if status is not None:
            query = query.where(IncidentRow.status == status)
        async with self._sessions() as session:
            rows = (await session.scalars(query)).all()
        return [IncidentRecord.model_validate(row) for row in rows]

    async def entries(self, incident_id: str) -> list[IncidentEntryRecord]:
        query = (
            select(IncidentEntryRow)
            .where(IncidentEntryRow.incident_id == incident_id)
            .order_by(IncidentEntryRow.created_at, IncidentEntryRow.id)
        )
        async with self._sessions() as session:
            rows = (await session.scalars(query)).all()
        return [IncidentEntryRecord.model_validate(row) for row in rows]
