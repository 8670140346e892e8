"""Canary analysis: the sequential test and the decision rule (issue 13 items 5 and 10a/b)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from tether.agent.config import RollbackOn, RolloutSection
from tether.rollout import changes
from tether.rollout.analysis import MIN_RUNS_PER_ARM, analyze, msprt_log_lr
from tether.rollout.decision import decide
from tether.rollout.deployment import Deployment, Entry, Plan, Stage
from tether.rollout.drills import aa_drill, bad_canary_drill
from tether.store.deployments import RunOutcome

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def outcome(
    release: str, status: str, index: int, *, latency: float = 500.0, cost: float = 0.001
) -> RunOutcome:
    return RunOutcome(
        run_id=f"{release}{index}",
        release_id=release,
        origin="api",
        status=status,
        steps_used=3,
        cost_usd=cost,
        latency_ms=latency,
        tool_calls=1,
        tool_errors=0,
        shadow_skips=0,
        feedback=None,
        shadow_of=None,
        output=None,
        created_at=NOW,
    )


def runs(release: str, n: int, failure: float, seed: int) -> list[RunOutcome]:
    rng = random.Random(seed)
    return [
        outcome(
            release, "failed" if rng.random() < failure else "succeeded", i, latency=rng.uniform(300, 700)
        )
        for i in range(n)
    ]


def test_the_statistic_grows_with_evidence_and_ignores_improvements() -> None:
    assert msprt_log_lr(-0.1, 0.001, 0.05) == 0.0
    assert msprt_log_lr(0.1, 0.0001, 0.05) > msprt_log_lr(0.1, 0.001, 0.05) > 0


def test_a_much_worse_canary_breaches_and_an_equal_one_does_not() -> None:
    rules = RollbackOn()
    bad = analyze(runs("c", 300, 0.35, 1), runs("s", 600, 0.10, 2), rules, alpha=0.05)
    assert [m.name for m in bad.breached] == ["error_rate"]
    same = analyze(runs("c", 300, 0.10, 3), runs("s", 600, 0.10, 4), rules, alpha=0.05)
    assert same.breached == ()
    few = analyze(runs("c", MIN_RUNS_PER_ARM - 1, 1.0, 5), runs("s", 600, 0.0, 6), rules, alpha=0.05)
    assert few.breached == ()  # not judged on too few runs


def test_slow_and_expensive_canaries_breach_their_ratios() -> None:
    stable = [outcome("s", "succeeded", i, latency=500 + i % 50, cost=0.001) for i in range(400)]
    slow = [outcome("c", "succeeded", i, latency=5000.0, cost=0.001) for i in range(200)]
    pricey = [outcome("c", "succeeded", i, latency=500.0, cost=0.01) for i in range(200)]
    assert [m.name for m in analyze(slow, stable, RollbackOn(), alpha=0.05).breached] == ["p95_latency_ms"]
    assert [m.name for m in analyze(pricey, stable, RollbackOn(), alpha=0.05).breached] == [
        "cost_per_run_usd"
    ]


def test_decide_rolls_back_advances_or_holds() -> None:
    live = changes.switch(Deployment("a", 0), "s", "vs")
    d = changes.start_canary(live, "c", "vc", Plan(steps=(5.0, 100.0), min_runs=30, min_seconds=60), now=NOW)
    breach = analyze(runs("c", 300, 0.5, 7), runs("s", 600, 0.1, 8), RollbackOn(), alpha=0.05)
    fine = analyze(runs("c", 40, 0.1, 9), runs("s", 600, 0.1, 10), RollbackOn(), alpha=0.05)
    assert decide(d, breach, step_runs=300, now=NOW).action == "rollback"
    assert decide(d, fine, step_runs=40, now=NOW + timedelta(seconds=30)).action == "hold"  # too soon
    assert decide(d, fine, step_runs=20, now=NOW + timedelta(minutes=5)).action == "hold"  # too few runs
    assert decide(d, fine, step_runs=40, now=NOW + timedelta(minutes=1)).action == "advance"
    assert Entry("c", "vc", Stage.CANARY, 5.0) in d.entries


def test_drills_roll_back_bad_canaries_and_leave_good_ones_alone() -> None:
    bad = bad_canary_drill(5)
    assert bad.rollbacks == 5
    assert bad.canary_runs_to_rollback() is not None
    good = aa_drill(5)
    assert good.rollbacks == 0
    assert all(o.result == "promoted" for o in good.outcomes)
    hasty = bad_canary_drill(5, settings=RolloutSection(min_runs=20, min_minutes=1))
    assert hasty.rollbacks < 5  # why min_runs matters: a hasty plan can promote a bad canary
