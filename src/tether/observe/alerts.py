"""Alert rules: evaluated against recent runs per tenant; transitions stored with their webhook events.

A rule fires when its metric over the last `window` crosses its threshold, and resolves when it no
longer does (including when too few runs remain to judge). Each firing episode is one row in
`alerts`; the database allows one open episode per rule and tenant, so several API processes
evaluating at once never fire the same alert twice. The transaction that stores a transition also
stores its `alert.fired` / `alert.resolved` event in the webhooks outbox (store/telemetry.py), so
tenants' endpoints and the operator's (`TETHER_ALERT_WEBHOOK_URL`) get it signed, with retries,
from the workers; nothing is POSTed from here.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import structlog

from tether.agent.config import AlertRule, BudgetAlert, ProjectConfig
from tether.observe.budget_alerts import budget_changes
from tether.observe.online_alerts import ONLINE_METRICS, measure_online
from tether.store.insights import RunStats
from tether.store.repository import Store, utc_now
from tether.store.telemetry import AlertRecord

log = structlog.get_logger("tether.alerts")

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^([1-9][0-9]{0,8})([smhd])$")
_RATES = {"completion_rate", "escalation_rate", "tool_error_rate"}


def default_rules(config: ProjectConfig) -> list[AlertRule]:
    """The rules a project gets when its tether.toml has no `alerts` key."""
    return [
        AlertRule(name="completion rate low", metric="completion_rate", below=0.85, min_runs=10),
        AlertRule(name="p95 latency high", metric="p95_latency_s", above=5.0, min_runs=10),
        AlertRule(name="tool error rate high", metric="tool_error_rate", above=0.05, min_runs=10),
        AlertRule(
            name="cost per run high",
            metric="cost_per_run_usd",
            above=round(config.limits.max_cost_usd_per_run * 0.8, 6),
            min_runs=5,
        ),
        AlertRule(
            name="safety incident", metric="safety_incidents", above=0, min_runs=0, severity="critical"
        ),
        # Silent until `[online_eval] sample_rate` produces scores (docs/online-evaluation.md).
        AlertRule(
            name="online score dropped", metric="online_score_drop", above=0.15, window="1h", min_runs=20
        ),
    ]


def rules_for(config: ProjectConfig) -> list[AlertRule]:
    return default_rules(config) if config.alerts is None else list(config.alerts)


def parse_duration(text: str) -> timedelta:
    """`90s`, `15m`, `1h`, `7d` -> a timedelta; ValueError for anything else."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 30s, 15m, 1h or 7d")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def window_of(rule: AlertRule) -> timedelta:
    return parse_duration(rule.window)


def measure(rule: AlertRule, stats: RunStats) -> float | None:
    """The rule's metric for one tenant's window; None when there is nothing to judge."""
    if rule.metric == "safety_incidents":  # any incident counts, however few runs there were
        return float(stats.safety_incidents)
    if stats.runs < rule.min_runs:
        return None
    value = {
        "completion_rate": stats.completion_rate,
        "escalation_rate": stats.escalation_rate,
        "tool_error_rate": stats.tool_error_rate,
        "cost_per_run_usd": stats.cost_per_run,
        "p95_latency_s": None if stats.p95_ms is None else stats.p95_ms / 1000,
    }[rule.metric]
    return value


def breached(rule: AlertRule, value: float | None) -> bool:
    if value is None:
        return False
    if rule.above is not None:
        return value > rule.above
    return rule.below is not None and value < rule.below


def describe(rule: AlertRule, value: float | None) -> str:
    threshold = f"above {rule.above:g}" if rule.above is not None else f"below {rule.below:g}"
    shown = "no data" if value is None else (f"{value:.1%}" if rule.metric in _RATES else f"{value:g}")
    return f"{rule.metric} over {rule.window} is {shown} (fires {threshold})"


@dataclass(frozen=True)
class Transition:
    state: Literal["firing", "resolved"]
    alert: AlertRecord

    def payload(self) -> dict[str, object]:
        return {"state": self.state, **self.alert.model_dump(mode="json")}


class AlertEvaluator:
    """Evaluates rules for every tenant with recent runs (and every tenant with an open alert)."""

    def __init__(
        self,
        store: Store,
        rules: list[AlertRule],
        *,
        budgets: list[BudgetAlert] | None = None,
        on_fire: Callable[[AlertRecord], Awaitable[object]] | None = None,
    ) -> None:
        self.store = store
        self.rules = rules
        self.budgets = budgets or []
        """`[[budget_alerts]]`: spend of a tenant or feature tag against its budget."""
        self.on_fire = on_fire
        """Told of every alert that starts firing (the API opens an incident for it)."""

    async def check(self, now: datetime | None = None) -> list[Transition]:
        """Evaluate once; store every transition (with its webhook event); return them."""
        if not self.rules and not self.budgets:
            return []
        now = now or utc_now()
        telemetry = self.store.telemetry
        longest = max((window_of(rule) for rule in self.rules), default=timedelta(0))
        open_alerts = {(a.tenant_id, a.rule): a for a in await telemetry.open_alerts()}
        budgets = {rule.name for rule in self.budgets}
        tenants = set(await telemetry.active_tenants(since=now - longest))
        tenants |= {tenant for tenant, rule in open_alerts if rule not in budgets}
        transitions: list[Transition] = [
            Transition("firing" if state == "firing" else "resolved", record)
            for state, record in await budget_changes(self.store, self.budgets, open_alerts, now)
        ]
        for tenant in sorted(tenants):
            windows: dict[timedelta, RunStats] = {}
            for rule in self.rules:
                span = window_of(rule)
                if span not in windows:
                    stats = await self.store.insights.run_stats(tenant_id=tenant, since=now - span, until=now)
                    windows[span] = stats.get(tenant, RunStats(key=tenant))
                value = (
                    await measure_online(self.store, rule, tenant, span, now)
                    if rule.metric in ONLINE_METRICS
                    else measure(rule, windows[span])
                )
                firing = breached(rule, value)
                current = open_alerts.get((tenant, rule.name))
                if firing and current is None:
                    record = await telemetry.fire_alert(
                        alert_id=f"alr_{uuid.uuid4().hex}",
                        rule=rule.name,
                        tenant_id=tenant,
                        severity=rule.severity,
                        metric=rule.metric,
                        value=value,
                        threshold=rule.above if rule.above is not None else float(rule.below or 0.0),
                        message=describe(rule, value),
                    )
                    if record is not None:
                        transitions.append(Transition("firing", record))
                elif not firing and current is not None:
                    record = await telemetry.resolve_alert(
                        current.id, value=value, message=describe(rule, value)
                    )
                    if record is not None:
                        transitions.append(Transition("resolved", record))
        for transition in transitions:
            log.warning(
                f"alert {transition.state}",
                alert=transition.alert.rule,
                tenant=transition.alert.tenant_id,
                severity=transition.alert.severity,
                value=transition.alert.value,
                detail=transition.alert.message,
            )
            if transition.state == "firing" and self.on_fire is not None:
                try:
                    await self.on_fire(transition.alert)
                except Exception:  # the alert is stored and sent; its hook must not stop evaluation
                    log.exception("alert hook failed", alert=transition.alert.rule)
        return transitions

    async def run_forever(self, interval_s: float) -> None:
        """The service's evaluation loop; an error in one round is logged and the next round runs."""
        while True:
            try:
                await self.check()
            except Exception:
                log.exception("alert evaluation failed")
            await asyncio.sleep(interval_s)
