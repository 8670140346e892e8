"""Database chaos benchmark: restart PostgreSQL every 5-40 s while runs are in flight.

One `tether api` and `--workers` `tether worker` processes share a scratch database on a PostgreSQL
server that this script is allowed to restart, plus Redis. A background thread runs
`--restart-command` at random gaps (uniform in [--restart-min, --restart-max] seconds) for
`--phase` seconds. Two workloads:

- `--variant load`: runs are submitted at `--rate` per second for the whole phase (each a few short
  reads, an idempotent write, and every 4th a non-idempotent write), so restarts hit claims,
  checkpoints, lease renewals and API requests alike. Submissions answered 503 are retried after
  the `Retry-After` they carry.
- `--variant long-tool`: `--runs` runs submitted at the start, each with tool calls of
  `--tool-min`..`--tool-max` seconds (30-55 s by default), so restarts land inside long calls and
  the lease must be renewed through them.

Afterwards every run must be final and `succeeded`, and the audit of `benchmarks/chaos.py` holds: no
two executions of one run overlap in time (no two workers ever in the same run), the idempotent
write left one effect per run, and a non-idempotent write never ran more often than 1 + the retry
approvals granted. The workers' logs are scanned for how the outages were reported.

Never point this at a PostgreSQL that others use: it restarts the server. For a private one:

    pg_createcluster 15 chaos --port 5433 -- --auth=trust
    pg_ctlcluster --skip-systemctl-redirect 15 chaos start
    python benchmarks/chaos_db.py --variant load \\
        --database-url postgresql://postgres@127.0.0.1:5433/postgres \\
        --restart-command "pg_ctlcluster --skip-systemctl-redirect 15 chaos restart"

Exits 1 when an invariant is violated or a run did not succeed.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from service_helpers import (  # noqa: E402 (after the path tweak)
    FINAL,
    Api,
    Audit,
    audit,
    chaos_stage,
    machine_info,
    markdown_table,
    plan,
    status_workers,
    table,
)

DEFAULT_REDIS = os.environ.get("TETHER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", choices=("load", "long-tool"), default="load")
    p.add_argument("--database-url", required=True, help="admin URL of a PostgreSQL server you may restart")
    p.add_argument("--restart-command", required=True, help="shell command that restarts that server")
    p.add_argument("--allow-port-5432", action="store_true", help="restart a server on the default port")
    p.add_argument("--redis-url", default=DEFAULT_REDIS, help="'' to run without Redis")
    p.add_argument("--phase", type=float, default=120.0, help="seconds of restarts (and submissions)")
    p.add_argument("--restart-min", type=float, default=5.0)
    p.add_argument("--restart-max", type=float, default=40.0)
    p.add_argument("--settle", type=float, default=180.0, help="then wait at most this for the rest (s)")
    p.add_argument("--workers", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--lease-seconds", type=float, default=30.0)
    p.add_argument("--poll-s", type=float, default=0.2, help="TETHER_WORKER_POLL_S")
    p.add_argument("--rate", type=float, default=2.0, help="load: runs submitted per second")
    p.add_argument("--runs", type=int, default=12, help="long-tool: runs submitted at the start")
    p.add_argument("--tool-min", type=float, default=None, help="shortest tool call (s)")
    p.add_argument("--tool-max", type=float, default=None, help="longest tool call (s)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    p.add_argument("--no-write", action="store_true", help="print only; write no results file")
    p.add_argument("--keep-logs", type=Path, default=None, help="copy every process's log here")
    args = p.parse_args(argv)
    if args.tool_min is None:
        args.tool_min = 0.1 if args.variant == "load" else 30.0
    if args.tool_max is None:
        args.tool_max = 0.5 if args.variant == "load" else 55.0
    if ":5432/" in args.database_url and not args.allow_port_5432:
        p.error("refusing to restart the PostgreSQL on port 5432 (shared?); see --allow-port-5432")
    return args


@dataclass
class Restarts:
    """Restarts the database at random gaps in a background thread, and records when."""

    command: str
    gaps: tuple[float, float]
    until: float
    rng: random.Random
    done: list[tuple[float, float, int]] = field(default_factory=list)
    """(started, finished, exit code) per restart, monotonic."""
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.wait(self.rng.uniform(*self.gaps)):
            if time.monotonic() >= self.until:
                return
            began = time.monotonic()
            code = subprocess.run(shlex.split(self.command), capture_output=True, check=False).returncode
            self.done.append((began, time.monotonic(), code))
            print(f"restarted the database in {time.monotonic() - began:.1f}s (exit {code})", flush=True)


class Patient:
    """API calls that wait out a database outage: retried on 503 (after Retry-After), on other 5xx
    answers (counted: they are findings) and on transport errors."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.unavailable = 0
        self.retry_after_missing = 0
        self.other_errors: Counter[int] = Counter()

    def call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        deadline = time.monotonic() + 120
        while True:
            try:
                answer = self.api.client.request(method, url, **kwargs)
            except httpx.TransportError:
                answer = None
            if answer is not None and answer.status_code < 500:
                return answer
            wait = 1.0
            if answer is not None and answer.status_code != 503:
                self.other_errors[answer.status_code] += 1  # counted (a finding), and retried
            elif answer is not None:
                self.unavailable += 1
                header = answer.headers.get("Retry-After")
                if header is None:
                    self.retry_after_missing += 1
                else:
                    wait = min(float(header), 5.0)
            if time.monotonic() > deadline:
                raise TimeoutError(f"{method} {url} kept failing for 120 s")
            time.sleep(wait)

    def submit(self, text: str) -> str:
        answer = self.call("POST", "/v1/runs", json={"input": text})
        answer.raise_for_status()
        return str(answer.json()["run_id"])

    def statuses(self, run_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The submitted runs, read page by page from the run list (every page waits out outages)."""
        found: dict[str, dict[str, Any]] = {}
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 200, **({"cursor": cursor} if cursor else {})}
            answer = self.call("GET", "/v1/runs", params=params)
            answer.raise_for_status()
            page = answer.json()
            found.update({r["run_id"]: r for r in page["runs"]})
            cursor = page["next_cursor"]
            if not cursor:
                break
        missing = set(run_ids) - found.keys()
        if missing:
            raise AssertionError(f"runs vanished: {sorted(missing)[:5]}")
        return {run_id: found[run_id] for run_id in run_ids}

    def approve_parked(self, runs: dict[str, dict[str, Any]]) -> int:
        approved = 0
        for run_id, run in runs.items():
            if run["status"] != "waiting_for_approval":
                continue
            answer = self.call("GET", f"/v1/runs/{run_id}")  # the list does not carry the approval
            pending = answer.json().get("pending_approval") if answer.status_code == 200 else None
            if pending:
                answer = self.call(
                    "POST",
                    f"/v1/runs/{run_id}/approvals/{pending['approval_id']}",
                    json={"decision": "approve", "reason": "chaos: approve the retry"},
                )
                approved += answer.status_code == 200
        return approved


@dataclass
class Outcome:
    runs: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    resumed: int = 0
    approvals: int = 0
    audit: Audit = field(default_factory=Audit)
    restarts: list[tuple[float, float, int]] = field(default_factory=list)
    worker_exits: int = 0
    log_counts: Counter[str] = field(default_factory=Counter)
    log_examples: dict[str, list[str]] = field(default_factory=dict)
    duration_s: float = 0.0
    settle_s: float = 0.0
    unavailable: int = 0
    retry_after_missing: int = 0
    other_5xx: int = 0

    @property
    def ok(self) -> bool:
        return not self.audit.violations and self.statuses == Counter({"succeeded": self.runs})

    def rows(self) -> list[tuple[str, str]]:
        spans = [end - start for start, end, _ in self.restarts]
        return [
            ("runs", str(self.runs)),
            ("statuses", ", ".join(f"{k}={v}" for k, v in sorted(self.statuses.items()))),
            ("database restarts", str(len(self.restarts))),
            (
                "restart command duration (s)",
                f"median {sorted(spans)[len(spans) // 2]:.1f}, min {min(spans):.1f}, max {max(spans):.1f}"
                if spans
                else "-",
            ),
            ("runs resumed by another claim (attempts > 1)", str(self.resumed)),
            ("retry approvals granted", str(self.approvals)),
            ("tool executions", str(self.audit.executions)),
            ("read/idempotent steps executed more than once", str(self.audit.repeated_idempotent)),
            ("non-idempotent re-runs beyond approvals", str(len(self.audit.approval_reused))),
            ("invariant violations", str(len(self.audit.violations))),
            ("API answers 503 (retried)", str(self.unavailable)),
            ("503 without Retry-After", str(self.retry_after_missing)),
            ("other 5xx answers", str(self.other_5xx)),
            ("worker processes that exited on their own", str(self.worker_exits)),
            ("restart phase + settle (s)", f"{self.duration_s:.1f}"),
            ("settle after the last restart (s)", f"{self.settle_s:.1f}"),
        ]


LOG_PATTERNS = {
    "lease renewed after failed attempts": re.compile(r"renewed the lease of run .* after \d+ failed"),
    "run stopped: lease could not be renewed": re.compile(r"stopped acting on run .*could not be renewed"),
    "run stopped: lease taken over": re.compile(r"stopped acting on run .*taken over"),
    "run handed back (database unavailable)": re.compile(r"handing it back"),
    "outage started (one line per outage)": re.compile(r" failing: "),
    "outage ended": re.compile(r"recovered after|outage over after"),
    "lines with a traceback (also inside JSON lines)": re.compile(r"Traceback \(most recent call last\)"),
    "internal error (run failed)": re.compile(r"internal error"),
}


EXAMPLES_OF = ("run stopped: lease could not be renewed", "run stopped: lease taken over")


def scan_logs(log_dir: Path, examples: dict[str, list[str]]) -> Counter[str]:
    """Count the outage-related lines of every process; keep a few lines of the rare kinds."""
    counts: Counter[str] = Counter()
    for path in sorted(log_dir.glob("*.log")):
        text = path.read_text(errors="replace")
        for name, pattern in LOG_PATTERNS.items():  # lines, not matches: one JSON line may chain two
            counts[name] += sum(1 for line in text.splitlines() if pattern.search(line))
            if name in EXAMPLES_OF:
                for line in text.splitlines():
                    if pattern.search(line) and len(examples.setdefault(name, [])) < 3:
                        examples[name].append(f"{path.stem}: {line.strip()[:400]}")
        counts["log lines"] += text.count("\n")
    return counts


def workload(args: argparse.Namespace, rng: random.Random, index: int) -> str:
    span = (args.tool_min, args.tool_max)
    if args.variant == "load":
        lookups = [round(rng.uniform(*span), 3) for _ in range(3)]
        charge = round(rng.uniform(*span), 3) if index % 4 == 0 else None
        return plan(f"r{index}", lookups, record=round(rng.uniform(*span), 3), charge=charge)
    # Long calls: one long read, then a short idempotent write; every 3rd also a long charge.
    charge = round(rng.uniform(*span), 3) if index % 3 == 0 else None
    return plan(f"r{index}", [round(rng.uniform(*span), 3)], record=0.2, charge=charge)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    rng = random.Random(args.seed)
    started = datetime.now(UTC)
    machine = machine_info(args.database_url)
    outcome = Outcome()
    with chaos_stage(
        args.database_url,
        db_prefix="tether_chaos_db",
        redis_url=args.redis_url or None,
        lease_s=args.lease_seconds,
        poll_s=args.poll_s,
    ) as stage:
        root, data, fleet, api, port = stage.root, stage.data, stage.fleet, stage.api, stage.port
        api_proc = fleet.start_api(port)
        for _ in range(args.workers):
            fleet.start_worker(args.concurrency)
        api.wait_ready(workers=args.workers, timeout=120, procs=[api_proc])
        patient = Patient(api)
        began = time.monotonic()
        restarts = Restarts(
            args.restart_command, (args.restart_min, args.restart_max), began + args.phase, rng
        )
        thread = threading.Thread(target=restarts.run, daemon=True)
        thread.start()
        run_ids: list[str] = []
        if args.variant == "long-tool":
            run_ids = [patient.submit(workload(args, rng, i)) for i in range(args.runs)]
        exited: set[str] = set()
        runs: dict[str, dict[str, Any]] = {}
        last_check = 0.0
        while True:
            now = time.monotonic()
            if args.variant == "load" and now - began < args.phase:
                due = int((now - began) * args.rate) + 1
                while len(run_ids) < due:
                    run_ids.append(patient.submit(workload(args, rng, len(run_ids))))
            for proc in fleet.workers():  # a worker dying on its own is a finding; replace it
                if not proc.alive and proc.name not in exited:
                    exited.add(proc.name)
                    print(f"{proc.name} exited {proc.popen.returncode}", flush=True)
                    fleet.start_worker(args.concurrency)
            if now - last_check >= 2.0:
                last_check = now
                runs = patient.statuses(run_ids)
                outcome.approvals += patient.approve_parked(runs)
                open_runs = [r for r in run_ids if runs[r]["status"] not in FINAL]
                print(
                    f"t={now - began:5.0f}s submitted {len(run_ids)} open {len(open_runs)} "
                    f"restarts {len(restarts.done)} 503s {patient.unavailable}",
                    flush=True,
                )
                phase_over = now - began >= args.phase and not thread.is_alive()
                if phase_over and not open_runs:
                    break
                if now - began > args.phase + args.settle:
                    print(f"{len(open_runs)} run(s) still open after the settle period", flush=True)
                    break
            time.sleep(0.1)
        restarts.stop.set()
        thread.join(timeout=60)
        outcome.duration_s = time.monotonic() - began
        last_restart = max((end for _, end, _ in restarts.done), default=began)
        outcome.settle_s = time.monotonic() - last_restart
        outcome.restarts = restarts.done
        outcome.runs = len(run_ids)
        outcome.statuses = Counter(r["status"] for r in runs.values())
        outcome.errors = Counter(
            (r.get("error") or "")[:120] for r in runs.values() if r["status"] != "succeeded"
        )
        approvals: dict[str, int] = {}
        for run_id in run_ids:
            if runs[run_id]["status"] not in FINAL:
                continue
            events = api.events(run_id)
            outcome.resumed += len(status_workers(events)) > 1
            approvals[run_id] = sum(
                1
                for e in events
                if e["event"] == "approval_decided"
                and e["data"]["kind"] == "retry"
                and e["data"]["status"] == "approved"
            )
        outcome.audit = audit(api, runs, data, {}, approvals=approvals)
        outcome.worker_exits = len(exited)
        outcome.unavailable = patient.unavailable
        outcome.retry_after_missing = patient.retry_after_missing
        outcome.other_5xx = sum(patient.other_errors.values())
        outcome.log_counts = scan_logs(root / "logs", outcome.log_examples)
        if args.keep_logs is not None:
            shutil.copytree(root / "logs", args.keep_logs, dirs_exist_ok=True)

    print()
    print(table(outcome.rows()))
    print(table([(k, str(v)) for k, v in sorted(outcome.log_counts.items())]))
    for error, count in outcome.errors.items():
        print(f"not succeeded ({count}): {error}")
    for line in outcome.audit.violations[:50]:
        print("VIOLATION:", line)
    print("\nresult:", "PASS" if outcome.ok else "FAIL")
    if not args.no_write:
        args.results.mkdir(parents=True, exist_ok=True)
        out = args.results / f"chaos-db-{args.variant}-{started:%Y-%m-%d}.md"
        out.write_text(render(args, outcome, machine, started), encoding="utf-8")
        print(f"wrote {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")
    return 0 if outcome.ok else 1


def render(
    args: argparse.Namespace, outcome: Outcome, machine: list[tuple[str, str]], started: datetime
) -> str:
    command = (
        f"python benchmarks/chaos_db.py --variant {args.variant} --phase {args.phase:g} "
        f"--workers {args.workers} --concurrency {args.concurrency} --lease-seconds {args.lease_seconds:g} "
        + (f"--rate {args.rate:g} " if args.variant == "load" else f"--runs {args.runs} ")
        + f"--seed {args.seed} --database-url <private server> --restart-command '<restart it>'"
    )
    if args.variant == "load":
        work = (
            f"runs submitted at {args.rate:g}/s for {args.phase:g} s; each 3 `lookup` reads and an "
            f"idempotent `record` write of {args.tool_min:g}-{args.tool_max:g} s, every 4th also a "
            "non-idempotent `charge`"
        )
    else:
        work = (
            f"{args.runs} runs submitted at the start; each one `lookup` read of "
            f"{args.tool_min:g}-{args.tool_max:g} s and a short idempotent `record`, every 3rd also a "
            f"non-idempotent `charge` of {args.tool_min:g}-{args.tool_max:g} s"
        )
    lines = [
        f"# Database chaos ({args.variant}), {started:%Y-%m-%d %H:%M} UTC — "
        + ("PASS" if outcome.ok else "FAIL"),
        "",
        f"`{command}`",
        "",
        "## Machine",
        "",
        markdown_table(machine, ("", "")),
        "",
        "## Workload",
        "",
        f"- {work}",
        f"- {args.workers} `tether worker` processes x concurrency {args.concurrency}, one `tether api`, "
        f"{'Redis' if args.redis_url else 'no Redis'}, lease {args.lease_seconds:g} s",
        f"- the database server restarted every {args.restart_min:g}-{args.restart_max:g} s for "
        f"{args.phase:g} s (`{args.restart_command}`)",
        "",
        "## Results",
        "",
        markdown_table(outcome.rows()),
        "",
        "## What the logs said (all processes)",
        "",
        markdown_table([(k, str(v)) for k, v in sorted(outcome.log_counts.items())], ("pattern", "lines")),
        "",
        *[f"- {name}: `{line}`" for name, lines in outcome.log_examples.items() for line in lines],
        "",
        "## Invariants",
        "",
        "- every run final and `succeeded` (parked retries approved through the API)",
        "- no two tool executions of one run overlap in time, across all processes",
        "- the idempotent `record` write: exactly one effect row per run, keyed by its step's "
        "idempotency key",
        "- a non-idempotent `charge` ran at most 1 + (retry approvals granted) times per step",
        "",
    ]
    if outcome.errors:
        lines += [
            "### Runs that did not succeed",
            "",
            *[f"- {n} x {e}" for e, n in outcome.errors.items()],
            "",
        ]
    if outcome.audit.violations:
        lines += ["### Violations", "", *[f"- {v}" for v in outcome.audit.violations[:50]], ""]
    else:
        lines += ["No invariant was violated.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    start = time.monotonic()
    code = main()
    print(f"({time.monotonic() - start:.0f} s)")
    sys.exit(code)
