"""Retries with backoff on transient errors, and a fallback chain across models."""

from __future__ import annotations

from collections.abc import Sequence

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from tether.models.base import ChatModel, Message, ModelError, ModelResponse, ToolSpec, TransientModelError


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
    """

    def __init__(
        self,
        models: Sequence[ChatModel],
        *,
        retries: int = 2,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
    ) -> None:
        if not models:
            raise ValueError("a fallback chain needs at least one model")
        self.models = list(models)
        self.name = self.models[0].name
        self._retries = retries
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s

    async def chat(
        self, messages: list[Message], tools: list[ToolSpec], *, max_output_tokens: int | None = None
    ) -> ModelResponse:
        failures: list[str] = []
        attempts = 0
        for model in self.models:
            try:
                response = await self._with_retries(model, messages, tools, max_output_tokens)
            except ModelError as exc:
                attempts += exc.attempts
                failures.append(f"{model.name}: {exc}")
            else:
                response.attempts += attempts
                return response
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
                    response = await model.chat(messages, tools, max_output_tokens=max_output_tokens)
                    response.reference = model.name
                    response.attempts = tries
                    return response
        except ModelError as exc:
            exc.attempts = tries
            raise
        raise AssertionError("unreachable: tenacity either returns or reraises")
