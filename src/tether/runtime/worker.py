"""A long-running worker: claims runs up to its concurrency, heartbeats, and drains on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from tether.outages import OutageLog
from tether.runtime.service import Runtime

log = logging.getLogger("tether.worker")


class Worker:
    """Runs many runs concurrently in one process.

    Stopping (SIGTERM, SIGINT, or `stop()`) claims nothing new; each in-flight run finishes the
    step it is in, checkpoints, and hands its lease back so any worker can resume it. The drain
    is bounded by `grace_s`: a run still inside a model or tool call by then is abandoned with its
    lease held (renewed until the end), so no other worker takes it over while the call may still
    be running; the lease expires once this process has exited.
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        concurrency: int = 4,
        poll_s: float = 0.5,
        heartbeat_s: float = 5.0,
        grace_s: float | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.runtime = runtime
        self.concurrency = concurrency
        self.poll_s = poll_s
        self.heartbeat_s = heartbeat_s
        self.grace_s = runtime.settings.worker_grace_s if grace_s is None else grace_s
        """How long a stopping worker may take; `TETHER_WORKER_GRACE_S` unless given."""
        self.active: set[asyncio.Task[object]] = set()
        self.completed = 0
        self._wake = asyncio.Event()
        self._claims = OutageLog(log, "claiming runs")
        self._beats = OutageLog(log, "worker heartbeat")

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
        await self.runtime.live.start()  # controls and deployments stay fresh while runs execute
        heartbeat = asyncio.create_task(self._heartbeat())
        try:
            while not self.runtime.stopping.is_set():
                # Cleared before looking, so a run queued (or a slot freed) while we look is not missed.
                self._wake.clear()
                if len(self.active) < self.concurrency:
                    try:
                        claimed = await self.runtime.claim_next()
                    except Exception as exc:  # database unreachable for a moment: wait and try again
                        self._claims.failed(exc)  # logged once per outage, not once per poll
                        claimed = None
                    else:
                        self._claims.succeeded()
                    if claimed is not None:
                        task: asyncio.Task[object] = asyncio.create_task(self.runtime.drive(claimed))
                        self.active.add(task)
                        task.add_done_callback(self._finished)
                        continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.poll_s)
        finally:
            self.runtime.stopping.set()
            deadline = asyncio.get_running_loop().time() + self.grace_s
            await self._drain(deadline)
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            await self.runtime.live.close()
            with contextlib.suppress(Exception):  # the database may be down: the row just goes stale
                await asyncio.wait_for(store.worker_stopped(self.worker_id), _remaining(deadline))
            log.info("worker stopped", extra={"worker_id": self.worker_id, "completed": self.completed})

    async def _drain(self, deadline: float) -> None:
        """Let in-flight runs reach a step boundary within the grace period, then abandon the rest."""
        if not self.active:
            return
        log.info(
            "draining %d in-flight run(s)",
            len(self.active),
            extra={"worker_id": self.worker_id, "in_flight": len(self.active)},
        )
        # Most of the grace period for finishing the current step; the rest for cancelling.
        _, pending = await asyncio.wait(self.active, timeout=self.grace_s * 0.9)
        if not pending:
            return
        log.warning(
            "%d run(s) still inside a model or tool call after the %gs grace period: abandoning them "
            "with their lease held; it expires after this process exits and another worker resumes "
            "them from their last checkpoint",
            len(pending),
            self.grace_s,
            extra={"worker_id": self.worker_id, "abandoned": len(pending)},
        )
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=_remaining(deadline))

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
            except Exception as exc:  # a database blip must not kill the worker; the next beat retries
                self._beats.failed(exc)
            else:
                self._beats.succeeded()
            await asyncio.sleep(self.heartbeat_s)


def _remaining(deadline: float) -> float:
    """Seconds left until `deadline` on the loop's clock (a little, even when it has passed)."""
    return max(0.1, deadline - asyncio.get_running_loop().time())
