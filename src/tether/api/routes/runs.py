"""Runs: create, read, list, cancel, stream events, decide approvals, leave feedback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent

from tether.api.auth import Caller
from tether.api.deps import ServiceState, State, readable_user, require, tenant_run, visible_run
from tether.api.notices import HEADER, header_value, maintenance_header
from tether.api.routing import choose_release, submit_shadow_copy
from tether.api.schemas import (
    ApprovalOut,
    CreateRun,
    Decision,
    Feedback,
    FeedbackOut,
    OriginQuery,
    Problem,
    RunList,
    RunOut,
)
from tether.runtime.approvals import Decider, FourEyesError
from tether.runtime.controls import NewRunsRefused
from tether.runtime.notify import until
from tether.store.records import RunOrigin, RunRecord, RunStatus, StepRecord, parse_origins
from tether.store.repository import ConflictError, NotFoundError, new_id
from tether.webhooks.service import add_callback

router = APIRouter(prefix="/v1/runs", tags=["runs"], dependencies=[Depends(maintenance_header)])

Reader = Annotated[Caller, Depends(require("runs:read", "runs:write"))]
Writer = Annotated[Caller, Depends(require("runs:write"))]
Approver = Annotated[Caller, Depends(require("approvals"))]

_POLL_S = 1.0
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem} for code in (400, 401, 403, 404, 409, 413, 429)
}
_CREATE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    503: {"model": Problem, "description": "An operator paused new runs (see Retry-After)."},
    200: {"model": RunOut, "description": "The run finished within `wait`."},
    402: {"model": Problem, "description": "A spend budget is used up."},
}


async def _out(state: ServiceState, run: RunRecord) -> RunOut:
    pending = None
    if run.status == RunStatus.WAITING_FOR_APPROVAL:
        waiting = await state.store.list_approvals(run_id=run.id, status="pending")
        pending = waiting[0] if waiting else None
    return RunOut.of(run, pending)


async def _wait_until_settled(state: ServiceState, run_id: str, seconds: float) -> RunRecord:
    """Wait up to `seconds` for the run to end or to park for approval."""
    deadline = time.monotonic() + seconds
    while True:
        with state.notifier.watching(run_id) as changed:  # before the read: no wake-up is lost
            run = await state.store.get_run(run_id)
            remaining = deadline - time.monotonic()
            if run.status.is_final or run.status == RunStatus.WAITING_FOR_APPROVAL or remaining <= 0:
                return run
            await until(changed, min(remaining, _POLL_S))


@router.post(
    "",
    status_code=202,
    response_model=RunOut,
    responses=_CREATE_RESPONSES,
)
async def create_run(body: CreateRun, state: State, caller: Writer, response: Response) -> RunOut:
    """Queue a run for the calling user; it is durable before this answers."""
    if len(body.input) > state.settings.max_input_chars:
        raise HTTPException(
            413, f"input is {len(body.input)} characters; the limit is {state.settings.max_input_chars}"
        )
    refusal = await state.limiter.check_new_run(
        state.store, user_id=caller.user_id, tenant_id=caller.tenant_id
    )
    if refusal is not None:
        raise HTTPException(
            refusal.status, refusal.message, headers={"Retry-After": str(refusal.retry_after_s)}
        )
    choice = await choose_release(
        state, caller, body.release
    )  # before anything is stored: a pin may be refused
    run_id, callback = new_id("run"), None
    if body.callback_url is not None:
        try:
            callback = await add_callback(
                state.store,
                state.settings,
                tenant_id=caller.tenant_id,
                url=body.callback_url,
                run_id=run_id,
                created_by=caller.user_id,
            )
        except ValueError as exc:
            raise HTTPException(400, f"callback_url: {exc}") from None
    try:
        run = await state.runtime.submit(
            choice.release,
            run_id=run_id,
            user_id=caller.user_id,
            tenant_id=caller.tenant_id,
            input=body.input,
            origin=RunOrigin.API,
            thread_id=body.thread_id,
            metadata=body.metadata,
            key_id=caller.key_id,
            scopes=sorted(caller.scopes),
            assignment=choice.assignment.as_record() if choice.assignment else None,
        )
    except NewRunsRefused as exc:  # an operator paused new runs: tell the client when to come back
        headers = {"Retry-After": str(exc.retry_after_s)}
        if exc.maintenance:
            headers[HEADER] = header_value(exc.maintenance)
        raise HTTPException(503, str(exc), headers=headers) from None
    except ConflictError as exc:
        raise HTTPException(404, f"no thread {body.thread_id!r}") from exc
    await submit_shadow_copy(state, run)
    state.work_available()
    if body.wait > 0:
        run = await _wait_until_settled(state, run.id, body.wait)
        if run.status.is_final:
            response.status_code = 200
    out = await _out(state, run)
    return out if callback is None else out.model_copy(update={"callback_secret": callback.secret})


@router.get("", response_model=RunList, responses=_ERRORS)
async def list_runs(
    state: State,
    caller: Reader,
    status: RunStatus | None = None,
    release: Annotated[str | None, Query(max_length=200)] = None,
    user: Annotated[str | None, Query(max_length=200)] = None,
    since: datetime | None = None,
    origin: OriginQuery = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> RunList:
    """Runs of the caller's tenant, newest first (only the caller's own without `runs:read`);
    production runs (api, cli) unless `origin` asks for others."""
    user = readable_user(caller, user)
    try:
        page = await state.store.page_runs(
            origins=parse_origins(origin),
            tenant_id=caller.tenant_id,
            user_id=user,
            status=status,
            release=release,
            since=since,
            cursor=cursor,
            limit=limit,
        )
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    return RunList(runs=[RunOut.of(run) for run in page.runs], next_cursor=page.next_cursor)


@router.get("/{run_id}", response_model=RunOut, responses=_ERRORS)
async def get_run(run_id: str, state: State, caller: Reader) -> RunOut:
    return await _out(state, await visible_run(state, caller, run_id))


@router.get("/{run_id}/steps", response_model=list[StepRecord], responses=_ERRORS)
async def list_steps(run_id: str, state: State, caller: Reader) -> list[StepRecord]:
    """Every durable step of the run: model calls and tool calls, with tokens, cost and results."""
    await visible_run(state, caller, run_id)
    return await state.store.list_steps(run_id)


@router.post("/{run_id}/cancel", status_code=202, response_model=RunOut, responses=_ERRORS)
async def cancel_run(run_id: str, state: State, caller: Writer) -> RunOut:
    """A queued or waiting run ends now; a running one stops at its next step boundary."""
    await visible_run(state, caller, run_id)
    try:
        run = await state.store.request_cancel(run_id)
    except ConflictError as exc:
        raise HTTPException(409, str(exc)) from None
    if run.status.is_final:  # it ended here, not in a run loop: its trace still needs its root
        await state.runtime.observer.run_ended_idle(run)
    return await _out(state, run)


_MAX_EVENT_ID = 2**63 - 1


async def event_cursor(
    run_id: str,
    state: State,
    caller: Reader,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
    after: Annotated[
        int | None, Query(ge=0, le=_MAX_EVENT_ID, description="Resume after this event id.")
    ] = None,
) -> int:
    """Where the stream starts, checked before the stream opens so refusals are real 4xx answers."""
    await visible_run(state, caller, run_id)
    if last_event_id is None:
        return after or 0
    if not (last_event_id.isascii() and last_event_id.isdigit()) or int(last_event_id) > _MAX_EVENT_ID:
        raise HTTPException(400, "Last-Event-ID must be an event id from this stream")
    return int(last_event_id)


@router.get(
    "/{run_id}/events",
    response_class=EventSourceResponse,
    responses={
        # Refusals happen before the stream opens, so they are JSON like every other error.
        **{
            code: {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
            for code in _ERRORS
        },
        200: {"description": "A text/event-stream of the run's events."},
    },
)
async def stream_events(
    run_id: str, state: State, cursor: Annotated[int, Depends(event_cursor)]
) -> AsyncIterator[ServerSentEvent]:
    """Every step, approval request, status change and the final output, as server-sent events.

    Resumable: reconnect with `Last-Event-ID` (or `?after=`) and nothing is missed or repeated.
    The stream ends once the run has reached a final state.
    """
    while True:
        with state.notifier.watching(run_id) as changed:  # before the read: no wake-up is lost
            events = await state.store.list_events(run_id, after=cursor)
            for event in events:
                cursor = event.seq
                yield ServerSentEvent(id=str(event.seq), event=event.type, data=event.data)
            if not events:
                run = await state.store.get_run(run_id)
                if run.status.is_final and not await state.store.list_events(run_id, after=cursor):
                    return
                await until(changed, _POLL_S)
        await asyncio.sleep(0)


@router.post("/{run_id}/approvals/{approval_id}", response_model=ApprovalOut, responses=_ERRORS)
async def decide_approval(
    run_id: str, approval_id: str, body: Decision, state: State, caller: Approver
) -> ApprovalOut:
    """Approve or reject a pending tool call; the run goes back to the queue for any free worker."""
    # The inbox lists the whole tenant's approvals, so a reviewer may decide any of them, except
    # that the four-eyes rule keeps a run's own key and user from approving its high-risk calls.
    run = await tenant_run(state, caller, run_id)
    try:
        record = await state.runtime.decide_approval(
            run,
            approval_id,
            approve=body.decision == "approve",
            reason=body.reason,
            decider=Decider(caller.user_id, caller.key_id),
        )
    except FourEyesError as exc:
        raise HTTPException(403, str(exc)) from None
    except ConflictError as exc:
        raise HTTPException(409, str(exc)) from None
    except NotFoundError as exc:
        raise HTTPException(404, str(exc)) from None
    state.work_available()
    return ApprovalOut.of(record)


@router.post("/{run_id}/feedback", status_code=201, response_model=FeedbackOut, responses=_ERRORS)
async def leave_feedback(run_id: str, body: Feedback, state: State, caller: Reader) -> FeedbackOut:
    """A thumbs up (+1) or down (-1) on a run, stored for online quality metrics."""
    await visible_run(state, caller, run_id)
    record = await state.store.add_feedback(
        run_id, user_id=caller.user_id, score=body.score, comment=body.comment
    )
    return FeedbackOut(
        feedback_id=record.id,
        run_id=record.run_id,
        score=record.score,
        comment=record.comment,
        created_at=record.created_at,
    )
