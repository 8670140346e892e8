"""Operator controls over HTTP: list, set and clear kill switches (the `operator` scope)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field

from tether.api.auth import Caller
from tether.api.deps import State, require
from tether.api.operator_scope import is_global_operator, scope_refusal, visible
from tether.api.schemas import Problem
from tether.controls.kinds import ControlError, ControlKind
from tether.controls.service import clear_control, set_control
from tether.store.controls import ControlRecord
from tether.store.repository import ConflictError, NotFoundError, utc_now

router = APIRouter(prefix="/v1/controls", tags=["controls"])

Operator = Annotated[Caller, Depends(require("operator"))]
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": Problem} for code in (400, 401, 403, 404, 409)}


class ControlOut(BaseModel):
    id: str
    kind: ControlKind
    scope: str = Field(description="all, tenant:<id>, release:<version> or tool:<name>.")
    value: str
    reason: str
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    cleared_at: datetime | None
    cleared_by: str | None
    cleared_reason: str | None
    in_force: bool

    @classmethod
    def of(cls, control: ControlRecord, now: datetime) -> ControlOut:
        return cls(**control.model_dump(), in_force=control.active_at(now))


class ControlSetOut(ControlOut):
    cancelled_runs: list[str] = Field(
        default_factory=list, description="Queued or waiting runs a stop_background control cancelled."
    )


class NewControl(BaseModel):
    kind: ControlKind
    value: str = Field(
        "",
        max_length=2000,
        description="disable_tool: the tool; force_review: writes|all; cap_steps: N; switch_model: a "
        "configured model; maintenance: the message; pause_runs: Retry-After seconds (optional).",
    )
    scope: str = Field("all", max_length=240, description="all, tenant:<id>, release:<version>, tool:<name>.")
    reason: str = Field(min_length=1, max_length=2000, description="Why (recorded with the change).")
    expires_in_s: int | None = Field(
        None, ge=1, le=90 * 86400, description="Stop applying after this many seconds, on its own."
    )


class ClearControl(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


async def _clearable(state: State, caller: Caller, control_id: str) -> None:
    """Refuse to clear what this caller may not touch; another tenant's control is never confirmed."""
    tenant = state.settings.operator_tenant
    try:
        control = await state.store.controls.get(control_id)
    except NotFoundError as exc:
        raise HTTPException(404, str(exc)) from None
    if not visible(caller, tenant, control):
        raise HTTPException(404, f"no control {control_id!r}")
    refused = scope_refusal(caller, tenant, control.scope)
    if refused is not None:
        raise HTTPException(403, refused)


def _who(caller: Caller) -> str:
    return f"{caller.user_id} (key {caller.key_id})"


@router.get("", response_model=list[ControlOut], responses=_ERRORS)
async def list_controls(
    state: State,
    caller: Operator,
    history: Annotated[
        bool, Query(description="Every change, newest first, not only those in force.")
    ] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[ControlOut]:
    """The controls in force now, or with `history` every change (set, cleared, expired).

    An operator key of a tenant other than the operator tenant sees its own tenant's controls and
    the global ones that bear on its runs, never another tenant's."""
    store, tenant = state.store.controls, state.settings.operator_tenant
    view = None if is_global_operator(caller, tenant) else caller.tenant_id
    controls = await (store.history(limit=limit, tenant_view=view) if history else store.active())
    now = utc_now()
    return [ControlOut.of(c, now) for c in controls if visible(caller, tenant, c)]


@router.post("", status_code=201, response_model=ControlSetOut, responses=_ERRORS)
async def create_control(body: NewControl, state: State, caller: Operator) -> ControlSetOut:
    """Set a control; every API process and worker honours it within a second. A tenant's operator
    key may set only controls scoped to its own tenant (403 otherwise)."""
    refused = scope_refusal(caller, state.settings.operator_tenant, body.scope)
    if refused is not None:
        raise HTTPException(403, refused)
    try:
        change = await set_control(
            state.store,
            state.runtime.live,
            kind=body.kind,
            scope=body.scope,
            value=body.value,
            reason=body.reason,
            by=_who(caller),
            expires_in=timedelta(seconds=body.expires_in_s) if body.expires_in_s else None,
        )
    except ControlError as exc:
        raise HTTPException(400, str(exc)) from None
    except NotFoundError as exc:
        raise HTTPException(400, str(exc)) from None
    for run_id in change.cancelled_runs:  # they ended here, not in a run loop: their traces need a root
        await state.runtime.observer.run_ended_idle(await state.store.get_run(run_id))
    out = ControlOut.of(change.control, utc_now())
    return ControlSetOut(**out.model_dump(), cancelled_runs=list(change.cancelled_runs))


@router.post("/{control_id}/clear", response_model=ControlOut, responses=_ERRORS)
async def clear(control_id: str, body: ClearControl, state: State, caller: Operator) -> ControlOut:
    """End a control now (409 if it already ended; 403 for a tenant's operator key and a control
    that reaches other tenants; 404 for another tenant's control)."""
    await _clearable(state, caller, control_id)
    try:
        control = await clear_control(
            state.store, state.runtime.live, control_id, by=_who(caller), reason=body.reason
        )
    except NotFoundError as exc:
        raise HTTPException(404, str(exc)) from None
    except ConflictError as exc:
        raise HTTPException(409, str(exc)) from None
    return ControlOut.of(control, utc_now())
