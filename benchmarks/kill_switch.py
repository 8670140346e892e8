"""Kill-switch drill: an operator disables a tool while 50 runs are in flight on 2 worker processes.

Two `tether api` and two `tether worker` processes share a scratch PostgreSQL database (created on the
server `--database-url` points at, dropped afterwards), with Redis (`--redis-url`) and without it
(every process then polls `live_revisions` every TETHER_LIVE_POLL_S). Each run calls a read tool and a
write tool (`charge`) in turn; every `charge` execution writes its process id and wall-clock start time
to a log before doing anything. Once every run is running and charges are being made, the operator
disables `charge` through the second API node (`POST /v1/controls`). Reported per repetition:

- the time from the control's commit until each process (both API nodes, both workers) had the
  control in force (each logs `controls snapshot loaded (pid P at T): ids`, T taken right after the
  snapshot was replaced), and the slowest of them;
- that no `charge` started in a process after that process had the control, and none anywhere after
  every process had it (`charge` calls that started between the request and a process's reload are
  counted: that is the propagation window, not a violation). The runtime's last check runs in the
  tool's thread under the snapshot's swap lock, and `charge` stamps its start as its first statement;
- that every run ended `succeeded` (a refused call is an error the model sees; no run crashed).

Modes are interleaved (redis, poll, redis, poll, ...) so machine load hits both alike.

    python benchmarks/kill_switch.py --repeat 3 --label after

Exits 1 when a run did not succeed, a charge ran after its process had the switch, or a process
took longer than `--bound` seconds to honour it.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from service_helpers import (  # noqa: E402 (after the path tweak)
    Api,
    Fleet,
    create_key,
    free_port,
    machine_info,
    markdown_table,
    scratch_postgres,
    service_env,
)

DEFAULT_PG = os.environ.get("TETHER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DEFAULT_REDIS = os.environ.get("TETHER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
LOADED = re.compile(r"controls snapshot loaded \(pid (\d+) at ([0-9.]+)\): ([A-Za-z0-9_,]+)")

TOOLS = '''
import os
import random
import time
from tether import tool, ToolContext


@tool
def lookup(order: str, ctx: ToolContext) -> str:
    """Look an order up.

    Args:
        order: The order number.
    """
    time.sleep(random.uniform(0.15, 0.35))
    return f"order {order}: shipped"


@tool(side_effect="write", idempotent=True)
def charge(order: str, ctx: ToolContext) -> str:
    """Charge an order (the tool the operator switches off).

    Args:
        order: The order number.
    """
    started = time.time()  # first thing: as close as Python allows to the runtime's last check
    with open(ctx.data_dir / "charges.log", "a") as log:
        log.write(f"{os.getpid()} {started:.6f} {ctx.run_id} {ctx.idempotency_key}\\n")
    time.sleep(0.05)
    return f"charged {order}"
'''

POLICY = """
from tether.models.scripted import ScriptedTurn

def respond(turn: ScriptedTurn):
    calls = int(turn.user_input.split()[1])
    done = len(turn.observations)
    if done < calls:
        return turn.call("lookup" if done % 2 == 0 else "charge", order=str(done))
    refused = sum(1 for o in turn.observations if "unavailable" in o.content)
    return f"done: {done} calls, {refused} refused"
"""


def write_project(root: Path) -> Path:
    (root / "prompts").mkdir(parents=True)
    (root / "prompts" / "system.md").write_text("You charge orders.")
    (root / "tools.py").write_text(textwrap.dedent(TOOLS))
    (root / "policy.py").write_text(textwrap.dedent(POLICY))
    (root / "tether.toml").write_text(
        textwrap.dedent(
            """\
            [agent]
            name = "kill-switch-drill"
            owner = "bench@example.com"

            [model]
            primary = "scripted:drill-v1"
            scripted_policy = "policy:respond"

            [limits]
            max_steps = 200
            """
        )
    )
    return root


@dataclass
class Trial:
    mode: str
    baseline: bool = False
    """Run on `--baseline` code (the before column), not this checkout."""
    switched_at: float = 0.0
    committed_at: float = 0.0
    """When the control's transaction stamped it (`created_at`, the same machine's clock)."""
    answered_s: float = 0.0
    """How long the operator's POST took (the control is committed and this node reloaded)."""
    honoured_s: dict[str, float] = field(default_factory=dict)
    """Process name -> seconds from the commit until it had the control."""
    charges_before: int = 0
    charges_in_window: int = 0
    late_charges: list[str] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    refused_calls: int = 0
    load: float = 0.0
    """The machine's 1-minute load average when the switch was flipped (CPU starvation shows here)."""
    loads: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """The 1-, 5- and 15-minute load averages at the switch (the machine is shared)."""

    @property
    def slowest_s(self) -> float:
        return max(self.honoured_s.values()) if self.honoured_s else float("inf")


def _loaded_at(fleet: Fleet, control_id: str) -> dict[str, tuple[int, float]]:
    """Process name -> (pid, first wall time its log shows a snapshot with the control)."""
    found: dict[str, tuple[int, float]] = {}
    for proc in fleet.procs:
        for pid, at, ids in LOADED.findall(proc.output()):
            if control_id in ids.split(","):
                found[proc.name] = (int(pid), float(at))
                break
    return found


def trial(
    admin_url: str, redis_url: str | None, args: argparse.Namespace, say: object, *, baseline: bool = False
) -> Trial:
    mode = "redis" if redis_url else f"poll {args.live_poll_s:g}s"
    if args.baseline is not None:
        mode += " (before)" if baseline else " (after)"
    result = Trial(mode, baseline=baseline)
    with (
        tempfile.TemporaryDirectory(prefix="kill-switch-") as tmp,
        scratch_postgres(admin_url, "tether_killswitch") as database_url,
    ):
        root = Path(tmp)
        project = write_project(root / "agent")
        data = root / "data"
        data.mkdir()
        env = service_env(
            database_url=database_url, redis_url=redis_url, data_dir=data, code_cache=root / "code"
        )
        env["TETHER_LIVE_POLL_S"] = str(args.live_poll_s)
        env["TETHER_LOG_LEVEL"] = "INFO"
        if baseline:  # every process imports tether from the other checkout
            env["PYTHONPATH"] = str(args.baseline)
        key = create_key(project, env, user="bench", scopes="runs:write,runs:read,approvals")
        operator = create_key(project, env, user="oncall", scopes="operator")
        ports = [free_port(), free_port()]
        with Fleet(project, env, root / "logs") as fleet:
            apis = [fleet.start_api(port) for port in ports]
            workers = [fleet.start_worker(args.concurrency) for _ in range(2)]
            with Api(ports[0], key) as api, Api(ports[1], operator) as ops:
                api.wait_ready(workers=2, timeout=120, procs=[*apis, *workers])
                ops.wait_ready(workers=2, timeout=120, procs=apis)
                ids = [api.submit(f"calls {args.calls}") for _ in range(args.runs)]
                deadline = time.monotonic() + 120
                while True:  # every run in flight, and charges being made
                    runs = api.runs()
                    running = sum(1 for i in ids if runs.get(i, {}).get("status") == "running")
                    charges = _charges(data)
                    if running == args.runs and len(charges) >= args.runs:
                        break
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"only {running} of {args.runs} runs in flight")
                    time.sleep(0.05)
                result.loads = os.getloadavg()
                result.load = result.loads[0]
                result.switched_at = time.time()
                answer = ops.client.post(
                    "/v1/controls",
                    json={"kind": "disable_tool", "value": "charge", "reason": "kill-switch drill"},
                )
                result.answered_s = time.time() - result.switched_at
                answer.raise_for_status()
                control_id = answer.json()["id"]
                result.committed_at = datetime.fromisoformat(answer.json()["created_at"]).timestamp()
                deadline = time.monotonic() + 30
                while len(_loaded_at(fleet, control_id)) < 4 and time.monotonic() < deadline:
                    time.sleep(0.02)
                loaded = _loaded_at(fleet, control_id)
                result.honoured_s = {name: at - result.committed_at for name, (_, at) in loaded.items()}
                final = _wait_final(api, ids, timeout=args.settle)
        for run in final.values():
            result.statuses[run["status"]] = result.statuses.get(run["status"], 0) + 1
            result.refused_calls += int(str(run.get("output") or "").rsplit(",", 1)[-1].split()[0] or 0)
        pids = {pid: name for name, (pid, _) in loaded.items()}
        everyone = max((at for _, at in loaded.values()), default=float("inf"))
        for pid, started, run_id in _charges(data):
            name = pids.get(pid)
            if started <= result.committed_at:
                result.charges_before += 1
            elif name is not None and started > loaded[name][1]:
                result.late_charges.append(
                    f"{run_id} charged in {name} {started - loaded[name][1]:.6f}s after it"
                )
            elif started > everyone:
                result.late_charges.append(f"{run_id} charged after every process had the switch")
            else:
                result.charges_in_window += 1
    if callable(say):
        per = ", ".join(f"{n} {s * 1000:.0f} ms" for n, s in sorted(result.honoured_s.items()))
        say(f"{mode} (load {result.load:.1f}): {per}; statuses {result.statuses}")
    return result


def _charges(data: Path) -> list[tuple[int, float, str]]:
    path = data / "charges.log"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        pid, at, run_id, _ = line.split()
        rows.append((int(pid), float(at), run_id))
    return rows


def _wait_final(api: Api, ids: list[str], *, timeout: float) -> dict[str, dict[str, object]]:
    final = {"succeeded", "failed", "cancelled", "escalated", "budget_exhausted"}
    deadline = time.monotonic() + timeout
    while True:
        runs = api.runs()
        done = {i: runs[i] for i in ids if runs.get(i, {}).get("status") in final}
        if len(done) == len(ids) or time.monotonic() > deadline:
            return done
        time.sleep(0.1)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--calls", type=int, default=16, help="tool calls per run (lookup, charge, ...)")
    p.add_argument("--concurrency", type=int, default=25, help="runs per worker process")
    p.add_argument("--repeat", type=int, default=3, help="trials per mode (interleaved)")
    p.add_argument("--database-url", default=DEFAULT_PG)
    p.add_argument("--redis-url", default=DEFAULT_REDIS)
    p.add_argument("--live-poll-s", type=float, default=0.25, help="TETHER_LIVE_POLL_S (without Redis)")
    p.add_argument("--bound", type=float, default=1.0, help="fail if a process takes longer (s)")
    p.add_argument("--settle", type=float, default=180.0)
    p.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    p.add_argument("--no-write", action="store_true")
    p.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="the src/ folder of an older checkout: its trials are interleaved with this checkout's "
        "(same mode, back to back) and reported beside them; PASS/FAIL judges this checkout only",
    )
    p.add_argument("--label", default="", help="results file kill-switch-DATE-LABEL.md (e.g. before, after)")
    return p.parse_args(argv)


def _md(rows: list[list[str]]) -> str:
    """A Markdown table whose first row is the header."""
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows[1:]])


def _stats(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return f"{statistics.median(ms):.0f} / {min(ms):.0f} / {max(ms):.0f}"


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    started = datetime.now(UTC)
    machine = machine_info(args.database_url)
    trials: list[Trial] = []

    def say(line: str) -> None:
        print(line, flush=True)

    for i in range(args.repeat):
        for redis_url in (args.redis_url or None, None):
            # Back to back, first one then the other first, so neither always runs on a warmer machine.
            codes = (False, True) if i % 2 == 0 else (True, False)
            for baseline in codes if args.baseline is not None else (False,):
                trials.append(trial(args.database_url, redis_url, args, say, baseline=baseline))
    ok = all(
        not t.late_charges
        and t.statuses == {"succeeded": args.runs}
        and len(t.honoured_s) == 4
        and t.slowest_s <= args.bound
        for t in trials
        if not t.baseline  # the verdict is this checkout's; the baseline is there to compare with
    )
    rows = summary(trials)
    print()
    print(_md(rows))
    for t in trials:
        for line in t.late_charges:
            print("LATE CHARGE:", line)
    print("\nresult:", "PASS" if ok else "FAIL")
    if not args.no_write:
        args.results.mkdir(parents=True, exist_ok=True)
        suffix = f"-{args.label}" if args.label else ""
        out = args.results / f"kill-switch-{started:%Y-%m-%d}{suffix}.md"
        out.write_text(render(args, trials, rows, machine, started, ok), encoding="utf-8")
        print(f"wrote {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")
    return 0 if ok else 1


def summary(trials: list[Trial]) -> list[list[str]]:
    rows = [
        [
            "mode",
            "trials",
            "operator request ms (med/min/max)",
            "commit to slowest process ms (med/min/max)",
            "charges before / in window / late",
            "runs succeeded",
            "calls refused",
        ]
    ]
    for mode in dict.fromkeys(t.mode for t in trials):
        mine = [t for t in trials if t.mode == mode]
        before = sum(t.charges_before for t in mine)
        window = sum(t.charges_in_window for t in mine)
        late = sum(len(t.late_charges) for t in mine)
        succeeded = sum(t.statuses.get("succeeded", 0) for t in mine)
        total = sum(sum(t.statuses.values()) for t in mine)
        rows.append(
            [
                mode,
                str(len(mine)),
                _stats([t.answered_s for t in mine]),
                _stats([t.slowest_s for t in mine]),
                f"{before} / {window} / {late}",
                f"{succeeded} of {total}",
                str(sum(t.refused_calls for t in mine)),
            ]
        )
    return rows


def render(
    args: argparse.Namespace,
    trials: list[Trial],
    rows: list[list[str]],
    machine: list[tuple[str, str]],
    started: datetime,
    ok: bool,
) -> str:
    command = (
        f"python benchmarks/kill_switch.py --runs {args.runs} --calls {args.calls} --repeat {args.repeat}"
        + (f" --label {args.label}" if args.label else "")
        + (" --baseline BEFORE/src" if args.baseline is not None else "")
    )
    per_trial = [["#", "mode", "load avg 1/5/15 min", "api node 1", "api node 2", "worker 1", "worker 2"]]
    for i, t in enumerate(trials, 1):
        names = sorted(t.honoured_s)
        per_trial.append(
            [str(i), t.mode, "/".join(f"{x:.1f}" for x in t.loads)]
            + [f"{t.honoured_s[n] * 1000:.0f} ms" for n in names]
            + ["-"] * (4 - len(names))
        )
    return "\n".join(
        [
            f"# Kill-switch drill, {started:%Y-%m-%d}{f' ({args.label})' if args.label else ''}",
            "",
            f"`{command}` ({'PASS' if ok else 'FAIL'})",
            "",
            f"{args.runs} runs of {args.calls} tool calls each in flight on 2 `tether worker` processes "
            f"(concurrency {args.concurrency}) and 2 `tether api` processes on PostgreSQL; the operator "
            "disables the `charge` tool through the second API node. Times are from the moment the control "
            "committed (its `created_at`) to the moment each process had loaded it (its log line); the "
            "operator's request took longer under this load (column 3). Without Redis every process "
            f"polls `live_revisions` every {args.live_poll_s:g} s.",
            "",
            _md(rows),
            "",
            "Per trial, time until each process had the switch:",
            "",
            _md(per_trial),
            "",
            "Late charges (each is a violation):",
            "",
            *([f"- {t.mode}: {line}" for t in trials for line in t.late_charges] or ["- none"]),
            "",
            "A charge that started after the request but before its process reloaded is in the window (the "
            "propagation bound); a late charge (after its process had the switch) is a violation.",
            "",
            markdown_table(machine, ("machine", "")),
            "",
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
