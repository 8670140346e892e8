"""How long does the whole test suite take, and does it stay green while the machine is busy?

Runs `pytest` (the README's command, plus `-n N` overrides) several times, interleaving the
variants so a change in background load hits all of them alike, and reports each variant's wall
time (median/min/max) and how many runs passed. With `--busy K`, K processes spin on the CPU for the
whole benchmark, beside the suite.

    python benchmarks/testsuite.py --variants 2,3,4 --rounds 1          # which -n is fastest
    python benchmarks/testsuite.py --variants default --rounds 3 --busy 2  # green 3x while busy

Results: benchmarks/results/testsuite-*.md. Run it from the repository root, in the venv.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _spin() -> None:
    while True:
        pass


@dataclass
class Variant:
    name: str
    args: list[str]
    walls: list[float] = field(default_factory=list)
    passed: int = 0
    summaries: list[str] = field(default_factory=list)


def _variant(spec: str) -> Variant:
    """`default` is plain `pytest` (the -n in pyproject.toml); a number N is `pytest -n N`."""
    if spec == "default":
        return Variant("pytest", [])
    return Variant(f"pytest -n {spec}", ["-n", spec])


def _summary(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    return lines[-1].strip("= ") if lines else "(no output)"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variants", default="default", help="comma-separated: default, or -n values")
    parser.add_argument("--rounds", type=int, default=1, help="times each variant runs (interleaved)")
    parser.add_argument("--busy", type=int, default=0, help="CPU-spinning processes beside the suite")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args()
    variants = [_variant(spec.strip()) for spec in args.variants.split(",")]

    spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(args.busy)]
    for spinner in spinners:
        spinner.start()
    try:
        for round_ in range(1, args.rounds + 1):
            for variant in variants:
                command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
                command += variant.args + args.pytest_args
                began = time.monotonic()
                load_before = os.getloadavg()[0]
                done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
                wall = time.monotonic() - began
                load = f"load avg (1 min) {load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end"
                variant.walls.append(wall)
                variant.passed += done.returncode == 0
                variant.summaries.append(_summary(done.stdout))
                print(
                    f"round {round_} | {variant.name} | exit {done.returncode} | {wall:.0f} s | "
                    f"{variant.summaries[-1]} | {load}",
                    flush=True,
                )
                if done.returncode != 0:
                    failed = [
                        line for line in done.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))
                    ]
                    print("\n".join(failed), flush=True)
    finally:
        for spinner in spinners:
            spinner.terminate()
            spinner.join()

    print(f"\n{args.busy} busy process(es) beside the suite, {args.rounds} round(s)\n")
    print("| command | runs | passed | median s | min s | max s |")
    print("|---|---|---|---|---|---|")
    for variant in variants:
        walls = variant.walls
        print(
            f"| `{variant.name}` | {len(walls)} | {variant.passed} | {statistics.median(walls):.0f} | "
            f"{min(walls):.0f} | {max(walls):.0f} |"
        )
    return 0 if all(v.passed == len(v.walls) for v in variants) else 1


if __name__ == "__main__":
    sys.exit(main())
