"""Retries with backoff on transient errors, and a fallback chain across models."""

from __future__ import annotations

from collections.abc import Sequence

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from tether.models.base import ChatModel, Message, ModelError, ModelResponse, ToolSpec, TransientModelError
from tether.models.breakers import BreakerBoard, BreakerPolicy, model_key


class ChainUnavailableError(ModelError):
    """Every model of the chain is behind an open circuit breaker: nothing was even tried.

    `retry_at` (epoch seconds) is when the first of them lets a probe through again.
    """

    def __init__(self, message: str, *, retry_at: float) -> None:
        super().__init__(message)
        self.retry_at = retry_at
        self.attempts = 0


class _WorthRetrying:
    """Retry transient errors, except a server error that came back exactly as before.

    An HTTP 500 may be a glitch or the server's fixed reaction to this request; when the same
    answer (`repeat_key`) arrives twice in a row it is the latter, and more tries only waste time.
    """

    def __init__(self) -> None:
        self.previous: str | None = None

    def __call__(self, exc: BaseException) -> bool:
        if not isinstance(exc, TransientModelError):
            return False
        repeated = exc.repeat_key is not None and exc.repeat_key == self.previous
        self.previous = exc.repeat_key
        return not repeated


class FallbackChain:
    """Try the primary model (with retries), then each fallback in order.

    Any `ModelError` moves on to the next model: a provider that is down or refusing should not
    take the agent down with it. The last error is raised when every model failed.

    The answer says which model gave it (`reference`) and how many requests it took in all
    (`attempts`); a final `ModelError` carries the attempt count too.

    With `breakers`, a model whose breaker is open is skipped without a request, and every
    request's outcome feeds its breaker (transient failures count; a refused request does not,
    since it says nothing about the provider's health). When every model is skipped the chain
    raises `ChainUnavailableError`, so the run can degrade instead of failing like a bug.
    """

    def __init__(
        self,
        models: Sequence[ChatModel],
        *,
        retries: int = 2,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        breakers: BreakerBoard | None = None,
        breaker_policy: BreakerPolicy | None = None,
    ) -> None:
        if not models:
            raise ValueError("a fallback chain needs at least one model")
        self.models = list(models)
        self.name = self.models[0].name
        self._retries = retries
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self.breakers = breakers
        self.breaker_policy = breaker_policy or BreakerPolicy()

    async def chat(
        self, messages: list[Message], tools: list[ToolSpec], *, max_output_tokens: int | None = None
    ) -> ModelResponse:
        failures: list[str] = []
        attempts = 0
        open_until: list[float] = []
        for model in self.models:
            if self.breakers is not None and not await self.breakers.admit(
                model_key(model.name), self.breaker_policy
            ):
                open_until.append(await self.breakers.retry_at(model_key(model.name), self.breaker_policy))
                failures.append(f"{model.name}: circuit open")
                continue
            try:
                response = await self._with_retries(model, messages, tools, max_output_tokens)
            except ModelError as exc:
                attempts += exc.attempts
                failures.append(f"{model.name}: {exc}")
            else:
                response.attempts += attempts
                return response
        if len(open_until) == len(self.models):
            raise ChainUnavailableError(
                "every model in the chain is unavailable (circuit open): " + ", ".join(self.chain_names),
                retry_at=min(open_until),
            )
        error = ModelError("every model in the chain failed: " + " | ".join(failures))
        error.attempts = attempts
        raise error

    async def _with_retries(
        self, model: ChatModel, messages: list[Message], tools: list[ToolSpec], max_output_tokens: int | None
    ) -> ModelResponse:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._retries + 1),
            wait=wait_random_exponential(multiplier=self._backoff_s, max=self._max_backoff_s),
            retry=retry_if_exception(_WorthRetrying()),
            reraise=True,
        )
        tries = 0
        try:
            async for attempt in retrying:
                with attempt:
                    tries += 1
                    try:
                        response = await model.chat(messages, tools, max_output_tokens=max_output_tokens)
                    except TransientModelError as exc:
                        await self._record(model, ok=False, error=str(exc))
                        raise
                    await self._record(model, ok=True)
                    response.reference = model.name
                    response.attempts = tries
                    return response
        except ModelError as exc:
            exc.attempts = tries
            raise
        raise AssertionError("unreachable: tenacity either returns or reraises")

    @property
    def chain_names(self) -> list[str]:
        return [model.name for model in self.models]

    async def _record(self, model: ChatModel, *, ok: bool, error: str = "") -> None:
        if self.breakers is not None:
            await self.breakers.record(model_key(model.name), self.breaker_policy, ok=ok, error=error[:500])
