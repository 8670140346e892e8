"""The store's hot path stays small: statements per step, commits per burst of creates, connections.

These count database work (statements, commits, connections opened), never time, so they hold on a
busy machine. Each pins down one cut of issue 12; without it the count is larger.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from conftest import ProjectFactory, bare_release
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from timing import TestClock

from tether.rollout.releases import working_copy_release
from tether.runtime.service import Runtime
from tether.settings import Settings
from tether.store.records import (
    RunStatus,
    RunTotals,
    StepDraft,
    StepKind,
    StepOutcome,
    StepStatus,
)
from tether.store.repository import LeaseLostError, Store


class Tally:
    """What one engine did: data statements (not BEGIN/COMMIT/pragmas), commits, new connections."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.sql: list[str] = []
        self.commits = 0
        self.connects = 0


@asynccontextmanager
async def tally(store: Store) -> AsyncIterator[Tally]:
    """Count what `store` sends to its database while the block runs.

    Reads are counted from SQLAlchemy's events on the read engine. On SQLite the writer's
    statements are counted from the driver itself (sqlite3's trace callback): the hot path sends
    a checkpoint's statements straight to the driver in one trip (`store/one_hop.py`), past
    SQLAlchemy's events, and the count must include them. Elsewhere the writer is the read engine.
    """
    seen = Tally()

    def count(sql: str) -> None:
        seen.sql.append(sql)
        statement = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
        if statement in ("SELECT", "INSERT", "UPDATE", "DELETE"):
            seen.statements.append(statement)
        elif statement == "COMMIT":
            seen.commits += 1

    def on_execute(*args: Any) -> None:
        count(str(args[2]))

    def on_commit(*_args: Any) -> None:
        seen.commits += 1

    def on_connect(*_args: Any) -> None:
        seen.connects += 1

    writer = store._writer
    driver: Any = None
    if writer is not None:
        async with writer.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
        await driver.set_trace_callback(count)
    hooks = [("before_cursor_execute", on_execute), ("commit", on_commit), ("connect", on_connect)]
    engines: list[tuple[AsyncEngine, list[tuple[str, Any]]]] = [(store.engine, hooks)]
    if writer is not None:
        engines.append((writer, [("connect", on_connect)]))
    for engine, chosen in engines:
        for name, hook in chosen:
            event.listen(engine.sync_engine, name, hook)
    try:
        yield seen
    finally:
        for engine, chosen in engines:
            for name, hook in chosen:
                event.remove(engine.sync_engine, name, hook)
        if driver is not None:
            await driver.set_trace_callback(None)


async def test_a_step_is_one_fenced_update_one_row_and_one_event(store: Store) -> None:
    """Fence, lease extension, event number, steps_used and totals are one UPDATE ... RETURNING."""
    release = await bare_release(store)
    run = await store.create_run(release=release, user_id="u", origin="api", input="x")
    assert await store.claim_run("w", 60, run_id=run.id) is not None
    draft = StepDraft(index=0, kind=StepKind.MODEL_CALL, name="m")
    async with tally(store) as began:
        await store.begin_step(run.id, "w", 60, draft)
    assert sorted(began.statements) == ["INSERT", "INSERT", "UPDATE"]  # was 5 statements
    assert began.commits == 1
    totals = RunTotals(steps_used=1, input_tokens=3)
    async with tally(store) as finished:
        await store.finish_step(run.id, "w", 60, 0, StepOutcome(status=StepStatus.SUCCEEDED), totals)
    assert sorted(finished.statements) == ["INSERT", "UPDATE", "UPDATE"]  # was 5
    async with tally(store) as ended:
        done = await store.finish_run(run.id, "w", 60, status=RunStatus.SUCCEEDED, totals=totals, output="ok")
    # The fence and the events, plus (a production run) the outbox: its webhook event and its
    # online-eval job, in the same transaction (store/outbox.py). Once per run, not per step.
    # On SQLite the driver counts each row of the two-event INSERT (one executemany) on its own.
    events_insert = ["INSERT", "INSERT"] if store.dialect == "sqlite" else ["INSERT"]
    assert sorted(ended.statements) == sorted([*events_insert, "INSERT", "INSERT", "UPDATE"])  # was 6
    assert ended.commits == 1
    assert (done.status, done.steps_used, done.input_tokens, done.lease_owner) == ("succeeded", 1, 3, None)
    types = [(e.seq, e.type) for e in await store.list_events(run.id)]
    assert types == [
        (1, "status"),
        (2, "status"),
        (3, "step_started"),
        (4, "step_finished"),
        (5, "final_output"),
        (6, "status"),
    ]


async def test_creates_that_arrive_together_share_one_commit(store: Store) -> None:
    """A burst of creates costs a few disk flushes, not one each; every run is stored, in order."""
    release = await bare_release(store)
    async with tally(store) as seen:
        runs = await asyncio.gather(
            *(
                store.create_run(release=release, user_id="u", origin="api", input=f"t{i}", new_thread=True)
                for i in range(40)
            )
        )
    assert seen.commits < 10  # one per run before
    for run in runs:
        stored = await store.get_run(run.id)
        assert stored.input == run.input and stored.status == RunStatus.QUEUED
        assert (await store.get_thread(str(run.thread_id))).user_id == "u"
        assert [e.type for e in await store.list_events(run.id)] == ["status"]


async def test_one_bad_create_in_a_burst_fails_alone(store: Store) -> None:
    release = await bare_release(store)
    await store.create_thread("u", "thr_taken")
    good = [
        store.create_run(release=release, user_id="u", origin="api", input=f"ok {i}", new_thread=True)
        for i in range(5)
    ]
    bad = store.create_run(
        release=release, user_id="u", origin="api", input="dup", thread_id="thr_taken", new_thread=True
    )
    results = await asyncio.gather(*good, bad, return_exceptions=True)
    assert all(not isinstance(r, BaseException) for r in results[:5])
    assert isinstance(results[5], Exception)
    assert len(await store.list_runs()) == 5


async def test_executing_a_run_reuses_the_same_connections(tmp_path: Any) -> None:
    """SQLite: long-lived pooled connections (one per aiosqlite thread), not one per call."""
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'pool.db'}")
    try:
        release = await bare_release(store)
        async with tally(store) as seen:
            for i in range(5):
                run = await store.create_run(
                    release=release, user_id="u", origin="api", input=f"t{i}", new_thread=True
                )
                assert await store.claim_run("w", 60, run_id=run.id) is not None
                for index in range(3):
                    draft = StepDraft(index=index, kind=StepKind.MODEL_CALL, name="m")
                    await store.begin_step(run.id, "w", 60, draft)
                    await store.list_steps(run.id)
                    outcome = StepOutcome(status=StepStatus.SUCCEEDED)
                    await store.finish_step(run.id, "w", 60, index, outcome, RunTotals(steps_used=index + 1))
                await store.finish_run(run.id, "w", 60, status=RunStatus.SUCCEEDED, totals=RunTotals())
        assert seen.connects <= 2  # was about 21 per run (a new connection and thread per call)
    finally:
        await store.close()


TOOLS = '''
from tether import tool


@tool
def lookup_order(order_id: str) -> str:
    """Look an order up.

    Args:
        order_id: The order number.
    """
    return f"order {order_id}: shipped"
'''

POLICY = """
def respond(turn):
    if turn.observations:
        return f"Your order: {turn.observations[-1].content}"
    return turn.call("lookup_order", order_id="12345")
"""


async def test_the_lease_holder_keeps_the_run_state_in_memory(
    make_project: ProjectFactory, tmp_path: Path
) -> None:
    """A fresh run reads back no steps or approvals, and learns of a cancel from its own writes."""
    project = make_project(tools=TOOLS, policy=POLICY)
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'memory.db'}")
    try:
        runtime = Runtime(store, Settings(), data_dir=tmp_path / "data")
        release = await working_copy_release(store, project)
        run = await runtime.submit(release, user_id="u", origin="cli", input="where is my order?")
        async with tally(store) as seen:
            done = await runtime.execute(run.id)
        assert done.status == RunStatus.SUCCEEDED and done.steps_used == 3
        reads = [s for s in seen.sql if s.startswith("SELECT")]
        assert not [s for s in reads if s.startswith("SELECT runs.cancel_requested")]
        assert not [s for s in reads if "FROM steps" in s or "FROM approvals" in s]
    finally:
        await store.close()


async def test_a_cancel_requested_during_a_tool_call_ends_the_run_before_the_next_model_call(
    make_project: ProjectFactory, tmp_path: Path
) -> None:
    """Another process flags the run while its tool runs; the finishing write reports it."""
    database = tmp_path / "cancel.db"
    tools = TOOLS.replace(
        '    return f"order {order_id}: shipped"',
        "    import sqlite3\n"
        f"    with sqlite3.connect({str(database)!r}) as other:\n"
        '        other.execute("UPDATE runs SET cancel_requested = 1")\n'
        '    return f"order {order_id}: shipped"',
    )
    project = make_project(tools=tools, policy=POLICY)
    store = await Store.open(f"sqlite+aiosqlite:///{database}")
    try:
        runtime = Runtime(store, Settings(), data_dir=tmp_path / "data")
        release = await working_copy_release(store, project)
        run = await runtime.submit(release, user_id="u", origin="cli", input="where is my order?")
        done = await runtime.execute(run.id)
        assert done.status == RunStatus.CANCELLED
        assert [s.kind for s in await store.list_steps(run.id)] == ["model_call", "tool_call"]
    finally:
        await store.close()


async def test_a_step_write_is_one_transaction_begun_immediately(store: Store) -> None:
    """The checkpoint takes the write lock first and commits once, its statements in between."""
    release = await bare_release(store)
    run = await store.create_run(release=release, user_id="u", origin="api", input="x")
    assert await store.claim_run("w", 60, run_id=run.id) is not None
    async with tally(store) as seen:
        await store.begin_step(run.id, "w", 60, StepDraft(index=0, kind=StepKind.MODEL_CALL, name="m"))
    if store.dialect != "sqlite":  # PostgreSQL: one transaction, counted by SQLAlchemy
        assert seen.commits == 1
        return
    words = [" ".join(sql.split()[:2]) if sql.startswith("BEGIN") else sql.split()[0] for sql in seen.sql]
    assert words == ["BEGIN IMMEDIATE", "UPDATE", "INSERT", "INSERT", "COMMIT"]


async def test_a_failing_statement_rolls_the_whole_step_write_back(store: Store, clock: TestClock) -> None:
    """A step row that cannot be written leaves no fence, counter or event behind, and the writer
    connection is clean for the next write (nothing left open in it)."""
    release = await bare_release(store)
    run = await store.create_run(release=release, user_id="u", origin="api", input="x")
    assert await store.claim_run("w", 60, run_id=run.id) is not None
    draft = StepDraft(index=0, kind=StepKind.MODEL_CALL, name="m")
    await store.begin_step(run.id, "w", 60, draft)
    before = await store.get_run(run.id)
    clock.advance(5)  # a fence that went through would move updated_at and the lease
    try:
        await store.begin_step(run.id, "w", 60, draft)  # the same index again: a unique violation
    except IntegrityError:
        pass
    else:
        raise AssertionError("a duplicate step index was stored")
    after = await store.get_run(run.id)
    assert (after.steps_used, after.updated_at, after.lease_expires_at) == (
        before.steps_used,
        before.updated_at,
        before.lease_expires_at,
    )
    assert [e.type for e in await store.list_events(run.id)] == ["status", "status", "step_started"]
    outcome = StepOutcome(status=StepStatus.SUCCEEDED)
    assert await store.finish_step(run.id, "w", 60, 0, outcome, RunTotals(steps_used=1)) is False
    assert (await store.list_steps(run.id))[0].status == StepStatus.SUCCEEDED


async def test_a_write_after_the_lease_is_lost_changes_nothing(store: Store) -> None:
    release = await bare_release(store)
    run = await store.create_run(release=release, user_id="u", origin="api", input="x")
    assert await store.claim_run("w", 60, run_id=run.id) is not None
    draft = StepDraft(index=0, kind=StepKind.MODEL_CALL, name="m")
    for write in (
        store.begin_step(run.id, "someone-else", 60, draft),
        store.finish_run(run.id, "someone-else", 60, status=RunStatus.SUCCEEDED, totals=RunTotals()),
    ):
        try:
            await write
        except LeaseLostError:
            pass
        else:
            raise AssertionError("a write without the lease went through")
    assert await store.list_steps(run.id) == []
    assert [e.type for e in await store.list_events(run.id)] == ["status", "status"]
    stored = await store.get_run(run.id)
    assert (stored.status, stored.lease_owner, stored.steps_used) == (RunStatus.RUNNING, "w", 0)
    await store.begin_step(run.id, "w", 60, draft)  # the writer is still usable
    assert len(await store.list_steps(run.id)) == 1
