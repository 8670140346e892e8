"""A small shop-assistant agent for the dashboard's tests and screenshots, and ways to fill it with runs.

Nothing here imports pytest, so `docs/take_screenshots.py` reuses it. The agent is deterministic:

- `lookup <item>` calls the read tool `lookup_order`, which fails for the item `broken` (a tool error;
  the run still succeeds with an apology),
- `refund <order>` calls `issue_refund`, a high-risk write that waits for a human approval,
- anything containing `outage` makes the scripted model raise: the run fails,
- anything containing `manager` escalates to a human,
- anything else gets a greeting.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from service_helpers import create_key, free_port, service_env, tether

from tether.store.records import RunOrigin, RunStatus, RunTotals, StepDraft, StepKind, StepOutcome, StepStatus
from tether.store.repository import Store

TOOLS = '''
from tether import tool


@tool
def lookup_order(order: str) -> dict[str, str]:
    """Look an order up by its number."""
    if order == "broken":
        raise RuntimeError("order service unavailable (HTTP 503)")
    return {"order": order, "status": "shipped", "carrier": "UPS"}


@tool(side_effect="write", risk="high", requires_approval=True, idempotent=True)
def issue_refund(order: str, amount_usd: float) -> dict[str, object]:
    """Refund an order; a human approves every refund first."""
    return {"order": order, "refunded_usd": amount_usd, "status": "refunded"}
'''

POLICY = """
def respond(turn):
    text = turn.user_input.strip()
    if "outage" in text:
        raise RuntimeError("upstream model unavailable")
    if "manager" in text:
        if not turn.called("escalate_to_human"):
            return turn.call("escalate_to_human", reason="customer asked for a manager")
        return "A colleague will take over."
    if text.startswith("lookup "):
        if not turn.called("lookup_order"):
            return turn.call("lookup_order", order=text.split(" ", 1)[1])
        result = turn.observations[-1].content
        if "error" in result:
            return "Sorry, I cannot reach the order system right now."
        return "Your order: " + result
    if text.startswith("refund "):
        if not turn.called("issue_refund"):
            return turn.call("issue_refund", order=text.split(" ", 1)[1], amount_usd=25.0)
        return "Refund outcome: " + turn.observations[-1].content
    return "Hello! Ask me about an order."
"""

TOML = """\
[agent]
name = "shop-assistant"
owner = "ops@example.com"

[model]
primary = "scripted:shop-v1"
scripted_policy = "policy:respond"

[limits]
max_steps = 10

[prices."scripted:shop-v1"]
input_per_mtok = 3.0
output_per_mtok = 15.0
"""


def write_shop_project(root: Path, prompt: str = "You are a helpful shop assistant.") -> Path:
    (root / "prompts").mkdir(parents=True, exist_ok=True)
    (root / "prompts" / "system.md").write_text(prompt)
    (root / "tools.py").write_text(textwrap.dedent(TOOLS))
    (root / "policy.py").write_text(textwrap.dedent(POLICY))
    (root / "tether.toml").write_text(TOML)
    return root


# What a busy day looks like: (input, expected final status once approvals are decided).
TRAFFIC = [
    ("hi there", "succeeded"),
    ("lookup 10042", "succeeded"),
    ("lookup 10043", "succeeded"),
    ("lookup broken", "succeeded"),
    ("I want a manager now", "escalated"),
    ("please help, outage?", "failed"),
    ("lookup 10044", "succeeded"),
    ("refund 10042", "waiting_for_approval"),
]

SERVE = ("--concurrency", "2")  # the working copy is v2; `--release` would switch the deployment
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_from(html: str) -> str:
    """The CSRF token a dashboard page embeds in its forms."""
    match = _CSRF.search(html)
    if match is None:
        raise AssertionError("no CSRF token on the page")
    return match.group(1)


# -- a real service with traffic, for the browser test and the screenshots ---------------------------


@dataclass
class Dashboard:
    """A running `tether serve` with the shop agent, a logged-in-able key and settled traffic."""

    base_url: str
    key: str
    runs: dict[str, dict[str, Any]]
    """TRAFFIC input -> the run as the API last showed it."""
    log: Path


def _wait_status(
    client: httpx.Client, run_id: str, statuses: set[str], timeout: float = 120
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run: dict[str, Any] = client.get(f"/v1/runs/{run_id}").json()
        if run["status"] in statuses:
            return run
        time.sleep(0.05)
    raise TimeoutError(f"run {run_id} did not reach {statuses}")


def wait_status(
    base_url: str, key: str, run_id: str, statuses: set[str], timeout: float = 120
) -> dict[str, Any]:
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        return _wait_status(client, run_id, statuses, timeout)


@contextlib.contextmanager
def dashboard_service(workdir: Path, *, history: bool = False) -> Iterator[Dashboard]:
    """The shop agent released as v1 (two CLI runs) and v2 (served by `tether serve` on a free port),
    with TRAFFIC submitted through the API and settled. `history` first adds a simulated day of runs
    (see `seed_history`) so the charts have a shape. The service is stopped on exit."""
    project = write_shop_project(workdir / "shop")
    env = service_env(
        database_url=f"sqlite+aiosqlite:///{workdir / 'tether.db'}",
        data_dir=workdir / "data",
        code_cache=workdir / "code",
        lease_s=10,
    )
    tether("release", "create", "--project", project, "--version", "v1", env=env)
    for text in ("lookup 10001", "lookup broken"):
        tether("run", "--project", project, "--user", "u1", "--release", "v1", text, env=env)
    (project / "prompts" / "system.md").write_text("You are a concise shop assistant.")
    tether("release", "create", "--project", project, "--version", "v2", env=env)
    if history:
        asyncio.run(seed_history(env["TETHER_DATABASE_URL"], ["v1", "v2"]))
    key = create_key(project, env, user="ops", scopes="runs:write,runs:read,approvals")
    # The traffic comes from an application's key: the four-eyes rule keeps the key that asked for a
    # refund from approving it, and `ops` approves from the dashboard.
    app_key = create_key(project, env, user="app", scopes="runs:write,runs:read")
    port = free_port()
    log = workdir / "serve.log"
    with open(log, "wb") as sink:
        server = subprocess.Popen(
            [sys.executable, "-m", "tether", "serve", "--project", str(project), "--port", str(port), *SERVE],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {app_key}"}, timeout=30
        ) as client:
            deadline = time.monotonic() + 120
            while True:
                if server.poll() is not None:
                    raise RuntimeError(f"tether serve exited {server.returncode}:\n{log.read_text()}")
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"tether serve not ready:\n{log.read_text()}")
                time.sleep(0.1)
            runs = {}
            for text, expected in TRAFFIC:
                answer = client.post("/v1/runs", json={"input": text, "wait": 60})
                answer.raise_for_status()
                runs[text] = _wait_status(client, answer.json()["run_id"], {expected})
        yield Dashboard(base_url, key, runs, log)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)


class _Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def seed_history(database_url: str, versions: list[str], *, hours: int = 24, seed: int = 7) -> None:
    """A simulated day of finished runs, written through the Store with a clock set in the past:
    model and tool steps with real durations, costs, some tool errors, failures, escalations and
    feedback. Only for screenshots: tests use real runs."""
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(hours=hours)
    clock = _Clock(start)
    store = await Store.open(database_url, clock=clock)
    try:
        releases = [await store.get_release(v) for v in versions]
        for minute in range(0, hours * 60, 6):
            release = releases[0] if minute < hours * 60 * 0.6 else rng.choice(releases)
            clock.now = start + timedelta(minutes=minute, seconds=rng.uniform(0, 300))
            run = await store.create_run(
                origin=RunOrigin.API,
                release=release,
                user_id=rng.choice(["ana", "ben", "chen", "dee"]),
                input="lookup history",
            )
            await store.claim_run("history", 60, run_id=run.id)
            slow = 1.0 + (3.0 if release.version == "v2" and rng.random() < 0.2 else 0.0)
            cost = 0.0
            tool_failed = rng.random() < (0.12 if release.version == "v1" else 0.04)
            for index, (kind, name) in enumerate(
                [(StepKind.MODEL_CALL, "scripted:shop-v1"), (StepKind.TOOL_CALL, "lookup_order")]
            ):
                await store.begin_step(run.id, "history", 60, StepDraft(index=index, kind=kind, name=name))
                clock.now += timedelta(seconds=rng.uniform(0.2, 1.5) * slow)
                spent = round(rng.uniform(0.0006, 0.0012), 6) if kind == StepKind.MODEL_CALL else 0.0
                cost += spent
                failed = kind == StepKind.TOOL_CALL and tool_failed
                outcome = StepOutcome(
                    status=StepStatus.FAILED if failed else StepStatus.SUCCEEDED,
                    error="order service unavailable (HTTP 503)" if failed else None,
                    result=None if failed else '{"status": "shipped"}',
                    input_tokens=200 if kind == StepKind.MODEL_CALL else 0,
                    output_tokens=20 if kind == StepKind.MODEL_CALL else 0,
                    cost_usd=spent,
                )
                totals = RunTotals(
                    steps_used=index + 1,
                    tools_called=["lookup_order"] if index else [],
                    estimated_cost_usd=cost,
                    input_tokens=200,
                    output_tokens=20,
                )
                await store.finish_step(run.id, "history", 60, index, outcome, totals)
            roll = rng.random()
            status = (
                RunStatus.FAILED
                if roll < 0.03
                else RunStatus.ESCALATED
                if roll < 0.08
                else RunStatus.SUCCEEDED
            )
            await store.finish_run(
                run.id,
                "history",
                60,
                status=status,
                totals=totals,
                output="Your order has shipped.",
                error="model call failed: upstream model unavailable" if status == RunStatus.FAILED else None,
            )
            if rng.random() < 0.15:
                await store.add_feedback(
                    run.id, user_id="ana", score=1 if rng.random() < 0.8 else -1, comment=None
                )
    finally:
        await store.close()
