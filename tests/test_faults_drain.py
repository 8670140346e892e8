"""SIGTERM drain is bounded: a real worker process with a hung sync tool exits within its grace period
and leaves the run's lease in place, so nobody re-runs the call while it might still be running."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import ProjectFactory

from tether.rollout.releases import working_copy_release
from tether.runtime.service import Runtime
from tether.settings import Settings
from tether.store.records import RunStatus, StepStatus
from tether.store.repository import Store

HUNG_TOOLS = '''
import time
from tether import tool, ToolContext

@tool(timeout_s=3600)
def stuck(ctx: ToolContext) -> str:
    """A synchronous call that never returns (a hung driver, a dead socket)."""
    ctx.data_dir.mkdir(parents=True, exist_ok=True)
    (ctx.data_dir / "started").touch()
    while True:
        time.sleep(0.05)
'''

POLICY = """
def respond(turn):
    return "never" if turn.called("stuck") else turn.call("stuck")
"""


async def _wait_for(path: Path, child: asyncio.subprocess.Process, deadline_s: float = 90.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not path.exists():
        assert child.returncode is None, "the worker died before the tool started"
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        await asyncio.sleep(0.05)


async def test_sigterm_with_a_hung_sync_tool_exits_within_the_grace_period_and_keeps_the_lease(
    make_project: ProjectFactory, isolated_env: Path
) -> None:
    project = make_project(tools=HUNG_TOOLS, policy=POLICY)
    data = isolated_env / "data"
    store = await Store.open(os.environ["TETHER_DATABASE_URL"])
    try:
        release = await working_copy_release(store, project)
        run = await Runtime(store, Settings(), data_dir=data).submit(
            release, user_id="u", input="go", origin="cli"
        )
        log_path = isolated_env / "worker.log"
        env = {
            **os.environ,
            "TETHER_WORKER_GRACE_S": "3",
            "TETHER_LEASE_SECONDS": "600",  # so only a handed-back lease could let anyone claim it here
            "TETHER_LOG_FORMAT": "console",
        }
        with log_path.open("wb") as log:
            child = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tether",
                "worker",
                "--project",
                str(project),
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        try:
            await _wait_for(data / "started", child)
            child.send_signal(signal.SIGTERM)
            # Generous: the grace period is 3 s; before the fix the process never exited at all.
            code = await asyncio.wait_for(child.wait(), 90)
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()
        assert code == 0, log_path.read_text()

        held = await store.get_run(run.id)
        assert held.status == RunStatus.RUNNING and held.lease_owner is not None  # not handed over
        steps = await store.list_steps(run.id)
        assert [(s.name, s.status) for s in steps][-1] == ("stuck", StepStatus.STARTED)
        other = Runtime(store, Settings(worker_id="other"), data_dir=data)
        assert await other.claim_next() is None
        logged = log_path.read_text()
        assert "abandoning them with their lease held" in logged
        assert "worker stopped" in logged
    finally:
        await store.close()
