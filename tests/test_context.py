"""Context control: long threads trimmed or summarised to `[context] max_tokens`, the choice a
recorded (and for a summary, costed) step, so a long thread costs about what a short one does."""

from __future__ import annotations

import os
from pathlib import Path

from conftest import ProjectFactory

from tether.rollout.releases import working_copy_release
from tether.runtime.context import SUMMARY_PREFIX, SUMMARY_PROMPT
from tether.runtime.service import Runtime
from tether.settings import Settings
from tether.store.records import RunOrigin, StepKind, StepRecord
from tether.store.repository import Store

TOOLS = '''
from tether import tool

@tool
def ping() -> str:
    """Ping."""
    return "pong"
'''

POLICY = f"""
def respond(turn):
    if turn.messages[0].content == {SUMMARY_PROMPT!r}:
        return "the user asked about orders 1 to " + str(turn.user_input.count("user:"))
    summary = [m.content for m in turn.messages if m.content.startswith({SUMMARY_PREFIX!r})]
    return f"turn answer; history={{len(turn.history)}}; summary={{summary[0] if summary else None}}"
"""

PRICES = """
[prices."scripted:test-v1"]
input_per_mtok = 10.0
output_per_mtok = 10.0
"""


async def _thread(project: Path, data: Path, turns: int) -> list[list[StepRecord]]:
    """`turns` runs on one thread; the steps of each."""
    store = await Store.open(os.environ["TETHER_DATABASE_URL"])
    runtime = Runtime(store, Settings(), data_dir=data)
    try:
        release = await working_copy_release(store, project)
        thread_id = None
        steps = []
        for number in range(turns):
            text = f"question {number}: where is order {number}? " + "details " * 20
            run = await runtime.submit(
                release, origin=RunOrigin.API, user_id="ann", input=text, thread_id=thread_id
            )
            thread_id = run.thread_id
            await runtime.execute(run.id)
            steps.append(await store.list_steps(run.id))
        return steps
    finally:
        await store.close()


def _model(steps: list[StepRecord]) -> StepRecord:
    return next(s for s in steps if s.kind == StepKind.MODEL_CALL)


async def test_without_a_limit_history_grows_with_the_thread(
    make_project: ProjectFactory, isolated_env: Path
) -> None:
    project = make_project(tools=TOOLS, policy=POLICY, extra=PRICES)
    steps = await _thread(project, isolated_env / "data", 12)
    tokens = [_model(run).input_tokens for run in steps]
    # Each turn adds its question and answer to every later request: eight turns add about four
    # times what two did, whatever the fixed part (system prompt, guard instructions) weighs.
    assert tokens[11] - tokens[3] > 3 * (tokens[3] - tokens[1]) > 0
    assert all(s.kind != StepKind.CONTEXT for run in steps for s in run)


async def test_trimming_keeps_a_long_thread_as_cheap_as_a_short_one(
    make_project: ProjectFactory, isolated_env: Path
) -> None:
    extra = PRICES + "[context]\nmax_tokens = 200\nkeep_recent_turns = 1\n"
    project = make_project(tools=TOOLS, policy=POLICY, extra=extra)
    steps = await _thread(project, isolated_env / "data", 12)
    short, long = _model(steps[3]), _model(steps[11])
    assert long.input_tokens <= short.input_tokens * 1.1  # about the same, however long the thread
    (trim,) = [s for s in steps[11] if s.kind == StepKind.CONTEXT]
    assert trim.name == "trim" and trim.cost_usd == 0 and trim.index == 0
    assert trim.arguments["dropped_turns"] + trim.arguments["kept_turns"] == 11
    assert "dropped the oldest" in str(trim.result)


async def test_summarising_is_a_recorded_costed_step_the_model_then_reads(
    make_project: ProjectFactory, isolated_env: Path
) -> None:
    extra = PRICES + '[context]\nmax_tokens = 200\nstrategy = "summarize"\nsummary_input_tokens = 400\n'
    project = make_project(tools=TOOLS, policy=POLICY, extra=extra)
    steps = await _thread(project, isolated_env / "data", 12)
    (summary,) = [s for s in steps[11] if s.kind == StepKind.CONTEXT]
    assert summary.name == "scripted:test-v1" and summary.cost_usd > 0 and summary.input_tokens > 0
    assert str(summary.result).startswith("the user asked about orders 1 to")
    assert "summarised the oldest" in str(summary.route)
    answer = _model(steps[11])
    assert (answer.message or {})["content"].endswith(f"summary={SUMMARY_PREFIX}{summary.result}")
    # the summary's input is bounded too (summary_input_tokens plus the prompt), however long the thread
    assert summary.input_tokens <= 400 + 100
    (earlier,) = [s for s in steps[9] if s.kind == StepKind.CONTEXT]
    assert summary.input_tokens <= earlier.input_tokens * 1.2
