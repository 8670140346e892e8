"""What does pristine data cost per eval trial: seeding every trial, or copying a template?

`tether eval run` builds the release's `[data] seed` once per eval run into a template and copies
the template for each trial (`tether.evals.trial_data.TrialData`). This measures, interleaved, the
two ways a trial could get pristine data for the example support agent:

- seed: `tether.agent.data.build_data` into an empty folder (what seeding every trial would cost);
- copy: `TrialData.copy()` of the template (what a trial pays today).

    python benchmarks/trial_data.py --rounds 200

Writes `results/trial-data-<date>.md` (unless `--no-write`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from service_helpers import machine_info  # noqa: E402

from tether.agent.data import build_data  # noqa: E402
from tether.agent.project import load_agent, snapshot_project  # noqa: E402
from tether.evals.trial_data import TrialData  # noqa: E402

EXAMPLE = REPO / "examples" / "support_agent"


def measure(rounds: int) -> dict[str, list[float]]:
    """Milliseconds per trial for each side, the sides alternating which goes first."""
    agent = load_agent(snapshot_project(EXAMPLE))
    timings: dict[str, list[float]] = {"seed": [], "copy": []}
    with (
        tempfile.TemporaryDirectory(prefix="tether-bench-data-") as scratch,
        TrialData(agent, Path(scratch)) as data,
    ):

        def seed(index: int) -> float:
            started = time.perf_counter()
            build_data(agent, Path(scratch) / f"seeded-{index}")
            return (time.perf_counter() - started) * 1000

        def copy(_: int) -> float:
            started = time.perf_counter()
            with data.copy():
                elapsed = (time.perf_counter() - started) * 1000
            return elapsed

        for index in range(rounds):
            order = (("seed", seed), ("copy", copy)) if index % 2 == 0 else (("copy", copy), ("seed", seed))
            for name, side in order:
                timings[name].append(side(index))
    return timings


def report(timings: dict[str, list[float]], rounds: int) -> str:
    lines = [
        f"# Pristine data per eval trial, {datetime.now(UTC):%Y-%m-%d}",
        "",
        f"Command: `python benchmarks/trial_data.py --rounds {rounds}` (sides interleaved).",
        "",
        "| machine | |",
        "| --- | --- |",
        *(f"| {key} | {value} |" for key, value in machine_info()),
        "",
        "| per trial | median | min | max |",
        "| --- | --- | --- | --- |",
    ]
    labels = {"seed": "seed into an empty folder", "copy": "copy of the template (what trials do)"}
    for name in ("seed", "copy"):
        values = timings[name]
        lines.append(
            f"| {labels[name]} | {statistics.median(values):.2f} ms | {min(values):.2f} ms "
            f"| {max(values):.2f} ms |"
        )
    lines += [
        "",
        "The example's seed creates its SQLite shop (schema, 12 customers, 37 orders, 17 policy",
        "sections); the template copy is one ~50 KB file. Other engineers' processes were running.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--no-write", action="store_true", help="print only; do not write results/")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tether-bench-code-") as code:
        os.environ["TETHER_CODE_CACHE"] = code
        text = report(measure(args.rounds), args.rounds)
    print(text)
    if not args.no_write:
        path = REPO / "benchmarks" / "results" / f"trial-data-{datetime.now(UTC):%Y-%m-%d}.md"
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
