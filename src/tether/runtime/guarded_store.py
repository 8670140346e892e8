"""The store as one run's loop sees it: retried through database blips, silent once the lease is lost.

Every loop call goes through here, so the loop itself stays free of retry code. A call that
fails for a transient reason (see `tether.store.faults`) is retried with backoff for as long as
the lease still holds; after the lease is lost nothing is read or written at all, because
another worker may own the run by then.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, cast

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential

from tether.runtime.lease import LeaseKeeper
from tether.store.faults import is_transient
from tether.store.repository import LeaseLostError, Store

# Calls that must not be repeated blindly: if the first attempt committed but its answer was lost,
# a second `begin_step` would insert the same step twice. On a transient error the run is handed
# back instead, and the next holder rebuilds its state from what was committed.
_NOT_RETRIED = frozenset({"begin_step"})
# Writes fenced by the lease: each one that succeeds extends the lease like a renewal does.
_FENCED = frozenset({"begin_step", "finish_step", "use_approval"})


class _GuardedStore:
    def __init__(self, store: Store, lease: LeaseKeeper) -> None:
        self._store = store
        self._lease = lease

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._store, name)
        if not inspect.iscoroutinefunction(target) or name.startswith("_"):
            return target  # properties and plain methods pass through untouched
        return functools.partial(self._call, name, target)

    async def _call(self, name: str, target: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        lease = self._lease

        def stop(_: RetryCallState) -> bool:
            return name in _NOT_RETRIED or not lease.has_time()

        async for attempt in AsyncRetrying(
            retry=retry_if_exception(is_transient),
            stop=stop,
            wait=wait_exponential(multiplier=0.1, max=2.0),
            sleep=lease.timer.sleep,
            reraise=True,
        ):
            with attempt:
                if lease.lost.is_set():
                    raise LeaseLostError(lease.reason)
                started = lease.timer.now()
                result = await target(*args, **kwargs)
                if name in _FENCED:
                    lease.extended(started)
                return result
        raise AssertionError("unreachable: tenacity either returns or reraises")


def guarded(store: Store, lease: LeaseKeeper) -> Store:
    """`store`, with every call retried through transient errors while `lease` holds."""
    return cast(Store, _GuardedStore(store, lease))
