"""Canary drills on simulated traffic: does a bad canary get rolled back, and a good one left alone?

The traffic is simulated (run outcomes drawn from a seeded generator) but everything that judges it
is the production code: `analysis.analyze` with the release's `[rollout]` thresholds and
`controller.decide` with its plan. So the drill measures the decision rules themselves: how many
canary runs a bad release gets before it is stopped, and how often an identical one is stopped by
mistake (the A/A false-rollback rate the sequential test promises to keep below alpha).
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tether.agent.config import RolloutSection
from tether.rollout import changes
from tether.rollout.analysis import analyze
from tether.rollout.decision import decide
from tether.rollout.deployment import Deployment, Entry, Plan, Stage
from tether.store.deployments import RunOutcome

_T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Traffic:
    """How simulated runs behave: failure probabilities of stable and canary, arrival rate."""

    stable_failure: float = 0.10
    canary_failure: float = 0.10
    runs_per_tick: int = 40
    tick_s: float = 15.0
    max_ticks: int = 2000


@dataclass(frozen=True)
class CanaryOutcome:
    seed: int
    result: str
    """`rollback`, `promoted` or `undecided` (ran out of ticks)."""
    canary_runs: int
    """Canary runs finished when the decision was taken."""
    ticks: int


def _run(rng: random.Random, release: str, failure: float, at: datetime, index: int) -> RunOutcome:
    failed = rng.random() < failure
    return RunOutcome(
        run_id=f"{release}-{index}",
        release_id=release,
        origin="api",
        status="failed" if failed else "succeeded",
        steps_used=rng.randint(2, 5),
        cost_usd=round(rng.lognormvariate(-7, 0.3), 8),
        latency_ms=rng.lognormvariate(6.5, 0.4),
        tool_calls=2,
        tool_errors=1 if failed and rng.random() < 0.5 else 0,
        shadow_skips=0,
        feedback=None,
        shadow_of=None,
        output=None,
        created_at=at,
    )


def simulate_canary(seed: int, traffic: Traffic, settings: RolloutSection | None = None) -> CanaryOutcome:
    """One canary from start to rollback or promotion, looked at after every tick of traffic."""
    settings = settings or RolloutSection()
    rng = random.Random(seed)
    plan = Plan(tuple(settings.steps), settings.min_runs, settings.min_minutes * 60)
    deployment = Deployment("drill", 1, (Entry("stable", "stable", Stage.LIVE, 100.0),), salt="drill")
    deployment = changes.start_canary(deployment, "canary", "canary", plan, now=_T0)
    canary_runs: list[RunOutcome] = []
    stable_runs: list[RunOutcome] = []
    now = _T0
    for tick in range(1, traffic.max_ticks + 1):
        now = _T0 + timedelta(seconds=tick * traffic.tick_s)
        assert deployment.canary is not None
        share = deployment.canary.weight / 100
        for _ in range(traffic.runs_per_tick):
            if rng.random() < share:
                canary_runs.append(_run(rng, "canary", traffic.canary_failure, now, len(canary_runs)))
            else:
                stable_runs.append(_run(rng, "stable", traffic.stable_failure, now, len(stable_runs)))
        analysis = analyze(canary_runs, stable_runs, settings.rollback_on, alpha=settings.alpha)
        step_runs = sum(1 for o in canary_runs if o.created_at >= deployment.canary.step_started_at)
        decision = decide(deployment, analysis, step_runs=step_runs, now=now)
        if decision.action == "rollback":
            return CanaryOutcome(seed, "rollback", len(canary_runs), tick)
        if decision.action == "advance":
            deployment = changes.advance(deployment, now=now)
            if deployment.canary is None:
                return CanaryOutcome(seed, "promoted", len(canary_runs), tick)
    return CanaryOutcome(seed, "undecided", len(canary_runs), traffic.max_ticks)


@dataclass(frozen=True)
class DrillSummary:
    name: str
    outcomes: tuple[CanaryOutcome, ...]

    @property
    def rollbacks(self) -> int:
        return sum(o.result == "rollback" for o in self.outcomes)

    @property
    def rollback_rate(self) -> float:
        return self.rollbacks / len(self.outcomes) if self.outcomes else 0.0

    def canary_runs_to_rollback(self) -> tuple[float, int] | None:
        """(median, max) canary runs before the rollback, over the seeds that rolled back."""
        counts = [o.canary_runs for o in self.outcomes if o.result == "rollback"]
        return (statistics.median(counts), max(counts)) if counts else None


def bad_canary_drill(
    seeds: int = 20, *, worse_by: float = 0.15, settings: RolloutSection | None = None
) -> DrillSummary:
    """A canary that fails `worse_by` (absolute) more often than stable, once per seed."""
    traffic = Traffic(stable_failure=0.10, canary_failure=0.10 + worse_by)
    return DrillSummary("bad canary", tuple(simulate_canary(s, traffic, settings) for s in range(seeds)))


def aa_drill(
    canaries: int = 200, *, settings: RolloutSection | None = None, first_seed: int = 10_000
) -> DrillSummary:
    """Identical canary and stable: every rollback is a false one."""
    traffic = Traffic()
    return DrillSummary(
        "A/A", tuple(simulate_canary(s, traffic, settings) for s in range(first_seed, first_seed + canaries))
    )
