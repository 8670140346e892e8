"""Retries with backoff on transient errors, and a fallback chain across models."""

from __future__ import annotations

from collections.abc import Sequence

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from tether.models.base import ChatModel, Message, ModelError, ModelResponse, ToolSpec, TransientModelError


class FallbackChain:
    """Try the primary model (with retries), then each fallback in order.

    Any `ModelError` moves on to the next model: a provider that is down or refusing should not
    take the agent down with it. The last error is raised when every model failed.
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
        for model in self.models:
            try:
                return await self._with_retries(model, messages, tools, max_output_tokens)
            except ModelError as exc:
                failures.append(f"{model.name}: {exc}")
        raise ModelError("every model in the chain failed: " + " | ".join(failures))

    async def _with_retries(
        self, model: ChatModel, messages: list[Message], tools: list[ToolSpec], max_output_tokens: int | None
    ) -> ModelResponse:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._retries + 1),
            wait=wait_random_exponential(multiplier=self._backoff_s, max=self._max_backoff_s),
            retry=retry_if_exception_type(TransientModelError),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                response = await model.chat(messages, tools, max_output_tokens=max_output_tokens)
                response.reference = model.name
                return response
        raise AssertionError("unreachable: tenacity either returns or reraises")
