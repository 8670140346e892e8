"""The approvals inbox: pending tool calls waiting for a human, across the caller's tenant."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from tether.api.auth import Caller
from tether.api.deps import State, require
from tether.api.schemas import ApprovalOut, Problem
from tether.store.records import PRODUCTION_ORIGINS

router = APIRouter(prefix="/v1/approvals", tags=["approvals"])


@router.get(
    "", response_model=list[ApprovalOut], responses={401: {"model": Problem}, 403: {"model": Problem}}
)
async def pending_approvals(
    state: State, caller: Annotated[Caller, Depends(require("approvals"))]
) -> list[ApprovalOut]:
    """Pending approvals of production runs (api, cli), oldest first; an eval's or drill's parked
    call is cancelled by its runner, never decided by a human. Decide one with
    `POST /v1/runs/{run_id}/approvals/{approval_id}`."""
    records = await state.store.list_approvals(
        status="pending", tenant_id=caller.tenant_id, origins=PRODUCTION_ORIGINS
    )
    return [ApprovalOut.of(record) for record in records]
