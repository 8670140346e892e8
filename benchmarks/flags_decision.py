"""What do feature flags and experiments add to submitting a run?

    python benchmarks/flags_decision.py --rounds 7    # from the repository root, in the project's environment

Two measurements, in one process on a scratch SQLite database:

1. The decision alone (`RunDecider.__call__`: every flag evaluated for the run, then the experiment
   arm), in microseconds per call, for 0, 10 and 100 flags (each with a tenant rule, a user-list
   rule, an attribute rule and a 10% sticky rule) and one running experiment.
2. `Runtime.submit` (the stored, durable create of a queued run) with no decider installed, with the
   decider and no flags, and with the decider and 100 flags + one experiment; milliseconds per run.

Each round runs every configuration once, in a rotating order (interleaved), and the script prints
median / min / max over rounds and writes `results/flags-decision-<date>.md` (`--no-write` skips it).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from service_helpers import machine_info  # noqa: E402

from tether.rollout.experiments import start_experiment  # noqa: E402
from tether.rollout.releases import working_copy_release  # noqa: E402
from tether.rollout.wiring import RunDecider, install  # noqa: E402
from tether.runtime.service import Runtime  # noqa: E402
from tether.runtime.submission import RunSubject  # noqa: E402
from tether.settings import Settings  # noqa: E402
from tether.store.flag_records import ExperimentArm, ExperimentSpec, FlagRule, FlagSpec  # noqa: E402
from tether.store.records import RunOrigin  # noqa: E402
from tether.store.repository import Store  # noqa: E402

EXAMPLE = REPO / "examples" / "support_agent"


def flag_spec(i: int) -> FlagSpec:
    return FlagSpec(
        enabled=True,
        default=False,
        rules=(
            FlagRule(value=True, tenants=(f"tenant-{i}",)),
            FlagRule(value=True, users=tuple(f"vip-{j}" for j in range(20))),
            FlagRule(value=True, attributes={"plan": ("pro", "team")}),
            FlagRule(value=True, percentage=10),
        ),
    )


async def runtime_with(url: str, flags: int, decider: bool) -> Runtime:
    store = await Store.open(url)
    runtime = Runtime(store, Settings(), data_dir=Path(tempfile.mkdtemp()))
    if decider:
        install(runtime)
    await runtime.live.ready()
    return runtime


async def prepare(url: str, flags: int) -> None:
    store = await Store.open(url)
    runtime = Runtime(store, Settings(), data_dir=Path(tempfile.mkdtemp()))
    for i in range(flags):
        await store.flags.put(f"flag-{i}", flag_spec(i), actor="bench", reason="bench")
    release = (await working_copy_release(store, EXAMPLE)).version  # both arms: the same release
    arms = (
        ExperimentArm(name="a", weight=1, release=release),
        ExperimentArm(name="b", weight=1, release=release),
    )
    await start_experiment(store, runtime.live, "bench", ExperimentSpec(arms=arms), actor="b", reason="b")
    await store.close()


def time_decisions(decider: RunDecider, calls: int) -> float:
    subjects = [
        RunSubject("default", f"user-{i}", RunOrigin.API, {"plan": "free" if i % 2 else "pro"})
        for i in range(calls)
    ]
    start = time.perf_counter()
    for subject in subjects:
        decider(subject)
    return (time.perf_counter() - start) / calls * 1e6


async def time_submits(runtime: Runtime, calls: int) -> float:
    release = await working_copy_release(runtime.store, EXAMPLE)
    start = time.perf_counter()
    for i in range(calls):
        await runtime.submit(release, user_id=f"user-{i}", input="hello", origin=RunOrigin.API)
    return (time.perf_counter() - start) / calls * 1e3


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} / {min(values):.2f} / {max(values):.2f}"


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--decisions", type=int, default=2000, help="decisions per round and configuration")
    parser.add_argument("--submits", type=int, default=200, help="submits per round and configuration")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp())
    urls = {n: f"sqlite+aiosqlite:///{work / f'flags-{n}.db'}" for n in (0, 10, 100)}
    for n, url in urls.items():
        await prepare(url, n)
    deciders: dict[str, RunDecider] = {}
    runtimes: dict[str, Runtime] = {}
    for n, url in urls.items():
        runtime = await runtime_with(url, n, decider=True)
        assert runtime.decide_run is not None
        deciders[f"{n} flags + 1 experiment"] = runtime.decide_run  # type: ignore[assignment]
    runtimes["no decider"] = await runtime_with(urls[0], 0, decider=False)
    runtimes["decider, 0 flags + 1 experiment"] = await runtime_with(urls[0], 0, decider=True)
    runtimes["decider, 100 flags + 1 experiment"] = await runtime_with(urls[100], 100, decider=True)

    decision_us: dict[str, list[float]] = {name: [] for name in deciders}
    submit_ms: dict[str, list[float]] = {name: [] for name in runtimes}
    for round_ in range(args.rounds):
        names = list(deciders)
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            decision_us[name].append(time_decisions(deciders[name], args.decisions))
        names = list(runtimes)
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            submit_ms[name].append(await time_submits(runtimes[name], args.submits))
        print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)

    lines = [
        f"# Flags and experiments at submission, {datetime.now(UTC):%Y-%m-%d}",
        "",
        f"`python benchmarks/flags_decision.py --rounds {args.rounds}`: {args.rounds} interleaved rounds, "
        f"{args.decisions} decisions and {args.submits} submits per round and configuration; "
        "median / min / max over rounds. "
        "Each flag has four rules (tenant, 20-user list, attribute, 10% sticky).",
        "",
        "| the decision alone (`RunDecider`) | µs per run |",
        "| --- | --- |",
        *[f"| {name} | {summary(values)} |" for name, values in decision_us.items()],
        "",
        "| `Runtime.submit` on SQLite (a durable queued run) | ms per run |",
        "| --- | --- |",
        *[f"| {name} | {summary(values)} |" for name, values in submit_ms.items()],
        "",
        "| machine | |",
        "| --- | --- |",
        *[f"| {key} | {value} |" for key, value in machine_info()],
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        target = REPO / "benchmarks" / "results" / f"flags-decision-{datetime.now(UTC):%Y-%m-%d}.md"
        target.write_text(text)
        print(f"wrote {target.relative_to(REPO)}", file=sys.stderr)
    for runtime in runtimes.values():
        await runtime.store.close()


if __name__ == "__main__":
    asyncio.run(main())
