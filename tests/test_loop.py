"""Loop behaviour on small purpose-built agents: tool errors, retries, bad arguments, model failures."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from conftest import Cli, ProjectFactory
from timing import wait_until_async

from tether.rollout.releases import working_copy_release
from tether.runtime.service import Runtime
from tether.settings import Settings
from tether.store.records import RunStatus
from tether.store.repository import Store

TOOLS = '''
import time
from tether import tool, ToolContext

CALLS = {"flaky": 0}

@tool
def add(a: int, b: int) -> int:
    """Add two numbers.

    Args:
        a: First number.
        b: Second number.
    """
    return a + b

@tool
def explode(reason: str) -> str:
    """Always fails."""
    raise RuntimeError(f"boom: {reason}")

@tool(timeout_s=0.2)
def slow(seconds: float) -> str:
    """Sleeps."""
    time.sleep(seconds)
    return "woke up"

@tool(retries=2)
def flaky(ctx: ToolContext) -> str:
    """Fails on its first call in each process, then works."""
    CALLS["flaky"] += 1
    if CALLS["flaky"] == 1:
        raise ConnectionError("transient")
    return f"ok after {CALLS['flaky']} calls"
'''

# The policy reads the task as "tool_name json-args" and reports the observation back.
POLICY = """
import json
from tether.models.scripted import ScriptedTurn

def respond(turn: ScriptedTurn):
    if turn.observations:
        seen = turn.observations[-1]
        return f"{seen.tool} said: {seen.content}"
    name, _, args = turn.user_input.partition(" ")
    return turn.call(name, **json.loads(args or "{}"))
"""


def _run(cli: Cli, project: object, task: str) -> dict[str, object]:
    return cli.json("run", "--project", str(project), "--user", "t", task)  # type: ignore[no-any-return]


def _steps(cli: Cli, project: object, run_id: object) -> list[dict[str, object]]:
    return cli.json("runs", "show", str(run_id), "--project", str(project))["steps"]  # type: ignore[no-any-return]


def test_valid_call_runs_the_tool(cli: Cli, make_project: ProjectFactory) -> None:
    project = make_project(tools=TOOLS, policy=POLICY)
    run = _run(cli, project, 'add {"a": 2, "b": "3"}')
    assert run["status"] == "succeeded"
    assert run["output"] == "add said: 5"


def test_invalid_arguments_become_an_observation(cli: Cli, make_project: ProjectFactory) -> None:
    project = make_project(tools=TOOLS, policy=POLICY)
    run = _run(cli, project, 'add {"a": "two"}')
    assert run["status"] == "succeeded"
    assert "invalid arguments for add" in str(run["output"])
    assert "a: Input should be a valid integer" in str(run["output"])
    assert "b: Field required" in str(run["output"])
    assert run["tools_called"] == []  # the function never ran


def test_unknown_tool_becomes_an_observation(cli: Cli, make_project: ProjectFactory) -> None:
    project = make_project(tools=TOOLS, policy=POLICY)
    run = _run(cli, project, "teleport {}")
    assert run["status"] == "succeeded"
    assert "unknown tool 'teleport'" in str(run["output"])


def test_raising_tool_is_a_recorded_tool_error(cli: Cli, make_project: ProjectFactory) -> None:
    project = make_project(tools=TOOLS, policy=POLICY)
    run = _run(cli, project, 'explode {"reason": "test"}')
    assert run["status"] == "succeeded"
    assert "explode failed: RuntimeError: boom: test" in str(run["output"])
    step = _steps(cli, project, run["run_id"])[1]
    assert step["status"] == "failed" and step["attempts"] == 1


def test_timed_out_tool_is_a_recorded_tool_error(cli: Cli, make_project: ProjectFactory) -> None:
    project = make_project(tools=TOOLS, policy=POLICY)
    run = _run(cli, project, 'slow {"seconds": 2}')
    assert run["status"] == "succeeded"
    assert "slow timed out after 0.2s" in str(run["output"])


def test_declared_retries_recover_a_flaky_tool(cli: Cli, make_project: ProjectFactory) -> None:
    project = make_project(tools=TOOLS, policy=POLICY)
    run = _run(cli, project, "flaky {}")
    assert run["output"] == "flaky said: ok after 2 calls"
    assert _steps(cli, project, run["run_id"])[1]["attempts"] == 2


def test_failing_primary_model_falls_back(cli: Cli, make_project: ProjectFactory) -> None:
    # No OPENAI_API_KEY in the test environment: the primary fails for good, the fallback answers.
    project = make_project(
        tools=TOOLS, policy=POLICY, model='primary = "openai:gpt-4o-mini"\nfallbacks = ["scripted:test-v1"]'
    )
    run = _run(cli, project, 'add {"a": 1, "b": 1}')
    assert run["status"] == "succeeded" and run["output"] == "add said: 2"
    model_step = _steps(cli, project, run["run_id"])[0]
    assert model_step["result"] == "scripted:test-v1"  # which model really answered


def test_every_model_failing_fails_the_run_cleanly(cli: Cli, make_project: ProjectFactory) -> None:
    policy = "def respond(turn):\n    raise ValueError('policy bug')\n"
    project = make_project(tools=TOOLS, policy=policy)
    run = _run(cli, project, "anything")
    assert run["status"] == "failed"
    assert "model call failed" in str(run["error"]) and "policy bug" in str(run["error"])


def test_unknown_provider_or_price_is_refused_before_any_run(cli: Cli, make_project: ProjectFactory) -> None:
    project = make_project(tools=TOOLS, policy=POLICY, model='primary = "mystery:model-x"')
    result = cli("run", "--project", project, "hello", expect=2)
    assert "unknown provider 'mystery'" in result.output

    local = make_project(
        tools=TOOLS,
        policy=POLICY,
        model='primary = "local:my-llama"',
        extra='[providers.local]\nkind = "openai"\nbase_url = "http://127.0.0.1:9/v1"',
    )
    result = cli("run", "--project", local, "hello", expect=2)
    assert """no price known for 'local:my-llama': add [prices."local:my-llama"]""" in result.output
    assert cli.json("runs", "list", "--project", local) == []  # nothing was queued


def test_max_steps_applies_to_a_looping_model(cli: Cli, make_project: ProjectFactory) -> None:
    policy = "def respond(turn):\n    return turn.call('add', a=1, b=len(turn.observations))\n"
    project = make_project(tools=TOOLS, policy=policy, limits="max_steps = 5")
    run = _run(cli, project, "loop forever")
    assert run["status"] == "budget_exhausted"
    assert run["steps_used"] == 5
    assert "add(a=1, b=0): 1" in str(run["output"])


async def test_running_run_stops_at_the_next_step_boundary_when_cancelled(
    make_project: ProjectFactory, isolated_env: Path
) -> None:
    gate_tools = (
        TOOLS
        + '''

@tool
def wait_for_file(path: str) -> str:
    """Blocks until a file appears."""
    import pathlib
    pathlib.Path(path + ".started").touch()
    while not pathlib.Path(path).exists():
        time.sleep(0.02)
    return "file appeared"
'''
    )
    project = make_project(tools=gate_tools, policy=POLICY)
    store = await Store.open(os.environ["TETHER_DATABASE_URL"])
    runtime = Runtime(store, Settings(), data_dir=isolated_env / "data")
    try:
        release = await working_copy_release(store, project)
        flag = isolated_env / "go"
        run = await runtime.submit(release, user_id="t", input=f'wait_for_file {{"path": "{flag}"}}')
        task = asyncio.create_task(runtime.execute(run.id))
        await wait_until_async(lambda: Path(f"{flag}.started").exists(), message="the tool starts")
        assert (await store.request_cancel(run.id)).status == RunStatus.RUNNING  # flagged, still running
        flag.touch()
        finished = await task
        assert finished.status == RunStatus.CANCELLED
        steps = await store.list_steps(run.id)
        assert [s.kind for s in steps] == [
            "model_call",
            "tool_call",
        ]  # the tool finished, no model call after
        assert steps[1].result == "file appeared"
    finally:
        await store.close()
