"""Circuit breakers: a provider (or tool) that keeps failing is skipped at once, not retried by every run.

One breaker per key (`model:openai:gpt-4o-mini`, `tool:support-agent:lookup_order`). Its state is a
small immutable record whose transitions are pure functions here; where it is kept (the database,
Redis, memory) is a `BreakerBackend`, so every process sharing a database or Redis sees the same
breaker. Each process reads a breaker's state at most every `refresh_s` for the "may I call?" check,
and writes only when something happens that can change it (a failure, a probe, a success while the
breaker is not pristine), so a healthy provider costs no shared-state writes at all.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

BreakerPhase = Literal["closed", "open", "half_open"]


@dataclass(frozen=True)
class BreakerPolicy:
    """When a breaker opens, how long it stays open, and how it probes before closing again."""

    failures: int = 5
    """Consecutive failures that open the breaker."""
    error_rate: float = 0.5
    """Failure share over `window_s` (with at least `min_calls` calls) that opens it."""
    window_s: float = 60.0
    min_calls: int = 10
    open_s: float = 30.0
    """How long an open breaker refuses calls before letting `probes` through (half-open)."""
    probes: int = 1


@dataclass(frozen=True)
class BreakerState:
    """One breaker as stored; times are epoch seconds so every process reads them the same way."""

    phase: BreakerPhase = "closed"
    consecutive: int = 0
    window_start: float = 0.0
    window_calls: int = 0
    window_failures: int = 0
    opened_at: float = 0.0
    probes: int = 0
    changed_at: float = 0.0
    last_error: str = ""

    @property
    def pristine(self) -> bool:
        """Closed with no failure to remember: a success changes nothing worth writing."""
        return self.phase == "closed" and self.consecutive == 0 and self.window_failures == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "consecutive": self.consecutive,
            "window_start": self.window_start,
            "window_calls": self.window_calls,
            "window_failures": self.window_failures,
            "opened_at": self.opened_at,
            "probes": self.probes,
            "changed_at": self.changed_at,
            "last_error": self.last_error,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> BreakerState:
        if not data:
            return cls()
        known = {key: data[key] for key in cls().as_dict() if key in data}
        return cls(**known)

    def reopens_at(self, policy: BreakerPolicy) -> float:
        return self.opened_at + policy.open_s


def admit(state: BreakerState, policy: BreakerPolicy, now: float) -> tuple[bool, BreakerState]:
    """Whether a call may go ahead, and the state after letting it (a probe is counted)."""
    if state.phase == "closed":
        return True, state
    if state.phase == "open":
        if now < state.reopens_at(policy):
            return False, state
        return True, replace(state, phase="half_open", probes=1, changed_at=now)
    # half-open: a few probes at a time; a probe whose process died is forgotten after open_s
    if state.probes < policy.probes or now >= state.changed_at + policy.open_s:
        fresh = state.probes < policy.probes
        return True, replace(state, probes=state.probes + 1 if fresh else 1, changed_at=now)
    return False, state


def settle(
    state: BreakerState, policy: BreakerPolicy, now: float, *, ok: bool, error: str = ""
) -> BreakerState:
    """The state after one call ended (`ok` or failed with `error`)."""
    if state.phase == "half_open":
        if ok:
            return BreakerState(window_start=now, changed_at=now)
        return _opened(state, now, error)
    if state.phase == "open":
        return state if ok else replace(state, last_error=error or state.last_error)
    if now - state.window_start >= policy.window_s:
        state = replace(state, window_start=now, window_calls=0, window_failures=0)
    calls = state.window_calls + 1
    failures = state.window_failures + (0 if ok else 1)
    consecutive = 0 if ok else state.consecutive + 1
    state = replace(
        state,
        consecutive=consecutive,
        window_calls=calls,
        window_failures=failures,
        last_error=error or state.last_error,
    )
    too_many = consecutive >= policy.failures
    too_often = calls >= policy.min_calls and failures / calls >= policy.error_rate
    return _opened(state, now, error) if not ok and (too_many or too_often) else state


def _opened(state: BreakerState, now: float, error: str) -> BreakerState:
    return replace(state, phase="open", opened_at=now, probes=0, changed_at=now, last_error=error)


Change = Callable[[BreakerState], BreakerState]


class BreakerBackend(Protocol):
    """Where breaker states live; `update` is an atomic read-modify-write across processes."""

    async def read(self, key: str) -> BreakerState: ...

    async def update(self, key: str, change: Change) -> BreakerState: ...

    async def all(self) -> dict[str, BreakerState]: ...

    async def reset(self, key: str) -> bool: ...


class MemoryBackend:
    """One process's breakers (tests, and runs that have no shared store)."""

    def __init__(self) -> None:
        self._states: dict[str, BreakerState] = {}

    async def read(self, key: str) -> BreakerState:
        return self._states.get(key, BreakerState())

    async def update(self, key: str, change: Change) -> BreakerState:
        self._states[key] = change(self._states.get(key, BreakerState()))
        return self._states[key]

    async def all(self) -> dict[str, BreakerState]:
        return dict(self._states)

    async def reset(self, key: str) -> bool:
        return self._states.pop(key, None) is not None


class CircuitOpenError(Exception):
    """Every option is behind an open breaker; `retry_at` (epoch s) is when the first one probes again."""

    def __init__(self, message: str, *, retry_at: float) -> None:
        super().__init__(message)
        self.retry_at = retry_at


@dataclass
class _Cached:
    state: BreakerState
    read_at: float


class BreakerBoard:
    """The breakers one process consults: cached reads for `admit`, shared writes for transitions."""

    def __init__(
        self,
        backend: BreakerBackend,
        *,
        refresh_s: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.backend = backend
        self.refresh_s = refresh_s
        self.clock = clock
        self._cache: dict[str, _Cached] = {}

    async def _current(self, key: str) -> BreakerState:
        now = self.clock()
        cached = self._cache.get(key)
        if cached is None or now - cached.read_at >= self.refresh_s:
            cached = _Cached(await self.backend.read(key), now)
            self._cache[key] = cached
        return cached.state

    def _remember(self, key: str, state: BreakerState) -> BreakerState:
        self._cache[key] = _Cached(state, self.clock())
        return state

    async def admit(self, key: str, policy: BreakerPolicy) -> bool:
        """May a call go ahead now? A half-open breaker lets only `policy.probes` through, shared."""
        state = await self._current(key)
        now = self.clock()
        allowed, _ = admit(state, policy, now)
        if not allowed or state.phase == "closed":
            return allowed
        granted: list[bool] = []

        def take(current: BreakerState) -> BreakerState:
            ok, after = admit(current, policy, now)
            granted.append(ok)
            return after

        self._remember(key, await self.backend.update(key, take))
        return granted[-1]

    async def record(self, key: str, policy: BreakerPolicy, *, ok: bool, error: str = "") -> BreakerState:
        """Tell the breaker how a call ended; a success on a pristine breaker writes nothing."""
        state = await self._current(key)
        if ok and state.pristine:
            return state
        now = self.clock()
        return self._remember(
            key, await self.backend.update(key, lambda s: settle(s, policy, now, ok=ok, error=error))
        )

    async def retry_at(self, key: str, policy: BreakerPolicy) -> float:
        state = await self._current(key)
        return state.reopens_at(policy) if state.phase == "open" else self.clock()

    async def guard(self, key: str, policy: BreakerPolicy, call: Callable[[], Awaitable[Any]]) -> Any:
        """Run `call` through the breaker: refused at once while open, its outcome recorded."""
        if not await self.admit(key, policy):
            raise CircuitOpenError(f"{key}: circuit open", retry_at=await self.retry_at(key, policy))
        try:
            result = await call()
        except Exception as exc:
            await self.record(key, policy, ok=False, error=f"{type(exc).__name__}: {exc}"[:500])
            raise
        await self.record(key, policy, ok=True)
        return result


def model_key(reference: str) -> str:
    return f"model:{reference}"


def tool_key(agent: str, tool: str) -> str:
    return f"tool:{agent}:{tool}"
