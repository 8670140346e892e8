"""Rollbacks told to the outside: a `rollout.rolled_back` webhook event, and in-process subscribers.

`on_rollback(callback)` is the one subscription point: the incidents room registers a callback that
opens an incident from the event's evidence. The webhook event goes into the outbox for the
operator tenant (deployments belong to no tenant), so operator-level endpoints, among them the one
`TETHER_ALERT_WEBHOOK_URL` names, get it signed and retried from the workers. It is recorded right
after the rollback commits, not in its transaction: a process that dies in between loses the event
(the rollback stands, and its incident and deployment history record it). A failing subscriber or
outbox write is logged and never undoes the rollback.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from tether.store.repository import Store
from tether.store.webhooks import OPERATOR_TENANT

log = logging.getLogger("tether.rollout")


@dataclass(frozen=True)
class RollbackEvent:
    agent_name: str
    revision: int
    from_release: str | None
    to_release: str | None
    actor: str
    reason: str
    evidence: dict[str, Any]
    at: datetime

    def payload(self) -> dict[str, Any]:
        """The event's `data`: what rolled back, from which release to which, who, why, evidence."""
        data = asdict(self)
        data["at"] = self.at.isoformat()
        return data


ROLLED_BACK = "rollout.rolled_back"
"""Its webhook event type (listed in `tether.webhooks.events.ROLLOUT_EVENTS`)."""

RollbackHook = Callable[[RollbackEvent], Awaitable[None]]
_HOOKS: list[RollbackHook] = []


def on_rollback(callback: RollbackHook) -> RollbackHook:
    """Call `callback` after every rollback committed in this process (usable as a decorator)."""
    if callback not in _HOOKS:
        _HOOKS.append(callback)
    return callback


def remove_rollback_hook(callback: RollbackHook) -> None:
    if callback in _HOOKS:
        _HOOKS.remove(callback)


async def announce_rollback(event: RollbackEvent, *, store: Store) -> None:
    """Record the webhook event, then tell the in-process subscribers."""
    try:
        await store.webhooks.publish(type=ROLLED_BACK, tenant_id=OPERATOR_TENANT, data=event.payload())
    except Exception:
        log.exception("the rollback of %s could not be recorded as a webhook event", event.agent_name)
    for hook in list(_HOOKS):
        try:
            await hook(event)
        except Exception:
            log.exception("a rollback subscriber failed for %s", event.agent_name)
