"""Group commit for run creation: creates that arrive together share one transaction.

Every commit costs a flush to disk (SQLite `synchronous=FULL`, PostgreSQL WAL flush), and on SQLite
all of a process's writes queue for one connection. A create that had to wait its own turn behind
the steps of executing runs would be as slow as the disk. Instead, creates queue here; one drain
task writes every create waiting at that moment in a single transaction and answers each caller
only after that transaction committed, so a created run is still durable before anyone hears of it.
If the shared transaction fails, each create is retried in a transaction of its own, so one bad
create (say, a thread id that already exists) never fails its neighbours.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Row, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tether.store.fenced import EVENTS, RUNS, THREADS
from tether.store.write_priority import urgent_writes

_MAX_BATCH = 500


@dataclass
class NewRun:
    """The rows one create writes: perhaps a thread, the run, its first events."""

    run: dict[str, Any]
    events: list[dict[str, Any]]
    thread: dict[str, Any] | None = None
    done: asyncio.Future[Row[Any]] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class CreateBatcher:
    """Writes queued creates, as many per transaction as are waiting."""

    def __init__(self, engine: AsyncEngine, own: AsyncEngine | None = None) -> None:
        """Writes go through `own` when given (a connection for creates alone, disposed by `close`),
        else through `engine`."""
        self._engine = own or engine
        self._own = own
        self._waiting: list[NewRun] = []
        self._drainer: asyncio.Task[None] | None = None

    async def create(self, new: NewRun) -> Row[Any]:
        """Store the run (and its thread and events); returns its row once committed."""
        self._waiting.append(new)
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())
        return await asyncio.shield(new.done)

    async def close(self) -> None:
        """Let queued creates finish, then close the engine of creates' own (if any)."""
        if self._drainer is not None and not self._drainer.done():
            await asyncio.shield(self._drainer)
        if self._own is not None:
            await self._own.dispose()

    async def _drain(self) -> None:
        urgent_writes()  # this task's transactions go before step writes waiting for the connection
        while self._waiting:
            batch, self._waiting = self._waiting[:_MAX_BATCH], self._waiting[_MAX_BATCH:]
            try:
                async with self._engine.begin() as conn:
                    rows = await _write(conn, batch)
            except Exception:
                await self._one_by_one(batch)
                continue
            for new, row in zip(batch, rows, strict=True):
                if not new.done.done():
                    new.done.set_result(row)

    async def _one_by_one(self, batch: list[NewRun]) -> None:
        for new in batch:
            try:
                async with self._engine.begin() as conn:
                    (row,) = await _write(conn, [new])
            except Exception as exc:
                if not new.done.done():
                    new.done.set_exception(exc)
            else:
                if not new.done.done():
                    new.done.set_result(row)


async def _write(conn: AsyncConnection, batch: list[NewRun]) -> list[Row[Any]]:
    """Every row of the batch in one statement per table (the statements compile once)."""
    threads = [new.thread for new in batch if new.thread is not None]
    if threads:
        await conn.execute(insert(THREADS), threads)
    stored: dict[int, Row[Any]] = {}
    shapes: dict[frozenset[str], list[int]] = {}  # runs with the same columns set insert together
    for position, new in enumerate(batch):
        shapes.setdefault(frozenset(new.run), []).append(position)
    for positions in shapes.values():
        statement = insert(RUNS).returning(*RUNS.c, sort_by_parameter_order=True)
        result = await conn.execute(statement, [batch[p].run for p in positions])
        stored.update(zip(positions, result.all(), strict=True))
    await conn.execute(insert(EVENTS), [event for new in batch for event in new.events])
    return [stored[position] for position in range(len(batch))]
