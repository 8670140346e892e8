"""What each page shows, built from store records: time windows, health cards, filters, the step tree.

Nothing here talks to the database or renders HTML, so it is easy to test and reuse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from tether.store.insights import RunFilter, RunStats
from tether.store.records import (
    ApprovalRecord,
    RunOrigin,
    RunRecord,
    RunStatus,
    StepKind,
    StepRecord,
    parse_origins,
)
from tether.store.telemetry import ERROR_TYPES, SpanRecord
from tether.ui.format import NONE

# Window name -> (length, chart bucket).
WINDOWS: dict[str, tuple[timedelta, timedelta]] = {
    "1h": (timedelta(hours=1), timedelta(minutes=5)),
    "6h": (timedelta(hours=6), timedelta(minutes=30)),
    "24h": (timedelta(hours=24), timedelta(hours=1)),
    "7d": (timedelta(days=7), timedelta(hours=6)),
    "30d": (timedelta(days=30), timedelta(days=1)),
}
DEFAULT_WINDOW = "24h"
STATUSES = [str(s) for s in RunStatus]
# Guardrail decisions show on the run page (its Guardrails table and guard steps); `blocked` is a status.
ORIGIN_CHOICES = ["production", "all", *(str(o) for o in RunOrigin)]
"""The runs page's origin filter: production (api and cli, the default), every origin, or one."""


class BadInput(ValueError):
    """A query parameter the page cannot use; shown to the operator next to the form."""


def window_named(name: str | None) -> str:
    if name is None or name == "":
        return DEFAULT_WINDOW
    if name not in WINDOWS:
        raise BadInput(f"unknown time window {name!r}; choose one of {', '.join(WINDOWS)}")
    return name


def runs_link(**params: Any) -> str:
    """A link to the runs page with these filters (empty values left out)."""
    query = {k: v for k, v in params.items() if v not in (None, "", False)}
    return "/ui/runs" + (f"?{urlencode(query)}" if query else "")


# -- health ------------------------------------------------------------------------------------


@dataclass
class Card:
    """One number on the health page, its value in the previous window, and where to drill down."""

    label: str
    value: str
    previous: str
    trend: str  # "up", "down" or "flat"
    good: str  # which way is good: "up", "down" or "none"
    link: str
    hint: str = ""

    @property
    def tone(self) -> str:
        if self.trend == "flat" or self.good == "none":
            return "neutral"
        return "good" if self.trend == self.good else "bad"


def _trend(now: float | None, before: float | None) -> str:
    if now is None or before is None or abs(now - before) < 1e-12:
        return "flat"
    return "up" if now > before else "down"


def health_cards(
    window: str, now: RunStats, before: RunStats, active: int, window_days: float, fmt: dict[str, Any]
) -> list[Card]:
    pct, ms, usd = fmt["pct"], fmt["ms"], fmt["usd"]

    def card(
        label: str,
        value: float | None,
        previous: float | None,
        shown: Any,
        good: str,
        link: str,
        hint: str = "",
    ) -> Card:
        return Card(label, shown(value), shown(previous), _trend(value, previous), good, link, hint)

    def count(value: float | None) -> str:
        return NONE if value is None else f"{value:,.0f}"

    per_day_now = now.cost_usd / window_days
    per_day_before = before.cost_usd / window_days
    return [
        card("Runs", now.runs, before.runs, count, "none", runs_link(window=window)),
        Card("Active runs", f"{active:,}", "now", "flat", "none", runs_link(status="running")),
        card(
            "Completion rate",
            now.completion_rate,
            before.completion_rate,
            pct,
            "up",
            runs_link(window=window, status="failed"),
            f"{now.succeeded} of {now.finished} finished runs succeeded; click for the failed ones",
        ),
        card(
            "Failed runs", now.failed, before.failed, count, "down", runs_link(window=window, status="failed")
        ),
        card(
            "p50 latency", now.p50_ms, before.p50_ms, ms, "down", runs_link(window=window), "start to finish"
        ),
        card(
            "p95 latency",
            now.p95_ms,
            before.p95_ms,
            ms,
            "down",
            runs_link(window=window, min_latency_ms=f"{now.p95_ms:.0f}" if now.p95_ms else None),
            "click for the runs at or above it",
        ),
        card(
            "p99 latency",
            now.p99_ms,
            before.p99_ms,
            ms,
            "down",
            runs_link(window=window, min_latency_ms=f"{now.p99_ms:.0f}" if now.p99_ms else None),
        ),
        card("Cost per run", now.cost_per_run, before.cost_per_run, usd, "down", runs_link(window=window)),
        card(
            "Cost per day",
            per_day_now,
            per_day_before,
            usd,
            "down",
            runs_link(window=window),
            "spend in the window, per day",
        ),
        card(
            "Escalation rate",
            now.escalation_rate,
            before.escalation_rate,
            pct,
            "down",
            runs_link(window=window, status="escalated"),
        ),
        card(
            "Tool error rate",
            now.tool_error_rate,
            before.tool_error_rate,
            pct,
            "down",
            runs_link(window=window, tool_failed="1"),
            f"{now.tool_errors} of {now.tool_calls} tool calls failed",
        ),
        card(
            "Positive feedback",
            now.positive_feedback_rate,
            before.positive_feedback_rate,
            pct,
            "up",
            runs_link(window=window, feedback="negative"),
            f"{now.feedback} ratings; click for the thumbs-down runs",
        ),
    ]


def chart_series(
    buckets: dict[str, RunStats], since: datetime, bucket: timedelta, count: int
) -> dict[str, list[Any]]:
    """Columns for uPlot: x (bucket start, epoch seconds) and one list per series, None for gaps."""
    step = int(bucket.total_seconds())
    start = int(since.timestamp())
    columns: dict[str, list[Any]] = {
        key: []
        for key in (
            "x",
            "runs",
            "failed",
            "completion",
            "escalation",
            "tool_errors",
            "p50",
            "p95",
            "p99",
            "cost",
        )
    }
    for index in range(count):
        stats = buckets.get(str(index), RunStats(key=str(index)))
        columns["x"].append(start + index * step)
        columns["runs"].append(stats.runs)
        columns["failed"].append(stats.failed)
        columns["completion"].append(_percent(stats.completion_rate))
        columns["escalation"].append(_percent(stats.escalation_rate))
        columns["tool_errors"].append(_percent(stats.tool_error_rate))
        columns["p50"].append(stats.p50_ms)
        columns["p95"].append(stats.p95_ms)
        columns["p99"].append(stats.p99_ms)
        columns["cost"].append(round(stats.cost_usd, 8))
    return columns


def _percent(rate: float | None) -> float | None:
    return None if rate is None else round(rate * 100, 2)


# -- runs search -------------------------------------------------------------------------------


def _number(params: dict[str, str], name: str, label: str) -> float | None:
    raw = params.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise BadInput(f"{label} must be a number, not {raw!r}") from None
    if value != value or value < 0 or value == float("inf"):
        raise BadInput(f"{label} must be a number of zero or more")
    return value


def _moment(params: dict[str, str], name: str) -> datetime | None:
    raw = params.get(name, "").strip()
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise BadInput(f"{name} must be a date and time like 2026-11-22T14:00, not {raw!r}") from None
    # The form's datetime-local fields carry no zone; the dashboard shows UTC, so read them as UTC.
    try:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:
        raise BadInput(f"{name} is out of range") from None


def _text(params: dict[str, str], name: str) -> str | None:
    value = params.get(name, "").strip()
    if len(value) > 200:
        raise BadInput(f"{name} is too long")
    return value or None


def run_filter(params: dict[str, str], tenant_id: str, now: datetime) -> RunFilter:
    """The runs page's query string as a search; `BadInput` says what is wrong with it."""
    status = _text(params, "status")
    if status is not None and status not in STATUSES:
        raise BadInput(f"unknown status {status!r}")
    error_type = _text(params, "error_type")
    if error_type is not None and error_type not in ERROR_TYPES:
        raise BadInput(f"unknown error type {error_type!r}; choose from {', '.join(ERROR_TYPES)}")
    feedback = _text(params, "feedback")
    if feedback is not None and feedback not in ("positive", "negative", "any"):
        raise BadInput("feedback must be positive, negative or any")
    since = _moment(params, "since")
    window = params.get("window", "").strip()
    if window:
        since = now - WINDOWS[window_named(window)][0]
    until = _moment(params, "until")
    if since is not None and until is not None and since >= until:
        raise BadInput("since must be before until")
    ranges = {
        name: _number(params, name, label)
        for name, label in (
            ("min_cost", "minimum cost"),
            ("max_cost", "maximum cost"),
            ("min_latency_ms", "minimum latency"),
            ("max_latency_ms", "maximum latency"),
        )
    }
    origin = _text(params, "origin")
    return RunFilter(
        tenant_id=tenant_id,
        origins=parse_origins([origin] if origin else None),
        release=_text(params, "release"),
        status=status,
        user_id=_text(params, "user"),
        thread_id=_text(params, "thread"),
        error_type=error_type,
        tool=_text(params, "tool"),
        tool_failed=params.get("tool_failed", "") in ("1", "on", "true"),
        since=since,
        until=until,
        min_cost_usd=ranges["min_cost"],
        max_cost_usd=ranges["max_cost"],
        min_latency_ms=ranges["min_latency_ms"],
        max_latency_ms=ranges["max_latency_ms"],
        feedback=feedback,  # type: ignore[arg-type]
    )


# -- one run -----------------------------------------------------------------------------------


@dataclass
class StepNode:
    """A step in the run's tree: model calls at the top, the tool calls they asked for below them."""

    step: StepRecord
    offset_pct: float
    width_pct: float
    duration_ms: float | None
    children: list[StepNode] = field(default_factory=list)
    approvals: list[ApprovalRecord] = field(default_factory=list)
    waiting: list[ApprovalRecord] = field(default_factory=list)
    """Approvals for calls of this model step that have no tool step yet (the run is parked)."""


def step_tree(
    run: RunRecord, steps: list[StepRecord], approvals: list[ApprovalRecord], now: datetime
) -> list[StepNode]:
    start = run.started_at or run.created_at
    end = run.finished_at or now
    if steps:
        end = max(end, *(s.finished_at or now for s in steps))
    total = max((end - start).total_seconds(), 0.001)

    def node(step: StepRecord) -> StepNode:
        finish = step.finished_at or now
        offset = max((step.started_at - start).total_seconds(), 0.0) / total
        width = max((finish - step.started_at).total_seconds(), 0.0) / total
        took = (
            None if step.finished_at is None else (step.finished_at - step.started_at).total_seconds() * 1000
        )
        return StepNode(step, round(offset * 100, 2), round(max(width * 100, 0.5), 2), took)

    roots: list[StepNode] = []
    asked: dict[str, StepNode] = {}  # tool call id -> the model step that asked for it
    placed: set[str] = set()
    for step in steps:
        item = node(step)
        if step.kind == StepKind.MODEL_CALL:
            roots.append(item)
            for call in (step.message or {}).get("tool_calls", []) or []:
                if isinstance(call, dict) and isinstance(call.get("id"), str):
                    asked[call["id"]] = item
            continue
        if step.tool_call_id is not None:
            item.approvals = [a for a in approvals if a.tool_call_id == step.tool_call_id]
            placed.add(step.tool_call_id)
        parent = asked.get(step.tool_call_id or "")
        (parent.children if parent is not None else roots).append(item)
    for approval in approvals:
        if approval.tool_call_id in placed:
            continue
        owner = asked.get(approval.tool_call_id) or (roots[-1] if roots else None)
        if owner is not None:
            owner.waiting.append(approval)
    return roots


@dataclass
class SpanNode:
    """A span of the run's trace, placed on a timeline from the first span's start to the last's end."""

    span: SpanRecord
    offset_pct: float
    width_pct: float
    children: list[SpanNode] = field(default_factory=list)


def span_tree(spans: list[SpanRecord]) -> list[SpanNode]:
    """The trace as a tree (spans whose parent is not stored become roots), children in start order."""
    if not spans:
        return []
    start = min(s.started_at for s in spans)
    total = max((max(s.ended_at for s in spans) - start).total_seconds(), 0.001)
    nodes = {
        s.span_id: SpanNode(
            s,
            round(max((s.started_at - start).total_seconds(), 0.0) / total * 100, 2),
            round(max(s.duration_ms / 1000 / total * 100, 0.5), 2),
        )
        for s in spans
    }
    roots: list[SpanNode] = []
    for span in spans:
        parent = nodes.get(span.parent_span_id or "")
        (parent.children if parent is not None and parent is not nodes[span.span_id] else roots).append(
            nodes[span.span_id]
        )
    return roots
