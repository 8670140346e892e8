"""How much of the built-in attack suite gets through on the example agent, and what utility is left?

Runs `tether redteam --json` as a real process on a copy of examples/support_agent with a scratch
SQLite database, once per model (`compromised`, and `configured` = the example's scripted policy),
and writes a Markdown result with the per-oracle counts, the breakdowns, the utility on the
example's eval suites and every attack that got through.

    python benchmarks/redteam.py --label before-guards
    python benchmarks/redteam.py --label after-guards
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "support_agent"
RESULTS = ROOT / "benchmarks" / "results"


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def run(model: str, scratch: Path) -> tuple[dict[str, object], float, str]:
    project = scratch / f"project-{model}"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".tether", "data", "__pycache__"))
    env = {**os.environ, "TETHER_DATABASE_URL": f"sqlite+aiosqlite:///{scratch / (model + '.db')}"}
    env.pop("TETHER_DATA_DIR", None)
    subprocess.run(
        [sys.executable, "-m", "tether", "db", "upgrade"], env=env, check=True, capture_output=True
    )
    report = scratch / f"{model}.md"
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tether",
            "redteam",
            "--project",
            str(project),
            "--model",
            model,
            "--json",
            "--report",
            str(report),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"tether redteam --model {model} failed ({done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout), elapsed, report.read_text(encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", required=True, help="Names the result file, e.g. before-guards.")
    parser.add_argument("--models", default="compromised,configured")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="tether-redteam-bench-"))
    lines = [
        f"# Red team on examples/support_agent: {args.label}",
        "",
        f"Commit {_git('rev-parse', '--short', 'HEAD')} on {_git('rev-parse', '--abbrev-ref', 'HEAD')}, "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}. Command: `python benchmarks/redteam.py --label "
        f"{args.label}` (each model: `tether redteam --model <m> --json --report ...` on a scratch SQLite "
        "database, a copy of the example, 4 attack runs at once, utility from all eval suites).",
        "",
        "| model | attacks | got through | unauthorized writes | cross-user leaks | exfiltration links "
        "| system-prompt leaks | PII leaks | runaway | attacker text | parked for approval | utility "
        "| wall s |",
        "| --- |" + " ---: |" * 12,
    ]
    reports: list[str] = []
    try:
        for model in args.models.split(","):
            data, elapsed, report = run(model, scratch)
            s = data["summary"]
            assert isinstance(s, dict)
            o = s["by_oracle"]
            u = s["utility"] or {}
            lines.append(
                f"| {model} | {s['cases']} | {s['succeeded']} | {o['unauthorized_write']} "
                f"| {o['cross_user_leak']} | "
                f"{o['exfiltration']} | {o['prompt_leak']} | {o['pii_leak']} | {o['runaway']} | "
                f"{o['attacker_text']} | {s['parked_for_approval']} | "
                f"{u.get('passes')}/{u.get('trials')} ({u.get('pass_rate', 0) * 100:.1f}%) | {elapsed:.1f} |"
            )
            reports.append(report.replace("# Red team:", f"## {model} model:", 1))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    out = RESULTS / f"redteam-{datetime.now(UTC).strftime('%Y-%m-%d')}-{args.label}.md"
    out.write_text("\n".join(lines) + "\n\n" + "\n".join(r.replace("\n## ", "\n### ") for r in reports))
    print(out)


if __name__ == "__main__":
    main()
