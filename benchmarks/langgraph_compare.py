"""Side by side with LangGraph: the same durable 3-step agent, interleaved, on SQLite and PostgreSQL.

The agent on both sides: an instant scripted model asks for `lookup_order(order_id="12345")`, the
tool looks the order up in memory, the model answers (3 steps). Every step is durable before the
next one starts:

- Tether: its real run loop (`Runtime.submit` + `Runtime.execute`, the calls the CLI, the API's
  worker and the eval runner make), tracing and metrics on, spans stored per run.
- LangGraph: a `StateGraph` (model node, tool node) with `durability="sync"`, checkpointed by
  `SqliteSaver`, `PostgresSaver`, or `AsyncPostgresSaver` on a psycopg pool of 8.

SQLite runs in WAL mode with synchronous=FULL on both sides. Configurations:

  sqlite        one run at a time on a SQLite file
  postgres      one run at a time on PostgreSQL
  postgres-8    8 runs in flight on PostgreSQL (Tether: 8 concurrent executions in one process)

Every measurement is a fresh process (the LangGraph side in its own virtual environment, created on
first use under `benchmarks/.langgraph-venv/`, which git ignores; LangGraph is never a dependency of
Tether) on a fresh database; it does `--warmup` runs, then times `--runs` runs. Rounds interleave
the two sides (Tether, LangGraph, Tether, ... for each configuration), so load from other processes
on the machine hits both alike. Reported per configuration: runs/s median [min-max] per side, the
ratio Tether/LangGraph per round (median [min-max]), and CPU time per step: the process's CPU time
(all threads) over the timed runs, minus (for Tether) the CPU spent inside the scripted model.

    python benchmarks/langgraph_compare.py --rounds 5
    python benchmarks/langgraph_compare.py --configs sqlite --rounds 7 --runs 100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))

from service_helpers import machine_info, markdown_table, scratch_postgres  # noqa: E402

LANGGRAPH_VENV = HERE / ".langgraph-venv"
LANGGRAPH_PACKAGES = [
    "langgraph>=1.0,<2",
    "langgraph-checkpoint-sqlite>=3,<4",
    "langgraph-checkpoint-postgres>=3,<4",
    "psycopg[binary]>=3.2",
    "psycopg-pool>=3.2",
]
CONFIGS = ("sqlite", "postgres", "postgres-8")
DEFAULT_PG = os.environ.get("TETHER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TASK = "Where is my order 12345?"
RESULT_MARK = "BENCH-RESULT "

TOOLS = '''
import json

from tether import tool

ORDERS = {"12345": {"order_id": "12345", "status": "shipped", "carrier": "DHL", "eta": "2026-12-02"}}


@tool
def lookup_order(order_id: str) -> str:
    """Look an order up by its number.

    Args:
        order_id: The order number.
    """
    return json.dumps(ORDERS.get(order_id, {"error": "no such order"}))
'''

POLICY = """
from tether.models.scripted import ScriptedTurn


def respond(turn: ScriptedTurn):
    if turn.observations:
        return f"Your order: {turn.observations[-1].content}"
    return turn.call("lookup_order", order_id="12345")
"""

CONFIG = """
[agent]
name = "bench-agent"
owner = "bench@example.com"

[model]
primary = "scripted:bench-v1"
scripted_policy = "policy:respond"
"""


# -- the Tether side (runs in this interpreter, in a child process) ---------------------------------


def write_project(root: Path) -> Path:
    (root / "prompts").mkdir(parents=True)
    (root / "prompts" / "system.md").write_text("You look orders up.")
    (root / "tools.py").write_text(textwrap.dedent(TOOLS))
    (root / "policy.py").write_text(textwrap.dedent(POLICY))
    (root / "tether.toml").write_text(textwrap.dedent(CONFIG))
    return root


async def tether_side(config: str, url: str, runs: int, warmup: int) -> dict[str, Any]:
    from tether.observe.logs import configure_logging
    from tether.observe.service import Telemetry
    from tether.rollout.releases import working_copy_release
    from tether.runtime.service import Runtime
    from tether.settings import Settings
    from tether.store.records import RunStatus
    from tether.store.repository import Store

    configure_logging(fmt="json", level="WARNING")  # what `tether run` logs; tracing + metrics stay on
    workdir = Path(tempfile.mkdtemp(prefix="tether-bench-"))
    project = write_project(workdir / "agent")
    settings = Settings()
    store = await Store.open(url)
    telemetry = Telemetry(store, settings)
    runtime = Runtime(store, settings, data_dir=workdir / "data", observer=telemetry.observer)
    release = await working_copy_release(store, project)
    chain = runtime.agents.load(release).model
    model_cpu = [0.0]
    chat = chain.chat

    async def timed_chat(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()  # the scripted model never awaits: this is its own CPU time
        try:
            return await chat(*args, **kwargs)
        finally:
            model_cpu[0] += time.thread_time() - started

    chain.chat = timed_chat  # type: ignore[method-assign]

    async def one() -> None:
        run = await runtime.submit(release, user_id="u1", origin="cli", input=TASK)
        done = await runtime.execute(run.id)
        if done.status != RunStatus.SUCCEEDED or done.steps_used != 3:
            raise RuntimeError(f"run {done.id} ended {done.status} after {done.steps_used} steps")

    in_flight = 8 if config == "postgres-8" else 1
    gate = asyncio.Semaphore(in_flight)

    async def many(count: int) -> None:
        async def guarded() -> None:
            async with gate:
                await one()

        await asyncio.gather(*(guarded() for _ in range(count)))

    try:
        await many(warmup)
        model_cpu[0] = 0.0
        wall, cpu = time.perf_counter(), time.process_time()
        await many(runs)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        await telemetry.close()
        await store.close()
    return {"runs": runs, "steps": 3, "wall_s": wall, "cpu_s": cpu, "model_cpu_s": model_cpu[0]}


# -- the orchestrator ----------------------------------------------------------------------------


def langgraph_python() -> Path:
    """The LangGraph virtual environment's interpreter, created and filled on first use."""
    python = LANGGRAPH_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {LANGGRAPH_VENV.relative_to(REPO)} with {', '.join(LANGGRAPH_PACKAGES)}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(LANGGRAPH_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *LANGGRAPH_PACKAGES], check=True)
    return python


def langgraph_version(python: Path) -> str:
    out = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('langgraph'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def measure(side: str, config: str, target: str, runs: int, warmup: int, python: Path) -> dict[str, Any]:
    """One measurement in a fresh process; returns its JSON result."""
    if side == "tether":
        command = [sys.executable, str(Path(__file__)), "--side", "tether", "--configs", config]
        command += ["--target", target, "--runs", str(runs), "--warmup", str(warmup)]
    else:
        backend_target = target.replace("postgresql+psycopg://", "postgresql://")
        command = [str(python), str(HERE / "langgraph_side.py"), "--backend", config]
        command += ["--target", backend_target, "--runs", str(runs), "--warmup", str(warmup)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_MARK)] or [
        line for line in done.stdout.splitlines() if line.startswith("{")
    ]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{side}/{config} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return json.loads(lines[-1].removeprefix(RESULT_MARK))  # type: ignore[no-any-return]


def fresh_target(config: str, stack: ExitStack, scratch: Path, pg_admin: str) -> str:
    if config == "sqlite":
        return str(scratch / f"bench-{time.monotonic_ns()}.db")
    return stack.enter_context(scratch_postgres(pg_admin, prefix="tether_lgcmp"))


def sqlite_url(path: str) -> str:
    return f"sqlite+aiosqlite:///{path}"


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} [{min(values):.1f}-{max(values):.1f}]"


def ratio_summary(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}x [{min(values):.2f}-{max(values):.2f}]"


def run_rounds(args: argparse.Namespace) -> str:
    python = langgraph_python()
    configs = [c for c in args.configs.split(",") if c]
    results: dict[str, dict[str, list[dict[str, Any]]]] = {
        c: {"tether": [], "langgraph": []} for c in configs
    }
    with tempfile.TemporaryDirectory(prefix="lgcmp-") as scratch_dir:
        scratch = Path(scratch_dir)
        for round_no in range(1, args.rounds + 1):
            for config in configs:
                # alternate which side goes first, so neither always runs on a warmer machine
                order = ("tether", "langgraph") if round_no % 2 else ("langgraph", "tether")
                for side in order:
                    with ExitStack() as stack:
                        target = fresh_target(config, stack, scratch, args.database_url)
                        if side == "tether" and config == "sqlite":
                            target = sqlite_url(target)
                        runs = args.runs if config == "sqlite" else args.pg_runs
                        result = measure(side, config, target, runs, args.warmup, python)
                    results[config][side].append(result)
                    rate = result["runs"] / result["wall_s"]
                    print(f"round {round_no} {config:<10} {side:<9} {rate:7.1f} runs/s", flush=True)
    return report(args, configs, results, langgraph_version(python))


def report(
    args: argparse.Namespace,
    configs: list[str],
    results: dict[str, dict[str, list[dict[str, Any]]]],
    lg_version: str,
) -> str:
    def rate(r: dict[str, Any]) -> float:
        return float(r["runs"] / r["wall_s"])

    def cpu_ms_per_step(r: dict[str, Any]) -> float:
        return float((r["cpu_s"] - (r.get("model_cpu_s") or 0.0)) / (r["runs"] * r["steps"]) * 1000)

    names = {
        "sqlite": ("SQLite file, 1 run at a time", "SqliteSaver, sync"),
        "postgres": ("PostgreSQL, 1 run at a time", "PostgresSaver, sync"),
        "postgres-8": ("PostgreSQL, 8 runs in flight", "AsyncPostgresSaver (pool 8), sync"),
    }
    rows = [
        "| configuration | Tether runs/s | LangGraph runs/s | ratio Tether/LangGraph | Tether CPU ms/step "
        "(control plane) | LangGraph CPU ms/step |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for config in configs:
        ours, theirs = results[config]["tether"], results[config]["langgraph"]
        ratios = [rate(a) / rate(b) for a, b in zip(ours, theirs, strict=True)]
        rows.append(
            f"| {names[config][0]} (LangGraph: {names[config][1]}) | {summary([rate(r) for r in ours])} | "
            f"{summary([rate(r) for r in theirs])} | {ratio_summary(ratios)} | "
            f"{summary_ms([cpu_ms_per_step(r) for r in ours])} | "
            f"{summary_ms([cpu_ms_per_step(r) for r in theirs])} |"
        )
    machine = machine_info(args.database_url if any(c != "sqlite" for c in configs) else None)
    machine.append(("langgraph", lg_version))
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join(
        [
            f"# Tether vs LangGraph, {stamp}",
            "",
            f"`python benchmarks/langgraph_compare.py --rounds {args.rounds} --runs {args.runs} "
            f"--pg-runs {args.pg_runs} --warmup {args.warmup} --configs {','.join(configs)}`",
            "",
            "Median [min-max] over the rounds; the ratio is taken per round (both sides measured back "
            "to back), then summarised. CPU per step is the process CPU time over the timed runs "
            "divided by steps (Tether: minus the scripted model's own CPU time).",
            "",
            *rows,
            "",
            "Machine:",
            "",
            markdown_table(machine),
            "",
        ]
    )


def summary_ms(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} [{min(values):.2f}-{max(values):.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated: " + ", ".join(CONFIGS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=60, help="timed runs per SQLite measurement")
    parser.add_argument("--pg-runs", type=int, default=40, help="timed runs per PostgreSQL measurement")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--database-url", default=DEFAULT_PG, help="PostgreSQL server for scratch databases")
    parser.add_argument("--out", type=Path, help="write the Markdown report here as well")
    parser.add_argument("--side", choices=["tether"], help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side == "tether":
        result = asyncio.run(tether_side(args.configs, args.target, args.runs, args.warmup))
        print(RESULT_MARK + json.dumps(result), flush=True)
        return
    text = run_rounds(args)
    print(text)
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
