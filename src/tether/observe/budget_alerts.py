"""Budget alerts: a tenant's or feature tag's spend reaching a share of its budget (issue 16).

Evaluated with the other alert rules (observe/alerts.py), stored as the same alert episodes (one
open episode per rule and tenant), so they reach the same webhook and dashboard.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from tether.agent.config import BudgetAlert
from tether.store.repository import Store
from tether.store.telemetry import AlertRecord

ANY_TENANT = "*"


def _window(rule: BudgetAlert) -> timedelta:
    from tether.observe.alerts import parse_duration

    return parse_duration(rule.window)


def describe(rule: BudgetAlert, spent: float) -> str:
    who = " ".join(
        part
        for part in (f"tenant {rule.tenant}" if rule.tenant else "", f"tag {rule.tag}" if rule.tag else "")
        if part
    )
    share = spent / rule.budget_usd
    return (
        f"{who} spent ${spent:.4f} over {rule.window}: {share:.0%} of its ${rule.budget_usd:g} budget "
        f"(fires at {rule.at:.0%})"
    )


async def budget_changes(
    store: Store, rules: list[BudgetAlert], open_alerts: dict[tuple[str, str], AlertRecord], now: datetime
) -> list[tuple[str, AlertRecord]]:
    """Fire or resolve each budget rule; the (state, alert) transitions."""
    changes: list[tuple[str, AlertRecord]] = []
    for rule in rules:
        tenant = rule.tenant or ANY_TENANT
        spent = await store.costs.spent(since=now - _window(rule), tenant_id=rule.tenant, tag=rule.tag)
        firing = spent >= rule.at * rule.budget_usd
        current = open_alerts.get((tenant, rule.name))
        if firing and current is None:
            record = await store.telemetry.fire_alert(
                alert_id=f"alr_{uuid.uuid4().hex}",
                rule=rule.name,
                tenant_id=tenant,
                severity=rule.severity,
                metric="budget_share",
                value=spent / rule.budget_usd,
                threshold=rule.at,
                message=describe(rule, spent),
            )
            if record is not None:
                changes.append(("firing", record))
        elif not firing and current is not None:
            record = await store.telemetry.resolve_alert(
                current.id, value=spent / rule.budget_usd, message=describe(rule, spent)
            )
            if record is not None:
                changes.append(("resolved", record))
    return changes
