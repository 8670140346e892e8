"""A/B experiments over HTTP: read and report with `runs:read`, start and stop with `operator`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from tether.api.auth import Caller
from tether.api.deps import State, require
from tether.api.routes.flags import changed_by
from tether.api.schemas import Problem
from tether.rollout.experiment_report import ExperimentReport, experiment_report
from tether.rollout.experiments import start_experiment, stop_experiment
from tether.store.flag_records import ChangeRecord, ExperimentRecord, ExperimentSpec, check_name
from tether.store.flags import FlagNotFoundError
from tether.store.repository import NotFoundError

router = APIRouter(prefix="/v1/experiments", tags=["experiments"])

Reader = Annotated[Caller, Depends(require("runs:read"))]
Operator = Annotated[Caller, Depends(require("operator"))]
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": Problem} for code in (400, 401, 403, 404, 409)}
Reason = Annotated[str, Field(min_length=1, max_length=2000, description="Why (recorded in the audit log).")]


class ExperimentOut(ExperimentRecord):
    history: list[ChangeRecord] = Field(default_factory=list)


class CreateExperiment(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    spec: ExperimentSpec
    reason: Reason


class StopExperiment(BaseModel):
    reason: Reason


@router.get("", response_model=list[ExperimentRecord], responses=_ERRORS)
async def list_experiments(state: State, caller: Reader) -> list[ExperimentRecord]:
    """Experiments, newest first."""
    return await state.store.experiments.all()


@router.post("", status_code=201, response_model=ExperimentRecord, responses=_ERRORS)
async def create_experiment(body: CreateExperiment, state: State, caller: Operator) -> ExperimentRecord:
    """Start an experiment; production users are enrolled in a sticky arm at their next run."""
    try:
        check_name(body.name, "experiment")
        return await start_experiment(
            state.store,
            state.runtime.live,
            body.name,
            body.spec,
            actor=changed_by(caller),
            reason=body.reason,
        )
    except NotFoundError as exc:  # an arm names a release that does not exist
        raise HTTPException(400, str(exc)) from None
    except ValueError as exc:
        raise HTTPException(409 if "already exists" in str(exc) else 400, str(exc)) from None


@router.get("/{name}", response_model=ExperimentOut, responses=_ERRORS)
async def get_experiment(name: str, state: State, caller: Reader) -> ExperimentOut:
    experiment = await state.store.experiments.get(name)
    history = await state.store.flags.history(kind="experiment", subject=name)
    return ExperimentOut(**experiment.model_dump(), history=history)


@router.post("/{name}/stop", response_model=ExperimentRecord, responses=_ERRORS)
async def stop(name: str, body: StopExperiment, state: State, caller: Operator) -> ExperimentRecord:
    """Stop enrolling; enrolled runs keep their arm."""
    try:
        return await stop_experiment(
            state.store, state.runtime.live, name, actor=changed_by(caller), reason=body.reason
        )
    except FlagNotFoundError:
        raise
    except ValueError as exc:
        raise HTTPException(409, str(exc)) from None


@router.get("/{name}/report", response_model=ExperimentReport, responses=_ERRORS)
async def report(name: str, state: State, caller: Reader) -> ExperimentReport:
    """Each arm's estimate and each arm against control: difference, 95% CI, p-value, runs still needed."""
    return await experiment_report(state.store, name)
