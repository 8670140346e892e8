"""The canary controller: looks at every canary in progress, rolls it back, moves it on, or waits.

It runs as a background task in every API process and worker, but only the holder of the
`canary-analysis` lease acts, so two processes never advance the same canary twice. The decision
itself is `rollout/decision.py`, pure, which the drills replay on simulated traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime

from tether.rollout.analysis import analyze
from tether.rollout.decision import Decision, decide
from tether.rollout.deployment import Deployment
from tether.rollout.releases import snapshot_of
from tether.rollout.service import Rollout
from tether.store.deployments import RunOutcome
from tether.store.records import PRODUCTION_ORIGINS

log = logging.getLogger("tether.rollout")
LEASE = "canary-analysis"


class CanaryController:
    def __init__(self, rollout: Rollout, *, owner: str, lease_s: float = 30.0) -> None:
        self.rollout = rollout
        self.owner = owner
        self.lease_s = lease_s

    async def tick(self) -> list[tuple[str, Decision]]:
        """One look at every canary (nothing when another process holds the lease)."""
        store = self.rollout.store
        if not await store.deployments.claim_lease(LEASE, self.owner, self.lease_s):
            return []
        decided: list[tuple[str, Decision]] = []
        for record in await store.deployments.all_latest():
            deployment = Deployment.from_state(record.agent_name, record.revision, record.state)
            if deployment.canary is None or deployment.canary.paused or deployment.live is None:
                continue
            decision = await self.look(deployment)
            decided.append((deployment.agent_name, decision))
            await self.act(deployment, decision)
        return decided

    async def look(self, deployment: Deployment) -> Decision:
        canary, live = deployment.canary, deployment.live
        assert canary is not None and live is not None
        store = self.rollout.store
        release = await store.get_release(canary.release_id)
        settings = snapshot_of(release).parsed_config().rollout
        outcomes = await store.deployments.outcomes(
            [canary.release_id, live.release_id],
            since=canary.started_at,
            origins=[str(o) for o in PRODUCTION_ORIGINS],
        )
        canary_runs = [o for o in outcomes if o.release_id == canary.release_id]
        stable_runs = [o for o in outcomes if o.release_id == live.release_id]
        analysis = analyze(canary_runs, stable_runs, settings.rollback_on, alpha=settings.alpha)
        return decide(
            deployment,
            analysis,
            step_runs=_since(canary_runs, canary.step_started_at),
            now=self.rollout.now(),
        )

    async def act(self, deployment: Deployment, decision: Decision) -> None:
        evidence = {"decision": decision.reason, **decision.analysis.evidence()}
        if decision.action == "rollback":
            log.warning("rolling back the canary of %s: %s", deployment.agent_name, decision.reason)
            await self.rollout.rollback(
                deployment.agent_name, actor="canary-controller", reason=decision.reason, evidence=evidence
            )
        elif decision.action == "advance":
            await self.rollout.advance(
                deployment.agent_name, actor="canary-controller", reason=decision.reason, evidence=evidence
            )

    async def run_forever(self, interval_s: float) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database is away or a canary cannot be read: look again later
                log.exception("canary analysis failed; trying again in %.0fs", interval_s)
            await asyncio.sleep(interval_s)


def _since(outcomes: list[RunOutcome], moment: datetime) -> int:
    return sum(1 for o in outcomes if o.created_at >= moment)


@contextlib.asynccontextmanager
async def running(rollout: Rollout, *, owner: str, interval_s: float) -> AsyncIterator[asyncio.Task[None]]:
    """The controller as a background task for the life of a service process."""
    task = asyncio.create_task(CanaryController(rollout, owner=owner).run_forever(interval_s))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


__all__ = ["LEASE", "CanaryController", "Decision", "decide", "running"]
