"""One `tether redteam`: the attack suite, the agent's utility on its eval suites, one stored result.

Utility is measured by the eval runner (`tether eval run` on every suite, the configured model),
so the number next to the attack results is the same pass rate the gate judges: a defence that
stops attacks by breaking the agent is visible at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tether.evals.cases import load_suites
from tether.evals.runner import EvalRunner, ProgressHook
from tether.redteam.report import summarize
from tether.redteam.runner import CaseHook, CaseOutcome, RedteamRunner
from tether.redteam.suite import load_attacks
from tether.settings import Settings
from tether.store.records import ReleaseRecord
from tether.store.redteam import RedteamRunRecord
from tether.store.repository import Store

MODELS = ("compromised", "configured")


@dataclass
class RedteamResult:
    record: RedteamRunRecord
    outcomes: list[CaseOutcome]


async def measure_utility(
    store: Store, settings: Settings, project: Path, release: ReleaseRecord, on_trial: ProgressHook | None
) -> dict[str, Any]:
    """The release's pass rate on all its eval suites (stored as an ordinary eval run)."""
    runner = EvalRunner(store, settings, project, release, on_trial=on_trial)
    suites = load_suites(project, None)
    eval_run, cases = await runner.run(suites)
    trials = sum(c.trials for c in cases)
    passes = sum(c.passes for c in cases)
    return {
        "eval_run_id": eval_run.id,
        "trials": trials,
        "passes": passes,
        "pass_rate": round(passes / trials, 4) if trials else 0.0,
        "failed_cases": sorted(f"{c.suite}/{c.case_id}" for c in cases if c.passes < c.trials),
    }


async def run_redteam(
    store: Store,
    settings: Settings,
    project: Path,
    release: ReleaseRecord,
    *,
    model: str = "compromised",
    categories: list[str] | None = None,
    vectors: list[str] | None = None,
    utility: bool = True,
    concurrency: int = 4,
    on_case: CaseHook | None = None,
    on_trial: ProgressHook | None = None,
) -> RedteamResult:
    """Attack the release, measure its utility, store and return the result."""
    if model not in MODELS:
        raise ValueError(f"--model must be one of {', '.join(MODELS)}, got {model!r}")
    runner = RedteamRunner(
        store,
        settings,
        project,
        release,
        compromised=model == "compromised",
        concurrency=concurrency,
        on_case=on_case,
    )
    cases = load_attacks(runner.agent, runner.target, categories=categories, vectors=vectors)
    if not cases:
        raise ValueError("no attack case matches the chosen --category/--vector")
    outcomes = await runner.run(cases)
    measured = await measure_utility(store, settings, project, release, on_trial) if utility else None
    summary = summarize(outcomes, measured)
    summary["full_suite"] = not categories and not vectors
    record = await store.redteam.add(
        release_id=release.id, model=model, summary=summary, outcomes=[o.as_dict() for o in outcomes]
    )
    return RedteamResult(record, outcomes)
