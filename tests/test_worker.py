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

@tool(timeout_s=30)
def pause(seconds: float, ctx: ToolContext) -> str:
    """Sleep a while (and leave a marker so tests know it started)."""
    ctx.data_dir.mkdir(parents=True, exist_ok=True)
    (ctx.data_dir / f"started-{ctx.run_id}").touch()
    time.sleep(seconds)
    return "rested"
'''

POLICY = """
def respond(turn):
    if turn.called("pause"):
        return "done"
    return turn.call("pause", seconds=float(turn.user_input))
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
            await runtime.submit(release, origin=RunOrigin.API, user_id="u", input="0.5") for _ in range(4)
        ]
        worker = Worker(runtime, concurrency=4, poll_s=0.05, heartbeat_s=0.2)
        task = asyncio.create_task(worker.run())
        markers = [isolated_env / "data" / f"started-{r.id}" for r in runs]
        while not all(marker.exists() for marker in markers):
            await asyncio.sleep(0.02)
        # All four tools are executing at the same moment: the worker runs them concurrently.
        assert len(worker.active) == 4
        assert len(await store.live_workers(within_s=30)) == 1
        statuses: set[RunStatus] = set()
        while not statuses or not all(status.is_final for status in statuses):
            await asyncio.sleep(0.05)
            statuses = {(await store.get_run(r.id)).status for r in runs}
        worker.stop()
        await task
        assert statuses == {RunStatus.SUCCEEDED}
        assert await store.live_workers(within_s=30) == []  # it said goodbye
    finally:
        await store.close()


async def test_stopping_worker_finishes_the_current_step_and_hands_the_run_back(
    make_project: ProjectFactory, isolated_env: Path
) -> None:
    project = make_project(tools=TOOLS, policy=POLICY)
    store, runtime = await _runtime(project, isolated_env / "data")
    try:
        release = await working_copy_release(store, project)
        run = await runtime.submit(release, origin=RunOrigin.API, user_id="u", input="0.5")
        worker = Worker(runtime, concurrency=1, poll_s=0.05)
        task = asyncio.create_task(worker.run())
        while not (isolated_env / "data" / f"started-{run.id}").exists():
            await asyncio.sleep(0.02)
        worker.stop()  # what SIGTERM does
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
        deadline = time.monotonic() + 60
        printed = []
        while key is None and time.monotonic() < deadline:
            line = server.stdout.readline()
            printed.append(line)
            match = re.search(r"(tk_[0-9a-f]{16}_[A-Za-z0-9_-]+)", line)
            key = match.group(1) if match else None
        assert key, "".join(printed)
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=30) as client:
            while time.monotonic() < deadline:
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            answer = client.post(
                "/v1/runs",
                json={"input": "What is your return policy?", "wait": 20},
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
