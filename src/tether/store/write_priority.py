"""The SQLite writer connection serves run creation before anything else that waits for it.

On SQLite every write of a process goes through one connection (`db.create_writer`), handed out by
a pool of size one. SQLAlchemy's pool queues waiters first come, first served, so a create used to
wait for every step transaction of every executing run queued ahead of it: with eight runs in
flight, a create waited for eight transactions (about 200 ms on a busy disk) before its own.

Here the pool's queue has two lines. A task that marked itself urgent (`urgent_writes()`, used by
the create batcher's drain task in `store/batch.py`) is handed the connection as soon as the current
transaction ends; everybody else keeps first come, first served. Only that one drain task is ever
urgent and it holds the connection for one short transaction at a time, so executing runs are
never starved: between two create batches the ordinary line moves.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from typing import Any

from sqlalchemy.pool import AsyncAdaptedQueuePool
from sqlalchemy.util.queue import AsyncAdaptedQueue

_URGENT: contextvars.ContextVar[bool] = contextvars.ContextVar("tether_urgent_write", default=False)


def urgent_writes() -> None:
    """From now on, this task's waits for the writer connection jump the ordinary line."""
    _URGENT.set(True)


class TwoLineQueue:
    """The asyncio queue behind the pool: an item is handed straight to the first urgent waiter,
    else to the first ordinary one, else kept. Handing it over (rather than waking the waiter to
    take it) means nobody arriving in between can take it first."""

    def __init__(self, maxsize: int = 0) -> None:
        self.maxsize = maxsize
        self._items: deque[Any] = deque()
        self._urgent: deque[asyncio.Future[Any]] = deque()
        self._ordinary: deque[asyncio.Future[Any]] = deque()

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return 0 < self.maxsize <= len(self._items)

    def qsize(self) -> int:
        return len(self._items)

    def waiting(self) -> tuple[int, int]:
        """(urgent, ordinary) waiters not yet served: for tests and diagnostics."""
        return (
            sum(not w.done() for w in self._urgent),
            sum(not w.done() for w in self._ordinary),
        )

    def put_nowait(self, item: Any) -> None:
        for line in (self._urgent, self._ordinary):
            while line:
                waiter = line.popleft()
                if not waiter.done():
                    waiter.set_result(item)
                    return
        if self.full():
            raise asyncio.QueueFull
        self._items.append(item)

    async def put(self, item: Any) -> None:
        self.put_nowait(item)  # a pool never returns more connections than it handed out

    def get_nowait(self) -> Any:
        if not self._items:
            raise asyncio.QueueEmpty
        return self._items.popleft()

    async def get(self) -> Any:
        if self._items:
            return self._items.popleft()
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        line = self._urgent if _URGENT.get() else self._ordinary
        line.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:  # a pool timeout: pass on a connection handed over meanwhile
            if waiter.done() and not waiter.cancelled():
                self.put_nowait(waiter.result())
            elif waiter in line:
                line.remove(waiter)
            raise


class _TwoLineAdaptedQueue(AsyncAdaptedQueue[Any]):
    @property
    def _queue(self) -> Any:  # SQLAlchemy builds an asyncio.Queue here, lazily (bound to the running loop)
        queue = self.__dict__.get("_two_lines")
        if queue is None:
            queue = self.__dict__["_two_lines"] = TwoLineQueue(self.maxsize)
        return queue


class WriterPool(AsyncAdaptedQueuePool):
    """The writer engine's pool (`db.create_writer`): urgent waiters first."""

    _queue_class = _TwoLineAdaptedQueue


# SQLAlchemy names a pool subclass's logger after its module, which puts the pool's INFO chatter
# ("Pool disposed", "Pool recreating") under `tether`; keep it at WARNING, as SQLAlchemy's own are.
logging.getLogger(f"{__name__}.{WriterPool.__name__}").setLevel(logging.WARNING)
