"""The kill switch has no late call (issue 14 items 2 and 7): the last control check runs inside the
tool's call, so a switch the process applied after the loop's checks, even one that lands between
the loop's check and the tool's thread, is honoured; an approval given before the switch does not
outlive it; a stop ends the run `cancelled`. Interleavings are forced with hooks, never sleeps."""

from __future__ import annotations

import json
import threading
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import ProjectFactory

from tether.agent.tools import ToolContext, make_tool
from tether.controls.effect import EMPTY, ControlSet
from tether.controls.service import set_control
from tether.live import LiveValue
from tether.rollout.releases import working_copy_release
from tether.runtime.controls import RunControls
from tether.runtime.loop import RunLoop
from tether.runtime.service import Runtime
from tether.runtime.tool_calls import call_tool
from tether.settings import Settings
from tether.store import db
from tether.store.controls import ControlRecord
from tether.store.records import RunOrigin, RunStatus, RunTotals, StepKind
from tether.store.repository import Store

# --- the last check, alone: a reload applied after the loop-side steps, before the function ---


def _disabled(tool: str) -> ControlSet:
    now = datetime.now(UTC)
    return ControlSet(
        (
            ControlRecord(
                id="ctl_test",
                kind="disable_tool",
                scope="all",
                value=tool,
                reason="fraud",
                created_by="oncall",
                created_at=now,
                expires_at=None,
                cleared_at=None,
                cleared_by=None,
                cleared_reason=None,
            ),
        )
    )


async def _never_loaded(_store: Store) -> ControlSet:
    raise AssertionError("these tests apply snapshots by hand")


def _context(tmp_path: Path) -> ToolContext:
    return ToolContext(
        run_id="run_1",
        user_id="u",
        thread_id=None,
        step=1,
        idempotency_key="run_1:1",
        data_dir=tmp_path,
        release_version="v1",
    )


@pytest.fixture(params=["sync", "async"])
def charge(request: pytest.FixtureRequest) -> Iterator[tuple[Any, list[str]]]:
    """A write tool that records every time its function is entered (sync: in its own thread)."""
    entered: list[str] = []
    if request.param == "sync":

        def charge(order: str) -> str:
            """Charge an order.

            Args:
                order: The order.
            """
            entered.append(threading.current_thread().name)
            return f"charged {order}"

        yield make_tool(charge, side_effect="write"), entered
    else:

        async def charge_async(order: str) -> str:
            """Charge an order.

            Args:
                order: The order.
            """
            entered.append("event loop")
            return f"charged {order}"

        yield make_tool(charge_async, name="charge", side_effect="write"), entered


async def _call(tool: Any, tmp_path: Path, *, switch_in_between: ControlSet | None) -> tuple[Any, RunTotals]:
    """Call `tool` as the loop does; `switch_in_between` is applied by the event loop after every
    check the loop makes on its side and before the tool's thread (or coroutine) starts."""
    value: LiveValue[ControlSet] = LiveValue("controls", _never_loaded, EMPTY)
    value.apply(EMPTY, 0)
    totals = RunTotals()
    run = SimpleNamespace(tenant_id="default", release_version="v1")
    controls = RunControls(value, run, totals)  # type: ignore[arg-type]
    assert controls.tool_refusal(tool) is None  # the loop's own check passes: nothing in force yet

    async def guarded(call: Awaitable[Any]) -> Any:
        if switch_in_between is not None:  # the reload lands here, on the event loop
            value.apply(switch_in_between, 1)
        return await call

    outcome = await call_tool(
        tool,
        {"order": "7"},
        _context(tmp_path),
        guarded=guarded,
        breaker=None,
        refuse=lambda: controls.tool_refusal(tool),
    )
    return outcome, totals


async def test_a_switch_landing_between_the_loop_check_and_the_thread_start_is_honoured(
    charge: tuple[Any, list[str]], tmp_path: Path
) -> None:
    tool, entered = charge
    outcome, totals = await _call(tool, tmp_path, switch_in_between=_disabled("charge"))
    assert entered == [], "the function must not be entered once its process has the switch"
    assert outcome.attempts == 0 and outcome.result is None
    assert outcome.error == "charge is unavailable: an operator disabled it (fraud); it was not called"
    assert totals.controls_applied == ["ctl_test disable_tool=charge @all"]


async def test_without_a_switch_the_same_call_runs_in_its_own_thread(
    charge: tuple[Any, list[str]], tmp_path: Path
) -> None:
    tool, entered = charge
    outcome, _ = await _call(tool, tmp_path, switch_in_between=None)
    assert outcome.result == "charged 7" and outcome.attempts == 1
    assert entered in (["tool:charge"], ["event loop"])


async def test_a_switch_for_another_tool_lets_the_call_run(
    charge: tuple[Any, list[str]], tmp_path: Path
) -> None:
    tool, entered = charge
    outcome, _ = await _call(tool, tmp_path, switch_in_between=_disabled("refund"))
    assert outcome.result == "charged 7" and len(entered) == 1


# --- the whole loop: an approved call, and a stop, landing right before the tool starts ---

TOOLS = '''
from tether import tool, ToolContext

@tool(side_effect="write", requires_approval=True)
def refund(order: str, ctx: ToolContext) -> str:
    """Refund an order (needs a human's approval).

    Args:
        order: The order.
    """
    (ctx.data_dir / f"refunded-{order}").write_text("done")
    return f"refunded {order}"
'''

POLICY = """
from tether.models.scripted import ScriptedTurn

def respond(turn: ScriptedTurn):
    if not turn.observations:
        return turn.call("refund", order="7")
    return "result: " + turn.observations[-1].content
"""

Switch = Callable[[Store, Runtime], Awaitable[ControlRecord]]


async def _parked_then_approved(store: Store, runtime: Runtime, project: Path) -> str:
    release = await working_copy_release(store, project)
    run = await runtime.submit(release, user_id="u", input="refund order 7", origin=RunOrigin.CLI)
    parked = await runtime.execute(run.id)
    assert parked.status == RunStatus.WAITING_FOR_APPROVAL
    (approval,) = await store.list_approvals(run_id=run.id)
    await store.decide_approval(approval.id, approve=True, decided_by="reviewer", reason="looks right")
    return run.id


def _switch_when_the_tool_is_handed_over(
    monkeypatch: pytest.MonkeyPatch, switch: Callable[[], Awaitable[Any]]
) -> list[str]:
    """Apply `switch` in the loop's `_guarded`, when it is handed the tool call: after every check
    the loop makes on the event loop, before the tool's thread exists."""
    original = RunLoop._guarded
    switched: list[str] = []

    async def guarded(self: RunLoop, call: Awaitable[Any]) -> Any:
        code = getattr(call, "cr_code", None)
        if code is not None and code.co_name == "invoke" and not switched:
            switched.append((await switch()).id)
        return await original(self, call)

    monkeypatch.setattr(RunLoop, "_guarded", guarded)
    return switched


@pytest.fixture
async def runtime(make_project: ProjectFactory, tmp_path: Path) -> Any:
    project = make_project(tools=TOOLS, policy=POLICY)
    store = await Store.open(db.default_url(project))
    runtime = Runtime(store, Settings(), data_dir=tmp_path)
    try:
        yield runtime, project
    finally:
        await runtime.live.close()
        await store.close()


async def test_a_call_approved_before_the_switch_is_refused_at_execution(
    runtime: tuple[Runtime, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node, project = runtime
    store = node.store
    run_id = await _parked_then_approved(store, node, project)

    async def disable() -> ControlRecord:
        change = await set_control(
            store, node.live, kind="disable_tool", value="refund", reason="refunds misrouted", by="oncall"
        )
        return change.control

    switched = _switch_when_the_tool_is_handed_over(monkeypatch, disable)
    done = await node.execute(run_id)
    assert switched, "the switch landed between the loop's checks and the tool's start"
    assert not (tmp_path / "refunded-7").exists(), "the approved refund ran after the switch"
    assert done.status == RunStatus.SUCCEEDED  # no crash: the model was told and answered
    assert "refund is unavailable: an operator disabled it (refunds misrouted)" in str(done.output)
    assert done.tools_called == []
    assert f"{switched[0]} disable_tool=refund @all" in done.controls_applied
    steps = [s for s in await store.list_steps(run_id) if s.kind == StepKind.TOOL_CALL]
    assert [s.attempts for s in steps] == [0]


async def test_a_stop_landing_before_the_tool_starts_ends_the_run_cancelled_with_the_reason(
    runtime: tuple[Runtime, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node, project = runtime
    store = node.store
    run_id = await _parked_then_approved(store, node, project)

    async def stop() -> ControlRecord:
        change = await set_control(
            store, node.live, kind="stop_background", reason="runaway agent", by="oncall"
        )
        return change.control

    switched = _switch_when_the_tool_is_handed_over(monkeypatch, stop)
    done = await node.execute(run_id)
    assert switched and not (tmp_path / "refunded-7").exists()
    assert done.status == RunStatus.CANCELLED
    assert done.error == f"stopped by operator control {switched[0]}: runaway agent"
    assert any("stop_background" in name for name in done.controls_applied)


def test_announcements_carry_the_topic_and_revision() -> None:
    from tether.live.config import announcement, parse_announcement

    assert parse_announcement(announcement("controls", 7)) == ("controls", 7)
    assert json.loads(announcement("flags", 2)) == {"topic": "flags", "revision": 2}
    for other in (
        "controls",
        "",
        "[1]",
        '{"topic": "controls"}',
        '{"topic": 1, "revision": 2}',
        '{"topic": "c", "revision": true}',
    ):
        assert parse_announcement(other) is None
