"""The event types a tenant can subscribe to, and what a subscription pattern may say.

New producers add their types here (rollout: `rollout.promoted`, `rollout.rolled_back`, ... in
`ROLLOUT_EVENTS`) and record them with `store.webhooks.record_event` inside the transaction of
the change they report; nothing else needs to change for them to be delivered.
"""

from __future__ import annotations

RUN_EVENTS = (
    "run.succeeded",
    "run.failed",
    "run.escalated",
    "run.cancelled",
    "run.budget_exhausted",
    "run.waiting_for_approval",
)
APPROVAL_EVENTS = ("approval.decided",)
INCIDENT_EVENTS = ("incident.opened",)
"""Recorded by the incidents room (issue #14 item 4) when it opens one."""
ALERT_EVENTS = ("alert.fired", "alert.resolved")
ROLLOUT_EVENTS: tuple[str, ...] = ("rollout.rolled_back",)
"""Recorded by rollout (`rollout/events.py`) for the operator tenant: deployments belong to no
tenant, so only operator-level endpoints receive them."""
TEST_EVENTS = ("webhook.test",)
"""Sent by `tether webhook test` / `POST /v1/webhooks/{id}/test` to one endpoint."""

EVENT_TYPES: tuple[str, ...] = (
    *RUN_EVENTS,
    *APPROVAL_EVENTS,
    *INCIDENT_EVENTS,
    *ALERT_EVENTS,
    *ROLLOUT_EVENTS,
    *TEST_EVENTS,
)
OPERATOR_ALERT_EVENTS: tuple[str, ...] = ("alert.*", "rollout.*")
"""What the operator-level endpoint of `TETHER_ALERT_WEBHOOK_URL` subscribes to: every tenant's
alert transitions and every rollout event (what that setting received before the outbox)."""
CALLBACK_EVENTS: tuple[str, ...] = RUN_EVENTS + APPROVAL_EVENTS
"""What a per-run callback URL (`POST /v1/runs` `callback_url`) receives: that run's events."""


def validate_patterns(patterns: list[str]) -> list[str]:
    """Subscription patterns: an event type, a family like `run.*`, or `*`; ValueError otherwise."""
    if not patterns:
        raise ValueError("subscribe to at least one event type (or `*` for all)")
    families = {event.split(".", 1)[0] + ".*" for event in EVENT_TYPES}
    unknown = [p for p in patterns if p != "*" and p not in families and p not in EVENT_TYPES]
    if unknown:
        raise ValueError(
            f"unknown event type(s) {', '.join(unknown)}; choose from *, {', '.join(sorted(families))}, "
            f"{', '.join(EVENT_TYPES)}"
        )
    return sorted(set(patterns))
