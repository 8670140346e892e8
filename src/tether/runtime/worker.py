"""A long-running worker: claims runs up to its concurrency, heartbeats, and drains on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from tether.runtime.service import Runtime

log = logging.getLogger("tether.worker")


class Worker:
    """Runs many runs concurrently in one process.

    Stopping (SIGTERM, SIGINT, or `stop()`) claims nothing new; each in-flight run finishes the
    step it is in, checkpoints, and hands its lease back so any worker can resume it.
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        concurrency: int = 4,
        poll_s: float = 0.5,
        heartbeat_s: float = 5.0,
        grace_s: float = 30.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.runtime = runtime
        self.concurrency = concurrency
        self.poll_s = poll_s
        self.heartbeat_s = heartbeat_s
        self.grace_s = grace_s
        self.active: set[asyncio.Task[object]] = set()
        self.completed = 0
        self._wake = asyncio.Event()

    @property
    def worker_id(self) -> str:
        return self.runtime.loop_settings.owner

    def stop(self) -> None:
        self.runtime.stopping.set()
        self._wake.set()

    def wake(self) -> None:
        """Look for work now instead of at the next poll (e.g. a run was just queued)."""
        self._wake.set()

    async def run(self) -> None:
        store = self.runtime.store
        log.info("worker started", extra={"worker_id": self.worker_id, "concurrency": self.concurrency})
        heartbeat = asyncio.create_task(self._heartbeat())
        try:
            while not self.runtime.stopping.is_set():
                if len(self.active) < self.concurrency:
                    try:
                        claimed = await self.runtime.claim_next()
                    except Exception:  # database unreachable for a moment: wait and try again
                        log.exception("claiming a run failed")
                        claimed = None
                    if claimed is not None:
                        task: asyncio.Task[object] = asyncio.create_task(self.runtime.drive(claimed))
                        self.active.add(task)
                        task.add_done_callback(self._finished)
                        continue
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.poll_s)
        finally:
            self.runtime.stopping.set()
            if self.active:
                log.info(
                    "draining %d in-flight run(s)",
                    len(self.active),
                    extra={"worker_id": self.worker_id, "in_flight": len(self.active)},
                )
                _, pending = await asyncio.wait(self.active, timeout=self.grace_s)
                for task in pending:  # their leases expire and another worker resumes them
                    task.cancel()
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            await store.worker_stopped(self.worker_id)
            log.info("worker stopped", extra={"worker_id": self.worker_id, "completed": self.completed})

    def _finished(self, task: asyncio.Task[object]) -> None:
        self.active.discard(task)
        self.completed += 1
        if not task.cancelled() and task.exception() is not None:
            log.error("run task crashed", exc_info=task.exception())
        self._wake.set()

    async def _heartbeat(self) -> None:
        while True:
            try:
                await self.runtime.store.worker_heartbeat(
                    self.worker_id, concurrency=self.concurrency, active_runs=len(self.active)
                )
                await self.runtime.store.fail_abandoned_pinned_runs()
            except Exception:  # a database blip must not kill the worker; the next beat retries
                log.exception("worker heartbeat failed")
            await asyncio.sleep(self.heartbeat_s)
