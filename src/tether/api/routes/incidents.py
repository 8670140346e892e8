"""Incidents over HTTP: list, open, annotate, close, and read the timeline and postmortem draft."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from pydantic import BaseModel, Field

from tether.api.auth import Caller
from tether.api.deps import State, require
from tether.api.schemas import Problem
from tether.incidents.report import postmortem
from tether.incidents.service import add_note, open_incident
from tether.incidents.timeline import assemble
from tether.store.incidents import SEVERITIES, IncidentEntryRecord, IncidentRecord
from tether.store.repository import ConflictError, NotFoundError

router = APIRouter(prefix="/v1/incidents", tags=["incidents"])

Operator = Annotated[Caller, Depends(require("operator"))]
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": Problem} for code in (400, 401, 403, 404, 409)}
Severity = Literal["critical", "high", "medium", "low"]
assert set(SEVERITIES) == {"critical", "high", "medium", "low"}


class NewIncident(BaseModel):
    title: str = Field(min_length=1, max_length=500)
    severity: Severity = "high"
    tenant_id: str | None = Field(None, max_length=200)
    runs: list[str] = Field(default_factory=list, max_length=200, description="Runs to link.")


class NewNote(BaseModel):
    text: str = Field("", max_length=10_000)
    runs: list[str] = Field(default_factory=list, max_length=200, description="Runs to link.")


class CloseIncident(BaseModel):
    resolution: str = Field(min_length=1, max_length=10_000)


class MomentOut(BaseModel):
    at: datetime
    source: str
    text: str
    ref: str


class IncidentDetail(IncidentRecord):
    timeline: list[MomentOut]
    runs: list[str]


def _who(caller: Caller) -> str:
    return f"{caller.user_id} (key {caller.key_id})"


@router.get("", response_model=list[IncidentRecord], responses=_ERRORS)
async def list_incidents(
    state: State,
    caller: Operator,
    status: Literal["open", "closed"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[IncidentRecord]:
    """Incidents, newest first."""
    return await state.store.incidents.recent(status=status, limit=limit)


@router.post("", status_code=201, response_model=IncidentRecord, responses=_ERRORS)
async def create_incident(body: NewIncident, state: State, caller: Operator) -> IncidentRecord:
    try:
        return await open_incident(
            state.store,
            title=body.title,
            severity=body.severity,
            by=_who(caller),
            tenant_id=body.tenant_id,
            runs=body.runs,
        )
    except (NotFoundError, ValueError) as exc:
        raise HTTPException(400, str(exc)) from None


@router.get("/{incident_id}", response_model=IncidentDetail, responses=_ERRORS)
async def get_incident(incident_id: str, state: State, caller: Operator) -> IncidentDetail:
    """The incident with its timeline, assembled from alerts, controls, releases, notes and runs."""
    timeline = await assemble(state.store, incident_id)
    return IncidentDetail(
        **timeline.incident.model_dump(),
        timeline=[MomentOut(at=m.at, source=m.source, text=m.text, ref=m.ref) for m in timeline.moments],
        runs=[run.id for run in timeline.runs],
    )


@router.post(
    "/{incident_id}/notes", status_code=201, response_model=list[IncidentEntryRecord], responses=_ERRORS
)
async def note(incident_id: str, body: NewNote, state: State, caller: Operator) -> list[IncidentEntryRecord]:
    """Add a note and/or link runs."""
    await state.store.incidents.get(incident_id)  # 404 before any other check
    try:
        return await add_note(state.store, incident_id, text=body.text, by=_who(caller), runs=body.runs)
    except (NotFoundError, ValueError) as exc:
        raise HTTPException(400, str(exc)) from None


@router.post("/{incident_id}/close", response_model=IncidentRecord, responses=_ERRORS)
async def close(incident_id: str, body: CloseIncident, state: State, caller: Operator) -> IncidentRecord:
    try:
        return await state.store.incidents.close(
            incident_id, closed_by=_who(caller), resolution=body.resolution
        )
    except ConflictError as exc:
        raise HTTPException(409, str(exc)) from None


@router.get(
    "/{incident_id}/report",
    response_class=Response,
    responses={**_ERRORS, 200: {"content": {"text/markdown": {}}, "description": "Postmortem draft."}},
)
async def report(incident_id: str, state: State, caller: Operator) -> Response:
    """The postmortem draft in Markdown."""
    text = postmortem(await assemble(state.store, incident_id))
    return Response(text, media_type="text/markdown; charset=utf-8")
