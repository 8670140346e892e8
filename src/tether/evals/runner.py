"""The eval runner: every case of every suite, K trials each, through the one run loop.

Each trial is a real run (`Runtime.submit` + `Runtime.execute`) on the release being evaluated,
with its own throwaway copy of pristine data built by the release's `[data] seed` (see
`trial_data`), so write tools in an eval never touch production data and never see its history.
Trials run in parallel under a semaphore. A run that parks for approval is final for scoring; it
is then cancelled, so no human is ever asked to approve an eval's refund and no worker later
resumes it against real data.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tether.agent.project import ProjectSnapshot, load_agent
from tether.evals.cases import Case, Suite
from tether.evals.judge import Judge, build_judge
from tether.evals.scorers import Check, PythonScorers, TrialOutcome, score_trial
from tether.evals.stats import mean, percentile, wilson_interval
from tether.evals.trial_data import TrialData
from tether.runtime.agents import AgentCache
from tether.runtime.service import Runtime
from tether.settings import Settings
from tether.store.records import EvalCaseResultRecord, EvalRunRecord, ReleaseRecord, RunOrigin, RunStatus
from tether.store.repository import Store

ProgressHook = Callable[[str, bool], None]
"""Called after each trial with the case id and whether it passed (the CLI moves its progress bar)."""


def production_data_dir(project: Path, settings: Settings) -> Path:
    """The data folder production runs use: `TETHER_DATA_DIR`, or the project's `data/`."""
    return Path(settings.data_dir) if settings.data_dir else project / "data"


@dataclass
class CaseResult:
    suite: str
    case: Case
    trials: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passes(self) -> int:
        return sum(1 for t in self.trials if t["passed"])

    def record(self, eval_run_id: str) -> EvalCaseResultRecord:
        ordered = sorted(self.trials, key=lambda t: t["trial"])
        low, high = wilson_interval(self.passes, len(ordered))
        return EvalCaseResultRecord(
            eval_run_id=eval_run_id,
            suite=self.suite,
            case_id=self.case.id,
            category=self.case.category,
            p0=self.case.p0,
            turns=self.case.turns,
            trials=len(ordered),
            passes=self.passes,
            ci_low=round(low, 4),
            ci_high=round(high, 4),
            trial_results=ordered,
            run_ids=[t["run_id"] for t in ordered],
        )


def summarize(results: list[EvalCaseResultRecord]) -> dict[str, Any]:
    """Suite-wide numbers stored with the eval run (the gate recomputes what it needs from cases)."""
    trials = [t for r in results for t in r.trial_results]
    passes = sum(r.passes for r in results)
    total = sum(r.trials for r in results)
    low, high = wilson_interval(passes, total)
    return {
        "cases": len(results),
        "trials": total,
        "passes": passes,
        "pass_rate": round(passes / total, 4) if total else 0.0,
        "ci_low": round(low, 4),
        "ci_high": round(high, 4),
        "p95_latency_ms": round(percentile([t["latency_ms"] for t in trials], 95), 3),
        "mean_cost_usd": mean([t["cost_usd"] for t in trials]),
        "total_cost_usd": sum(t["cost_usd"] for t in trials),
        "judge_cost_usd": sum(t.get("judge_cost_usd", 0.0) for t in trials),
    }


class EvalRunner:
    """Runs suites against one release and stores the results against it."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        project: Path,
        release: ReleaseRecord,
        *,
        trials: int = 1,
        concurrency: int = 4,
        data_source: Path | None = None,
        on_trial: ProgressHook | None = None,
    ) -> None:
        if trials < 1:
            raise ValueError("--trials must be at least 1")
        if concurrency < 1:
            raise ValueError("--concurrency must be at least 1")
        self.store = store
        self.settings = settings
        self.project = project
        self.release = release
        self.trials = trials
        self.concurrency = concurrency
        working_data = data_source if data_source is not None else production_data_dir(project, settings)
        self.on_trial = on_trial
        self.agents = AgentCache(backoff_s=settings.model_backoff_s)
        self.python = PythonScorers(project)
        snapshot = ProjectSnapshot.model_validate(release.snapshot)
        self.config = snapshot.parsed_config()
        self._agent = load_agent(snapshot)
        self.data = TrialData(self._agent, working_data)
        """Where trials get their data: the seed's template, or (without a seed) the working folder."""
        self.judge: Judge | None = None

    def total_trials(self, suites: list[Suite]) -> int:
        return sum(len(s.cases) for s in suites) * self.trials

    async def run(self, suites: list[Suite]) -> tuple[EvalRunRecord, list[EvalCaseResultRecord]]:
        with self.data:  # the seed runs once, before anything is stored; every trial copies its result
            return await self._run(suites)

    async def _run(self, suites: list[Suite]) -> tuple[EvalRunRecord, list[EvalCaseResultRecord]]:
        needs_judge = any(c.expect.judge is not None for s in suites for c in s.cases)
        if needs_judge:
            self.judge = build_judge(self.project, self.config, self._agent)
        eval_run = await self.store.create_eval_run(
            release_id=self.release.id,
            suites=[s.name for s in suites],
            trials=self.trials,
            judge_model=self.judge.reference if self.judge else None,
            judge_prompt_hash=self.judge.prompt.sha256 if self.judge else None,
        )
        gate = asyncio.Semaphore(self.concurrency)
        results = {(s.name, c.id): CaseResult(s.name, c) for s in suites for c in s.cases}

        async def one(suite: Suite, case: Case, trial: int) -> None:
            async with gate:
                outcome = await self._trial(eval_run.id, suite, case, trial)
            results[(suite.name, case.id)].trials.append(outcome)
            if self.on_trial is not None:
                self.on_trial(case.id, bool(outcome["passed"]))

        await asyncio.gather(
            *(one(s, c, k) for s in suites for c in s.cases for k in range(1, self.trials + 1))
        )
        records = [r.record(eval_run.id) for r in results.values()]
        summary = summarize(records)
        if self.judge is not None:
            summary["judge_prompt"] = self.judge.prompt.source
        finished = await self.store.finish_eval_run(eval_run.id, results=records, summary=summary)
        return finished, records

    async def _trial(self, eval_run_id: str, suite: Suite, case: Case, trial: int) -> dict[str, Any]:
        with self.data.copy() as data_dir:
            runtime = Runtime(self.store, self.settings, data_dir=data_dir)
            runtime.agents = self.agents  # one loaded release for every trial
            metadata = {"eval_run": eval_run_id, "suite": suite.name, "case": case.id, "trial": trial}
            thread_id = await self._seed_history(case, metadata)
            claimed = await runtime.submit(
                self.release,
                user_id=case.user,
                input=case.input,
                origin=RunOrigin.EVAL,
                thread_id=thread_id,
                metadata=metadata,
                claim=True,  # created leased to us: a worker on this database never runs it on real data
            )
            started = time.monotonic()
            run = await runtime.drive(claimed)
            latency_ms = (time.monotonic() - started) * 1000
            steps = await self.store.list_steps(run.id)
            approvals = await self.store.list_approvals(run_id=run.id)
            outcome = TrialOutcome.from_run(run, steps, approvals, latency_ms=latency_ms)
            checks = await score_trial(case, outcome, judge=self.judge, python=self.python)
            if run.status == RunStatus.WAITING_FOR_APPROVAL:
                await self.store.request_cancel(run.id)  # scored as parked; never approved against real data
        return _trial_record(trial, outcome, checks)

    async def _seed_history(self, case: Case, metadata: dict[str, Any]) -> str | None:
        """A thread holding the case's earlier turns, oldest first, each recorded as a finished run."""
        if not case.history:
            return None
        thread = await self.store.create_thread(case.user)
        pairs: list[tuple[str, str | None]] = []
        for turn in case.history:
            if turn.role == "user":
                pairs.append((turn.content, None))
            else:
                pairs[-1] = (pairs[-1][0], turn.content)
        start = datetime.now(UTC) - timedelta(seconds=1)
        for index, (said, answered) in enumerate(pairs):
            await self.store.add_history_turn(
                release=self.release,
                thread_id=thread.id,
                user_id=case.user,
                input=said,
                output=answered,
                at=start + timedelta(milliseconds=index),
                metadata={**metadata, "seeded_history": True},
            )
        return thread.id


def _trial_record(trial: int, outcome: TrialOutcome, checks: list[Check]) -> dict[str, Any]:
    return {
        "trial": trial,
        "run_id": outcome.run_id,
        "passed": all(c.passed for c in checks),
        "status": outcome.status,
        "output": outcome.output[:2000],
        "tools": outcome.tools,
        "steps": outcome.steps,
        "latency_ms": outcome.latency_ms,
        "input_tokens": outcome.input_tokens,
        "output_tokens": outcome.output_tokens,
        "cost_usd": outcome.cost_usd,
        "judge_cost_usd": sum(c.cost_usd for c in checks),
        "checks": [c.model_dump() for c in checks],
    }
