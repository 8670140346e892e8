"""The long-running worker: concurrency, drain on stop, and `tether serve` as a user starts it."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from conftest import ProjectFactory
from timing import wait_until, wait_until_async

from tether.rollout.releases import working_copy_release
from tether.runtime.service import Runtime
from tether.runtime.worker import Worker
from tether.settings import Settings
from tether.store.records import RunOrigin, RunStatus
from tether.store.repository import Store

TOOLS = '''
import time
from pathlib import Path
from tether import tool, ToolContext

@tool(timeout_s=300)
def pause(ctx: ToolContext) -> str:
    """Leave a marker so tests know it started, then wait until the test says go."""
    ctx.data_dir.mkdir(parents=True, exist_ok=True)
    (ctx.data_dir / f"started-{ctx.run_id}").touch()
    while not (ctx.data_dir / "go").exists():
        time.sleep(0.02)
    return "rested"
'''

POLICY = """
def respond(turn):
    if turn.called("pause"):
        return "done"
    return turn.call("pause")
"""


async def _runtime(project: Path, data_dir: Path) -> tuple[Store, Runtime]:
    store = await Store.open(os.environ["TETHER_DATABASE_URL"])
    return store, Runtime(store, Settings(), data_dir=data_dir)


async def test_worker_runs_many_at_once(make_project: ProjectFactory, isolated_env: Path) -> None:
    project = make_project(tools=TOOLS, policy=POLICY)
    store, runtime = await _runtime(project, isolated_env / "data")
    try:
        release = await working_copy_release(store, project)
        runs = [
            await runtime.submit(release, origin=RunOrigin.API, user_id="u", input="rest") for _ in range(4)
        ]
        worker = Worker(runtime, concurrency=4, poll_s=0.05, heartbeat_s=0.2)
        task = asyncio.create_task(worker.run())
        markers = [isolated_env / "data" / f"started-{r.id}" for r in runs]
        await wait_until_async(lambda: all(marker.exists() for marker in markers))
        # All four tools are executing at the same moment (none can end before the go): the worker
        # runs them concurrently.
        assert len(worker.active) == 4
        await wait_until_async(lambda: store.live_workers(within_s=600), message="the worker's heartbeat")
        (isolated_env / "data" / "go").touch()

        async def statuses() -> set[RunStatus] | None:
            found = {(await store.get_run(r.id)).status for r in runs}
            return found if all(status.is_final for status in found) else None

        assert await wait_until_async(statuses) == {RunStatus.SUCCEEDED}
        worker.stop()
        await task
        assert await store.live_workers(within_s=600) == []  # it said goodbye
    finally:
        await store.close()


async def test_stopping_worker_finishes_the_current_step_and_hands_the_run_back(
    make_project: ProjectFactory, isolated_env: Path
) -> None:
    project = make_project(tools=TOOLS, policy=POLICY)
    store, runtime = await _runtime(project, isolated_env / "data")
    try:
        release = await working_copy_release(store, project)
        run = await runtime.submit(release, origin=RunOrigin.API, user_id="u", input="rest")
        worker = Worker(runtime, concurrency=1, poll_s=0.05)
        task = asyncio.create_task(worker.run())
        await wait_until_async(lambda: (isolated_env / "data" / f"started-{run.id}").exists())
        worker.stop()  # what SIGTERM does, while the tool runs
        (isolated_env / "data" / "go").touch()  # the tool ends only now: the step finishes after the stop
        await task

        parked = await store.get_run(run.id)
        assert parked.status == RunStatus.QUEUED and parked.lease_owner is None
        steps = await store.list_steps(run.id)
        assert [(s.kind, s.status) for s in steps] == [
            ("model_call", "succeeded"),
            ("tool_call", "succeeded"),
        ]

        # Any other worker resumes it from that checkpoint without repeating the tool.
        _, other = await _runtime(project, isolated_env / "data")
        finished = await other.execute_next()
        assert finished is not None and finished.status == RunStatus.SUCCEEDED and finished.output == "done"
        assert len(await store.list_steps(run.id)) == 3
        await other.store.close()
    finally:
        await store.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_tether_serve_prints_a_working_admin_key_and_stops_cleanly(example_project: Path) -> None:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tether", "serve", "--project", str(example_project), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        key = None
        deadline = time.monotonic() + 120
        printed = []
        while key is None and time.monotonic() < deadline:
            line = server.stdout.readline()
            printed.append(line)
            match = re.search(r"(tk_[0-9a-f]{16}_[A-Za-z0-9_-]+)", line)
            key = match.group(1) if match else None
        assert key, "".join(printed)
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=30) as client:

            def ready() -> bool:
                try:
                    return client.get("/readyz").status_code == 200
                except httpx.TransportError:
                    return False

            wait_until(ready, message="/readyz answers 200")
            answer = client.post(
                "/v1/runs",
                json={"input": "What is your return policy?", "wait": 60},
                headers={"Authorization": f"Bearer {key}"},
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["status"] == "succeeded"
            assert client.get("/v1/runs").status_code == 401
    finally:
        server.send_signal(signal.SIGTERM)
        rest, _ = server.communicate(timeout=30)
    # Uvicorn shuts down gracefully, then re-raises SIGTERM so supervisors see why it stopped.
    assert server.returncode in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in rest

    keys = subprocess.run(
        [sys.executable, "-m", "tether", "keys", "list", "--project", str(example_project), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert keys.stdout.count('"user_id": "admin"') == 1  # minted once, on first start only
