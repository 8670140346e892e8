"""Observability over HTTP: trace search, a run's spans, alerts, and Prometheus metrics."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel

from tether.api.auth import Caller
from tether.api.deps import PresentedKey, State, authenticated, readable_user, require, visible_run
from tether.api.schemas import OriginQuery, Problem
from tether.observe.alerts import parse_duration
from tether.observe.metrics import CONTENT_TYPE
from tether.observe.service import Telemetry
from tether.observe.tracing import hex_trace_id
from tether.store.insights import RunFilter
from tether.store.records import RunOrigin, RunRecord, RunStatus, parse_origins
from tether.store.repository import as_utc, utc_now
from tether.store.telemetry import ERROR_TYPES, AlertRecord, SpanRecord, error_type_of

router = APIRouter(tags=["observability"])

Reader = Annotated[Caller, Depends(require("runs:read", "runs:write"))]
Operator = Annotated[Caller, Depends(require("runs:read"))]
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": Problem} for code in (400, 401, 403, 404)}

ErrorType = Literal[
    "model_error", "internal_error", "release_error", "other_failure", "budget_exhausted", "cancelled"
]
assert set(ErrorType.__args__) == set(ERROR_TYPES)  # type: ignore[attr-defined]


def get_telemetry(request: Request) -> Telemetry:
    telemetry: Telemetry = request.app.state.telemetry
    return telemetry


TelemetryDep = Annotated[Telemetry, Depends(get_telemetry)]


class TraceOut(BaseModel):
    """A run as trace search shows it: enough to pick the trace to open."""

    run_id: str
    trace_id: str
    status: RunStatus
    error_type: str | None
    error: str | None
    release: str
    user_id: str
    thread_id: str | None
    origin: RunOrigin
    steps_used: int
    tools_called: list[str]
    input_tokens: int
    output_tokens: int
    cost_usd: float
    latency_ms: float | None
    """From the first claim to the end (approval waits included); null while the run is not final."""
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, run: RunRecord) -> TraceOut:
        latency = None if run.latency_ms is None else round(run.latency_ms, 3)
        return cls(
            run_id=run.id,
            trace_id=hex_trace_id(run.id),
            status=run.status,
            error_type=error_type_of(run.status, run.error),
            error=run.error,
            release=run.release_version,
            user_id=run.user_id,
            thread_id=run.thread_id,
            origin=run.origin,
            steps_used=run.steps_used,
            tools_called=run.tools_called,
            input_tokens=run.input_tokens,
            output_tokens=run.output_tokens,
            cost_usd=run.estimated_cost_usd,
            latency_ms=latency,
            created_at=run.created_at,
            finished_at=run.finished_at,
        )


class TraceList(BaseModel):
    traces: list[TraceOut]
    next_cursor: str | None


class TraceDetail(BaseModel):
    run_id: str
    trace_id: str
    spans: list[SpanRecord]
    """In start order; build the tree from `parent_span_id` (the root comes when the run ends)."""


class AlertList(BaseModel):
    alerts: list[AlertRecord]


@router.get("/v1/traces", response_model=TraceList, responses=_ERRORS)
async def search_traces(
    state: State,
    caller: Reader,
    release: Annotated[str | None, Query(max_length=200)] = None,
    status: RunStatus | None = None,
    error_type: ErrorType | None = None,
    tool: Annotated[
        str | None, Query(max_length=200, description="Runs whose model called this tool.")
    ] = None,
    tool_failed: Annotated[bool, Query(description="Runs with a failed tool call.")] = False,
    user: Annotated[str | None, Query(max_length=200)] = None,
    thread: Annotated[str | None, Query(max_length=200)] = None,
    min_latency_ms: Annotated[float | None, Query(ge=0)] = None,
    max_latency_ms: Annotated[float | None, Query(ge=0)] = None,
    min_cost_usd: Annotated[float | None, Query(ge=0)] = None,
    max_cost_usd: Annotated[float | None, Query(ge=0)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    last: Annotated[
        str | None, Query(max_length=12, description="Only runs created this recently: 30s, 15m, 1h, 7d.")
    ] = None,
    guardrail: Annotated[
        str | None, Query(max_length=200, description="`any`, or a guardrail name that did not allow.")
    ] = None,
    feedback: Literal["positive", "negative", "any"] | None = None,
    origin: OriginQuery = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> TraceList:
    """Runs of the caller's tenant matching every filter given, newest first (only the caller's own
    runs without `runs:read`). "Failing runs of release v3 that used issue_refund in the last hour":
    `?release=v3&status=failed&tool=issue_refund&last=1h`."""
    user = readable_user(caller, user)
    try:
        since = None if since is None else as_utc(since)
        until = None if until is None else as_utc(until)
        if last is not None:
            window_start = utc_now() - parse_duration(last)
            since = max(since, window_start) if since is not None else window_start
        page = await state.store.insights.search_runs(
            RunFilter(
                tenant_id=caller.tenant_id,
                release=release,
                status=status,
                user_id=user,
                thread_id=thread,
                tool=tool,
                tool_failed=tool_failed,
                error_type=error_type,
                guardrail=guardrail,
                since=since,
                until=until,
                min_cost_usd=min_cost_usd,
                max_cost_usd=max_cost_usd,
                min_latency_ms=min_latency_ms,
                max_latency_ms=max_latency_ms,
                feedback=feedback,
                origins=parse_origins(origin),
            ),
            cursor=cursor,
            limit=limit,
        )
    except (ValueError, OverflowError) as exc:
        raise HTTPException(400, str(exc)) from None
    return TraceList(traces=[TraceOut.of(run) for run in page.runs], next_cursor=page.next_cursor)


@router.get("/v1/traces/{run_id}", response_model=TraceDetail, responses=_ERRORS)
async def get_trace(run_id: str, state: State, caller: Reader) -> TraceDetail:
    """Every stored span of a run's trace (one `invoke_agent` root, an `execution` child per execution)."""
    await visible_run(state, caller, run_id)
    spans = await state.store.telemetry.list_spans(run_id=run_id)
    return TraceDetail(run_id=run_id, trace_id=hex_trace_id(run_id), spans=spans)


@router.get("/v1/alerts", response_model=AlertList, responses=_ERRORS)
async def list_alerts(
    state: State,
    caller: Operator,
    alert_state: Annotated[Literal["firing", "resolved"] | None, Query(alias="state")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AlertList:
    """Alert episodes of the caller's tenant, newest first."""
    alerts = await state.store.telemetry.list_alerts(
        tenant_id=caller.tenant_id, state=alert_state, limit=limit
    )
    return AlertList(alerts=alerts)


_LOOPBACK = frozenset({"127.0.0.1", "::1"})


async def metrics_reader(request: Request, state: State, presented: PresentedKey) -> None:
    """`TETHER_METRICS_ACCESS`: `key` (a key with the metrics or admin scope), `localhost` (loopback
    clients need no key), or `open`."""
    mode = state.settings.metrics_access
    if mode == "open":
        return
    client = request.client.host if request.client is not None else ""
    if mode == "localhost" and client in _LOOPBACK:
        return
    caller = await authenticated(state, presented, request)
    if not caller.has("metrics"):
        raise HTTPException(403, "this needs the metrics or admin scope")


@router.get(
    "/metrics",
    response_class=Response,
    dependencies=[Depends(metrics_reader)],
    responses={**_ERRORS, 200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format."}},
)
async def metrics(telemetry: TelemetryDep) -> Response:
    """Prometheus metrics: this process's counters and histograms, and deployment-wide gauges."""
    return Response(await telemetry.render_metrics(), media_type=CONTENT_TYPE)
