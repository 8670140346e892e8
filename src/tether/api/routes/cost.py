"""Cost attribution over HTTP: spend by user, thread, tag, release, model or tier; circuit breakers.

Every answer is the caller's tenant only: a tenant never sees another's spend.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel

from tether.api.auth import Caller
from tether.api.deps import State, require
from tether.api.schemas import OriginQuery, Problem
from tether.observe.alerts import parse_duration
from tether.store.costs import CostGrouping, CostLine
from tether.store.records import parse_origins
from tether.store.repository import utc_now

router = APIRouter(tags=["cost"])

Reader = Annotated[Caller, Depends(require("runs:read"))]
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": Problem} for code in (400, 401, 403)}


class CostReport(BaseModel):
    by: CostGrouping
    since: str
    tenant_id: str
    total_usd: float
    saved_usd: float
    lines: list[CostLine]


@router.get("/v1/cost/report", response_model=CostReport, responses=_ERRORS)
async def cost_report(
    state: State,
    caller: Reader,
    by: CostGrouping = "model",
    since: Annotated[str, Query(description="How far back: 30m, 24h, 7d...")] = "7d",
    origin: OriginQuery = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> CostReport:
    """Spend and tokens of the caller's tenant over a window, grouped, largest first."""
    try:
        window = parse_duration(since)
        origins = parse_origins(origin)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    lines = await state.store.costs.report(
        by, since=utc_now() - window, tenant_id=caller.tenant_id, origins=origins, limit=limit
    )
    return CostReport(
        by=by,
        since=since,
        tenant_id=caller.tenant_id,
        total_usd=round(sum(line.cost_usd for line in lines), 6),
        saved_usd=round(sum(line.saved_usd for line in lines), 6),
        lines=lines,
    )


class BreakerOut(BaseModel):
    key: str
    phase: str
    consecutive_failures: int
    window_calls: int
    window_failures: int
    last_error: str


@router.get("/v1/cost/breakers", response_model=list[BreakerOut], responses=_ERRORS)
async def list_breakers(state: State, caller: Reader) -> list[BreakerOut]:
    """Circuit breakers per model and tool (shared by every process), and why any is open."""
    states = await state.runtime.breakers.backend.all()
    return [
        BreakerOut(
            key=key,
            phase=s.phase,
            consecutive_failures=s.consecutive,
            window_calls=s.window_calls,
            window_failures=s.window_failures,
            last_error=s.last_error,
        )
        for key, s in states.items()
    ]
