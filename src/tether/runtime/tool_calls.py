"""One tool call with retries and a circuit breaker: the loop asks, this says what happened.

Retries use tenacity's jittered exponential backoff, the same library and shape as model retries
(models/routing.py). A write that is not idempotent is tried once: a failed write may still have
happened. A tool whose breaker is open is not called at all; the model is told it is unavailable,
so it can answer without it instead of every run waiting on the same broken system.

The last operator-control check of each attempt runs inside the call itself (`Tool.invoke`'s
`before`): in the sync tool's own thread, right before the function is entered. A check made on
the event loop before the thread starts leaves a gap in which the loop can apply a reloaded kill
switch; the drill caught calls starting 1-3 ms after their process had loaded the switch.
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


class ToolRefused(Exception):
    """The last control check said no, in the tool's thread: the function was never entered."""


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
    refuse: Callable[[], str | None] | None = None,
) -> ToolAttempts:
    """Run the tool (through `guarded`, which cancels it if the lease is lost) with its retries.

    `refuse` is asked right before every attempt enters the tool function, in the same thread
    (for a sync tool, its own thread: `refuse` must be safe to call there): when it answers (an
    operator control switched the tool off meanwhile), the tool is not called and its answer is
    the error the model sees.
    """
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
    last_check = _last_check(refuse) if refuse is not None else None
    attempts = 0
    try:
        async for attempt in retrying:
            with attempt:
                attempts += 1
                try:
                    result = await _once(tool, arguments, context, guarded, breaker, last_check)
                except ToolRefused as refused:  # this attempt never entered the function
                    return ToolAttempts(attempts=attempts - 1, error=str(refused))
                return ToolAttempts(attempts=attempts, result=result)
    except _ToolFailed as exc:
        return ToolAttempts(attempts=attempts, error=str(exc))
    raise AssertionError("unreachable: tenacity either returns or reraises")


def _last_check(refuse: Callable[[], str | None]) -> Callable[[], None]:
    def check() -> None:
        refusal = refuse()
        if refusal is not None:
            raise ToolRefused(refusal)

    return check


async def _once(
    tool: Tool,
    arguments: dict[str, Any],
    context: ToolContext,
    guarded: Callable[[Awaitable[Any]], Awaitable[Any]],
    breaker: ToolBreaker | None,
    before: Callable[[], None] | None,
) -> Any:
    try:
        result = await guarded(tool.invoke(arguments, context, before=before))
    except (LeaseLostError, ToolRefused):
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
