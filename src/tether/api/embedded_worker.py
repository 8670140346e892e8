"""The worker of `tether serve`, on its own thread with its own event loop and its own Store.

With the worker on the API's event loop, every create request waited behind whatever step work the
loop had queued (issue #12: creates were CPU-bound on the shared loop). On its own thread the worker
gets its own loop, so the API's loop only serves requests; the two threads still share the GIL, but
Python switches between them every few milliseconds instead of at the next await of a busy loop.

Nothing asyncio is shared across the two loops: the worker opens its own Store (its own engine and,
on SQLite, its own writer connection; WAL, `BEGIN IMMEDIATE` and the busy timeout make two writers
on one file safe, exactly as for `tether api` beside `tether worker`), its own Runtime and live
configuration. What crosses is thread-safe by construction: wake-ups go through
`loop.call_soon_threadsafe` in both directions, and the Prometheus counters and the span collector
(both locked) are shared so `/metrics` and traces still show the worker's runs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tether.evals.online import online_scoring
from tether.live import LiveConfig
from tether.observe.observer import TelemetryObserver
from tether.observe.service import Telemetry
from tether.rollout.wiring import install as install_rollout
from tether.runtime.notify import Notifier
from tether.runtime.service import Runtime
from tether.runtime.worker import Worker
from tether.settings import Settings
from tether.store.repository import Store
from tether.webhooks.service import dispatching

log = logging.getLogger("tether.worker")
_LIVE_REFRESH_S = 5.0
"""How long a change announced on the API waits for the worker to load it (it polls regardless)."""


@dataclass(frozen=True)
class WorkerThreadOptions:
    """What the worker thread needs to build its own store and runtime."""

    database_url: str
    settings: Settings
    project: Path
    data_dir: Path
    concurrency: int


class ThreadedWorker:
    """Runs a `Worker` (plus webhook sending and online scoring) on a thread of its own.

    `start` returns once the worker loop is running (or raises what stopped it from starting);
    `wake` may be called from the API's loop at any time; `stop` drains the worker exactly as
    SIGTERM drains `tether worker` (bounded by `TETHER_WORKER_GRACE_S`) and joins the thread.
    """

    def __init__(self, options: WorkerThreadOptions, *, telemetry: Telemetry, notifier: Notifier) -> None:
        self.options = options
        self._telemetry = telemetry
        self._notifier = notifier
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker: Worker | None = None
        self._live: LiveConfig | None = None
        self._started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._finished: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._main, name="tether-worker", daemon=True)

    @property
    def worker(self) -> Worker | None:
        """The worker itself, once started (read its counters; call it only on its own loop)."""
        return self._worker

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    async def start(self) -> None:
        api_loop = asyncio.get_running_loop()
        self._relay = self._notifier.relay_from_thread(api_loop)
        self._thread.start()
        await asyncio.wrap_future(self._started)

    def wake(self) -> None:
        """Look for work now (a run was queued, approved or resumed here); safe from any thread."""
        self._call_soon(lambda worker: worker.wake())

    def request_stop(self) -> None:
        """Claim nothing new and start draining; safe from any thread."""
        self._call_soon(lambda worker: worker.stop())

    async def stop(self) -> None:
        """Drain the worker and wait for its thread to end."""
        self.request_stop()
        if self._thread.is_alive() or not self._finished.done():
            with contextlib.suppress(Exception):  # already logged by the thread
                await asyncio.wrap_future(self._finished)
        await asyncio.to_thread(self._thread.join)

    async def refresh_live(self) -> None:
        """Make the worker's live configuration load every change now (a `LinkedLiveConfig`
        follower); returns once it has, within `_LIVE_REFRESH_S`."""
        loop, live = self._loop, self._live
        if loop is None or live is None or not self._thread.is_alive():
            return
        done = asyncio.run_coroutine_threadsafe(live.refresh(), loop)
        await asyncio.wait_for(asyncio.wrap_future(done), _LIVE_REFRESH_S)

    def _call_soon(self, action: Callable[[Worker], None]) -> None:
        loop, worker = self._loop, self._worker
        if loop is None or worker is None:  # not started, or failed to start: nothing to tell
            return
        with contextlib.suppress(RuntimeError):  # the worker's loop has already closed
            loop.call_soon_threadsafe(action, worker)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            if not self._started.done():
                self._started.set_exception(exc)
            else:
                log.exception("the embedded worker thread failed")
            self._finished.set_exception(exc)
        else:
            if not self._started.done():  # ended before it was ready: say so rather than hang start()
                self._started.set_exception(RuntimeError("the embedded worker stopped while starting"))
            self._finished.set_result(None)

    async def _serve(self) -> None:
        options = self.options
        store = await Store.open(options.database_url, migrate=False, on_event=self._relay)
        try:
            api_observer = self._telemetry.observer
            observer = TelemetryObserver(
                store,
                tracing=api_observer.tracing,
                metrics=api_observer.metrics,
                content=api_observer.content,
            )
            runtime = Runtime(store, options.settings, data_dir=options.data_dir, observer=observer)
            install_rollout(runtime)
            worker = Worker(runtime, concurrency=options.concurrency, poll_s=options.settings.worker_poll_s)
            async with contextlib.AsyncExitStack() as background:
                await background.enter_async_context(dispatching(store, options.settings))
                await background.enter_async_context(
                    online_scoring(store, options.settings, project=options.project)
                )
                self._worker = worker
                self._live = runtime.live
                self._loop = asyncio.get_running_loop()
                self._started.set_result(None)
                await worker.run()
            await observer.flush()  # the worker's last spans, on its own store
        finally:
            await store.close()
