"""Helpers for tests and benchmarks that run Tether as real processes (`tether api`, `tether worker`).

Nothing here imports pytest or the conftest, so `benchmarks/*.py` can use it too. Every process is
started through a `Fleet`, which kills whatever is still alive when it closes; every wait is bounded.

The test agent (`SCALE_TOOLS`, `SCALE_POLICY`) logs each tool execution's start and end, with pid,
run id, step, idempotency key and monotonic/wall times, to `<data dir>/effects.log` (one O_APPEND
write per line). Its idempotent write `record` dedupes by idempotency key into `<data dir>/effects.db`
(table `effects`); its non-idempotent write `charge` appends a row to table `charges` every time it
runs. `check_executions` turns those files into a list of invariant violations.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
FINAL = frozenset({"succeeded", "failed", "cancelled", "escalated", "budget_exhausted"})

SCALE_TOOLS = '''
import json
import os
import sqlite3
import time
from contextlib import closing
from tether import tool, ToolContext


def _log(ctx: ToolContext, tool: str, phase: str) -> None:
    line = json.dumps(
        {
            "pid": os.getpid(),
            "run": ctx.run_id,
            "step": ctx.step,
            "key": ctx.idempotency_key,
            "tool": tool,
            "phase": phase,
            "mono": time.monotonic(),
            "wall": time.time(),
        }
    ) + "\\n"
    fd = os.open(ctx.data_dir / "effects.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())  # one write per line: O_APPEND keeps lines whole across processes
    finally:
        os.close(fd)


def _db(ctx: ToolContext) -> sqlite3.Connection:
    return sqlite3.connect(ctx.data_dir / "effects.db", timeout=60)


@tool(timeout_s=60)
def lookup(item: str, seconds: float, ctx: ToolContext) -> str:
    """Look something up (a read: safe to repeat)."""
    _log(ctx, "lookup", "start")
    time.sleep(seconds)
    _log(ctx, "lookup", "end")
    return f"found {item}"


@tool(side_effect="write", risk="medium", idempotent=True, timeout_s=60)
def record(item: str, seconds: float, ctx: ToolContext) -> str:
    """Record an item: a write that dedupes on its idempotency key."""
    _log(ctx, "record", "start")
    time.sleep(seconds / 2)
    with closing(_db(ctx)) as db, db:
        db.execute(
            "INSERT OR IGNORE INTO effects (key, run_id, step, item, pid, wall) VALUES (?, ?, ?, ?, ?, ?)",
            (ctx.idempotency_key, ctx.run_id, ctx.step, item, os.getpid(), time.time()),
        )
    time.sleep(seconds / 2)
    _log(ctx, "record", "end")
    return f"recorded {item}"


@tool(side_effect="write", risk="medium", timeout_s=60)
def charge(amount: int, seconds: float, ctx: ToolContext) -> str:
    """Charge a card: a write that is NOT idempotent (every execution adds a row)."""
    _log(ctx, "charge", "start")
    time.sleep(seconds)
    with closing(_db(ctx)) as db, db:
        db.execute(
            "INSERT INTO charges (key, run_id, step, amount, pid, wall) VALUES (?, ?, ?, ?, ?, ?)",
            (ctx.idempotency_key, ctx.run_id, ctx.step, amount, os.getpid(), time.time()),
        )
    _log(ctx, "charge", "end")
    return f"charged {amount}"
'''

SCALE_POLICY = """
import json


def respond(turn):
    plan = json.loads(turn.user_input)
    looked = sum(1 for o in turn.observations if o.tool == "lookup")
    if looked < len(plan["lookups"]):
        return turn.call("lookup", item=f"item-{looked}", seconds=plan["lookups"][looked])
    if plan.get("record") is not None and not turn.called("record"):
        return turn.call("record", item=plan["name"], seconds=plan["record"])
    if plan.get("charge") is not None and not turn.called("charge"):
        return turn.call("charge", amount=7, seconds=plan["charge"])
    return "done: " + " | ".join(o.content for o in turn.observations)
"""


def plan(name: str, lookups: list[float], record: float | None = None, charge: float | None = None) -> str:
    """A run input for SCALE_POLICY: which tools to call, and how long each takes."""
    return json.dumps({"name": name, "lookups": lookups, "record": record, "charge": charge})


def write_project(
    root: Path, *, tools: str = SCALE_TOOLS, policy: str = SCALE_POLICY, name: str = "scale-agent"
) -> Path:
    """An agent project on disk with the scripted model driven by `policy`."""
    (root / "prompts").mkdir(parents=True)
    (root / "prompts" / "system.md").write_text("You are a test agent.")
    (root / "tools.py").write_text(textwrap.dedent(tools))
    (root / "policy.py").write_text(textwrap.dedent(policy))
    (root / "tether.toml").write_text(
        textwrap.dedent(
            f"""\
            [agent]
            name = "{name}"
            owner = "tests@example.com"

            [model]
            primary = "scripted:test-v1"
            scripted_policy = "policy:respond"

            [limits]
            max_steps = 40
            max_tokens_per_run = 1000000
            max_cost_usd_per_run = 100
            """
        )
    )
    return root


def prepare_data_dir(data_dir: Path) -> None:
    """Create the data folder and the effects database before any worker writes to it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(data_dir / "effects.db", timeout=60)) as db, db:
        db.execute(
            "CREATE TABLE IF NOT EXISTS effects "
            "(key TEXT PRIMARY KEY, run_id TEXT, step INTEGER, item TEXT, pid INTEGER, wall REAL)"
        )
        db.execute(
            "CREATE TABLE IF NOT EXISTS charges (id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "key TEXT, run_id TEXT, step INTEGER, amount INTEGER, pid INTEGER, wall REAL)"
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def service_env(
    *,
    database_url: str,
    data_dir: Path,
    code_cache: Path,
    redis_url: str | None = None,
    lease_s: float = 30.0,
    poll_s: float = 0.05,
) -> dict[str, str]:
    """The environment every process of one deployment shares (rate limits out of the way).

    The lease is long by default: a live process that the machine starves for a while must not
    lose its runs in a test (the chaos benchmark passes short ones on purpose)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env.update(
        TETHER_DATABASE_URL=database_url,
        TETHER_DATA_DIR=str(data_dir),
        TETHER_CODE_CACHE=str(code_cache),
        TETHER_LEASE_SECONDS=str(lease_s),
        TETHER_WORKER_POLL_S=str(poll_s),
        TETHER_MODEL_BACKOFF_S="0",
        TETHER_REQUESTS_PER_MINUTE_PER_KEY="1000000",
        TETHER_RUNS_PER_MINUTE_PER_USER="1000000",
        TETHER_UI_SESSION_SECRET="one-secret-shared-by-every-node-of-this-deployment",
        PYTHONUNBUFFERED="1",
    )
    for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        env.pop(key, None)
    if redis_url:
        env["TETHER_REDIS_URL"] = redis_url
    return env


def tether(*args: str | Path, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run one `python -m tether ...` command to completion (bounded); raise with its output on failure."""
    done = subprocess.run(
        [sys.executable, "-m", "tether", *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"tether {' '.join(map(str, args))} exited {done.returncode}:\n{done.stderr}")
    return done


def create_key(project: Path, env: dict[str, str], *, user: str, scopes: str) -> str:
    out = tether(
        "keys", "create", "--project", project, "--user", user, "--scopes", scopes, "--json", env=env
    )
    return str(json.loads(out.stdout)["key"])


# -- processes --------------------------------------------------------------------------------------


@dataclass
class Proc:
    role: str
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    started: float = field(default_factory=time.monotonic)
    died: float | None = None
    """Monotonic time by which the process was known dead (after SIGKILL and reaping)."""

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    ready_at: float | None = None
    """Monotonic time at which a worker was first seen up (it had printed "running")."""

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def ready(self) -> bool:
        """Whether this worker is up and claiming (its start-up line is in its log)."""
        if self.ready_at is None and " running (concurrency " in self.output():
            self.ready_at = time.monotonic()
        return self.ready_at is not None


class Fleet:
    """Starts `tether` processes and guarantees none outlives it."""

    def __init__(self, project: Path, env: dict[str, str], log_dir: Path) -> None:
        self.project = project
        self.env = env
        self.log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        self.procs: list[Proc] = []
        self._seq = 0

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _start(self, role: str, args: list[str], extra_env: dict[str, str] | None = None) -> Proc:
        self._seq += 1
        name = f"{role}-{self._seq}"
        if role == "worker":  # the lease owner is the process's name, so run events name it
            extra_env = {**(extra_env or {}), "TETHER_WORKER_ID": name}
        log = self.log_dir / f"{name}.log"
        with open(log, "wb") as sink:
            popen = subprocess.Popen(
                [sys.executable, "-m", "tether", *args],
                env={**self.env, **(extra_env or {})},
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        proc = Proc(role, name, popen, log)
        self.procs.append(proc)
        return proc

    def start_api(self, port: int) -> Proc:
        return self._start("api", ["api", "--project", str(self.project), "--port", str(port)])

    def start_serve(self, port: int, concurrency: int) -> Proc:
        args = ["serve", "--project", str(self.project), "--port", str(port)]
        return self._start("serve", [*args, "--concurrency", str(concurrency)])

    def start_worker(self, concurrency: int) -> Proc:
        """A `tether worker`; its worker id (the lease owner in run events) is its name."""
        args = ["worker", "--project", str(self.project), "--concurrency", str(concurrency)]
        return self._start("worker", args)

    def workers(self) -> list[Proc]:
        return [p for p in self.procs if p.role == "worker"]

    def alive_workers(self) -> list[Proc]:
        return [p for p in self.workers() if p.alive]

    def sigkill(self, proc: Proc) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.popen.send_signal(signal.SIGKILL)
        proc.popen.wait(timeout=30)
        proc.died = time.monotonic()

    def sigterm(self, proc: Proc, timeout: float) -> int:
        """SIGTERM and wait (bounded); returns the exit code. SIGKILLs it if it overruns."""
        with contextlib.suppress(ProcessLookupError):
            proc.popen.send_signal(signal.SIGTERM)
        try:
            code = proc.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.sigkill(proc)
            raise
        proc.died = time.monotonic()
        return code

    def close(self) -> None:
        alive = [p for p in self.procs if p.alive]
        for proc in alive:
            with contextlib.suppress(ProcessLookupError):
                proc.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in alive:
            try:
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.popen.send_signal(signal.SIGKILL)
                proc.popen.wait(timeout=30)
            if proc.died is None:
                proc.died = time.monotonic()


# -- the HTTP API -----------------------------------------------------------------------------------


def parse_sse(text: str) -> list[dict[str, Any]]:
    """`text/event-stream` → [{"id", "event", "data"}] (data parsed as JSON)."""
    events: list[dict[str, Any]] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":") or ":" not in line:
                continue
            key, _, value = line.partition(":")
            fields[key] = fields.get(key, "") + value.removeprefix(" ")
        if "event" in fields or "data" in fields:
            data = fields.get("data")
            events.append(
                {
                    "id": fields.get("id"),
                    "event": fields.get("event", "message"),
                    "data": json.loads(data) if data else None,
                }
            )
    return events


class Api:
    """A small synchronous client for one Tether API node."""

    def __init__(self, port: int, key: str, *, timeout: float = 30) -> None:
        self.client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=timeout,
        )

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *_: object) -> None:
        self.client.close()

    def wait_ready(self, *, workers: int, timeout: float, procs: Iterable[Proc] = ()) -> dict[str, Any]:
        """Poll /readyz until 200 and at least `workers` live workers (bounded)."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            for proc in procs:
                if not proc.alive:
                    raise RuntimeError(f"{proc.name} exited {proc.popen.returncode}:\n{proc.output()}")
            try:
                answer = self.client.get("/readyz")
                last = answer.json()
                if answer.status_code == 200 and int(last["checks"]["workers"]) >= workers:
                    return dict(last)
            except (httpx.TransportError, ValueError, KeyError):
                pass
            time.sleep(0.1)
        raise TimeoutError(f"not ready within {timeout}s; last /readyz: {last}")

    def submit(self, text: str) -> str:
        answer = self.client.post("/v1/runs", json={"input": text})
        answer.raise_for_status()
        return str(answer.json()["run_id"])

    def runs(self) -> dict[str, dict[str, Any]]:
        """Every run the key can see, by id (follows the cursor)."""
        found: dict[str, dict[str, Any]] = {}
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 200}
            if cursor:
                params["cursor"] = cursor
            answer = self.client.get("/v1/runs", params=params)
            answer.raise_for_status()
            page = answer.json()
            found.update({r["run_id"]: r for r in page["runs"]})
            cursor = page["next_cursor"]
            if not cursor:
                return found

    def run(self, run_id: str) -> dict[str, Any]:
        answer = self.client.get(f"/v1/runs/{run_id}")
        answer.raise_for_status()
        return dict(answer.json())

    def steps(self, run_id: str) -> list[dict[str, Any]]:
        answer = self.client.get(f"/v1/runs/{run_id}/steps")
        answer.raise_for_status()
        return list(answer.json())

    def events(self, run_id: str) -> list[dict[str, Any]]:
        """All events of a *final* run (the stream ends once the run is final)."""
        answer = self.client.get(f"/v1/runs/{run_id}/events", timeout=60)
        answer.raise_for_status()
        return parse_sse(answer.text)

    def approve_pending(self, run_id: str) -> dict[str, Any] | None:
        """Approve the run's pending approval, if it still has one."""
        pending = self.run(run_id).get("pending_approval")
        if not pending:
            return None
        answer = self.client.post(
            f"/v1/runs/{run_id}/approvals/{pending['approval_id']}",
            json={"decision": "approve", "reason": "chaos test: approve the retry"},
        )
        if answer.status_code == 409:  # decided meanwhile
            return None
        answer.raise_for_status()
        return dict(answer.json())

    def wait_final(
        self,
        run_ids: Iterable[str],
        *,
        timeout: float,
        approve: bool = False,
        tick: Callable[[], None] | None = None,
        interval: float = 0.25,
    ) -> dict[str, dict[str, Any]]:
        """Poll until every run is final (approving parked runs if asked); bounded by `timeout`."""
        wanted = set(run_ids)
        deadline = time.monotonic() + timeout
        while True:
            runs = self.runs()
            missing = wanted - runs.keys()
            if missing:
                raise AssertionError(f"runs vanished: {sorted(missing)[:5]}")
            if approve:
                for run_id in wanted:
                    if runs[run_id]["status"] == "waiting_for_approval":
                        self.approve_pending(run_id)
            open_runs = {r for r in wanted if runs[r]["status"] not in FINAL}
            if not open_runs:
                return {r: runs[r] for r in wanted}
            if time.monotonic() > deadline:
                statuses = Counter(runs[r]["status"] for r in open_runs)
                raise TimeoutError(f"{len(open_runs)} run(s) not final after {timeout}s: {dict(statuses)}")
            if tick is not None:
                tick()
            time.sleep(interval)


def status_workers(events: list[dict[str, Any]]) -> list[str]:
    """The lease owners that claimed the run, in order (one per attempt)."""
    return [
        e["data"]["worker"]
        for e in events
        if e["event"] == "status" and e["data"].get("status") == "running" and "worker" in e["data"]
    ]


# -- what the tools did ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Execution:
    """One execution of a tool in one process: [start, end]; end is the process's death if unfinished."""

    pid: int
    run: str
    step: int
    key: str
    tool: str
    start: float
    end: float
    finished: bool


def read_log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    entries = []
    for line in path.read_text().splitlines():
        if line.strip():
            entries.append(json.loads(line))  # a torn line is a failure in itself
    return entries


def executions(entries: list[dict[str, Any]], deaths: dict[int, float]) -> list[Execution]:
    """Pair start/end lines per (pid, key). An unfinished one ends when its process died."""

    def made(begin: dict[str, Any], end: float, finished: bool) -> Execution:
        fields = (begin["pid"], begin["run"], begin["step"], begin["key"], begin["tool"], begin["mono"])
        return Execution(*fields, end, finished)

    open_: dict[tuple[int, str], list[dict[str, Any]]] = defaultdict(list)
    done: list[Execution] = []
    for entry in sorted(entries, key=lambda e: e["mono"]):
        slot = (entry["pid"], entry["key"])
        if entry["phase"] == "start":
            open_[slot].append(entry)
        elif open_[slot]:
            done.append(made(open_[slot].pop(0), entry["mono"], True))
        else:
            raise AssertionError(f"an end without a start: {entry}")
    for begins in open_.values():
        for begin in begins:
            # Cut short by the process's death; a live process's open call is open-ended.
            done.append(made(begin, deaths.get(begin["pid"], float("inf")), False))
    return sorted(done, key=lambda e: (e.run, e.start))


def overlaps(found: list[Execution]) -> list[tuple[Execution, Execution]]:
    """Pairs of tool executions of the same run that overlap in time (a run executes one at a time)."""
    by_run: dict[str, list[Execution]] = defaultdict(list)
    for execution in found:
        by_run[execution.run].append(execution)
    clashes = []
    for items in by_run.values():
        items.sort(key=lambda e: e.start)
        latest = items[0]
        for item in items[1:]:
            if item.start < latest.end:
                clashes.append((latest, item))
            if item.end > latest.end:
                latest = item
    return clashes


def effect_rows(data_dir: Path, table: str) -> list[dict[str, Any]]:
    with contextlib.closing(sqlite3.connect(data_dir / "effects.db", timeout=60)) as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute(f"SELECT * FROM {table}")]  # fixed table names


@dataclass
class Audit:
    """What the runs, their steps and the tools' own records say, checked against each other."""

    violations: list[str] = field(default_factory=list)
    executions: int = 0
    repeated_idempotent: int = 0
    """Idempotent or read tool steps executed more than once (allowed after a crash)."""
    approval_reused: list[str] = field(default_factory=list)
    """Non-idempotent calls executed more often than 1 + approved retries (a second interruption)."""
    pids: Counter[int] = field(default_factory=Counter)


def audit(
    api: Api,
    runs: dict[str, dict[str, Any]],
    data_dir: Path,
    deaths: dict[int, float],
    *,
    approvals: dict[str, int] | None = None,
    strict_once: bool = False,
) -> Audit:
    """Check the invariants of a finished batch (see module docstring).

    `approvals`: approved retry approvals per run (from the API's events). `strict_once`: no crash
    happened, so every tool step must have run exactly once.
    """
    result = Audit()
    found = executions(read_log(data_dir / "effects.log"), deaths)
    result.executions = len(found)
    by_key: dict[str, list[Execution]] = defaultdict(list)
    for execution in found:
        by_key[execution.key].append(execution)
        result.pids[execution.pid] += 1
    for first, second in overlaps(found):
        result.violations.append(
            f"overlap in {first.run}: {first.tool}#{first.step} pid {first.pid} "
            f"[{first.start:.3f}, {first.end:.3f}] and {second.tool}#{second.step} pid {second.pid} "
            f"[{second.start:.3f}, {second.end:.3f}]"
        )
    recorded = Counter(row["run_id"] for row in effect_rows(data_dir, "effects"))
    record_keys = {row["key"] for row in effect_rows(data_dir, "effects")}
    charged = Counter(row["key"] for row in effect_rows(data_dir, "charges"))
    for run_id, run in runs.items():
        if run["status"] not in FINAL:
            result.violations.append(f"{run_id} is not final: {run['status']}")
            continue
        wanted = json.loads(run["input"])
        steps = api.steps(run_id)
        tool_steps = [s for s in steps if s["kind"] == "tool_call"]
        keys = {s["idempotency_key"]: s for s in tool_steps}
        for key, items in by_key.items():
            if items[0].run == run_id and key not in keys:
                result.violations.append(f"{run_id}: a tool ran under key {key}, which is no step of the run")
        for step in tool_steps:
            ran = by_key.get(step["idempotency_key"], [])
            if step["status"] == "succeeded" and not any(e.finished for e in ran):
                result.violations.append(f"{run_id}: step {step['index']} succeeded but never finished")
            if len(ran) > 1:
                if strict_once:
                    result.violations.append(f"{run_id}: {step['name']}#{step['index']} ran {len(ran)} times")
                if step["name"] != "charge":
                    result.repeated_idempotent += 1
            if step["name"] == "charge":
                allowed = 1 + (approvals or {}).get(run_id, 0)
                if len(ran) > allowed:  # each retry approval covers exactly one more attempt
                    line = (
                        f"{run_id}: charge#{step['index']} ran {len(ran)} times, "
                        f"{allowed - 1} retry approval(s)"
                    )
                    result.approval_reused.append(line)
                    result.violations.append(line)
                if charged[step["idempotency_key"]] > len(ran):
                    result.violations.append(f"{run_id}: more charge rows than charge executions")
        if wanted.get("record") is not None and run["status"] == "succeeded":
            record_steps = [s for s in tool_steps if s["name"] == "record"]
            if len(record_steps) != 1 or recorded[run_id] != 1:
                result.violations.append(
                    f"{run_id}: {len(record_steps)} record step(s) and {recorded[run_id]} effect row(s)"
                )
            elif record_steps[0]["idempotency_key"] not in record_keys:
                result.violations.append(f"{run_id}: the effect row is not keyed by the record step")
        if run["status"] == "succeeded":
            expected = len(wanted["lookups"]) + (wanted.get("record") is not None)
            expected += wanted.get("charge") is not None
            if len(tool_steps) != expected or run["steps_used"] != 2 * expected + 1:
                result.violations.append(
                    f"{run_id}: {len(tool_steps)} tool steps / {run['steps_used']} steps, "
                    f"expected {expected} / {2 * expected + 1}"
                )
    return result


# -- chaos: SIGKILL workers while runs are in flight -------------------------------------------------


@dataclass
class ChaosConfig:
    runs: int = 40
    workers: int = 2
    concurrency: int = 2
    kill_every: float = 1.5
    """Mean seconds between kills; each gap is uniform in [2/3, 4/3] of it (1-2 s for 1.5)."""
    tool_s: tuple[float, float] = (0.1, 0.3)
    lookups: int = 3
    charge_every: int = 4
    """Every n-th run also calls the non-idempotent `charge` (0: never)."""
    min_age_s: float = 0.5
    """Only kill workers that have been claiming this long (one still importing holds no runs)."""
    kill_phase_s: float = 40.0
    settle_s: float = 60.0
    seed: int = 1


@dataclass
class ChaosReport:
    config: ChaosConfig
    runs: int = 0
    kills: int = 0
    starts: int = 0
    resumed_runs: int = 0
    claims: int = 0
    approvals: int = 0
    duration_s: float = 0.0
    kill_phase_s: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)
    audit: Audit = field(default_factory=Audit)
    runs_per_worker_process: Counter[str] = field(default_factory=Counter)

    def rows(self) -> list[tuple[str, str]]:
        return [
            ("runs", str(self.runs)),
            ("statuses", ", ".join(f"{k}={v}" for k, v in sorted(self.statuses.items()))),
            ("worker processes started", str(self.starts)),
            ("SIGKILLs", str(self.kills)),
            ("resumed runs (attempts > 1)", str(self.resumed_runs)),
            ("claims (sum of attempts)", str(self.claims)),
            ("retry approvals granted", str(self.approvals)),
            ("tool executions", str(self.audit.executions)),
            ("read/idempotent steps re-executed after a crash", str(self.audit.repeated_idempotent)),
            ("non-idempotent re-runs beyond approvals", str(len(self.audit.approval_reused))),
            ("invariant violations", str(len(self.audit.violations))),
            ("kill phase (s)", f"{self.kill_phase_s:.1f}"),
            ("total duration (s)", f"{self.duration_s:.1f}"),
        ]


def run_chaos(
    fleet: Fleet,
    api: Api,
    data_dir: Path,
    config: ChaosConfig,
    *,
    say: Callable[[str], None] = print,
) -> ChaosReport:
    """Submit runs, SIGKILL and restart random workers until all are final, then audit everything.

    The fleet's API must be running; this starts (and restarts) the workers.
    """
    rng = random.Random(config.seed)
    report = ChaosReport(config)
    began = time.monotonic()
    for _ in range(config.workers):
        fleet.start_worker(config.concurrency)
    api.wait_ready(workers=1, timeout=120, procs=[p for p in fleet.procs if p.role == "api"])
    run_ids = []
    for index in range(config.runs):
        lookups = [round(rng.uniform(*config.tool_s), 3) for _ in range(config.lookups)]
        charge = (
            round(rng.uniform(*config.tool_s), 3)
            if config.charge_every and index % config.charge_every == 0
            else None
        )
        text = plan(f"r{index}", lookups, record=round(rng.uniform(*config.tool_s), 3), charge=charge)
        run_ids.append(api.submit(text))
    report.runs = len(run_ids)
    say(f"submitted {len(run_ids)} runs")

    next_kill = time.monotonic() + rng.uniform(config.kill_every * 2 / 3, config.kill_every * 4 / 3)
    kill_until = time.monotonic() + config.kill_phase_s

    def tick() -> None:
        nonlocal next_kill
        for proc in fleet.workers():  # a worker that exited on its own is a finding, not a kill
            if not proc.alive and proc.died is None:
                raise RuntimeError(f"{proc.name} exited {proc.popen.returncode}:\n{proc.output()[-3000:]}")
        now = time.monotonic()
        if now < kill_until and now >= next_kill:
            old = [
                p
                for p in fleet.alive_workers()
                if p.ready() and now - (p.ready_at or now) >= config.min_age_s
            ]
            if old:
                victim = rng.choice(old)
                fleet.sigkill(victim)
                report.kills += 1
                fleet.start_worker(config.concurrency)
            next_kill = now + rng.uniform(config.kill_every * 2 / 3, config.kill_every * 4 / 3)
        while len(fleet.alive_workers()) < config.workers:
            fleet.start_worker(config.concurrency)

    finals = api.wait_final(run_ids, timeout=config.kill_phase_s + config.settle_s, approve=True, tick=tick)
    report.kill_phase_s = min(time.monotonic(), kill_until) - began
    report.duration_s = time.monotonic() - began
    report.starts = len(fleet.workers())
    report.statuses = Counter(r["status"] for r in finals.values())
    approvals: dict[str, int] = {}
    for run_id in run_ids:
        events = api.events(run_id)
        claims = status_workers(events)
        report.claims += len(claims)
        report.resumed_runs += len(claims) > 1
        for worker in set(claims):
            report.runs_per_worker_process[worker] += 1
        approvals[run_id] = sum(
            1
            for e in events
            if e["event"] == "approval_decided"
            and e["data"]["kind"] == "retry"
            and e["data"]["status"] == "approved"
        )
    report.approvals = sum(approvals.values())
    deaths = {p.pid: p.died for p in fleet.procs if p.died is not None}
    report.audit = audit(api, finals, data_dir, deaths, approvals=approvals)
    return report


def table(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def markdown_table(rows: list[tuple[str, str]], header: tuple[str, str] = ("metric", "value")) -> str:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines)


@contextlib.contextmanager
def scratch_postgres(admin_url: str, prefix: str = "tether_bench") -> Iterator[str]:
    """A fresh PostgreSQL database (dropped afterwards); yields its SQLAlchemy URL."""
    import uuid

    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0].split("://", 1)[1]
    try:
        yield f"postgresql+psycopg://{base}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class ChaosStage:
    """What a chaos benchmark breaks: a throwaway agent and data folder and a fleet on a scratch
    PostgreSQL database, with an API client (no process started yet)."""

    root: Path
    data: Path
    fleet: Fleet
    api: Api
    port: int


@contextlib.contextmanager
def chaos_stage(
    admin_url: str, *, db_prefix: str, redis_url: str | None, lease_s: float, poll_s: float
) -> Iterator[ChaosStage]:
    """Set up (and tear down) the stage `benchmarks/chaos.py` and `benchmarks/chaos_db.py` share."""
    import tempfile

    with (
        tempfile.TemporaryDirectory(prefix=f"{db_prefix.replace('_', '-')}-") as tmp,
        scratch_postgres(admin_url, db_prefix) as database_url,
    ):
        root = Path(tmp)
        project = write_project(root / "agent")
        data = root / "data"
        prepare_data_dir(data)
        env = service_env(
            database_url=database_url,
            redis_url=redis_url,
            data_dir=data,
            code_cache=root / "code",
            lease_s=lease_s,
            poll_s=poll_s,
        )
        key = create_key(project, env, user="chaos", scopes="runs:write,runs:read,approvals")
        port = free_port()
        with Fleet(project, env, root / "logs") as fleet, Api(port, key) as api:
            yield ChaosStage(root=root, data=data, fleet=fleet, api=api, port=port)


def machine_info(database_url: str | None = None) -> list[tuple[str, str]]:
    """Where a benchmark ran: CPUs, Python, OS, database server, and the code's commit."""
    import platform
    import sqlite3 as sqlite

    rows = [
        ("nproc", str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())),
        ("python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("os", platform.platform()),
        ("sqlite", sqlite.sqlite_version),
    ]
    if database_url:
        import psycopg

        with psycopg.connect(database_url, connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        rows.append(("postgresql", str(row[0]) if row else "?"))
    commit = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    )
    rows.append(("tether commit", commit.stdout.strip() or "?"))
    return rows
