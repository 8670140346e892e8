"""The loop's caches for one run: model answers (semantic, then exact) and tool results.

Built per run from the release's `[cache]` section and the process's cache store; evals and drills
have no cache store, so test traffic never reads or fills a production cache. Every hit is recorded
on the step with what it saved; every miss is recorded too, so hit rates can be computed.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

from tether.agent.config import CacheSection
from tether.agent.tools import Tool, render_result
from tether.caches.keys import CacheScope
from tether.caches.service import Caches, Hit
from tether.models.base import Message, ModelResponse, ToolSpec, Usage
from tether.runtime.routed import RoutedAnswer
from tether.runtime.tool_calls import ToolAttempts
from tether.store.records import RunRecord


class RunCaches:
    def __init__(
        self,
        caches: Caches | None,
        config: CacheSection,
        run: RunRecord,
        agent: str,
        models: list[str],
        *,
        key_text: Callable[[str], str] = str,
    ) -> None:
        self.caches = caches
        self.config = config
        self.scope = CacheScope(run.tenant_id, None if config.user_independent else run.user_id)
        self.agent = agent
        self.models = models
        self.key_text = key_text
        """What of a message's text the response key sees: the guard strips its per-run secrets (the
        marking key, the canary), so the same request from two runs is one entry."""

    @property
    def semantic(self) -> bool:
        return self.caches is not None and self.config.semantic

    async def model_call(
        self,
        messages: list[Message],
        tools: list[ToolSpec],
        max_output_tokens: int,
        call: Callable[[], Awaitable[RoutedAnswer]],
        *,
        question: str | None,
    ) -> RoutedAnswer:
        """Answer from a cache if one may and can, else `call()` (and remember its answer).

        `question` is the run's input when a final answer may come from the semantic cache (the
        run's first model call, on a thread without history), else None.
        """
        if self.caches is None:
            return await call()
        asked: list[str] = []
        if self.config.semantic and question is not None:
            hit = await self.caches.similar_answer(
                self.scope, self.agent, self.models, question, self.config.semantic_threshold
            )
            if hit is not None:
                response = ModelResponse(content=str(hit.value), reference="cache:semantic", attempts=0)
                return _from_cache(response, "semantic:hit", hit, asked)
            asked.append("semantic:miss")
        key = None
        if self.config.response:
            params = {"max_output_tokens": max_output_tokens}
            keyed = [m.model_copy(update={"content": self.key_text(m.content)}) for m in messages]
            key = self.caches.response_key(self.scope, self.models, keyed, tools, params)
            hit = await self.caches.response(key)
            if hit is not None:
                response = ModelResponse.model_validate(hit.value)
                response.attempts = 0
                return _from_cache(response, "exact:hit", hit, asked)
            asked.append("exact:miss")
        started = time.monotonic()
        answer = await call()
        if key is not None:
            value = answer.response.model_dump(mode="json")
            latency = (time.monotonic() - started) * 1000
            await self.caches.remember_response(
                key, self.scope, value, answer.cost, latency, self.config.response_ttl_s
            )
        return replace(answer, cache=",".join(asked) or None)

    async def remember_final(self, question: str, answer: str, cost_usd: float, latency_ms: float) -> None:
        """Keep a run's final answer for the semantic cache."""
        if self.caches is not None and self.config.semantic and answer:
            await self.caches.remember_answer(
                self.scope,
                self.agent,
                self.models,
                question,
                answer,
                cost_usd,
                latency_ms,
                self.config.semantic_ttl_s,
            )

    async def tool_call(
        self, tool: Tool, arguments: dict[str, object], call: Callable[[], Awaitable[ToolAttempts]]
    ) -> tuple[ToolAttempts, str | None, Hit | None]:
        """A read tool's result from the cache when it declares `cache_ttl`, else `call()`."""
        if self.caches is None or not self.config.tools or tool.cache_ttl is None or tool.is_write:
            return await call(), None, None
        key = self.caches.tool_key(self.scope, self.agent, tool.name, dict(arguments))
        hit = await self.caches.tool_result(key)
        if hit is not None:
            return ToolAttempts(attempts=0, result=hit.value), "tool:hit", hit
        started = time.monotonic()
        outcome = await call()
        if outcome.error is None:
            latency = (time.monotonic() - started) * 1000
            await self.caches.remember_tool(
                key, self.scope, render_result(outcome.result), latency, tool.cache_ttl
            )
        return outcome, "tool:miss", None


def _from_cache(response: ModelResponse, label: str, hit: Hit, asked: list[str]) -> RoutedAnswer:
    return RoutedAnswer(
        response,
        Usage(),
        0.0,
        cache=",".join([*asked, label]),
        saved_cost_usd=hit.saved_cost_usd,
        saved_latency_ms=hit.saved_latency_ms,
    )
