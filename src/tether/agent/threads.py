"""Running a synchronous tool off the event loop without letting it hold the process hostage.

`asyncio.to_thread` uses the loop's thread pool, and the interpreter joins those threads at
exit: a sync tool that hangs keeps a stopping worker alive for as long as it hangs, past its
shutdown grace period. A daemon thread is not joined, so a worker exits on time; the tool's
thread ends with the process (which is what makes the abandoned call safe to take over).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import Callable
from typing import Any


async def run_in_daemon_thread(fn: Callable[..., Any], /, **kwargs: Any) -> Any:
    """Call `fn(**kwargs)` in a new daemon thread and await its result.

    Cancelling the await stops waiting; the thread itself runs on (threads cannot be stopped)
    and its result is dropped.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    context = contextvars.copy_context()

    def deliver(outcome: Callable[[], None]) -> None:
        if not future.done():
            outcome()

    def work() -> None:
        try:
            result = context.run(fn, **kwargs)
        except BaseException as exc:  # handed to the awaiting task, which decides what it means
            error = exc
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
                loop.call_soon_threadsafe(deliver, lambda: future.set_exception(error))
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(deliver, lambda: future.set_result(result))

    threading.Thread(target=work, name=f"tool:{getattr(fn, '__name__', 'call')}", daemon=True).start()
    return await future
