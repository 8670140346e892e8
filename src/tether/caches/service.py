"""The three caches behind one object: what a hit returns, and what an entry remembers.

Each entry keeps what its miss cost (`cost_usd`) and how long it took (`latency_ms`), so a hit
can be recorded with the cost and latency it saved.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from tether.caches.backend import CacheBackend
from tether.caches.keys import CacheScope, response_key, semantic_scope, tool_key
from tether.caches.semantic import best_match, embed_async, identifiers
from tether.models.base import Message, ToolSpec

SEMANTIC_CANDIDATES = 500
"""How many of a scope's newest semantic entries a lookup compares against."""


@dataclass(frozen=True)
class Hit:
    """An answer from a cache, and what its original cost."""

    value: Any
    saved_cost_usd: float
    saved_latency_ms: float
    similarity: float | None = None


class Caches:
    def __init__(self, backend: CacheBackend) -> None:
        self.backend = backend

    # exact responses ----------------------------------------------------------------------------
    def response_key(
        self,
        scope: CacheScope,
        models: list[str],
        messages: list[Message],
        tools: list[ToolSpec],
        params: dict[str, Any],
    ) -> str:
        return response_key(scope, models, messages, tools, params)

    async def response(self, key: str) -> Hit | None:
        return _hit(await self.backend.get(key))

    async def remember_response(
        self, key: str, scope: CacheScope, value: Any, cost_usd: float, latency_ms: float, ttl_s: float
    ) -> None:
        await self.backend.put(key, "response", scope.label[:64], _entry(value, cost_usd, latency_ms), ttl_s)

    # semantic final answers -----------------------------------------------------------------------
    async def similar_answer(
        self, scope: CacheScope, agent: str, models: list[str], question: str, threshold: float
    ) -> Hit | None:
        where = semantic_scope(scope, agent, models)
        entries = await self.backend.recent("semantic", where, SEMANTIC_CANDIDATES)
        if not entries:
            return None
        match = best_match(question, await embed_async(question), entries, threshold)
        if match is None:
            return None
        entry, similarity = match
        return Hit(entry["value"], float(entry["cost_usd"]), float(entry["latency_ms"]), similarity)

    async def remember_answer(
        self,
        scope: CacheScope,
        agent: str,
        models: list[str],
        question: str,
        answer: str,
        cost_usd: float,
        latency_ms: float,
        ttl_s: float,
    ) -> None:
        where = semantic_scope(scope, agent, models)
        entry = {
            **_entry(answer, cost_usd, latency_ms),
            "question": question,
            "vector": await embed_async(question),
            "identifiers": sorted(identifiers(question)),
        }
        key = response_key(scope, models, [Message(role="user", content=question)], [], {"semantic": agent})
        await self.backend.put(key, "semantic", where, entry, ttl_s)

    # tool results ------------------------------------------------------------------------------
    def tool_key(self, scope: CacheScope, agent: str, tool: str, arguments: dict[str, Any]) -> str:
        return tool_key(scope, agent, tool, arguments)

    async def tool_result(self, key: str) -> Hit | None:
        return _hit(await self.backend.get(key))

    async def remember_tool(
        self, key: str, scope: CacheScope, value: str, latency_ms: float, ttl_s: float
    ) -> None:
        await self.backend.put(key, "tool", scope.label[:64], _entry(value, 0.0, latency_ms), ttl_s)


def _entry(value: Any, cost_usd: float, latency_ms: float) -> dict[str, Any]:
    return {"value": value, "cost_usd": cost_usd, "latency_ms": latency_ms, "at": time.time()}


def _hit(entry: dict[str, Any] | None) -> Hit | None:
    if entry is None:
        return None
    return Hit(entry["value"], float(entry.get("cost_usd", 0.0)), float(entry.get("latency_ms", 0.0)))
