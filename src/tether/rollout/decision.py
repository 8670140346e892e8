"""What to do with a canary after one analysis: roll back, move to the next step, or wait.

Pure, so the drills (rollout/drills.py, benchmarks/rollout_drills.py) replay exactly the rule the
controller applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tether.rollout.analysis import Analysis
from tether.rollout.deployment import Deployment


@dataclass(frozen=True)
class Decision:
    action: str
    """`hold`, `advance` (next step, or promotion after the last) or `rollback`."""
    reason: str
    analysis: Analysis


def decide(deployment: Deployment, analysis: Analysis, *, step_runs: int, now: datetime) -> Decision:
    """What to do with the canary given one analysis: any breach rolls back; a step passes once it
    has its minimum runs and time; otherwise wait."""
    canary = deployment.canary
    if canary is None:
        raise ValueError("no canary is in progress")
    breached = analysis.breached
    if breached:
        names = ", ".join(m.name for m in breached)
        return Decision("rollback", f"canary worse than stable beyond rollback_on: {names}", analysis)
    waited = (now - canary.step_started_at).total_seconds()
    if step_runs >= canary.plan.min_runs and waited >= canary.plan.min_seconds:
        return Decision(
            "advance", f"step {canary.step + 1} passed ({step_runs} runs, {waited:.0f}s)", analysis
        )
    return Decision("hold", f"step {canary.step + 1}: {step_runs} runs, {waited:.0f}s so far", analysis)
