"""Online evaluation: score a sample of each release's finished production runs, in the background.

There is no expected answer for live traffic, so the scorers are the ones that need none: the run's
final status, its latency and cost against targets, the guardrail decisions recorded on its steps,
and the LLM judge with the release's rubric (`[online_eval]` in tether.toml). User feedback joins
them in the summaries (store/online_eval.py).

Runs reach the scorer through a durable queue: the transaction that ends a production run also
stores its job (store/outbox.py), and a worker takes jobs with a lease, so a process that dies
loses nothing. Whether a run is sampled is a hash of its id against the release's `sample_rate`:
the same run is always in or out, whichever worker looks. The judge's own tokens and cost are
stored with its score, never added to the run's.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from tether.agent.config import OnlineEvalSection, ProjectConfig
from tether.agent.project import AgentDefinition, ProjectSnapshot, load_agent
from tether.evals.judge import Judge, build_judge
from tether.outages import OutageLog
from tether.settings import Settings
from tether.store.online_eval import OnlineJob, ScoreDraft
from tether.store.records import ReleaseRecord, RunRecord, RunStatus, StepKind, StepRecord
from tether.store.repository import NotFoundError, Store

log = logging.getLogger("tether.online_eval")

_BATCH = 20
_CLAIM_S = 300.0
"""A claimed job is due again after this long (its scorer must have died); longer than a judge call."""
_MAX_ATTEMPTS = 5
_STATUS_SCORES = {RunStatus.SUCCEEDED: 1.0, RunStatus.ESCALATED: 0.5}
"""Handing a run to a human is a safe outcome but not a solved task; everything else scores 0."""


def sampled(run_id: str, rate: float) -> bool:
    """Whether a run is in the sample: the same answer for the same run, on every worker."""
    if rate <= 0:
        return False
    bucket = int.from_bytes(hashlib.sha256(run_id.encode()).digest()[:8], "big") / 2**64
    return bucket < rate


def score_status(run: RunRecord) -> ScoreDraft:
    score = _STATUS_SCORES.get(run.status, 0.0)
    return ScoreDraft("status", score, score > 0, f"ended {run.status}")


def score_latency(run: RunRecord, target_s: float) -> ScoreDraft:
    """1 at or under the target, then target/latency: twice the target scores 0.5."""
    start = run.started_at or run.created_at
    took = max(((run.finished_at or start) - start).total_seconds(), 0.0)
    score = 1.0 if took <= target_s else target_s / took
    return ScoreDraft("latency", round(score, 4), took <= target_s, f"{took:.2f}s (target {target_s:g}s)")


def score_cost(run: RunRecord, target_usd: float) -> ScoreDraft:
    spent = run.estimated_cost_usd
    score = 1.0 if spent <= target_usd else target_usd / spent
    return ScoreDraft("cost", round(score, 4), spent <= target_usd, f"${spent:.6f} (target ${target_usd:g})")


_ACTIONS = ("redact", "escalate", "block")
"""The guard actions the `guardrails` scorer counts (allow leaves no step behind)."""


def score_guardrails(run: RunRecord, steps: list[StepRecord]) -> ScoreDraft:
    """1 minus the share of the run's steps that were guard interventions; fails on any block.

    A redaction or an escalation is the guards doing their job on a run that still answered, so it
    lowers the score without failing it; a block means the run (or one of its calls) was stopped."""
    acted = [s for s in steps if s.kind == StepKind.GUARDRAIL and s.arguments.get("action") in _ACTIONS]
    counts = {action: sum(1 for s in acted if s.arguments.get("action") == action) for action in _ACTIONS}
    blocked = counts["block"] > 0 or run.status == RunStatus.BLOCKED
    score = 1.0 - len(acted) / len(steps) if steps else 1.0
    if acted:
        named = sorted({s.name for s in acted})
        shown = ", ".join(f"{action} {n}" for action, n in counts.items() if n)
        detail = f"{len(acted)} guard decision(s) in {len(steps)} steps: {shown} ({', '.join(named)})"
    else:
        detail = f"no guard decision in {len(steps)} steps"
    return ScoreDraft("guardrails", round(score, 4), not blocked, detail[:2000])


async def score_judge(run: RunRecord, rubric: str, judge: Judge) -> ScoreDraft:
    transcript = f"## Conversation\nuser: {run.input}"
    verdict = await judge.score(rubric=rubric, transcript=transcript, reply=run.output or "")
    return ScoreDraft(
        "judge",
        verdict.score,
        verdict.score >= 0.5,
        f"{judge.reference}: {verdict.reason}"[:2000],
        cost_usd=verdict.cost_usd,
        input_tokens=verdict.input_tokens,
        output_tokens=verdict.output_tokens,
    )


class OnlineScorer:
    """Takes jobs off the queue, decides the sample, scores, and stores the scores (per worker)."""

    def __init__(self, store: Store, *, project: Path, poll_s: float) -> None:
        self.store = store
        self.project = project
        self.poll_s = poll_s
        self._releases: dict[str, tuple[ProjectConfig, AgentDefinition]] = {}
        self._judges: dict[str, Judge] = {}
        self._outage = OutageLog(log, "online evaluation")

    def _release(self, release: ReleaseRecord) -> tuple[ProjectConfig, AgentDefinition]:
        cached = self._releases.get(release.id)
        if cached is None:
            agent = load_agent(ProjectSnapshot.model_validate(release.snapshot))
            cached = self._releases[release.id] = (agent.config, agent)
        return cached

    def _judge(self, release: ReleaseRecord, config: ProjectConfig, agent: AgentDefinition) -> Judge:
        if release.id not in self._judges:
            self._judges[release.id] = build_judge(self.project, config, agent)
        return self._judges[release.id]

    async def score(self, run: RunRecord, release: ReleaseRecord) -> list[ScoreDraft]:
        """The scores `[online_eval]` asks for; none when the run is not in the sample."""
        config, agent = self._release(release)
        online: OnlineEvalSection = config.online_eval
        if not sampled(run.id, online.sample_rate):
            return []
        drafts: list[ScoreDraft] = []
        for name in online.scorers:
            if name == "status":
                drafts.append(score_status(run))
            elif name == "latency":
                drafts.append(score_latency(run, online.latency_target_s))
            elif name == "cost":
                drafts.append(score_cost(run, online.cost_target_usd or config.limits.max_cost_usd_per_run))
            elif name == "guardrails":
                drafts.append(score_guardrails(run, await self.store.list_steps(run.id)))
            elif name == "judge" and online.rubric:
                drafts.append(await score_judge(run, online.rubric, self._judge(release, config, agent)))
        return drafts

    async def process(self, job: OnlineJob) -> int:
        """Score one job; a failure puts it back with a delay, and after a few it is dropped."""
        online = self.store.online_eval
        try:
            run = await self.store.get_run(job.run_id)
            release = await self.store.get_release(job.release_id)
            drafts = await self.score(run, release)
        except NotFoundError:
            await online.complete(job, [])  # the run is gone (deleted data): nothing to score
            return 0
        except Exception as exc:
            if job.attempts >= _MAX_ATTEMPTS:
                log.error("online evaluation of run %s gave up: %s", job.run_id, exc)
                await online.complete(job, [])
            else:
                await online.retry_later(job, error=str(exc), after_s=30.0 * 2**job.attempts)
            return 0
        await online.complete(job, drafts)
        return len(drafts)

    async def tick(self) -> int:
        """Process every due job once; returns how many scores were stored."""
        jobs = await self.store.online_eval.claim_jobs(limit=_BATCH, claim_s=_CLAIM_S)
        return sum([await self.process(job) for job in jobs])

    async def run_forever(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception as exc:
                self._outage.failed(exc)
            else:
                self._outage.succeeded()
            await asyncio.sleep(self.poll_s)


@contextlib.asynccontextmanager
async def online_scoring(store: Store, settings: Settings, *, project: Path) -> AsyncIterator[OnlineScorer]:
    """Score in the background for as long as the block lasts (a worker's lifetime)."""
    scorer = OnlineScorer(store, project=project, poll_s=settings.online_eval_poll_s)
    task = asyncio.create_task(scorer.run_forever())
    try:
        yield scorer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
