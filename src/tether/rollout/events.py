"""Rollbacks told to the outside: the alert webhook, and in-process subscribers such as incidents.

`on_rollback(callback)` is the one subscription point: the incidents room registers a callback that
opens an incident from the event's evidence. A failing subscriber or webhook is logged and never
undoes the rollback, which is already committed when they are told.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import httpx

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
        data = asdict(self)
        data["at"] = self.at.isoformat()
        return {"kind": "rollout.rollback", **data}


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


async def announce_rollback(event: RollbackEvent, *, webhook_url: str | None) -> None:
    for hook in list(_HOOKS):
        try:
            await hook(event)
        except Exception:
            log.exception("a rollback subscriber failed for %s", event.agent_name)
    if not webhook_url:
        return
    try:
        async with httpx.AsyncClient(timeout=10.0) as client:
            response = await client.post(webhook_url, json=event.payload())
            response.raise_for_status()
    except httpx.HTTPError as exc:
        log.warning("rollback alert webhook failed: %s", exc)
