"""The rollout page: stages and weights, the canary against stable as charts, and the buttons
(promote, pause, abort, rollback) that make the same changes as `tether rollout` and `/v1/rollout`.

Every button is a POST behind the session's CSRF token and the operator scope; the change itself is
the audit log (a new deployment revision naming the operator and the reason).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from tether.api.deps import ServiceState, State
from tether.rollout.service import GateRefusedError, Rollout
from tether.rollout.views import status
from tether.store.deployments import RunOutcome
from tether.store.records import PRODUCTION_ORIGINS
from tether.store.repository import ConflictError
from tether.ui.auth import PageError, checked_form, needs
from tether.ui.pages import render
from tether.ui.session import Session

router = APIRouter(prefix="/ui", include_in_schema=False)
Operator = Annotated[Session, Depends(needs("operator"))]
_BUCKETS = 12
ACTIONS = ("promote", "pause", "resume", "abort", "rollback")


def _rollout(state: ServiceState) -> Rollout:
    if state.rollout is None:
        raise PageError(409, "Rollout unavailable", "This process does not serve rollout.")
    return state.rollout


def _bucketed(outcomes: list[RunOutcome], start: datetime, end: datetime) -> list[list[RunOutcome]]:
    span = max((end - start).total_seconds(), 1.0)
    buckets: list[list[RunOutcome]] = [[] for _ in range(_BUCKETS)]
    for o in outcomes:
        index = min(int((o.created_at - start).total_seconds() / span * _BUCKETS), _BUCKETS - 1)
        buckets[max(index, 0)].append(o)
    return buckets


def _p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def _rate(runs: list[RunOutcome], statuses: tuple[str, ...]) -> float | None:
    return round(100 * sum(o.status in statuses for o in runs) / len(runs), 2) if runs else None


async def _series(state: ServiceState, data: dict[str, Any]) -> dict[str, Any] | None:
    """Canary and stable over the canary's life, per time bucket, for the uPlot charts."""
    canary = data.get("canary")
    live = next((e for e in data["entries"] if e["stage"] == "live"), None)
    if not canary or live is None:
        return None
    start = datetime.fromisoformat(canary["started_at"])
    outcomes = await state.store.deployments.outcomes(
        [canary["release_id"], live["release_id"]], since=start, origins=[str(o) for o in PRODUCTION_ORIGINS]
    )
    end = max((o.created_at for o in outcomes), default=start)
    series: dict[str, list[Any]] = {"x": []}
    names = ("error_c", "error_s", "escalation_c", "escalation_s", "p95_c", "p95_s", "cost_c", "cost_s")
    for name in names:
        series[name] = []
    mine = _bucketed([o for o in outcomes if o.release_id == canary["release_id"]], start, end)
    theirs = _bucketed([o for o in outcomes if o.release_id == live["release_id"]], start, end)
    span = max((end - start).total_seconds(), 1.0)
    for index in range(_BUCKETS):
        series["x"].append(start.timestamp() + span * index / _BUCKETS)
        for suffix, runs in (("c", mine[index]), ("s", theirs[index])):
            series[f"error_{suffix}"].append(_rate(runs, ("failed", "budget_exhausted")))
            series[f"escalation_{suffix}"].append(_rate(runs, ("escalated",)))
            series[f"p95_{suffix}"].append(_p95([o.latency_ms for o in runs if o.latency_ms is not None]))
            cost = [o.cost_usd for o in runs]
            series[f"cost_{suffix}"].append(round(sum(cost) / len(cost), 6) if cost else None)
    return series


@router.get("/rollout", response_class=HTMLResponse)
async def rollout_page(
    request: Request, state: State, session: Operator, done: str | None = None
) -> HTMLResponse:
    data = await status(_rollout(state), state.release.agent_name, history=20)
    context = {"data": data, "series": await _series(state, data), "done": done if done in ACTIONS else None}
    return render(request, "rollout.html", context, session=session)


@router.post("/rollout/{action}")
async def rollout_action(action: str, request: Request, state: State, session: Operator) -> Response:
    form = await checked_form(request, session)
    if action not in ACTIONS:
        raise PageError(404, "No such action", f"Choose one of {', '.join(ACTIONS)}.")
    reason = str(form.get("reason") or "").strip()
    if len(reason) > 2000:
        raise PageError(400, "Reason too long", "Keep the reason under 2000 characters.")
    if action in ("abort", "rollback") and not reason:
        raise PageError(400, "Reason needed", "Say why: the audit log and the alert carry it.")
    rollout = _rollout(state)
    agent = state.release.agent_name
    actor = f"{session.caller.user_id} (key {session.caller.key_id}, dashboard)"
    try:
        if action == "promote":
            await rollout.promote(agent, actor=actor, reason=reason)
        elif action in ("pause", "resume"):
            await rollout.pause(agent, paused=action == "pause", actor=actor, reason=reason)
        elif action == "abort":
            await rollout.abort(agent, actor=actor, reason=reason)
        else:
            await rollout.rollback(agent, actor=actor, reason=reason)
    except (GateRefusedError, ConflictError, ValueError) as exc:
        raise PageError(409, "Not possible now", str(exc)) from None
    return RedirectResponse(f"/ui/rollout?done={action}", status_code=303)
