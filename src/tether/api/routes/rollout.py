"""Rollout: the deployment's stages and weights, canary analysis, and every change (operator scope)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from tether.api.auth import Caller
from tether.api.deps import ServiceState, State, require
from tether.api.schemas import Problem
from tether.rollout.deployment import Deployment, Plan, Stage
from tether.rollout.service import GateRefusedError, Rollout

router = APIRouter(prefix="/v1/rollout", tags=["rollout"])
Operator = Annotated[Caller, Depends(require("operator"))]
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": Problem} for code in (400, 401, 403, 404, 409)}


class Change(BaseModel):
    reason: str = Field(default="", max_length=2000, description="Why: kept in the audit log.")


class Start(Change):
    release: str = Field(min_length=1, max_length=200)
    stage: Literal["canary", "shadow", "internal", "live"] = "canary"
    override: bool = Field(
        default=False, description="Enter canary/live without a passing gate (needs a reason)."
    )
    steps: list[float] | None = Field(
        default=None, description="Canary steps in percent, e.g. [5, 25, 50, 100]."
    )
    min_runs: int | None = Field(default=None, ge=1)
    min_minutes: float | None = Field(default=None, ge=0)
    share: float | None = Field(default=None, ge=0, le=1, description="Shadow: share of live runs copied.")
    internal_users: list[str] | None = None
    internal_tenants: list[str] | None = None


class Switch(Change):
    release: str = Field(min_length=1, max_length=200)
    override: bool = False


class DeploymentOut(BaseModel):
    agent: str
    revision: int
    entries: list[dict[str, Any]]
    canary: dict[str, Any] | None
    shadow_share: float
    internal_users: list[str]
    internal_tenants: list[str]
    previous_live: str | None
    analysis: dict[str, Any] | None = None
    history: list[dict[str, Any]] = Field(default_factory=list)


def _rollout(state: ServiceState) -> Rollout:
    if state.rollout is None:
        raise HTTPException(409, "rollout is not available in this process")
    return state.rollout


def _actor(caller: Caller) -> str:
    return f"{caller.user_id} (key {caller.key_id})"


def _out(deployment: Deployment) -> DeploymentOut:
    state = deployment.to_state()
    state.pop("salt", None)
    return DeploymentOut(agent=deployment.agent_name, revision=deployment.revision, **state)


async def _own_release(state: ServiceState, version: str) -> None:
    """A release this API's agent may route to: 404 if unknown, 400 if another agent's."""
    release = await state.store.get_release(version)  # NotFoundError -> 404
    if release.agent_name != state.release.agent_name:
        raise HTTPException(400, f"{version} is a release of {release.agent_name}, not of this agent")


async def _apply(coro: Any) -> DeploymentOut:
    try:
        deployment: Deployment = await coro
    except GateRefusedError as exc:
        raise HTTPException(409, str(exc)) from None
    except ValueError as exc:
        raise HTTPException(409, str(exc)) from None
    return _out(deployment)


@router.get("", response_model=DeploymentOut, responses=_ERRORS)
async def rollout_status(state: State, caller: Operator) -> DeploymentOut:
    """The deployment now: stages, weights, the canary's step and analysis, and the audit log."""
    from tether.rollout.views import status

    data = await status(_rollout(state), state.release.agent_name)
    data.pop("salt", None)
    return DeploymentOut(**data)


@router.post("/start", response_model=DeploymentOut, responses=_ERRORS)
async def rollout_start(body: Start, state: State, caller: Operator) -> DeploymentOut:
    """Put a release in a stage: canary (with a plan), shadow, internal, or live."""
    await _own_release(state, body.release)
    plan = None
    if body.steps is not None or body.min_runs is not None or body.min_minutes is not None:
        defaults = Plan()
        plan = Plan(
            tuple(body.steps) if body.steps is not None else defaults.steps,
            body.min_runs if body.min_runs is not None else defaults.min_runs,
            body.min_minutes * 60 if body.min_minutes is not None else defaults.min_seconds,
        )
    return await _apply(
        _rollout(state).start(
            body.release,
            stage=Stage(body.stage),
            actor=_actor(caller),
            reason=body.reason,
            override=body.override,
            plan=plan,
            share=body.share,
            internal_users=frozenset(body.internal_users) if body.internal_users is not None else None,
            internal_tenants=frozenset(body.internal_tenants) if body.internal_tenants is not None else None,
        )
    )


@router.post("/promote", response_model=DeploymentOut, responses=_ERRORS)
async def rollout_promote(body: Change, state: State, caller: Operator) -> DeploymentOut:
    """Make the canary the live release now, skipping its remaining steps."""
    return await _apply(
        _rollout(state).promote(state.release.agent_name, actor=_actor(caller), reason=body.reason)
    )


@router.post("/pause", response_model=DeploymentOut, responses=_ERRORS)
async def rollout_pause(body: Change, state: State, caller: Operator) -> DeploymentOut:
    """Hold the canary at 0% of traffic (analysis waits too)."""
    return await _apply(
        _rollout(state).pause(state.release.agent_name, paused=True, actor=_actor(caller), reason=body.reason)
    )


@router.post("/resume", response_model=DeploymentOut, responses=_ERRORS)
async def rollout_resume(body: Change, state: State, caller: Operator) -> DeploymentOut:
    """Give a paused canary its step's weight again."""
    return await _apply(
        _rollout(state).pause(
            state.release.agent_name, paused=False, actor=_actor(caller), reason=body.reason
        )
    )


@router.post("/abort", response_model=DeploymentOut, responses=_ERRORS)
async def rollout_abort(body: Change, state: State, caller: Operator) -> DeploymentOut:
    """Stop the canary: it gets no more traffic; runs in flight finish on it."""
    return await _apply(
        _rollout(state).abort(state.release.agent_name, actor=_actor(caller), reason=body.reason)
    )


@router.post("/rollback", response_model=DeploymentOut, responses=_ERRORS)
async def rollout_rollback(body: Change, state: State, caller: Operator) -> DeploymentOut:
    """Stop the canary, or (without one) return to the previous live release; alerts and hooks hear of it."""
    return await _apply(
        _rollout(state).rollback(state.release.agent_name, actor=_actor(caller), reason=body.reason)
    )


@router.post("/switch", response_model=DeploymentOut, responses=_ERRORS)
async def rollout_switch(body: Switch, state: State, caller: Operator) -> DeploymentOut:
    """Blue-green: all traffic to a release at once (its gate must have passed, or override)."""
    await _own_release(state, body.release)
    return await _apply(
        _rollout(state).switch(body.release, actor=_actor(caller), reason=body.reason, override=body.override)
    )


@router.get("/report", response_model=dict[str, Any], responses=_ERRORS)
async def rollout_report(
    state: State, caller: Operator, against: Literal["shadow", "canary"] = "shadow"
) -> dict[str, Any]:
    """Shadow (or canary) vs live on the gate's measures, with 95% intervals and the runs that differ most."""
    from tether.rollout.views import report

    try:
        result = await report(_rollout(state), state.release.agent_name, against=against)
    except ValueError as exc:
        raise HTTPException(409, str(exc)) from None
    return result.as_dict()
