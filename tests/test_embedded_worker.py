"""The embedded worker of `tether serve` on its own thread and event loop (api/embedded_worker.py):
wake-ups cross the two loops, changes made on the API reach it at once, and it ends with the app."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from test_api import RW, issue, serve, succeeded_run

from tether.api.live_link import LinkedLiveConfig
from tether.runtime.notify import Notifier, until
from tether.store.repository import Store


def _worker_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "tether-worker"]


def test_the_worker_runs_on_its_own_thread_for_exactly_as_long_as_the_app(example_project: Path) -> None:
    key = issue("u1", "t1", RW)
    assert _worker_threads() == []
    with serve(example_project, workers=2) as client:
        assert [t.is_alive() for t in _worker_threads()] == [True]
        run = succeeded_run(client, key)  # `wait` returns because the worker's events wake this loop
        assert run["status"] == "succeeded"
    assert _worker_threads() == []  # stopping the app drained the worker and joined its thread


def test_without_a_worker_no_thread_is_started(example_project: Path) -> None:
    with serve(example_project, workers=0):
        assert _worker_threads() == []


async def test_a_wake_up_published_on_another_threads_loop_reaches_this_loops_waiters() -> None:
    notifier = Notifier()
    relay = notifier.relay_from_thread(asyncio.get_running_loop())
    waiting = asyncio.create_task(notifier.wait("run_1", 600))
    await asyncio.sleep(0)  # the waiter is registered

    thread = threading.Thread(target=lambda: asyncio.run(relay("run_1")))
    thread.start()
    await asyncio.to_thread(thread.join)
    # Bounded only so a broken relay fails instead of hanging: the waiter's own timeout is 600 s.
    await asyncio.wait_for(waiting, 30)
    assert waiting.done() and waiting.exception() is None


async def test_a_wake_up_between_reading_the_run_and_waiting_is_kept() -> None:
    """`POST /v1/runs` with `wait` reads the run, then waits: with the worker on another thread, the
    run can finish in between. Watching from before the read keeps that wake-up, where a waiter
    registered after the read missed it and slept a whole poll interval (1 s)."""
    notifier = Notifier()
    with notifier.watching("run_1") as changed:
        # ... the route reads the run here (still running) ...
        await notifier.publish("run_1")  # the run finishes before the route starts waiting
        await until(changed, 600)  # returns at once: the event is already set
        assert changed.is_set()
    assert notifier._waiters == {}  # nothing left registered once the block ends


async def test_a_relay_to_a_closed_loop_is_dropped_quietly() -> None:
    notifier = Notifier()
    closed = asyncio.new_event_loop()
    closed.close()
    await notifier.relay_from_thread(closed)("run_1")  # nobody waits there any more: no error


async def test_a_change_announced_here_is_loaded_by_every_follower_before_changed_returns(
    tmp_path: Path,
) -> None:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'live.db'}")
    live = LinkedLiveConfig(store)
    calls: list[str] = []

    async def follower() -> None:
        calls.append("reloaded")

    async def broken() -> None:
        raise TimeoutError("the worker did not answer")

    try:
        live.follow(broken)
        live.follow(follower)
        await live.changed("controls")
        assert calls == ["reloaded"]  # the broken follower was logged, not raised, and others still ran
        live.unfollow(follower)
        live.unfollow(follower)  # twice is harmless
        await live.changed("controls")
        assert calls == ["reloaded"]
    finally:
        await live.close()
        await store.close()
