"""Feature flags over HTTP: read with `runs:read`, change with the `operator` scope (audited).

A change commits with a new live revision and is announced at once, so every API process and
worker decides new runs with it within a second; runs already submitted keep their flags.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field

from tether.api.auth import Caller
from tether.api.deps import State, require
from tether.api.schemas import Problem
from tether.rollout.flag_edits import delete_flag, edit, save_flag
from tether.store.flag_records import ChangeRecord, FlagRecord, FlagSpec

router = APIRouter(prefix="/v1/flags", tags=["flags"])

Reader = Annotated[Caller, Depends(require("runs:read"))]
Operator = Annotated[Caller, Depends(require("operator"))]
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": Problem} for code in (400, 401, 403, 404, 409)}
Reason = Annotated[str, Field(min_length=1, max_length=2000, description="Why (recorded in the audit log).")]


class FlagOut(FlagRecord):
    history: list[ChangeRecord] = Field(default_factory=list)
    """The flag's changes, newest first (only on single-flag reads)."""


class PutFlag(BaseModel):
    spec: FlagSpec
    reason: Reason
    expected_version: int | None = Field(
        default=None, ge=0, description="Refuse the change if the flag is no longer at this version (0: new)."
    )


class SwitchFlag(BaseModel):
    enabled: bool
    reason: Reason


def changed_by(caller: Caller) -> str:
    return f"{caller.user_id} (key {caller.key_id})"


@router.get("", response_model=list[FlagRecord], responses=_ERRORS)
async def list_flags(state: State, caller: Reader) -> list[FlagRecord]:
    """Every flag's current definition."""
    return await state.store.flags.all()


@router.get("/{name}", response_model=FlagOut, responses=_ERRORS)
async def get_flag(
    name: str, state: State, caller: Reader, history: Annotated[int, Query(ge=0, le=500)] = 50
) -> FlagOut:
    """One flag, with its latest `history` changes (who, why, when, live revision)."""
    flag = await state.store.flags.get(name)
    changes = await state.store.flags.history(subject=name, limit=history) if history else []
    return FlagOut(**flag.model_dump(), history=changes)


@router.put("/{name}", response_model=FlagRecord, responses=_ERRORS)
async def put_flag(name: str, body: PutFlag, state: State, caller: Operator) -> FlagRecord:
    """Create or replace a flag's whole definition (variations, switch, default, targeting rules)."""
    try:
        return await save_flag(
            state.store,
            state.runtime.live,
            name,
            body.spec,
            actor=changed_by(caller),
            reason=body.reason,
            action="set",
            expected_version=body.expected_version,
        )
    except ValueError as exc:
        raise HTTPException(409 if "changed meanwhile" in str(exc) else 400, str(exc)) from None


@router.post("/{name}/switch", response_model=FlagRecord, responses=_ERRORS)
async def switch_flag(name: str, body: SwitchFlag, state: State, caller: Operator) -> FlagRecord:
    """Switch a flag on or off (the kill switch: off serves the flag's `off` value to every new run)."""
    flag = await state.store.flags.get(name)
    return await save_flag(
        state.store,
        state.runtime.live,
        name,
        edit(flag.spec, enabled=body.enabled),
        actor=changed_by(caller),
        reason=body.reason,
        action="switch",
        expected_version=flag.version,
    )


@router.delete("/{name}", status_code=204, responses=_ERRORS)
async def remove_flag(
    name: str,
    state: State,
    caller: Operator,
    reason: Annotated[str, Query(min_length=1, max_length=2000, description="Why (audit log).")],
) -> None:
    """Delete a flag; new runs no longer get it. Its history stays."""
    await delete_flag(state.store, state.runtime.live, name, actor=changed_by(caller), reason=reason)
