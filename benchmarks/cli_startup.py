"""How long does a `tether` command take to start, before and after the lazy-import work?

    python benchmarks/cli_startup.py --rounds 7    # from the repository root, in the project's environment

"Before" is the code of a base commit (default 4a97fa1, the last commit before the CLI became a
package with lazy imports), extracted with `git archive` into a temporary folder and run with that
folder first on PYTHONPATH; "after" is this checkout's `src/`. Both run in the same interpreter with
the same installed libraries, so only Tether's own code differs. Each side gets its own copy of the
example agent and its own SQLite database, migrated and holding a few runs (made by that side's
own `tether run`), so `runs list` reads a small real database.

Every round runs each command once per side, alternating which side goes first, and times the
whole process (wall clock) plus its CPU time. It prints median/min/max per command and side and
writes `results/cli-startup-<date>.md` (`--no-write` skips the file).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from service_helpers import machine_info  # noqa: E402

EXAMPLE = REPO / "examples" / "support_agent"
ENTRY = "import sys; sys.argv[0] = 'tether'; from tether.cli import main; main()"
COMMANDS = (("--help",), ("runs", "list"), ("release", "list"))


@dataclass
class Side:
    name: str
    src: Path
    project: Path
    env: dict[str, str]
    wall: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)

    def tether(self, *args: str) -> tuple[float, float]:
        """Run `tether ARGS` once; (wall seconds, CPU seconds of the child)."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", ENTRY, *args],
            env=self.env,
            cwd=self.project,
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise SystemExit(f"{self.name}: tether {' '.join(args)} failed:\n{done.stderr}")
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return wall, cpu


def extract(commit: str, into: Path) -> Path:
    """The `src/` folder of COMMIT, written under INTO (no worktree, no checkout)."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", commit, "src"],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def make_side(name: str, src: Path, scratch: Path, seed_runs: int) -> Side:
    project = scratch / name / "support_agent"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".tether", "__pycache__"))
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("TETHER_") and key not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")
    }
    env.update(
        PYTHONPATH=str(src),
        TETHER_DATABASE_URL=f"sqlite+aiosqlite:///{scratch / name / 'tether.db'}",
        TETHER_CODE_CACHE=str(scratch / name / "code"),
        COLUMNS="200",
    )
    side = Side(name, src, project, env)
    for _ in range(seed_runs):
        side.tether("run", "--user", "u1", "Where is my order 12345?")
    return side


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} / {min(values):.3f} / {max(values):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--base", default="4a97fa1", help="Commit for the 'before' side.")
    parser.add_argument("--rounds", type=int, default=7, help="Runs of each command per side (>= 5).")
    parser.add_argument("--seed-runs", type=int, default=3, help="Runs stored in each side's database.")
    parser.add_argument("--no-write", action="store_true", help="Do not write results/cli-startup-<date>.md.")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tether-cli-startup-") as tmp:
        scratch = Path(tmp)
        sides = [
            make_side("before", extract(args.base, scratch / "base"), scratch, args.seed_runs),
            make_side("after", REPO / "src", scratch, args.seed_runs),
        ]
        load_start = os.getloadavg()[0]
        for round_no in range(args.rounds):
            for command in COMMANDS:
                label = "tether " + " ".join(command)
                for side in sides if round_no % 2 == 0 else reversed(sides):
                    wall, cpu = side.tether(*command)
                    side.wall.setdefault(label, []).append(wall)
                    side.cpu.setdefault(label, []).append(cpu)
        load_end = os.getloadavg()[0]

    lines = [
        f"# CLI start-up, {datetime.now(UTC).date().isoformat()}",
        "",
        f"`python benchmarks/cli_startup.py --rounds {args.rounds} --base {args.base}`: "
        f"before = `{args.base}`, after = this checkout; {args.rounds} interleaved rounds; seconds, "
        f"median / min / max. Load average "
        f"(1 min) {load_start:.1f} at the start and {load_end:.1f} at the end: the machine was "
        f"{'busy' if max(load_start, load_end) > (os.cpu_count() or 1) else 'quiet'}, which inflates "
        "wall time more than CPU time.",
        "",
        "| command | before wall | after wall | before CPU | after CPU | median speed-up (wall) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    before, after = sides
    for label in before.wall:
        speedup = statistics.median(before.wall[label]) / statistics.median(after.wall[label])
        lines.append(
            f"| `{label}` | {summary(before.wall[label])} | {summary(after.wall[label])} | "
            f"{summary(before.cpu[label])} | {summary(after.cpu[label])} | {speedup:.1f}x |"
        )
    machine = [f"| {key} | {value} |" for key, value in machine_info()]
    lines += ["", "| machine | |", "| --- | --- |", *machine]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        out = REPO / "benchmarks" / "results" / f"cli-startup-{datetime.now(UTC).date().isoformat()}.md"
        out.write_text(text, encoding="utf-8")
        print(f"wrote {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
