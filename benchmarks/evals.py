"""How long does the example suite take, x3 trials, with the scripted model?

Runs every suite in `examples/support_agent/evals/` through `tether.evals.runner.EvalRunner` (the
same code as `tether eval run`: the one run loop, a throwaway data copy per trial) on a private copy
of the example project and a scratch database, and writes `results/evals-<date>.md`.

    python benchmarks/evals.py --trials 3 --concurrency 4
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "support_agent"


async def measure(
    trials: int, concurrency: int, database_url: str | None, scratch: Path
) -> dict[str, object]:
    from tether.evals.cases import load_suites
    from tether.evals.runner import EvalRunner
    from tether.evals.stats import percentile
    from tether.rollout.releases import working_copy_release
    from tether.settings import Settings
    from tether.store.repository import Store

    project = scratch / "support_agent"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".tether", "data", "__pycache__"))
    url = database_url or f"sqlite+aiosqlite:///{scratch / 'bench.db'}"
    store = await Store.open(url)
    try:
        release = await working_copy_release(store, project)
        suites = load_suites(project)
        runner = EvalRunner(store, Settings(), project, release, trials=trials, concurrency=concurrency)
        started = time.perf_counter()
        eval_run, results = await runner.run(suites)
        elapsed = time.perf_counter() - started
    finally:
        await store.close()
    latencies = [t["latency_ms"] for r in results for t in r.trial_results]
    return {
        "cases": len(results),
        "suites": len(suites),
        "trials": trials,
        "runs": len(latencies),
        "concurrency": concurrency,
        "database": "postgresql" if url.startswith("postgresql") else "sqlite",
        "seconds": elapsed,
        "runs_per_second": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "pass_rate": eval_run.summary["pass_rate"],
    }


def report(result: dict[str, object]) -> str:
    return "\n".join(
        [
            f"# Eval suite benchmark, {datetime.now(UTC):%Y-%m-%d}",
            "",
            f"Command: `python benchmarks/evals.py --trials {result['trials']} "
            f"--concurrency {result['concurrency']}"
            + (" --database-url <postgres>`" if result["database"] == "postgresql" else "`"),
            "",
            f"Machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()}; "
            f"database {result['database']}; other engineers' processes were running on the same machine.",
            "",
            "| suites | cases | trials | runs | concurrency | wall time | runs/s | run latency p50 | p95 "
            "| pass rate |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
            f"| {result['suites']} | {result['cases']} | {result['trials']} | {result['runs']} "
            f"| {result['concurrency']} | {result['seconds']:.1f} s | {result['runs_per_second']:.1f} "
            f"| {result['p50_ms']:.0f} ms | {result['p95_ms']:.0f} ms "
            f"| {float(str(result['pass_rate'])) * 100:.1f}% |",
            "",
            "Run latency is execute-to-end of one run as the runner measures it, so it includes waiting for",
            "the database while the other runs in flight write (SQLite serialises writers).",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--database-url", default=None, help="default: a scratch SQLite file")
    parser.add_argument("--no-write", action="store_true", help="print only; do not write results/")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tether-bench-evals-") as scratch:
        os.environ["TETHER_CODE_CACHE"] = str(Path(scratch) / "code")
        os.environ["TETHER_DATA_DIR"] = str(Path(scratch) / "data")
        os.environ.setdefault("TETHER_LOG_LEVEL", "warning")
        result = asyncio.run(measure(args.trials, args.concurrency, args.database_url, Path(scratch)))
    text = report(result)
    print(text)
    if not args.no_write:
        suffix = "" if result["database"] == "sqlite" else "-postgres"
        path = REPO / "benchmarks" / "results" / f"evals-{datetime.now(UTC):%Y-%m-%d}{suffix}.md"
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
