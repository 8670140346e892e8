"""A real process is SIGKILLed in the middle of a run; another process finishes it from its checkpoint."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import Cli, ProjectFactory
from timing import TestClock, wait_until

from tether.settings import Settings
from tether.store.repository import Store

TOOLS = '''
import json
import time
from pathlib import Path
from tether import tool, ToolContext


def _log(ctx: ToolContext, event: str) -> None:
    ctx.data_dir.mkdir(parents=True, exist_ok=True)
    with open(ctx.data_dir / "effects.log", "a") as log:
        log.write(json.dumps({"event": event, "key": ctx.idempotency_key}) + "\\n")


def _maybe_hang(ctx: ToolContext, name: str) -> None:
    (ctx.data_dir / f"started-{name}").touch()
    while (ctx.data_dir / "hang").exists():  # the test removes it once the process is dead
        time.sleep(0.05)


@tool
def note(text: str, ctx: ToolContext) -> str:
    """Record a note (a read tool: safe to repeat)."""
    _log(ctx, "note")
    return f"noted {text}"


@tool(side_effect="write", risk="medium")
def charge(amount: int, ctx: ToolContext) -> str:
    """Charge a card: a write that is NOT idempotent."""
    _log(ctx, "charge-start")
    _maybe_hang(ctx, "charge")
    _log(ctx, "charge-done")
    return f"charged {amount}"


@tool(side_effect="write", risk="medium", idempotent=True)
def ship(parcel: str, ctx: ToolContext) -> str:
    """Ship a parcel: a write that dedupes on its idempotency key."""
    shipped = ctx.data_dir / "shipped.json"
    done = json.loads(shipped.read_text()) if shipped.exists() else {}
    _log(ctx, "ship-start")
    _maybe_hang(ctx, "ship")
    done.setdefault(ctx.idempotency_key, parcel)
    shipped.write_text(json.dumps(done))
    return f"shipped {parcel}"
'''

POLICY = """
from tether.models.scripted import ScriptedTurn

def respond(turn: ScriptedTurn):
    if not turn.called("note"):
        return turn.call("note", text="before")
    if turn.user_input == "charge" and not turn.called("charge"):
        return turn.call("charge", amount=42)
    if turn.user_input == "ship" and not turn.called("ship"):
        return turn.call("ship", parcel="box-1")
    return " | ".join(o.content for o in turn.observations)
"""


def _effects(data_dir: Path) -> list[str]:
    log = data_dir / "effects.log"
    if not log.exists():
        return []
    return [json.loads(line)["event"] for line in log.read_text().splitlines()]


def _start(project: Path, task: str, lease_s: float | None = None) -> subprocess.Popen[bytes]:
    env = {**os.environ, **({"TETHER_LEASE_SECONDS": str(lease_s)} if lease_s else {})}
    return subprocess.Popen(
        [sys.executable, "-m", "tether", "run", "--project", str(project), "--user", "u", task],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait_for_tool(child: subprocess.Popen[bytes], marker: Path) -> None:
    wait_until(lambda: marker.exists() or child.poll() is not None, message=f"{marker.name} appears")
    if not marker.exists():
        raise AssertionError(f"child exited early: {child.stderr.read().decode() if child.stderr else ''}")


def _start_and_kill(project: Path, data_dir: Path, task: str, tool: str, clock: TestClock) -> None:
    """Run `tether run` in a child process and SIGKILL it while `tool` is executing; then move this
    process's clock past the dead process's lease (it has the default one, 30 s)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "hang").touch()
    child = _start(project, task)
    _wait_for_tool(child, data_dir / f"started-{tool}")
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    (data_dir / "hang").unlink()
    clock.advance(Settings().lease_seconds + 1)


@pytest.fixture
def project(make_project: ProjectFactory) -> Path:
    return make_project(tools=TOOLS, policy=POLICY)


def _only_run(cli: Cli, project: Path) -> dict[str, object]:
    runs = cli.json("runs", "list", "--project", project)
    assert len(runs) == 1
    return runs[0]  # type: ignore[no-any-return]


def test_interrupted_non_idempotent_write_waits_for_a_human_and_runs_once_more_if_approved(
    cli: Cli, project: Path, isolated_env: Path, clock: TestClock
) -> None:
    data = isolated_env / "data"
    _start_and_kill(project, data, "charge", "charge", clock)
    stranded = _only_run(cli, project)
    assert stranded["status"] == "running"  # the dead process still "holds" it until the lease runs out
    assert _effects(data) == ["note", "charge-start"]

    drained = cli.json("worker", "--project", project, "--drain")
    assert drained == [{"run_id": stranded["run_id"], "status": "waiting_for_approval"}]
    shown = cli.json("runs", "show", str(stranded["run_id"]), "--project", project)
    assert shown["pending_approval"]["kind"] == "retry"
    assert "outcome is unknown" in shown["pending_approval"]["reason"]
    assert _effects(data) == ["note", "charge-start"]  # nothing re-ran: not the recorded note, not the charge

    done = cli.json(
        "approve", str(stranded["run_id"]), "--project", project, "--reason", "card was not charged"
    )
    assert done["status"] == "succeeded"
    assert done["output"] == "noted before | charged 42"
    assert _effects(data) == ["note", "charge-start", "charge-start", "charge-done"]
    assert done["attempts"] == 3  # first process, the drain that parked it, the resume after approval


def test_interrupted_non_idempotent_write_is_not_rerun_when_rejected(
    cli: Cli, project: Path, isolated_env: Path, clock: TestClock
) -> None:
    data = isolated_env / "data"
    _start_and_kill(project, data, "charge", "charge", clock)
    run_id = str(_only_run(cli, project)["run_id"])
    cli.json("worker", "--project", project, "--drain")

    done = cli.json("approve", run_id, "--project", project, "--reject", "--reason", "it went through")
    assert done["status"] == "succeeded"
    assert "charge was interrupted and not retried (reviewer: it went through)" in str(done["output"])
    assert _effects(data) == ["note", "charge-start"]


def test_interrupted_idempotent_write_is_retried_with_the_same_key(
    cli: Cli, project: Path, isolated_env: Path, clock: TestClock
) -> None:
    data = isolated_env / "data"
    _start_and_kill(project, data, "ship", "ship", clock)
    run_id = str(_only_run(cli, project)["run_id"])

    drained = cli.json("worker", "--project", project, "--drain")
    assert drained == [{"run_id": run_id, "status": "succeeded"}]
    assert _effects(data) == ["note", "ship-start", "ship-start"]
    shipped = json.loads((data / "shipped.json").read_text())
    assert shipped == {f"{run_id}:3": "box-1"}  # one effect, keyed run_id:step
    steps = cli.json("runs", "show", run_id, "--project", project)["steps"]
    assert [(s["name"], s["status"]) for s in steps] == [
        ("scripted:test-v1", "succeeded"),
        ("note", "succeeded"),
        ("scripted:test-v1", "succeeded"),
        ("ship", "succeeded"),
        ("scripted:test-v1", "succeeded"),
    ]


def _lease_expiry(run_id: str) -> datetime | None:
    async def read() -> datetime | None:
        store = await Store.open(os.environ["TETHER_DATABASE_URL"], migrate=False)
        try:
            return (await store.get_run(run_id)).lease_expires_at
        finally:
            await store.close()

    return asyncio.run(read())


def test_heartbeat_keeps_a_live_process_lease(
    cli: Cli, project: Path, isolated_env: Path, clock: TestClock
) -> None:
    """The tool runs past the lease it was claimed with; the heartbeat keeps extending the lease, so
    a drain at a moment past the original lease (this process's clock set there) takes nothing."""
    data = isolated_env / "data"
    data.mkdir(parents=True)
    (data / "hang").touch()
    lease_s = 6.0  # renewed every 2 s: the test waits for two renewals
    child = _start(project, "charge", lease_s)
    try:
        _wait_for_tool(child, data / "started-charge")
        run_id = str(_only_run(cli, project)["run_id"])
        first = _lease_expiry(run_id)
        assert first is not None
        renewed = wait_until(
            lambda: (
                (e := _lease_expiry(run_id)) is not None and e > first + timedelta(seconds=lease_s / 2) and e
            ),
            message="the heartbeat extends the lease",
        )
        clock.offset = (first + timedelta(seconds=1)) - datetime.now(UTC)  # past the first lease only
        assert clock() < renewed
        assert cli.json("worker", "--project", project, "--drain") == []
    finally:
        (data / "hang").unlink()
        child.wait(timeout=120)
    assert _only_run(cli, project)["status"] == "succeeded"
    assert _effects(data).count("charge-start") == 1
