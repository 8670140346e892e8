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
from tether.store.records import RunOrigin, RunStatus
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
    # Tether's wording plain, the exception's message as untrusted data on the next line
    assert "error: explode failed: RuntimeError:\nboom: test" in str(run["output"])
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
    result = cli("run", "--project", project, "--user", "u1", "hello", expect=2)
    assert "unknown provider 'mystery'" in result.output

    local = make_project(
        tools=TOOLS,
        policy=POLICY,
        model='primary = "local:my-llama"',
        extra='[providers.local]\nkind = "openai"\nbase_url = "http://127.0.0.1:9/v1"',
    )
    result = cli("run", "--project", local, "--user", "u1", "hello", expect=2)
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
        run = await runtime.submit(
            release, origin=RunOrigin.API, user_id="t", input=f'wait_for_file {{"path": "{flag}"}}'
        )
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


# -- issue 11 item 11: the loop around model and tool calls --------------------------------------

DUPLICATE_IDS_POLICY = """
from tether.models.base import ToolCall

def respond(turn):
    if turn.observations:
        return " | ".join(o.content for o in turn.observations)
    return [ToolCall(id="call_0", name="add", arguments={"a": 1, "b": 2}),
            ToolCall(id="call_0", name="add", arguments={"a": 3, "b": 4})]
"""


def test_two_calls_with_one_id_both_run_and_both_are_answered(cli: Cli, make_project: ProjectFactory) -> None:
    project = make_project(tools=TOOLS, policy=DUPLICATE_IDS_POLICY)
    run = _run(cli, project, "add twice")
    assert run["status"] == "succeeded"
    assert run["output"] == "3 | 7"  # before: "3", the second call was dropped without a step
    tool_steps = [s for s in _steps(cli, project, run["run_id"]) if s["kind"] == "tool_call"]
    assert [(s["tool_call_id"], s["result"]) for s in tool_steps] == [("call_0", "3"), ("call_0-2", "7")]


BAD_JSON_POLICY = """
from tether.models.base import ToolCall
from tether.models.openai_compat import function_call

def respond(turn):
    if turn.observations:
        return turn.observations[-1].content
    return function_call("call_1", "add", '{"a": 1, "b": ')
"""


def test_unreadable_arguments_are_an_error_the_model_sees_and_the_tool_never_runs(
    cli: Cli, make_project: ProjectFactory
) -> None:
    project = make_project(tools=TOOLS, policy=BAD_JSON_POLICY)
    run = _run(cli, project, "add badly")
    assert run["status"] == "succeeded"
    assert str(run["output"]).startswith(
        "error: add was not called:\narguments were not valid JSON: Expecting value"
    )
    assert run["tools_called"] == []
    step = _steps(cli, project, run["run_id"])[1]
    assert step["status"] == "failed" and step["attempts"] == 0
    assert step["arguments"] == {"_raw": '{"a": 1, "b": '}  # kept as the model wrote them, for the audit


def test_unknown_tool_message_lists_every_tool_the_model_was_offered(
    cli: Cli, make_project: ProjectFactory
) -> None:
    project = make_project(tools=TOOLS, policy=POLICY)
    run = _run(cli, project, "teleport {}")
    assert "available tools: add, escalate_to_human, explode, flaky, slow" in str(run["output"])


HISTORY_POLICY = """
def respond(turn):
    if turn.user_input == "crash":
        raise ValueError("policy bug")
    return " ".join(f"{m.role}:{m.content}" for m in turn.messages if m.role != "system")
"""


def test_a_failed_turn_keeps_the_thread_alternating(cli: Cli, make_project: ProjectFactory) -> None:
    project = make_project(tools=TOOLS, policy=HISTORY_POLICY)
    first = cli.json("run", "--project", str(project), "--user", "t", "--thread", "th-1", "crash")
    assert first["status"] == "failed"
    second = cli.json("run", "--project", str(project), "--user", "t", "--thread", "th-1", "hello")
    assert (
        second["output"]
        == "user:crash assistant:(No answer was given: this request ended failed.) user:hello"
    )


def test_a_step_records_every_request_and_the_model_that_answered(
    cli: Cli, make_project: ProjectFactory
) -> None:
    # Nothing listens on port 9: each request fails to connect (transient), so the primary is tried
    # 1 + 2 retries times before the fallback answers.
    project = make_project(
        tools=TOOLS,
        policy=POLICY,
        model='primary = "local:down"\nfallbacks = ["scripted:test-v1"]\nretries = 2',
        extra='[providers.local]\nkind = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n'
        '[prices."local:down"]\ninput_per_mtok = 0\noutput_per_mtok = 0',
    )
    run = _run(cli, project, 'add {"a": 1, "b": 1}')
    assert run["status"] == "succeeded"
    first_model_step = _steps(cli, project, run["run_id"])[0]
    assert first_model_step["attempts"] == 4
    assert first_model_step["name"] == "scripted:test-v1"
    assert first_model_step["result"] == "scripted:test-v1"


CUT_OFF_POLICY = """
from tether.models.base import ModelResponse

def respond(turn):
    if turn.user_input == "long":
        return ModelResponse(content="The first half of a long ans", finish_reason="length")
    return "short and whole"
"""


def test_an_answer_cut_off_at_the_token_limit_marks_the_run_truncated(
    cli: Cli, make_project: ProjectFactory
) -> None:
    project = make_project(tools=TOOLS, policy=CUT_OFF_POLICY)
    run = _run(cli, project, "long")
    assert run["status"] == "succeeded"
    assert run["truncated"] is True
    assert _steps(cli, project, run["run_id"])[0]["finish_reason"] == "length"

    shown = cli("runs", "show", str(run["run_id"]), "--project", str(project)).output
    assert "cut off: the answer reached [model] max_output_tokens" in shown

    whole = _run(cli, project, "short")
    assert whole["truncated"] is False
    assert _steps(cli, project, whole["run_id"])[0]["finish_reason"] == "stop"
    assert "cut off" not in cli("runs", "show", str(whole["run_id"]), "--project", str(project)).output
