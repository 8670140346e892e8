"""Prometheus metrics: counters the run loop increments in-process, gauges read from the database.

Counters and histograms describe what *this process* did (sum them across instances in PromQL).
Gauges such as queue depth describe the whole deployment and are computed from the database at
scrape time, so every node reports the same, correct number (take `max` across instances).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tether.observe.cost_metrics import CostMetrics
from tether.runtime.builtins import ESCALATE
from tether.store.records import ReleaseRecord, RunStatus
from tether.store.telemetry import OpsSnapshot, TelemetryStore

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_MODEL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120)
_TOOL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_WAIT_BUCKETS = (1, 5, 15, 30, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 24 * 3600, 3 * 24 * 3600)
_STEP_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 50)
_FINAL = sorted(str(status) for status in RunStatus if status.is_final)


class Metrics:
    """Every metric Tether exposes, in one registry of its own (so tests and apps never collide)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._prepared: set[str] = set()
        self._lock = threading.Lock()
        r = self.registry
        self.runs_started = Counter(
            "tether_runs_started", "Runs claimed for the first time, by release.", ["release"], registry=r
        )
        self.runs_finished = Counter(
            "tether_runs_finished",
            "Runs that reached a final status, by release and status.",
            ["release", "status"],
            registry=r,
        )
        self.escalations = Counter(
            "tether_escalations",
            "Runs handed to a human (status escalated), by release.",
            ["release"],
            registry=r,
        )
        self.refusals = Counter(
            "tether_tool_refusals",
            "Tool calls decided without running the tool (unknown, invalid, switched off, rejected).",
            ["release", "tool"],
            registry=r,
        )
        self.steps_per_run = Histogram(
            "tether_run_steps",
            "Steps used by each finished run.",
            ["release"],
            buckets=_STEP_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "tether_model_tokens",
            "Tokens reported by models, by release, model reference and type (input/output).",
            ["release", "model", "type"],
            registry=r,
        )
        self.cost = Counter(
            "tether_model_cost_usd",
            "Model spend in USD, by release and model reference.",
            ["release", "model"],
            registry=r,
        )
        self.model_latency = Histogram(
            "tether_model_latency_seconds",
            "Model call latency (retries and fallbacks included), by model and outcome.",
            ["model", "outcome"],
            buckets=_MODEL_BUCKETS,
            registry=r,
        )
        self.tool_calls = Counter(
            "tether_tool_calls",
            "Tool calls by tool and status (succeeded, failed, refused).",
            ["tool", "status"],
            registry=r,
        )
        self.tool_errors = Counter(
            "tether_tool_errors", "Tool executions that raised or timed out, by tool.", ["tool"], registry=r
        )
        self.tool_latency = Histogram(
            "tether_tool_latency_seconds",
            "Tool execution latency (retries included), by tool and status.",
            ["tool", "status"],
            buckets=_TOOL_BUCKETS,
            registry=r,
        )
        self.guardrail_triggers = Counter(
            "tether_guardrail_triggers",
            "Guardrail decisions other than allow, by guardrail, stage and decision.",
            ["guardrail", "stage", "decision"],
            registry=r,
        )
        self.approvals_requested = Counter(
            "tether_approvals_requested",
            "Runs parked for a human decision, by kind and tool.",
            ["kind", "tool"],
            registry=r,
        )
        self.approval_wait = Histogram(
            "tether_approval_wait_seconds",
            "Time from an approval request to its decision, by kind and decision.",
            ["kind", "decision"],
            buckets=_WAIT_BUCKETS,
            registry=r,
        )

        self.costs = CostMetrics(r)
        """Spend by tenant, tier and tag; cache hits and savings (observe/cost_metrics.py)."""

    def prepare(self, release: ReleaseRecord) -> None:
        """Create the release's known series at zero, once per process.

        A labelled series otherwise appears at its first increment, and `rate()`/`increase()` need
        two samples: the first failure, refusal or approval an alert watches for would read as 0.
        Called at start-up for the release the API serves and at the first claim of any other.
        """
        version = release.version
        with self._lock:
            if version in self._prepared:
                return
            self._prepared.add(version)
        config: dict[str, Any] = release.snapshot.get("config", {})
        model = config.get("model", {})
        models = [str(model["primary"]), *map(str, model.get("fallbacks", []))] if "primary" in model else []
        enabled = config.get("agent", {}).get("enabled_tools")
        tools = [t for t in release.snapshot.get("tools", []) if enabled is None or t.get("name") in enabled]
        self.runs_started.labels(version)
        self.escalations.labels(version)
        self.steps_per_run.labels(version)
        for status in _FINAL:
            self.runs_finished.labels(version, status)
        for reference in models:
            self.cost.labels(version, reference)
            for kind in ("input", "output"):
                self.tokens.labels(version, reference, kind)
            for outcome in ("ok", "error"):
                self.model_latency.labels(reference, outcome)
        self.costs.prepare(version)
        self.tool_calls.labels(ESCALATE, "handed_off")
        for tool in tools:
            name = str(tool.get("name"))
            self.refusals.labels(version, name)
            self.tool_errors.labels(name)
            for status in ("succeeded", "failed", "refused"):
                self.tool_calls.labels(name, status)
            for status in ("succeeded", "failed"):
                self.tool_latency.labels(name, status)
            gated = tool.get("requires_approval") or tool.get("side_effect") == "write"
            kinds = ["gate"] if gated else []
            if tool.get("side_effect") == "write" and not tool.get("idempotent"):
                kinds.append("retry")  # an interrupted write that is not idempotent waits for a human
            for kind in kinds:
                self.approvals_requested.labels(kind, name)
                for decision in ("approved", "rejected"):
                    self.approval_wait.labels(kind, decision)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class DatabaseGauges(Collector):
    """Deployment-wide gauges; `refresh` reads the database, then a scrape renders that snapshot."""

    def __init__(self, telemetry: TelemetryStore) -> None:
        self._telemetry = telemetry
        self._snapshot: OpsSnapshot | None = None
        self._taken_at: datetime | None = None

    async def refresh(self, now: datetime) -> None:
        self._snapshot = await self._telemetry.ops_snapshot()
        self._taken_at = now

    def collect(self) -> Iterator[Metric]:
        snapshot, now = self._snapshot, self._taken_at
        if snapshot is None or now is None:
            return
        queue = GaugeMetricFamily("tether_queue_depth", "Runs queued and not yet claimed by any worker.")
        queue.add_metric([], snapshot.runs_by_status.get("queued", 0))
        yield queue
        active = GaugeMetricFamily(
            "tether_runs_in_progress",
            "Runs not final yet, by status (queued, running, waiting_for_approval).",
            labels=["status"],
        )
        for status in ("queued", "running", "waiting_for_approval"):
            active.add_metric([status], snapshot.runs_by_status.get(status, 0))
        yield active
        pending = GaugeMetricFamily("tether_approvals_pending", "Approvals waiting for a human decision.")
        pending.add_metric([], snapshot.approvals_pending)
        yield pending
        oldest = GaugeMetricFamily(
            "tether_approval_oldest_pending_age_seconds", "Age of the oldest pending approval (0 when none)."
        )
        age = (
            (now - snapshot.oldest_pending_approval).total_seconds()
            if snapshot.oldest_pending_approval
            else 0.0
        )
        oldest.add_metric([], max(age, 0.0))
        yield oldest
        workers = GaugeMetricFamily(
            "tether_workers", "Worker processes that have not stopped (see heartbeat age)."
        )
        workers.add_metric([], len(snapshot.workers))
        yield workers
        beats = GaugeMetricFamily(
            "tether_worker_heartbeat_age_seconds",
            "Seconds since each running worker's last heartbeat.",
            labels=["worker"],
        )
        for beat in snapshot.workers:
            beats.add_metric([beat.worker_id], max((now - beat.heartbeat_at).total_seconds(), 0.0))
        yield beats
        feedback = CounterMetricFamily(
            "tether_feedback",
            "Feedback given on runs, by release and score (1 or -1).",
            labels=["release", "score"],
        )
        totals: dict[str, list[int]] = {}
        for release, score, count in snapshot.feedback:
            feedback.add_metric([release, str(score)], count)
            entry = totals.setdefault(release, [0, 0])
            entry[0] += score * count
            entry[1] += count
        yield feedback
        mean = GaugeMetricFamily(
            "tether_feedback_score_mean", "Mean feedback score per release (-1 to 1).", labels=["release"]
        )
        for release, (total, count) in totals.items():
            mean.add_metric([release], total / count)
        yield mean
