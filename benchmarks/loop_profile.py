"""The Tether side of `langgraph_compare.py` alone, for profiling the run loop's hot path.

Runs `tether_side` (the real `Runtime.submit` + `Runtime.execute` of the 3-step agent, tracing and
metrics on) on a fresh SQLite file and prints one JSON line: control-plane CPU per step, runs/s,
and how many calls the process made on aiosqlite's connection threads per run (each one is a
hand-off to the driver's thread and a wake-up of the event loop).

    python benchmarks/loop_profile.py --runs 60
    py-spy record --gil --threads -r 300 -f raw -o profile.txt -- python benchmarks/loop_profile.py --runs 150
    PYTHONPATH=/path/to/other/checkout/src python benchmarks/loop_profile.py   # the same, on other code
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiosqlite.core

sys.path.insert(0, str(Path(__file__).resolve().parent))

from langgraph_compare import tether_side


def count_trips(warmup: int) -> list[int]:
    """Count every call run on an aiosqlite connection's thread once the warm-up runs are submitted."""
    from tether.runtime.service import Runtime

    trips, submitted = [0], [0]
    execute, submit = aiosqlite.core.Connection._execute, Runtime.submit

    async def counted(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        trips[0] += submitted[0] > warmup
        return await execute(self, fn, *args, **kwargs)

    async def submitting(self: Runtime, *args: Any, **kwargs: Any) -> Any:
        submitted[0] += 1
        return await submit(self, *args, **kwargs)

    aiosqlite.core.Connection._execute = counted  # type: ignore[method-assign]
    Runtime.submit = submitting  # type: ignore[method-assign]
    return trips


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    trips = count_trips(args.warmup)
    url = f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp(prefix='loop-profile-')) / 'bench.db'}"
    result = asyncio.run(tether_side("sqlite", url, args.runs, args.warmup))
    steps = result["runs"] * result["steps"]
    print(
        json.dumps(
            {
                "runs": result["runs"],
                "cpu_ms_per_step": round((result["cpu_s"] - result["model_cpu_s"]) / steps * 1000, 2),
                "runs_per_s": round(result["runs"] / result["wall_s"], 1),
                "aiosqlite_trips_per_run": round(trips[0] / args.runs, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
