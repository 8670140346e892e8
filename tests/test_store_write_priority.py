"""On SQLite, run creation gets the process's one writer connection before step writes that queued
earlier (store/write_priority.py). Orders are observed, never timed."""

from __future__ import annotations

import asyncio
from pathlib import Path

from conftest import bare_release

from tether.store.records import RunStatus
from tether.store.repository import Store
from tether.store.write_priority import TwoLineQueue, urgent_writes


async def _take(queue: TwoLineQueue, name: str, got: list[tuple[str, object]], urgent: bool) -> None:
    if urgent:
        urgent_writes()  # in this task only (each task runs in its own copy of the context)
    got.append((name, await queue.get()))


async def test_an_urgent_waiter_is_served_before_earlier_ordinary_ones() -> None:
    queue = TwoLineQueue(1)
    got: list[tuple[str, object]] = []
    tasks = [
        asyncio.create_task(_take(queue, name, got, urgent=name == "urgent"))
        for name in ("first", "second", "urgent")
    ]
    await asyncio.sleep(0)  # every task has run up to its wait (tasks start in creation order)
    for item in ("a", "b", "c"):
        queue.put_nowait(item)
    await asyncio.gather(*tasks)
    assert got == [("urgent", "a"), ("first", "b"), ("second", "c")]
    assert queue.empty()


async def test_a_connection_handed_to_a_waiter_that_gave_up_goes_to_the_next() -> None:
    queue = TwoLineQueue(1)
    got: list[tuple[str, object]] = []
    quitter = asyncio.create_task(_take(queue, "quitter", got, urgent=True))
    patient = asyncio.create_task(_take(queue, "patient", got, urgent=False))
    await asyncio.sleep(0)
    queue.put_nowait("conn")  # handed to the quitter, which is cancelled before it resumes
    quitter.cancel()
    await patient
    assert got == [("patient", "conn")]
    assert quitter.cancelled()


async def test_an_item_put_with_nobody_waiting_is_kept() -> None:
    queue = TwoLineQueue(1)
    queue.put_nowait("conn")
    assert (queue.qsize(), queue.full()) == (1, True)
    assert await queue.get() == "conn"
    assert queue.empty()


async def test_a_create_goes_before_step_writes_queued_ahead_of_it(tmp_path: Path) -> None:
    """With the writer busy and ordinary writes queued, a create is committed first when it frees."""
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'priority.db'}")
    try:
        release = await bare_release(store)
        order: list[str] = []
        held = asyncio.Event()
        release_writer = asyncio.Event()

        async def hold() -> None:
            async with store._write_engine.begin():
                held.set()
                await release_writer.wait()

        async def ordinary(name: str) -> None:
            async with store._write_engine.begin():
                order.append(name)

        async def create() -> None:
            run = await store.create_run(release=release, user_id="u", origin="api", input="hi")
            order.append("create")
            assert (await store.get_run(run.id)).status == RunStatus.QUEUED

        holder = asyncio.create_task(hold())
        await held.wait()
        queue = store._write_engine.sync_engine.pool._pool._queue  # type: ignore[attr-defined]
        steps = [asyncio.create_task(ordinary(f"step {i}")) for i in range(3)]
        while queue.waiting() != (0, 3):  # the step writes queue first...
            await asyncio.sleep(0)
        creating = asyncio.create_task(create())
        while queue.waiting() != (1, 3):  # ...then the create batch
            await asyncio.sleep(0)
        release_writer.set()
        await asyncio.gather(holder, *steps, creating)
        assert order[0] == "create"
        assert sorted(order[1:]) == ["step 0", "step 1", "step 2"]
    finally:
        await store.close()
