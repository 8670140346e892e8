"""What do tracing, metrics and logs add to a step of the run loop? Off and on, side by side.

One SQLite database, one small scripted agent (model -> `add` tool, `--calls` times, -> answer:
2 * calls + 1 steps per run, no network, the tool returns at once, so the step cost is Tether's
own: durable step writes, the loop, and, when on, the observer). Two `Runtime`s share the store:
one with no observer, one with the real `Telemetry` observer (spans stored in the database at the
end of each execution, Prometheus counters, a JSON log line per event into /dev/null, redaction
included). Runs alternate off/on so both see the same database size and machine noise. Reported:
wall time per step (claim to end of run, divided by the steps), median and mean, and the ratio.

    python benchmarks/observability_overhead.py --runs 400
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from service_helpers import machine_info

from tether.observe.logs import configure_logging
from tether.observe.service import Telemetry
from tether.rollout.releases import working_copy_release
from tether.runtime.service import Runtime
from tether.settings import Settings
from tether.store.repository import Store

RESULTS = Path(__file__).resolve().parent / "results"

TOOLS = '''
from tether import tool

@tool
def add(a: int, b: int) -> int:
    """Add two numbers.

    Args:
        a: First number.
        b: Second number.
    """
    return a + b
'''

POLICY = """
from tether.models.scripted import ScriptedTurn

def respond(turn: ScriptedTurn):
    calls = int(turn.user_input)
    if len(turn.observations) < calls:
        return turn.call("add", a=len(turn.observations), b=1)
    return "done: " + turn.observations[-1].content
"""


def write_project(root: Path) -> Path:
    (root / "prompts").mkdir(parents=True)
    (root / "prompts" / "system.md").write_text("You add numbers.")
    (root / "tools.py").write_text(TOOLS)
    (root / "policy.py").write_text(textwrap.dedent(POLICY))
    (root / "tether.toml").write_text(
        textwrap.dedent(
            """\
            [agent]
            name = "overhead"
            owner = "bench@example.com"

            [model]
            primary = "scripted:bench-v1"
            scripted_policy = "policy:respond"

            [limits]
            max_steps = 64

            [prices."scripted:bench-v1"]
            input_per_mtok = 1.0
            output_per_mtok = 2.0
            """
        )
    )
    return root


async def bench(runs: int, calls: int, warmup: int) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        project = write_project(root / "project")
        os.environ["TETHER_CODE_CACHE"] = str(root / "code")
        settings = Settings(database_url=f"sqlite+aiosqlite:///{root / 'bench.db'}")
        store = await Store.open(str(settings.database_url))
        telemetry = Telemetry(store, settings)
        try:
            release = await working_copy_release(store, project)
            shapes = {
                "off": Runtime(store, settings, data_dir=root / "data"),
                "on": Runtime(store, settings, data_dir=root / "data", observer=telemetry.observer),
            }
            per_step: dict[str, list[float]] = {"off": [], "on": []}
            for index in range(warmup + runs):
                order = ("off", "on") if index % 2 == 0 else ("on", "off")
                for shape in order:
                    queued = await shapes[shape].submit(release, user_id="bench", input=str(calls))
                    started = time.perf_counter()
                    done = await shapes[shape].execute(queued.id)
                    elapsed = time.perf_counter() - started
                    assert done.status == "succeeded", done
                    if index >= warmup:
                        per_step[shape].append(elapsed * 1000 / done.steps_used)
            stored = len(await store.telemetry.list_spans(run_id=queued.id))
            assert stored > 0 or shape == "off"
            return per_step
        finally:
            await telemetry.close()
            await store.close()


def _row(label: str, off: float, on: float) -> str:
    return f"| {label} | {off:.3f} | {on:.3f} | {on / off:.3f} | {on - off:.3f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=400, help="measured runs per shape")
    parser.add_argument("--calls", type=int, default=4, help="tool calls per run (steps = 2 * calls + 1)")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    devnull = open(os.devnull, "w")  # noqa: SIM115  # the log sink for the whole run
    configure_logging(fmt="json", level="INFO", secrets=["not-a-real-secret"], stream=devnull)
    now = datetime.now(UTC)
    per_step = asyncio.run(bench(args.runs, args.calls, args.warmup))
    off, on = per_step["off"], per_step["on"]
    med_off, med_on = statistics.median(off), statistics.median(on)
    mean_off, mean_on = statistics.fmean(off), statistics.fmean(on)
    lines = [
        f"# Observability overhead per step, {now:%Y-%m-%d %H:%M} UTC",
        "",
        f"`python benchmarks/observability_overhead.py --runs {args.runs} --calls {args.calls}`",
        "",
        f"{args.runs} runs per shape after {args.warmup} warm-up pairs, alternating off/on, "
        f"{2 * args.calls + 1} steps per run (model -> add x{args.calls} -> answer), SQLite, scripted model.",
        "",
        "| | |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in machine_info()),
        "",
        "| per step | off | on | on / off | on - off |",
        "|---|---|---|---|---|",
        _row("median (ms)", med_off, med_on),
        _row("mean (ms)", mean_off, mean_on),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        target = RESULTS / f"observability-overhead-{now:%Y-%m-%d}.md"
        target.write_text(text)
        print(f"wrote {target}", file=sys.stderr)


if __name__ == "__main__":
    main()
