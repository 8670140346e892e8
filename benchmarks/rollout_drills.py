"""Rollout drills (a) and (b), and what choosing a release costs a run.

(a) Bad canary: a canary that fails 15 percentage points more often than stable must be rolled back
    automatically; how many canary runs did that take (median and max over 20 seeds)?
(b) A/A: identical canary and stable, at least 200 simulated canaries: false rollbacks <= 5%?
(e) The per-run cost of choosing a release: `rollout.assign.assign` on a live snapshot (what
    `POST /v1/runs` does for every run), timed over many calls, interleaved with a no-op baseline.

The traffic is simulated (seeded); the judging is the production code (`analysis.analyze`,
`decision.decide`, `changes.advance`) with the default `[rollout]` settings unless `--min-runs` etc.
are given. Run from the repository root with the project's venv active:

    python benchmarks/rollout_drills.py --out benchmarks/results/rollout-drills-DATE.md
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

from tether.agent.config import RolloutSection
from tether.rollout.assign import assign
from tether.rollout.deployment import Canary, Deployment, Entry, Plan, Stage
from tether.rollout.drills import aa_drill, bad_canary_drill


def choice_cost(calls: int, rounds: int) -> tuple[list[float], list[float]]:
    """Microseconds per `assign` call and per empty loop iteration, measured in alternating rounds."""
    now = datetime.now(UTC)
    deployment = Deployment(
        "support-agent",
        7,
        (
            Entry("rel_live", "v1", Stage.LIVE, 75.0),
            Entry("rel_canary", "v2", Stage.CANARY, 25.0),
            Entry("rel_internal", "v3", Stage.INTERNAL, 0.0),
        ),
        canary=Canary("rel_canary", Plan(), 1, now, now),
        internal_users=frozenset({"alice", "bob"}),
        salt="support-agent",
    )
    users = [f"user-{i}" for i in range(calls)]
    choosing: list[float] = []
    empty: list[float] = []
    for _ in range(rounds):
        started = time.perf_counter()
        for user in users:
            assign(deployment, None, tenant="acme", user=user)
        choosing.append((time.perf_counter() - started) / calls * 1e6)
        started = time.perf_counter()
        for user in users:
            _ = (deployment, user)
        empty.append((time.perf_counter() - started) / calls * 1e6)
    return choosing, empty


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=20, help="bad-canary seeds")
    parser.add_argument("--canaries", type=int, default=200, help="A/A canaries")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    settings = RolloutSection()

    started = time.perf_counter()
    bad = bad_canary_drill(args.seeds, settings=settings)
    bad_s = time.perf_counter() - started
    started = time.perf_counter()
    aa = aa_drill(args.canaries, settings=settings)
    aa_s = time.perf_counter() - started
    choosing, empty = choice_cost(20_000, 7)

    runs = bad.canary_runs_to_rollback()
    promoted = sum(o.result == "promoted" for o in aa.outcomes)
    undecided = sum(o.result == "undecided" for o in aa.outcomes)
    bad_ok = bad.rollbacks == args.seeds
    aa_ok = aa.rollback_rate <= 0.05
    lines = [
        f"# Rollout drills ({datetime.now(UTC):%Y-%m-%d})",
        "",
        f"Command: `python benchmarks/rollout_drills.py --seeds {args.seeds} --canaries {args.canaries}`",
        "",
        f"Settings: default `[rollout]`: steps {settings.steps} %, min {settings.min_runs} runs and "
        f"{settings.min_minutes:g} min per step, alpha {settings.alpha}, rollback_on "
        f"{settings.rollback_on.model_dump()}. Simulated traffic: 40 runs per 15 s tick, stable fails 10%.",
        "",
        "## (a) Bad canary (fails 15 points more often)",
        "",
        f"- rolled back automatically: {bad.rollbacks} of {args.seeds} seeds -> "
        f"{'PASS' if bad_ok else 'FAIL'}",
        f"- canary runs until the rollback: median {runs[0] if runs else '-'}, "
        f"max {runs[1] if runs else '-'}",
        f"- wall time {bad_s:.1f} s",
        "",
        "## (b) A/A (identical releases)",
        "",
        f"- false rollbacks: {aa.rollbacks} of {len(aa.outcomes)} ({aa.rollback_rate:.1%}); "
        f"limit 5% -> {'PASS' if aa_ok else 'FAIL'}",
        f"- promoted {promoted}, undecided {undecided}",
        f"- wall time {aa_s:.1f} s",
        "",
        "## Per-run cost of choosing a release",
        "",
        "`assign()` on a live snapshot with a canary at 25% and two internal users, 20,000 users per round,",
        "7 rounds interleaved with an empty loop over the same users (microseconds per run):",
        "",
        "| | median | min | max |",
        "|---|---|---|---|",
        f"| assign | {statistics.median(choosing):.2f} | {min(choosing):.2f} | {max(choosing):.2f} |",
        f"| empty loop | {statistics.median(empty):.3f} | {min(empty):.3f} | {max(empty):.3f} |",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
