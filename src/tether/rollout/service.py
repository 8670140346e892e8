"""Rollout in a running process: the live deployment snapshot, release choice per run, and changes.

One `Rollout` per process (API, worker, CLI command). Reads come from the live snapshot (topic
`deployment`), so choosing a release costs no database statement; changes are stored as the next
deployment revision (with the live revision bump in the same transaction) and announced with
`LiveConfig.changed`, so every process follows within the live mechanism's bound.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from tether.live import LiveConfig, LiveValue
from tether.rollout import changes
from tether.rollout.assign import Assignment, ExperimentClaims, Pin, assign, shadow_sampled
from tether.rollout.deployment import EMPTY, TRAFFIC_STAGES, Deployment, Deployments, Plan, Stage
from tether.rollout.events import RollbackEvent, announce_rollback
from tether.rollout.releases import snapshot_of
from tether.store.deployments import TOPIC, DeploymentRevisionRecord, StaleRevisionError
from tether.store.records import ReleaseRecord
from tether.store.repository import ConflictError, Store

log = logging.getLogger("tether.rollout")


class GateRefusedError(ValueError):
    """The release has no passing gate verdict and no override was given."""


@dataclass(frozen=True)
class Choice:
    """The release a new run gets, and the assignment to store on it (None: the fallback release)."""

    release: ReleaseRecord
    assignment: Assignment | None


async def load_deployments(store: Store) -> Deployments:
    """The whole `deployment` snapshot: every agent's newest revision."""
    records = await store.deployments.all_latest()
    loaded = Deployments(tuple(Deployment.from_state(r.agent_name, r.revision, r.state) for r in records))
    # One line per reload (only when a revision moved): when each process started following a change.
    revisions = ", ".join(f"{d.agent_name}={d.revision}" for d in loaded.by_agent)
    log.info("deployment snapshot loaded: %s", revisions or "none", extra={"deployments": revisions})
    return loaded


def register(live: LiveConfig) -> LiveValue[Deployments]:
    """Keep this process's deployment snapshot fresh (called where the process wires its rooms)."""
    existing = live.get(TOPIC)
    if existing is not None:
        return existing
    return live.register(TOPIC, load_deployments, EMPTY)


class Rollout:
    def __init__(
        self,
        store: Store,
        live: LiveConfig,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        self.live = live
        self.value = register(live)
        self.experiments: ExperimentClaims | None = None
        """EXPERIMENT HOOK: set by the experiments room to a snapshot that may claim live users."""
        self.now: Callable[[], datetime] = clock or store.now
        """The rollout's clock: the store's by default, so step times and run times agree."""

    # -- reading --------------------------------------------------------------------------------

    def current(self, agent_name: str) -> Deployment | None:
        """The deployment as this process sees it now (no I/O)."""
        return self.value.current.get(agent_name)

    async def fresh(self, agent_name: str) -> Deployment:
        """The deployment as stored (revision 0 and empty when it was never set), for changes."""
        record = await self.store.deployments.latest(agent_name)
        if record is None:
            return Deployment(agent_name=agent_name, revision=0, salt=agent_name)
        return Deployment.from_state(agent_name, record.revision, record.state)

    async def history(self, agent_name: str, limit: int = 50) -> list[DeploymentRevisionRecord]:
        return await self.store.deployments.history(agent_name, limit=limit)

    async def choose(
        self, fallback: ReleaseRecord, *, tenant: str, user: str, pin: Pin | None = None
    ) -> Choice:
        """The release for a new run of `fallback`'s agent: the deployment's choice, else `fallback`."""
        assignment = assign(
            self.current(fallback.agent_name), self.experiments, tenant=tenant, user=user, pin=pin
        )
        if assignment is None:
            return Choice(fallback, None)
        return Choice(await self.store.get_release(assignment.release_id), assignment)

    async def shadow_for(
        self, live_run_release: ReleaseRecord, run_id: str, stage: str | None
    ) -> ReleaseRecord | None:
        """The shadow release a copy of this run goes to, if the run is live traffic in the sample."""
        if stage != "live":
            return None
        deployment = self.current(live_run_release.agent_name)
        entry = shadow_sampled(deployment, run_id) if deployment is not None else None
        return None if entry is None else await self.store.get_release(entry.release_id)

    # -- changing -------------------------------------------------------------------------------

    async def _commit(
        self,
        before: Deployment,
        after: Deployment,
        *,
        action: str,
        actor: str,
        reason: str,
        evidence: dict[str, object] | None = None,
    ) -> Deployment:
        try:
            record = await self.store.deployments.append(
                before.agent_name,
                expected_revision=before.revision,
                action=action,
                actor=actor,
                reason=reason,
                state=after.to_state(),
                evidence=evidence,
            )
        except StaleRevisionError as exc:
            raise ConflictError(str(exc)) from None
        await self.live.changed(TOPIC)
        log.info(
            "deployment of %s is now revision %d (%s by %s: %s)",
            before.agent_name,
            record.revision,
            action,
            actor,
            reason,
        )
        return after.evolve(revision=record.revision)

    async def _gate(self, release: ReleaseRecord, *, override: bool, reason: str) -> dict[str, object]:
        """Evidence that `release` may take traffic: a passing verdict, or an explained override."""
        verdict = await self.store.latest_gate_verdict(release.id)
        if verdict is not None and verdict.passed:
            return {"gate": {"verdict_id": verdict.id, "passed": True}}
        state = "failed" if verdict is not None else "has no verdict"
        if not override:
            raise GateRefusedError(
                f"{release.version}'s gate {state}; run `tether eval run` and `tether gate` for it, or "
                "pass --override with --reason to take the risk on the record"
            )
        if not reason.strip():
            raise GateRefusedError("--override needs a --reason, which is kept in the audit log")
        return {"gate": {"verdict_id": verdict.id if verdict else None, "passed": False}, "override": True}

    async def switch(self, version: str, *, actor: str, reason: str, override: bool = False) -> Deployment:
        """Blue-green: all traffic to `version` now."""
        release = await self.store.get_release(version)
        evidence = await self._gate(release, override=override, reason=reason)
        before = await self.fresh(release.agent_name)
        before = _configured(before, release) if before.revision == 0 else before
        after = changes.switch(before, release.id, release.version)
        return await self._commit(
            before,
            after,
            action="switch",
            actor=actor,
            reason=reason or f"switch to {version}",
            evidence=evidence,
        )

    async def start(
        self,
        version: str,
        *,
        stage: Stage,
        actor: str,
        reason: str,
        override: bool = False,
        plan: Plan | None = None,
        share: float | None = None,
        internal_users: frozenset[str] | None = None,
        internal_tenants: frozenset[str] | None = None,
    ) -> Deployment:
        """Put `version` in `stage`: a canary (plan from its `[rollout]`), shadow, internal or live."""
        release = await self.store.get_release(version)
        settings = snapshot_of(release).parsed_config().rollout
        evidence: dict[str, object] | None = None
        if stage in TRAFFIC_STAGES:
            evidence = await self._gate(release, override=override, reason=reason)
        before = await self.fresh(release.agent_name)
        if stage == Stage.LIVE:
            return await self.switch(version, actor=actor, reason=reason, override=override)
        if stage == Stage.CANARY:
            chosen = plan or Plan(tuple(settings.steps), settings.min_runs, settings.min_minutes * 60)
            after = changes.start_canary(before, release.id, release.version, chosen, now=self.now())
        elif stage == Stage.SHADOW:
            after = changes.set_shadow(
                before, release.id, release.version, settings.shadow_share if share is None else share
            )
        elif stage == Stage.INTERNAL:
            users = internal_users if internal_users is not None else frozenset(settings.internal_users)
            tenants = (
                internal_tenants if internal_tenants is not None else frozenset(settings.internal_tenants)
            )
            if not users and not tenants:
                raise ValueError(
                    "the internal stage needs internal users or tenants ([rollout] or --internal-user)"
                )
            after = changes.set_internal(before, release.id, release.version, users, tenants)
        else:
            raise ValueError(f"cannot start a release in stage {stage}")
        return await self._commit(
            before,
            after,
            action=f"start_{stage}",
            actor=actor,
            reason=reason or f"{version} to {stage}",
            evidence=evidence,
        )

    async def promote(self, agent_name: str, *, actor: str, reason: str) -> Deployment:
        before = await self.fresh(agent_name)
        return await self._commit(
            before, changes.promote(before), action="promote", actor=actor, reason=reason or "promoted"
        )

    async def advance(
        self, agent_name: str, *, actor: str, reason: str, evidence: dict[str, object]
    ) -> Deployment:
        before = await self.fresh(agent_name)
        after = changes.advance(before, now=self.now())
        action = "promote" if after.canary is None else "advance"
        return await self._commit(before, after, action=action, actor=actor, reason=reason, evidence=evidence)

    async def pause(self, agent_name: str, *, paused: bool, actor: str, reason: str) -> Deployment:
        before = await self.fresh(agent_name)
        after = changes.pause(before, paused=paused)
        action = "pause" if paused else "resume"
        return await self._commit(before, after, action=action, actor=actor, reason=reason or action)

    async def abort(self, agent_name: str, *, actor: str, reason: str) -> Deployment:
        before = await self.fresh(agent_name)
        return await self._commit(
            before, changes.abort(before), action="abort", actor=actor, reason=reason or "aborted"
        )

    async def rollback(
        self, agent_name: str, *, actor: str, reason: str, evidence: dict[str, object] | None = None
    ) -> Deployment:
        """Stop the canary (weight 0), or return to the previous live release; alert and tell hooks."""
        before = await self.fresh(agent_name)
        after = changes.rollback(before)
        from_entry = before.canary_entry if before.canary is not None else before.live
        done = await self._commit(
            before, after, action="rollback", actor=actor, reason=reason or "rolled back", evidence=evidence
        )
        live = done.live
        await announce_rollback(
            RollbackEvent(
                agent_name=agent_name,
                revision=done.revision,
                from_release=from_entry.version if from_entry else None,
                to_release=live.version if live else None,
                actor=actor,
                reason=reason,
                evidence=evidence or {},
                at=self.now(),
            ),
            store=self.store,
        )
        return done


def _configured(deployment: Deployment, release: ReleaseRecord) -> Deployment:
    """A first deployment takes its internal users and tenants from the release's `[rollout]`."""
    settings = snapshot_of(release).parsed_config().rollout
    return deployment.evolve(
        internal_users=frozenset(settings.internal_users),
        internal_tenants=frozenset(settings.internal_tenants),
    )
