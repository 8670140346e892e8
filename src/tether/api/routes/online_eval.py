"""Online evaluation: a run's scores, and mean scores per release or tenant over a window."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field

from tether.api.auth import Caller
from tether.api.deps import State, require, visible_run
from tether.api.schemas import Problem
from tether.store.repository import NotFoundError

router = APIRouter(prefix="/v1", tags=["online evaluation"])

Reader = Annotated[Caller, Depends(require("runs:read", "runs:write"))]
TenantReader = Annotated[Caller, Depends(require("runs:read"))]
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": Problem} for code in (400, 401, 403, 404, 429)}


class ScoreOut(BaseModel):
    scorer: str = Field(description="status, latency, cost or judge.")
    score: float = Field(description="0 (worst) to 1 (best).")
    passed: bool
    detail: str | None
    judge_cost_usd: float = Field(description="What scoring cost (the judge's model calls); not the run's.")
    created_at: datetime


class SummaryOut(BaseModel):
    release_version: str | None = None
    tenant_id: str | None = None
    scorer: str = Field(description="A scorer, or `feedback` (share of thumbs up).")
    mean: float
    count: int


@router.get("/runs/{run_id}/scores", response_model=list[ScoreOut], responses=_ERRORS)
async def run_scores(run_id: str, state: State, caller: Reader) -> list[ScoreOut]:
    """The online-evaluation scores of a run (empty when it was not sampled or is not scored yet)."""
    run = await visible_run(state, caller, run_id)
    return [
        ScoreOut(
            scorer=s.scorer,
            score=s.score,
            passed=s.passed,
            detail=s.detail,
            judge_cost_usd=s.cost_usd,
            created_at=s.created_at,
        )
        for s in await state.store.online_eval.scores_for_run(run.id)
    ]


@router.get("/online-eval/summary", response_model=list[SummaryOut], responses=_ERRORS)
async def summary(
    state: State,
    caller: TenantReader,
    hours: Annotated[float, Query(gt=0, le=24 * 90, description="The window: this many hours back.")] = 24,
    release: Annotated[str | None, Query(max_length=200, description="Only this release version.")] = None,
    by: Literal["release", "tenant"] = "release",
) -> list[SummaryOut]:
    """Mean online score per scorer and release of the caller's tenant over a window, feedback included."""
    release_id = None
    if release is not None:
        try:
            release_id = (await state.store.get_release(release)).id
        except NotFoundError:
            raise HTTPException(404, f"no release {release!r}") from None
    now = state.store.online_eval.now()
    rows = await state.store.online_eval.summary(
        since=now - timedelta(hours=hours),
        until=now,
        by=by,
        release_id=release_id,
        tenant_id=caller.tenant_id,
    )
    result: list[SummaryOut] = []
    for row in rows:
        if by == "tenant":
            result.append(SummaryOut(tenant_id=row.key, scorer=row.scorer, mean=row.mean, count=row.count))
            continue
        version = (await state.store.get_release(row.key)).version
        result.append(SummaryOut(release_version=version, scorer=row.scorer, mean=row.mean, count=row.count))
    return result
