"""Controls as the run loop honours them (issue 14 items 1-2): at every step boundary and before
every tool execution, a refusal the model sees rather than a crash, a stop that ends the run
`cancelled` with the reason, and the run record listing the controls that applied."""

from __future__ import annotations

import asyncio
from pathlib import Path

from conftest import Cli, ProjectFactory
from timing import wait_until_async

from tether.controls.service import set_control
from tether.rollout.releases import working_copy_release
from tether.runtime.service import Runtime
from tether.settings import Settings
from tether.store import db
from tether.store.records import RunOrigin, RunStatus, StepKind, StepStatus
from tether.store.repository import Store

TOOLS = '''
import time
from pathlib import Path
from tether import tool, ToolContext

@tool
def add(a: int, b: int) -> int:
    """Add two numbers.

    Args:
        a: First number.
        b: Second number.
    """
    return a + b

@tool(side_effect="write", idempotent=True)
def save(note: str) -> str:
    """Save a note (a write).

    Args:
        note: The note.
    """
    return f"saved {note}"

@tool(timeout_s=60)
def wait_for(flag: str, ctx: ToolContext) -> str:
    """Waits until the flag file exists in the data folder.

    Args:
        flag: The file name.
    """
    while not (ctx.data_dir / flag).exists():
        time.sleep(0.05)
    return "flag seen"
'''

# "tool json-args; tool json-args": call each in turn, then report every observation.
POLICY = """
import json
from tether.models.scripted import ScriptedTurn

def respond(turn: ScriptedTurn):
    plan = [part.strip() for part in turn.user_input.split(";") if part.strip()]
    done = len(turn.observations)
    if done < len(plan):
        name, _, args = plan[done].partition(" ")
        return turn.call(name, **json.loads(args or "{}"))
    return " | ".join(f"{o.tool}: {o.content}" for o in turn.observations)
"""


def _project(make_project: ProjectFactory, **extra: str) -> Path:
    return make_project(tools=TOOLS, policy=POLICY, **extra)


def _run(cli: Cli, project: Path, task: str) -> dict[str, object]:
    return cli.json("run", "--project", str(project), "--user", "u", task)  # type: ignore[no-any-return]


def _set(cli: Cli, project: Path, *args: str) -> dict[str, object]:
    return cli.json("control", "set", *args, "--reason", "test", "--project", str(project))  # type: ignore[no-any-return]


def test_a_disabled_tool_is_an_error_the_model_sees(cli: Cli, make_project: ProjectFactory) -> None:
    project = _project(make_project)
    control = _set(cli, project, "disable_tool", "add")
    run = _run(cli, project, 'add {"a": 1, "b": 2}')
    assert run["status"] == "succeeded"
    assert "add is unavailable: an operator disabled it (test)" in str(run["output"])
    assert run["tools_called"] == []
    assert run["controls_applied"] == [f"{control['id']} disable_tool=add @all"]

    cli("control", "clear", str(control["id"]), "--reason", "fixed", "--project", str(project))
    again = _run(cli, project, 'add {"a": 1, "b": 2}')
    assert again["output"] == "add: 3" and again["controls_applied"] == []


def test_read_only_refuses_writes_and_lets_reads_run(cli: Cli, make_project: ProjectFactory) -> None:
    project = _project(make_project)
    _set(cli, project, "read_only")
    run = _run(cli, project, 'save {"note": "x"}; add {"a": 1, "b": 1}')
    assert "save: error: save is unavailable: the service is in read-only mode" in str(run["output"])
    assert "add: 2" in str(run["output"])
    assert run["tools_called"] == ["add"]


def test_a_step_cap_below_the_release_limit_ends_the_run_gracefully(
    cli: Cli, make_project: ProjectFactory
) -> None:
    project = _project(make_project)
    _set(cli, project, "cap_steps", "3")
    run = _run(cli, project, 'add {"a": 1, "b": 1}; add {"a": 2, "b": 2}; add {"a": 3, "b": 3}')
    assert run["status"] == "budget_exhausted"
    assert "the step limit (3 steps)" in str(run["error"])
    assert run["steps_used"] == 3


def test_switch_model_moves_a_release_to_its_configured_fallback(
    cli: Cli, make_project: ProjectFactory
) -> None:
    project = _project(make_project, model='primary = "scripted:a"\nfallbacks = ["scripted:b"]')
    _set(cli, project, "switch_model", "scripted:b")
    run = _run(cli, project, 'add {"a": 1, "b": 1}')
    steps = cli.json("runs", "show", str(run["run_id"]), "--project", str(project))["steps"]
    assert [s["result"] for s in steps if s["kind"] == "model_call"] == ["scripted:b", "scripted:b"]

    release = cli.json("release", "list", "--project", str(project))
    version = release[0]["version"] if release else None
    if version:  # a release-scoped switch must name one of that release's models
        refused = cli(
            "control",
            "set",
            "switch_model",
            "openai:gpt-4o",
            "--scope",
            f"release:{version}",
            "--reason",
            "x",
            "--project",
            str(project),
            expect=2,
        )
        assert "not configured for release" in refused.output


def test_force_review_parks_every_call_when_asked(cli: Cli, make_project: ProjectFactory) -> None:
    project = _project(make_project)
    _set(cli, project, "force_review", "all")
    run = _run(cli, project, 'add {"a": 1, "b": 1}')
    assert run["status"] == "waiting_for_approval"
    assert "an operator requires human review (test)" in str(run["pending_approval"]["reason"])  # type: ignore[index]


def test_paused_runs_are_refused_with_the_maintenance_message(cli: Cli, make_project: ProjectFactory) -> None:
    project = _project(make_project)
    _set(cli, project, "maintenance", "Back at 14:00 UTC")
    _set(cli, project, "pause_runs", "120")
    refused = cli("run", "--project", str(project), "--user", "u", "add {}", expect=2)
    assert "Back at 14:00 UTC" in refused.output and "new runs are paused" in refused.output


def test_bad_control_input_is_one_clear_line(cli: Cli, make_project: ProjectFactory) -> None:
    project = _project(make_project)
    for args, message in (
        (("teleport",), "unknown control 'teleport'"),
        (("cap_steps", "many"), "whole number"),
        (("read_only", "--scope", "galaxy:x"), "bad scope"),
        (("read_only", "--expires", "soon"), "bad duration"),
    ):
        result = cli("control", "set", *args, "--reason", "r", "--project", str(project), expect=2)
        assert message in result.output and "Traceback" not in result.output
    missing = cli("control", "set", "read_only", "--project", str(project), expect=2)
    assert "say why" in missing.output
    unknown = cli("control", "clear", "ctl_nope", "--reason", "r", "--project", str(project), expect=2)
    assert "no control 'ctl_nope'" in unknown.output


async def test_stop_background_cancels_queued_runs_and_stops_running_ones_at_the_next_step(
    make_project: ProjectFactory, tmp_path: Path
) -> None:
    project = _project(make_project)
    store = await Store.open(db.default_url(project))
    try:
        runtime = Runtime(store, Settings(), data_dir=tmp_path)
        release = await working_copy_release(store, project)
        running = await runtime.submit(
            release, user_id="u", input='wait_for {"flag": "go"}; add {"a": 1, "b": 1}', origin=RunOrigin.CLI
        )
        task = asyncio.create_task(runtime.execute(running.id))

        async def inside_the_tool() -> bool:
            steps = await store.list_steps(running.id)
            return any(s.kind == StepKind.TOOL_CALL and s.status == StepStatus.STARTED for s in steps)

        await wait_until_async(inside_the_tool, message="the run is inside its tool call")
        queued = await runtime.submit(release, user_id="u", input="add {}", origin=RunOrigin.CLI)
        change = await set_control(
            store, runtime.live, kind="stop_background", scope="all", reason="runaway agent", by="op"
        )
        assert change.cancelled_runs == (queued.id,)
        cancelled = await store.get_run(queued.id)
        assert cancelled.status == RunStatus.CANCELLED and "runaway agent" in str(cancelled.error)

        (tmp_path / "go").write_text("")  # the tool call in flight finishes; the next boundary stops
        stopped = await task
        assert stopped.status == RunStatus.CANCELLED
        assert stopped.error == f"stopped by operator control {change.control.id}: runaway agent"
        assert stopped.tools_called == ["wait_for"]  # add never ran
        assert any("stop_background" in name for name in stopped.controls_applied)
    finally:
        await store.close()
