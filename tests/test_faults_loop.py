"""Database faults inside the run loop: lease renewal through blips, no overlap, no run failed by an outage.

Faults are injected through a store that raises what a restarting PostgreSQL raises, and time
(lease renewals, retry backoff, lease expiry) moves only when the test moves it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import ProjectFactory
from fault_helpers import START, FakeTimer, FlakyStore, starting_up, wait_for

from tether.rollout.releases import working_copy_release
from tether.runtime.service import Runtime
from tether.settings import Settings
from tether.store.records import ReleaseRecord, RunStatus, StepStatus
from tether.store.repository import as_utc

TOOLS = '''
import asyncio
from tether import tool, ToolContext


def _note(ctx: ToolContext, line: str) -> None:
    with open(ctx.data_dir / "tool.log", "a") as log:
        log.write(line + "\\n")


@tool(timeout_s=600)
async def lookup(key: str, ctx: ToolContext) -> str:
    """A long read (safe to repeat): runs until the test creates the file `go`."""
    ctx.data_dir.mkdir(parents=True, exist_ok=True)
    running = ctx.data_dir / "running"
    if running.exists():
        (ctx.data_dir / "overlap").touch()
    running.touch()
    _note(ctx, "start")
    try:
        while not (ctx.data_dir / "go").exists():
            await asyncio.sleep(0.01)
    except asyncio.CancelledError:
        _note(ctx, "cancelled")
        raise
    finally:
        running.unlink(missing_ok=True)
    _note(ctx, "done")
    return f"value of {key}"
'''

POLICY = """
def respond(turn):
    if turn.called("lookup"):
        return "found it"
    return turn.call("lookup", key="k")
"""

LEASE_S = 30.0


class Rig:
    def __init__(self, store: FlakyStore, timer: FakeTimer, data: Path, release: ReleaseRecord) -> None:
        self.store = store
        self.timer = timer
        self.data = data
        self.release = release

    def runtime(self, worker_id: str) -> Runtime:
        runtime = Runtime(
            self.store, Settings(worker_id=worker_id, lease_seconds=LEASE_S), data_dir=self.data
        )
        runtime.timer = self.timer
        return runtime

    def tool_log(self) -> list[str]:
        path = self.data / "tool.log"
        return path.read_text().split() if path.exists() else []


@pytest.fixture
async def rig(make_project: ProjectFactory, isolated_env: Path) -> AsyncIterator[Rig]:
    timer = FakeTimer(auto_below_s=5.0)
    store = await FlakyStore.open(os.environ["TETHER_DATABASE_URL"], clock=timer.wall)
    try:
        release = await working_copy_release(store, make_project(tools=TOOLS, policy=POLICY))
        yield Rig(store, timer, isolated_env / "data", release)
    finally:
        await store.close()


async def test_lease_renewal_retries_a_database_blip_and_the_call_goes_on(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    runtime = rig.runtime("w1")
    run = await runtime.submit(rig.release, user_id="u", input="look it up", origin="cli")
    task = asyncio.create_task(runtime.execute(run.id))
    await wait_for(lambda: rig.tool_log() == ["start"], what="the tool started")

    rig.store.fail("heartbeat", starting_up, times=3)
    await rig.timer.advance_to_next_wakeup()  # renewal due at lease/3: fails 3 times, then renews
    await wait_for(lambda: rig.store.calls.count("heartbeat") == 4, what="the fourth renewal")
    await wait_for(lambda: len(rig.timer.sleepers) == 1, what="the next renewal is scheduled")

    renewed_at = 10.0 + 0.25 + 0.5 + 1.0  # the interval, then three backoffs
    assert rig.timer.t == renewed_at < LEASE_S  # renewed well before the old lease could expire
    leased = await rig.store.get_run(run.id)
    assert leased.lease_owner == "w1" and leased.lease_expires_at is not None
    assert as_utc(leased.lease_expires_at) == START + timedelta(seconds=renewed_at + LEASE_S)

    (rig.data / "go").touch()
    finished = await task
    assert finished.status == RunStatus.SUCCEEDED
    assert rig.tool_log() == ["start", "done"]  # the call was never cancelled
    assert any("after 3 failed attempt(s)" in r.getMessage() for r in caplog.records)


async def test_a_worker_that_cannot_renew_cancels_its_call_before_the_lease_can_expire(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = rig.runtime("w1")
    run = await runtime.submit(rig.release, user_id="u", input="look it up", origin="cli")
    task = asyncio.create_task(runtime.execute(run.id))
    await wait_for(lambda: rig.tool_log() == ["start"], what="the tool started")

    rig.store.fail("heartbeat", starting_up)  # the outage outlasts the lease
    while True:
        await wait_for(lambda: bool(rig.timer.sleepers) or "cancelled" in rig.tool_log())
        if "cancelled" in rig.tool_log():
            break
        assert rig.timer.t < LEASE_S, "the lease could expire while the call was still running"
        await rig.timer.advance_to_next_wakeup()
    cancelled_at = rig.timer.t
    stopped = await task
    assert cancelled_at <= LEASE_S * 0.8  # a safety margin before anyone else may claim the run
    writes_after = [c for c in rig.store.calls[rig.store.calls.index("heartbeat") :] if c != "heartbeat"]
    assert writes_after == []  # nothing written on a run that may belong to someone else
    assert stopped.status == RunStatus.RUNNING and stopped.lease_owner == "w1"
    assert any(
        "stopped acting on run" in r.getMessage() and "could not be renewed" in r.getMessage()
        for r in caplog.records
    )

    # The database is back; once the lease has expired another worker resumes the run.
    rig.store.heal()
    rig.timer.t = LEASE_S + 1
    (rig.data / "go").touch()
    other = rig.runtime("w2")
    resumed = await other.execute_next()
    assert resumed is not None and resumed.status == RunStatus.SUCCEEDED
    assert rig.tool_log() == ["start", "cancelled", "start", "done"]
    assert not (rig.data / "overlap").exists()


async def test_a_transient_error_while_checkpointing_is_retried_not_fatal(rig: Rig) -> None:
    (rig.data).mkdir(parents=True, exist_ok=True)
    (rig.data / "go").touch()
    rig.store.fail("finish_step", starting_up, times=2)
    runtime = rig.runtime("w1")
    run = await runtime.submit(rig.release, user_id="u", input="look it up", origin="cli")
    finished = await runtime.execute(run.id)
    assert finished.status == RunStatus.SUCCEEDED, finished.error
    assert rig.tool_log() == ["start", "done"]  # the tool ran once: its result was kept, not redone
    assert rig.store.calls.count("finish_step") == 2 + 3  # two failures, then three checkpoints


async def test_an_outage_the_loop_cannot_ride_out_hands_the_run_back_instead_of_failing_it(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    (rig.data).mkdir(parents=True, exist_ok=True)
    (rig.data / "go").touch()
    rig.store.fail("begin_step", starting_up)
    runtime = rig.runtime("w1")
    run = await runtime.submit(rig.release, user_id="u", input="look it up", origin="cli")
    handed_back = await runtime.execute(run.id)
    assert handed_back.status == RunStatus.QUEUED and handed_back.lease_owner is None
    assert handed_back.error is None
    assert any("handing it back" in r.getMessage() for r in caplog.records)

    rig.store.heal()  # the database is back: any worker finishes it
    finished = await rig.runtime("w2").execute(run.id)
    assert finished.status == RunStatus.SUCCEEDED


async def test_a_database_outage_that_also_blocks_the_hand_back_leaves_the_lease_to_lapse(
    rig: Rig,
) -> None:
    (rig.data).mkdir(parents=True, exist_ok=True)
    (rig.data / "go").touch()
    rig.store.fail("begin_step", starting_up)
    rig.store.fail("release_lease", starting_up)
    runtime = rig.runtime("w1")
    run = await runtime.submit(rig.release, user_id="u", input="look it up", origin="cli")
    stuck = await runtime.execute(run.id)
    assert stuck.status == RunStatus.RUNNING and stuck.error is None  # not failed

    rig.store.heal()
    rig.timer.t = LEASE_S + 1  # its lease lapses and another worker takes it over
    finished = await rig.runtime("w2").execute_next()
    assert finished is not None and finished.status == RunStatus.SUCCEEDED


async def test_a_bug_in_the_store_still_fails_the_run(rig: Rig) -> None:
    (rig.data).mkdir(parents=True, exist_ok=True)
    (rig.data / "go").touch()
    rig.store.fail("finish_step", lambda: ValueError("a bug, not an outage"), times=1)
    runtime = rig.runtime("w1")
    run = await runtime.submit(rig.release, user_id="u", input="look it up", origin="cli")
    finished = await runtime.execute(run.id)
    assert finished.status == RunStatus.FAILED
    assert "a bug, not an outage" in (finished.error or "")
    steps = await rig.store.list_steps(run.id)
    assert steps[0].status == StepStatus.STARTED


async def test_a_final_write_whose_answer_was_lost_ends_the_run_without_a_takeover_warning(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    (rig.data).mkdir(parents=True, exist_ok=True)
    (rig.data / "go").touch()
    rig.store.fail("finish_run:answer", starting_up, times=1)
    runtime = rig.runtime("w1")
    run = await runtime.submit(rig.release, user_id="u", input="look it up", origin="cli")
    finished = await runtime.execute(run.id)
    assert finished.status == RunStatus.SUCCEEDED and finished.output == "found it"
    assert rig.store.calls.count("finish_run") == 2  # retried; the retry found the run already ended
    assert not [r for r in caplog.records if "stopped acting on run" in r.getMessage()]


async def test_a_late_renewal_on_a_stalled_event_loop_still_renews_instead_of_giving_up(rig: Rig) -> None:
    runtime = rig.runtime("w1")
    run = await runtime.submit(rig.release, user_id="u", input="look it up", origin="cli")
    task = asyncio.create_task(runtime.execute(run.id))
    await wait_for(lambda: rig.tool_log() == ["start"], what="the tool started")
    await wait_for(lambda: bool(rig.timer.sleepers), what="the renewal is scheduled")

    rig.timer.t = LEASE_S + 10  # the process stalled past its lease; nobody claimed the run meanwhile
    await rig.timer.advance_to_next_wakeup()
    await wait_for(lambda: rig.store.calls.count("heartbeat") == 1, what="the late renewal")
    await wait_for(lambda: len(rig.timer.sleepers) == 1, what="the next renewal is scheduled")
    assert rig.tool_log() == ["start"]  # not cancelled: the renewal proved the lease was still ours

    (rig.data / "go").touch()
    finished = await task
    assert finished.status == RunStatus.SUCCEEDED and rig.tool_log() == ["start", "done"]


async def test_a_checkpoint_extends_the_lease_as_far_as_the_keeper_knows(rig: Rig) -> None:
    from tether.runtime.lease import LeaseKeeper

    keeper = LeaseKeeper(rig.store, "run_x", "w1", LEASE_S, timer=rig.timer)
    rig.timer.t = 20.0
    keeper.extended(20.0)  # a fenced write (begin/finish step) that began at t=20 succeeded
    rig.timer.t = 40.0  # 40 s after the claim, but only 20 s after that write
    assert keeper.has_time()
    rig.timer.t = 20.0 + LEASE_S * 0.8
    assert not keeper.has_time()  # the safety margin before the extended lease can expire
