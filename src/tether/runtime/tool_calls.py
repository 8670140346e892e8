"""One tool call with retries and a circuit breaker: the loop asks, this says what happened.

Retries use tenacity's jittered exponential backoff, the same library and shape as model retries
(models/routing.py). A write that is not idempotent is tried once: a failed write may still have
happened. A tool whose breaker is open is not called at all; the model is told it is unavailable,
so it can answer without it instead of every run waiting on the same broken system.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from tether.agent.tools import Tool, ToolContext
from tether.models.breakers import BreakerBoard, BreakerPolicy
from tether.store.repository import LeaseLostError

RETRY_BACKOFF_S = 0.2
MAX_RETRY_BACKOFF_S = 5.0


@dataclass(frozen=True)
class ToolAttempts:
    """How a tool call ended: its result, or the last error, after `attempts` tries."""

    attempts: int
    result: Any = None
    error: str | None = None


class _ToolFailed(Exception):
    """One attempt failed; carries the text the model will see."""


@dataclass(frozen=True)
class ToolBreaker:
    board: BreakerBoard
    policy: BreakerPolicy
    key: str


async def call_tool(
    tool: Tool,
    arguments: dict[str, Any],
    context: ToolContext,
    *,
    guarded: Callable[[Awaitable[Any]], Awaitable[Any]],
    breaker: ToolBreaker | None,
    backoff_s: float = RETRY_BACKOFF_S,
) -> ToolAttempts:
    """Run the tool (through `guarded`, which cancels it if the lease is lost) with its retries."""
    if breaker is not None and not await breaker.board.admit(breaker.key, breaker.policy):
        return ToolAttempts(
            attempts=0,
            error=f"{tool.name} is temporarily unavailable (it kept failing; circuit open): "
            "answer without it or tell the user to try again later",
        )
    tries = tool.retries + 1 if tool.safe_to_repeat else 1
    retrying = AsyncRetrying(
        stop=stop_after_attempt(tries),
        wait=wait_random_exponential(multiplier=backoff_s, max=MAX_RETRY_BACKOFF_S),
        retry=retry_if_exception(lambda exc: isinstance(exc, _ToolFailed)),
        reraise=True,
    )
    attempts = 0
    try:
        async for attempt in retrying:
            with attempt:
                attempts += 1
                result = await _once(tool, arguments, context, guarded, breaker)
                return ToolAttempts(attempts=attempts, result=result)
    except _ToolFailed as exc:
        return ToolAttempts(attempts=attempts, error=str(exc))
    raise AssertionError("unreachable: tenacity either returns or reraises")


async def _once(
    tool: Tool,
    arguments: dict[str, Any],
    context: ToolContext,
    guarded: Callable[[Awaitable[Any]], Awaitable[Any]],
    breaker: ToolBreaker | None,
) -> Any:
    try:
        result = await guarded(tool.invoke(arguments, context))
    except LeaseLostError:
        raise
    except TimeoutError:
        error = f"{tool.name} timed out after {tool.timeout_s:g}s"
    except Exception as exc:
        error = f"{tool.name} failed: {type(exc).__name__}: {exc}"
    else:
        if breaker is not None:
            await breaker.board.record(breaker.key, breaker.policy, ok=True)
        return result
    if breaker is not None:
        await breaker.board.record(breaker.key, breaker.policy, ok=False, error=error[:500])
    raise _ToolFailed(error)
