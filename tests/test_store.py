"""The store on SQLite and on a real PostgreSQL: schema, claiming, leases, fencing, approvals."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from conftest import bare_release
from timing import TestClock

from tether.store import db
from tether.store.records import (
    ApprovalKind,
    RunOrigin,
    RunStatus,
    RunTotals,
    StepDraft,
    StepKind,
    StepOutcome,
    StepStatus,
)
from tether.store.repository import ConflictError, LeaseLostError, NotFoundError, Store
from tether.store.tables import Base


async def test_migrations_match_the_tables(store: Store) -> None:
    def diff(connection: object) -> list[object]:
        context = MigrationContext.configure(connection)  # type: ignore[arg-type]
        return list(compare_metadata(context, Base.metadata))

    async with store.engine.connect() as connection:
        assert await connection.run_sync(diff) == []
    assert await db.is_current(store.engine)


async def test_each_queued_run_is_claimed_by_exactly_one_worker(store: Store) -> None:
    release = await bare_release(store)
    created = {
        (await store.create_run(origin=RunOrigin.API, release=release, user_id="u", input=f"task {i}")).id
        for i in range(12)
    }

    async def worker(name: str) -> list[str]:
        claimed: list[str] = []
        while (run := await store.claim_run(name, lease_s=60)) is not None:
            claimed.append(run.id)
        return claimed

    results = await asyncio.gather(*(worker(f"w{i}") for i in range(4)))
    everything = [run_id for claimed in results for run_id in claimed]
    assert sorted(everything) == sorted(created)  # none lost, none claimed twice
    run = await store.get_run(everything[0])
    assert run.status == RunStatus.RUNNING and run.attempts == 1 and run.lease_owner is not None


async def test_a_run_created_claimed_is_pinned_to_its_creator_and_fails_if_it_dies(
    store: Store, clock: TestClock
) -> None:
    release = await bare_release(store)
    mine = await store.create_run(
        origin=RunOrigin.EVAL, release=release, user_id="u", input="eval trial", lease=("evals", 30)
    )
    other = await store.create_run(origin=RunOrigin.API, release=release, user_id="u", input="a live run")
    assert (mine.status, mine.lease_owner, mine.attempts) == (RunStatus.RUNNING, "evals", 1)
    assert mine.pinned
    assert [e.data["status"] for e in await store.list_events(mine.id)] == ["queued", "running"]
    assert await store.fail_abandoned_pinned_runs() == []  # its owner is alive: nothing to do
    clock.advance(31)  # the owner stops heartbeating: its lease expires

    # No worker takes it over (it ran on its creator's own data); a sweep ends it instead.
    assert await store.claim_run("worker-a", 30, run_id=mine.id) is None
    taken = await store.claim_run("worker-a", 30)
    assert taken is not None and taken.id == other.id
    assert await store.fail_abandoned_pinned_runs() == [mine.id]
    ended = await store.get_run(mine.id)
    assert ended.status == RunStatus.FAILED and "abandoned" in (ended.error or "")
    assert ended.lease_owner is None and ended.finished_at is not None
    assert (await store.list_events(mine.id))[-1].data["status"] == "failed"
    assert await store.fail_abandoned_pinned_runs() == []


async def test_expired_lease_is_taken_over_and_the_old_owner_is_fenced_out(
    store: Store, clock: TestClock
) -> None:
    release = await bare_release(store)
    run = await store.create_run(origin=RunOrigin.API, release=release, user_id="u", input="x")
    assert await store.claim_run("old", lease_s=30, run_id=run.id) is not None
    clock.advance(29)
    assert await store.claim_run("new", lease_s=60, run_id=run.id) is None  # lease still fresh
    assert await store.heartbeat(run.id, "old", 30)  # renewed: 30 s from now again
    clock.advance(29)
    assert await store.claim_run("new", lease_s=60, run_id=run.id) is None
    clock.advance(2)

    taken = await store.claim_run("new", lease_s=60, run_id=run.id)
    assert taken is not None and taken.lease_owner == "new" and taken.attempts == 2

    draft = StepDraft(index=0, kind=StepKind.MODEL_CALL, name="m")
    with pytest.raises(LeaseLostError):
        await store.begin_step(run.id, "old", 60, draft)
    assert not await store.heartbeat(run.id, "old", 60)
    step = await store.begin_step(run.id, "new", 60, draft)
    assert step.idempotency_key == f"{run.id}:0"
    await store.finish_step(
        run.id,
        "new",
        60,
        0,
        StepOutcome(status=StepStatus.SUCCEEDED, input_tokens=5),
        RunTotals(steps_used=1),
    )
    assert (await store.list_steps(run.id))[0].input_tokens == 5
    assert (await store.get_run(run.id)).steps_used == 1


async def test_approval_parks_the_run_and_a_decision_requeues_it_once(store: Store) -> None:
    release = await bare_release(store)
    run = await store.create_run(origin=RunOrigin.API, release=release, user_id="u", input="x")
    await store.claim_run("w", lease_s=60, run_id=run.id)
    approval = await store.wait_for_approval(
        run.id,
        "w",
        60,
        tool_call_id="c1",
        kind=ApprovalKind.GATE,
        tool="t",
        arguments={"a": 1},
        reason="risky",
        totals=RunTotals(steps_used=1, risk_level="high"),
    )
    parked = await store.get_run(run.id)
    assert parked.status == RunStatus.WAITING_FOR_APPROVAL and parked.lease_owner is None
    assert parked.risk_level == "high"
    assert await store.claim_run("w2", lease_s=60) is None  # nothing to do while it waits

    decided = await store.decide_approval(approval.id, approve=True, decided_by="ann", reason="fine")
    assert decided.status == "approved" and decided.decided_by == "ann"
    assert (await store.get_run(run.id)).status == RunStatus.QUEUED
    with pytest.raises(ConflictError):
        await store.decide_approval(approval.id, approve=False, decided_by="bob", reason=None)
    with pytest.raises(NotFoundError):
        await store.decide_approval("apr_missing", approve=True, decided_by="x", reason=None)


async def test_cancel_queued_run_never_starts_and_running_run_is_flagged(store: Store) -> None:
    release = await bare_release(store)
    queued = await store.create_run(origin=RunOrigin.API, release=release, user_id="u", input="x")
    cancelled = await store.request_cancel(queued.id)
    assert cancelled.status == RunStatus.CANCELLED and cancelled.finished_at is not None
    assert await store.claim_run("w", lease_s=60) is None
    with pytest.raises(ConflictError):
        await store.request_cancel(queued.id)

    running = await store.create_run(origin=RunOrigin.API, release=release, user_id="u", input="y")
    await store.claim_run("w", lease_s=60, run_id=running.id)
    flagged = await store.request_cancel(running.id)
    assert flagged.status == RunStatus.RUNNING and await store.is_cancel_requested(running.id)


async def test_timestamps_come_back_in_utc(store: Store) -> None:
    release = await bare_release(store)
    run = await store.create_run(origin=RunOrigin.API, release=release, user_id="u", input="x")
    fetched = await store.get_run(run.id)
    assert fetched.created_at.utcoffset() == timedelta(0)
    assert fetched.created_at == run.created_at


async def test_thread_history_is_ordered_and_excludes_later_runs(store: Store) -> None:
    release = await bare_release(store)
    thread = await store.create_thread("u")
    first = await store.create_run(
        origin=RunOrigin.API, release=release, user_id="u", input="one", thread_id=thread.id
    )
    second = await store.create_run(
        origin=RunOrigin.API, release=release, user_id="u", input="two", thread_id=thread.id
    )
    earlier = await store.thread_runs(thread.id, before=second.created_at)
    assert [r.id for r in earlier] == [first.id]
    with pytest.raises(ConflictError):
        await store.create_thread("u", thread.id)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_processes_opening_a_fresh_database_together_migrate_once(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = (
        f"sqlite+aiosqlite:///{tmp_path / 'race.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    stores = await asyncio.gather(*(Store.open(url) for _ in range(4)))
    try:
        assert all([await db.is_current(s.engine) for s in stores])
    finally:
        for opened in stores:
            await opened.close()
