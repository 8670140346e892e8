"""Threads: conversations whose runs share history."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException

from tether.api.auth import Caller
from tether.api.deps import State, readable_user, require
from tether.api.schemas import CreateThread, Problem, ThreadOut
from tether.store.repository import ConflictError

router = APIRouter(prefix="/v1/threads", tags=["threads"])
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": Problem} for code in (401, 403, 409)}


@router.post("", status_code=201, response_model=ThreadOut, responses=_ERRORS)
async def create_thread(
    body: CreateThread, state: State, caller: Annotated[Caller, Depends(require("runs:write"))]
) -> ThreadOut:
    try:
        thread = await state.store.create_thread(caller.user_id, body.thread_id, tenant_id=caller.tenant_id)
    except ConflictError as exc:
        raise HTTPException(409, str(exc)) from None
    return ThreadOut(thread_id=thread.id, user_id=thread.user_id, created_at=thread.created_at)


@router.get("", response_model=list[ThreadOut], responses=_ERRORS)
async def list_threads(
    state: State, caller: Annotated[Caller, Depends(require("runs:read", "runs:write"))]
) -> list[ThreadOut]:
    """The caller's threads (every thread of the tenant with `runs:read`), newest first."""
    threads = await state.store.list_threads(tenant_id=caller.tenant_id, user_id=readable_user(caller, None))
    return [ThreadOut(thread_id=t.id, user_id=t.user_id, created_at=t.created_at) for t in threads]
