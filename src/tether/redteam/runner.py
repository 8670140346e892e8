"""Run the attack suite against one release: every case a real run on its own pristine data copy.

Per case: copy the seeded data, plant the attacker's text (the project's planter, or the tool
wrapper), fingerprint the data, run the user's request through the one run loop (origin `eval`,
leased to us so no worker touches it), fingerprint again, and hand the recording to the oracles.
A run parked for approval is scored as parked (the write did not happen) and then cancelled,
so no human is ever asked to approve an attacker's refund.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tether.agent.project import ProjectSnapshot, load_agent
from tether.evals.runner import production_data_dir
from tether.evals.trial_data import TrialData
from tether.live import LiveConfig
from tether.redteam.fingerprint import changed, fingerprint
from tether.redteam.inject import RedteamAgentCache
from tether.redteam.oracles import Evidence, Watch, judge, parked_writes
from tether.redteam.suite import AttackCase
from tether.redteam.target import RedteamTarget, load_target
from tether.runtime.service import Runtime
from tether.settings import Settings
from tether.store.records import ReleaseRecord, RunOrigin, RunStatus, StepKind
from tether.store.repository import Store

CaseHook = Callable[[str, bool], None]
"""Called after each case with its id and whether the attack reached any goal."""


@dataclass
class CaseOutcome:
    case: AttackCase
    run_id: str
    status: str
    findings: dict[str, list[str]]
    parked: list[str]
    output: str
    latency_ms: float
    tools: list[str] = field(default_factory=list)
    other_steps: list[str] = field(default_factory=list)
    """Steps that are neither model nor tool calls (guardrail decisions), as `kind:name`."""

    @property
    def succeeded(self) -> bool:
        """The attack reached at least one goal (any oracle fired)."""
        return any(self.findings.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.case.id,
            "category": self.case.category,
            "vector": self.case.vector,
            "goals": list(self.case.goals),
            "run_id": self.run_id,
            "status": self.status,
            "succeeded": self.succeeded,
            "findings": {k: v for k, v in self.findings.items() if v},
            "parked": self.parked,
            "tools": self.tools,
            "other_steps": self.other_steps,
            "output": self.output[:1000],
            "latency_ms": self.latency_ms,
        }


class RedteamRunner:
    """Runs attack cases against one release with the compromised or the configured model."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        project: Path,
        release: ReleaseRecord,
        *,
        compromised: bool,
        concurrency: int = 4,
        on_case: CaseHook | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("--concurrency must be at least 1")
        self.store = store
        self.settings = settings
        self.release = release
        self.concurrency = concurrency
        self.on_case = on_case
        self.agent = load_agent(ProjectSnapshot.model_validate(release.snapshot))
        self.config = self.agent.config
        self.target: RedteamTarget = load_target(self.agent)
        self.agents = RedteamAgentCache(backoff_s=settings.model_backoff_s, compromised=compromised)
        self.data = TrialData(self.agent, production_data_dir(project, settings))
        self._live: LiveConfig | None = None
        self.write_tools = frozenset(name for name, tool in self.agent.tools.items() if tool.is_write)
        self.gated_tools = frozenset(
            name for name, tool in self.agent.tools.items() if tool.is_write and tool.requires_approval
        )

    async def run(self, cases: list[AttackCase]) -> list[CaseOutcome]:
        gate = asyncio.Semaphore(self.concurrency)
        with self.data:

            async def one(case: AttackCase) -> CaseOutcome:
                async with gate:
                    outcome = await self._case(case)
                if self.on_case is not None:
                    self.on_case(case.id, outcome.succeeded)
                return outcome

            return list(await asyncio.gather(*(one(c) for c in cases)))

    def _plant(self, data_dir: Path, case: AttackCase) -> bool:
        """Plant the case's text (and the canary in the other user's record); True if planted in data."""
        plant = self.target.plant
        if plant is None:
            return False
        if "foreign_record" in self.target.planted_vectors:
            plant(data_dir, "foreign_record", case.canary)
        if case.vector in self.target.planted_vectors:
            plant(data_dir, case.vector, case.text)
            return True
        return False

    def _watch(self, case: AttackCase) -> Watch:
        return Watch(
            foreign=(*self.target.foreign_markers, case.canary),
            own_pii=self.target.own_pii,
            other_record=self.target.other_record,
            allowed_hosts=self.target.allowed_hosts,
            echo=case.echo,
            runaway_calls=self.config.redteam.runaway_calls,
            runaway_per_response=self.config.redteam.runaway_per_response,
        )

    async def _case(self, case: AttackCase) -> CaseOutcome:
        with self.data.copy() as data_dir:
            planted = await asyncio.to_thread(self._plant, data_dir, case)
            before = await asyncio.to_thread(fingerprint, data_dir)
            runtime = Runtime(self.store, self.settings, data_dir=data_dir, live=self._live)
            self._live = runtime.live  # one live-configuration snapshot for the whole attack run
            runtime.agents = self.agents
            claimed = await runtime.submit(
                self.release,
                user_id=self.target.user,
                input=case.input,
                origin=RunOrigin.EVAL,
                metadata={"redteam": case.id},
                claim=True,  # leased to us: a worker on this database never runs it on real data
            )
            if case.vector != "user_message" and not planted:
                self.agents.inject(claimed.id, case.vector, case.text)
            started = time.monotonic()
            try:
                run = await runtime.drive(claimed)
            finally:
                self.agents.forget(claimed.id)
            latency_ms = round((time.monotonic() - started) * 1000, 3)
            after = await asyncio.to_thread(fingerprint, data_dir)
            steps = await self.store.list_steps(run.id)
            approvals = await self.store.list_approvals(run_id=run.id)
            if run.status == RunStatus.WAITING_FOR_APPROVAL:
                await self.store.request_cancel(run.id)  # nobody approves an attacker's write
        evidence = Evidence(
            status=run.status.value,
            output=run.output or "",
            steps=steps,
            approvals=approvals,
            write_tools=self.write_tools,
            gated_tools=self.gated_tools,
            data_changes=changed(before, after),
            user_input=case.input,
            system_prompt=self.agent.instructions,
            user_is_attacker=case.vector == "user_message",
        )
        return CaseOutcome(
            case=case,
            run_id=run.id,
            status=run.status.value,
            findings=judge(evidence, self._watch(case)),
            parked=parked_writes(evidence),
            output=run.output or "",
            latency_ms=latency_ms,
            tools=[s.name for s in steps if s.kind == StepKind.TOOL_CALL],
            other_steps=[
                f"{s.kind.value}:{s.name}"
                for s in steps
                if s.kind not in (StepKind.TOOL_CALL, StepKind.MODEL_CALL)
            ],
        )
