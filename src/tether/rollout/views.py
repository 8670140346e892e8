"""What `status` and `report` show, built once for the CLI, the HTTP API and the dashboard alike."""

from __future__ import annotations

from typing import Any

from tether.rollout.controller import CanaryController
from tether.rollout.deployment import Deployment, Stage
from tether.rollout.report import Report, compare
from tether.rollout.service import Rollout
from tether.store.records import PRODUCTION_ORIGINS, RunOrigin


async def status(rollout: Rollout, agent_name: str, *, history: int = 20) -> dict[str, Any]:
    """The stored deployment, the canary's latest analysis (when one runs), and the audit log."""
    deployment = await rollout.fresh(agent_name)
    data: dict[str, Any] = {
        "agent": agent_name,
        "revision": deployment.revision,
        **deployment.to_state(),
        "analysis": None,
    }
    canary = deployment.canary
    if canary is not None:
        data["canary"]["weight"] = canary.weight
        data["canary"]["step_of"] = len(canary.plan.steps)
        if deployment.live is not None:
            decision = await CanaryController(rollout, owner="status").look(deployment)
            data["analysis"] = {
                "decision": decision.action,
                "reason": decision.reason,
                **decision.analysis.evidence(),
            }
    data["history"] = [
        {
            "revision": r.revision,
            "action": r.action,
            "actor": r.actor,
            "reason": r.reason,
            "override": bool((r.evidence or {}).get("override")),
            "evidence": r.evidence,
            "at": r.created_at.isoformat(),
        }
        for r in await rollout.history(agent_name, limit=history)
    ]
    return data


async def report(rollout: Rollout, agent_name: str, *, against: str = "shadow", limit: int = 5000) -> Report:
    """Shadow vs live (`against="shadow"`) or canary vs live (`"canary"`) on the gate's measures."""
    deployment = await rollout.fresh(agent_name)
    live = deployment.live
    if live is None:
        raise ValueError(f"{agent_name} has no live release to compare with")
    candidate = _candidate(deployment, against)
    store = rollout.store
    if against == "shadow":
        mine = await store.deployments.outcomes([candidate], origins=[str(RunOrigin.SHADOW)], limit=limit)
        since = min((o.created_at for o in mine), default=None)
    else:
        since = deployment.canary.started_at if deployment.canary else None
        mine = await store.deployments.outcomes(
            [candidate], since=since, origins=[str(o) for o in PRODUCTION_ORIGINS], limit=limit
        )
    theirs = await store.deployments.outcomes(
        [live.release_id], since=since, origins=[str(o) for o in PRODUCTION_ORIGINS], limit=limit
    )
    name = (await store.get_release(candidate)).version
    return compare(name, mine, live.version, theirs)


def _candidate(deployment: Deployment, against: str) -> str:
    if against == "shadow":
        entry = deployment.with_stage(Stage.SHADOW)
        if entry is None:
            raise ValueError(
                f"{deployment.agent_name} has no shadow release; `tether rollout start R --stage shadow`"
            )
        return entry.release_id
    if against == "canary":
        if deployment.canary is None:
            raise ValueError(f"{deployment.agent_name} has no canary in progress")
        return deployment.canary.release_id
    raise ValueError(f"compare against shadow or canary, not {against!r}")
