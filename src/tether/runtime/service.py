"""The runtime's front door: submit runs, execute them, decide approvals, drain the queue.

The CLI uses it today; the HTTP API and long-running workers use the same calls.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tether.caches.service import Caches
from tether.live import LiveConfig
from tether.models.breakers import BreakerBoard
from tether.runtime.agents import AgentCache
from tether.runtime.approvals import Decider, decide_approval
from tether.runtime.breaker_state import breaker_backend_for, cache_backend_for
from tether.runtime.controls import ControlSnapshot, ModelSwitcher, refusal, watch_controls
from tether.runtime.lease import REAL_TIMER, Timer
from tether.runtime.loop import LoopSettings, RunLoop
from tether.runtime.observer import NO_OBSERVER, Observer
from tether.runtime.submission import NO_DECISION, RunDecider, RunSubject
from tether.settings import Settings
from tether.store.records import (
    PRODUCTION_ORIGINS,
    ApprovalRecord,
    ReleaseRecord,
    RunOrigin,
    RunRecord,
    RunStatus,
)
from tether.store.repository import ConflictError, NotFoundError, Store, utc_now


class Runtime:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        data_dir: Path,
        observer: Observer = NO_OBSERVER,
        live: LiveConfig | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.observer = observer
        """Told about every execution (tracing, metrics, logs); `tether.observe` provides the real one."""
        self.loop_settings = LoopSettings(
            owner=settings.worker_id, lease_s=settings.lease_seconds, data_dir=data_dir
        )
        self.breakers = BreakerBoard(breaker_backend_for(store, settings.redis_url))
        """Circuit breakers per model and tool, shared through the database (or Redis)."""
        self.caches = Caches(cache_backend_for(store, settings.redis_url))
        """Response, semantic and tool-result caches (used only by releases that turn them on)."""
        self.agents = AgentCache(
            backoff_s=settings.model_backoff_s, breakers=self.breakers, caches=self.caches
        )
        self.stopping = asyncio.Event()
        """Set when the process is shutting down: runs hand their lease back at the next step boundary."""
        self.live = (
            live
            if live is not None
            else LiveConfig(store, redis_url=settings.redis_url, poll_s=settings.live_poll_s)
        )
        """Deployments, controls and flags as operators change them (tether.live); kept fresh by
        long-lived processes (`live.start()`), read once by one-off commands (`live.ready()`)."""
        self.timer: Timer = REAL_TIMER
        """Paces lease renewals and database retries (tests drive it by hand)."""
        self.decide_run: RunDecider | None = None
        """Feature flags and experiment arm of each new run (`tether.rollout.wiring.install` sets it)."""
        self.controls: ControlSnapshot = watch_controls(self.live)
        """The operator controls in force, as this process last loaded them (tether.controls)."""
        self.models = ModelSwitcher(backoff_s=settings.model_backoff_s)

    async def submit(
        self,
        release: ReleaseRecord,
        *,
        user_id: str,
        input: str,
        origin: RunOrigin,
        thread_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        tenant_id: str = "default",
        claim: bool = False,
        key_id: str | None = None,
        scopes: list[str] | None = None,
        run_id: str | None = None,
        assignment: dict[str, Any] | None = None,
    ) -> RunRecord:
        """Store a queued run (durable before anyone is told it exists) on a new or existing thread.

        `origin` says who asked (the API, the CLI, an eval, a drill): production views count api and
        cli runs only, so test traffic never moves health numbers or fires alerts.

        With `claim`, the run is created already leased to this runtime: for callers that execute it
        themselves on their own data (evals, drills), so no worker sharing the database can take it.
        `key_id` and `scopes` name the API key that asked for the run (tools see the scopes).
        `run_id` stores it under an id the caller chose (`store.new_id("run")`).
        `assignment` records why rollout chose `release` (stage, bucket, pin...), when it did.
        Feature flags and the experiment arm are decided here, once, for every origin (`decide_run`).
        """
        if not input.strip():
            raise ValueError("the run input is empty")
        await self.live.ready()
        if not user_id.strip():
            raise ValueError("a run needs a user id")
        if origin in PRODUCTION_ORIGINS:  # operators pause traffic, not their own evals and drills
            now = utc_now()
            refused = refusal(self.controls.current.for_run(tenant_id, release.version, now), now)
            if refused is not None:
                raise refused
        new_thread = thread_id is None  # created with the run, in its transaction
        if thread_id is not None:
            try:
                thread = await self.store.get_thread(thread_id)
            except NotFoundError:
                thread = await self.store.create_thread(user_id, thread_id, tenant_id=tenant_id)
            if thread.user_id != user_id or thread.tenant_id != tenant_id:
                raise ConflictError(f"thread {thread_id} belongs to another user")
            thread_id = thread.id
        claimed = (
            (assignment["experiment"], assignment["arm"]) if assignment and "arm" in assignment else None
        )
        subject = RunSubject(tenant_id, user_id, origin, metadata or {}, claimed)
        decision = self.decide_run(subject) if self.decide_run is not None else NO_DECISION
        return await self.store.create_run(
            release=release,
            flags=dict(decision.flags) if self.decide_run is not None else None,
            experiment=decision.experiment,
            user_id=user_id,
            input=input,
            origin=origin,
            thread_id=thread_id,
            metadata=metadata,
            tenant_id=tenant_id,
            lease=(self.loop_settings.owner, self.loop_settings.lease_s) if claim else None,
            key_id=key_id,
            scopes=scopes,
            new_thread=new_thread,
            run_id=run_id,
            assignment=assignment,
        )

    async def execute(self, run_id: str) -> RunRecord:
        """Claim this run and drive it until it ends or parks; if it is not claimable, report it as is."""
        run = await self.store.claim_run(self.loop_settings.owner, self.loop_settings.lease_s, run_id=run_id)
        if run is None:
            return await self.store.get_run(run_id)
        return await self.drive(run)

    async def claim_next(self) -> RunRecord | None:
        """Take the lease on the oldest claimable run (queued, or abandoned by a dead process)."""
        return await self.store.claim_run(self.loop_settings.owner, self.loop_settings.lease_s)

    async def execute_next(self) -> RunRecord | None:
        run = await self.claim_next()
        return None if run is None else await self.drive(run)

    async def drain(self) -> list[RunRecord]:
        """Run every claimable run to an end or a parking point, then return what was done."""
        await self.store.fail_abandoned_pinned_runs()
        done: list[RunRecord] = []
        while (run := await self.execute_next()) is not None:
            done.append(run)
        return done

    async def drive(self, run: RunRecord) -> RunRecord:
        """Drive a run whose lease this runtime holds until it ends, parks, or the process stops."""
        await self.live.ready()
        release = await self.store.get_release(run.release_id)
        try:
            loaded = self.agents.load(release)
        except Exception as exc:  # a release that cannot load must fail its run, not strand it
            observation = self.observer.start(run, release)
            failed = await self.store.finish_run(
                run.id,
                self.loop_settings.owner,
                self.loop_settings.lease_s,
                status=RunStatus.FAILED,
                totals=run.totals(),
                error=f"cannot load release {release.version}: {exc}",
            )
            await observation.close(failed)
            return failed
        return await RunLoop(
            self.store,
            loaded,
            run,
            self.loop_settings,
            stopping=self.stopping,
            observer=self.observer,
            timer=self.timer,
            controls=self.controls,
            switcher=self.models,
        ).drive()

    async def decide(
        self, run_id: str, *, approve: bool, reason: str | None, decided_by: str
    ) -> ApprovalRecord:
        """Decide the run's pending approval as a local operator (the CLI: no API key).

        The four-eyes rule still refuses a `decided_by` that names the run's own user.
        """
        pending = await self.store.list_approvals(run_id=run_id, status="pending")
        run = await self.store.get_run(run_id)
        if not pending:
            raise ConflictError(f"run {run_id} has no pending approval (status: {run.status})")
        return await self.decide_approval(
            run, pending[0].id, approve=approve, reason=reason, decider=Decider(decided_by)
        )

    async def decide_approval(
        self, run: RunRecord, approval_id: str, *, approve: bool, reason: str | None, decider: Decider
    ) -> ApprovalRecord:
        """Decide one approval of the run (four-eyes rule per settings); the run goes back to the queue."""
        return await decide_approval(
            self.store,
            run,
            approval_id,
            approve=approve,
            reason=reason,
            decider=decider,
            four_eyes=self.settings.four_eyes,
        )
