"""Scale-out: one `tether api` and several `tether worker` processes share one PostgreSQL database.

Every process is real (`python -m tether ...`). The test agent's tools log each
execution (pid, run, step, idempotency key, monotonic time) to an append-only file in the shared data
folder, its idempotent write dedupes by idempotency key into SQLite, and its non-idempotent write
appends a row per execution (see `service_helpers`). From those records the tests check that no two
processes ever executed one run at the same time and that every write happened once per step.
No assertion depends on how fast anything is; every wait is on a condition, with a generous bound.
Random, timed SIGKILLs under load are a benchmark (`benchmarks/chaos.py`), not a test.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx
import psycopg
import redis
from conftest import POSTGRES_ADMIN_URL, Cli, ProjectFactory
from service_helpers import (
    Api,
    Fleet,
    Proc,
    audit,
    create_key,
    executions,
    free_port,
    plan,
    prepare_data_dir,
    read_log,
    service_env,
    status_workers,
    write_project,
)
from timing import TestClock, wait_until

from tether.settings import Settings


def _deployment(tmp_path: Path, postgres_url: str, redis_url: str) -> tuple[Path, Path, dict[str, str], str]:
    """Project, shared data folder, environment and an API key (creating it also migrates, once)."""
    project = write_project(tmp_path / "agent")
    data = tmp_path / "shared-data"
    prepare_data_dir(data)
    env = service_env(
        database_url=postgres_url, redis_url=redis_url, data_dir=data, code_cache=tmp_path / "code"
    )
    key = create_key(project, env, user="tester", scopes="runs:write,runs:read,approvals")
    return project, data, env, key


def test_api_and_two_workers_share_the_queue_and_a_stopping_worker_hands_its_runs_over(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    project, data, env, key = _deployment(tmp_path, postgres_url, redis_url)
    port = free_port()
    with Fleet(project, env, tmp_path / "logs") as fleet, Api(port, key) as api:
        server = fleet.start_api(port)
        first, second = fleet.start_worker(4), fleet.start_worker(4)
        api.wait_ready(workers=2, timeout=120, procs=[server, first, second])

        # 1. Thirty runs through HTTP: all succeed, both workers take part, nothing runs twice.
        rng = random.Random(7)
        batch = [
            api.submit(
                plan(
                    f"r{i}",
                    [round(rng.uniform(0.05, 0.2), 3) for _ in range(2)],
                    record=round(rng.uniform(0.05, 0.15), 3),
                )
            )
            for i in range(30)
        ]
        finals = api.wait_final(batch, timeout=120)
        assert Counter(r["status"] for r in finals.values()) == {"succeeded": 30}
        found = audit(api, finals, data, deaths={}, strict_once=True)
        assert found.violations == []
        assert found.executions == 30 * 3  # two lookups and one record per run, each exactly once
        assert set(found.pids) == {first.pid, second.pid}, found.pids
        claims = {run_id: status_workers(api.events(run_id)) for run_id in batch}
        assert all(len(owners) == 1 for owners in claims.values()), claims  # claimed once, never stolen
        assert {owners[0] for owners in claims.values()} == {first.name, second.name}

        # 2. SIGTERM the first worker while it executes tools: it finishes the step it is in, hands
        #    the runs back and exits 0; the second worker finishes them.
        slow = [api.submit(plan(f"s{i}", [0.6, 0.6], record=0.4)) for i in range(12)]
        busy = wait_until(
            lambda: _in_a_tool(data, first, slow), message="the first worker never started a slow tool"
        )
        assert fleet.sigterm(first, timeout=120) == 0, first.output()
        assert "worker stopped after" in first.output()

        finals = api.wait_final(slow, timeout=120)
        assert Counter(r["status"] for r in finals.values()) == {"succeeded": 12}
        assert second.alive and server.alive
        found = audit(api, finals, data, deaths={first.pid: first.died or 0.0}, strict_once=True)
        assert found.violations == []  # the step in flight finished once, and was not repeated
        for run_id in busy:
            events = api.events(run_id)
            owners = status_workers(events)
            assert owners[0] == first.name and owners[-1] == second.name, owners
            assert any(
                e["event"] == "status" and e["data"] == {"status": "queued", "reason": "worker stopping"}
                for e in events
            )
        first_runs = {e.run for e in executions(read_log(data / "effects.log"), {}) if e.pid == first.pid}
        assert busy <= first_runs


def _in_a_tool(data: Path, worker: Proc, runs: list[str]) -> set[str]:
    """The runs among `runs` in which `worker` is executing a tool right now."""
    found = executions(read_log(data / "effects.log"), {})
    return {e.run for e in found if e.pid == worker.pid and not e.finished and e.run in runs}


def test_a_worker_sigkilled_in_a_tool_call_loses_no_run_and_repeats_no_write(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    """SIGKILL a worker while it executes tools; a worker started afterwards resumes every run it held
    from its checkpoint once the dead worker's lease has expired. Only one worker is alive at a time,
    so a live worker that the machine starves can never lose a run to the other."""
    project, data, env, key = _deployment(tmp_path, postgres_url, redis_url)
    env = {**env, "TETHER_LEASE_SECONDS": "5"}  # how long the survivor waits before it takes over
    port = free_port()
    with Fleet(project, env, tmp_path / "logs") as fleet, Api(port, key) as api:
        server = fleet.start_api(port)
        doomed = fleet.start_worker(3)
        api.wait_ready(workers=1, timeout=120, procs=[server, doomed])
        runs = [api.submit(plan(f"k{i}", [0.3, 0.3], record=0.3)) for i in range(6)]
        busy = wait_until(lambda: _in_a_tool(data, doomed, runs), message="the worker never started a tool")
        fleet.sigkill(doomed)
        survivor = fleet.start_worker(3)
        finals = api.wait_final(runs, timeout=300)
        assert Counter(r["status"] for r in finals.values()) == {"succeeded": len(runs)}
        found = audit(api, finals, data, deaths={doomed.pid: doomed.died or 0.0})
        assert found.violations == []  # no overlap; the idempotent write made one row per run
        assert doomed.pid in found.pids and survivor.pid in found.pids
        for run_id in busy:  # the runs cut short were resumed by the survivor, from their checkpoint
            owners = status_workers(api.events(run_id))
            assert owners[0] == doomed.name and owners[-1] == survivor.name, owners


def test_runs_accepted_by_an_api_node_killed_right_after_answering_are_not_lost(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    project, _, env, key = _deployment(tmp_path, postgres_url, redis_url)
    first_port, second_port = free_port(), free_port()
    with Fleet(project, env, tmp_path / "logs") as fleet:
        doomed = fleet.start_api(first_port)
        with Api(first_port, key) as api:
            wait_until(lambda: _answers(api) or not doomed.alive)
            assert doomed.alive, doomed.output()
            accepted = [api.submit(plan(f"k{i}", [0.05])) for i in range(10)]
        fleet.sigkill(doomed)  # no worker was running: the runs exist only in the database
        survivor = fleet.start_api(second_port)
        worker = fleet.start_worker(4)
        with Api(second_port, key) as api:
            api.wait_ready(workers=1, timeout=120, procs=[survivor, worker])
            finals = api.wait_final(accepted, timeout=120)
    assert Counter(r["status"] for r in finals.values()) == {"succeeded": 10}


def _answers(api: Api) -> bool:
    try:
        return api.client.get("/healthz").status_code == 200
    except httpx.TransportError:
        return False


_OPEN_TOGETHER = """
import asyncio, sys, time
from pathlib import Path
from tether.store.repository import Store

folder = Path(sys.argv[2])
(folder / f"ready-{sys.argv[3]}").touch()
deadline = time.monotonic() + 300
while not (folder / "go").exists() and time.monotonic() < deadline:
    time.sleep(0.001)

async def main():
    store = await Store.open(sys.argv[1])  # what every tether command does first: migrate
    await store.close()

asyncio.run(main())
"""


def test_processes_started_together_on_a_new_database_all_come_up(
    empty_postgres_url: str, tmp_path: Path
) -> None:
    """An API and its workers deployed at once all migrate the same new database (one wins, the
    others wait on the advisory lock and find it current): none exits with a duplicate-table error."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _OPEN_TOGETHER, empty_postgres_url, str(tmp_path), str(i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(4)
    ]
    outputs = []
    try:
        wait_until(lambda: len(list(tmp_path.glob("ready-*"))) == len(procs), message="all processes ready")
        (tmp_path / "go").touch()  # all four open the database at the same moment, like a deploy
        for proc in procs:
            out, _ = proc.communicate(timeout=120)
            outputs.append((proc.returncode, out[-600:]))  # the loser of a race used to fail here
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    assert [code for code, _ in outputs] == [0, 0, 0, 0], outputs
    admin = f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{empty_postgres_url.rsplit('/', 1)[1]}"
    with psycopg.connect(admin) as conn:
        assert conn.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)


# -- regressions: notifications from workers, and one approval per retried attempt ----------------------


def test_workers_publish_run_notifications_through_redis(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    project, _, env, key = _deployment(tmp_path, postgres_url, redis_url)
    port = free_port()
    listener = redis.Redis.from_url(redis_url, socket_timeout=5)
    pubsub = listener.pubsub()
    pubsub.subscribe("tether:runs")
    try:
        with Fleet(project, env, tmp_path / "logs") as fleet, Api(port, key) as api:
            server = fleet.start_api(port)
            worker = fleet.start_worker(1)
            api.wait_ready(workers=1, timeout=120, procs=[server, worker])
            run_id = api.submit(plan("n", [0.05], record=0.05))
            api.wait_final([run_id], timeout=60)
        seen: list[str] = []

        def notified_twice() -> bool:
            message = pubsub.get_message(timeout=0.2)
            if message and message["type"] == "message":
                seen.append(message["data"].decode())
            return seen.count(run_id) > 1

        wait_until(notified_twice, interval=0, message=lambda: f"two notifications of {run_id}: {seen}")
    finally:
        pubsub.close()
        listener.close()
    # Created (API node), claimed, 5 steps started and finished, finished: all by the worker but one.
    assert seen.count(run_id) > 1, seen


HANGING_TOOLS = '''
import json
import os
import time
from tether import tool, ToolContext


@tool(side_effect="write", risk="medium")
def charge(amount: int, ctx: ToolContext) -> str:
    """Charge a card: a write that is NOT idempotent."""
    with open(ctx.data_dir / "effects.log", "a") as log:
        log.write(json.dumps({"event": "charge-start", "pid": os.getpid()}) + "\\n")
    while (ctx.data_dir / "hang").exists():  # the test removes it once it has killed the process
        time.sleep(0.05)
    with open(ctx.data_dir / "effects.log", "a") as log:
        log.write(json.dumps({"event": "charge-done", "pid": os.getpid()}) + "\\n")
    return f"charged {amount}"
'''

HANGING_POLICY = """
def respond(turn):
    if not turn.called("charge"):
        return turn.call("charge", amount=42)
    return " | ".join(o.content for o in turn.observations)
"""


def _charge_starts(data: Path) -> int:
    log = data / "effects.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return sum(json.loads(line)["event"] == "charge-start" for line in lines)


def _kill_during_charge(args: list[str], data: Path, starts_before: int, clock: TestClock) -> None:
    """Start `tether <args>` and SIGKILL it while its charge call is executing; then move this
    process's clock past the dead process's lease (the child keeps the default 30 s one)."""
    (data / "hang").touch()
    child = subprocess.Popen(
        [sys.executable, "-m", "tether", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: _charge_starts(data) > starts_before or child.poll() is not None)
        assert child.poll() is None, "the child exited before charging"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
        (data / "hang").unlink()
    clock.advance(Settings().lease_seconds + 1)


def test_an_approved_retry_that_is_interrupted_again_asks_a_human_again(
    cli: Cli, make_project: ProjectFactory, isolated_env: Path, clock: TestClock
) -> None:
    project = make_project(tools=HANGING_TOOLS, policy=HANGING_POLICY)
    data = isolated_env / "data"
    data.mkdir(parents=True)
    _kill_during_charge(["run", "--project", str(project), "--user", "u", "charge"], data, 0, clock)
    run_id = cli.json("runs", "list", "--project", project)[0]["run_id"]
    assert cli.json("worker", "--project", project, "--drain") == [
        {"run_id": run_id, "status": "waiting_for_approval"}
    ]
    cli("approve", run_id, "--project", project, "--queue", "--reason", "card was not charged")
    # The approved retry starts (charge #2) and its process dies too: outcome unknown again.
    _kill_during_charge(["worker", "--project", str(project), "--drain"], data, 1, clock)
    assert _charge_starts(data) == 2

    drained = cli.json("worker", "--project", project, "--drain")
    # Expected: a fresh retry approval; a human approved one more attempt, and that attempt happened.
    assert drained == [{"run_id": run_id, "status": "waiting_for_approval"}]
    assert _charge_starts(data) == 2
