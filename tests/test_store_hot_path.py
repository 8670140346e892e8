"""The store's hot path stays small: statements per step, commits per burst of creates, connections.

These count database work (statements, commits, connections opened), never time, so they hold on a
busy machine. Each pins down one cut of issue 12; without it the count is larger.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from tether.store.records import (
    ReleaseRecord,
    RunStatus,
    RunTotals,
    StepDraft,
    StepKind,
    StepOutcome,
    StepStatus,
)
from tether.store.repository import Store


async def _release(store: Store) -> ReleaseRecord:
    return await store.add_release(
        version="agent-1", agent_name="agent", kind="release", content_hash="0" * 64, snapshot={"config": {}}
    )


class Tally:
    """What one engine did: data statements (not BEGIN/COMMIT/pragmas), commits, new connections."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.commits = 0
        self.connects = 0


@contextmanager
def tally(*engines: AsyncEngine) -> Iterator[Tally]:
    seen = Tally()

    def on_execute(*args: Any) -> None:
        statement = str(args[2]).lstrip().split(None, 1)[0].upper()
        if statement in ("SELECT", "INSERT", "UPDATE", "DELETE"):
            seen.statements.append(statement)

    def on_commit(*_args: Any) -> None:
        seen.commits += 1

    def on_connect(*_args: Any) -> None:
        seen.connects += 1

    hooks = [("before_cursor_execute", on_execute), ("commit", on_commit), ("connect", on_connect)]
    for engine in set(engines):
        for name, hook in hooks:
            event.listen(engine.sync_engine, name, hook)
    try:
        yield seen
    finally:
        for engine in set(engines):
            for name, hook in hooks:
                event.remove(engine.sync_engine, name, hook)


def _engines(store: Store) -> tuple[AsyncEngine, AsyncEngine]:
    return store.engine, store._write_engine


async def test_a_step_is_one_fenced_update_one_row_and_one_event(store: Store) -> None:
    """Fence, lease extension, event number, steps_used and totals are one UPDATE ... RETURNING."""
    release = await _release(store)
    run = await store.create_run(release=release, user_id="u", input="x")
    assert await store.claim_run("w", 60, run_id=run.id) is not None
    draft = StepDraft(index=0, kind=StepKind.MODEL_CALL, name="m")
    with tally(*_engines(store)) as began:
        await store.begin_step(run.id, "w", 60, draft)
    assert sorted(began.statements) == ["INSERT", "INSERT", "UPDATE"]  # was 5 statements
    assert began.commits == 1
    totals = RunTotals(steps_used=1, input_tokens=3)
    with tally(*_engines(store)) as finished:
        await store.finish_step(run.id, "w", 60, 0, StepOutcome(status=StepStatus.SUCCEEDED), totals)
    assert sorted(finished.statements) == ["INSERT", "UPDATE", "UPDATE"]  # was 5
    with tally(*_engines(store)) as ended:
        done = await store.finish_run(run.id, "w", 60, status=RunStatus.SUCCEEDED, totals=totals, output="ok")
    assert sorted(ended.statements) == ["INSERT", "UPDATE"]  # was 6, then a re-read
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
    release = await _release(store)
    with tally(*_engines(store)) as seen:
        runs = await asyncio.gather(
            *(
                store.create_run(release=release, user_id="u", input=f"t{i}", new_thread=True)
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
    release = await _release(store)
    await store.create_thread("u", "thr_taken")
    good = [
        store.create_run(release=release, user_id="u", input=f"ok {i}", new_thread=True) for i in range(5)
    ]
    bad = store.create_run(release=release, user_id="u", input="dup", thread_id="thr_taken", new_thread=True)
    results = await asyncio.gather(*good, bad, return_exceptions=True)
    assert all(not isinstance(r, BaseException) for r in results[:5])
    assert isinstance(results[5], Exception)
    assert len(await store.list_runs()) == 5


async def test_executing_a_run_reuses_the_same_connections(tmp_path: Any) -> None:
    """SQLite: long-lived pooled connections (one per aiosqlite thread), not one per call."""
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'pool.db'}")
    try:
        release = await _release(store)
        with tally(*_engines(store)) as seen:
            for i in range(5):
                run = await store.create_run(release=release, user_id="u", input=f"t{i}", new_thread=True)
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
