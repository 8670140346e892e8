"""Chaos benchmark: SIGKILL random `tether worker` processes while hundreds of runs are in flight.

One `tether api` and `--workers` `tether worker` processes share a scratch PostgreSQL database (created
on the server `--database-url` points at, dropped afterwards) and Redis. Runs are submitted through the
HTTP API; every `--kill-every` seconds on average (uniform in [2/3, 4/3] of it) a random worker that is
up gets SIGKILL and a new one is started in its place. Parked runs (an interrupted non-idempotent
write waits for a retry approval) are approved through the API. Once every run is final, the runs,
their steps and events, and the tools' own execution log and side-effect tables are audited:

- every run succeeded;
- no two tool executions of one run overlapped in time (no two workers ever executed a run at once);
- the idempotent write left exactly one effect per run, keyed by its step's idempotency key;
- every step that succeeded had an execution that finished; no execution outside the run's steps.

- a non-idempotent write ran at most 1 + (retry approvals granted) times per step: each approval
  covers one attempt.

    python benchmarks/chaos.py --runs 300 --kill-every 1.5 --workers 3

Exits 1 when an invariant is violated or a run did not succeed. Bounded: the kill phase stops after
`--kill-phase` seconds, and runs still open `--settle` seconds later are reported as a failure.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from service_helpers import (  # noqa: E402 (after the path tweak)
    ChaosConfig,
    ChaosReport,
    chaos_stage,
    machine_info,
    markdown_table,
    run_chaos,
    table,
)

DEFAULT_PG = os.environ.get("TETHER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DEFAULT_REDIS = os.environ.get("TETHER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=300)
    p.add_argument("--kill-every", type=float, default=1.5, help="mean seconds between SIGKILLs")
    p.add_argument("--workers", type=int, default=3, help="worker processes kept alive")
    p.add_argument("--concurrency", type=int, default=4, help="runs per worker process")
    p.add_argument(
        "--database-url",
        default=DEFAULT_PG,
        help="PostgreSQL server (any database on it); a scratch database is created and dropped",
    )
    p.add_argument("--redis-url", default=DEFAULT_REDIS, help="'' to run without Redis")
    p.add_argument("--lease-seconds", type=float, default=2.0)
    p.add_argument("--poll-s", type=float, default=0.05, help="TETHER_WORKER_POLL_S")
    p.add_argument("--lookups", type=int, default=3, help="read-tool calls per run")
    p.add_argument("--tool-min", type=float, default=0.1, help="shortest tool call (s)")
    p.add_argument("--tool-max", type=float, default=0.3, help="longest tool call (s)")
    p.add_argument("--charge-every", type=int, default=4, help="every n-th run also charges (0: none)")
    p.add_argument("--kill-phase", type=float, default=180.0, help="stop killing after this (s)")
    p.add_argument("--settle", type=float, default=180.0, help="then wait at most this for the rest (s)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    p.add_argument("--no-write", action="store_true", help="print only; write no results file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    config = ChaosConfig(
        runs=args.runs,
        workers=args.workers,
        concurrency=args.concurrency,
        kill_every=args.kill_every,
        tool_s=(args.tool_min, args.tool_max),
        lookups=args.lookups,
        charge_every=args.charge_every,
        kill_phase_s=args.kill_phase,
        settle_s=args.settle,
        seed=args.seed,
    )
    started = datetime.now(UTC)
    machine = machine_info(args.database_url)
    with chaos_stage(
        args.database_url,
        db_prefix="tether_chaos",
        redis_url=args.redis_url or None,
        lease_s=args.lease_seconds,
        poll_s=args.poll_s,
    ) as stage:
        stage.fleet.start_api(stage.port)
        report = run_chaos(
            stage.fleet, stage.api, stage.data, config, say=lambda line: print(line, flush=True)
        )

    ok = not report.audit.violations and report.statuses == {"succeeded": config.runs}
    print()
    print(table(report.rows()))
    for line in report.audit.approval_reused:
        print("non-idempotent re-run beyond approvals:", line)
    for line in report.audit.violations[:50]:
        print("VIOLATION:", line)
    print("\nresult:", "PASS" if ok else "FAIL")

    if not args.no_write:
        args.results.mkdir(parents=True, exist_ok=True)
        out = args.results / f"chaos-{started:%Y-%m-%d}.md"
        out.write_text(render(args, config, report, machine, started, ok), encoding="utf-8")
        print(f"wrote {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")
    return 0 if ok else 1


def render(
    args: argparse.Namespace,
    config: ChaosConfig,
    report: ChaosReport,
    machine: list[tuple[str, str]],
    started: datetime,
    ok: bool,
) -> str:
    per_process = sorted(report.runs_per_worker_process.values())
    command = "python benchmarks/chaos.py " + " ".join(
        f"--{k.replace('_', '-')} {v}"
        for k, v in (
            ("runs", args.runs),
            ("kill_every", args.kill_every),
            ("workers", args.workers),
            ("concurrency", args.concurrency),
            ("seed", args.seed),
        )
    )
    lines = [
        f"# Chaos run, {started:%Y-%m-%d %H:%M} UTC — {'PASS' if ok else 'FAIL'}",
        "",
        f"`{command}` (PostgreSQL + {'Redis' if args.redis_url else 'no Redis'}, "
        f"lease {args.lease_seconds:g} s, worker poll {args.poll_s:g} s)",
        "",
        "## Machine",
        "",
        markdown_table(machine, ("", "")),
        "",
        "## Workload",
        "",
        f"- {config.runs} runs, each {config.lookups} `lookup` reads and one idempotent `record` write; "
        f"every {config.charge_every}th run also a non-idempotent `charge` write"
        if config.charge_every
        else f"- {config.runs} runs, each {config.lookups} `lookup` reads and one idempotent `record` write",
        f"- every tool call sleeps {config.tool_s[0]:g}-{config.tool_s[1]:g} s; the scripted model answers "
        "at once",
        f"- {config.workers} worker processes x concurrency {config.concurrency}; a random worker that is up "
        f"gets SIGKILL every {config.kill_every * 2 / 3:.1f}-{config.kill_every * 4 / 3:.1f} s and is "
        "replaced at once",
        "",
        "## Results",
        "",
        markdown_table(report.rows()),
        "",
        f"Runs touched per worker process: min {per_process[0] if per_process else 0}, "
        f"max {per_process[-1] if per_process else 0} over {len(per_process)} processes.",
        "",
        "## Invariants",
        "",
        "- every run final and `succeeded` (parked retries approved through the API)",
        "- no two tool executions of one run overlap in time, across all processes (an execution cut "
        "short by SIGKILL ends when its process was reaped)",
        "- the idempotent `record` write: exactly one effect row per run, keyed by its step's "
        "idempotency key",
        "- each succeeded tool step has a finished execution; no execution under a key that is not a step",
        "",
    ]
    if report.audit.violations:
        lines += ["### Violations", "", *[f"- {v}" for v in report.audit.violations[:50]], ""]
    else:
        lines += ["No invariant was violated.", ""]
    lines += [
        "## Non-idempotent writes run more often than approved",
        "",
        "Expected 0 (each retry approval covers one attempt; a non-zero count is also listed as a "
        "violation above). See "
        "`tests/test_scale_out.py::test_an_approved_retry_that_is_interrupted_again_asks_a_human_again`.",
        "",
        *([f"- {line}" for line in report.audit.approval_reused] or ["None in this run."]),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    start = time.monotonic()
    code = main()
    print(f"({time.monotonic() - start:.0f} s)")
    sys.exit(code)
